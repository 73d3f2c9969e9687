#!/usr/bin/env python3
"""The put workload of bench/v3_compare.py with idle watch streams open: etcd 3.4 and
musubi, each on a fresh cluster, with 0 and then STREAMS streams of one watch each on a
key nobody writes (one gRPC channel, as an API server multiplexes its watches). What a
write costs a member should not grow with the watchers it does not concern. Prints a
markdown section and appends it to docs/benchmarks.md (OUT= to write elsewhere, OUT= empty
to only print). Needs python's grpcio and etcd3 0.12 (installed by the test command).

  python3 bench/v3_idle_watchers.py               # STREAMS=1000, MEMBERS=1
"""

import contextlib
import datetime
import os
import sys
import threading

import grpc
from etcd3 import etcdrpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import v3_compare as v  # noqa: E402

STREAMS = int(os.environ.get("STREAMS", "1000"))
PUT = dict(v.WORKLOADS)["put"]


@contextlib.contextmanager
def idle_streams(cluster, count):
    """`count` watch streams, each created and then left alone."""
    channel = grpc.insecure_channel(cluster.endpoints().split(",")[0])
    stub, done = etcdrpc.WatchStub(channel), threading.Event()

    def requests(i):
        yield etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(key=b"idle/%d" % i))
        done.wait()
    calls = [stub.Watch(requests(i)) for i in range(count)]
    try:
        for call in calls:
            assert next(call).created
        yield
    finally:
        done.set()
        for call in calls:
            call.cancel()
        channel.close()


def run(kind, binary, streams):
    with v.fresh_cluster(kind, binary) as cluster, idle_streams(cluster, streams):
        return v.bench(cluster, PUT)


def main():
    rows = []
    for streams in (0, STREAMS):
        etcd = run("etcd", v.ETCD, streams)
        musubi = run("musubi", v.MUSUBI, streams)
        rows.append((streams, etcd, musubi))
        print("%d streams: etcd %.0f req/s, musubi %.0f req/s" % (streams, etcd[0], musubi[0]),
              flush=True)
    lines = ["", "## v3 put with idle watch streams, %s (%s)" % (v.members(), datetime.date.today().isoformat()),
             "", "`MEMBERS=%d STREAMS=%d TOTAL=%d python3 bench/v3_idle_watchers.py`; each run on a "
             "fresh cluster." % (v.MEMBERS, STREAMS, v.TOTAL), "", "| idle streams " + v.COLUMNS, v.RULE]
    lines += ["| %d |" % streams + v.cells(etcd, musubi) for streams, etcd, musubi in rows]
    v.publish(lines)


if __name__ == "__main__":
    main()
