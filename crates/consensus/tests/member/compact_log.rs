//! `Consensus::compact_log` (the v3 Defragment): a snapshot now, and the log purged up to it.

use crate::util::{open, set, value};
use std::path::Path;
use std::time::Duration;

fn wal_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("member").join("wal"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacting_the_log_leaves_a_snapshot_and_no_segment_and_the_member_restarts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    // No automatic snapshot: only compact_log takes one.
    let node = open(dir.path(), 1_000_000).await;
    for i in 0..50 {
        node.consensus
            .write(set(&format!("/k{i}"), &i.to_string()))
            .await
            .unwrap();
    }
    assert!(wal_files(dir.path()) >= 1);
    node.consensus
        .compact_log(Duration::from_secs(10))
        .await
        .unwrap();
    // Everything was in the snapshot, so every segment went.
    assert_eq!(wal_files(dir.path()), 0);
    node.consensus.write(set("/after", "1")).await.unwrap();
    node.consensus.shutdown().await;
    drop(node);

    let node = open(dir.path(), 1_000_000).await;
    node.consensus.linearizable_barrier().await.unwrap();
    assert_eq!(value(&node, "/k49").as_deref(), Some("49"));
    assert_eq!(value(&node, "/after").as_deref(), Some("1"));
    node.consensus.shutdown().await;
}
