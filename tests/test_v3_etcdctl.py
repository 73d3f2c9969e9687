"""Debian's etcdctl 3.4 with ETCDCTL_API=3 against the target, side by side with etcd 3.4.

One script of etcdctl commands runs against a fresh etcd 3.4 and a fresh target, step by
step. Every step's exit code, stdout and stderr must agree once normalised: each side's
lease IDs (16 hex digits, or decimal in -w json) become {L1}, {L2}...; cluster_id, member_id and
raft_term are masked; a lease's remaining TTL is masked once it is within 3 s of the
granted TTL; attached keys are sorted (etcd keeps them in a Go map); the client's JSON
warning log lines on stderr are dropped. Watchers run as background etcdctl processes and
their output is compared when the script ends. Some steps also carry the exact output
etcd 3.4 gives (`want`), so that the script proves what it claims against etcd itself.

Revisions are absolute: both stores start at revision 1, so the first write is 2.

etcdctl 3.4 has no `get --count-only` (3.5 added it): the count is checked in `-w json`
and `-w fields`. `txn -i` with a lease("k") compare panics inside etcdctl 3.4 itself
(clientv3.mustInt64orLeaseID), so the lease compare is left to the differential test.
"""

import json
import re
import threading
import time

import pytest

from v3util import Ctl3, b64


class C:
    """One etcdctl command. `want`/`err` are the exact (normalised) stdout/stderr that etcd
    3.4 gives, or compiled regexes; None means: only compared with the reference."""

    def __init__(self, *args, stdin=None, rc=0, want=None, err=None):
        self.args, self.stdin, self.rc, self.want, self.err = args, stdin, rc, want, err

    def __repr__(self):
        return "etcdctl " + " ".join(self.args) + (" <<< %r" % self.stdin if self.stdin else "")


class Grant(C):
    """`lease grant TTL`, binding the printed ID to `name` on that side."""

    def __init__(self, name, ttl, want=None):
        super().__init__("lease", "grant", str(ttl), want=want)
        self.name = name


class Watch:
    """Start `etcdctl watch ...` in the background under `name`."""

    def __init__(self, name, *args):
        self.name, self.args = name, args

    def __repr__(self):
        return "background etcdctl " + " ".join(self.args)


class Collect:
    """Wait until watcher `name` printed a line equal to `until` (or, with json=True,
    an event whose value is `until`), stop it and compare what it printed."""

    def __init__(self, name, until, json=False, want=None):
        self.name, self.until, self.json, self.want = name, until, json, want

    def __repr__(self):
        return "output of watcher %s" % self.name


class Exits:
    """Watcher `name` must end by itself; compare its exit code and output."""

    def __init__(self, name, rc=None, want=None, err=None):
        self.name, self.rc, self.want, self.err = name, rc, want, err

    def __repr__(self):
        return "end of watcher %s" % self.name


PROMPTS = "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"
TXN_SUCCESS = '''value("x") = "1"
version("x") = "1"
create("x") = "17"
mod("x") < "18"
mod("x") != "3"

put x 2
get x
del nothing

put y 3

'''
TXN_FAILURE = '''value("x") = "nope"
version("x") > "0"

put x 3

put y 4
get x
del zoo --prefix

'''
TXN_JSON = '''create("x") > "100"

put x 5

get x
get y --prefix
get x --rev=17

'''
TXN_MISSING = '''version("missing") = "0"
create("missing") = "0"
mod("missing") < "1"

get missing

put wrong branch

'''
# a VALUE compare on a missing key is false whatever the operator
TXN_MISSING_VALUE = '''value("missing") != "z"

put wrong branch

put value-compare-failed yes

'''

SCRIPT = [
    C("put", "foo", "bar", want="OK\n"),                                        # rev 2
    Watch("all", "watch", "--rev", "2", "--prev-kv", "--prefix", ""),
    C("put", "foo/a", "1"),                                                     # 3
    C("put", "foo/b", "2"),                                                     # 4
    C("put", "foo/c", "3"),                                                     # 5
    C("put", "fop", "x"),                                                       # 6
    C("put", "zoo", "z"),                                                       # 7
    C("put", "--prev-kv", "foo", "baz", want="OK\nfoo\nbar\n"),                # 8
    C("put", "foo/a", "11"),                                                    # 9
    C("get", "foo", want="foo\nbaz\n"),
    C("get", "foo", "--rev=2", want="foo\nbar\n"),
    C("get", "foo", "--rev=7", want="foo\nbar\n"),
    C("get", "foo/a", "--rev=2", want=""),
    C("get", "foo", "--prefix", want="foo\nbaz\nfoo/a\n11\nfoo/b\n2\nfoo/c\n3\n"),
    C("get", "foo", "--prefix", "--rev=4", want="foo\nbar\nfoo/a\n1\nfoo/b\n2\n"),
    C("get", "foo/b", "--from-key", want="foo/b\n2\nfoo/c\n3\nfop\nx\nzoo\nz\n"),
    C("get", "", "--from-key", "--keys-only", want="foo\n\nfoo/a\n\nfoo/b\n\nfoo/c\n\nfop\n\nzoo\n\n"),
    C("get", "foo/a", "foo/c", want="foo/a\n11\nfoo/b\n2\n"),
    C("get", "foo/c", "foo/a", want=""),
    C("get", "foo", "--prefix", "--limit=2", want="foo\nbaz\nfoo/a\n11\n"),
    C("get", "foo", "--prefix", "--sort-by=MODIFY", "--order=DESCEND",
      want="foo/a\n11\nfoo\nbaz\nfoo/c\n3\nfoo/b\n2\n"),
    # no --order: etcdctl sends sort_order NONE, and etcd 3.4 then applies the limit (plus
    # one) in key order before sorting: the first 3 keys by key, sorted by mod, cut to 2
    C("get", "foo", "--prefix", "--sort-by=MODIFY", "--limit=2", want="foo/b\n2\nfoo\nbaz\n"),
    C("get", "foo", "--prefix", "--sort-by=MODIFY", "--order=ASCEND", "--limit=2",
      want="foo/b\n2\nfoo/c\n3\n"),
    C("get", "foo", "--prefix", "--sort-by=VALUE", want="foo/a\n11\nfoo/b\n2\nfoo/c\n3\nfoo\nbaz\n"),
    C("get", "foo", "--prefix", "--sort-by=VALUE", "--order=DESCEND",
      want="foo\nbaz\nfoo/c\n3\nfoo/b\n2\nfoo/a\n11\n"),
    C("get", "foo", "--prefix", "--sort-by=VERSION", "--order=DESCEND"),
    C("get", "foo", "--prefix", "--sort-by=VERSION", "--order=ASCEND"),
    C("get", "foo", "--prefix", "--sort-by=CREATE", "--order=DESCEND",
      want="foo/c\n3\nfoo/b\n2\nfoo/a\n11\nfoo\nbaz\n"),
    C("get", "", "--from-key", "--sort-by=KEY", "--order=DESCEND", "--keys-only", "--limit=3",
      want="zoo\n\nfop\n\nfoo/c\n\n"),
    C("get", "foo", "--prefix", "--order=DESCEND", "--limit=1", want="foo/c\n3\n"),
    C("get", "foo", "--prefix", "--keys-only", want="foo\n\nfoo/a\n\nfoo/b\n\nfoo/c\n\n"),
    C("get", "foo", "--print-value-only", want="baz\n"),
    C("get", "foo", "--prefix", "--print-value-only", "--limit=3", want="baz\n11\n2\n"),
    C("get", "foo", "--consistency=s", want="foo\nbaz\n"),
    C("get", "foo", "--prefix", "--consistency=s", "--rev=5", "--keys-only",
      want="foo\n\nfoo/a\n\nfoo/b\n\nfoo/c\n\n"),
    C("get", "--hex", "foo", want="\\x66\\x6f\\x6f\n\\x62\\x61\\x7a\n"),
    C("get", "foo", "--prefix", "--limit=2", "-w", "json",
      want='{"header":{"cluster_id":<cluster_id>,"member_id":<member_id>,"revision":9,"raft_term":<raft_term>},'
           '"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":8,"version":2,"value":"YmF6"},'
           '{"key":"Zm9vL2E=","create_revision":3,"mod_revision":9,"version":2,"value":"MTE="}],'
           '"more":true,"count":4}\n'),
    C("get", "", "--from-key", "--keys-only", "--rev=3", "-w", "json"),
    C("get", "nothing", "-w", "json",
      want='{"header":{"cluster_id":<cluster_id>,"member_id":<member_id>,"revision":9,"raft_term":<raft_term>}}\n'),
    C("get", "foo", "-w", "fields",
      want='"ClusterID" : <cluster_id>\n"MemberID" : <member_id>\n"Revision" : 9\n"RaftTerm" : <raft_term>\n'
           '"Key" : "foo"\n"CreateRevision" : 2\n"ModRevision" : 8\n"Version" : 2\n"Value" : "baz"\n'
           '"Lease" : 0\n"More" : false\n"Count" : 1\n'),
    C("get", "foo", "--prefix", "--limit=1", "-w", "fields"),
    C("get", "nothing", want=""),
    C("get", "foo", "--rev=100", rc=1,
      err="Error: etcdserver: mvcc: required revision is a future revision\n"),
    C("get", "", rc=1, err="Error: etcdserver: key is not provided\n"),
    Watch("json", "watch", "-w", "json", "--rev", "1", "--prefix", "foo"),
    # delete
    C("del", "foo/a", want="1\n"),                                              # 10
    C("del", "--prev-kv", "foo/b", want="1\nfoo/b\n2\n"),                      # 11
    C("del", "nothing", want="0\n"),                                            # no revision
    C("del", "--prefix", "--prev-kv", "fo", want="3\nfoo\nbaz\nfoo/c\n3\nfop\nx\n"),   # 12
    C("get", "", "--from-key", want="zoo\nz\n"),
    C("put", "a1", "v"),                                                        # 13
    C("put", "a2", "v"),                                                        # 14
    C("del", "a1", "a3", "-w", "json",
      want='{"header":{"cluster_id":<cluster_id>,"member_id":<member_id>,"revision":15,"raft_term":<raft_term>},'
           '"deleted":2}\n'),                                                   # 15
    C("del", "zoo", "--from-key", "--prev-kv", "-w", "json"),                   # 16
    # txn
    C("put", "x", "1"),                                                         # 17
    C("txn", "-i", stdin=TXN_SUCCESS,
      want=PROMPTS + "SUCCESS\n\nOK\n\nx\n2\n\n0\n"),                                     # 18
    C("txn", "-i", stdin=TXN_FAILURE, want=PROMPTS + "FAILURE\n\nOK\n\nx\n2\n\n0\n"),     # 19
    C("get", "y", "--prefix", want="y\n4\n"),
    C("txn", "-i", "-w", "json", stdin=TXN_JSON),                               # read-only: no revision
    C("txn", "-i", stdin=TXN_MISSING, want=PROMPTS + "SUCCESS\n\n"),
    C("txn", "-i", stdin=TXN_MISSING_VALUE, want=PROMPTS + "FAILURE\n\nOK\n"),     # 20
    C("txn", "-i", stdin='bogus\n\n\n\n', rc=3, want="compares:\n",
      err="Error: malformed comparison: bogus\n"),
    C("get", "", "--from-key", "-w", "json"),
    # leases
    Grant("L1", 100, want="lease {L1} granted with TTL(100s)\n"),
    Grant("L2", 1000, want="lease {L2} granted with TTL(1000s)\n"),
    C("put", "--lease={L1}", "lk1", "v1"),                                      # 21
    C("put", "--lease={L1}", "lk2", "v2"),                                      # 22
    C("put", "--lease={L2}", "lk3", "v3"),                                      # 23
    C("put", "--lease=abcdef", "lk4", "v4", rc=1, err="Error: etcdserver: requested lease not found\n"),
    C("lease", "timetolive", "{L1}", "--keys",
      want="lease {L1} granted with TTL(100s), remaining(~), attached keys([lk1 lk2])\n"),
    C("lease", "timetolive", "{L1}", want="lease {L1} granted with TTL(100s), remaining(~)\n"),
    C("lease", "timetolive", "{L2}", "--keys", "-w", "json"),
    C("lease", "timetolive", "{L1}", "-w", "json"),
    C("lease", "keep-alive", "--once", "{L1}", want="lease {L1} keepalived with TTL(100)\n"),
    C("lease", "list", want="found 2 leases\n{L1}\n{L2}\n"),
    C("lease", "list", "-w", "json"),
    C("get", "lk", "--prefix", "-w", "json"),
    C("put", "--ignore-lease", "lk1", "v1b"),                                   # 24, keeps L1
    C("put", "--ignore-value", "--lease={L2}", "lk2"),                          # 25, moves to L2
    C("lease", "timetolive", "{L2}", "--keys",
      want="lease {L2} granted with TTL(1000s), remaining(~), attached keys([lk2 lk3])\n"),
    C("lease", "revoke", "{L1}", want="lease {L1} revoked\n"),                  # 26: deletes lk1
    C("get", "lk", "--prefix", want="lk2\nv2\nlk3\nv3\n"),
    C("lease", "timetolive", "{L1}", want="lease {L1} already expired\n"),
    C("lease", "timetolive", "{L1}", "-w", "json"),
    C("lease", "revoke", "{L1}", rc=1,
      err="Error: failed to revoke lease (etcdserver: requested lease not found)\n"),
    C("lease", "keep-alive", "--once", "{L1}", rc=2, err="Error: etcdserver: requested lease not found\n"),
    Grant("L3", 1, want="lease {L3} granted with TTL(2s)\n"),
    C("lease", "revoke", "{L3}", want="lease {L3} revoked\n"),                  # no keys: no revision
    C("lease", "list", want="found 1 leases\n{L2}\n"),
    C("lease", "revoke", "{L2}", want="lease {L2} revoked\n"),                  # 27
    C("lease", "list", want="found 0 leases\n"),
    C("get", "", "--from-key", "-w", "json"),
    # compaction
    C("compaction", "10", want="compacted revision 10\n"),
    C("get", "foo", "--rev=9", rc=1,
      err="Error: etcdserver: mvcc: required revision has been compacted\n"),
    C("get", "x", "--rev=10", want=""),
    C("get", "", "--from-key", "--rev=10", want="foo\nbaz\nfoo/b\n2\nfoo/c\n3\nfop\nx\nzoo\nz\n"),
    C("compaction", "10", rc=1, err="Error: etcdserver: mvcc: required revision has been compacted\n"),
    C("compaction", "--physical", "15", want="compacted revision 15\n"),
    C("get", "", "--from-key", "--rev=15", "--keys-only", want="zoo\n\n"),
    C("compaction", "1000", rc=1, err="Error: etcdserver: mvcc: required revision is a future revision\n"),
    Watch("compacted", "watch", "--rev", "3", "x"),
    Exits("compacted", rc=5, want="",
          err="watch was canceled (etcdserver: mvcc: required revision has been compacted)\n"
              "Error: watch is canceled by the server\n"),
    Watch("after", "watch", "--rev", "15", "--prefix", "", "--prev-kv"),
    Watch("afterjson", "watch", "--rev", "16", "--prefix", "", "--prev-kv", "-w", "json"),
    C("put", "foo", "end"),                                                     # 28
    Collect("all", "end"),
    Collect("json", "end", json=True),
    Collect("after", "end"),
    Collect("afterjson", "end", json=True),
]


HEX_RE = re.compile(r"^lease ([0-9a-f]+) granted", re.M)
ID_MASK = {"cluster_id": "<cluster_id>", "ClusterID": "<cluster_id>", "member_id": "<member_id>",
           "MemberID": "<member_id>", "raft_term": "<raft_term>", "RaftTerm": "<raft_term>"}
ID_FIELDS = re.compile(r'("?)(cluster_id|member_id|raft_term|ClusterID|MemberID|RaftTerm)("?\s*:\s*)(\d+)')


class Side:
    def __init__(self, server, label):
        self.label = label
        self.ctl = Ctl3(server)
        self.leases = {}        # name -> ID (int)
        self.watchers = {}      # name -> (Popen, lines list, thread)

    def subst(self, arg):
        for name, lid in self.leases.items():
            arg = arg.replace("{%s}" % name, "%016x" % lid)
        return arg

    def normalize(self, text):
        for name, lid in self.leases.items():
            text = re.sub(r"\b0*%x\b" % lid, "{%s}" % name, text)
            text = re.sub(r"(?<![0-9])%d(?![0-9])" % lid, '"{%s}"' % name, text)
        text = ID_FIELDS.sub(lambda m: m.group(1) + m.group(2) + m.group(3) + ID_MASK[m.group(2)], text)
        # remaining TTLs: within 3 s of the granted TTL, else left visible
        def rem(m):
            granted, left = int(m.group(1)), int(m.group(2))
            return m.group(0).replace("remaining(%ds)" % left, "remaining(~)") \
                if granted - 3 <= left <= granted else m.group(0)
        text = re.sub(r"TTL\((\d+)s\), remaining\((\d+)s\)", rem, text)

        def jrem(m):
            left, granted = int(m.group(1)), int(m.group(2))
            return m.group(0).replace('"ttl":%d' % left, '"ttl":"~"') \
                if granted - 3 <= left <= granted else m.group(0)
        text = re.sub(r'"ttl":(\d+),"granted-ttl":(\d+)', jrem, text)
        text = re.sub(r"attached keys\(\[([^\]]*)\]\)",
                      lambda m: "attached keys([%s])" % " ".join(sorted(m.group(1).split())), text)
        text = re.sub(r'"keys":\[([^\]]*)\]',
                      lambda m: '"keys":[%s]' % ",".join(sorted(m.group(1).split(","))), text)
        return text

    def normalize_err(self, text):
        lines = [l for l in text.splitlines(True) if not l.startswith('{"level":')]
        return self.normalize("".join(lines))

    def run(self, step):
        """Run one step; returns its normalised outcome (a tuple), or None."""
        if isinstance(step, Watch):
            p = self.ctl.popen(*[self.subst(a) for a in step.args])
            lines = []
            t = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
            t.start()
            self.watchers[step.name] = (p, lines, t)
            time.sleep(0.3)   # let it connect, so that later steps happen while it watches
            return None
        if isinstance(step, Exits):
            p, lines, t = self.watchers.pop(step.name)
            try:
                rc = p.wait(15)
            finally:
                if p.poll() is None:
                    p.kill()
            t.join(5)
            return rc, self.normalize("".join(lines)), self.normalize_err(p.stderr.read())
        if isinstance(step, Collect):
            p, lines, t = self.watchers.pop(step.name)
            deadline = time.time() + 15
            try:
                while time.time() < deadline and not self._seen(lines, step):
                    time.sleep(0.05)
                time.sleep(0.2)
            finally:
                p.kill()
                p.wait(5)
            t.join(5)
            assert self._seen(lines, step), "%s: watcher %s never printed %r; it printed:\n%s\nstderr: %s" % (
                self.label, step.name, step.until, "".join(lines), p.stderr.read())
            if step.json:
                events = []
                for line in lines:
                    events.extend(json.loads(line)["Events"])
                return (self.normalize(json.dumps(events, separators=(",", ":"))),)
            return ("".join(self.normalize(l) for l in lines),)
        code, out, err = self.ctl.run(*[self.subst(a) for a in step.args], stdin=step.stdin)
        if isinstance(step, Grant) and code == 0:
            m = HEX_RE.search(out)
            assert m, "%s: lease grant printed %r" % (self.label, out)
            self.leases[step.name] = int(m.group(1), 16)
        return code, self.normalize(out), self.normalize_err(err)

    @staticmethod
    def _seen(lines, step):
        if step.json:
            return any(b64(step.until) in l for l in lines)
        return any(l.rstrip("\n") == step.until for l in lines)

    def close(self):
        for p, _, _ in self.watchers.values():
            if p.poll() is None:
                p.kill()
                p.wait(5)


def check_want(step, got, transcript):
    if isinstance(step, Watch):
        return
    if isinstance(step, Collect):
        if step.want is not None:
            assert got[0] == step.want, "%r:\n got %r\nwant %r" % (step, got[0], step.want)
        return
    rc, out, err = got
    if step.rc is not None:
        assert rc == step.rc, "%r: exit %d, want %d\nstdout %r\nstderr %r\n%s" % (
            step, rc, step.rc, out, err, transcript)
    for what, have, want in (("stdout", out, step.want), ("stderr", err, step.err)):
        if want is None:
            continue
        ok = want.fullmatch(have) if hasattr(want, "fullmatch") else have == want
        assert ok, "%r: %s\n got %r\nwant %r\n%s" % (step, what, have, want, transcript)


@pytest.fixture
def sides(fleet):
    ref = fleet.etcd(name="ref").start(wait=False)
    tgt = fleet.target().start(wait=False)
    ref.wait_ready()
    tgt.wait_ready()
    r, t = Side(ref, "etcd"), Side(tgt, "target")
    yield r, t
    r.close()
    t.close()


def test_etcdctl_v3_script(sides):
    ref, tgt = sides
    transcript = []
    for i, step in enumerate(SCRIPT):
        a = ref.run(step)
        b = tgt.run(step)
        transcript.append("%3d %r -> %r" % (i, step, b))
        if a != b:
            pytest.fail("step %d, %r: the target differs from etcd 3.4\n etcd   %r\n target %r\n"
                        "steps so far (target's outcome):\n%s"
                        % (i, step, a, b, "\n".join(transcript[-15:])))
        # the expectations hold against etcd itself; checked on the target's outcome
        check_want(step, b, "\n".join(transcript[-8:]))


def test_watch_outputs_hold_the_expected_events(sides):
    """The watchers' output, checked against fixed text (not only against etcd's)."""
    _, tgt = sides
    steps = [C("put", "w", "1"), Watch("w", "watch", "--rev", "2", "--prev-kv", "w"),
             C("put", "w", "2"), C("del", "w"), C("put", "w", "end")]
    for s in steps:
        tgt.run(s)
    got = tgt.run(Collect("w", "end"))[0]
    # with --prev-kv etcdctl prints the previous key and value before the event's own
    assert got == "PUT\nw\n1\nPUT\nw\n1\nw\n2\nDELETE\nw\n2\nw\n\nPUT\nw\nend\n", got
    tgt.run(Watch("j", "watch", "-w", "json", "--rev", "3", "w"))
    ev = json.loads(tgt.run(Collect("j", "end", json=True))[0])
    assert [(e.get("type", 0), e["kv"]["mod_revision"]) for e in ev] == [(0, 3), (1, 4), (0, 5)], ev
    assert ev[1]["kv"] == {"key": "dw==", "mod_revision": 4}, ev


@pytest.mark.alone
def test_etcdctl_check_perf_passes(target):
    """`etcdctl check perf`: a minute of writes with binary keys from 50 clients under one
    lease, judged by etcdctl's own thresholds (throughput, slowest request, deviation),
    then its prefix deleted. One node; 60 s, the command's fixed duration."""
    ctl = Ctl3(target)
    code, out, err = ctl.run("check", "perf", "--load", "s", timeout=180)
    verdicts = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert code == 0 and verdicts and verdicts[-1] == "PASS", (code, out[-500:], err[-500:])
    assert not any(v.startswith("FAIL") for v in verdicts), verdicts
    assert ctl("get", "--prefix", "/etcdctl-check-perf/", "--keys-only") == ""
