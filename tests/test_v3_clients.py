"""Real v3 client libraries against the target: python `etcd3` 0.12 (gRPC), `etcd3gw`
2.7.0 (the JSON gateway) and npm `etcd3` 1.1.2 (gRPC, tests/js/v3client.js).

Each test asserts what the library gives back: values, increasing revisions, watch events
arriving (and stopping after a cancel), leases keeping and losing their keys, and locks
on one name excluding each other. tests/run-all.sh installs the three libraries.
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time

import pytest

import etcd3
import etcd3.events
import etcd3gw

from harness import REPO

JS_DIR = os.path.join(REPO, "tests", "js")


@pytest.fixture
def server(fleet):
    return fleet.target().start()


@pytest.fixture
def grpc_client(server):
    c = etcd3.client(host="127.0.0.1", port=server.client_port, timeout=10)
    yield c
    c.close()


@pytest.fixture
def gw(server):
    return etcd3gw.client(host="127.0.0.1", port=server.client_port, timeout=10)


# ---------------------------------------------------------------------------
# python etcd3 0.12 (gRPC)

def test_etcd3_kv(grpc_client):
    c = grpc_client
    r1 = c.put("/k/a", "1")
    r2 = c.put("/k/b", b"\x00\xff binary")
    assert r2.header.revision == r1.header.revision + 1
    value, meta = c.get("/k/a")
    assert value == b"1"
    assert (meta.key, meta.version, meta.create_revision, meta.mod_revision) == (
        b"/k/a", 1, r1.header.revision, r1.header.revision)
    assert c.get("/k/b")[0] == b"\x00\xff binary"
    assert c.get("/k/missing") == (None, None)

    r3 = c.put("/k/a", "2", prev_kv=True)
    assert r3.prev_kv.value == b"1" and r3.header.revision == r2.header.revision + 1
    value, meta = c.get("/k/a")
    assert (value, meta.version, meta.create_revision, meta.mod_revision) == (
        b"2", 2, r1.header.revision, r3.header.revision)

    c.put("/k/c", "3")
    c.put("/kz", "outside")
    assert [(m.key, v) for v, m in c.get_prefix("/k/")] == [
        (b"/k/a", b"2"), (b"/k/b", b"\x00\xff binary"), (b"/k/c", b"3")]
    assert [m.key for _, m in c.get_prefix("/k/", sort_order="descend")] == [b"/k/c", b"/k/b", b"/k/a"]
    assert [m.key for _, m in c.get_prefix("/k/", sort_order="ascend", sort_target="mod")] == [
        b"/k/b", b"/k/a", b"/k/c"]
    assert [m.key for _, m in c.get_range("/k/a", "/k/c")] == [b"/k/a", b"/k/b"]
    assert [m.key for _, m in c.get_all()] == [b"/k/a", b"/k/b", b"/k/c", b"/kz"]

    assert c.put_if_not_exists("/k/new", "n") is True
    assert c.put_if_not_exists("/k/new", "again") is False
    assert c.get("/k/new")[0] == b"n"
    assert c.replace("/k/new", "n", "n2") is True
    assert c.replace("/k/new", "wrong", "n3") is False
    assert c.get("/k/new")[0] == b"n2"

    assert c.delete("/k/a") is True
    assert c.delete("/k/a") is False
    d = c.delete("/k/b", prev_kv=True, return_response=True)
    assert d.deleted == 1 and d.prev_kvs[0].value == b"\x00\xff binary"
    assert c.delete_prefix("/k/").deleted == 2
    assert [m.key for _, m in c.get_all()] == [b"/kz"]


def test_etcd3_status_and_members(grpc_client, server):
    """Maintenance.Status and Cluster.MemberList, as the library reads them."""
    st = grpc_client.status()
    assert st.version.startswith("3.4") and st.leader is not None
    assert st.leader.client_urls == [server.url]
    members = list(grpc_client.members)
    assert len(members) == 1 and members[0].client_urls == [server.url]


def test_grpc_calls_reach_their_service_and_others_are_unimplemented(server):
    """Each call goes to the service its path names (musubi dispatches on the name itself,
    crates/server/src/grpc.rs); a service or method nobody serves is gRPC's Unimplemented,
    as from etcd, and the health service answers SERVING."""
    import grpc
    from etcd3.etcdrpc import rpc_pb2

    channel = grpc.insecure_channel("127.0.0.1:%d" % server.client_port)
    try:
        put = channel.unary_unary(
            "/etcdserverpb.KV/Put",
            request_serializer=rpc_pb2.PutRequest.SerializeToString,
            response_deserializer=rpc_pb2.PutResponse.FromString,
        )
        assert put(rpc_pb2.PutRequest(key=b"routed", value=b"v"), timeout=10).header.revision > 1
        for path in ("/etcdserverpb.Nowhere/Range", "/etcdserverpb.KV/Nothing"):
            call = channel.unary_unary(path)
            with pytest.raises(grpc.RpcError) as refused:
                call(b"", timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED, path
        # grpc.health.v1.Health/Check of "": HealthCheckResponse{status: SERVING (1)}
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        assert check(b"", timeout=10) == b"\x08\x01"
    finally:
        channel.close()


def test_etcd3_transactions(grpc_client):
    c = grpc_client
    t = c.transactions
    c.put("/t/k", "v")
    ok, responses = c.transaction(
        compare=[t.value("/t/k") == "v", t.version("/t/k") > 0, t.create("/t/k") > 0,
                 t.mod("/t/k") < 1000, t.version("/t/k") != 5],
        success=[t.put("/t/k", "v2"), t.get("/t/k"), t.put("/t/other", "o")],
        failure=[t.delete("/t/k")])
    assert ok is True
    assert len(responses) == 3
    # the get inside the Txn sees the put before it
    assert [(v, m.version) for v, m in responses[1]] == [(b"v2", 2)]
    ok, responses = c.transaction(
        compare=[t.value("/t/k") == "nope"],
        success=[t.put("/t/k", "never")],
        failure=[t.delete("/t/other"), t.get("/t/k")])
    assert ok is False
    assert responses[0].response_delete_range.deleted == 1
    assert [v for v, _ in responses[1]] == [b"v2"]
    assert c.get("/t/other") == (None, None)
    # a missing key: version and create are 0; a VALUE compare on it is false
    ok, _ = c.transaction(compare=[t.version("/t/none") == 0, t.create("/t/none") == 0],
                          success=[], failure=[])
    assert ok is True
    ok, _ = c.transaction(compare=[t.value("/t/none") != "x"], success=[], failure=[])
    assert ok is False


def test_etcd3_leases(grpc_client):
    c = grpc_client
    lease = c.lease(30)
    assert lease.id > 0 and lease.ttl == 30
    c.put("/l/a", "1", lease=lease)
    c.put("/l/b", "2", lease=lease.id)
    assert lease.granted_ttl == 30
    assert 28 <= lease.remaining_ttl <= 30
    assert sorted(lease.keys) == [b"/l/a", b"/l/b"]
    assert c.get("/l/a")[1].lease_id == lease.id
    refreshed = lease.refresh()
    assert [r.TTL for r in refreshed] == [30] and refreshed[0].ID == lease.id
    info = c.get_lease_info(lease.id)
    assert info.ID == lease.id and info.grantedTTL == 30 and 28 <= info.TTL <= 30

    mine = c.lease(60, lease_id=123456)
    assert mine.id == 123456 and c.get_lease_info(123456).grantedTTL == 60
    with pytest.raises(etcd3.exceptions.PreconditionFailedError):
        c.lease(60, lease_id=123456)        # etcdserver: lease already exists (FailedPrecondition)

    lease.revoke()
    assert c.get("/l/a") == (None, None) and c.get("/l/b") == (None, None)
    assert c.get_lease_info(lease.id).TTL == -1
    with pytest.raises(Exception) as e:
        c.put("/l/c", "3", lease=lease.id)
    assert "requested lease not found" in str(e.value)
    # a short lease that is not kept alive expires and takes its key along
    short = c.lease(1)
    assert short.ttl == 2, "a TTL below the minimum becomes 2"
    assert c.get_lease_info(short.id).grantedTTL == 2
    c.put("/l/short", "s", lease=short)
    deadline = time.time() + 10
    while time.time() < deadline and c.get("/l/short")[0] is not None:
        time.sleep(0.2)
    assert c.get("/l/short") == (None, None)
    mine.revoke()


class Drain:
    """Reads a blocking iterator (a watch's events) in a thread; take(n) waits for n more."""

    def __init__(self, iterator):
        self.q = queue.Queue()
        threading.Thread(target=self._run, args=(iterator,), daemon=True).start()

    def _run(self, iterator):
        try:
            for item in iterator:
                self.q.put(item)
        except Exception as e:  # noqa: BLE001 - reported by take()
            self.q.put(e)

    def take(self, n, timeout=10.0):
        got = []
        deadline = time.time() + timeout
        while len(got) < n:
            try:
                got.append(self.q.get(timeout=max(0.1, deadline - time.time())))
            except queue.Empty:
                raise AssertionError("only %d of %d events within %.0f s: %r" % (len(got), n, timeout, got))
            assert not isinstance(got[-1], Exception), got[-1]
        return got


def collect(iterator, n, timeout=10.0):
    return Drain(iterator).take(n, timeout)


def test_etcd3_watch(grpc_client):
    c = grpc_client
    events, cancel = c.watch("/w/key")
    time.sleep(0.3)
    r1 = c.put("/w/key", "1")
    c.put("/w/other", "x")
    r2 = c.put("/w/key", "2")
    r3 = c.delete("/w/key", return_response=True)
    got = collect(events, 3)
    assert [type(e) for e in got] == [etcd3.events.PutEvent, etcd3.events.PutEvent, etcd3.events.DeleteEvent]
    assert [e.value for e in got[:2]] == [b"1", b"2"]
    assert [e.mod_revision for e in got] == [r1.header.revision, r2.header.revision, r3.header.revision]
    cancel()

    pevents, pcancel = c.watch_prefix("/w/", prev_kv=True)
    time.sleep(0.3)
    c.put("/w/a", "a1")
    c.put("/w/b", "b1")
    c.put("/w/a", "a2")
    got = collect(pevents, 3)
    assert [(e.key, e.value) for e in got] == [(b"/w/a", b"a1"), (b"/w/b", b"b1"), (b"/w/a", b"a2")]
    assert got[2].prev_value == b"a1"
    pcancel()

    # history replay from a past revision
    hevents, hcancel = c.watch("/w/key", start_revision=r1.header.revision)
    got = collect(hevents, 3)
    assert [e.mod_revision for e in got] == [r1.header.revision, r2.header.revision, r3.header.revision]
    hcancel()

    # a callback watch, cancelled by its ID: no more calls after the cancel
    seen = queue.Queue()
    wid = c.add_watch_callback("/w/cb", lambda resp: seen.put(resp))
    time.sleep(0.3)
    c.put("/w/cb", "1")
    resp = seen.get(timeout=10)
    assert [e.value for e in resp.events] == [b"1"]
    c.cancel_watch(wid)
    time.sleep(0.3)
    c.put("/w/cb", "2")
    time.sleep(0.5)
    assert seen.empty()


def test_etcd3_locks_exclude(server, grpc_client):
    a = grpc_client
    b = etcd3.client(host="127.0.0.1", port=server.client_port, timeout=10)
    try:
        l1 = a.lock("shared", ttl=20)
        assert l1.acquire(timeout=5) is True
        assert l1.is_acquired()
        l2 = b.lock("shared", ttl=20)
        t0 = time.time()
        assert l2.acquire(timeout=1) is False, "two locks on one name were both acquired"
        assert time.time() - t0 >= 0.9
        assert not l2.is_acquired()
        # a waiter gets the lock once the holder releases it
        got = queue.Queue()
        threading.Thread(target=lambda: got.put(l2.acquire(timeout=10)), daemon=True).start()
        time.sleep(0.5)
        assert got.empty()
        assert l1.release() is True
        assert got.get(timeout=10) is True
        assert l2.is_acquired() and not l1.is_acquired()
        l2.release()
        with a.lock("other", ttl=20) as l3:
            assert l3.is_acquired()
        assert not l3.is_acquired()
    finally:
        b.close()


# ---------------------------------------------------------------------------
# etcd3gw 2.7.0 (JSON gateway)

def test_etcd3gw_kv_and_txn(gw):
    assert gw.api_path == "/v3/", "etcd3gw picks its path from /version"
    assert gw.put("/g/a", "1") is True
    gw.put("/g/b", b"\x00\xff")
    assert gw.get("/g/a") == [b"1"]
    assert gw.get("/g/missing") == []
    [(value, meta)] = gw.get("/g/a", metadata=True)
    assert value == b"1" and meta["key"] == b"/g/a" and meta["version"] == "1"
    gw.put("/g/a", "2")
    [(value, meta2)] = gw.get("/g/a", metadata=True)
    assert value == b"2" and meta2["version"] == "2"
    assert int(meta2["mod_revision"]) > int(meta["mod_revision"])
    assert meta2["create_revision"] == meta["create_revision"]
    assert [m["key"] for _, m in gw.get_prefix("/g/")] == [b"/g/a", b"/g/b"]
    assert [m["key"] for _, m in gw.get_prefix("/g/", sort_order="descend", sort_target="key")] == [
        b"/g/b", b"/g/a"]
    assert sorted(v for v, _ in gw.get_all()) == [b"\x00\xff", b"2"]
    assert gw.create("/g/c", "c") is True
    assert gw.create("/g/c", "again") is False
    assert gw.replace("/g/c", "c", "c2") is True
    assert gw.replace("/g/c", "c", "c3") is False
    assert gw.get("/g/c") == [b"c2"]
    r = gw.transaction({
        "compare": [{"key": etcd3gw.utils._encode("/g/c"), "result": "EQUAL", "target": "VALUE",
                     "value": etcd3gw.utils._encode("c2")}],
        "success": [{"request_put": {"key": etcd3gw.utils._encode("/g/d"),
                                     "value": etcd3gw.utils._encode("d")}},
                    {"request_range": {"key": etcd3gw.utils._encode("/g/d")}}],
        "failure": []})
    assert r["succeeded"] is True
    assert r["responses"][1]["response_range"]["kvs"][0]["value"] == etcd3gw.utils._encode("d")
    assert gw.delete("/g/a") is True
    assert gw.delete("/g/a") is False
    assert gw.delete_prefix("/g/") is True
    assert gw.get_prefix("/g/") == []


def test_etcd3gw_status_and_members(gw, server):
    assert gw.status()["version"].startswith("3.4")
    members = gw.members()
    assert len(members) == 1 and members[0]["clientURLs"] == [server.url]


def test_etcd3gw_lease(gw):
    lease = gw.lease(30)
    assert lease.id > 0
    gw.put("/gl/a", "1", lease=lease)
    gw.put("/gl/b", "2", lease=lease)
    assert 28 <= lease.ttl() <= 30
    assert sorted(lease.keys()) == [b"/gl/a", b"/gl/b"]
    assert lease.refresh() == 30
    assert lease.revoke() is True
    assert gw.get_prefix("/gl/") == []
    assert lease.ttl() == -1
    assert lease.keys() == []


def test_etcd3gw_watch(gw):
    events, cancel = gw.watch("/gw/key")
    time.sleep(0.3)
    gw.put("/gw/key", "1")
    gw.put("/gw/other", "x")
    gw.put("/gw/key", "2")
    gw.delete("/gw/key")
    got = collect(events, 3)
    assert [(e.get("type", "PUT"), e["kv"].get("value")) for e in got] == [
        ("PUT", b"1"), ("PUT", b"2"), ("DELETE", None)]
    revs = [int(e["kv"]["mod_revision"]) for e in got]
    assert revs == sorted(revs) and len(set(revs)) == 3
    cancel()

    pevents, pcancel = gw.watch_prefix("/gw/", start_revision=revs[0], prev_kv=True)
    drain = Drain(pevents)
    got = drain.take(4)
    assert [(e.get("type", "PUT"), e["kv"]["key"]) for e in got] == [
        ("PUT", b"/gw/key"), ("PUT", b"/gw/other"), ("PUT", b"/gw/key"), ("DELETE", b"/gw/key")]
    assert got[2]["prev_kv"]["value"] == etcd3gw.utils._encode("1")
    gw.put("/gw/new", "n")
    assert drain.take(1)[0]["kv"]["key"] == b"/gw/new"
    pcancel()


def test_etcd3gw_locks_exclude(gw, server):
    other = etcd3gw.client(host="127.0.0.1", port=server.client_port, timeout=10)
    l1 = gw.lock("gwlock", ttl=20)
    assert l1.acquire() is True
    assert l1.is_acquired()
    l2 = other.lock("gwlock", ttl=20)
    assert l2.acquire() is False, "two locks on one name were both acquired"
    assert not l2.is_acquired()
    assert l1.refresh() == 20
    assert l1.release() is True
    assert l1.release() is False
    assert l2.acquire() is True and l2.is_acquired()
    assert l2.release() is True


# ---------------------------------------------------------------------------
# npm etcd3 1.1.2 (gRPC), through tests/js/v3client.js

def test_npm_etcd3(server):
    node = shutil.which("node")
    assert node, "node is missing (tests/run-all.sh installs it)"
    assert os.path.isdir(os.path.join(JS_DIR, "node_modules", "etcd3")), \
        "npm etcd3 is missing: (cd tests/js && npm ci)"
    p = subprocess.run([node, os.path.join(JS_DIR, "v3client.js"), server.url],
                       capture_output=True, text=True, timeout=90, cwd=JS_DIR)
    assert p.returncode == 0, "v3client.js failed:\nstdout %s\nstderr %s" % (p.stdout, p.stderr)
    r = json.loads(p.stdout)
    a, b = r["putRevisions"]
    assert b == a + 1
    assert r["getA"] == "1" and r["missing"] is None
    assert r["prefix"] == {"js/a": "1", "js/b": "2"}
    assert r["keysOnly"] == ["js/a", "js/b"] and r["count"] == 2
    assert r["previous"] == "1"
    assert r["metaA"] == {"version": 2, "create": a, "mod": b + 1, "headerRevision": b + 1}
    assert r["deleted"] == 1 and r["deletedMissing"] == 0
    assert r["afterDelete"] == {"js/a": "11"}
    assert r["txn1"] == {"succeeded": True, "value": "then"}
    assert r["txn2"] == {"succeeded": False, "a": "then", "c": "else2",
                         "responses": ["response_put", "response_range"]}
    assert r["txn3"] == {"succeeded": True, "created": "yes"}
    assert int(r["leaseId"]) > 0
    # one keepalive every TTL/3 s: about 4 in 4.5 s
    assert len(r["keepalives"]) >= 2 and set(r["keepalives"]) == {3}, r["keepalives"]
    assert r["leasedAfterTTL"] == "x" and r["lost"] == []
    assert r["keepaliveOnceTTL"] == 3
    assert r["leasedAfterRevoke"] is None
    assert r["ghostPut"].startswith("EtcdLeaseInvalidError"), r["ghostPut"]
    ev = r["watchEvents"]
    assert [e[:3] for e in ev] == [["put", "w1", None], ["put", "w2", "w1"], ["delete", "js/w", "w2"]]
    assert ev[1][3] == ev[0][3] + 1 and ev[2][3] == ev[1][3] + 1
    assert r["watchEventsAfterCancel"] == 3
    assert r["replay"] == ["Put js/a", "Put js/b", "Put js/a", "Delete js/b", "Put js/a", "Put js/c",
                           "Put js/created", "Put js/leased", "Delete js/leased", "Put js/w",
                           "Put js/w", "Delete js/w", "Put js/w", "Put js/end"]
    assert r["lockKeys"] == ["js-lock"]
    assert r["secondLock"] == "EtcdLockFailedError"
    assert r["thirdLock"] == "acquired" and r["lockDo"] == "inside"
    assert r["lockKeysAfter"] == []
