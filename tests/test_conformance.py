"""Side-by-side conformance of the etcd v2 keys API: etcd 3.4 (reference) vs the target.

Seeded random request sequences are sent to a fresh reference etcd and a fresh target;
every response pair is compared after rebasing indexes (see v2compare.py). The first
difference fails the test with the seed, the request and both responses.

    MUSUBI_CONFORMANCE_SEED=1234 pytest tests/test_conformance.py -k random   # one seed
    MUSUBI_CONFORMANCE_OPS=400                                             # longer runs

Plus: exact raw-body checks of canonical replies (against the target alone), TTL expiry,
the 401 "event index cleared" case, and blocking watches, side by side.
"""

import json
import os
import random
import re
import socket
import threading
import time
from urllib.parse import quote

import pytest

from harness import raw_request
from v2compare import Idx, KeyIdx, Normalized, Req, diff, diff_values, normalize

CI_SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
SEEDS = ([int(os.environ["MUSUBI_CONFORMANCE_SEED"])]
         if os.environ.get("MUSUBI_CONFORMANCE_SEED") else CI_SEEDS)
OPS = int(os.environ.get("MUSUBI_CONFORMANCE_OPS", "160"))

WRITE_ACTIONS = {"set", "create", "update", "compareAndSwap", "delete", "compareAndDelete", "expire"}


class Side:
    def __init__(self, server, label):
        self.server = server
        self.label = label
        self.base = server.index()

    def send(self, req, timeout=4.0):
        m, p, b = req.render(self.base)
        try:
            st, h, body = raw_request(self.server.client_port, m, p, b, timeout=timeout)
        except (socket.timeout, TimeoutError):
            return Normalized(None, {}, ("raw", b""), {}, b"", timeout=True)
        return normalize(st, h, body, self.base, req)


class Mismatch(AssertionError):
    pass


def check(ref, tgt, req, seed=None, step=None, history=()):
    r = ref.send(req)
    t = tgt.send(req)
    d = diff(r, t)
    if d:
        lines = ["conformance mismatch" + (" (seed %s, step %s; rerun with MUSUBI_CONFORMANCE_SEED=%s)"
                                          % (seed, step, seed) if seed is not None else "")]
        if history:
            lines.append("previous requests (last 8):")
            lines += ["  " + h for h in history[-8:]]
        lines.append("request: " + req.describe())
        lines.append("  reference sent: " + req.describe(ref.base))
        lines.append("  target sent:    " + req.describe(tgt.base))
        lines.append("reference (%s, base index %d):\n%s" % (ref.server.kind, ref.base, r.show()))
        lines.append("target (%s, base index %d):\n%s" % (tgt.server.kind, tgt.base, t.show()))
        lines.append("differences (reference != target):")
        lines += ["  " + x for x in d]
        raise Mismatch("\n".join(lines))
    return r


@pytest.fixture
def pair(fleet):
    ref = fleet.etcd(name="ref").start()
    tgt = fleet.target(name="tgt").start()
    return Side(ref, "reference"), Side(tgt, "target")


# ---------------------------------------------------------------------------
# random sequences

KEYS = ["/a", "/a/b", "/a/b/c", "/a/x", "/d", "/d/_h", "/d/e", "/_hid", "/_hid/in",
        "/e/f/g", "/q", "/k", "/\u00e9t\u00e9", "/sp ace", "/d/e/f"]
ODD_PATHS = ["//a/../b/", "/a/./b", "/a//b", "/%ff%fe", "/%e3%81%82", "/a%2Fb", "/trailing/",
             "/..", "/a/b/..", "", "/", "/%2e%2e/x", "/a?", "/%25"]
VALUES = ["v1", "v2", "hello world", "", "\u65e5\u672c\u8a9e", "a&b=c+d%", "x" * 300, "line\nbreak", "v3"]
TTLS = [None, None, None, "", "300", "1000", "abc", "-1", "1.5", " 30"]
BOOLS_OK = ["true", "1", "t", "T", "TRUE", "True", "false", "0", "f", "F", "FALSE", "False"]
BOOLS_BAD = ["maybe", "yes", "2", "tru", "on", ""]
BOOL_PARAMS = ["recursive", "sorted", "dir", "prevExist", "quorum", "wait", "stream",
               "noValueOnSuccess", "refresh"]


def enc(path):
    return quote(path, safe="/")


def key_pieces(key):
    """A response key (rebased, '{I:n}' for in-order names) back to request path pieces."""
    out = []
    pos = 0
    for m in re.finditer(r"\{I:(-?\d+)\}", key):
        out.append(enc(key[pos:m.start()]))
        out.append(KeyIdx(int(m.group(1))))
        pos = m.end()
    out.append(enc(key[pos:]))
    return [p for p in out if p != ""]


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.values = {}      # key -> value (from reference replies)
        self.mod = {}         # key -> rel modifiedIndex
        self.events = []      # (rel index, key, action, prev_is_dir)
        self.inorder = []     # keys created by POST (rebased form)

    # -- learning from reference replies
    def observe(self, resp, req=None):
        if resp.timeout or resp.status not in (200, 201) or resp.body[0] != "json":
            return
        body = resp.body[1]
        if not isinstance(body, dict):
            return
        node = body.get("node")
        action = body.get("action")
        if not isinstance(node, dict):
            return

        def learn(n):
            k = n.get("key")
            if not isinstance(k, str):
                return
            if "modifiedIndex" in n:
                self.mod[k] = n["modifiedIndex"]
            if "value" in n:
                self.values[k] = n["value"]
            for c in n.get("nodes") or []:
                learn(c)

        key = node.get("key")
        # refresh events take an index but history scans skip them (etcd's v2store)
        refresh = req is not None and req.params().get("refresh") in ("true", "1", "t", "T", "TRUE", "True")
        if action in WRITE_ACTIONS and isinstance(key, str) and "\ufffd" not in key and not refresh:
            prev = body.get("prevNode") or {}
            self.events.append((node.get("modifiedIndex"), key, action, bool(prev.get("dir"))))
            if "{I:" in key and action == "create":
                self.inorder.append(key)
        if action in ("delete", "compareAndDelete", "expire"):
            self.values.pop(key, None)
            self.mod.pop(key, None)
        else:
            learn(node)

    # -- building blocks
    def key(self):
        r = self.rng.random()
        if r < 0.08 and self.inorder:
            return key_pieces(self.rng.choice(self.inorder))
        if r < 0.14:
            return [self.rng.choice(ODD_PATHS)]
        return [enc(self.rng.choice(KEYS))]

    def value(self):
        return self.rng.choice(VALUES)

    def params(self, pairs, body_ok=True):
        """Put pairs in the query string or (sometimes) a form body."""
        if body_ok and self.rng.random() < 0.4:
            return [], pairs
        return pairs, None

    def known_key(self):
        if self.mod and self.rng.random() < 0.8:
            k = self.rng.choice(sorted(self.mod))
            if "\ufffd" not in k:
                return k
        return self.rng.choice(KEYS)

    def prev_index(self, key):
        r = self.rng.random()
        if key in self.mod and r < 0.5:
            return Idx(self.mod[key])
        if r < 0.7:
            return Idx(self.mod.get(key, 1) + self.rng.randint(1, 50) + 500)
        if r < 0.8:
            return "0"
        if r < 0.9:
            return "abc"
        return "-3"

    def prev_value(self, key):
        r = self.rng.random()
        if key in self.values and r < 0.5:
            return self.values[key]
        if r < 0.85:
            return self.rng.choice(["nope", "v1", "v2"])
        return ""

    # -- operations
    def op_set(self):
        p = [("value", self.value())]
        ttl = self.rng.choice(TTLS)
        if ttl is not None:
            p.append(("ttl", ttl))
        if self.rng.random() < 0.1:
            p.append(("noValueOnSuccess", "true"))
        q, f = self.params(p)
        return Req("PUT", self.key(), q, f)

    def op_dir(self):
        p = [("dir", self.rng.choice(["true", "true", "1", "false"]))]
        if self.rng.random() < 0.3:
            p.append(("ttl", self.rng.choice(["300", "", "abc"])))
        if self.rng.random() < 0.3:
            p.append(("prevExist", self.rng.choice(["true", "false"])))
        if self.rng.random() < 0.2:
            p.append(("value", "ignored"))
        q, f = self.params(p)
        return Req("PUT", self.key(), q, f)

    def op_create_update(self):
        p = [("value", self.value()), ("prevExist", self.rng.choice(["true", "false", "True", "0"]))]
        if self.rng.random() < 0.3:
            p.append(("ttl", self.rng.choice(TTLS[3:])))
        if self.rng.random() < 0.1:
            p.append(("noValueOnSuccess", "true"))
        q, f = self.params(p)
        k = self.known_key() if self.rng.random() < 0.6 else self.rng.choice(KEYS)
        return Req("PUT", key_pieces(k), q, f)

    def op_cas(self):
        k = self.known_key()
        p = [("value", self.rng.choice(["v1", "v2", "v3", "swapped"]))]
        c = self.rng.random()
        if c < 0.4:
            p.append(("prevValue", self.prev_value(k)))
        elif c < 0.75:
            p.append(("prevIndex", self.prev_index(k)))
        else:
            p.append(("prevValue", self.prev_value(k)))
            p.append(("prevIndex", self.prev_index(k)))
        if self.rng.random() < 0.2:
            p.append(("prevExist", self.rng.choice(["true", "false"])))
        if self.rng.random() < 0.15:
            p.append(("ttl", "500"))
        if self.rng.random() < 0.1:
            p.append(("noValueOnSuccess", "true"))
        q, f = self.params(p)
        return Req("PUT", key_pieces(k), q, f)

    def op_refresh(self):
        k = self.known_key()
        p = [("refresh", "true")]
        ttl = self.rng.choice(["400", "400", "", None, "abc"])
        if ttl is not None:
            p.append(("ttl", ttl))
        if self.rng.random() < 0.25:
            p.append(("value", self.rng.choice(["", "nonempty"])))
        if self.rng.random() < 0.4:
            p.append(("prevExist", "true"))
        if self.rng.random() < 0.15:
            p.append(("prevValue", self.prev_value(k)))
        q, f = self.params(p)
        return Req("PUT", key_pieces(k), q, f)

    def op_post(self):
        d = self.rng.choice(["/q", "/q", "/a", "/k", "/d/_h", "/newq"])
        p = [("value", self.value())]
        if self.rng.random() < 0.2:
            p.append(("ttl", self.rng.choice(["300", "abc"])))
        if self.rng.random() < 0.1:
            p.append(("noValueOnSuccess", "true"))
        if self.rng.random() < 0.1:
            p.append(("dir", "true"))
        q, f = self.params(p)
        return Req("POST", [enc(d)], q, f)

    def op_delete(self):
        r = self.rng.random()
        if r < 0.35 and self.values:
            k = self.rng.choice(sorted(self.values))   # a file: CAD can succeed
            if "\ufffd" in k:
                k = None
        else:
            k = self.known_key() if r < 0.8 else None
        path = key_pieces(k) if k else self.key()
        q = []
        c = self.rng.random()
        if c < 0.25:
            q.append(("dir", self.rng.choice(["true", "false"])))
        elif c < 0.45:
            q.append(("recursive", "true"))
        elif c < 0.6 and k:
            q.append(("prevValue", self.prev_value(k)))
        elif c < 0.75 and k:
            q.append(("prevIndex", self.prev_index(k)))
        elif c < 0.8 and k:
            q.append(("prevValue", self.prev_value(k)))
            q.append(("prevIndex", self.prev_index(k)))
        return Req("DELETE", path, q)

    def op_get(self):
        k = self.rng.choice([None, None, None, "/", "/a", "/d", "/_hid", "/q"])
        path = key_pieces(k) if k else self.key()
        q = []
        if self.rng.random() < 0.5:
            q.append(("recursive", self.rng.choice(["true", "false", "1"])))
        if self.rng.random() < 0.5:
            q.append(("sorted", self.rng.choice(["true", "t", "false"])))
        if self.rng.random() < 0.15:
            q.append(("quorum", "true"))
        return Req(self.rng.choice(["GET", "GET", "GET", "HEAD"]), path, q)

    def op_bad_bool(self):
        name = self.rng.choice(BOOL_PARAMS)
        val = self.rng.choice(BOOLS_BAD + BOOLS_OK[:4])
        if name in ("wait", "stream") and val not in BOOLS_BAD:
            val = self.rng.choice(BOOLS_BAD)
        method = self.rng.choice(["GET", "PUT", "DELETE", "POST"])
        q = [(name, val)]
        if method in ("PUT", "POST"):
            q.append(("value", "bb"))
        return Req(method, self.key(), q)

    def op_bad_number(self):
        name = self.rng.choice(["ttl", "prevIndex", "waitIndex"])
        q = [(name, self.rng.choice(["x", "1e3", "-1", "0x10", "99999999999999999999999"]))]
        method = self.rng.choice(["GET", "PUT"])
        if name == "waitIndex":
            q.append(("wait", "true"))
            method = "GET"
        if method == "PUT":
            q.append(("value", "n"))
        return Req(method, self.key(), q)

    def op_wait(self):
        evs = [e for e in self.events if e[0] is not None]
        if not evs:
            return self.op_get()
        idx, key, action, prev_dir = self.rng.choice(evs)
        w = max(1, idx - self.rng.randint(0, 3))
        q = [("wait", "true"), ("waitIndex", Idx(w))]
        c = self.rng.random()
        if action in ("delete", "expire", "compareAndDelete") and prev_dir and c < 0.3:
            path = key_pieces(key + "/under")
        elif c < 0.55 and key.count("/") > 1:
            parent = key.rsplit("/", 1)[0]
            path = key_pieces(parent)
            q.append(("recursive", "true"))
        else:
            path = key_pieces(key)
            if self.rng.random() < 0.2:
                q.append(("recursive", "true"))
        return Req("GET", path, q)

    def op_bad_form(self):
        bad = self.rng.choice(["value=%zz", "value=%", "ttl=%4", "value=a%2"])
        if self.rng.random() < 0.5:
            return Req(self.rng.choice(["PUT", "POST"]), self.key(), raw_body=bad)
        return Req(self.rng.choice(["GET", "PUT", "DELETE"]), self.key(), raw_query=bad)

    def op_wait_non_get(self):
        m = self.rng.choice(["PUT", "POST", "DELETE"])
        q = [("wait", "true")]
        if m != "DELETE":
            q.append(("value", "w"))
        return Req(m, self.key(), q)

    def op_method(self):
        return Req(self.rng.choice(["PATCH", "OPTIONS", "COPY", "PROPFIND"]), self.key(), [])

    def op_root(self):
        m = self.rng.choice(["PUT", "POST", "DELETE", "GET"])
        q = []
        if m in ("PUT", "POST"):
            q.append(("value", "r"))
            if self.rng.random() < 0.3:
                q.append(("dir", "true"))
        if m == "DELETE":
            q.append(self.rng.choice([("recursive", "true"), ("dir", "true"), ("prevValue", "r")]))
        if m == "GET":
            q += [("recursive", "true"), ("sorted", "true")]
        return Req(m, [self.rng.choice(["/", ""])], q)

    OPS = [(op_set, 14), (op_dir, 6), (op_create_update, 9), (op_cas, 9), (op_refresh, 5),
           (op_post, 6), (op_delete, 9), (op_get, 12), (op_bad_bool, 4), (op_bad_number, 3),
           (op_wait, 8), (op_wait_non_get, 2), (op_bad_form, 2), (op_method, 2), (op_root, 3)]

    def next(self):
        total = sum(w for _, w in self.OPS)
        r = self.rng.uniform(0, total)
        for fn, w in self.OPS:
            r -= w
            if r <= 0:
                return fn(self)
        return self.OPS[0][0](self)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_sequence(pair, seed):
    ref, tgt = pair
    gen = Gen(seed)
    history = []
    # a fixed prologue so that every sequence has a tree to work on
    prologue = [Req("PUT", ["/a/b"], [("value", "v1")]), Req("PUT", ["/d/e"], [("value", "v2")]),
                Req("PUT", ["/q"], [("dir", "true")]), Req("PUT", ["/d/_h"], [("value", "hidden")])]
    for step, req in enumerate(prologue):
        r = check(ref, tgt, req, seed, "prologue %d" % step, history)
        gen.observe(r, req)
        history.append(req.describe())
    for step in range(OPS):
        req = gen.next()
        r = check(ref, tgt, req, seed, step, history)
        gen.observe(r, req)
        history.append("%s -> %s" % (req.describe(), r.status))
    # the final state must agree too
    check(ref, tgt, Req("GET", ["/"], [("recursive", "true"), ("sorted", "true")]), seed, "final", history)


def test_generator_covers_the_reference(reference):
    """The generator must produce the interesting outcomes against real etcd,
    else the random test proves little."""
    side = Side(reference, "reference")
    seen_codes, seen_actions, seen_status = set(), set(), set()
    for seed in CI_SEEDS[:6]:
        gen = Gen(seed)
        for req in [Req("PUT", ["/a/b"], [("value", "v1")]), Req("PUT", ["/q"], [("dir", "true")])]:
            gen.observe(side.send(req))
        for _ in range(OPS):
            r = side.send(gen.next())
            gen.observe(r, req)
            seen_status.add(r.status)
            if r.body[0] == "json" and isinstance(r.body[1], dict):
                if "errorCode" in r.body[1]:
                    seen_codes.add(r.body[1]["errorCode"])
                if "action" in r.body[1]:
                    seen_actions.add(r.body[1]["action"])
    want_codes = {100, 101, 102, 104, 105, 107, 108, 201, 202, 203, 209, 210, 211, 212}
    want_actions = {"get", "set", "create", "update", "compareAndSwap", "delete", "compareAndDelete"}
    assert want_codes <= seen_codes, "codes never produced: %s" % (want_codes - seen_codes)
    assert want_actions <= seen_actions, "actions never produced: %s" % (want_actions - seen_actions)
    assert {200, 201, 301, 400, 403, 404, 405, 412} <= seen_status, seen_status


def test_comparator_catches_differences():
    """The comparison itself must be able to fail."""
    req = Req("GET", ["/a"], [])
    a = normalize(200, {"content-type": "application/json", "x-etcd-index": "7"},
                  b'{"action":"get","node":{"key":"/a","value":"1","modifiedIndex":5,"createdIndex":5}}\n', 3, req)
    same = normalize(200, {"content-type": "application/json", "x-etcd-index": "5"},
                     b'{"action":"get","node":{"key":"/a","value":"1","modifiedIndex":3,"createdIndex":3}}\n', 1, req)
    assert diff(a, same) == []
    for status, hdrs, body in [
        (201, {"content-type": "application/json", "x-etcd-index": "5"},
         b'{"action":"get","node":{"key":"/a","value":"1","modifiedIndex":3,"createdIndex":3}}\n'),
        (200, {"content-type": "application/json", "x-etcd-index": "6"},
         b'{"action":"get","node":{"key":"/a","value":"1","modifiedIndex":3,"createdIndex":3}}\n'),
        (200, {"content-type": "application/json", "x-etcd-index": "5"},
         b'{"action":"get","node":{"key":"/a","value":"1","createdIndex":3,"modifiedIndex":3}}\n'),
        (200, {"content-type": "application/json", "x-etcd-index": "5"},
         b'{"action":"get","node":{"key":"/a","value":"1","modifiedIndex":3,"createdIndex":3}}'),
        (200, {"content-type": "text/plain", "x-etcd-index": "5"},
         b'{"action":"get","node":{"key":"/a","value":"1","modifiedIndex":3,"createdIndex":3}}\n'),
        (200, {"content-type": "application/json"},
         b'{"action":"get","node":{"key":"/a","value":"1","modifiedIndex":3,"createdIndex":3}}\n'),
    ]:
        assert diff(a, normalize(status, hdrs, body, 1, req)) != [], body
    assert diff_values({"ttl": 10}, {"ttl": 11}) == []
    assert diff_values({"ttl": 10}, {"ttl": 12}) != []


# ---------------------------------------------------------------------------
# side-by-side scenarios that need time or volume

def test_ttl_expiry_side_by_side(pair):
    ref, tgt = pair
    check(ref, tgt, Req("PUT", ["/exp"], [("value", "soon"), ("ttl", "1")]))
    check(ref, tgt, Req("PUT", ["/expdir"], [("dir", "true"), ("ttl", "1")]))
    check(ref, tgt, Req("PUT", ["/keep"], [("value", "k"), ("ttl", "100")]))
    time.sleep(3.5)
    check(ref, tgt, Req("GET", ["/exp"]))
    check(ref, tgt, Req("GET", ["/expdir"]))
    check(ref, tgt, Req("GET", ["/"], [("recursive", "true"), ("sorted", "true")]))
    # the expire event is in the history (which of the two expired first may differ,
    # so each is watched on its own key)
    for key in ("/exp", "/expdir"):
        r = ref.send(Req("GET", [key], [("wait", "true"), ("waitIndex", Idx(1))]))
        t = tgt.send(Req("GET", [key], [("wait", "true"), ("waitIndex", Idx(1))]))
        assert r.body[1]["action"] == "set" or r.body[1]["action"] == "expire"
        r = ref.send(Req("GET", [key], [("wait", "true"), ("waitIndex", Idx(4))]))
        t = tgt.send(Req("GET", [key], [("wait", "true"), ("waitIndex", Idx(4))]))
        assert not t.timeout, "target did not return the expire event of %s from history" % key
        assert r.body[1]["action"] == "expire", r.show()
        d = diff_values(
            {k: v for k, v in r.body[1].items() if k != "node"},
            {k: v for k, v in t.body[1].items() if k != "node"})
        assert t.status == r.status and not d, "expire event differs for %s:\n%s\n%s\n%s" % (
            key, r.show(), t.show(), d)
        assert set(t.body[1]["node"]) == set(r.body[1]["node"]), (r.show(), t.show())


def test_refresh_keeps_value_side_by_side(pair):
    ref, tgt = pair
    check(ref, tgt, Req("PUT", ["/r"], [("value", "keep"), ("ttl", "2")]))
    check(ref, tgt, Req("PUT", ["/r"], [("refresh", "true"), ("ttl", "100")]))
    time.sleep(3)
    check(ref, tgt, Req("GET", ["/r"]))
    check(ref, tgt, Req("PUT", ["/r"], [("value", "perm")]))   # set without ttl: permanent again
    check(ref, tgt, Req("GET", ["/r"]))


def test_history_cleared_401(pair):
    ref, tgt = pair
    for side in (ref, tgt):
        for i in range(1050):
            st, _, _ = raw_request(side.server.client_port, "PUT", "/v2/keys/h%d" % (i % 7),
                                   "value=%d" % i)
            assert st in (200, 201)
    check(ref, tgt, Req("GET", ["/h1"], [("wait", "true"), ("waitIndex", Idx(1))]))
    check(ref, tgt, Req("GET", ["/h1"], [("wait", "true"), ("waitIndex", Idx(60))]))
    check(ref, tgt, Req("GET", ["/h1"], [("wait", "true"), ("waitIndex", Idx(200)), ("recursive", "true")]))


def _watch_in_thread(side, req, out):
    def run():
        m, p, b = req.render(side.base)
        try:
            out.append(raw_request(side.server.client_port, m, p, b, timeout=10))
        except Exception as e:  # noqa: BLE001
            out.append(e)
    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.parametrize("watch,write", [
    (Req("GET", ["/w/k"], [("wait", "true")]), Req("PUT", ["/w/k"], [("value", "new")])),
    (Req("GET", ["/w"], [("wait", "true"), ("recursive", "true")]), Req("PUT", ["/w/a/b"], [("value", "deep")])),
    (Req("GET", ["/w/k"], [("wait", "true"), ("waitIndex", Idx(3))]), Req("DELETE", ["/w"], [("recursive", "true")])),
])
def test_blocking_watch_side_by_side(pair, watch, write):
    ref, tgt = pair
    check(ref, tgt, Req("PUT", ["/w/k"], [("value", "old")]))
    results = {}
    threads = []
    for side in (ref, tgt):
        results[side.label] = []
        threads.append(_watch_in_thread(side, watch, results[side.label]))
    time.sleep(0.7)
    # hidden keys must not wake a recursive watcher on an ancestor
    for side in (ref, tgt):
        side.send(Req("PUT", ["/w/_hidden"], [("value", "h")]))
    time.sleep(0.3)
    check(ref, tgt, write)
    for t in threads:
        t.join(12)
    outs = []
    for side in (ref, tgt):
        res = results[side.label]
        assert res and not isinstance(res[0], Exception), "%s watch failed: %r" % (side.label, res)
        st, h, body = res[0]
        outs.append(normalize(st, h, body, side.base, watch))
    d = diff(outs[0], outs[1])
    assert not d, "watch reply differs:\nreference:\n%s\ntarget:\n%s\n%s" % (outs[0].show(), outs[1].show(), d)


# ---------------------------------------------------------------------------
# exact bytes, against the target alone (indexes relative to its base)

def exact(server, method, path, body=None):
    st, h, data = raw_request(server.client_port, method, path, body)
    return st, h, data


def test_exact_bodies(target):
    b = target.index()
    I = lambda n: b + n  # noqa: E731
    cases = [
        ("PUT", "/v2/keys/foo", "value=bar", 201,
         '{"action":"set","node":{"key":"/foo","value":"bar","modifiedIndex":%d,"createdIndex":%d}}\n' % (I(1), I(1))),
        ("PUT", "/v2/keys/foo", "value=baz", 200,
         '{"action":"set","node":{"key":"/foo","value":"baz","modifiedIndex":%d,"createdIndex":%d},'
         '"prevNode":{"key":"/foo","value":"bar","modifiedIndex":%d,"createdIndex":%d}}\n' % (I(2), I(2), I(1), I(1))),
        ("GET", "/v2/keys/foo", None, 200,
         '{"action":"get","node":{"key":"/foo","value":"baz","modifiedIndex":%d,"createdIndex":%d}}\n' % (I(2), I(2))),
        ("PUT", "/v2/keys/foo?prevExist=false", "value=x", 412,
         '{"errorCode":105,"message":"Key already exists","cause":"/foo","index":%d}\n' % I(2)),
        ("PUT", "/v2/keys/foo?prevValue=one", "value=two", 412,
         '{"errorCode":101,"message":"Compare failed","cause":"[one != baz]","index":%d}\n' % I(2)),
        ("PUT", "/v2/keys/foo?prevValue=baz", "value=qux", 200,
         '{"action":"compareAndSwap","node":{"key":"/foo","value":"qux","modifiedIndex":%d,"createdIndex":%d},'
         '"prevNode":{"key":"/foo","value":"baz","modifiedIndex":%d,"createdIndex":%d}}\n' % (I(3), I(2), I(2), I(2))),
        ("PUT", "/v2/keys/foo?prevExist=true", "value=upd", 200,
         '{"action":"update","node":{"key":"/foo","value":"upd","modifiedIndex":%d,"createdIndex":%d},'
         '"prevNode":{"key":"/foo","value":"qux","modifiedIndex":%d,"createdIndex":%d}}\n' % (I(4), I(2), I(3), I(2))),
        ("GET", "/v2/keys/nope", None, 404,
         '{"errorCode":100,"message":"Key not found","cause":"/nope","index":%d}\n' % I(4)),
        ("PUT", "/v2/keys/dir?dir=true", None, 201,
         '{"action":"set","node":{"key":"/dir","dir":true,"modifiedIndex":%d,"createdIndex":%d}}\n' % (I(5), I(5))),
        ("GET", "/v2/keys/x?recursive=maybe", None, 400,
         '{"errorCode":209,"message":"Invalid field","cause":"invalid value for \\"recursive\\"","index":0}\n'),
        ("GET", "/v2/keys/dir", None, 200,
         '{"action":"get","node":{"key":"/dir","dir":true,"modifiedIndex":%d,"createdIndex":%d}}\n' % (I(5), I(5))),
        ("PUT", "/v2/keys/dir/b", "value=2", 201, None),
        ("PUT", "/v2/keys/dir/a", "value=1", 201, None),
        ("GET", "/v2/keys/dir?sorted=true", None, 200,
         '{"action":"get","node":{"key":"/dir","dir":true,"nodes":['
         '{"key":"/dir/a","value":"1","modifiedIndex":%d,"createdIndex":%d},'
         '{"key":"/dir/b","value":"2","modifiedIndex":%d,"createdIndex":%d}],'
         '"modifiedIndex":%d,"createdIndex":%d}}\n' % (I(7), I(7), I(6), I(6), I(5), I(5))),
        ("PUT", "/v2/keys/dir", "value=x", 403,
         '{"errorCode":102,"message":"Not a file","cause":"/dir","index":%d}\n' % I(7)),
        ("DELETE", "/v2/keys/dir?dir=true", None, 403,
         '{"errorCode":108,"message":"Directory not empty","cause":"/dir","index":%d}\n' % I(7)),
        ("PUT", "/v2/keys/", "value=x", 400,
         '{"errorCode":107,"message":"Root is read only","cause":"/","index":%d}\n' % I(7)),
        ("POST", "/v2/keys/queue", "value=job", 201,
         '{"action":"create","node":{"key":"/queue/%020d","value":"job","modifiedIndex":%d,"createdIndex":%d}}\n'
         % (I(8), I(8), I(8))),
        ("DELETE", "/v2/keys/foo", None, 200,
         '{"action":"delete","node":{"key":"/foo","modifiedIndex":%d,"createdIndex":%d},'
         '"prevNode":{"key":"/foo","value":"upd","modifiedIndex":%d,"createdIndex":%d}}\n' % (I(9), I(2), I(4), I(2))),
        ("PUT", "/v2/keys/c", "value=one", 201, None),
        ("DELETE", "/v2/keys/c?prevIndex=%d" % I(10), None, 200,
         '{"action":"compareAndDelete","node":{"key":"/c","modifiedIndex":%d,"createdIndex":%d},'
         '"prevNode":{"key":"/c","value":"one","modifiedIndex":%d,"createdIndex":%d}}\n' % (I(11), I(10), I(10), I(10))),
        ("PUT", "/v2/keys/nv?noValueOnSuccess=true", "value=1", 201, '{"action":"set"}\n'),
        ("PUT", "/v2/keys/t?ttl=abc", "value=1", 400,
         '{"errorCode":202,"message":"The given TTL in POST form is not a number",'
         '"cause":"invalid value for \\"ttl\\"","index":0}\n'),
        ("PUT", "/v2/keys/t?prevValue=", "value=1", 400,
         '{"errorCode":201,"message":"PrevValue is Required in POST form",'
         '"cause":"\\"prevValue\\" cannot be empty","index":0}\n'),
        ("PUT", "/v2/keys/t?wait=true", "value=1", 400,
         '{"errorCode":209,"message":"Invalid field","cause":"\\"wait\\" can only be used with GET requests","index":0}\n'),
        ("PUT", "/v2/keys/%ff%fe", "value=x", 201,
         '{"action":"set","node":{"key":"/\\ufffd\\ufffd","value":"x","modifiedIndex":%d,"createdIndex":%d}}\n' % (I(13), I(13))),
    ]
    problems = []
    for method, path, body, want_status, want_body in cases:
        st, h, data = exact(target, method, path, body)
        if st != want_status or (want_body is not None and data != want_body.encode()):
            problems.append("%s %s %s\n  want %d %s\n  got  %d %s" % (
                method, path, body or "", want_status, want_body and want_body.encode(), st, data))
        if want_body is not None and want_body.startswith("{") and \
                h.get("content-type") != "application/json":
            problems.append("%s %s: content-type %r" % (method, path, h.get("content-type")))
        if "x-etcd-index" not in h:
            problems.append("%s %s: no X-Etcd-Index" % (method, path))
    assert not problems, "exact-body mismatches (base index %d):\n%s" % (b, "\n".join(problems))


def test_exact_ttl_body(target):
    b = target.index()
    st, h, data = raw_request(target.client_port, "PUT", "/v2/keys/ttlkey", "value=v&ttl=100")
    assert st == 201, data
    m = re.fullmatch(rb'\{"action":"set","node":\{"key":"/ttlkey","value":"v","expiration":"'
                     rb'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)","ttl":(\d+),'
                     rb'"modifiedIndex":(\d+),"createdIndex":(\d+)\}\}\n', data)
    assert m, data
    assert int(m.group(3)) in (99, 100), data
    assert int(m.group(4)) == int(m.group(5)) == b + 1, data


def test_headers_and_methods(target):
    st, h, data = raw_request(target.client_port, "PATCH", "/v2/keys/x")
    assert st == 405, (st, data)
    assert sorted(x.strip() for x in h.get("allow", "").split(",")) == \
        sorted(["HEAD", "GET", "PUT", "POST", "DELETE"]), h
    st, h, data = raw_request(target.client_port, "HEAD", "/v2/keys/")
    assert st == 200 and data == b"", (st, data)
    for k in ("x-etcd-index", "x-raft-index", "x-raft-term", "x-etcd-cluster-id"):
        assert k in h, "HEAD reply lacks %s: %s" % (k, h)
    assert re.fullmatch(r"[0-9a-f]+", h["x-etcd-cluster-id"]), h
    # As Go's net/http answers HEAD: the length the GET's body has, without the body.
    st, _, body = raw_request(target.client_port, "GET", "/v2/keys/")
    assert h.get("content-length") == str(len(body)), (h, body)
    st, h, data = raw_request(target.client_port, "GET", "/version")
    assert st == 200 and set(json.loads(data)) == {"etcdserver", "etcdcluster"}, data
    st, h, data = raw_request(target.client_port, "GET", "/health")
    assert st == 200 and json.loads(data)["health"] == "true", data


def test_stream_watch_side_by_side(pair):
    """wait=true&stream=true keeps the connection and sends one JSON line per event;
    refresh events are not sent to watchers, hidden children are not either."""
    import http.client
    ref, tgt = pair
    check(ref, tgt, Req("PUT", ["/s/k"], [("value", "0"), ("ttl", "100")]))
    watch = Req("GET", ["/s"], [("wait", "true"), ("stream", "true"), ("recursive", "true")])
    conns, resps = [], []
    for side in (ref, tgt):
        m, p, _ = watch.render(side.base)
        c = http.client.HTTPConnection("127.0.0.1", side.server.client_port, timeout=10)
        c.request(m, p)
        r = c.getresponse()
        assert r.status == 200, "%s: stream watch answered %d" % (side.label, r.status)
        conns.append(c)
        resps.append(r)
    try:
        writes = [Req("PUT", ["/s/k"], [("refresh", "true"), ("ttl", "200")]),
                  Req("PUT", ["/s/_hidden"], [("value", "h")]),
                  Req("PUT", ["/s/k"], [("value", "1")]),
                  Req("POST", ["/s/q"], [("value", "2")]),
                  Req("DELETE", ["/s/k"], [])]
        for w in writes:
            check(ref, tgt, w)
        lines = []
        for side, r in zip((ref, tgt), resps):
            got = []
            for _ in range(3):
                line = r.readline()
                assert line, "%s: stream ended early after %r" % (side.label, got)
                got.append(normalize(200, {}, line, side.base, watch))
            lines.append(got)
        for i, (a, b) in enumerate(zip(*lines)):
            d = diff(a, b)
            assert not d, "stream event %d differs:\nreference:\n%s\ntarget:\n%s\n%s" % (i, a.show(), b.show(), d)
        assert [e.body[1]["action"] for e in lines[0]] == ["set", "create", "delete"]
    finally:
        for c in conns:
            c.close()
