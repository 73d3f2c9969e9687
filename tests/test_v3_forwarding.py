"""Writes through a follower, which forwards them to the leader (musubi batches them,
`crates/consensus/src/propose_batch.rs`): large values, alone and many at once, arrive
whole; each of many concurrent small writes gets its own answer. Runs against etcd 3.4 too
(MUSUBI_TEST_TARGET=etcd)."""

import threading

import etcd3

from v3util import Gateway


# The largest value etcd 3.4 takes at its default --max-request-bytes (1.5 MiB) with a
# one-byte key: base64 in a forwarded proposal's JSON, it is past 2 MiB (axum's default
# body limit, which the peer port once applied to forwarded writes).
LARGEST = 1572864 - 64


def a_follower(members):
    """A member that does not lead, as Status says."""
    for m in members:
        got = Gateway(m).call("/maintenance/status")
        if got["header"]["member_id"] != got.get("leader"):
            return m
    raise AssertionError("every member says it leads")


def client(server):
    return etcd3.client(host="127.0.0.1", port=server.client_port, timeout=30)


def concurrently(count, work):
    """Runs `work(i)` for every i in range(count) at once, each on a thread of its own;
    returns (i, error) for each that raised."""
    failures = []

    def run(i):
        try:
            work(i)
        except Exception as e:  # noqa: BLE001
            failures.append((i, repr(e)))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def test_large_values_through_a_follower_arrive_whole(fleet):
    members = fleet.cluster(3)
    follower = a_follower(members)
    c = client(follower)
    try:
        c.put("k", b"x" * LARGEST)
        value, _ = c.get("k")
        assert value == b"x" * LARGEST

        # Eight 1 MiB writes at once: together far past one request's worth of bytes.
        def put(i):
            w = client(follower)
            try:
                w.put("big/%d" % i, bytes([65 + i]) * (1 << 20))
            finally:
                w.close()
        assert concurrently(8, put) == []
        leader_side = client(members[0])
        try:
            for i in range(8):
                value, _ = leader_side.get("big/%d" % i)
                assert value == bytes([65 + i]) * (1 << 20), i
        finally:
            leader_side.close()
    finally:
        c.close()


def test_concurrent_writes_through_a_follower_each_get_their_own_answer(fleet):
    members = fleet.cluster(3)
    follower = a_follower(members)
    answers = {}

    def put(i):
        w = client(follower)
        try:
            for n in range(20):
                key = "w/%d/%d" % (i, n)
                # A put answers with its own revision (and, asked, the key's previous
                # value, which travels back in the batch's answer too).
                answers[key] = w.put(key, "v%d" % n, prev_kv=True).header.revision
        finally:
            w.close()
    assert concurrently(16, put) == []
    assert len(answers) == 16 * 20
    # Every write got a revision of its own, and each is the key's mod revision.
    assert len(set(answers.values())) == len(answers)
    leader_side = client(members[0])
    try:
        for key, revision in answers.items():
            value, meta = leader_side.get(key)
            assert value == ("v%s" % key.rsplit("/", 1)[1]).encode()
            assert meta.mod_revision == revision, key
    finally:
        leader_side.close()
