"""The v3 Maintenance service: Status, Hash and HashKV (how operators check that members
agree), Defragment, and alarms with the space quota (`--quota-backend-bytes`, NOSPACE,
CORRUPT), through etcdctl 3.4, the JSON gateway and python `etcd3`.

Every test runs against etcd 3.4 too (MUSUBI_TEST_TARGET=etcd); the HashKV numbers are
etcd 3.4.23's, and musubi must give the same ones for the same writes."""

import json
import os
import time

import etcd3
import grpc
import pytest

import harness
from harness import wait_for
from v3util import Ctl3, Gateway, b64, running

NOSPACE = "etcdserver: mvcc: database space exceeded"


class Ctl(Ctl3):
    """etcdctl against `host:port` endpoints, as operators often write them; URLs, whose
    scheme etcdctl sends inside the HTTP/2 `:authority`, are test_endpoint_commands_on_urls'
    (crates/server/src/h2_authority.rs)."""

    def __init__(self, *servers):
        super().__init__(servers[0])
        self.servers = servers

    def argv(self, *args):
        endpoints = ",".join("127.0.0.1:%d" % s.client_port for s in self.servers)
        return [harness.ETCDCTL_BIN, "--endpoints", endpoints, "--command-timeout", "10s"] + list(args)

    def json(self, *args):
        return json.loads(self(*args, "-w", "json"))


def statuses(ctl):
    return [e["Status"] for e in ctl.json("endpoint", "status")]


def hashes(ctl, rev):
    """(hash, compact_revision) of each endpoint at `rev`."""
    return [(e["HashKV"]["hash"], e["HashKV"]["compact_revision"])
            for e in ctl.json("endpoint", "hashkv", "--rev", str(rev))]


def same_revision(ctl):
    """The revision every member has reached, once they all agree."""
    revs = {s["header"]["revision"] for s in statuses(ctl)}
    return revs.pop() if len(revs) == 1 else None


def test_endpoint_status_and_hashkv_agree_on_every_member(fleet):
    members = fleet.cluster(3)
    ctl = Ctl(*members)
    for i in range(20):
        Ctl(members[i % 3])("put", "k%d" % i, "v%d" % i)
    Ctl(members[1])("del", "k3")
    rev = wait_for("the members to agree on the revision", lambda: same_revision(ctl))
    got = statuses(ctl)
    assert len(got) == 3
    assert len({s["leader"] for s in got}) == 1
    assert len({s["header"]["member_id"] for s in got}) == 3
    assert all(s["version"].startswith("3.4") and s["dbSize"] > 0 for s in got)
    assert not any(s.get("errors") for s in got)
    at_rev = hashes(ctl, rev)
    assert len(set(at_rev)) == 1, at_rev
    assert at_rev[0][1] == -1
    assert len(set(hashes(ctl, rev - 5))) == 1
    assert hashes(ctl, rev - 5)[0] != at_rev[0]


def test_endpoint_commands_on_urls(fleet):
    """`endpoint hashkv --cluster` dials every member's client URL."""
    members = fleet.cluster(3)
    Ctl3(members[0])("put", "a", "1")
    out = json.loads(Ctl3(members[0])("endpoint", "hashkv", "--cluster", "-w", "json"))
    assert len(out) == 3


def test_hashkv_is_equal_on_every_member_after_a_kill_9_under_load(fleet):
    # Frequent snapshots, so each member holds a different one and a different log: the
    # hashes must not depend on either (the restarted member may even be sent the leader's).
    members = fleet.cluster(3, extra_args=["--snapshot-count", "100"])
    written = []

    def load(stop, server):
        gw = Gateway(server)
        i = 0
        while not stop.is_set():
            try:
                gw.raw("/kv/put", {"key": b64("load/%d" % (i % 50)), "value": b64("v%d" % i)},
                       timeout=5)
                written.append(i)
            except Exception:  # noqa: BLE001 - a write during the election may fail
                pass
            i += 1
        gw.close()

    with running(load, [(m,) for m in members[:2]]):
        time.sleep(1.5)
        victim = members[2]
        victim.kill()
        time.sleep(1.5)
        # Under the writers' load its index never stands still: ready is enough here, and
        # the catch-up is waited for below.
        victim.start(settle=False)
        time.sleep(1.5)
    assert len(written) > 50
    ctl = Ctl(*members)
    rev = wait_for("the restarted member to catch up", lambda: same_revision(ctl))
    at = hashes(ctl, rev)
    assert len(set(at)) == 1, at
    # Old revisions too: the restarted member rebuilt them from its snapshot and log.
    assert len(set(hashes(ctl, rev // 2))) == 1
    if harness.target_kind() == "musubi":
        # musubi's Hash covers the whole replicated state, equal on every member.
        hs = {Gateway(m).call("/maintenance/hash")["hash"] for m in members}
        assert len(hs) == 1, hs


def test_hashkv_is_etcds_number_and_refuses_compacted_and_future_revisions(target):
    ctl = Ctl(target)
    assert hashes(ctl, 0) == [(1084519789, -1)]  # a fresh store: etcd's empty key bucket
    for args in (("put", "a", "1"), ("put", "a", "2"), ("put", "b", "1"), ("del", "a"),
                 ("put", "c", "1")):
        ctl(*args)
    assert hashes(ctl, 2) == [(2587454935, -1)]
    assert hashes(ctl, 0) == [(1306755273, -1)]
    at3 = hashes(ctl, 3)
    code, _, err = ctl.run("endpoint", "hashkv", "--rev", "7")
    assert code == 1 and "etcdserver: mvcc: required revision is a future revision" in err
    ctl("compact", "4")
    for rev in ("3", "4"):  # at the compaction revision itself too, as etcd
        code, _, err = ctl.run("endpoint", "hashkv", "--rev", rev)
        assert code == 1 and "etcdserver: mvcc: required revision has been compacted" in err
    assert hashes(ctl, 5) == [(1010904130, 4)]
    assert hashes(ctl, 0) == [(3684001879, 4)]
    # A revision's hash does not change as later writes come.
    ctl("put", "d", "1")
    assert hashes(ctl, 5) == [(1010904130, 4)]
    assert at3 != hashes(ctl, 6)


def data_dir_bytes(server):
    total = 0
    for root, _, files in os.walk(server.data_dir):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def test_defrag_shrinks_the_data_dir(fleet):
    server = fleet.target().start()
    gw = Gateway(server)
    ctl = Ctl(server)
    value = b64("x" * 20000)
    for i in range(400):
        gw.call("/kv/put", {"key": b64("big/%d" % i), "value": value})
    ctl("del", "big/", "--prefix")
    rev = statuses(ctl)[0]["header"]["revision"]
    ctl("compact", str(rev), "--physical")
    before = statuses(ctl)[0]["dbSize"]
    assert before > 4_000_000
    out = ctl("defrag")
    assert out.startswith("Finished defragmenting etcd member[127.0.0.1:%d]" % server.client_port)
    after = statuses(ctl)[0]["dbSize"]
    assert after < before / 4, (before, after)
    if harness.target_kind() == "musubi":
        # musubi's dbSize is its data dir (etcd's is its database file; its WAL stays).
        assert data_dir_bytes(server) < before / 2
    # Everything is still there, and writes go on.
    gw.put("after", "defrag")
    assert gw.get("after")["kvs"][0]["value"] == b64("defrag")
    # The gateway's Defragment answers an empty object, as etcd's.
    assert gw.call("/maintenance/defragment") == {}


def test_nospace_refuses_puts_until_space_is_freed_and_the_alarm_disarmed(fleet):
    server = fleet.target(extra_args=["--quota-backend-bytes", "200000"]).start()
    ctl = Ctl(server)
    value = "x" * 20000
    refused = None
    for i in range(60):
        code, _, err = ctl.run("put", "k%d" % i, value)
        if code != 0:
            refused = err
            break
    assert refused is not None and "Error: " + NOSPACE in refused, refused
    me = statuses(ctl)[0]["header"]["member_id"]
    alarm = "memberID:%d alarm:NOSPACE " % me
    assert ctl("alarm", "list") == alarm + "\n"
    assert statuses(ctl)[0]["errors"] == [alarm]
    st, _, body = server.request("GET", "/health")
    assert (st, body.strip()) == (503, b'{"health":"false"}')
    # Adding data is refused, reading and deleting are not.
    code, _, err = ctl.run("put", "small", "1")
    assert code == 1 and NOSPACE in err
    code, _, err = ctl.run("lease", "grant", "100")
    assert code == 1 and "failed to grant lease (%s)" % NOSPACE in err
    r = Gateway(server).raw("/kv/put", {"key": b64("small"), "value": b64("1")})
    assert r.status_code == 429 and r.json()["code"] == 8 and r.json()["error"] == NOSPACE
    assert ctl("get", "k0", "--print-value-only").strip() == value
    ctl("del", "k", "--prefix")
    ctl("compact", str(statuses(ctl)[0]["header"]["revision"]))
    ctl("defrag")
    # Still refused until the alarm is disarmed, on every member (it is replicated).
    code, _, err = ctl.run("put", "small", "1")
    assert code == 1 and NOSPACE in err
    assert ctl("alarm", "disarm") == alarm + "\n"
    assert ctl("alarm", "list") == ""
    assert ctl("put", "small", "1") == "OK\n"
    assert not statuses(ctl)[0].get("errors")
    st, _, body = server.request("GET", "/health")
    assert (st, body.strip()) == (200, b'{"health":"true"}')


def test_corrupt_alarm_refuses_writes_and_compaction_but_not_reads(target):
    gw = Gateway(target)
    gw.put("k", "v")
    raised = gw.call("/maintenance/alarm", {"action": "ACTIVATE", "memberID": "3", "alarm": "CORRUPT"})
    assert raised == {"alarms": [{"memberID": "3", "alarm": "CORRUPT"}]}
    for path, body in (("/kv/put", {"key": b64("k"), "value": b64("w")}),
                       ("/kv/deleterange", {"key": b64("k")}),
                       ("/kv/compaction", {"revision": "1"}),
                       ("/lease/grant", {"TTL": "60"})):
        r = gw.raw(path, body)
        assert (r.status_code, r.json()["code"], r.json()["error"]) == (
            500, 15, "etcdserver: corrupt cluster"), (path, r.text)
    assert gw.get("k")["kvs"][0]["value"] == b64("v")
    # A NONE alarm can be raised too; GET with type NONE lists every alarm.
    gw.call("/maintenance/alarm", {"action": "ACTIVATE", "memberID": "5"})
    listed = gw.call("/maintenance/alarm", {"action": "GET"})["alarms"]
    assert sorted(listed, key=json.dumps) == sorted(
        [{"memberID": "3", "alarm": "CORRUPT"}, {"memberID": "5"}], key=json.dumps)
    assert gw.call("/maintenance/alarm", {"action": "GET", "alarm": "CORRUPT"}) == {
        "alarms": [{"memberID": "3", "alarm": "CORRUPT"}]}
    # Member 0 is a member ID like any other: it clears nothing here.
    assert gw.call("/maintenance/alarm", {"action": "DEACTIVATE", "alarm": "CORRUPT"}) == {}
    gw.call("/maintenance/alarm", {"action": "DEACTIVATE", "memberID": "3", "alarm": "CORRUPT"})
    gw.call("/maintenance/alarm", {"action": "DEACTIVATE", "memberID": "5"})
    assert gw.call("/maintenance/alarm", {"action": "GET"}) == {}
    gw.put("k", "w")


def test_python_etcd3_status_hash_and_alarms(target):
    c = etcd3.client(host="127.0.0.1", port=target.client_port, timeout=10)
    try:
        c.put("k", "v")
        st = c.status()
        assert st.version.startswith("3.4") and st.db_size > 0
        assert st.leader is not None and st.raft_index > 0
        assert isinstance(c.hash(), int)
        raised = c.create_alarm()  # member 0, NOSPACE
        assert [(a.alarm_type, a.member_id) for a in raised] == [(1, 0)]
        assert [(a.alarm_type, a.member_id) for a in c.list_alarms()] == [(1, 0)]
        with pytest.raises(grpc.RpcError) as refused:
            c.put("k", "w")
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.details() == NOSPACE
        assert len(c.disarm_alarm()) == 1
        assert list(c.list_alarms()) == []
        c.put("k", "w")
        c.defragment()
    finally:
        c.close()


def test_an_alarm_is_replicated_and_every_member_refuses_the_same_writes(fleet):
    members = fleet.cluster(3)
    gws = [Gateway(m) for m in members]
    gws[0].call("/maintenance/alarm", {"action": "ACTIVATE", "memberID": "7", "alarm": "NOSPACE"})
    ctl = Ctl(*members)
    wait_for("every member to list the alarm",
             lambda: all(s.get("errors") == ["memberID:7 alarm:NOSPACE "] for s in statuses(ctl)))
    for gw in gws:
        r = gw.raw("/kv/put", {"key": b64("k"), "value": b64("v")})
        assert (r.status_code, r.json()["error"]) == (429, NOSPACE), r.text
        # A Txn that only deletes is let through; one with a put is not.
        txn = {"success": [{"request_delete_range": {"key": b64("k")}}]}
        assert gw.raw("/kv/txn", txn).status_code == 200
        txn = {"failure": [{"request_put": {"key": b64("k"), "value": b64("v")}}]}
        assert gw.raw("/kv/txn", txn).json().get("error") == NOSPACE
    assert gws[2].call("/maintenance/alarm", {"action": "GET"}) == {
        "alarms": [{"memberID": "7", "alarm": "NOSPACE"}]}
    gws[2].call("/maintenance/alarm", {"action": "DEACTIVATE", "memberID": "7", "alarm": "NOSPACE"})
    for gw in gws:
        wait_for("puts to be taken again",
                 lambda: gw.raw("/kv/put", {"key": b64("k"), "value": b64("v")}).status_code == 200)
        gw.close()
