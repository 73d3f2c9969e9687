#!/usr/bin/env python3
"""Time to a write after the Raft leader crashes, etcd 3.4 and musubi side by side.

For each side: a three-member cluster on loopback with etcd's default timings
(--heartbeat-interval 100 --election-timeout 1000); then, TRIALS times: find the leader,
`kill -9` it, and send a write (PUT /v2/keys/failover) every 50 ms to a survivor, each with
a 1 s timeout, until one is acknowledged; record the time from the kill to that
acknowledgement and to the first survivor that names a new leader; restart the victim
and let it catch up. Prints min / median / max per side and the ratio of the medians, and
appends a dated section to docs/benchmarks.md (OUT= to change, OUT= empty to skip).

    bench/failover.py                 # TRIALS=5
    TRIALS=10 bench/failover.py

This is a benchmark, not a test: nothing here asserts a time."""

import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from harness import Fleet  # noqa: E402

TRIALS = int(os.environ.get("TRIALS", "5"))
OUT = os.environ.get("OUT", os.path.join(ROOT, "docs", "benchmarks.md"))
TIMING = ["--heartbeat-interval", "100", "--election-timeout", "1000"]


def is_leader(server):
    try:
        st, _, body = server.request("GET", "/v2/stats/self", timeout=0.5)
    except OSError:
        return False
    return st == 200 and json.loads(body).get("state") == "StateLeader"


def leader_id(server):
    try:
        st, _, body = server.request("GET", "/v2/members/leader", timeout=0.5)
    except OSError:
        return None
    return json.loads(body).get("id") if st == 200 else None


def until(what, probe, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(interval)
    raise RuntimeError("timed out waiting for " + what)


def trial(members, n):
    victim = until("a leader", lambda: next((m for m in members if is_leader(m)), None))
    old = leader_id(victim)
    survivor = next(m for m in members if m is not victim)
    victim.kill()
    killed = time.monotonic()
    elected = None
    while True:
        sent = time.monotonic()
        if elected is None and leader_id(survivor) not in (None, old):
            elected = sent - killed
        try:
            st, _, _ = survivor.request("PUT", "/v2/keys/failover", body="value=%d" % n,
                                        timeout=1.0)
        except OSError:
            st = None
        if st in (200, 201):
            written = time.monotonic() - killed
            break
        time.sleep(max(0.0, 0.05 - (time.monotonic() - sent)))
    victim.start(wait=False)
    until("the victim to rejoin", lambda: leader_id(victim) not in (None, old))
    return written, elected if elected is not None else written


def side(kind):
    fleet = Fleet(tempfile.mkdtemp(prefix="musubi-failover-"))
    try:
        members = fleet.cluster(3, kind=kind, extra_args=TIMING)
        results = [trial(members, n) for n in range(TRIALS)]
    finally:
        fleet.close()
    return [w for w, _ in results], [e for _, e in results]


def summary(xs):
    return "%.2f / %.2f / %.2f" % (min(xs), statistics.median(xs), max(xs))


def main():
    rows = {}
    for kind in ("etcd", "musubi"):
        writes, elections = side(kind)
        rows[kind] = (writes, elections)
        print("%-7s write after kill (s) min/median/max %s   leader named %s   all: %s" % (
            kind, summary(writes), summary(elections), " ".join("%.2f" % w for w in writes)))
    ratio = statistics.median(rows["musubi"][0]) / statistics.median(rows["etcd"][0])
    print("musubi/etcd median time to a write: %.2fx" % ratio)
    if OUT:
        with open(OUT, "a") as f:
            f.write("\n## %s — leader crash, time to a write (bench/failover.py, %d trials)\n\n"
                    % (time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), TRIALS))
            f.write("3 members on loopback, --heartbeat-interval 100 --election-timeout 1000, "
                    "kill -9 of the leader, a PUT every 50 ms to a survivor.\n\n")
            f.write("| | first acknowledged write, s (min / median / max) | survivor names a new leader, s |\n|---|---|---|\n")
            for kind in ("etcd", "musubi"):
                f.write("| %s | %s | %s |\n" % (kind, summary(rows[kind][0]), summary(rows[kind][1])))
            f.write("\nmusubi / etcd, median time to a write: **%.2fx**\n" % ratio)


if __name__ == "__main__":
    main()
