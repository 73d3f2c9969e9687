"""Seeded random differential test of the v3 KV and Lease API through the JSON gateway:
etcd 3.4 (reference) vs the target, request by request.

Each seed starts a fresh etcd and a fresh target and sends both the same ~200 random
POSTs (/v3/kv/range, put, deleterange, txn, compaction; /v3/lease/grant, revoke,
timetolive, leases) over a small key space with binary keys. The HTTP status, the
Content-Type and the JSON body of every reply must agree, field order included, once the
header's cluster_id, member_id and raft_term are masked. Leases are granted with explicit
IDs so that they match; the few granted with ID 0 are revoked at once, by each side's own
ID. A remaining TTL may differ by one second; TimeToLive's keys and LeaseLeases' list come
from Go maps in etcd (no order), so they are compared sorted. After the sequence every
retained revision is read back and a watch from the oldest one must replay the same events.

    MUSUBI_V3_SEED=17 pytest tests/test_v3_differential.py -k random   # replay one seed
    MUSUBI_V3_OPS=1000                                                  # longer sequences

The key space has 12 keys, so no reply holds more than 12 kvs: etcd sorts them with Go's
sort.Sort, an insertion sort (stable) up to 12 elements, so ties under a sort target
other than KEY keep ascending key order, ASCEND and DESCEND alike.
"""

import json
import os
import random
import socket

import pytest

from v3util import ChunkedStream, Gateway, b64, mask_headers

CI_SEEDS = list(range(1, 13))
SEEDS = [int(os.environ["MUSUBI_V3_SEED"])] if os.environ.get("MUSUBI_V3_SEED") else CI_SEEDS
OPS = int(os.environ.get("MUSUBI_V3_OPS", "200"))

KEYS = [b"\x00", b"\x00\x01", b"a", b"a/", b"a/1", b"a/2", b"a/2/x", b"b", b"b\x00", b"\x7f",
        b"\xfe\xff", b"\xff"]
VALUES = [b"", b"v", b"w", b"\x00\xff", "é".encode(), b"x" * 40]
LEASE_IDS = [1, 2, 3, 77, 4611686018427387909, 9223372036854775807, -7]
SORT_ORDERS = ["NONE", "ASCEND", "DESCEND"]
SORT_TARGETS = ["KEY", "VERSION", "CREATE", "MOD", "VALUE"]
CMP_RESULTS = ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"]
CMP_TARGETS = ["VERSION", "CREATE", "MOD", "VALUE", "LEASE"]
CMP_FIELD = {"VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision",
             "VALUE": "value", "LEASE": "lease"}


def prefix_end(key):
    k = bytearray(key)
    while k:
        if k[-1] < 0xff:
            k[-1] += 1
            return bytes(k)
        k.pop()
    return b"\x00"


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def has_delete(obj):
    if isinstance(obj, dict):
        return any(k in ("request_delete_range", "requestDeleteRange") or has_delete(v)
                   for k, v in obj.items())
    return isinstance(obj, list) and any(has_delete(v) for v in obj)


def strip_ignore(obj):
    """Drop ignore_value/ignore_lease from every Put of a Txn. etcd 3.4 checks them against
    the store as it was before the Txn, so a Put with one of them on a key that an earlier
    op of the same Txn deleted passes the check and then fails while being applied: etcd
    panics ("unexpected error during txn: etcdserver: key not found") and exits. A delete
    with range_end "\\0" escapes the duplicate-key check, so this needs no nesting."""
    if isinstance(obj, dict):
        for k in ("ignore_value", "ignoreValue", "ignore_lease", "ignoreLease"):
            obj.pop(k, None)
        for v in obj.values():
            strip_ignore(v)
    elif isinstance(obj, list):
        for v in obj:
            strip_ignore(v)


class Gen:
    """Random gateway requests. Its state (revision, compaction, granted leases) follows
    the reference's replies through observe()."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.rev = 1
        self.compacted = -1     # etcd's compactMainRev before the first compaction
        self.leases = set()

    # -- encodings: the gateway takes int64 as numbers or strings, enums by name or
    # number, field names as in the proto or in lowerCamel; both sides get the same bytes
    def p(self, x):
        return self.rng.random() < x

    def name(self, snake):
        return camel(snake) if self.p(0.15) else snake

    def i64(self, v):
        return str(v) if self.p(0.5) else v

    def enum(self, names, value):
        return names.index(value) if self.p(0.3) else value

    def obj(self, pairs):
        return {self.name(k): v for k, v in pairs}

    # -- pieces
    def key(self):
        if self.p(0.02):
            return b""
        return self.rng.choice(KEYS)

    def key_range(self):
        """(key, range_end or None) in every convention."""
        k = self.key()
        r = self.rng.random()
        if r < 0.45:
            return k, None
        if r < 0.62:
            return k, prefix_end(k)
        if r < 0.72:
            return k, b"\x00"
        if r < 0.82:
            return b"\x00", b"\x00"
        return k, self.rng.choice(KEYS)

    def some_rev(self):
        r = self.rng.random()
        low = max(self.compacted, 1)
        if r < 0.3:
            return self.rev
        if r < 0.4:
            return self.rev + self.rng.choice([1, 5])
        if r < 0.5 and self.compacted > 0:
            return self.compacted - self.rng.choice([0, 1])
        if r < 0.53:
            return 0
        if r < 0.58:
            return self.rng.randint(1, self.rev)
        return self.rng.randint(low, self.rev)

    def lease_id(self):
        return self.rng.choice(LEASE_IDS + sorted(self.leases) * 2)

    # -- requests
    def range_req(self):
        k, end = self.key_range()
        pairs = [("key", b64(k))]
        if end is not None:
            pairs.append(("range_end", b64(end)))
        if self.p(0.35):
            pairs.append(("limit", self.i64(self.rng.choice([0, 1, 2, 3, 5, -1]))))
        if self.p(0.25):
            pairs.append(("revision", self.i64(self.some_rev())))
        if self.p(0.35):
            pairs.append(("sort_order", self.enum(SORT_ORDERS, self.rng.choice(SORT_ORDERS))))
        if self.p(0.35):
            pairs.append(("sort_target", self.enum(SORT_TARGETS, self.rng.choice(SORT_TARGETS))))
        for b in ("serializable", "keys_only", "count_only"):
            if self.p(0.12):
                pairs.append((b, self.p(0.8)))
        for f in ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"):
            if self.p(0.07):
                pairs.append((f, self.i64(self.some_rev())))
        self.rng.shuffle(pairs)
        return self.obj(pairs)

    def put_req(self):
        pairs = [("key", b64(self.key()))]
        v = self.rng.choice(VALUES)
        if v or self.p(0.5):
            pairs.append(("value", b64(v)))
        if self.p(0.3):
            pairs.append(("lease", self.i64(self.lease_id() if self.p(0.9) else 0)))
        if self.p(0.3):
            pairs.append(("prev_kv", True))
        if self.p(0.1):
            pairs.append(("ignore_value", True))
            if self.p(0.7):
                pairs = [x for x in pairs if x[0] != "value"]
        if self.p(0.1):
            pairs.append(("ignore_lease", True))
            if self.p(0.7):
                pairs = [x for x in pairs if x[0] != "lease"]
        return self.obj(pairs)

    def delete_req(self):
        k, end = self.key_range() if self.p(0.5) else (self.key(), None)
        pairs = [("key", b64(k))]
        if end is not None:
            pairs.append(("range_end", b64(end)))
        if self.p(0.4):
            pairs.append(("prev_kv", True))
        return self.obj(pairs)

    def compare(self):
        target = self.rng.choice(CMP_TARGETS)
        k, end = self.key_range()
        if target == "VERSION":
            v = self.i64(self.rng.choice([0, 1, 2, 3]))
        elif target in ("CREATE", "MOD"):
            v = self.i64(self.some_rev())
        elif target == "VALUE":
            v = b64(self.rng.choice(VALUES))
        else:
            v = self.i64(self.rng.choice([0, 0] + LEASE_IDS[:3]))
        pairs = [("key", b64(k)), ("result", self.enum(CMP_RESULTS, self.rng.choice(CMP_RESULTS))),
                 ("target", self.enum(CMP_TARGETS, target)), (CMP_FIELD[target], v)]
        if end is not None and self.p(0.6):
            pairs.append(("range_end", b64(end)))
        return self.obj(pairs)

    def op(self, depth):
        r = self.rng.random()
        if r < 0.02:
            return {}
        if r < 0.36:
            return {self.name("request_range"): self.range_req()}
        if r < 0.78:
            return {self.name("request_put"): self.put_req()}
        if r < 0.9 or depth >= 2:
            return {self.name("request_delete_range"): self.delete_req()}
        return {self.name("request_txn"): self.txn_req(depth + 1)}

    def txn_req(self, depth=0):
        if depth == 0 and self.p(0.04):
            # the op limit: 128 is fine, 129 is ErrTooManyOps, in any of the three lists
            n = self.rng.choice([128, 129])
            which = self.rng.choice(["compare", "success", "failure"])
            k = b64(self.rng.choice(KEYS))
            item = ({"key": k, "target": "VERSION", "result": "GREATER", "version": "-1"}
                    if which == "compare" else {"request_range": {"key": k}})
            return {which: [item] * n}
        pairs = []
        if self.p(0.9):
            pairs.append(("compare", [self.compare() for _ in range(self.rng.randint(0, 3))]))
        for branch in ("success", "failure"):
            if self.p(0.85):
                pairs.append((branch, [self.op(depth) for _ in range(self.rng.randint(0, 3))]))
        txn = self.obj(pairs)
        if depth == 0 and has_delete(txn):
            strip_ignore(txn)
        return txn

    def prologue(self):
        """Every key written once, so that the sequence starts with data."""
        return [("/kv/put", {"key": b64(k), "value": b64(VALUES[i % len(VALUES)])}, "put")
                for i, k in enumerate(KEYS)]

    def next(self):
        """(path, body dict, kind)."""
        r = self.rng.random()
        if r < 0.28:
            return "/kv/range", self.range_req(), "range"
        if r < 0.50:
            return "/kv/put", self.put_req(), "put"
        if r < 0.58:
            return "/kv/deleterange", self.delete_req(), "delete"
        if r < 0.78:
            return "/kv/txn", self.txn_req(), "txn"
        if r < 0.82:
            body = self.obj([("revision", self.i64(self.some_rev()))]
                            + ([("physical", True)] if self.p(0.5) else []))
            return "/kv/compaction", body, "compact"
        if r < 0.89:
            ttl = self.rng.choice([60, 100, 3600, 9000000000, 9000000001, 1, 0, -5])
            lid = self.lease_id() if self.p(0.85) else 0
            return "/lease/grant", {"TTL": self.i64(ttl), "ID": self.i64(lid)}, "grant"
        if r < 0.93:
            path = self.rng.choice(["/lease/revoke", "/kv/lease/revoke"])
            return path, {"ID": self.i64(self.lease_id())}, "revoke"
        if r < 0.97:
            path = self.rng.choice(["/lease/timetolive", "/kv/lease/timetolive"])
            body = {"ID": self.i64(self.lease_id())}
            if self.p(0.6):
                body["keys"] = True
            return path, body, "ttl"
        return self.rng.choice(["/lease/leases", "/kv/lease/leases"]), {}, "leases"

    def observe(self, kind, body, status, reply):
        if not isinstance(reply, dict):
            return
        rev = int(reply.get("header", {}).get("revision", 0))
        if rev:
            self.rev = rev
        if status != 200:
            return
        if kind == "compact":
            self.compacted = int(body.get("revision"))
        elif kind == "grant":
            self.leases.add(int(reply["ID"]))
        elif kind == "revoke":
            self.leases.discard(int(body["ID"]))


class Side:
    def __init__(self, server, label):
        self.label = label
        self.server = server
        self.gw = Gateway(server)

    def send(self, path, raw):
        r = self.gw.raw(path, raw)
        try:
            body = json.loads(r.content)
        except ValueError:
            body = {"<not JSON>": r.content.decode("utf-8", "replace")}
        return r.status_code, r.headers.get("Content-Type"), body, r.content


def field_orders(obj, path="", out=None):
    """Every object's field names in order, keyed by where it is (list indices dropped)."""
    out = set() if out is None else out
    if isinstance(obj, dict):
        out.add((path, tuple(obj)))
        for k, v in obj.items():
            field_orders(v, path + "/" + k, out)
    elif isinstance(obj, list):
        for v in obj:
            field_orders(v, path + "[]", out)
    return out


def normalize(path, status, ctype, body, auto_id=None):
    body = mask_headers(json.loads(json.dumps(body)))
    if isinstance(body, dict):
        if path.endswith("/timetolive") and isinstance(body.get("keys"), list):
            body["keys"] = sorted(body["keys"])
        if path.endswith("/leases") and isinstance(body.get("leases"), list):
            body["leases"] = sorted(body["leases"], key=lambda l: json.dumps(l, sort_keys=True))
        if auto_id is not None and body.get("ID") == auto_id:
            body["ID"] = "<server-chosen lease ID>"
    return {"status": status, "content-type": ctype, "body": body}


def differences(path, ref, tgt):
    """A list of human-readable differences between two normalized replies."""
    out = []
    for f in ("status", "content-type"):
        if ref[f] != tgt[f]:
            out.append("%s: etcd %r, target %r" % (f, ref[f], tgt[f]))
    a, b = ref["body"], tgt["body"]
    if (path.endswith("/timetolive") and isinstance(a, dict) and isinstance(b, dict)
            and "TTL" in a and "TTL" in b and int(a["TTL"]) >= 0 and int(b["TTL"]) >= 0
            and abs(int(a["TTL"]) - int(b["TTL"])) <= 1):
        b = dict(b, TTL=a["TTL"])    # remaining seconds, truncated: may tick in between
    if a != b:
        out.append("body:\n  etcd   %s\n  target %s" % (json.dumps(a), json.dumps(b)))
    elif field_orders(a) != field_orders(b):
        out.append("field order: etcd %s, target %s" % (sorted(field_orders(a)), sorted(field_orders(b))))
    return out


class Mismatch(AssertionError):
    pass


class Pair:
    def __init__(self, ref_server, tgt_server, seed):
        self.ref = Side(ref_server, "etcd")
        self.tgt = Side(tgt_server, "target")
        self.seed = seed
        self.history = []

    def check(self, step, path, body, auto=False):
        """Send one request to both; fail on a difference. Returns the reference's
        (status, parsed body) and the target's."""
        raw = json.dumps(body)
        rs, rc, rb, rraw = self.ref.send(path, raw)
        ts, tc, tb, traw = self.tgt.send(path, raw)
        ra = ta = None
        if auto and rs == 200 and ts == 200:
            ra, ta = rb.get("ID"), tb.get("ID")
        nr = normalize(path, rs, rc, rb, ra)
        nt = normalize(path, ts, tc, tb, ta)
        diff = differences(path, nr, nt)
        if auto and not diff and rs == 200:
            if not (isinstance(ta, str) and ta.isdigit() and int(ta) > 0):
                diff.append("a server-chosen lease ID must be a positive int64 as a string, got %r" % (ta,))
        self.history.append("%s %s %s -> %d" % (step, path, raw[:300], rs))
        if diff:
            lines = ["v3 differential mismatch (seed %s, step %s; rerun with MUSUBI_V3_SEED=%s)"
                     % (self.seed, step, self.seed),
                     "request: POST /v3%s %s" % (path, raw),
                     "etcd   -> %d %s" % (rs, rraw[:2000].decode("utf-8", "replace")),
                     "target -> %d %s" % (ts, traw[:2000].decode("utf-8", "replace"))]
            lines += diff
            lines.append("last requests:")
            lines += ["  " + h for h in self.history[-12:]]
            raise Mismatch("\n".join(lines))
        return (rs, rb), (ts, tb)


def run_sequence(pair, seed, ops):
    gen = Gen(seed)
    for i, (path, body, kind) in enumerate(gen.prologue()):
        (rs, rb), _ = pair.check("prologue %d" % i, path, body)
        gen.observe(kind, body, rs, rb)
    for step in range(ops):
        path, body, kind = gen.next()
        auto = kind == "grant" and int(body["ID"]) == 0
        (rs, rb), (ts, tb) = pair.check(step, path, body, auto=auto)
        gen.observe(kind, body, rs, rb)
        if kind == "grant" and rs == 200 and (int(rb["TTL"]) < 60 or int(body["ID"]) == 0):
            # a short lease would expire at a moment that differs between the two servers,
            # and a server-chosen ID differs anyway: revoke it at once, each side its own
            gen.leases.discard(int(rb["ID"]))
            r1 = pair.ref.gw.raw("/lease/revoke", {"ID": rb["ID"]})
            r2 = pair.tgt.gw.raw("/lease/revoke", {"ID": tb["ID"]})
            d = differences("/lease/revoke", normalize("", r1.status_code, None, r1.json()),
                            normalize("", r2.status_code, None, r2.json()))
            if d:
                raise Mismatch("seed %s step %s: revoking the short or server-chosen lease "
                               "differs:\n%s" % (seed, step, "\n".join(d)))
    return gen


def final_checks(pair, gen):
    """Every retained revision read back, then one watch replaying all of history."""
    first = max(gen.compacted, 1)
    pair.check("final-all", "/kv/range", {"key": "AAA=", "range_end": "AA=="})
    pair.check("final-all", "/kv/range", {"key": "AA==", "range_end": "AA=="})
    for rev in range(first, gen.rev + 1):
        pair.check("final@%d" % rev, "/kv/range", {"key": "AA==", "range_end": "AA==", "revision": rev})
    pair.check("final-leases", "/lease/leases", {})
    for lid in sorted(gen.leases):
        pair.check("final-lease", "/lease/timetolive", {"ID": lid, "keys": True})
    # the watch starts after the compaction revision: an event at exactly that revision
    # (a tombstone there) is replayed by etcd only until its background compaction ran
    start = first + 1 if gen.compacted > 0 else 1
    if gen.rev >= start:
        ev = []
        for side in (pair.ref, pair.tgt):
            ev.append(watch_history(side.server, start, gen.rev))
        if ev[0] != ev[1]:
            for i, (a, b) in enumerate(zip(ev[0], ev[1])):
                if a != b:
                    break
            raise Mismatch("seed %s: a watch from rev %d replays different events; first "
                           "difference at event %d:\n  etcd   %s\n  target %s"
                           % (pair.seed, start, i, json.dumps(ev[0][i:i + 3]), json.dumps(ev[1][i:i + 3])))


def watch_history(server, start, last):
    """All events of a gateway watch of every key from `start` up to revision `last`."""
    st = ChunkedStream(server.client_port, "/v3/watch",
                       {"create_request": {"key": "AA==", "range_end": "AA==",
                                           "start_revision": start, "prev_kv": True}})
    try:
        assert st.status == 200, st.status_line
        events = []
        first = st.message(timeout=10)
        assert first["result"].get("created") is True, first
        while not events or int(events[-1]["kv"]["mod_revision"]) < last:
            m = st.message(timeout=10)["result"]
            assert not m.get("canceled"), m
            events.extend(m.get("events", []))
        return events
    finally:
        st.close()


@pytest.fixture
def pair_servers(fleet):
    ref = fleet.etcd(name="ref").start(wait=False)
    tgt = fleet.target().start(wait=False)
    ref.wait_ready()
    tgt.wait_ready()
    return ref, tgt


@pytest.mark.parametrize("seed", SEEDS)
def test_random_sequence(pair_servers, seed):
    ref, tgt = pair_servers
    pair = Pair(ref, tgt, seed)
    try:
        gen = run_sequence(pair, seed, OPS)
        final_checks(pair, gen)
    except Mismatch as e:
        print(str(e))
        raise


def test_generator_covers_the_reference(fleet):
    """Against real etcd the generator must produce the interesting outcomes, or the
    random test proves little: every error message, both Txn branches, more, counts,
    prev_kvs, nested Txns, leases with keys."""
    ref = fleet.etcd(name="ref").start()
    seen = set()
    for seed in CI_SEEDS:
        # one etcd for all seeds: the state carries over, which is fine here
        gen = Gen(seed)
        gen.rev = Gateway(ref).rev()
        side = Side(ref, "etcd")
        for i in range(len(KEYS) + OPS):
            path, body, kind = gen.prologue()[i] if i < len(KEYS) else gen.next()
            st, _, reply, _ = side.send(path, json.dumps(body))
            gen.observe(kind, body, st, reply)
            seen.add((kind, st))
            if isinstance(reply, dict):
                if "message" in reply:
                    seen.add(reply["message"])
                for k in ("more", "succeeded", "prev_kv", "prev_kvs", "count", "keys", "leases", "deleted"):
                    if reply.get(k):
                        seen.add((kind, k))
                text = json.dumps(reply)
                if '"response_txn"' in text:
                    seen.add("nested txn")
                if '"lease": "' in text and kind in ("range", "txn"):
                    seen.add("kv with a lease")
            if kind == "grant" and st == 200:
                seen.add(("grant TTL", reply["TTL"]))
                if int(reply["TTL"]) < 60 or int(body["ID"]) == 0:
                    gen.leases.discard(int(reply["ID"]))
                    side.gw.raw("/lease/revoke", {"ID": reply["ID"]})
    want = {
        "etcdserver: key is not provided", "etcdserver: key not found",
        "etcdserver: value is provided", "etcdserver: too many operations in txn request",
        "etcdserver: duplicate key given in txn request",
        "etcdserver: mvcc: required revision has been compacted",
        "etcdserver: mvcc: required revision is a future revision",
        "etcdserver: too large lease TTL", "etcdserver: requested lease not found",
        "etcdserver: lease already exists",
        ("range", "more"), ("range", "count"), ("txn", "succeeded"), ("put", "prev_kv"),
        ("delete", "prev_kvs"), ("delete", "deleted"), ("ttl", "keys"), ("leases", "leases"),
        ("compact", 200), ("grant", 200), ("revoke", 200), ("revoke", 404),
        ("grant TTL", "2"), "nested txn", "kv with a lease",
    }
    missing = want - seen
    assert not missing, "the generator never produced: %s" % sorted(map(str, missing))


def test_comparator_catches_differences():
    """The comparison itself must be able to fail."""
    h = {"cluster_id": "1", "member_id": "2", "revision": "5", "raft_term": "2"}
    base = {"header": h, "kvs": [{"key": "YQ==", "create_revision": "2", "mod_revision": "5",
                                  "version": "3", "value": "dg=="}], "count": "1"}
    ref = normalize("/kv/range", 200, "application/json", base)
    other_ids = dict(base, header=dict(h, cluster_id="9", member_id="8", raft_term="3"))
    assert differences("/kv/range", ref, normalize("/kv/range", 200, "application/json", other_ids)) == []
    for variant in [
        dict(base, header=dict(h, revision="6")),
        dict(base, count="2"),
        dict(base, more=True),
        {"kvs": base["kvs"], "header": h, "count": "1"},                     # field order
        dict(base, kvs=[dict(base["kvs"][0], lease="0")]),
    ]:
        assert differences("/kv/range", ref, normalize("/kv/range", 200, "application/json", variant)), variant
    assert differences("/kv/range", ref, normalize("/kv/range", 400, "application/json", base))
    assert differences("/kv/range", ref, normalize("/kv/range", 200, "text/plain", base))
    t1 = normalize("/lease/timetolive", 200, "application/json", {"header": h, "ID": "1", "TTL": "59"})
    t2 = normalize("/lease/timetolive", 200, "application/json", {"header": h, "ID": "1", "TTL": "58"})
    t3 = normalize("/lease/timetolive", 200, "application/json", {"header": h, "ID": "1", "TTL": "57"})
    assert differences("/lease/timetolive", t1, t2) == []
    assert differences("/lease/timetolive", t1, t3)
