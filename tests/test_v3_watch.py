"""The v3 Watch service over gRPC, against etcd 3.4's behaviour.

Raw gRPC through python etcd3 0.12's generated stubs (to see every field of every
response: created, canceled, watch IDs, headers, fragments), python etcd3's own watch
helper, and Debian's etcdctl in v3 mode (`watch --prefix --rev --prev-kv`, read from its
stdout while it runs):
- `created` comes before any event, with the current revision; IDs are chosen by etcd's
  counter from 0; refusals (empty range, duplicate ID) are created+canceled with ID -1;
- history replays from an old revision, with prev_kv, tombstones and filters; a Txn's
  changes arrive in one response, in op order;
- a start below the compaction revision is canceled with `compact_revision` (etcdctl:
  "watch was canceled (...compacted)"); a start at it is accepted;
- cancel and progress requests; a half-closed request stream keeps its watches;
- a client that does not read slows no write and misses no event; a quiet watch sees the
  first change to its keys after seconds of other writes, and watches made while writes
  flow miss none after their `created` revision;
- `fragment` splits a response larger than --max-request-bytes;
- with `hasleader`, losing the leader ends the stream (`Unavailable`, "no leader");
- v2 writes are v3 events in musubi (a PUT, and a TTL expiry as a DELETE).

MUSUBI_TEST_TARGET=etcd runs it against etcd 3.4 itself, except the v2 case (etcd keeps
the v2 store and MVCC apart).
"""

import queue
import threading
import time

import grpc
import pytest

import harness
from v3util import Ctl3, running

etcd3 = pytest.importorskip("etcd3")
from etcd3 import etcdrpc  # noqa: E402

PUT, DELETE = 0, 1
NOPUT, NODELETE = 0, 1


class Conn:
    """A gRPC channel to one server, with KV helpers that return the response."""

    def __init__(self, server):
        self.server = server
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % server.client_port)
        self.kv = etcdrpc.KVStub(self.channel)

    def put(self, key, value=b""):
        return self.kv.Put(etcdrpc.PutRequest(key=b(key), value=b(value)), timeout=10)

    def delete(self, key):
        return self.kv.DeleteRange(etcdrpc.DeleteRangeRequest(key=b(key)), timeout=10)

    def puts(self, pairs):
        """One Txn putting every (key, value): one revision."""
        ops = [etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=b(k), value=b(v)))
               for k, v in pairs]
        return self.kv.Txn(etcdrpc.TxnRequest(success=ops), timeout=10)

    def rev(self):
        return self.kv.Range(etcdrpc.RangeRequest(key=b"\0"), timeout=10).header.revision

    def compact(self, rev):
        return self.kv.Compact(etcdrpc.CompactionRequest(revision=rev, physical=True), timeout=10)

    def watch(self, metadata=None):
        return Stream(self.channel, metadata)

    def close(self):
        self.channel.close()


def b(x):
    return x.encode() if isinstance(x, str) else x


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7f, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def fragment(resp):
    """WatchResponse.fragment (field 7), which etcd3 0.12's stubs do not know: read from
    the top-level fields of the serialized message."""
    data, i = resp.SerializeToString(), 0

    def read_varint():
        nonlocal i
        shift = value = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7f) << shift
            shift += 7
            if not byte & 0x80:
                return value
    found = False
    while i < len(data):
        tag = read_varint()
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value = read_varint()
            if field == 7:
                found = bool(value)
        elif wire == 2:
            size = read_varint()
            i += size
        else:
            raise ValueError("unexpected wire type %d" % wire)
    return found


class Stream:
    """One Watch stream: requests go in through a queue; responses are read by a thread
    started on the first read (so a test can leave a stream unread)."""

    def __init__(self, channel, metadata=None):
        self.requests = queue.Queue()
        self.responses = queue.Queue()
        self.call = etcdrpc.WatchStub(channel).Watch(self._requests(), metadata=metadata)
        self.reader = None

    def _requests(self):
        while True:
            r = self.requests.get()
            if r is None:
                return
            yield r

    def _read(self):
        try:
            for r in self.call:
                self.responses.put(r)
            self.responses.put(EOFError("stream ended"))
        except grpc.RpcError as e:
            self.responses.put(e)

    def create(self, key, range_end=b"", watch_id=0, fragment=False, **kw):
        create = etcdrpc.WatchCreateRequest(key=b(key), range_end=b(range_end), **kw)
        # etcd3 0.12's stubs predate watch_id (7) and fragment (8): add them as raw fields
        create.MergeFromString(
            (b"\x38" + varint(watch_id) if watch_id else b"") + (b"\x40\x01" if fragment else b""))
        self.requests.put(etcdrpc.WatchRequest(create_request=create))

    def cancel(self, watch_id):
        self.requests.put(etcdrpc.WatchRequest(
            cancel_request=etcdrpc.WatchCancelRequest(watch_id=watch_id)))

    def progress(self):
        # etcd3 0.12's stubs predate WatchProgressRequest (field 3): send it as raw bytes.
        raw = etcdrpc.WatchRequest()
        raw.MergeFromString(b"\x1a\x00")
        self.requests.put(raw)

    def half_close(self):
        self.requests.put(None)

    def next(self, timeout=10):
        if self.reader is None:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
        r = self.responses.get(timeout=timeout)
        if isinstance(r, Exception):
            raise r
        return r

    def nothing_for(self, seconds):
        try:
            r = self.next(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError("unexpected response: %s" % r)

    def events(self, count, timeout=10):
        """Responses until `count` events have come (none created or canceled)."""
        out = []
        deadline = time.time() + timeout
        while len(out) < count:
            r = self.next(timeout=max(0.1, deadline - time.time()))
            assert not r.created and not r.canceled, r
            out.extend(r.events)
        assert len(out) == count, out
        return out

    def close(self):
        self.call.cancel()


def ev(e):
    """(type, key, value, mod_revision) of an event; prev: (value, mod_revision) or None."""
    prev = (e.prev_kv.value, e.prev_kv.mod_revision) if e.HasField("prev_kv") else None
    return (e.type, e.kv.key, e.kv.value, e.kv.mod_revision, prev)


@pytest.fixture
def conn(target):
    c = Conn(target)
    yield c
    c.close()


def test_created_comes_first_then_each_change(conn):
    rev = conn.rev()
    w = conn.watch()
    w.create("a")
    r = w.next()
    assert (r.created, r.canceled, r.watch_id, r.header.revision) == (True, False, 0, rev)
    assert not r.events
    put = conn.put("a", "1")
    r = w.next()
    assert r.watch_id == 0 and r.header.revision == put.header.revision
    assert [ev(e) for e in r.events] == [(PUT, b"a", b"1", put.header.revision, None)]
    kv = r.events[0].kv
    assert (kv.create_revision, kv.version, kv.lease) == (put.header.revision, 1, 0)
    conn.put("b", "1")  # another key: not seen
    d = conn.delete("a")
    r = w.next()
    # a DELETE's kv is only the key and the revision it went at
    assert [ev(e) for e in r.events] == [(DELETE, b"a", b"", d.header.revision, None)]
    assert (r.events[0].kv.create_revision, r.events[0].kv.version) == (0, 0)
    w.close()


def test_history_replays_with_prev_kv_deletes_and_txns(conn):
    r1 = conn.put("k/1", "a").header.revision
    r2 = conn.put("k/2", "b").header.revision
    r3 = conn.put("k/1", "c").header.revision
    r4 = conn.delete("k/2").header.revision
    r5 = conn.puts([("k/3", "x"), ("k/0", "y"), ("l", "z")]).header.revision
    w = conn.watch()
    w.create("k/", "k0", start_revision=r1, prev_kv=True)
    assert w.next().created
    got = [ev(e) for e in w.events(6)]
    assert got == [
        (PUT, b"k/1", b"a", r1, None),
        (PUT, b"k/2", b"b", r2, None),
        (PUT, b"k/1", b"c", r3, (b"a", r1)),
        (DELETE, b"k/2", b"", r4, (b"b", r2)),
        (PUT, b"k/3", b"x", r5, None),   # a Txn's puts: in op order
        (PUT, b"k/0", b"y", r5, None),
    ]
    # from a revision in the middle, everything from the key on ("\0" end)
    w.create("k/2", "\0", start_revision=r4)
    r = w.next()
    assert r.created and r.watch_id == 1
    assert [ev(e)[:4] for e in w.events(3)] == [
        (DELETE, b"k/2", b"", r4), (PUT, b"k/3", b"x", r5), (PUT, b"l", b"z", r5)]
    # a Txn's changes reach a live watch in one response
    r6 = conn.puts([("k/5", "1"), ("k/4", "2")]).header.revision
    got = sorted(([r.watch_id, r.header.revision, [ev(e)[:4] for e in r.events]]
                  for r in (w.next(), w.next())))
    assert got == [[i, r6, [(PUT, b"k/5", b"1", r6), (PUT, b"k/4", b"2", r6)]] for i in (0, 1)]
    w.close()


def test_filters(conn):
    w = conn.watch()
    w.create("f", filters=[NOPUT])
    w.create("f", filters=[NODELETE])
    assert [w.next().watch_id for _ in range(2)] == [0, 1]
    p = conn.put("f", "1").header.revision
    d = conn.delete("f").header.revision
    seen = {}
    for _ in range(2):
        r = w.next()
        seen[r.watch_id] = [ev(e)[:4] for e in r.events]
    assert seen == {0: [(DELETE, b"f", b"", d)], 1: [(PUT, b"f", b"1", p)]}
    w.close()


def test_ids_refusals_cancel_and_progress(conn):
    rev = conn.rev()
    w = conn.watch()
    w.create("a", watch_id=5)
    w.create("a")
    w.create("a")
    assert [w.next().watch_id for _ in range(3)] == [5, 0, 1]
    w.create("a", watch_id=5)
    r = w.next()
    assert (r.created, r.canceled, r.watch_id, r.header.revision) == (True, True, -1, rev)
    assert r.cancel_reason == "mvcc: duplicate watch ID provided on the WatchStream"
    w.create("b", "a")
    r = w.next()
    assert (r.created, r.canceled, r.watch_id) == (True, True, -1)
    assert r.cancel_reason == "mvcc: watcher range is empty"
    w.cancel(0)
    r = w.next()
    assert (r.watch_id, r.canceled, r.created, r.header.revision) == (0, True, False, rev)
    w.cancel(0)  # no longer there: no reply
    w.progress()
    r = w.next()
    assert (r.watch_id, r.created, r.canceled, r.header.revision) == (-1, False, False, rev)
    # the automatic ID counter only moves up: 0, canceled, is not handed out again
    w.create("a")
    assert w.next().watch_id == 2
    # a canceled watch gets nothing more
    p = conn.put("a", "x").header.revision
    got = sorted((r.watch_id, [ev(e)[:4] for e in r.events]) for r in [w.next(), w.next(), w.next()])
    assert got == [(i, [(PUT, b"a", b"x", p)]) for i in (1, 2, 5)]
    assert w.nothing_for(0.5)
    w.close()


def test_a_compacted_start_is_canceled_after_created(conn):
    for i in range(4):
        conn.put("c", str(i))
    rev = conn.rev()
    conn.compact(rev - 1)
    w = conn.watch()
    w.create("c", start_revision=rev - 2)
    r = w.next()
    assert r.created and not r.canceled and r.watch_id == 0 and r.header.revision == rev
    r = w.next()
    assert (r.watch_id, r.canceled, r.compact_revision, r.cancel_reason) == (0, True, rev - 1, "")
    assert r.header.revision == 0 and r.header.cluster_id != 0
    assert not r.events
    # a start at the compaction revision is accepted
    w.create("c", start_revision=rev - 1)
    r = w.next()
    assert r.created and not r.canceled and r.watch_id == 1
    p = conn.put("c", "new").header.revision
    while True:
        r = w.next()
        assert not r.canceled, r
        if r.events and r.events[-1].kv.mod_revision == p:
            break
    w.close()


def test_a_half_closed_request_stream_keeps_its_watches(conn):
    w = conn.watch()
    w.create("h")
    w.half_close()
    assert w.next().created
    time.sleep(0.3)
    p = conn.put("h", "1").header.revision
    assert [ev(e)[:4] for e in w.events(1)] == [(PUT, b"h", b"1", p)]
    w.close()


def test_a_client_that_does_not_read_slows_no_write_and_misses_nothing(conn):
    w = conn.watch()
    # The create is sent by gRPC's own thread and may reach the server after the first
    # write: a watch from the current revision would then rightly start after it. The
    # start revision names the first write whichever comes first.
    w.create("s/", "s0", start_revision=conn.rev() + 1)
    # created is in flight; the stream is not read until every write is done
    value = "v" * 2000
    start = time.time()
    revs = [conn.puts([("s/%03d/%d" % (i, j), value) for j in range(10)]).header.revision
            for i in range(300)]  # about 6 MB of events, far past any flow-control window
    took = time.time() - start
    assert w.next().created
    events = w.events(3000, timeout=60)
    assert [e.kv.mod_revision for e in events] == [r for r in revs for _ in range(10)]
    assert [e.kv.key for e in events] == [
        b"s/%03d/%d" % (i, j) for i in range(300) for j in range(10)]
    assert took < 60, took
    w.close()


def test_a_quiet_watch_sees_the_first_change_to_its_keys_after_a_long_wait(conn):
    """Streams are woken only for changes to their own keys; one that waits through
    seconds of other writes (and musubi's periodic look, which passes over them unread)
    still gets the first change to its key, exactly once."""
    w = conn.watch()
    w.create("quiet")
    w.create("quiet-prefix/", "quiet-prefix0")
    w.create("quiet-zz", "\0")  # every key from quiet-zz on
    assert all(w.next().created for _ in range(3))
    deadline = time.time() + 2.5
    while time.time() < deadline:
        conn.puts([("noise/%d" % i, "x") for i in range(5)])
    assert w.nothing_for(0.3)
    r1 = conn.put("quiet", "1").header.revision
    r2 = conn.put("quiet-prefix/a", "2").header.revision
    r3 = conn.put("quiet-zzz", "3").header.revision
    got = sorted((r.watch_id, ev(e)[:4]) for r in [w.next(), w.next(), w.next()]
                 for e in r.events)
    assert got == [(0, (PUT, b"quiet", b"1", r1)), (1, (PUT, b"quiet-prefix/a", b"2", r2)),
                   (2, (PUT, b"quiet-zzz", b"3", r3))]
    assert w.nothing_for(0.5)
    w.close()


def test_a_stream_with_many_watches_misses_nothing_across_seconds_of_writes(conn):
    """Each write makes one response per watch, and the client reads nothing until the
    writes are done: the stream's queue is full, and it reads the history only when it has
    room. musubi's once-a-second look must not take the changes it was woken for and has
    not read yet for quiet ones."""
    w = conn.watch()
    start = conn.rev() + 1
    for _ in range(150):
        w.create("many/", "many0", start_revision=start)
    # Not read until every write is done: the responses back up into the stream's queue.
    revs = []
    for i in range(100):
        revs.append(conn.put("many/%d" % (i % 7), "v").header.revision)
        time.sleep(0.03)
    created, got = 0, {}
    while created < 150 or sum(got.values()) < 150 * 100:
        r = w.next(timeout=30)
        created += r.created
        for e in r.events:
            got[e.kv.mod_revision] = got.get(e.kv.mod_revision, 0) + 1
    assert got == {r: 150 for r in revs}
    assert w.nothing_for(0.3)
    w.close()


def test_watches_created_while_writes_flow_miss_nothing(conn):
    """A watch made while other clients write gets every change to its key after the
    revision its `created` reply names, in order, none twice: the moment a watch starts
    is where a change could slip between reading the history and being woken for it."""
    writes = []

    def writer(stop, i):
        c = Conn(conn.server)
        n = 0
        while not stop.is_set():
            r = c.put("flow/%d" % (n % 4), "%d-%d" % (i, n)).header.revision
            writes.append((r, b"flow/%d" % (n % 4)))
            n += 1
        c.close()
    watches = []
    with running(writer, [(i,) for i in range(3)]):
        for round_ in range(12):
            w = conn.watch()
            key = "flow/%d" % (round_ % 4)
            w.create(key)
            created = w.next()
            assert created.created
            watches.append((w, key.encode(), created.header.revision))
            time.sleep(0.15)
    assert len(writes) > 100
    for w, key, since in watches:
        want = sorted(r for r, k in writes if k == key and r > since)
        got = [e.kv.mod_revision for e in w.events(len(want), timeout=20)]
        assert got == want, (key, since)
        assert w.nothing_for(0.2)
        w.close()


@pytest.fixture
def small_requests(fleet):
    s = fleet.target(extra_args=["--max-request-bytes", "10000"]).start()
    c = Conn(s)
    yield c
    c.close()


def test_fragments_split_a_response_larger_than_max_request_bytes(small_requests):
    # etcd splits at --max-request-bytes plus its 512 KiB gRPC allowance
    limit = 10000 + 512 * 1024
    conn = small_requests
    first = conn.rev() + 1
    keys = [b"big/%02d" % i for i in range(70)]
    for k in keys:
        conn.put(k, "x" * 9000)  # about 630 KB of events in all
    w = conn.watch()
    w.create("big/", "big0", start_revision=first, fragment=True)
    w.create("big/", "big0", start_revision=first)
    parts = {0: [], 1: []}
    while not (parts[0] and not fragment(parts[0][-1])) or not parts[1]:
        r = w.next()
        if r.created:
            assert not parts[r.watch_id], "created after events"
        else:
            parts[r.watch_id].append(r)
    frags = parts[0]
    assert len(frags) == 2
    assert [fragment(r) for r in frags] == [True, False]
    assert all(r.ByteSize() < limit for r in frags)
    assert len(frags[0].events) == 59  # as many as fit
    assert [e.kv.key for r in frags for e in r.events] == keys
    # without fragment the same history is one response
    assert len(parts[1]) == 1 and not fragment(parts[1][0])
    assert [e.kv.key for e in parts[1][0].events] == keys
    assert parts[1][0].ByteSize() > limit
    w.close()


# etcd3 0.12's watch thread calls Watch again after the last cancel and finds the channel
# closed: its own noise, with etcd as with musubi.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_python_etcd3_watch(target):
    client = etcd3.client(host="127.0.0.1", port=target.client_port)
    try:
        events, cancel = client.watch_prefix("/p/")
        got = []
        t = threading.Thread(target=lambda: got.extend(e for _, e in zip(range(2), events)))
        t.start()
        time.sleep(0.5)
        client.put("/p/1", "one")
        client.delete("/p/1")
        t.join(10)
        cancel()
        assert [(type(e).__name__, e.key, e.value) for e in got] == [
            ("PutEvent", b"/p/1", b"one"), ("DeleteEvent", b"/p/1", b"")]
    finally:
        client.close()


def read_lines(proc, count, timeout=10):
    """`count` lines of a running process's stdout."""
    out = []
    t = threading.Thread(target=lambda: out.extend(proc.stdout.readline() for _ in range(count)))
    t.daemon = True
    t.start()
    t.join(timeout)
    return [line.rstrip("\n") for line in out]


def test_etcdctl_watch(target):
    ctl = Ctl3(target)
    ctl("put", "e/1", "a")
    ctl("put", "e/2", "b")
    ctl("del", "e/1")
    conn = Conn(target)
    rev = conn.rev()
    w = ctl.popen("watch", "--prefix", "e/", "--rev", str(rev - 2), "--prev-kv")
    try:
        assert read_lines(w, 6) == ["PUT", "e/1", "a", "PUT", "e/2", "b"]
        # a DELETE prints the previous kv, then the tombstone (an empty value)
        assert read_lines(w, 5) == ["DELETE", "e/1", "a", "e/1", ""]
        ctl("put", "e/2", "c")
        assert read_lines(w, 5) == ["PUT", "e/2", "b", "e/2", "c"]
    finally:
        w.kill()
        w.wait()
    conn.compact(rev)
    code, out, err = ctl.run("watch", "e/1", "--rev", "2", timeout=20)
    assert "watch was canceled (etcdserver: mvcc: required revision has been compacted)" in (out + err)
    assert code != 0
    conn.close()


def test_hasleader_ends_the_stream_when_the_leader_is_lost(fleet):
    members = fleet.cluster(2)
    leader, follower = None, None
    for m in members:
        st, _, body = m.request("GET", "/v2/stats/self")
        if b"StateLeader" in body:
            leader = m
        else:
            follower = m
    assert leader and follower
    conn = Conn(follower)
    meta = (("hasleader", "true"),)
    w = conn.watch(metadata=meta)
    w.create("x")
    assert w.next().created
    plain = conn.watch()
    plain.create("x")
    assert plain.next().created
    leader.kill()
    with pytest.raises(grpc.RpcError) as e:
        w.next(timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert e.value.details() == "etcdserver: no leader"
    # a new stream that asks for a leader is refused at once; one that does not is served
    late = conn.watch(metadata=meta)
    late.create("x")
    with pytest.raises(grpc.RpcError) as e:
        late.next(timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    plain.progress()
    assert plain.next().watch_id == -1
    plain.close()
    conn.close()


@pytest.mark.skipif(harness.target_kind() == "etcd",
                    reason="etcd 3.4 keeps the v2 store and MVCC apart: v2 writes are no v3 events there")
def test_v2_writes_are_v3_events(target, conn):
    w = conn.watch()
    w.create("/v2/", "/v20")
    assert w.next().created
    st, _, _ = target.request("PUT", "/v2/keys/v2/x", "value=hello")
    assert st == 201
    (e,) = w.events(1)
    assert (e.type, e.kv.key, e.kv.value, e.kv.version) == (PUT, b"/v2/x", b"hello", 1)
    st, _, _ = target.request("PUT", "/v2/keys/v2/t", "value=short&ttl=1")
    assert st == 201
    (e,) = w.events(1)
    assert (e.type, e.kv.key, e.kv.value) == (PUT, b"/v2/t", b"short")
    (e,) = w.events(1, timeout=15)  # the TTL runs out: a DELETE
    assert (e.type, e.kv.key) == (DELETE, b"/v2/t")
    w.close()
