"""`/metrics` in Prometheus's text format under etcd's names, so etcd's Grafana dashboard
and alert rules read a musubi member unchanged. Parsed with the Prometheus project's own
Python parser (prometheus_client); values are checked to move with what happens: a write
moves the proposal counters and the fsync histogram, a gRPC call is counted with its code,
a killed leader is a leader change on the survivors. Runs against etcd 3.4 too
(MUSUBI_TEST_TARGET=etcd), so every name and label asserted here is etcd's."""


import json

from prometheus_client.parser import text_string_to_metric_families

import harness
from harness import wait_for
from v3util import Ctl3

TIMING = ["--heartbeat-interval", "100", "--election-timeout", "1000"]

# What etcd's published Grafana dashboard and alerting rules read.
DASHBOARD_FAMILIES = {
    "etcd_server_has_leader": "gauge",
    "etcd_server_is_leader": "gauge",
    "etcd_server_leader_changes_seen_total": "counter",
    "etcd_server_proposals_committed_total": "gauge",
    "etcd_server_proposals_applied_total": "gauge",
    "etcd_server_proposals_pending": "gauge",
    "etcd_server_proposals_failed_total": "counter",
    "etcd_disk_wal_fsync_duration_seconds": "histogram",
    "etcd_disk_backend_commit_duration_seconds": "histogram",
    "etcd_mvcc_db_total_size_in_bytes": "gauge",
    "etcd_debugging_mvcc_keys_total": "gauge",
    "grpc_server_started_total": "counter",
    "grpc_server_handled_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_open_fds": "gauge",
}


def scrape(server, port=None):
    st, headers, body = harness.raw_request(port or server.client_port, "GET", "/metrics")
    assert st == 200, body
    assert headers.get("content-type", "").startswith("text/plain"), headers
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def value(families, name, suffix="", **labels):
    """The sample of family `name` (sample name `name + suffix`) with these labels, or 0."""
    family = families.get(name.removesuffix("_total")) or families.get(name)
    if family is None:
        return 0.0
    for s in family.samples:
        if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


def test_the_dashboard_families_are_served_with_etcds_types(target):
    Ctl3(target)("put", "k", "v")
    families = scrape(target)
    for name, kind in DASHBOARD_FAMILIES.items():
        family = families.get(name.removesuffix("_total")) or families.get(name)
        assert family is not None, "missing " + name
        assert family.type == kind, (name, family.type)
    assert value(families, "etcd_server_has_leader") == 1
    assert value(families, "etcd_server_is_leader") == 1
    assert value(families, "etcd_server_leader_changes_seen_total") >= 1
    ids = [s.labels["server_id"] for s in families["etcd_server_id"].samples]
    assert len(ids) == 1 and int(ids[0], 16) > 0


def test_a_write_moves_the_proposal_counters_and_the_fsync_histogram(target):
    ctl = Ctl3(target)
    ctl("put", "warm", "up")
    before = scrape(target)
    for i in range(5):
        ctl("put", "key%d" % i, "value")
    after = scrape(target)
    committed = "etcd_server_proposals_committed_total"
    assert value(after, committed) >= value(before, committed) + 5
    assert value(after, "etcd_server_proposals_applied_total") >= value(before, committed) + 5
    fsyncs = ("etcd_disk_wal_fsync_duration_seconds", "_count")
    assert value(after, *fsyncs) >= value(before, *fsyncs) + 5
    assert value(after, "etcd_debugging_mvcc_keys_total") >= 6
    assert value(after, "etcd_server_proposals_pending") == 0


def test_grpc_calls_are_counted_with_their_codes(target):
    ctl = Ctl3(target)
    labels = dict(grpc_type="unary", grpc_service="etcdserverpb.KV", grpc_method="Range")
    before = scrape(target)
    ctl("get", "absent")
    # A read at a future revision fails with OutOfRange.
    ctl("get", "absent", "--rev", "1000000", rc=1)
    after = scrape(target)
    for code in ("OK", "OutOfRange"):
        key = ("grpc_server_handled_total", "", )
        assert value(after, *key, grpc_code=code, **labels) \
            == value(before, *key, grpc_code=code, **labels) + 1, code
    started = ("grpc_server_started_total", "")
    assert value(after, *started, **labels) >= value(before, *started, **labels) + 2


def test_gateway_calls_are_counted_as_the_grpc_calls_they_are(target):
    """etcd's JSON gateway is a gRPC client of its own member, so a call through /v3/ is
    counted under its gRPC method and code like any other."""
    labels = dict(grpc_type="unary", grpc_service="etcdserverpb.KV", grpc_method="Range")
    handled = ("grpc_server_handled_total", "")
    before = scrape(target)
    st, _, body = harness.raw_request(target.client_port, "POST", "/v3/kv/range", '{"key":"YQ=="}')
    assert st == 200, body
    st, _, body = harness.raw_request(target.client_port, "POST", "/v3/kv/range",
                                      '{"key":"YQ==","revision":"1000000"}')
    assert st == 400, body
    after = scrape(target)
    for code in ("OK", "OutOfRange"):
        assert value(after, *handled, grpc_code=code, **labels) \
            == value(before, *handled, grpc_code=code, **labels) + 1, code
    started = ("grpc_server_started_total", "")
    assert value(after, *started, **labels) == value(before, *started, **labels) + 2

    # A stream is counted as it ends: keepalive's ends with the request body.
    keepalive = dict(grpc_type="bidi_stream", grpc_service="etcdserverpb.Lease",
                     grpc_method="LeaseKeepAlive", grpc_code="OK")
    st, _, body = harness.raw_request(target.client_port, "POST", "/v3/lease/grant", '{"TTL":"60"}')
    assert st == 200, body
    lease = json.loads(body)["ID"]
    st, _, body = harness.raw_request(target.client_port, "POST", "/v3/lease/keepalive",
                                      json.dumps({"ID": lease}))
    assert st == 200, body
    wait_for("the keepalive stream to be counted", lambda: value(
        scrape(target), *handled, **keepalive) == value(after, *handled, **keepalive) + 1)


def test_killing_the_leader_is_a_leader_change_on_the_survivors(fleet):
    members = fleet.cluster(3, extra_args=TIMING)
    Ctl3(members[0])("put", "k", "v")
    scrapes = {m.name: scrape(m) for m in members}
    leader = next(m for m in members if value(scrapes[m.name], "etcd_server_is_leader") == 1)

    def round_trips_measured():
        # By hex ID in `To` (etcd measures with a prober every few seconds).
        rtt = scrape(leader).get("etcd_network_peer_round_trip_time_seconds")
        return rtt and {s.labels.get("To") for s in rtt.samples} - {None}
    wait_for("the leader's round trips to its peers", round_trips_measured)
    survivors = [m for m in members if m is not leader]
    changes = "etcd_server_leader_changes_seen_total"
    seen = {m.name: value(scrapes[m.name], changes) for m in survivors}
    leader.kill()

    def new_leader_seen():
        now = {m.name: scrape(m) for m in survivors}
        return all(value(now[n], changes) > seen[n] and value(now[n], "etcd_server_has_leader") == 1
                   for n in seen)
    wait_for("the survivors to count a new leader", new_leader_seen)


def test_listen_metrics_urls_serves_metrics_and_health(fleet):
    port = harness.free_port()
    server = fleet.target(extra_args=["--listen-metrics-urls", "http://127.0.0.1:%d" % port]).start()
    families = scrape(server, port=port)
    assert value(families, "etcd_server_has_leader") == 1
    st, _, body = harness.raw_request(port, "GET", "/health")
    assert st == 200 and b'"health":"true"' in body
    st, _, _ = harness.raw_request(port, "GET", "/v2/keys/")
    assert st == 404
