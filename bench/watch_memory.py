#!/usr/bin/env python3
"""What open watch streams cost a server: etcd 3.4 and musubi (release), one member each,
each given STREAMS (default 3000) gRPC Watch streams with one watch apiece, all on one
connection, idle after `created`. Reports the RSS before and after. Needs python `etcd3`
0.12 for its generated stubs (tests/run-all.sh installs it). Prints a markdown section and
appends it to docs/benchmarks.md (OUT= to write elsewhere, OUT= empty to only print).

  python3 bench/watch_memory.py
  STREAMS=10000 python3 bench/watch_memory.py
"""

import datetime
import os
import shutil
import sys
import tempfile
import threading
import time

import grpc
from etcd3.etcdrpc import rpc_pb2, rpc_pb2_grpc

from v3_compare import ETCD, MUSUBI, ROOT, Cluster

STREAMS = int(os.environ.get("STREAMS", "3000"))
OUT = os.environ.get("OUT", os.path.join(ROOT, "docs", "benchmarks.md"))


def open_streams(port, count, release):
    """`count` Watch streams on one channel, each past its `created`; they end on `release`."""
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    stub = rpc_pb2_grpc.WatchStub(channel)

    def requests(i):
        yield rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"k%d" % i))
        release.wait()

    calls = [stub.Watch(requests(i)) for i in range(count)]
    for call in calls:
        assert next(call).created
    return channel, calls


def measure(kind, binary, workdir):
    cluster = Cluster(kind, binary, workdir)
    cluster.start()
    release = threading.Event()
    try:
        before = cluster.memory_mib()
        channel, calls = open_streams(cluster.cports[0], STREAMS, release)
        time.sleep(1)
        after = cluster.memory_mib()
        release.set()
        for call in calls:
            call.cancel()
        channel.close()
        return before, after
    finally:
        release.set()
        cluster.stop()


def main():
    workdir = tempfile.mkdtemp(prefix="watch-memory-")
    try:
        got = {kind: measure(kind, binary, workdir)
               for kind, binary in (("etcd", ETCD), ("musubi", MUSUBI))}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    per = {k: (a - b) * 1024 / STREAMS for k, (b, a) in got.items()}
    lines = ["", "## Open watch streams, 1 member (%s)" % datetime.date.today().isoformat(), "",
             "`STREAMS=%d python3 bench/watch_memory.py`: %d gRPC Watch streams on one "
             "connection, one watch each, idle." % (STREAMS, STREAMS), "",
             "| | etcd 3.4 | musubi | ratio |", "|---|---|---|---|",
             "| RSS before (MiB) | %.0f | %.0f | |" % (got["etcd"][0], got["musubi"][0]),
             "| RSS with the streams open (MiB) | %.0f | %.0f | %.2fx |"
             % (got["etcd"][1], got["musubi"][1], got["musubi"][1] / got["etcd"][1]),
             "| per stream (KiB) | %.1f | %.1f | %.2fx |"
             % (per["etcd"], per["musubi"], per["musubi"] / per["etcd"])]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if OUT:
        with open(OUT, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
