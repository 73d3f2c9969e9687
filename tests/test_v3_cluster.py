"""The v3 API on a 3-member cluster and across restarts, and the one keyspace under v2
and v3: every member serves v3 (writes forwarded to the leader, linearizable reads through
ReadIndex), leases granted and kept alive through any member expire on the leader and
delete their keys everywhere at one revision, a kill -9 loses nothing acknowledged, and a
key written through either API is read through the other at the same revision.

The one-keyspace tests are musubi's own: etcd 3.4 keeps v2 and v3 apart, so they are
skipped when MUSUBI_TEST_TARGET=etcd; the rest run against etcd 3.4 too."""

import json
import threading

import pytest

import harness
from harness import wait_for
from v3util import Ctl3


def kv_json(ctl, *args):
    return json.loads(ctl("get", "-w", "json", *args))


def test_every_member_serves_v3_and_reads_are_linearizable(fleet):
    members = fleet.cluster(3)
    ctls = [Ctl3(m) for m in members]
    for i, writer in enumerate(ctls):
        writer("put", "k%d" % i, "v%d" % i)
        # Linearizable reads on every member see the write at once.
        for reader in ctls:
            got = kv_json(reader, "k%d" % i)
            assert [harness_b64(kv["value"]) for kv in got["kvs"]] == [b"v%d" % i]
    revs = {kv_json(c, "k0")["header"]["revision"] for c in ctls}
    assert len(revs) == 1, revs
    # Serializable reads are local; they catch up.
    wait_for("a local read", lambda: kv_json(ctls[2], "k2", "--consistency", "s")["kvs"])


def harness_b64(text):
    import base64
    return base64.b64decode(text)


def test_leases_work_through_any_member_and_expire_everywhere_at_one_revision(fleet):
    members = fleet.cluster(3)
    ctls = [Ctl3(m) for m in members]
    lease = ctls[1]("lease", "grant", "2").split()[1]
    ctls[2]("put", "a", "1", "--lease", lease)
    ctls[0]("put", "b", "2", "--lease", lease)
    for c in ctls:
        assert "TTL(2)" in c("lease", "keep-alive", "--once", lease)
        out = c("lease", "timetolive", lease, "--keys")
        assert "granted with TTL(2s)" in out and "attached keys([a b])" in out, out
    watcher = ctls[2].popen("watch", "--prefix", "")
    try:
        before = kv_json(ctls[0], "a")["header"]["revision"]
        # No more keep-alives: the leader revokes it, and both keys go at one revision.
        wait_for("the lease to expire",
                 lambda: all(kv_json(c, "a", "--consistency", "s").get("count", 0) == 0 and
                             kv_json(c, "b", "--consistency", "s").get("count", 0) == 0
                             for c in ctls))
        after = kv_json(ctls[0], "a")["header"]["revision"]
        assert after == before + 1
        assert "TTL(-1s)" in ctls[1]("lease", "timetolive", lease) or \
            "already expired" in ctls[1]("lease", "timetolive", lease)
    finally:
        watcher.kill()
        out = watcher.communicate(timeout=10)[0]
    assert out.split("\n")[:6] == ["DELETE", "a", "", "DELETE", "b", ""], out


def test_a_killed_member_comes_back_with_every_acknowledged_revision(fleet):
    members = fleet.cluster(3)
    ctls = [Ctl3(m) for m in members]
    for i in range(20):
        ctls[i % 3]("put", "key%02d" % i, "value%d" % i)
    want = kv_json(ctls[0], "key", "--prefix")
    victim = members[1]
    victim.kill()
    ctls[0]("put", "while-down", "x")
    victim.restart()
    ctl = Ctl3(victim)
    got = kv_json(ctl, "key", "--prefix")
    assert got["kvs"] == want["kvs"]
    assert kv_json(ctl, "while-down")["count"] == 1
    # Old revisions are still readable after the restart.
    first = want["kvs"][0]["mod_revision"]
    assert kv_json(ctl, "key", "--prefix", "--rev", str(first))["count"] == 1


one_keyspace = pytest.mark.skipif(harness.target_kind() == "etcd",
                                  reason="etcd 3.4 keeps the v2 and v3 keyspaces apart")


@one_keyspace
def test_a_key_written_through_either_api_reads_through_the_other_at_the_same_revision(target):
    ctl = Ctl3(target)
    status, headers, body = harness.raw_request(target.client_port, "PUT", "/v2/keys/conf/a",
                                                 "value=from-v2",
                                                 {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 201, body
    index = int(json.loads(body)["node"]["modifiedIndex"])
    got = kv_json(ctl, "/conf/a")
    kv = got["kvs"][0]
    assert harness_b64(kv["value"]) == b"from-v2"
    assert kv["mod_revision"] == kv["create_revision"] == index == got["header"]["revision"]
    # v3 writes are v2 files; their directories appear in v2 listings.
    ctl("put", "/conf/b/c", "from-v3")
    status, headers, body = harness.raw_request(target.client_port, "GET",
                                                 "/v2/keys/conf?recursive=true")
    node = json.loads(body)["node"]
    assert [n["key"] for n in node["nodes"]] == ["/conf/a", "/conf/b"]
    leaf = node["nodes"][1]["nodes"][0]
    assert (leaf["key"], leaf["value"]) == ("/conf/b/c", "from-v3")
    assert int(headers["x-etcd-index"]) == kv_json(ctl, "/conf/b/c")["header"]["revision"]
    # A v2 recursive delete removes the v3 keys below it, at one revision.
    rev = kv_json(ctl, "/conf", "--prefix")["header"]["revision"]
    status, _, _ = harness.raw_request(target.client_port, "DELETE",
                                       "/v2/keys/conf?recursive=true")
    assert status == 200
    got = kv_json(ctl, "/conf", "--prefix")
    assert got.get("count", 0) == 0 and got["header"]["revision"] == rev + 1
    # Keys v2 cannot name stay v3's own.
    ctl("put", "plain", "x")
    status, _, _ = harness.raw_request(target.client_port, "GET", "/v2/keys/plain")
    assert status == 404


@one_keyspace
def test_a_v3_lease_expiry_is_an_expire_to_a_v2_watcher(target):
    ctl = Ctl3(target)
    lease = ctl("lease", "grant", "2").split()[1]
    ctl("put", "/leased", "x", "--lease", lease)
    seen = {}

    def watch():
        seen["reply"] = harness.raw_request(target.client_port, "GET",
                                            "/v2/keys/leased?wait=true", timeout=20)
    t = threading.Thread(target=watch)
    t.start()
    t.join(timeout=25)
    status, _, body = seen["reply"]
    event = json.loads(body)
    assert (event["action"], event["node"]["key"]) == ("expire", "/leased"), body
    assert event["prevNode"]["value"] == "x"
