//! A one-member cluster on real files: writes, restarts, snapshots, a torn log tail.

use crate::util::{NODE_ID, newest_segment, open, set, value};
use musubi_store::Response;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_member_leads_alone_and_applies_writes() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), 1000).await;
    let status = node.consensus.status();
    assert!(status.is_leader);
    assert_eq!(status.leader, Some(NODE_ID));
    assert_eq!(status.members.len(), 1);
    assert_eq!(status.members[0].name, "default");
    assert_eq!(status.members[0].client_urls, ["http://127.0.0.1:2379"]);

    let applied = node.consensus.write(set("/a", "1")).await.unwrap();
    assert!(matches!(applied.response, Response::V2(Ok(_))));
    assert!(applied.term >= 1);
    let second = node.consensus.write(set("/a", "2")).await.unwrap();
    assert_eq!(second.log_index, applied.log_index + 1);
    assert_eq!(
        node.applied.load(Ordering::Relaxed),
        2,
        "the hook saw both responses"
    );
    node.consensus.linearizable_barrier().await.unwrap();
    assert_eq!(value(&node, "/a").as_deref(), Some("2"));
    // Metrics trail the core by a moment.
    for _ in 0..100 {
        let status = node.consensus.status();
        if status.commit_index >= second.log_index && status.applied_index >= second.log_index {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let status = node.consensus.status();
    assert!(status.commit_index >= second.log_index && status.applied_index >= second.log_index);
    node.consensus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_replays_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), 1000).await;
    for i in 0..20 {
        node.consensus
            .write(set(&format!("/k{i}"), &i.to_string()))
            .await
            .unwrap();
    }
    node.consensus.shutdown().await;
    drop(node);

    let node = open(dir.path(), 1000).await;
    assert!(node.consensus.status().is_leader);
    for i in 0..20 {
        assert_eq!(value(&node, &format!("/k{i}")), Some(i.to_string()));
    }
    node.consensus.write(set("/after", "x")).await.unwrap();
    node.consensus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_compact_the_log_and_restore_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), 10).await;
    for i in 0..60 {
        node.consensus
            .write(set(&format!("/s{}", i % 7), &i.to_string()))
            .await
            .unwrap();
    }
    let snap = dir.path().join("member").join("snap").join("current.snap");
    for _ in 0..100 {
        if snap.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(snap.exists(), "a snapshot was written");
    let index_before = node.sm.read().index();
    node.consensus.shutdown().await;
    drop(node);

    let node = open(dir.path(), 10).await;
    assert_eq!(node.sm.read().index(), index_before);
    assert_eq!(value(&node, "/s3").as_deref(), Some("59"));
    node.consensus.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_log_tail_is_cut_and_the_member_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), 1000).await;
    for i in 0..30 {
        node.consensus
            .write(set(&format!("/t{}", i % 5), &i.to_string()))
            .await
            .unwrap();
    }
    node.consensus.shutdown().await;
    drop(node);

    let seg = newest_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    let node = open(dir.path(), 1000).await;
    assert_eq!(
        value(&node, "/t0").as_deref(),
        Some("25"),
        "only the torn last entry is lost"
    );
    node.consensus.write(set("/t0", "new")).await.unwrap();
    assert_eq!(value(&node, "/t0").as_deref(), Some("new"));
    node.consensus.shutdown().await;
}

/// Not an assertion (timings vary): prints how many concurrent writes per second one member
/// commits, fsync included. Run with `--nocapture` to see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(open(dir.path(), 100_000).await);
    let (clients, per_client) = (256, 40);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                node.consensus
                    .write(set(&format!("/bench/{c}"), &i.to_string()))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let writes = clients * per_client;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{writes} writes from {clients} concurrent clients in {secs:.2}s: {:.0} writes/s",
        writes as f64 / secs
    );
    assert_eq!(node.applied.load(Ordering::Relaxed), writes as u64);
    node.consensus.shutdown().await;
}

/// A restarted member that cannot reach a leader (elections off here) still replays its log
/// up to the committed index it saw before, so its local reads do not go back in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_replays_to_its_committed_index_before_any_election() {
    use musubi_consensus::{LogStore, Raft, StateMachineStore, network::PeerNetwork};
    use openraft::async_runtime::watch::WatchReceiver;
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), 1000).await;
    let mut last = 0;
    for i in 0..30 {
        last = node
            .consensus
            .write(set(&format!("/k{i}"), &i.to_string()))
            .await
            .unwrap()
            .log_index;
    }
    // The hint is written in the background, within about 100 ms.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    node.consensus.shutdown().await;
    drop(node);

    let cfg = crate::util::config(dir.path(), 1000);
    let mut raft_config = cfg.raft_config();
    raft_config.enable_elect = false;
    let sm: musubi_consensus::SharedStateMachine = Default::default();
    let hook: musubi_consensus::ApplyHook = Arc::new(|_| {});
    let raft = Raft::new(
        NODE_ID,
        Arc::new(raft_config.validate().unwrap()),
        PeerNetwork::new(None, 1),
        LogStore::open(cfg.wal_dir(), cfg.snap_dir()).unwrap(),
        StateMachineStore::open(sm.clone(), hook, cfg.snap_dir()).unwrap(),
    )
    .await
    .unwrap();
    raft.wait(Some(std::time::Duration::from_secs(5)))
        .applied_index_at_least(Some(last), "replayed to the committed hint")
        .await
        .expect("the log is replayed without a leader");
    assert!(!raft.metrics().borrow_watched().state.is_leader());
    assert_eq!(
        sm.read()
            .get("/k29", false, 0)
            .ok()
            .and_then(|e| e.node.value)
            .as_deref(),
        Some("29")
    );
    raft.shutdown().await.unwrap();
}
