"""`musubi kv --api 3` against Debian's etcdctl 3.4 (ETCDCTL_API=3): the same command lines
through both tools, exit codes, stdout and stderr compared.

Two ways to run a step:
- `same`: both tools against one server, for commands that change nothing (member list,
  endpoint status, errors found before any request is sent...).
- `twin`: etcdctl against server A, musubi against server B, two fresh servers of the
  target's kind given the same writes in the same order, so revisions agree and every
  write can be checked.
What legitimately differs is normalised on each side: the server's ports, IDs (16 hex digits, or the decimal
`ID`/`id`/`leader`/`memberID`/`member_id` in JSON) become {I1}, {I2}... in order of first
appearance, `cluster_id` and `raft_term` are masked, `took` durations too, and etcdctl's
JSON warning log lines on stderr are dropped (musubi writes none). Usage errors from the
argument parser (cobra vs clap) differ in wording: only their exit code is compared
(`codes_only`).

TLS (`--cacert`, `--cert`/`--key`, `--insecure-skip-tls-verify`) uses test_tls.py's
certificates and servers.

Runs against musubi and, with MUSUBI_TEST_TARGET=etcd, with both servers etcd 3.4.
"""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from harness import ETCDCTL_BIN, free_port, musubi_bin
from test_tls import cert_auth, context, pki, start  # noqa: F401 (pki is a fixture)

TIMEOUT = ["--command-timeout", "10s"]


def env():
    e = dict(os.environ, ETCDCTL_API="3")
    for k in list(e):
        if k.startswith("ETCDCTL_") and k != "ETCDCTL_API":
            del e[k]
    return e


def argv(tool, server, args):
    prog = [ETCDCTL_BIN] if tool == "etcdctl" else [musubi_bin(), "kv"]
    # Both tools add a repeated --endpoints to the first: a test's own list stands alone.
    endpoint = [] if "--endpoints" in args else ["--endpoints", address(server)]
    return prog + endpoint + TIMEOUT + list(args)


def address(server):
    """host:port, etcdctl's own form (URLs are tested apart: see test_url_endpoints)."""
    return "127.0.0.1:%d" % server.client_port


def run(tool, server, args, stdin=None):
    p = subprocess.run(argv(tool, server, args), input=stdin, capture_output=True, text=True,
                       env=env(), timeout=60)
    return p.returncode, p.stdout, p.stderr


ID_KEYS = ("ID", "id", "leader", "memberID", "member_id", "lease")
# Lists in an order neither tool chooses: members by their random IDs, a lease's keys
# from a Go map.
UNORDERED_KEYS = ("members", "keys")
MASKED_KEYS = ("cluster_id", "raft_term", "raftTerm", "took", "dbSize", "dbSizeInUse",
               "raftIndex", "raftAppliedIndex", "version")


class Normaliser:
    """One side's IDs, numbered in order of first appearance, and its server's ports."""

    def __init__(self, server):
        self.ids = {}
        self.ports = {"127.0.0.1:%d" % server.client_port: "{CLIENT}",
                      "127.0.0.1:%d" % server.peer_port: "{PEER}"}

    def label(self, value):
        return self.ids.setdefault(value, "{I%d}" % (len(self.ids) + 1))

    def json_value(self, obj):
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                if k in ID_KEYS and isinstance(v, int):
                    out[k] = self.label(v)
                elif k in MASKED_KEYS:
                    out[k] = "<%s>" % k
                elif k in UNORDERED_KEYS and isinstance(v, list):
                    out[k] = sorted(self.json_value(v), key=json.dumps)
                else:
                    out[k] = self.json_value(v)
            return out
        if isinstance(obj, list):
            return [self.json_value(v) for v in obj]
        return obj

    def line(self, line):
        stripped = line.strip()
        if stripped[:1] in "[{":
            try:
                parsed = json.loads(stripped)
            except ValueError:
                pass
            else:
                return json.dumps(self.json_value(parsed))
        line = re.sub(r"took = \S+", "took = <took>", line)
        line = re.sub(r'"Took" : \S+', '"Took" : <took>', line)
        # -w fields: `"Name" : value` lines.
        line = re.sub(r'^"(ClusterID|RaftTerm)" : \d+$', r'"\1" : <\1>', line)
        line = re.sub(r'^"(MemberID|ID|Leader|PrevLease|Lease)" : (\d+)$',
                      lambda m: '"%s" : %s' % (m.group(1), self.label(int(m.group(2)))
                                               if m.group(2) != "0" else "0"), line)
        # A member's or a lease's ID in hex: %016x, %16x (space padded) or %x (12+ digits).
        line = re.sub(r"\b[0-9a-f]{12,16}\b", lambda m: self.label(int(m.group(0), 16)), line)
        # `%16x` pads a shorter ID with spaces.
        return re.sub(r" +(\{I\d+\})", r" \1", line)

    def text(self, text):
        # etcd lists members by ID, which is random: the order of `member add`'s
        # ETCD_INITIAL_CLUSTER entries is not the tool's.
        text = re.sub(r'ETCD_INITIAL_CLUSTER="([^"]*)"',
                      lambda m: 'ETCD_INITIAL_CLUSTER="%s"' % ",".join(sorted(m.group(1).split(","))),
                      text)
        # etcd keeps a lease's keys in a Go map: their order is not the tool's either.
        text = re.sub(r"attached keys\(\[([^]]*)\]\)",
                      lambda m: "attached keys([%s])" % " ".join(sorted(m.group(1).split())),
                      text)
        for address, name in self.ports.items():
            text = text.replace(address, name)
        lines = [self.line(l) for l in text.split("\n")]
        # A lease's keys in -w fields, a `"Key" : ...` line each, also in Go's map order.
        i = 0
        while i < len(lines):
            j = i
            while j < len(lines) and lines[j].startswith('"Key" : '):
                j += 1
            lines[i:j] = sorted(lines[i:j])
            i = j + 1
        return "\n".join(lines)


def normalised(result, norm, unordered=False):
    """`unordered`: the lines of stdout sorted (`member list` is by random member IDs)."""
    rc, out, err = result
    err = "\n".join(l for l in err.split("\n") if not l.startswith('{"level":'))
    out = norm.text(out)
    if unordered:
        out = "\n".join(sorted(out.split("\n")))
    return rc, out, norm.text(err)


class Pair:
    """etcdctl on server `a`, musubi on server `b` (the same one for `same` steps)."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.norm = {"etcdctl": Normaliser(a), "musubi": Normaliser(b)}

    def results(self, args, stdin, same):
        e = run("etcdctl", self.a, args, stdin)
        m = run("musubi", self.a if same else self.b, args, stdin)
        return e, m

    def check(self, *args, stdin=None, same=False, rc=None, codes_only=False, unordered=False):
        e, m = self.results(args, stdin, same)
        what = "%s%s" % (" ".join(args), " <<< %r" % stdin if stdin else "")
        if codes_only:
            assert e[0] == m[0], "%s: exit %d vs musubi %d\n%r\n%r" % (what, e[0], m[0], e, m)
        else:
            ne = normalised(e, self.norm["etcdctl"], unordered)
            nm = normalised(m, self.norm["musubi"], unordered)
            assert ne == nm, "%s\netcdctl: %r\nmusubi:  %r" % (what, ne, nm)
        if rc is not None:
            assert e[0] == rc, "%s: exit %d, want %d: %r" % (what, e[0], rc, e)
        return e, m

    def each(self, args):
        """Run `args` on each side with `{X}` replaced by that side's own value (IDs that
        only one side knows): `args` is a function of the side's name."""
        e = run("etcdctl", self.a, args("etcdctl"))
        m = run("musubi", self.b, args("musubi"))
        ne, nm = normalised(e, self.norm["etcdctl"]), normalised(m, self.norm["musubi"])
        assert ne == nm, "%s\netcdctl: %r\nmusubi:  %r" % (args("etcdctl"), ne, nm)

    def same(self, *args, **kw):
        return self.check(*args, same=True, **kw)


@pytest.fixture
def pair(fleet):
    # The same member name on both (it is printed), in data dirs of their own.
    a = fleet.target(data_dir=os.path.join(fleet.workdir, "twin-a")).start()
    b = fleet.target(data_dir=os.path.join(fleet.workdir, "twin-b")).start()
    return Pair(a, b)


@pytest.fixture
def one(fleet):
    s = fleet.target().start()
    return Pair(s, s)


TXN_OK = 'value("a") = "2"\nmod("a") > "0"\n\nput b 2\nget a\ndel c\n\nput x y\n\n'
TXN_FAIL = 'value("a") = "9"\n\nput b 2\n\nget a --prefix\ndel zz --prev-kv\n\n'


def test_kv_commands_print_as_etcdctl(pair):
    c = pair.check
    c("put", "a", "1", rc=0)
    c("put", "a", "2", "--prev-kv")
    c("put", "-w", "json", "b", "3", "--prev-kv")
    c("put", "-w", "json", "b", "<&>", "--prev-kv")
    c("put", "c", stdin="from stdin\n")
    c("put", "--hex", "d", "\x01\xff")
    for flags in ([], ["-w", "json"], ["--hex"], ["--keys-only"], ["--print-value-only"],
                  ["--limit", "2"], ["--sort-by", "VALUE", "--order", "DESCEND"],
                  ["--sort-by", "MODIFY"], ["--order", "ASCEND"], ["--consistency", "s"],
                  ["--keys-only", "-w", "json"], ["--rev", "3"]):
        c("get", "--prefix", "", *flags)
    c("get", "a")
    c("get", "a", "c")
    c("get", "--from-key", "b")
    c("get", "--from-key", "")
    c("get", "missing", "-w", "json")
    c("get", "a", "-w", "json", "--print-value-only", rc=128)
    c("txn", stdin=TXN_OK, rc=0)
    c("txn", "-w", "json", stdin=TXN_OK)
    c("txn", stdin=TXN_FAIL)
    c("txn", "-w", "json", stdin=TXN_FAIL)
    c("txn", "-i", stdin=TXN_FAIL)
    c("del", "x", "--prev-kv")
    c("del", "-w", "json", "b", "--prev-kv")
    c("del", "--prefix", "c")
    c("del", "a", "b")
    c("del", "--from-key", "d", "--prev-kv", "-w", "json")
    c("put", "k", "v")
    c("put", "k", "w")
    c("compaction", "3", rc=0)
    c("compaction", "-w", "json", "4")
    c("compaction", "--physical", "5")
    c("compaction", "1", rc=1)
    c("get", "k", "--rev", "2", rc=1)
    c("put", "k", "--ignore-value", "--prev-kv")
    c("put", "nokey", "--ignore-value", rc=1)
    c("put", "k", "v", "--lease", "1234", rc=1)
    # -w fields, where etcdctl has it; table and protobuf refused after the request.
    c("put", "-w", "fields", "f", "1")
    c("put", "-w", "fields", "f", "2", "--prev-kv")
    c("get", "-w", "fields", "--prefix", "")
    c("del", "-w", "fields", "f", "--prev-kv")
    c("txn", "-w", "fields", stdin=TXN_OK)
    c("get", "-w", "table", "k", rc=4)
    c("put", "-w", "table", "t", "1", rc=4)
    c("get", "t")


def test_argument_errors_are_etcdctls(one):
    s = one.same
    for args, rc in [
        (["put"], 128), (["get"], 128), (["del"], 128), (["del", "a", "b", "c"], 128),
        (["get", "a", "--prefix", "--from-key"], 128), (["get", "a", "b", "--prefix"], 128),
        (["get", "a", "--sort-by", "foo"], 4), (["get", "a", "--order", "up"], 4),
        (["get", "a", "--consistency", "x"], 4), (["put", "k", "--lease", "zz", "v"], 128),
        (["put", "k", "v", "--ignore-value"], 128), (["compaction"], 128),
        (["compaction", "x"], 1), (["txn", "x"], 128), (["watch"], 128),
        (["watch", "a", "b", "--prefix"], 128), (["lease", "grant"], 128),
        (["lease", "grant", "x"], 128), (["lease", "revoke"], 128),
        (["lease", "revoke", "zz"], 128), (["lease", "timetolive"], 128),
        (["lease", "keep-alive"], 128), (["member", "remove"], 128),
        (["member", "remove", "zz"], 128), (["member", "add"], 128),
        (["member", "add", "x"], 128), (["member", "update", "1"], 128),
        (["move-leader"], 128), (["move-leader", "zz"], 128),
        (["user", "add"], 128), (["user", "add", ":p"], 128), (["user", "get"], 128),
        (["user", "list", "x"], 128), (["user", "grant-role", "a"], 128),
        (["user", "revoke-role", "a"], 128), (["role", "add"], 128),
        (["role", "list", "x"], 128), (["role", "grant-permission", "a"], 128),
        (["role", "grant-permission", "a", "foo", "k"], 128),
        (["role", "grant-permission", "a", "read", "k", "e", "--prefix"], 128),
        (["role", "grant-permission", "a", "read", "k", "--prefix", "--from-key"], 128),
        (["role", "revoke-permission", "a"], 128), (["auth", "enable", "x"], 128),
    ]:
        s(*args, rc=rc)
    for stdin in ["bogus\n", 'value("a") =\n', 'ver("a") = "x"\n', "\nput k\n",
                  "\nfoo bar\n\n", "\nput k v", 'value("a") = "1"', "\n\nput k v\n"]:
        s("txn", stdin=stdin)
    # Parser errors: cobra's and clap's words differ, the exit code does not.
    s("get", "a", "--bogus", codes_only=True)
    s("bogus", codes_only=True)


def test_unreachable_endpoints_fail_as_etcdctl_and_the_next_endpoint_is_used(one):
    closed = "127.0.0.1:%d" % free_port()
    started = time.monotonic()
    one.check("--endpoints", closed, "--command-timeout", "1s", "get", "a", same=True, rc=1)
    assert time.monotonic() - started < 8
    one.same("put", "a", "1")
    both = "%s,%s" % (closed, address(one.a))
    one.check("--endpoints", both, "get", "a", same=True, rc=0)


def test_leases_print_as_etcdctl(pair):
    c = pair.check
    e, m = c("lease", "grant", "100", rc=0)
    lease = {"etcdctl": e[1].split()[1], "musubi": m[1].split()[1]}
    c("lease", "grant", "-w", "json", "200")
    # The same command line on both sides, but each side's own lease ID.
    for args in (["put", "--lease", "{L}", "lk", "v"], ["put", "--lease", "{L}", "lk2", "v"],
                 ["lease", "timetolive", "{L}"], ["lease", "timetolive", "--keys", "{L}"],
                 ["lease", "timetolive", "-w", "json", "--keys", "{L}"],
                 ["lease", "keep-alive", "--once", "{L}"],
                 ["lease", "keep-alive", "-w", "json", "--once", "{L}"],
                 ["lease", "keep-alive", "-w", "fields", "--once", "{L}"],
                 ["lease", "timetolive", "-w", "fields", "--keys", "{L}"],
                 ["get", "lk", "-w", "json"], ["put", "lk", "w", "--ignore-lease"],
                 ["lease", "revoke", "{L}"], ["lease", "revoke", "{L}"],
                 ["lease", "revoke", "-w", "json", "{L}"],
                 ["lease", "timetolive", "{L}"], ["lease", "timetolive", "-w", "json", "{L}"],
                 ["lease", "keep-alive", "--once", "{L}"], ["get", "--prefix", "lk"]):
        pair.each(lambda side: [a.replace("{L}", lease[side]) for a in args])
    c("lease", "list")
    c("lease", "list", "-w", "json")
    c("lease", "list", "-w", "fields")
    c("lease", "grant", "-w", "fields", "50")
    c("lease", "timetolive", "1234")


def test_lease_keep_alive_until_revoked(pair):
    c = pair.check
    e, m = c("lease", "grant", "3")
    procs = {}
    for tool, server, out in (("etcdctl", pair.a, e[1]), ("musubi", pair.b, m[1])):
        lease = out.split()[1]
        procs[tool] = (lease, subprocess.Popen(argv(tool, server, ["lease", "keep-alive", lease]),
                                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                               text=True, env=env()))
    time.sleep(1.5)
    results = {}
    for tool, server in (("etcdctl", pair.a), ("musubi", pair.b)):
        lease, proc = procs[tool]
        run(tool, server, ["lease", "revoke", lease])
        out, err = proc.communicate(timeout=10)
        # Keep-alives every TTL/3 s: how many were printed before the revoke is timing.
        lines = sorted(set(out.splitlines()))
        results[tool] = normalised((proc.returncode, "\n".join(lines), err),
                                   pair.norm[tool])
    assert results["etcdctl"] == results["musubi"]


def watcher(tool, server, *args):
    return subprocess.Popen(argv(tool, server, ["watch"] + list(args)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(),
                            start_new_session=True)


def test_watch_prints_as_etcdctl(pair):
    c = pair.check
    c("put", "w0", "old")
    sides = (("etcdctl", pair.a), ("musubi", pair.b))
    procs = {tool: [watcher(tool, s, "w", "--prefix", "--prev-kv"),
                    watcher(tool, s, "-w", "json", "w1"),
                    watcher(tool, s, "--rev", "1", "--hex", "w0")] for tool, s in sides}
    time.sleep(1.5)
    c("put", "w1", "1")
    c("put", "w1", "2")
    c("del", "w1")
    c("put", "w2", "x y")
    time.sleep(1.5)
    outputs = {}
    for tool, _ in sides:
        outputs[tool] = []
        for p in procs[tool]:
            os.killpg(p.pid, signal.SIGTERM)
            out, err = p.communicate(timeout=10)
            outputs[tool].append(normalised((0, out, err), pair.norm[tool]))
    assert outputs["etcdctl"] == outputs["musubi"]
    assert "DELETE" in outputs["etcdctl"][0][1]
    # A watch from a compacted revision is cancelled by the server: exit 5.
    c("compaction", "3")
    c("watch", "--rev", "1", "w0", rc=5)
    c("watch", "-w", "json", "--rev", "1", "w0", rc=5)


def test_member_and_maintenance_commands_print_as_etcdctl(one):
    s = one.same
    s("member", "list", rc=0)
    s("member", "list", "-w", "json")
    s("member", "list", "-w", "table")
    s("member", "list", "-w", "fields")
    s("endpoint", "status")
    s("endpoint", "status", "-w", "json")
    s("endpoint", "status", "-w", "table")
    s("endpoint", "status", "-w", "fields")
    s("endpoint", "hashkv", "-w", "table")
    s("endpoint", "hashkv", "-w", "fields")
    s("endpoint", "health", "-w", "fields")
    s("alarm", "list", "-w", "table", rc=4)
    s("endpoint", "hashkv")
    s("endpoint", "hashkv", "-w", "json")
    s("endpoint", "health", rc=0)
    s("endpoint", "health", "-w", "json")
    s("alarm", "list", rc=0)
    s("alarm", "list", "-w", "json")
    s("alarm", "disarm")
    s("defrag", rc=0)
    s("move-leader", "1", rc=1)
    s("member", "remove", "1", rc=1)
    s("member", "update", "1", "--peer-urls", "http://127.0.0.1:1", rc=1)
    s("member", "promote", "1", rc=1)


# etcdctl's calls to one endpoint given as a URL (`endpoint status`, `hashkv`, `defrag`,
# `move-leader`, and every `--cluster` form, which takes the members' client URLs) send
# the whole URL as HTTP/2 `:authority`.
def test_url_endpoints(one):
    url = ["--endpoints", one.a.url]
    for args in (["endpoint", "status"], ["endpoint", "status", "--cluster"],
                 ["endpoint", "hashkv", "--cluster", "-w", "json"], ["defrag", "--cluster"],
                 ["endpoint", "health", "--cluster"], ["move-leader", "1"]):
        one.same(*(url + args))


def test_learners_are_added_promoted_and_removed_as_etcdctl(pair):
    c = pair.check
    url = "http://127.0.0.1:%d" % free_port()
    c("member", "add", "l1", "--peer-urls", url, "--learner", rc=0)
    # Refused; etcd names the clash it checks first, the member ID it derives from the URLs
    # and the second, or the URLs: which one depends on the clock.
    c("member", "add", "l1", "--peer-urls", url, "--learner", rc=1, codes_only=True)
    c("member", "list", unordered=True)
    c("member", "list", "-w", "json")
    ids = {}
    for tool, server in (("etcdctl", pair.a), ("musubi", pair.b)):
        lines = run(tool, server, ["member", "list"])[1].splitlines()
        ids[tool] = [l.split(",")[0] for l in lines if "unstarted" in l][0]
    for args in (["member", "promote", "{M}"],
                 ["member", "update", "{M}", "--peer-urls", url + "1"],
                 ["member", "remove", "{M}"], ["member", "remove", "{M}"]):
        pair.each(lambda side: [a.replace("{M}", ids[side]) for a in args])


def test_users_roles_and_auth_as_etcdctl(pair):
    c = pair.check
    c("user", "add", "root:rootpw", rc=0)
    c("user", "add", "u1", "--interactive=false", stdin="p1\n")
    c("user", "add", "u2", "--new-user-password", "p2", "-w", "json")
    c("user", "add", "u1:again", rc=1)
    c("role", "add", "r1")
    c("role", "add", "-w", "json", "r2")
    c("role", "add", "-w", "fields", "r3")
    c("role", "delete", "-w", "fields", "r3")
    c("role", "grant-permission", "r1", "read", "a")
    c("role", "grant-permission", "r1", "readwrite", "b", "--prefix")
    c("role", "grant-permission", "r1", "write", "c", "d")
    c("role", "grant-permission", "r1", "read", "e", "--from-key")
    c("role", "grant-permission", "r2", "read", "", "--prefix")
    c("user", "grant-role", "u1", "r1")
    c("user", "grant-role", "u1", "r2")
    for args in (["user", "get", "u1"], ["user", "get", "u1", "-w", "json"],
                 ["user", "get", "--detail", "u1"], ["role", "get", "r1"],
                 ["role", "get", "r1", "-w", "json"], ["role", "get", "r2"],
                 ["role", "list"], ["role", "list", "-w", "json"], ["role", "list", "-w", "fields"],
                 ["role", "get", "r1", "-w", "fields"], ["user", "list", "-w", "fields"],
                 ["user", "get", "u1", "-w", "fields"], ["user", "list"],
                 ["user", "list", "-w", "json"], ["user", "get", "nobody"],
                 ["role", "get", "nobody"]):
        c(*args)
    c("role", "revoke-permission", "r1", "a")
    c("role", "revoke-permission", "r1", "b", "--prefix")
    c("role", "revoke-permission", "r1", "c", "d")
    c("role", "revoke-permission", "r1", "e", "--from-key")
    c("role", "revoke-permission", "r1", "zz", rc=1)
    c("role", "grant-permission", "r1", "readwrite", "p")
    c("user", "revoke-role", "u1", "r2")
    c("user", "passwd", "u2", "--interactive=false", stdin="p22\n")
    c("put", "a", "1")
    # root has no root role yet: auth enable adds it, as etcdctl does.
    c("auth", "enable", "-w", "json", rc=0)
    c("get", "a", rc=1)
    c("--user", "root:rootpw", "get", "a", rc=0)
    c("--user", "root", "--password", "rootpw", "get", "a")
    c("--user", "root:bad", "get", "a", rc=2)
    c("--user", "u2:p22", "get", "a", rc=1)
    c("--user", "u1:p1", "put", "p", "v", rc=0)
    c("--user", "u1:p1", "put", "c", "v", rc=1)
    c("--user", "u1:p1", "get", "p", "-w", "json")
    c("--user", "root:rootpw", "user", "delete", "u2")
    c("--user", "root:rootpw", "role", "delete", "r2")
    c("--user", "root:rootpw", "auth", "disable", "-w", "fields", rc=0)
    c("--user", "root:rootpw", "get", "a")


def test_tls_flags_as_etcdctl(fleet, pki):
    s = start(fleet, tls_args=cert_auth(pki), ready_ctx=context(pki.ca[0], pki.client))
    one = Pair(s, s)
    cert = ["--cert", pki.client[0], "--key", pki.client[1]]
    tls = ["--cacert", pki.ca[0]] + cert
    url = ["--endpoints", s.url]
    one.same(*url, *tls, "put", "k", "v", rc=0)
    one.same(*url, *tls, "get", "k", "-w", "json")
    # TLS flags turn TLS on for a host:port endpoint too.
    one.same("--endpoints", address(s), *tls, "get", "k", rc=0)
    one.same(*url, "--insecure-skip-tls-verify", *cert, "get", "k", rc=0)
    one.same(*url, *tls, "member", "list", "-w", "json")
    # Refused: no client certificate, or a server certificate nobody vouches for.
    fast = ["--dial-timeout", "1s", "--command-timeout", "2s"]
    one.same(*url, *fast, "--cacert", pki.ca[0], "get", "k", rc=1)
    one.same(*url, *fast, "--cacert", pki.other_ca[0], *cert, "get", "k", rc=1)


def test_commands_and_watches_fail_over_to_the_next_endpoint(fleet):
    members = fleet.cluster(3)
    every = ["--endpoints", ",".join(address(m) for m in members)]
    one = Pair(members[0], members[0])
    one.same(*every, "put", "a", "1", rc=0)
    first_two = ["--endpoints", ",".join(address(m) for m in members[:2])]
    # musubi's watch only: when etcdctl's reconnects is its own client's business (it
    # has been seen to take longer than this test waits, or to repeat the last event).
    watcher = subprocess.Popen(argv("musubi", None, first_two + ["watch", "a"]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env(), start_new_session=True)
    time.sleep(1.5)
    # The first endpoint goes away: every command and the watch go on with the others.
    members[0].kill()
    one.same(*every, "get", "a", rc=0)
    survivors = ["--endpoints", ",".join(address(m) for m in members[1:])]
    code, _, err = run("etcdctl", None, survivors + ["put", "a", "2"])
    assert code == 0, err
    one.same(*every, "get", "a", "--print-value-only", rc=0)
    time.sleep(3)
    os.killpg(watcher.pid, signal.SIGTERM)
    out, err = watcher.communicate(timeout=10)
    # It was on the first endpoint and moved: it resumes after the revision it was
    # created at, so the write before it is not repeated and the one after is seen once.
    assert out == "PUT\na\n2\n", (out, err)
