#!/usr/bin/env python3
"""Side-by-side v3 benchmark: etcd 3.4 and musubi (release), MEMBERS members each, driven
by etcd's own load generator (../shared/tools/etcd-benchmark) in one run on this machine;
then memory with many keys and restart-to-ready time. Each workload also reports the CPU
the servers and the load generator spent per request (/proc and getrusage): on a machine
whose cores they share, that is what bounds the ratio. Prints a markdown section and
appends it to docs/benchmarks.md (OUT= to write elsewhere, OUT= empty to only print).

  python3 bench/v3_compare.py                  # MEMBERS=1, TOTAL=100000
  MEMBERS=3 python3 bench/v3_compare.py
  KEYS=1000000 python3 bench/v3_compare.py     # the memory step's key count (default 200000)
  MEMORY_ONLY=1 KEYS=1000000 python3 bench/v3_compare.py   # the memory and restart step alone
"""

import contextlib
import datetime
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUSUBI = os.environ.get("MUSUBI_BIN", os.path.join(ROOT, "target", "release", "musubi"))
ETCD = os.environ.get("ETCD_BIN", "/usr/bin/etcd")
BENCH = os.environ.get("ETCD_BENCHMARK", os.path.join(ROOT, "..", "shared", "tools", "etcd-benchmark"))
MEMBERS = int(os.environ.get("MEMBERS", "1"))
TOTAL = int(os.environ.get("TOTAL", "100000"))
KEYS = int(os.environ.get("KEYS", "200000"))
# MEMORY_ONLY=1 skips the load workloads (the memory and restart step alone).
MEMORY_ONLY = os.environ.get("MEMORY_ONLY") == "1"
OUT = os.environ.get("OUT", os.path.join(ROOT, "docs", "benchmarks.md"))

# (name, benchmark arguments): the workloads, 10 connections and 100 clients.
WORKLOADS = [
    ("put", ["--conns", "10", "--clients", "100", "put", "--total", str(TOTAL),
             "--val-size", "256", "--key-space-size", str(TOTAL)]),
    ("range linearizable", ["--conns", "10", "--clients", "100", "range", "bench-key",
                            "--consistency", "l", "--total", str(TOTAL)]),
    ("range serializable", ["--conns", "10", "--clients", "100", "range", "bench-key",
                            "--consistency", "s", "--total", str(TOTAL)]),
    ("txn-put", ["--conns", "10", "--clients", "100", "txn-put", "--total", str(TOTAL // 2),
                 "--val-size", "256", "--key-space-size", str(TOTAL)]),
    ("watch-latency", ["watch-latency", "--total", "2000", "--put-rate", "1000"]),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Cluster:
    def __init__(self, kind, binary, workdir):
        self.kind, self.workdir = kind, workdir
        self.cports = [free_port() for _ in range(MEMBERS)]
        pports = [free_port() for _ in range(MEMBERS)]
        initial = ",".join("%s%d=http://127.0.0.1:%d" % (kind, i, p) for i, p in enumerate(pports))
        self.argvs = []
        for i in range(MEMBERS):
            c, p = "http://127.0.0.1:%d" % self.cports[i], "http://127.0.0.1:%d" % pports[i]
            prog = [binary] if kind == "etcd" else [binary, "serve"]
            self.argvs.append(prog + [
                "--name", "%s%d" % (kind, i), "--data-dir", os.path.join(workdir, "%s%d" % (kind, i)),
                "--listen-client-urls", c, "--advertise-client-urls", c,
                "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--enable-v2"])
        self.procs = [None] * MEMBERS

    def start(self):
        for i, argv in enumerate(self.argvs):
            log = open(os.path.join(self.workdir, "%s%d.log" % (self.kind, i)), "ab")
            self.procs[i] = subprocess.Popen(argv, stdout=log, stderr=log)
        return self.wait_ready()

    def wait_ready(self, timeout=60):
        """Seconds until every member answers a linearizable v3 read."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if all(self.ready(port) for port in self.cports):
                return time.time() - t0
            time.sleep(0.02)
        raise RuntimeError("%s did not become ready" % self.kind)

    @staticmethod
    def ready(port):
        """A linearizable v3 read answers (etcdctl, over gRPC, for both servers alike)."""
        p = subprocess.run(["etcdctl", "--endpoints", "127.0.0.1:%d" % port, "--dial-timeout", "1s",
                            "--command-timeout", "1s", "get", "ready"],
                           env=dict(os.environ, ETCDCTL_API="3"), capture_output=True)
        return p.returncode == 0

    def endpoints(self):
        return ",".join("127.0.0.1:%d" % p for p in self.cports)

    def memory_mib(self, field="VmRSS"):
        """`field` of /proc/PID/status (VmRSS now, VmHWM the peak), MiB per member."""
        total = 0
        for p in self.procs:
            with open("/proc/%d/status" % p.pid) as f:
                total += int(re.search(field + r":\s+(\d+)", f.read()).group(1))
        return total / 1024 / MEMBERS

    def cpu_seconds(self):
        """User and system CPU the members have used so far (from /proc/PID/stat)."""
        total = 0
        for p in self.procs:
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            if p:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


def bench(cluster, args):
    """(requests/s, p99 ms, server CPU µs per request, load generator CPU µs per request)."""
    server0 = cluster.cpu_seconds()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([BENCH, "--endpoints", cluster.endpoints()] + args,
                         capture_output=True, text=True, timeout=900).stdout
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = cluster.cpu_seconds() - server0
    qps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99% in ([\d.]+) secs", out)
    elapsed = re.search(r"Total:\s+([\d.]+) secs", out)
    if not qps or not elapsed:
        raise RuntimeError("no result from %s:\n%s" % (args, out[-2000:]))
    requests = float(qps.group(1)) * float(elapsed.group(1))
    client = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    return (float(qps.group(1)), float(p99.group(1)) * 1000 if p99 else float("nan"),
            server / requests * 1e6, client / requests * 1e6)


# A comparison table's columns after its first (the workload, or the pair), and one row's.
COLUMNS = ("| etcd 3.4 req/s | musubi req/s | ratio | etcd p99 ms | musubi p99 ms "
           "| server CPU µs/req etcd / musubi | load generator CPU µs/req (etcd / musubi run) |")
RULE = "|---|---|---|---|---|---|---|---|"


def cells(etcd, musubi):
    """A row's cells after its first, from each server's bench() result."""
    (eq, ep, es, ec), (mq, mp, ms, mc) = etcd, musubi
    return (" %.0f | %.0f | %.2fx | %.1f | %.1f | %.0f / %.0f | %.0f / %.0f |"
            % (eq, mq, mq / eq, ep, mp, es, ms, ec, mc))


def members():
    return "%d member%s" % (MEMBERS, "s" if MEMBERS > 1 else "")


def put_range_key(cluster):
    """The one existing key the range workloads read."""
    subprocess.run(["etcdctl", "--endpoints", cluster.endpoints(), "put", "bench-key", "x" * 256],
                   env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, check=True)


@contextlib.contextmanager
def fresh_cluster(kind, binary):
    """A started cluster of `kind` in a temporary data dir, with the range workloads' key;
    stopped and removed afterwards."""
    work = tempfile.mkdtemp(prefix="musubi-v3bench.")
    cluster = Cluster(kind, binary, work)
    try:
        cluster.start()
        put_range_key(cluster)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def fill(cluster, n):
    """n keys with 64-byte values through the benchmark's own put."""
    bench(cluster, ["--conns", "10", "--clients", "100", "put", "--total", str(n),
                    "--val-size", "64", "--key-size", "16", "--sequential-keys",
                    "--key-space-size", str(n)])


def main():
    for path in (MUSUBI, ETCD, BENCH):
        if not os.path.exists(path):
            sys.exit("missing: %s" % path)
    work = tempfile.mkdtemp(prefix="musubi-v3bench.")
    rows, memory = [], []
    try:
        for kind, binary in (("etcd", ETCD), ("musubi", MUSUBI)):
            c = Cluster(kind, binary, work)
            c.start()
            put_range_key(c)
            for name, args in ([] if MEMORY_ONLY else WORKLOADS):
                qps, p99, server_us, client_us = bench(c, args)
                rows.append((name, kind, qps, p99, server_us, client_us))
                print("%-20s %-7s %10.0f req/s  p99 %7.2f ms  CPU/request: server %5.1f µs, "
                      "load generator %5.1f µs" % (name, kind, qps, p99, server_us, client_us),
                      flush=True)
            c.stop()
            shutil.rmtree(os.path.join(work), ignore_errors=True)
            os.makedirs(work, exist_ok=True)
            c = Cluster(kind, binary, work)
            c.start()
            fill(c, KEYS)
            time.sleep(2)
            rss = c.memory_mib()
            c.stop()
            ready = c.start()
            time.sleep(2)
            peak = c.memory_mib("VmHWM")
            memory.append((kind, rss, ready, peak))
            print("%-7s RSS with %d keys: %.0f MiB per member; restart to ready %.2f s, "
                  "peak RSS while restarting %.0f MiB" % (kind, KEYS, rss, ready, peak), flush=True)
            c.stop()
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work, exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(rows, memory)


def report(rows, memory):
    by = {(n, k): (q, p, s, c) for n, k, q, p, s, c in rows}
    command = "%sMEMBERS=%d TOTAL=%d KEYS=%d python3 bench/v3_compare.py" % (
        "MEMORY_ONLY=1 " if MEMORY_ONLY else "", MEMBERS, TOTAL, KEYS)
    lines = ["", "## v3, %s (%s)" % (members(), datetime.date.today().isoformat()),
             "", "`%s`; etcd-benchmark (etcd's tools/benchmark v3.4.23), 10 connections / "
             "100 clients, 256-byte values." % command]
    if not MEMORY_ONLY:
        lines += ["", "| workload " + COLUMNS, RULE]
    for name, _ in ([] if MEMORY_ONLY else WORKLOADS):
        lines.append("| %s |" % name + cells(by[(name, "etcd")], by[(name, "musubi")]))
    mem = {k: (r, t, p) for k, r, t, p in memory}
    lines += ["", "| %d keys, 64-byte values | etcd 3.4 | musubi | ratio |" % KEYS, "|---|---|---|---|",
              "| RSS per member (MiB) | %.0f | %.0f | %.2fx |" % (mem["etcd"][0], mem["musubi"][0],
                                                              mem["musubi"][0] / mem["etcd"][0]),
              "| restart to ready (s) | %.2f | %.2f | %.2fx |" % (mem["etcd"][1], mem["musubi"][1],
                                                              mem["musubi"][1] / mem["etcd"][1]),
              "| peak RSS while restarting (MiB) | %.0f | %.0f | %.2fx |"
              % (mem["etcd"][2], mem["musubi"][2], mem["musubi"][2] / mem["etcd"][2])]
    publish(lines)


def publish(lines):
    """Prints a report's lines as one markdown section and appends it to OUT, if set."""
    text = "\n".join(lines) + "\n"
    print(text)
    if OUT:
        with open(OUT, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
