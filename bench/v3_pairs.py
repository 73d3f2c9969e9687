#!/usr/bin/env python3
"""One v3 workload of bench/v3_compare.py, etcd 3.4 then musubi, each on a fresh cluster,
PAIRS times in turn: the ratio pair by pair and its median. This machine's speed drifts by a
fifth from one minute to the next (the load generator's own CPU per request, the same code
in every run, shows it), which one side-by-side run cannot tell from a difference between
the servers; pairs taken a few seconds apart can. Prints a markdown section and appends it
to docs/benchmarks.md (OUT= to write elsewhere, OUT= empty to only print).

  python3 bench/v3_pairs.py                                # put, MEMBERS=1, PAIRS=5
  MEMBERS=3 WORKLOAD=txn-put PAIRS=7 python3 bench/v3_pairs.py
"""

import datetime
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import v3_compare as v  # noqa: E402

PAIRS = int(os.environ.get("PAIRS", "5"))
WORKLOAD = os.environ.get("WORKLOAD", "put")


def run(kind, binary, args):
    """(requests/s, p99 ms, server CPU µs/request, load generator CPU µs/request)."""
    with v.fresh_cluster(kind, binary) as cluster:
        return v.bench(cluster, args)


def main():
    workloads = dict(v.WORKLOADS)
    if WORKLOAD not in workloads:
        sys.exit("WORKLOAD must be one of: %s" % ", ".join(workloads))
    pairs = []
    for i in range(PAIRS):
        etcd = run("etcd", v.ETCD, workloads[WORKLOAD])
        musubi = run("musubi", v.MUSUBI, workloads[WORKLOAD])
        pairs.append((etcd, musubi))
        print("pair %d: etcd %.0f req/s, musubi %.0f req/s, %.2fx" % (i + 1, etcd[0], musubi[0],
                                                                      musubi[0] / etcd[0]), flush=True)
    report(pairs)


def report(pairs):
    ratios = [m[0] / e[0] for e, m in pairs]
    lines = ["", "## v3 %s in pairs, %s (%s)" % (WORKLOAD, v.members(), datetime.date.today().isoformat()),
             "", "`MEMBERS=%d WORKLOAD=%s PAIRS=%d TOTAL=%d python3 bench/v3_pairs.py`; each pair "
             "etcd 3.4 then musubi, each on a fresh cluster." % (v.MEMBERS, WORKLOAD, PAIRS, v.TOTAL),
             "", "| pair " + v.COLUMNS, v.RULE]
    for i, (etcd, musubi) in enumerate(pairs):
        lines.append("| %d |" % (i + 1) + v.cells(etcd, musubi))
    lines += ["", "Median ratio %.2fx (%.2f-%.2fx)." % (statistics.median(ratios), min(ratios),
                                                       max(ratios))]
    v.publish(lines)


if __name__ == "__main__":
    main()
