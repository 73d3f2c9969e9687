"""Targeted regression: linearizable reads right after a restart.

Three members; about 3,000 entries written by a few hundred concurrent writers; then `k`
set to 1..50 one after the other (each acknowledged); then
  - "leader": kill -9 the leader and restart it at once with the same flags, or
  - "all":    kill -9 all three, restart the old leader first and the others 0.5 s later,
while `GET /v2/keys/k?quorum=true` is hammered on every member (all three in parallel, from
the instant of the kill, so the restarted member's port is polled from its first moment,
until 5 s after the restart). Every successful answer must be 50: an older value, or
"key not found", is a stale linearizable read (the member answered before it had applied
the log it had on disk, or before it knew what was committed). Three rounds per variant,
each on a fresh cluster. Runs against etcd 3.4 too (MUSUBI_TEST_TARGET=etcd), where it
passes.
"""

import http.client
import json
import threading
import time

import pytest

from cluster import Cluster, target_kind

ROUNDS = 3
FILL = 3000
FILL_WRITERS = 200
FILL_LIMIT = 20.0
LAST = 50
HAMMER_AFTER_RESTART = 5.0
READERS_PER_MEMBER = 2


def put(node, key, value, timeout=3.0):
    try:
        st, _, _ = node.request("PUT", "/v2/keys/" + key, "value=" + value, timeout=timeout)
        return 200 <= st < 300
    except OSError:
        return False


def fill(cluster):
    """About FILL entries in the log, written concurrently; returns how many were acked."""
    counter = iter(range(FILL))
    lock = threading.Lock()
    acked = [0]
    deadline = time.time() + FILL_LIMIT

    def writer(w):
        node = cluster.nodes[w % len(cluster.nodes)]
        while time.time() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            if put(node, "fill/%d" % n, "x%d" % n, timeout=5.0):
                with lock:
                    acked[0] += 1
    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(FILL_WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(FILL_LIMIT + 10)
    return acked[0]


def write_sequence(cluster):
    """k = 1..LAST, each acknowledged before the next (retrying through any member)."""
    for i in range(1, LAST + 1):
        deadline = time.time() + 20
        n = 0
        while not put(cluster.nodes[n % len(cluster.nodes)], "k", str(i)):
            n += 1
            assert time.time() < deadline, "k=%d was never acknowledged" % i
            time.sleep(0.05)


class Hammer:
    """READERS_PER_MEMBER threads per member, each sending GET k?quorum=true as fast as
    it can (keep-alive, reconnecting on any error) until stopped. Records every answer."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.answers = []           # (run time, member, status, value or None)
        self.errors = {}            # member -> count of failed requests
        self.threads = [threading.Thread(target=self._read, args=(n,), daemon=True)
                        for n in cluster.nodes for _ in range(READERS_PER_MEMBER)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(10)

    def _read(self, node):
        conn = None
        while not self.stop_event.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(node.client_host, node.client_port, timeout=1.0)
                conn.request("GET", "/v2/keys/k?quorum=true")
                resp = conn.getresponse()
                data = resp.read()
                t = self.cluster.now()
                value = None
                if resp.status == 200:
                    value = json.loads(data)["node"]["value"]
                elif resp.status == 404 and json.loads(data).get("errorCode") == 100:
                    value = None
                else:
                    with self.lock:
                        self.errors[node.name] = self.errors.get(node.name, 0) + 1
                    continue
                with self.lock:
                    self.answers.append((t, node.name, resp.status, value))
            except (OSError, http.client.HTTPException, ValueError):
                with self.lock:
                    self.errors[node.name] = self.errors.get(node.name, 0) + 1
                if conn is not None:
                    conn.close()
                    conn = None
                time.sleep(0.001)
        if conn is not None:
            conn.close()


def one_round(variant, rnd):
    """Returns (problems, report text) of one round on a fresh cluster."""
    c = Cluster(target_kind(), 3, use_netns=False)
    failed = True
    try:
        c.start()
        filled = fill(c)
        write_sequence(c)
        leader = c.wait_leader()
        hammer = Hammer(c)
        c.mark_all("round %d (%s): kill -9 %s" % (rnd, variant, "the leader " + leader.name
                                                  if variant == "leader" else "all"))
        if variant == "leader":
            leader.kill()
            hammer.start()
            restarted = c.now()
            leader.start()
        else:
            for n in c.nodes:
                n.kill()
            hammer.start()
            restarted = c.now()
            leader.start()
            time.sleep(0.5)
            for n in c.nodes:
                if n is not leader:
                    n.start()
        c.mark_all("restarted")
        time.sleep(HAMMER_AFTER_RESTART)
        hammer.stop()
        bad = [a for a in hammer.answers if a[3] != str(LAST)]
        per = {}
        for t, name, st, value in hammer.answers:
            ok, stale = per.get(name, (0, 0))
            per[name] = (ok + (value == str(LAST)), stale + (value != str(LAST)))
        summary = ("round %d (%s, old leader %s, %d fill entries acked): %s; failed requests %s"
                   % (rnd, variant, leader.name, filled,
                      ", ".join("%s %d answers of 50 and %d stale" % (n, *per.get(n, (0, 0)))
                                for n in sorted(x.name for x in c.nodes)), hammer.errors))
        text = summary
        if bad:
            first = bad[0]
            text += "\n  first stale answers (run time, member, status, value):\n" + "\n".join(
                "    %.3fs (%.3fs after the restart) %s %d %r" % (t, t - restarted, n, st, v)
                for t, n, st, v in bad[:10])
            text += "\n  member logs around the first one:\n"
            for n in c.nodes:
                text += "  --- %s (%s)\n" % (n.name, n.log_path)
                text += "\n".join("    " + l for l in c.log_window(n, restarted - 1, first[0] + 1, limit=30))
                text += "\n"
        failed = bool(bad)
        return bad, text
    finally:
        c.close(keep=failed)


@pytest.mark.parametrize("variant", ["leader", "all"])
def test_quorum_reads_after_a_restart_see_the_last_acknowledged_write(variant):
    reports = []
    stale = 0
    for rnd in range(1, ROUNDS + 1):
        bad, text = one_round(variant, rnd)
        print(text)
        reports.append(text)
        stale += len(bad)
    assert stale == 0, (
        "%s: %d quorum reads of k answered something other than 50 after k=50 was "
        "acknowledged (%s):\n%s" % (target_kind(), stale, variant, "\n".join(reports)))
