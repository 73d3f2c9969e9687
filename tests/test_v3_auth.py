"""v3 auth against the target: etcdctl's user/role/auth commands, an RBAC matrix over
every KV, Txn, Watch and Lease RPC (python `etcd3`'s gRPC stubs with each user's token),
the JSON gateway with `Authorization` (raw and through etcd3gw), and a token used on a
member other than the one that issued it.

The expected answers are etcd 3.4.23's, taken by running this file with
MUSUBI_TEST_TARGET=etcd. Where musubi deliberately checks more than etcd 3.4.23 (nested
Txns, LeaseTimeToLive with keys: both fixed in later etcd releases), MUSUBI_ONLY marks the
cell and etcd's own answer is written beside it.
"""

import re
import time

import etcd3
import etcd3gw
import grpc
import pytest
import requests
from etcd3 import etcdrpc
from etcd3.etcdrpc import rpc_pb2

import harness
from v3util import Ctl3, Gateway, b64

ROOT = "root:rootpw"


def ctl_lines(ctl, *args, rc=0, stdin=None):
    """etcdctl's stdout, or with rc != 0 its last stderr line (`Error: ...`)."""
    code, out, err = ctl.run(*args, stdin=stdin)
    assert code == rc, (args, code, out, err)
    return out if rc == 0 else err.strip().splitlines()[-1]


def test_etcdctl_user_role_and_auth_commands(target):
    c = Ctl3(target)
    assert ctl_lines(c, "user", "add", ROOT) == "User root created\n"
    # etcdctl adds the root role itself when AuthEnable says it is missing.
    assert ctl_lines(c, "auth", "enable") == "Authentication Enabled\n"
    assert ctl_lines(c, "role", "add", "r", rc=1) == "Error: etcdserver: user name is empty"
    u = ("--user", ROOT)
    assert ctl_lines(c, *u, "user", "add", "alice:apw") == "User alice created\n"
    assert ctl_lines(c, *u, "user", "add", "alice:x", rc=1) == \
        "Error: etcdserver: user name already exists"
    assert ctl_lines(c, *u, "user", "add", "nopw", "--no-password") == "User nopw created\n"
    assert ctl_lines(c, *u, "role", "add", "r") == "Role r created\n"
    assert ctl_lines(c, *u, "role", "add", "r", rc=1) == "Error: etcdserver: role name already exists"
    assert ctl_lines(c, *u, "role", "grant-permission", "r", "read", "a", "c") == "Role r updated\n"
    assert ctl_lines(c, *u, "role", "grant-permission", "r", "readwrite", "p/", "--prefix") == \
        "Role r updated\n"
    assert ctl_lines(c, *u, "role", "grant-permission", "r", "write", "z", "--from-key") == \
        "Role r updated\n"
    want_role = ("Role r\nKV Read:\n\t[a, c)\n\t[p/, p0) (prefix p/)\n"
                 "KV Write:\n\t[p/, p0) (prefix p/)\n\t[z, <open ended>\n")
    assert ctl_lines(c, *u, "role", "get", "r") == want_role
    assert ctl_lines(c, *u, "user", "grant-role", "alice", "r") == "Role r is granted to user alice\n"
    # Granting it again is not an error.
    assert ctl_lines(c, *u, "user", "grant-role", "alice", "r") == "Role r is granted to user alice\n"
    assert ctl_lines(c, *u, "user", "get", "alice") == "User: alice\nRoles: r\n"
    assert ctl_lines(c, *u, "user", "list") == "alice\nnopw\nroot\n"
    assert ctl_lines(c, *u, "role", "list") == "r\nroot\n"
    # A user may read itself and its roles, nothing else, and may not change a password.
    a = ("--user", "alice:apw")
    assert ctl_lines(c, *a, "user", "get", "alice") == "User: alice\nRoles: r\n"
    assert ctl_lines(c, *a, "role", "get", "r") == want_role
    assert ctl_lines(c, *a, "user", "get", "root", rc=1) == "Error: etcdserver: permission denied"
    assert ctl_lines(c, *a, "user", "list", rc=1) == "Error: etcdserver: permission denied"
    assert ctl_lines(c, *a, "user", "passwd", "alice", "--interactive=false", stdin="n\n",
                     rc=1) == "Error: etcdserver: permission denied"
    assert ctl_lines(c, *a, "auth", "disable", rc=1) == "Error: etcdserver: permission denied"
    # Keys: read [a, c), read-write p/*, write from z on.
    assert ctl_lines(c, *a, "put", "p/x", "1") == "OK\n"
    assert ctl_lines(c, *a, "get", "p/x", "--print-value-only") == "1\n"
    assert ctl_lines(c, *a, "get", "a", "c") == ""
    assert ctl_lines(c, *a, "get", "a", "d", rc=1) == "Error: etcdserver: permission denied"
    assert ctl_lines(c, *a, "put", "b", "1", rc=1) == "Error: etcdserver: permission denied"
    assert ctl_lines(c, *a, "put", "zz", "1") == "OK\n"
    assert ctl_lines(c, *a, "get", "zz", rc=1) == "Error: etcdserver: permission denied"
    assert ctl_lines(c, "get", "b", rc=1) == "Error: etcdserver: user name is empty"
    failed = "Error: etcdserver: authentication failed, invalid user ID or password"
    assert ctl_lines(c, "--user", "alice:wrong", "get", "b", rc=2) == failed
    assert ctl_lines(c, "--user", "bob:x", "get", "b", rc=2) == failed
    # Management errors.
    assert ctl_lines(c, *u, "user", "revoke-role", "alice", "nope", rc=1) == \
        "Error: etcdserver: role is not granted to the user"
    assert ctl_lines(c, *u, "role", "revoke-permission", "r", "x", rc=1) == \
        "Error: etcdserver: permission is not granted to the role"
    assert ctl_lines(c, *u, "role", "revoke-permission", "r", "a", "c") == \
        "Permission of range [a, c) is revoked from role r\n"
    assert ctl_lines(c, *u, "role", "get", "nope", rc=1) == "Error: etcdserver: role name not found"
    assert ctl_lines(c, *u, "user", "get", "nope", rc=1) == "Error: etcdserver: user name not found"
    assert ctl_lines(c, *u, "user", "delete", "root", rc=1) == \
        "Error: etcdserver: invalid auth management"
    assert ctl_lines(c, *u, "role", "delete", "root", rc=1) == \
        "Error: etcdserver: invalid auth management"
    assert ctl_lines(c, *u, "user", "revoke-role", "root", "root", rc=1) == \
        "Error: etcdserver: invalid auth management"
    # A new password ends the old one's tokens and logins.
    assert ctl_lines(c, *u, "user", "passwd", "alice", "--interactive=false", stdin="apw2\n") == \
        "Password updated\n"
    assert ctl_lines(c, *a, "get", "p/x", rc=2) == failed
    assert ctl_lines(c, "--user", "alice:apw2", "get", "p/x", "--print-value-only") == "1\n"
    assert ctl_lines(c, *u, "user", "revoke-role", "alice", "r") == "Role r is revoked from user alice\n"
    assert ctl_lines(c, *u, "role", "delete", "r") == "Role r deleted\n"
    assert ctl_lines(c, *u, "user", "delete", "alice") == "User alice deleted\n"
    assert ctl_lines(c, *u, "auth", "disable") == "Authentication Disabled\n"
    # Off: no token needed, and management is open again.
    assert ctl_lines(c, "get", "b") == ""
    assert ctl_lines(c, "user", "list") == "nopw\nroot\n"


# ---- the RBAC matrix -------------------------------------------------------------------

# Each user's role holds one permission on the prefix "in/".
USERS = {"ro": "read", "wo": "write", "rw": "readwrite", "none": None}
IN, OUT = b"in/k", b"out/k"
OK = "ok"
DENIED = "PERMISSION_DENIED: etcdserver: permission denied"
EMPTY = "INVALID_ARGUMENT: etcdserver: user name is empty"
BAD_TOKEN = "UNAUTHENTICATED: etcdserver: invalid auth token"
WATCH_DENIED = ("canceled: rpc error: code = PermissionDenied desc = "
                "etcdserver: permission denied")
WATCH_DENIED = "canceled: rpc error: code = PermissionDenied desc = etcdserver: permission denied"


def put_req(key, **kw):
    return rpc_pb2.PutRequest(key=key, value=b"v", **kw)


def txn(compare=(), success=(), failure=()):
    return rpc_pb2.TxnRequest(compare=list(compare), success=list(success),
                              failure=list(failure))


def op_put(key):
    return rpc_pb2.RequestOp(request_put=put_req(key))


def op_range(key):
    return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))


def prefix_end(key):
    p = key[:key.index(b"/") + 1]
    return p, p[:-1] + bytes([p[-1] + 1])


class Rpcs:
    """Every checked RPC, on `key`, with `metadata` (a user's token or none)."""

    def __init__(self, client, leases):
        self.c, self.leases = client, leases

    def call(self, stub, method, req, md):
        try:
            getattr(stub, method)(req, 10, metadata=md)
            return OK
        except grpc.RpcError as e:
            return "%s: %s" % (e.code().name, e.details())

    def run(self, name, key, md):
        c, kv = self.c, self.c.kvstub
        p, e = prefix_end(key)
        if name == "range":
            return self.call(kv, "Range", rpc_pb2.RangeRequest(key=key), md)
        if name == "range_prefix":
            return self.call(kv, "Range", rpc_pb2.RangeRequest(key=p, range_end=e), md)
        if name == "put":
            return self.call(kv, "Put", put_req(key), md)
        if name == "put_prev_kv":
            return self.call(kv, "Put", put_req(key, prev_kv=True), md)
        if name == "delete":
            return self.call(kv, "DeleteRange", rpc_pb2.DeleteRangeRequest(key=key), md)
        if name == "delete_prefix_prev_kv":
            return self.call(kv, "DeleteRange", rpc_pb2.DeleteRangeRequest(
                key=p + b"none", range_end=e, prev_kv=True), md)
        if name == "txn_compare_put":
            cmp = rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.VERSION,
                                  result=rpc_pb2.Compare.GREATER, version=-1)
            return self.call(kv, "Txn", txn([cmp], [op_put(key)]), md)
        if name == "txn_read":
            return self.call(kv, "Txn", txn(success=[op_range(key)]), md)
        if name == "nested_txn":
            inner = rpc_pb2.RequestOp(request_txn=txn(success=[op_put(key)]))
            return self.call(kv, "Txn", txn(success=[inner]), md)
        if name == "lease_revoke":
            lease = self.leases(key)
            return self.call(c.leasestub, "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lease), md)
        if name == "timetolive_keys":
            lease = self.leases(key)
            return self.call(c.leasestub, "LeaseTimeToLive",
                             rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True), md)
        if name == "lease_grant":
            return self.call(c.leasestub, "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=60), md)
        if name == "watch":
            return watch_first(c, key, md)
        raise AssertionError(name)


def watch_first(c, key, md):
    """The first reply to a watch create: ok, or how it was canceled."""
    create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key))
    stream = etcdrpc.WatchStub(c.channel).Watch(iter([create]), 10, metadata=md)
    try:
        first = next(stream)
    except grpc.RpcError as e:
        return "%s: %s" % (e.code().name, e.details())
    finally:
        stream.cancel()
    if first.canceled:
        assert first.created and first.watch_id == -1, first
        return "canceled: " + first.cancel_reason
    return OK


# etcd 3.4.23's answers: MATRIX[rpc][user] = (inside "in/", outside).
MATRIX = {
    "range": {"ro": (OK, DENIED), "wo": (DENIED, DENIED), "rw": (OK, DENIED), "none": (DENIED, DENIED)},
    "range_prefix": {"ro": (OK, DENIED), "wo": (DENIED, DENIED), "rw": (OK, DENIED), "none": (DENIED, DENIED)},
    "put": {"ro": (DENIED, DENIED), "wo": (OK, DENIED), "rw": (OK, DENIED), "none": (DENIED, DENIED)},
    "put_prev_kv": {"ro": (DENIED, DENIED), "wo": (DENIED, DENIED), "rw": (OK, DENIED), "none": (DENIED, DENIED)},
    "delete": {"ro": (DENIED, DENIED), "wo": (OK, DENIED), "rw": (OK, DENIED), "none": (DENIED, DENIED)},
    "delete_prefix_prev_kv": {"ro": (DENIED, DENIED), "wo": (DENIED, DENIED), "rw": (OK, DENIED), "none": (DENIED, DENIED)},
    "txn_compare_put": {"ro": (DENIED, DENIED), "wo": (DENIED, DENIED), "rw": (OK, DENIED), "none": (DENIED, DENIED)},
    "txn_read": {"ro": (OK, DENIED), "wo": (DENIED, DENIED), "rw": (OK, DENIED), "none": (DENIED, DENIED)},
    # etcd 3.4.23 checks only a Txn's own ops, and LeaseTimeToLive not at all.
    "nested_txn": {"ro": (OK, OK), "wo": (OK, OK), "rw": (OK, OK), "none": (OK, OK)},
    "lease_revoke": {"ro": (DENIED, DENIED), "wo": (OK, DENIED), "rw": (OK, DENIED), "none": (DENIED, DENIED)},
    "timetolive_keys": {"ro": (OK, OK), "wo": (OK, OK), "rw": (OK, OK), "none": (OK, OK)},
    "lease_grant": {"ro": (OK, OK), "wo": (OK, OK), "rw": (OK, OK), "none": (OK, OK)},
    "watch": {"ro": (OK, WATCH_DENIED), "wo": (WATCH_DENIED, WATCH_DENIED), "rw": (OK, WATCH_DENIED),
              "none": (WATCH_DENIED, WATCH_DENIED)},
}


def watch_canceled(code, message):
    return "canceled: rpc error: code = %s desc = etcdserver: %s" % (code, message)


# Without a token, and with one no member issued.
ANONYMOUS = {name: (EMPTY, BAD_TOKEN) for name in MATRIX}
ANONYMOUS["lease_grant"] = (OK, BAD_TOKEN)
ANONYMOUS["nested_txn"] = (OK, BAD_TOKEN)
ANONYMOUS["timetolive_keys"] = (OK, OK)
ANONYMOUS["watch"] = (watch_canceled("InvalidArgument", "user name is empty"),
                      watch_canceled("Unauthenticated", "invalid auth token"))

# Where musubi answers otherwise, on purpose: it checks every op of nested Txns, and read
# on the keys LeaseTimeToLive shows, as later etcd releases do (docs/v3-api.md, "Auth").
MUSUBI = {("nested_txn", u, w): a for u, (i, o) in MATRIX["put"].items()
          for w, a in (("in", i), ("out", o))}
MUSUBI.update({("timetolive_keys", u, w): a for u, (i, o) in MATRIX["range"].items()
               for w, a in (("in", i), ("out", o))})
MUSUBI[("nested_txn", "-", "no token")] = EMPTY
MUSUBI[("timetolive_keys", "-", "no token")] = EMPTY
MUSUBI[("timetolive_keys", "-", "bad token")] = BAD_TOKEN


def expected(cell, etcd_answer):
    if harness.target_kind() == "etcd":
        return etcd_answer
    return MUSUBI.get(cell, etcd_answer)


@pytest.fixture
def secured(target):
    """The target with auth on: root, and one user per USERS entry (password = name)."""
    c = Ctl3(target)
    c("user", "add", ROOT)
    c("auth", "enable")
    u = ("--user", ROOT)
    for name, perm in USERS.items():
        c(*u, "user", "add", "%s:%s" % (name, name))
        c(*u, "role", "add", "role-" + name)
        if perm:
            c(*u, "role", "grant-permission", "role-" + name, perm, "in/", "--prefix")
        c(*u, "user", "grant-role", name, "role-" + name)
    return target


def login(client, user, password):
    """The gRPC metadata of `user`'s token (python etcd3 sends its own token only over
    TLS, so the token is asked for and passed by hand)."""
    req = rpc_pb2.AuthenticateRequest(name=user, password=password)
    return (("token", etcdrpc.AuthStub(client.channel).Authenticate(req, 10).token),)


def test_rbac_matrix(secured):
    client = etcd3.client(host="127.0.0.1", port=secured.client_port, timeout=10)
    root = login(client, "root", "rootpw")

    def leases(key):
        """A fresh lease with `key` attached (by root)."""
        lease = client.leasestub.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=600), 10,
                                            metadata=root).ID
        client.kvstub.Put(put_req(key, lease=lease), 10, metadata=root)
        return lease

    rpcs = Rpcs(client, leases)
    got, want = {}, {}
    for user in USERS:
        md = login(client, user, user)
        for name, cells in MATRIX.items():
            for where, key, answer in (("in", IN, cells[user][0]), ("out", OUT, cells[user][1])):
                got[(name, user, where)] = rpcs.run(name, key, md)
                want[(name, user, where)] = expected((name, user, where), answer)
    for name, (no_token, bad_token) in ANONYMOUS.items():
        for who, md, answer in (("no token", None, no_token),
                                ("bad token", (("token", "XyZXyZXyZXyZXyZX.99"),), bad_token)):
            got[(name, "-", who)] = rpcs.run(name, IN, md)
            want[(name, "-", who)] = expected((name, "-", who), answer)
    wrong = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert not wrong, "\n".join("%s: got %r, want %r" % (k, g, w) for k, (g, w) in wrong.items())


def test_root_only_and_open_rpcs(secured):
    c = etcd3.client(host="127.0.0.1", port=secured.client_port, timeout=10)
    ro = login(c, "ro", "ro")
    rpcs = Rpcs(c, None)
    # Open to anyone (etcd 3.4): Compact, MemberList, LeaseLeases; a bad token does not
    # matter to the reads.
    bad = (("token", "XyZXyZXyZXyZXyZX.99"),)
    compacted = "OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted"
    for md in (ro, None):
        assert rpcs.call(c.kvstub, "Compact", rpc_pb2.CompactionRequest(revision=1), md) in (
            OK, compacted)
        assert rpcs.call(c.clusterstub, "MemberList", rpc_pb2.MemberListRequest(), md) == OK
        assert rpcs.call(c.leasestub, "LeaseLeases", rpc_pb2.LeaseLeasesRequest(), md) == OK
    if harness.target_kind() != "etcd":
        # etcd 3.4.23 leaves this call hanging until its deadline; musubi refuses it.
        assert rpcs.call(c.kvstub, "Compact", rpc_pb2.CompactionRequest(revision=1),
                         bad) == BAD_TOKEN
    assert rpcs.call(c.clusterstub, "MemberList", rpc_pb2.MemberListRequest(), bad) == OK
    assert rpcs.call(c.leasestub, "LeaseLeases", rpc_pb2.LeaseLeasesRequest(), bad) == OK


def test_member_and_maintenance_rpcs_need_root(secured):
    c = etcd3.client(host="127.0.0.1", port=secured.client_port, timeout=10)
    ro, root = login(c, "ro", "ro"), login(c, "root", "rootpw")
    rpcs = Rpcs(c, None)
    m = c.maintenancestub
    member_add = (c.clusterstub, "MemberAdd", rpc_pb2.MemberAddRequest(
        peerURLs=["http://127.0.0.1:1"]))
    member_remove = (c.clusterstub, "MemberRemove", rpc_pb2.MemberRemoveRequest(ID=1))
    for stub, method, req in (member_add, member_remove):
        assert rpcs.call(stub, method, req, None) == EMPTY
        assert rpcs.call(stub, method, req, ro) == DENIED
    # The Maintenance service answers with the auth store's own errors, as code Unknown.
    for method, req in (("Hash", rpc_pb2.HashRequest()),
                        ("HashKV", rpc_pb2.HashKVRequest()),
                        ("Defragment", rpc_pb2.DefragmentRequest())):
        assert rpcs.call(m, method, req, None) == "UNKNOWN: auth: user name is empty", method
        assert rpcs.call(m, method, req, ro) == "UNKNOWN: auth: permission denied", method
    # MoveLeader checks nothing of the caller in etcd 3.4 (it has to be a member's own
    # leader to act): to the leader itself it is a no-op for anyone.
    me = c.clusterstub.MemberList(rpc_pb2.MemberListRequest(), 10).header.member_id
    for md in (None, ro):
        assert rpcs.call(m, "MoveLeader", rpc_pb2.MoveLeaderRequest(targetID=me), md) == OK
    assert rpcs.call(m, "Hash", rpc_pb2.HashRequest(), root) == OK
    assert rpcs.call(m, "HashKV", rpc_pb2.HashKVRequest(), root) == OK
    # Open to anyone: Status and listing alarms.
    for md in (None, ro):
        assert rpcs.call(m, "Status", rpc_pb2.StatusRequest(), md) == OK
        assert rpcs.call(m, "Alarm", rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET),
                         md) == OK


# ---- the gateway ----------------------------------------------------------------------

def test_gateway_authenticate_then_authorization_header(secured):
    gw = Gateway(secured)
    r = gw.raw("/auth/authenticate", {"name": "rw", "password": "wrong"})
    assert r.status_code == 400
    assert r.json()["error"] == "etcdserver: authentication failed, invalid user ID or password"
    token = gw.call("/auth/authenticate", {"name": "rw", "password": "rw"})["token"]
    assert re.fullmatch(r"[A-Za-z]{16}\.\d+", token)
    url = secured.url + "/v3/kv/put"
    body = {"key": b64("in/a"), "value": b64("1")}
    r = requests.post(url, json=body, timeout=10)
    assert (r.status_code, r.json()["error"]) == (400, "etcdserver: user name is empty")
    r = requests.post(url, json=body, headers={"Authorization": "bogus.1"}, timeout=10)
    assert (r.status_code, r.json()["error"]) == (401, "etcdserver: invalid auth token")
    r = requests.post(url, json=body, headers={"Authorization": token}, timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(url, json={"key": b64("out/a"), "value": b64("1")},
                      headers={"Authorization": token}, timeout=10)
    assert (r.status_code, r.json()["error"]) == (403, "etcdserver: permission denied")
    r = requests.post(secured.url + "/v3/auth/user/list", json={},
                      headers={"Authorization": token}, timeout=10)
    assert (r.status_code, r.json()["code"]) == (403, 7)
    root = gw.call("/auth/authenticate", {"name": "root", "password": "rootpw"})["token"]
    r = requests.post(secured.url + "/v3/auth/user/list", json={},
                      headers={"Authorization": root}, timeout=10)
    assert r.status_code == 200 and r.json()["users"] == ["none", "ro", "root", "rw", "wo"]
    r = requests.post(secured.url + "/v3/auth/role/get", json={"role": "role-rw"},
                      headers={"Authorization": root}, timeout=10)
    assert r.json()["perm"] == [{"permType": "READWRITE", "key": b64("in/"),
                                 "range_end": b64("in0")}]


def test_etcd3gw_with_a_token(secured):
    # etcd3gw 2.7.0 takes no user or password: its session carries the token.
    token = Gateway(secured).call("/auth/authenticate", {"name": "rw", "password": "rw"})["token"]
    session = requests.Session()
    session.headers["Authorization"] = token
    gw = etcd3gw.client(host="127.0.0.1", port=secured.client_port, timeout=10, session=session)
    assert gw.put("in/gw", "x")
    assert gw.get("in/gw") == [b"x"]
    with pytest.raises(Exception):
        gw.get("out/gw")


# ---- tokens across members --------------------------------------------------------------

def test_a_token_is_accepted_by_every_member(fleet):
    members = fleet.cluster(3)
    c = Ctl3(members[0])
    c("user", "add", ROOT)
    c("auth", "enable")
    c("--user", ROOT, "put", "k", "v")
    token = Gateway(members[0]).call(
        "/auth/authenticate", {"name": "root", "password": "rootpw"})["token"]
    for m in members[1:]:
        deadline = time.time() + 10
        while True:
            r = requests.post(m.url + "/v3/kv/range", json={"key": b64("k")},
                              headers={"Authorization": token}, timeout=10)
            if r.status_code == 200 or time.time() > deadline:
                break
            time.sleep(0.1)  # the member may not have applied the login yet
        assert r.status_code == 200, r.text
        assert r.json()["kvs"][0]["value"] == b64("v")


def test_a_token_lives_auth_token_ttl_after_its_last_use(fleet):
    server = fleet.target(extra_args=["--auth-token-ttl", "3"]).start()
    c = Ctl3(server)
    c("user", "add", ROOT)
    c("auth", "enable")
    gw = Gateway(server)

    def login():
        return gw.call("/auth/authenticate", {"name": "root", "password": "rootpw"})["token"]

    def status(token):
        return requests.post(server.url + "/v3/kv/range", json={"key": b64("k")},
                             headers={"Authorization": token}, timeout=10).status_code

    # In use every half second for three TTLs: it lives on.
    busy = login()
    for _ in range(18):
        assert status(busy) == 200
        time.sleep(0.5)
    # Left alone for more than its TTL: gone.
    idle = login()
    assert status(idle) == 200
    time.sleep(5)
    assert status(idle) == 401
