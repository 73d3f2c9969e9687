//! Everything a request handler needs, built once at start-up.

use crate::v2::reply::{HttpResponse, RaftPosition};
use crate::v2::watch::WatchHub;
use axum::http::HeaderValue;
use musubi_consensus::{Consensus, SharedStateMachine};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Who this member is: etcd-style IDs, printed in hex on the wire.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub name: String,
    pub member_id: u64,
    pub cluster_id: u64,
    /// Added to a running cluster rather than founding it: a fresh log waits for the
    /// leader instead of initializing a membership.
    #[serde(default)]
    pub joined: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest value a write may carry (`--max-request-bytes` plus etcd's gRPC allowance).
    pub max_value_bytes: usize,
    /// Largest form body read from a client.
    pub max_body_bytes: usize,
    /// How long a write or a quorum read may wait for Raft before a 300 error.
    pub request_timeout: Duration,
    /// `--max-request-bytes`: the largest v3 write proposed.
    pub max_request_bytes: usize,
    /// `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// `--quota-backend-bytes` (0: etcd's 2 GiB, negative: none).
    pub quota_backend_bytes: i64,
    /// The shortest lease TTL granted, in seconds: etcd's ⌈1.5 × election timeout⌉.
    pub min_lease_ttl: i64,
    /// `--auth-token-ttl`: how long a v3 auth token lives after its last refresh.
    pub auth_token_ttl: Duration,
}

pub struct App {
    pub sm: SharedStateMachine,
    pub hub: Arc<WatchHub>,
    pub raft: Consensus,
    pub identity: Identity,
    pub limits: Limits,
    pub started_at: SystemTime,
    /// Where the log and snapshots live (the v3 `Status` reports their size).
    pub data_dir: std::path::PathBuf,
    /// When this member last saw a leader change (for `/v2/stats/self`).
    leader_seen: Mutex<(Option<u64>, SystemTime)>,
    /// `X-Etcd-Cluster-Id`, formatted once: most v2 replies carry it.
    cluster_id_header: HeaderValue,
}

impl App {
    pub fn new(
        sm: SharedStateMachine,
        hub: Arc<WatchHub>,
        raft: Consensus,
        identity: Identity,
        limits: Limits,
        data_dir: std::path::PathBuf,
    ) -> App {
        let now = SystemTime::now();
        let leader = raft.status().leader;
        let cluster_id_header = HeaderValue::from_str(&format!("{:x}", identity.cluster_id))
            .expect("hex is a valid header");
        App {
            sm,
            hub,
            raft,
            identity,
            limits,
            started_at: now,
            data_dir,
            leader_seen: Mutex::new((leader, now)),
            cluster_id_header,
        }
    }

    pub fn raft_position(&self) -> RaftPosition {
        let (index, term) = self.raft.position();
        RaftPosition { index, term }
    }

    /// Adds `X-Etcd-Cluster-Id`, which etcd sends on keys, members and auth replies.
    pub fn with_cluster_id(&self, mut resp: HttpResponse) -> HttpResponse {
        resp.headers_mut().insert(
            crate::v2::reply::X_ETCD_CLUSTER_ID,
            self.cluster_id_header.clone(),
        );
        resp
    }

    /// Since when the current leader has led, as far as this member has seen.
    pub fn leader_since(&self) -> SystemTime {
        let leader = self.raft.status().leader;
        let mut seen = self.leader_seen.lock();
        if seen.0 != leader {
            *seen = (leader, SystemTime::now());
        }
        seen.1
    }
}
