//! Shared helpers: a member on a temporary data dir, and a few requests.

use musubi_consensus::{ApplyHook, Consensus, ConsensusConfig, SharedStateMachine};
use musubi_store::{Expiry, Request, StateMachine, V2Op};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub const NODE_ID: u64 = 0x8e9e05c52164694d;

pub fn config(dir: &Path, snapshot_count: u64) -> ConsensusConfig {
    ConsensusConfig {
        node_id: NODE_ID,
        node_name: "default".into(),
        cluster_id: 1,
        join_existing: false,
        force_new_cluster: false,
        data_dir: dir.to_path_buf(),
        peer_url: "http://127.0.0.1:2380".into(),
        client_urls: vec!["http://127.0.0.1:2379".into()],
        snapshot_count,
        heartbeat_ms: 50,
        election_ms: 300,
        initial_members: Default::default(),
        peer_tls: None,
    }
}

pub fn set(key: &str, value: &str) -> Request {
    Request::V2 {
        now_ms: 0,
        op: V2Op::Set {
            key: key.into(),
            value: Some(value.into()),
            expiry: Expiry::Permanent,
            refresh: false,
        },
    }
}

pub struct Node {
    pub consensus: Consensus,
    pub sm: SharedStateMachine,
    /// How many responses the apply hook has seen.
    pub applied: Arc<AtomicU64>,
}

pub async fn open(dir: &Path, snapshot_count: u64) -> Node {
    let sm: SharedStateMachine = Arc::new(parking_lot::RwLock::new(StateMachine::new()));
    let applied = Arc::new(AtomicU64::new(0));
    let counter = applied.clone();
    let hook: ApplyHook = Arc::new(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let consensus = Consensus::open(config(dir, snapshot_count), sm.clone(), hook)
        .await
        .expect("consensus opens");
    Node {
        consensus,
        sm,
        applied,
    }
}

pub fn value(node: &Node, key: &str) -> Option<String> {
    node.sm
        .read()
        .get(key, false, 0)
        .ok()
        .and_then(|e| e.node.value)
}

pub fn newest_segment(dir: &Path) -> PathBuf {
    let wal = dir.join("member").join("wal");
    let mut segs: Vec<_> = std::fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.pop().expect("a log segment")
}
