"""Client workers: v2 HTTP operations on a few register keys and on write-once keys,
each recorded with invoke/complete times (monotonic ns, one clock) and its outcome.

Register keys are `reg/<generation>.<i>`: a new generation starts every `key_period`
seconds (each key's history stays small enough to check, as Jepsen's independent keys),
and a share of the ops go to the previous generation's keys, so every key lives through
two periods and the faults in them. Ops on a register: write (PUT value=V, V unique),
compare-and-swap (PUT ?prevValue=E, E the last value this worker read or wrote there) and
linearizable read (GET ?quorum=true). Write-once keys `once/<worker>.<n>` are each written
once: at the end every acknowledged one must be there, with its value, on every member.

Outcomes (see linearizability.py): a connection that could not be made (refused, or a
connect timeout: nothing was sent) is a definite failure; a timeout or reset after the
request went out, a 5xx, or any answer that is not a definite one is unknown. errorCode
101 (compare failed) and 100 (key not found) on a cas are definite failures that say
what the register held.
"""

import http.client
import json
import socket
import threading
import time

from linearizability import Op


class Outcome:
    __slots__ = ("status", "output", "note", "http")

    def __init__(self, status, output=None, note=None, http_status=None):
        self.status = status
        self.output = output
        self.note = note
        self.http = http_status


def call(host, port, method, path, body, timeout):
    """One request on a fresh connection: (phase, status, body) where phase is "connect"
    when the connection could not be made, else "sent". Raises nothing."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        try:
            conn.connect()
        except OSError as e:
            return "connect", None, type(e).__name__
        try:
            hdrs = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return "sent", resp.status, data
        except socket.timeout:
            return "sent", None, "timeout"
        except (OSError, http.client.HTTPException) as e:
            return "sent", None, type(e).__name__
    finally:
        conn.close()


def _json(data):
    try:
        return json.loads(data)
    except (ValueError, TypeError):
        return {}


def classify(f, phase, status, data):
    """The Outcome of a write/cas/read/once from call()'s result."""
    if phase == "connect":
        return Outcome("fail", "refused", data)
    if status is None:
        return Outcome("unknown", None, data)
    body = _json(data) if isinstance(data, (bytes, str)) else {}
    code = body.get("errorCode") if isinstance(body, dict) else None
    if 200 <= status < 300:
        if f == "read":
            node = body.get("node", {}) if isinstance(body, dict) else {}
            return Outcome("ok", node.get("value"), None, status)
        return Outcome("ok", None, None, status)
    if code == 100:
        if f == "read":
            return Outcome("ok", None, "not found", status)
        if f == "cas":
            return Outcome("fail", "missing", "errorCode 100", status)
    if code == 101 and f == "cas":
        return Outcome("fail", "mismatch", "errorCode 101", status)
    note = "HTTP %d%s" % (status, " errorCode %s" % code if code is not None else "")
    if f == "read":
        return Outcome("fail", "error", note, status)      # dropped by the checker
    return Outcome("unknown", None, note, status)


class History:
    """Every op of a run, from every worker; thread-safe."""

    def __init__(self, t0):
        self.t0 = t0
        self.ops = []
        self.lock = threading.Lock()
        self.next_id = 0

    def add(self, op):
        with self.lock:
            op.id = self.next_id
            self.next_id += 1
            self.ops.append(op)
        return op

    def snapshot(self):
        with self.lock:
            return list(self.ops)


class Workload:
    """`workers` client threads against `cluster` until stop()."""

    def __init__(self, cluster, history, rng, workers=8, timeout=2.5, key_period=5.0,
                 keys_per_gen=3, once_share=0.15, old_share=0.15):
        self.cluster = cluster
        self.history = history
        self.timeout = timeout
        self.key_period = key_period
        self.keys_per_gen = keys_per_gen
        self.once_share = once_share
        self.old_share = old_share
        self.stop_event = threading.Event()
        self.seeds = [rng.getrandbits(64) for _ in range(workers)]
        self.threads = [threading.Thread(target=self._run, args=(w,), name="client-%d" % w,
                                         daemon=True) for w in range(workers)]
        self.errors = []

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self, join_timeout=None):
        self.stop_event.set()
        for t in self.threads:
            t.join(join_timeout if join_timeout is not None else self.timeout * 3 + 5)

    def now_ns(self):
        return time.monotonic_ns()

    def _key(self, rng):
        gen = int((time.monotonic_ns() - self.history.t0) / 1e9 // self.key_period)
        if gen > 0 and rng.random() < self.old_share:
            gen -= 1
        return "reg/%d.%d" % (gen, rng.randrange(self.keys_per_gen))

    def _run(self, w):
        import random
        rng = random.Random(self.seeds[w])
        last = {}          # key -> last value this worker saw or wrote there
        n = 0
        nodes = self.cluster.nodes
        while not self.stop_event.is_set():
            try:
                node = rng.choice(nodes)
                n += 1
                value = "w%d-%d" % (w, n)
                r = rng.random()
                if r < self.once_share:
                    self.once(w, node, "once/w%d.%d" % (w, n), value)
                    continue
                key = self._key(rng)
                r = rng.random()
                if r < 0.45:
                    op = self.read(w, node, key)
                    if op.status == "ok":
                        last[key] = op.output
                elif r < 0.75 or key not in last or last[key] is None:
                    op = self.write(w, node, key, value)
                    if op.status == "ok":
                        last[key] = value
                else:
                    op = self.cas(w, node, key, last[key], value)
                    if op.status == "ok":
                        last[key] = value
                if op.status == "fail" and op.output == "refused":
                    time.sleep(0.02)      # a dead member: do not spin on it
            except Exception as e:  # noqa: BLE001 - a bug here must not hang the run
                self.errors.append(repr(e))
                time.sleep(0.1)

    def _do(self, w, node, f, key, method, path, body, value=None, expected=None):
        invoke = time.monotonic_ns()
        phase, status, data = call(node.client_host, node.client_port, method, path, body,
                                   self.timeout)
        complete = time.monotonic_ns()
        out = classify(f if f != "once" else "write", phase, status, data)
        op = Op(key, "write" if f == "once" else f, value=value, expected=expected,
                status=out.status, output=out.output, invoke=invoke,
                complete=complete if out.status != "unknown" else None,
                process=w, member=node.name, note=out.note)
        self.history.add(op)
        return op

    def read(self, w, node, key):
        return self._do(w, node, "read", key, "GET", "/v2/keys/%s?quorum=true" % key, None)

    def write(self, w, node, key, value):
        return self._do(w, node, "write", key, "PUT", "/v2/keys/" + key, "value=" + value,
                        value=value)

    def cas(self, w, node, key, expected, value):
        return self._do(w, node, "cas", key, "PUT", "/v2/keys/%s?prevValue=%s" % (key, expected),
                        "value=" + value, value=value, expected=expected)

    def once(self, w, node, key, value):
        return self._do(w, node, "once", key, "PUT", "/v2/keys/" + key, "value=" + value,
                        value=value)
