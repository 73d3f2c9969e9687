#!/usr/bin/env python3
"""One v3 workload of bench/v3_compare.py against etcd 3.4 and musubi, with the system calls
and context switches per request of the server(s) and of the load generator (`perf stat`
of syscall tracepoints; needs perf and root). On two shared cores the generator's CPU per
request is part of the ratio, and it depends on the server: how many responses arrive per
read, how many requests leave per write. Prints a markdown section and appends it to
docs/benchmarks.md (OUT= to write elsewhere, OUT= empty to only print).

  python3 bench/v3_syscalls.py                    # put, MEMBERS=1, TOTAL=100000
  MEMBERS=3 WORKLOAD=txn-put python3 bench/v3_syscalls.py
"""

import datetime
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import v3_compare as v  # noqa: E402

WORKLOAD = os.environ.get("WORKLOAD", "put")
# The calls either server makes to move requests, sync its log and sleep or wake (Go's
# runtime reads and writes, tokio's reads and vectored writes; epoll_pwait is Go's).
CALLS = ["read", "recvfrom", "write", "writev", "fdatasync", "futex", "epoll_wait",
         "epoll_pwait", "nanosleep"]
EVENTS = ",".join(["syscalls:sys_enter_" + c for c in CALLS] + ["context-switches"])


def counts(path):
    """{event: count} from a `perf stat -o` file."""
    found = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*([\d,]+)\s+(\S+)", line)
            if m:
                found[m.group(2).replace("syscalls:sys_enter_", "")] = int(m.group(1).replace(",", ""))
    return found


def run(kind, binary, args):
    """(requests/s, server {event: per request}, generator {event: per request}, server CPU
    µs/request, generator CPU µs/request)."""
    with v.fresh_cluster(kind, binary) as cluster:
        server_stat = os.path.join(cluster.workdir, "server.stat")
        gen_stat = os.path.join(cluster.workdir, "gen.stat")
        pids = ",".join(str(p.pid) for p in cluster.procs)
        server = subprocess.Popen(["perf", "stat", "-e", EVENTS, "-p", pids, "-o", server_stat],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # perf attaches
        cpu0 = cluster.cpu_seconds()
        out = subprocess.run(["perf", "stat", "-e", EVENTS, "-o", gen_stat, v.BENCH,
                              "--endpoints", cluster.endpoints()] + args,
                             capture_output=True, text=True, timeout=900).stdout
        cpu = cluster.cpu_seconds() - cpu0
        server.send_signal(signal.SIGINT)
        server.wait()
        qps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        requests = qps * float(re.search(r"Total:\s+([\d.]+) secs", out).group(1))

        def per(found):
            return {event: n / requests for event, n in found.items()}
        return (qps, per(counts(server_stat)), per(counts(gen_stat)), cpu / requests * 1e6,
                generator_cpu(gen_stat) / requests * 1e6)


def generator_cpu(path):
    """User plus system seconds of the generator, from `perf stat`'s summary."""
    with open(path) as f:
        text = f.read()
    user = re.search(r"([\d.]+) seconds user", text)
    system = re.search(r"([\d.]+) seconds sys", text)
    return float(user.group(1)) + float(system.group(1))


def main():
    workloads = dict(v.WORKLOADS)
    if WORKLOAD not in workloads:
        sys.exit("WORKLOAD must be one of: %s" % ", ".join(workloads))
    etcd = run("etcd", v.ETCD, workloads[WORKLOAD])
    musubi = run("musubi", v.MUSUBI, workloads[WORKLOAD])
    lines = ["", "## v3 %s, system calls per request, %s (%s)" % (
        WORKLOAD, v.members(), datetime.date.today().isoformat()), "",
        "`MEMBERS=%d WORKLOAD=%s TOTAL=%d python3 bench/v3_syscalls.py`; `perf stat` of the "
        "server(s) (summed over members) and of etcd-benchmark." % (v.MEMBERS, WORKLOAD, v.TOTAL),
        "", "| per request | etcd 3.4 server | musubi server | generator (etcd run) "
        "| generator (musubi run) |", "|---|---|---|---|---|",
        "| requests/s | %.0f | %.0f | | |" % (etcd[0], musubi[0]),
        "| CPU µs | %.1f | %.1f | %.1f | %.1f |" % (etcd[3], musubi[3], etcd[4], musubi[4])]
    for event in CALLS + ["context-switches"]:
        cells = [etcd[1], musubi[1], etcd[2], musubi[2]]
        if any(c.get(event, 0) >= 0.005 for c in cells):
            lines.append("| %s | %s |" % (event, " | ".join("%.2f" % c.get(event, 0) for c in cells)))
    v.publish(lines)


if __name__ == "__main__":
    main()
