//! `/metrics`: Prometheus's text format under etcd's metric names, so etcd's Grafana
//! dashboard and alert rules read a musubi member unchanged (docs/operations.md lists
//! what is exported and what musubi measures under each name).
//!
//! The crates below record through the `metrics` facade as they run (fsyncs, leader
//! changes, proposals, peer round trips, gRPC calls); gauges of the member's state are set
//! here at each scrape, from the state itself, so they cannot drift from it.

use crate::app::App;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// etcd's buckets for disk latencies: 1 ms doubling to 8 s.
const DISK_BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];
/// etcd's buckets for peer round trips: 0.1 ms doubling to 0.8 s.
const PEER_BUCKETS: [f64; 14] = [
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048,
    0.4096, 0.8192,
];

struct Exporter {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Installs the process-wide recorder (once: a second member in the same process, as in
/// tests, shares it). Call before the consensus layer starts, so its first leader counts.
pub fn install() {
    EXPORTER.get_or_init(|| {
        let disk = [
            "etcd_disk_wal_fsync_duration_seconds",
            "etcd_disk_backend_commit_duration_seconds",
        ];
        let mut builder = PrometheusBuilder::new();
        for name in disk {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.into()), &DISK_BUCKETS)
                .expect("buckets are not empty");
        }
        let builder = builder
            .set_buckets_for_metric(
                Matcher::Full("etcd_network_peer_round_trip_time_seconds".into()),
                &PEER_BUCKETS,
            )
            .expect("buckets are not empty");
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder came first (an embedding program's): render ours unused.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        };
        let process = metrics_process::Collector::default();
        process.describe();
        describe();
        register_at_zero();
        Exporter { handle, process }
    });
}

/// The exposition for one scrape.
pub fn render(app: &App) -> String {
    install();
    let exporter = EXPORTER.get().expect("installed above");
    record_state(app);
    exporter.process.collect();
    exporter.handle.render()
}

/// The gauges that are the member's state right now.
fn record_state(app: &App) {
    let raft = app.raft.status();
    let me = app.identity.member_id;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    metrics::gauge!("etcd_server_has_leader").set(flag(raft.has_leader));
    metrics::gauge!("etcd_server_is_leader").set(flag(raft.is_leader));
    let learner = raft.members.iter().any(|m| m.id == me && m.is_learner);
    metrics::gauge!("etcd_server_is_learner").set(flag(learner));
    metrics::gauge!("etcd_server_id", "server_id" => format!("{me:x}")).set(1.0);
    metrics::gauge!("etcd_server_version", "server_version" => crate::v2::cluster::ETCD_API_VERSION)
        .set(1.0);
    // A cluster version is the API's major.minor.
    metrics::gauge!("etcd_cluster_version", "cluster_version" => "3.4").set(1.0);
    // etcd's "proposals" are its Raft entries: its counts are gauges of the indexes.
    metrics::gauge!("etcd_server_proposals_committed_total").set(raft.commit_index as f64);
    metrics::gauge!("etcd_server_proposals_applied_total").set(raft.applied_index as f64);
    let quota = match app.limits.quota_backend_bytes {
        0 => crate::v3::quota::DEFAULT_QUOTA_BYTES as f64,
        flag => flag as f64,
    };
    metrics::gauge!("etcd_server_quota_backend_bytes").set(quota);
    let (keys, revision, compacted, in_use) = {
        let sm = app.sm.read();
        (
            sm.len(),
            sm.revision(),
            sm.compacted(),
            sm.keyspace().held_bytes(),
        )
    };
    metrics::gauge!("etcd_debugging_mvcc_keys_total").set(keys as f64);
    metrics::gauge!("etcd_debugging_mvcc_current_revision").set(revision as f64);
    metrics::gauge!("etcd_debugging_mvcc_compact_revision").set(compacted.max(0) as f64);
    // etcd's database file is musubi's data dir (log and snapshots); what is in use is the
    // keyspace in memory.
    let size = crate::v3::maintenance::dir_bytes(&app.data_dir) as f64;
    metrics::gauge!("etcd_mvcc_db_total_size_in_bytes").set(size);
    metrics::gauge!("etcd_debugging_mvcc_db_total_size_in_bytes").set(size);
    metrics::gauge!("etcd_mvcc_db_total_size_in_use_in_bytes").set(in_use as f64);
}

/// The families that only move when something happens, shown at zero before, as etcd
/// shows them (an alert on `increase(...)` needs the series to exist first).
fn register_at_zero() {
    for counter in [
        "etcd_server_leader_changes_seen_total",
        "etcd_server_proposals_failed_total",
    ] {
        metrics::counter!(counter).increment(0);
    }
    metrics::gauge!("etcd_server_proposals_pending").increment(0.0);
    for histogram in [
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_disk_backend_commit_duration_seconds",
    ] {
        // A handle registers the histogram; no sample is recorded.
        let _ = metrics::histogram!(histogram);
    }
}

/// HELP lines, in our words.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "etcd_server_has_leader",
        "1 if this member knows a leader, else 0."
    );
    describe_gauge!("etcd_server_is_leader", "1 if this member leads, else 0.");
    describe_gauge!(
        "etcd_server_is_learner",
        "1 if this member is a learner, else 0."
    );
    describe_gauge!(
        "etcd_server_id",
        "Always 1; the label is this member's hex ID."
    );
    describe_gauge!(
        "etcd_server_version",
        "Always 1; the label is the etcd version served."
    );
    describe_gauge!(
        "etcd_cluster_version",
        "Always 1; the label is the cluster version."
    );
    describe_counter!(
        "etcd_server_leader_changes_seen_total",
        "Leaders this member has seen take over."
    );
    describe_gauge!(
        "etcd_server_proposals_committed_total",
        "The Raft index this member knows committed."
    );
    describe_gauge!(
        "etcd_server_proposals_applied_total",
        "The Raft index this member has applied."
    );
    describe_gauge!(
        "etcd_server_proposals_pending",
        "Writes received by this member and not yet committed."
    );
    describe_counter!(
        "etcd_server_proposals_failed_total",
        "Writes received by this member that were not committed."
    );
    describe_gauge!(
        "etcd_server_quota_backend_bytes",
        "--quota-backend-bytes: the keyspace size that raises NOSPACE."
    );
    describe_gauge!("etcd_debugging_mvcc_keys_total", "Keys in the keyspace.");
    describe_gauge!(
        "etcd_debugging_mvcc_current_revision",
        "The keyspace's revision."
    );
    describe_gauge!(
        "etcd_debugging_mvcc_compact_revision",
        "The last compaction's revision."
    );
    describe_gauge!(
        "etcd_mvcc_db_total_size_in_bytes",
        Unit::Bytes,
        "Bytes of the data dir (Raft log and snapshots)."
    );
    describe_gauge!(
        "etcd_debugging_mvcc_db_total_size_in_bytes",
        Unit::Bytes,
        "Bytes of the data dir (Raft log and snapshots)."
    );
    describe_gauge!(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        Unit::Bytes,
        "Approximate bytes of the keyspace and its history in memory."
    );
    describe_histogram!(
        "etcd_disk_wal_fsync_duration_seconds",
        Unit::Seconds,
        "fdatasync of the Raft log, one per batch of appended entries."
    );
    describe_histogram!(
        "etcd_disk_backend_commit_duration_seconds",
        Unit::Seconds,
        "Writing a snapshot of the applied state to disk."
    );
    describe_histogram!(
        "etcd_network_peer_round_trip_time_seconds",
        Unit::Seconds,
        "Append round trips to each follower."
    );
    describe_counter!(
        "etcd_network_peer_sent_failures_total",
        "Appends to a follower that failed."
    );
    describe_counter!("grpc_server_started_total", "gRPC calls started.");
    describe_counter!(
        "grpc_server_handled_total",
        "gRPC calls finished, by status code."
    );
}
