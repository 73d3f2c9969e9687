"""Durability of acknowledged writes: kill -9 under load, and a torn log tail.

"Every acknowledged write is fsynced" (PRODUCT.md): after a kill -9 in the middle of a
concurrent write load and a restart on the same data dir, every write that got a 2xx
must be there with its value or a later one."""

import os
import re
import threading
import time

import pytest

from harness import raw_request

THREADS = 8
KEYS_PER_THREAD = 16


def load(server, stop, acked, errors):
    """THREADS writers; writer t overwrites /dur/t<t>/k<j % KEYS_PER_THREAD> with a
    counter, so a later value is always a larger number."""
    def writer(t):
        n = 0
        while not stop.is_set():
            key = "/v2/keys/dur/t%d/k%d" % (t, n % KEYS_PER_THREAD)
            try:
                st, _, body = raw_request(server.client_port, "PUT", key, "value=%d" % n, timeout=5)
            except Exception:  # noqa: BLE001 - the server was killed: stop writing
                return
            if st in (200, 201):
                acked[(t, n % KEYS_PER_THREAD)] = max(acked.get((t, n % KEYS_PER_THREAD), -1), n)
            else:
                errors.append((key, st, body))
            n += 1
    ths = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for th in ths:
        th.start()
    return ths


def test_acknowledged_writes_survive_kill9(fleet):
    s = fleet.target().start()
    stop = threading.Event()
    acked, errors = {}, []
    ths = load(s, stop, acked, errors)
    time.sleep(2.0)
    s.kill()                       # SIGKILL mid-load
    stop.set()
    for th in ths:
        th.join(15)
    assert not errors, "writes failed before the kill: %s" % errors[:5]
    assert len(acked) >= THREADS, "the load acknowledged almost nothing (%d keys)" % len(acked)
    total = sum(v + 1 for v in acked.values())
    s.start()
    lost = []
    for (t, k), n in sorted(acked.items()):
        st, _, body = raw_request(s.client_port, "GET", "/v2/keys/dur/t%d/k%d" % (t, k))
        if st != 200:
            lost.append("/dur/t%d/k%d: acknowledged %d, now HTTP %d %s" % (t, k, n, st, body[:200]))
            continue
        import json
        v = int(json.loads(body)["node"]["value"])
        if v < n:
            lost.append("/dur/t%d/k%d: acknowledged value %d, found older %d" % (t, k, n, v))
    assert not lost, "acknowledged writes lost after kill -9 (%d writes made):\n%s" % (total, "\n".join(lost[:20]))
    # and it keeps serving writes
    st, _, body = raw_request(s.client_port, "PUT", "/v2/keys/after", "value=ok")
    assert st in (200, 201), body


SEGMENT_DIR = re.compile(r"(wal|log|raft)", re.I)
SEGMENT_EXT = (".wal", ".log", ".seg", ".segment", ".rlog")


def newest_log_segment(data_dir):
    """The log segment a crash would tear: the largest-numbered file that looks like a log
    segment (in a directory whose name says wal/log/raft, or with a log extension),
    ties broken by modification time. Generic on purpose: it finds etcd's
    member/wal/<seq>-<index>.wal and musubi's raft log segments alike."""
    best = None
    for dirpath, _, files in os.walk(data_dir):
        rel = os.path.relpath(dirpath, data_dir)
        for f in files:
            path = os.path.join(dirpath, f)
            if f.endswith((".tmp", ".lock", ".snap", ".snap.db")) or f in ("db", "LOCK"):
                continue
            if not (SEGMENT_DIR.search(rel) or f.endswith(SEGMENT_EXT)):
                continue
            nums = [int(x) for x in re.findall(r"\d+", f)] or [0]
            sz = os.path.getsize(path)
            if sz == 0:
                continue
            key = (nums, os.path.getmtime(path))
            if best is None or key > best[0]:
                best = (key, path)
    return best and best[1]


def test_truncated_log_tail(fleet):
    s = fleet.target().start()
    for i in range(200):
        st, _, _ = raw_request(s.client_port, "PUT", "/v2/keys/tail/k%d" % (i % 10), "value=%d" % i)
        assert st in (200, 201)
    s.stop()
    seg = newest_log_segment(s.data_dir)
    assert seg, "no log segment found under %s: %s" % (s.data_dir, list(os.walk(s.data_dir)))
    size = os.path.getsize(seg)
    chop = 7
    with open(seg, "r+b") as f:
        data = f.read()
        # etcd preallocates segments with zeroes: chop inside the written part
        end = len(data.rstrip(b"\0")) or size
        f.truncate(max(0, end - chop))
    s.start()
    st, _, body = raw_request(s.client_port, "GET", "/v2/keys/tail?recursive=true")
    assert st == 200, (st, body)
    st, _, body = raw_request(s.client_port, "GET", "/v2/keys/tail/k0")
    assert st == 200, "an early write was lost after chopping %d bytes off %s: %s" % (chop, seg, body)
    st, _, body = raw_request(s.client_port, "PUT", "/v2/keys/tail/new", "value=x")
    assert st in (200, 201), body
