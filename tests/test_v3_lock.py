"""The Lock and Election services (v3lockpb.Lock, v3electionpb.Election) through gRPC and
the JSON gateway, side by side with the client-side locks and elections of Debian's
etcdctl, python `etcd3` 0.12 and npm `etcd3` 1.1.2 on the same names.

What etcd 3.4.23 does, and so what these tests hold the target to (every test here also
passes with MUSUBI_TEST_TARGET=etcd):
- `etcdctl lock`/`elect` (clientv3's concurrency package) and the server's services share
  one layout, `<name>/<lease hex>`, the oldest key holding: they exclude each other.
- python etcd3's lock("n") is the single key `/locks/n`, npm etcd3's lock("n") the single
  key `n`: neither excludes etcdctl's lock n, nor each other, on the same name. npm's
  lock("/locks/n") is python's lock("n"), and etcdctl's lock "/locks" waits for python's
  lock("n") (its key is under `/locks/`), but not the other way round.
- A Lock waiter whose lease expires while it waits still gets its (deleted) key once the
  keys before it go (3.5 answers `mutex: session is expired`); a waiter that hangs up
  takes its key back.
"""

import os
import signal
import shutil
import subprocess
import threading
import time

import etcd3
import grpc
import pytest
import requests
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from etcd3.etcdrpc import rpc_pb2  # noqa: F401 - registers rpc.proto and kv.proto

from harness import REPO
from v3util import ChunkedStream, Ctl3, Gateway, b64, unb64


@pytest.fixture
def server(fleet):
    return fleet.target().start()


@pytest.fixture
def gw(server):
    g = Gateway(server)
    yield g
    g.close()


class Spawned(Ctl3):
    """etcdctl, each background process of which is killed at teardown if still running."""

    def __init__(self, server):
        super().__init__(server)
        self.procs = []

    def popen(self, *args):
        p = super().popen(*args)
        self.procs.append(p)
        return p

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def ctl(server):
    c = Spawned(server)
    yield c
    c.kill_all()


def line(proc, timeout=15):
    """The next line `proc` prints, within `timeout`."""
    return Background(proc.stdout.readline).result(timeout)


def rev(reply):
    return int(reply["header"]["revision"])


def keys_under(gw, prefix):
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    kvs = gw.call("/kv/range", {"key": b64(prefix), "range_end": b64(end)}).get("kvs", [])
    return [unb64(kv["key"]).decode() for kv in kvs]


def grant(gw, ttl):
    return gw.call("/lease/grant", {"TTL": ttl})["ID"]


def post(server, path, body, timeout=20):
    """One gateway call on its own connection (for a thread: Gateway's is not shared)."""
    return requests.post(server.url + "/v3" + path, json=body, timeout=timeout).json()


def error(gw, path, body):
    """A refused call: (HTTP status, the JSON error body)."""
    r = gw.raw(path, body)
    return r.status_code, r.json()


class Background:
    """`fn()` run in a thread; result() waits for what it returned (or raised)."""

    def __init__(self, fn):
        self.out = []
        self.thread = threading.Thread(target=lambda: self.out.append(self._call(fn)), daemon=True)
        self.thread.start()

    @staticmethod
    def _call(fn):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - handed to result()
            return e

    def done(self):
        return not self.thread.is_alive()

    def result(self, timeout=15):
        self.thread.join(timeout)
        assert self.out, "still running after %s s" % timeout
        if isinstance(self.out[0], Exception):
            raise self.out[0]
        return self.out[0]


def wait_for_keys(gw, prefix, n, timeout=10):
    """The keys under `prefix` once there are `n` of them (or after `timeout`)."""
    deadline = time.time() + timeout
    while len(keys_under(gw, prefix)) != n and time.time() < deadline:
        time.sleep(0.1)
    return keys_under(gw, prefix)


def still_waiting(thing, seconds=1.0):
    time.sleep(seconds)
    return (thing.poll() is None) if isinstance(thing, subprocess.Popen) else not thing.done()


# ---------------------------------------------------------------------------
# etcdctl lock: holders never overlap, and they exclude the Lock RPC

def test_etcdctl_lock_holders_never_overlap(ctl, tmp_path):
    stamps = tmp_path / "stamps"
    script = 'echo "start $1" >> %s; sleep 0.3; echo "end $1" >> %s' % (stamps, stamps)
    holders = [ctl.popen("lock", "overlap", "--", "sh", "-c", script, "sh", str(i)) for i in range(4)]
    for h in holders:
        out, err = h.communicate(timeout=60)
        assert h.returncode == 0, (out, err)
    lines = stamps.read_text().split()
    pairs = [lines[i:i + 4] for i in range(0, len(lines), 4)]
    assert len(pairs) == 4, lines
    for start, a, end, b in pairs:
        assert (start, end, a) == ("start", "end", b), "holders overlapped: %r" % lines
    assert sorted(p[1] for p in pairs) == ["0", "1", "2", "3"]


def test_etcdctl_lock_and_the_lock_rpc_exclude_each_other(gw, ctl):
    # A Lock RPC holder keeps etcdctl out until it unlocks.
    held = gw.call("/lock/lock", {"name": b64("shared")})
    key = unb64(held["key"]).decode()
    assert key.startswith("shared/") and keys_under(gw, "shared/") == [key]
    waiter = ctl.popen("lock", "shared", "--", "echo", "etcdctl got it")
    assert still_waiting(waiter, 1.5), "etcdctl took a lock the Lock RPC holds"
    gw.call("/lock/unlock", {"key": held["key"]})
    out, err = waiter.communicate(timeout=15)
    assert waiter.returncode == 0 and out == "etcdctl got it\n", (out, err)

    # An etcdctl holder keeps the Lock RPC waiting until it lets go.
    holder = ctl.popen("lock", "shared")
    holder_key = line(holder).strip()
    assert holder_key.startswith("shared/")
    rpc = Background(lambda: post(gw.server, "/lock/lock", {"name": b64("shared")}))
    assert still_waiting(rpc), "the Lock RPC took a lock etcdctl holds"
    holder.send_signal(signal.SIGINT)
    holder.communicate(timeout=15)
    got = rpc.result()
    assert keys_under(gw, "shared/") == [unb64(got["key"]).decode()]
    gw.call("/lock/unlock", {"key": got["key"]})
    assert keys_under(gw, "shared/") == []


# ---------------------------------------------------------------------------
# The Lock service through the gateway: etcd's answers

def test_lock_gateway_answers_as_etcd(gw):
    # No lease: a session lease of 60 s, not kept alive, named by the key.
    first = gw.call("/lock/lock", {"name": b64("L")})
    key = unb64(first["key"]).decode()
    lease = int(key.split("/")[1], 16)
    ttl = gw.call("/lease/timetolive", {"ID": lease})
    assert ttl["grantedTTL"] == "60" and 55 <= int(ttl["TTL"]) <= 60
    [kv] = gw.get(key)["kvs"]
    assert kv["lease"] == str(lease) and "value" not in kv
    assert rev(first) == int(kv["create_revision"])

    # The same lease again: the key it holds, nothing written.
    gw.put("other", "x")
    again = gw.call("/lock/lock", {"name": b64("L"), "lease": lease})
    assert again["key"] == first["key"] and rev(again) == gw.rev()

    # An empty name is the prefix "/".
    empty = gw.call("/lock/lock", {})
    assert unb64(empty["key"]).decode().startswith("/")

    assert error(gw, "/lock/lock", {"name": b64("L"), "lease": 12345}) == (500, {
        "error": "etcdserver: requested lease not found",
        "message": "etcdserver: requested lease not found", "code": 2})
    assert error(gw, "/lock/unlock", {}) == (500, {
        "error": "etcdserver: key is not provided",
        "message": "etcdserver: key is not provided", "code": 2})
    assert error(gw, "/lock/lock", {"name": "eA"}) == (400, {
        "error": "illegal base64 data at input byte 0",
        "message": "illegal base64 data at input byte 0", "code": 3})

    # Unlocking a key that is not there changes nothing.
    now = gw.rev()
    assert rev(gw.call("/lock/unlock", {"key": b64("L/none")})) == now
    unlocked = gw.call("/lock/unlock", {"key": first["key"]})
    assert rev(unlocked) == now + 1 and keys_under(gw, "L/") == []


def test_a_lock_waiter_gets_the_lock_at_the_holders_unlock(gw):
    holder = gw.call("/lock/lock", {"name": b64("W")})
    waiter = Background(lambda: post(gw.server, "/lock/lock", {"name": b64("W")}))
    assert still_waiting(waiter)
    assert len(keys_under(gw, "W/")) == 2
    unlocked = gw.call("/lock/unlock", {"key": holder["key"]})
    got = waiter.result()
    # The answer's header is that of the read that found the keys before it gone.
    assert rev(got) == rev(unlocked)
    assert keys_under(gw, "W/") == [unb64(got["key"]).decode()]


def test_a_lock_waiter_that_hangs_up_takes_its_key_back(gw, server):
    holder = gw.call("/lock/lock", {"name": b64("H")})
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(server.url + "/v3/lock/lock", json={"name": b64("H")}, timeout=1)
    assert wait_for_keys(gw, "H/", 1, timeout=5) == [unb64(holder["key"]).decode()]
    assert gw.rev() == rev(holder) + 2, "the waiter's key was not put, then deleted"


def test_a_waiter_behind_one_that_hangs_up_waits_on_for_the_holder(gw, server):
    holder = gw.call("/lock/lock", {"name": b64("C")})
    # The first waiter gives up after 2 s; the second waits behind it meanwhile.
    first = Background(lambda: requests.post(server.url + "/v3/lock/lock",
                                             json={"name": b64("C")}, timeout=2))
    assert len(wait_for_keys(gw, "C/", 2)) == 2
    second = Background(lambda: post(server, "/lock/lock", {"name": b64("C")}))
    assert len(wait_for_keys(gw, "C/", 3)) == 3
    with pytest.raises(requests.exceptions.ReadTimeout):
        first.result()
    assert len(wait_for_keys(gw, "C/", 2)) == 2
    assert still_waiting(second), "the second waiter took the lock the holder holds"
    unlocked = gw.call("/lock/unlock", {"key": holder["key"]})
    got = second.result()
    assert rev(got) == rev(unlocked)
    assert keys_under(gw, "C/") == [unb64(got["key"]).decode()]


def test_a_lock_waiter_whose_lease_expires_still_gets_its_key(gw):
    holder = gw.call("/lock/lock", {"name": b64("X"), "lease": grant(gw, 60)})
    short = grant(gw, 2)
    waiter = Background(lambda: post(gw.server, "/lock/lock", {"name": b64("X"), "lease": short}))
    assert len(wait_for_keys(gw, "X/", 2)) == 2
    assert wait_for_keys(gw, "X/", 1) == [unb64(holder["key"]).decode()], "the lease did not expire"
    assert not waiter.done()
    gw.call("/lock/unlock", {"key": holder["key"]})
    got = waiter.result()
    # As etcd 3.4: the key is answered though it is gone.
    assert unb64(got["key"]).decode() == "X/%x" % int(short)
    assert keys_under(gw, "X/") == []


# ---------------------------------------------------------------------------
# gRPC: the messages built here from the services' field numbers

F = descriptor_pb2.FieldDescriptorProto
_POOL = descriptor_pool.Default()


def _define():
    def message(fd, name, *fields):
        m = fd.message_type.add(name=name)
        for number, field, kind, type_name in fields:
            f = m.field.add(name=field, number=number, label=F.LABEL_OPTIONAL, type=kind)
            if type_name:
                f.type_name = type_name

    header = (1, "header", F.TYPE_MESSAGE, ".etcdserverpb.ResponseHeader")
    leader_key = (1, "leader", F.TYPE_MESSAGE, ".v3electionpb.LeaderKey")
    name = (1, "name", F.TYPE_BYTES, None)
    lock = descriptor_pb2.FileDescriptorProto(
        name="musubi_test_v3lock.proto", package="v3lockpb", dependency=["rpc.proto"],
        syntax="proto3")
    message(lock, "LockRequest", name, (2, "lease", F.TYPE_INT64, None))
    message(lock, "LockResponse", header, (2, "key", F.TYPE_BYTES, None))
    message(lock, "UnlockRequest", (1, "key", F.TYPE_BYTES, None))
    message(lock, "UnlockResponse", header)
    election = descriptor_pb2.FileDescriptorProto(
        name="musubi_test_v3election.proto", package="v3electionpb",
        dependency=["rpc.proto", "kv.proto"], syntax="proto3")
    message(election, "CampaignRequest", name, (2, "lease", F.TYPE_INT64, None),
            (3, "value", F.TYPE_BYTES, None))
    message(election, "CampaignResponse", header, (2, "leader", F.TYPE_MESSAGE, ".v3electionpb.LeaderKey"))
    message(election, "LeaderKey", name, (2, "key", F.TYPE_BYTES, None),
            (3, "rev", F.TYPE_INT64, None), (4, "lease", F.TYPE_INT64, None))
    message(election, "LeaderRequest", name)
    message(election, "LeaderResponse", header, (2, "kv", F.TYPE_MESSAGE, ".mvccpb.KeyValue"))
    message(election, "ResignRequest", leader_key)
    message(election, "ResignResponse", header)
    for fd in (lock, election):
        try:
            _POOL.FindFileByName(fd.name)
        except KeyError:
            _POOL.Add(fd)
    factory = message_factory.MessageFactory(_POOL)
    return lambda full: factory.GetPrototype(_POOL.FindMessageTypeByName(full))


MSG = _define()


class Rpc:
    """The Lock and Election methods over one gRPC channel."""

    def __init__(self, server):
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % server.client_port)

    def _method(self, kind, path, response):
        make = getattr(self.channel, kind)
        return make(path, request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=MSG(response).FromString)

    def lock(self, name, lease=0, timeout=10, metadata=None):
        call = self._method("unary_unary", "/v3lockpb.Lock/Lock", "v3lockpb.LockResponse")
        return call(MSG("v3lockpb.LockRequest")(name=name, lease=lease), timeout=timeout,
                    metadata=metadata)

    def unlock(self, key):
        call = self._method("unary_unary", "/v3lockpb.Lock/Unlock", "v3lockpb.UnlockResponse")
        return call(MSG("v3lockpb.UnlockRequest")(key=key), timeout=10)

    def campaign(self, name, value, lease=0, timeout=10):
        call = self._method("unary_unary", "/v3electionpb.Election/Campaign",
                            "v3electionpb.CampaignResponse")
        return call(MSG("v3electionpb.CampaignRequest")(name=name, value=value, lease=lease),
                    timeout=timeout)

    def observe(self, name, timeout=15):
        call = self._method("unary_stream", "/v3electionpb.Election/Observe",
                            "v3electionpb.LeaderResponse")
        return call(MSG("v3electionpb.LeaderRequest")(name=name), timeout=timeout)

    def resign(self, leader):
        call = self._method("unary_unary", "/v3electionpb.Election/Resign",
                            "v3electionpb.ResignResponse")
        return call(MSG("v3electionpb.ResignRequest")(leader=leader), timeout=10)

    def close(self):
        self.channel.close()


@pytest.fixture
def rpc(server):
    r = Rpc(server)
    yield r
    r.close()


def test_lock_and_election_over_grpc(rpc, gw):
    held = rpc.lock(b"g")
    assert held.key.startswith(b"g/") and held.header.revision == gw.rev()
    # A caller that gives up (its deadline) stops waiting and its key goes.
    with pytest.raises(grpc.RpcError) as e:
        rpc.lock(b"g", timeout=1)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for_keys(gw, "g/", 1, timeout=5) == [held.key.decode()]
    assert gw.rev() == held.header.revision + 2
    with pytest.raises(grpc.RpcError) as e:
        rpc.lock(b"g", lease=12345)
    assert (e.value.code(), e.value.details()) == (
        grpc.StatusCode.UNKNOWN, "etcdserver: requested lease not found")

    # The lock's key leads an election of the same name: one layout.
    observed = rpc.observe(b"g")
    first = next(observed)
    assert first.kv.key == held.key and first.header.revision == gw.rev()
    waiter = Background(lambda: rpc.campaign(b"g", b"next"))
    assert still_waiting(waiter)
    unlocked = rpc.unlock(held.key)
    won = waiter.result()
    assert won.leader.name == b"g" and won.leader.key.startswith(b"g/")
    assert won.leader.rev == won.header.revision < unlocked.header.revision
    second = next(observed)
    assert (second.kv.key, second.kv.value) == (won.leader.key, b"next")
    assert second.header.revision == unlocked.header.revision
    resigned = rpc.resign(won.leader)
    assert resigned.header.revision == unlocked.header.revision + 1
    observed.cancel()
    assert keys_under(gw, "g/") == []


# ---------------------------------------------------------------------------
# etcdctl elect: one leader at a time, observed

def test_etcdctl_elect_one_leader_at_a_time(ctl, gw):
    observer = ctl.popen("elect", "-l", "pick")
    time.sleep(0.5)
    first = ctl.popen("elect", "pick", "v1")
    assert line(first).startswith("pick/") and line(first) == "v1\n"
    second = ctl.popen("elect", "pick", "v2")
    assert still_waiting(second, 1.5)
    leader = gw.call("/election/leader", {"name": b64("pick")})
    assert unb64(leader["kv"]["value"]) == b"v1"

    # The first dies without resigning: the second leads once its lease is gone.
    first.kill()
    first.wait()
    gw.call("/lease/revoke", {"ID": leader["kv"]["lease"]})
    assert line(second).startswith("pick/") and line(second) == "v2\n"
    assert unb64(gw.call("/election/leader", {"name": b64("pick")})["kv"]["value"]) == b"v2"

    # Interrupted, it resigns: no leader.
    second.send_signal(signal.SIGINT)
    assert second.wait(timeout=15) == 0
    assert error(gw, "/election/leader", {"name": b64("pick")})[0] == 500
    observer.send_signal(signal.SIGINT)
    out, _ = observer.communicate(timeout=15)
    lines = out.split("\n")
    assert [lines[1], lines[3]] == ["v1", "v2"] and lines[0] != lines[2], out


# ---------------------------------------------------------------------------
# The Election service through the gateway

def test_election_gateway_answers_as_etcd(gw, server):
    assert error(gw, "/election/leader", {"name": b64("E")}) == (500, {
        "error": "election: no leader", "message": "election: no leader", "code": 2})
    for path in ("/election/proclaim", "/election/resign"):
        assert error(gw, path, {}) == (500, {
            "error": '"leader" field must be provided',
            "message": '"leader" field must be provided', "code": 2})
    # Observing before anyone leads: nothing (not even the HTTP head) until the first does.
    opening = Background(lambda: ChunkedStream(server.client_port, "/v3/election/observe",
                                               {"name": b64("E")}, timeout=20))
    assert still_waiting(opening, 0.5)
    observe = None
    try:
        a, b = grant(gw, 60), grant(gw, 60)
        def seen():
            m = observe.message(timeout=10)["result"]
            return unb64(m["kv"]["value"]), rev(m)

        c1 = gw.call("/election/campaign", {"name": b64("E"), "lease": a, "value": b64("one")})
        r1 = rev(c1)
        l1 = c1["leader"]
        assert l1 == {"name": b64("E"), "key": b64("E/%x" % int(a)), "rev": str(r1), "lease": a}
        observe = opening.result()
        assert seen() == (b"one", r1)
        c2 = Background(lambda: post(server, "/election/campaign",
                                     {"name": b64("E"), "lease": b, "value": b64("two")}))
        assert still_waiting(c2)
        proclaimed = gw.call("/election/proclaim", {"leader": l1, "value": b64("one-b")})
        assert rev(proclaimed) == r1 + 2
        assert seen() == (b"one-b", r1 + 2)
        for wrong in (dict(l1, rev="1"), dict(l1, key=b64("E/zz"))):
            assert error(gw, "/election/proclaim", {"leader": wrong, "value": b64("x")}) == (500, {
                "error": "election: not leader", "message": "election: not leader", "code": 2})
        # Resigning what one does not lead changes nothing.
        assert rev(gw.call("/election/resign", {"leader": dict(l1, rev="1")})) == r1 + 2
        leader = gw.call("/election/leader", {"name": b64("E")})
        assert leader["kv"]["value"] == b64("one-b") and leader["kv"]["version"] == "2"
        resigned = gw.call("/election/resign", {"leader": l1})
        assert rev(resigned) == r1 + 3
        # The campaign's answer carries the header of its put, not of its win.
        won = c2.result()
        assert rev(won) == r1 + 1 and won["leader"]["rev"] == str(r1 + 1)
        assert seen() == (b"two", r1 + 3)
        assert error(gw, "/election/proclaim", {"leader": l1, "value": b64("x")})[0] == 500

        # Campaigning again with the same lease keeps the place and proclaims the value.
        again = gw.call("/election/campaign", {"name": b64("E"), "lease": b, "value": b64("two-b")})
        assert again["leader"] == won["leader"] and rev(again) == r1 + 3
        assert seen() == (b"two-b", r1 + 4)
        # A LeaderKey without a lease makes Proclaim start a session: a new 60 s lease.
        gw.call("/election/proclaim", {"leader": dict(won["leader"], lease="0"),
                                       "value": b64("two-c")})
        [kv] = gw.get("E/%x" % int(b))["kvs"]
        assert kv["lease"] not in (a, b) and unb64(kv["value"]) == b"two-c"
        assert gw.call("/lease/timetolive", {"ID": kv["lease"]})["grantedTTL"] == "60"
        assert seen() == (b"two-c", r1 + 5)
        gw.call("/lease/revoke", {"ID": kv["lease"]})
        c3 = gw.call("/election/campaign", {"name": b64("E"), "lease": a, "value": b64("three")})
        assert rev(c3) == r1 + 7
        assert seen() == (b"three", r1 + 7)
    finally:
        if observe:
            observe.close()


def test_a_candidate_that_hangs_up_resigns(gw, server):
    leader = gw.call("/election/campaign", {"name": b64("Q"), "value": b64("a")})
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(server.url + "/v3/election/campaign",
                      json={"name": b64("Q"), "value": b64("b")}, timeout=1)
    assert wait_for_keys(gw, "Q/", 1, timeout=5) == [unb64(leader["leader"]["key"]).decode()]
    assert gw.rev() == rev(leader) + 2, "the candidate's key was not put, then deleted"


def test_a_waiter_on_one_member_gets_a_lock_unlocked_through_another(fleet):
    members = fleet.cluster(3)
    gws = [Gateway(m) for m in members]
    try:
        held = gws[0].call("/lock/lock", {"name": b64("spread")})
        waiter = Background(lambda: post(members[1], "/lock/lock", {"name": b64("spread")}))
        assert still_waiting(waiter)
        observed = Background(lambda: post(members[2], "/election/leader", {"name": b64("spread")}))
        assert observed.result()["kv"]["key"] == held["key"]
        unlocked = gws[2].call("/lock/unlock", {"key": held["key"]})
        got = waiter.result()
        assert rev(got) >= rev(unlocked) and got["key"] != held["key"]
        assert keys_under(gws[1], "spread/") == [unb64(got["key"]).decode()]
    finally:
        for g in gws:
            g.close()


# ---------------------------------------------------------------------------
# With auth on, every step runs with the caller's token, as etcd's services do

def test_lock_and_election_act_with_the_callers_permissions(gw, ctl, rpc):
    for args in (("user", "add", "root:root"), ("user", "add", "bob:bob"), ("role", "add", "r"),
                 ("role", "grant-permission", "r", "readwrite", "--prefix=true", "ok/"),
                 ("user", "grant-role", "bob", "r"), ("auth", "enable")):
        ctl(*args)

    def refused(message, path, body, token=None):
        r = gw.http.post(gw.server.url + "/v3" + path, json=body, timeout=10,
                         headers={"Authorization": token} if token else {})
        assert (r.status_code, r.json()) == (500, {"error": message, "message": message, "code": 2})

    token = gw.call("/auth/authenticate", {"name": "bob", "password": "bob"})["token"]
    refused("etcdserver: user name is empty", "/lock/lock", {"name": b64("ok")})
    refused("etcdserver: invalid auth token", "/election/leader", {"name": b64("ok")}, "bad")
    refused("etcdserver: permission denied", "/lock/lock", {"name": b64("no")}, token)
    refused("etcdserver: permission denied", "/election/leader", {"name": b64("no")}, token)

    r = gw.http.post(gw.server.url + "/v3/lock/lock", json={"name": b64("ok")}, timeout=10,
                     headers={"Authorization": token})
    assert r.status_code == 200 and unb64(r.json()["key"]).startswith(b"ok/"), r.text
    held = rpc.lock(b"ok/grpc", metadata=(("token", token),))
    assert held.key.startswith(b"ok/grpc/")
    with pytest.raises(grpc.RpcError) as e:
        rpc.lock(b"ok/grpc")
    assert (e.value.code(), e.value.details()) == (
        grpc.StatusCode.UNKNOWN, "etcdserver: user name is empty")


# ---------------------------------------------------------------------------
# The client libraries' own locks: which layouts meet

JS_DIR = os.path.join(REPO, "tests", "js")
NPM_LOCK = r"""
const { Etcd3, EtcdLockFailedError } = require('etcd3');
const [endpoint, name] = process.argv.slice(2);
const client = new Etcd3({ hosts: endpoint, dialTimeout: 5000 });
const lock = client.lock(name).ttl(30);
lock.acquire().then(() => {
  console.log('held');
  process.stdin.once('data', () => lock.release().then(() => {
    console.log('released');
    client.close();
    process.exit(0);
  }));
}, e => {
  console.log(e instanceof EtcdLockFailedError ? 'failed' : 'error ' + e);
  client.close();
});
"""


class NpmLock:
    """npm etcd3's lock(name) held by a node process until release()."""

    def __init__(self, server, name, tmp_path):
        script = tmp_path / "npm_lock.js"
        script.write_text(NPM_LOCK)
        env = dict(os.environ, NODE_PATH=os.path.join(JS_DIR, "node_modules"))
        self.proc = subprocess.Popen([shutil.which("node"), str(script), server.url, name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)
        self.state = line(self.proc).strip()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def release(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert line(self.proc).strip() == "released"
        self.proc.wait(timeout=15)


def test_client_locks_use_their_own_layouts(server, gw, ctl, tmp_path):
    assert shutil.which("node") and os.path.isdir(os.path.join(JS_DIR, "node_modules", "etcd3")), \
        "npm etcd3 is missing: (cd tests/js && npm ci)"
    py = etcd3.client(host="127.0.0.1", port=server.client_port, timeout=10)
    npm = npm_locks = None
    try:
        # On one name, none of the three excludes another: three keys.
        mine = py.lock("same", ttl=30)
        assert mine.acquire(timeout=5)
        npm = NpmLock(server, "same", tmp_path)
        assert npm.state == "held"
        out = ctl("lock", "same", "--", "echo", "etcdctl too")
        assert out == "etcdctl too\n"
        assert py.get("/locks/same")[0] == mine.uuid and py.get("same")[1] is not None

        # npm's lock("/locks/same") is python's lock("same").
        npm_locks = NpmLock(server, "/locks/same", tmp_path)
        assert npm_locks.state == "failed"
        npm_locks.proc.wait(timeout=15)

        # etcdctl's lock "/locks" waits for every older key under /locks/, python's too.
        waiter = ctl.popen("lock", "/locks", "--", "echo", "after python")
        assert still_waiting(waiter, 1.5), "etcdctl lock /locks did not wait for /locks/same"
        assert mine.release()
        out, err = waiter.communicate(timeout=15)
        assert waiter.returncode == 0 and out == "after python\n", (out, err)
        npm.release()
    finally:
        py.close()
        for n in (npm, npm_locks):
            if n:
                n.kill()
