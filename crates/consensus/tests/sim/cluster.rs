//! The members of a simulated cluster: the real log and state machine stores on temporary
//! data dirs, openraft with musubi's production configuration, and the simulated network.
//!
//! A crash stops a member's Raft and drops it; a restart opens the same data dir again, so
//! every restart goes through the real recovery path (snapshot restore, log replay, vote).

use crate::network::Router;
use crate::schedule::Pick;
use musubi_consensus::{
    ApplyHook, ConsensusConfig, LogStore, Member, Raft, SharedStateMachine, StateMachineStore,
};
use musubi_store::StateMachine;
use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;
use std::collections::BTreeMap;
use std::sync::Arc;
use tempfile::TempDir;

/// Fast timers, so a seed runs in seconds: elections take a few hundred milliseconds.
const HEARTBEAT_MS: u64 = 50;
const ELECTION_MS: u64 = 150;
/// Small, so snapshots, log purges and snapshot installs on lagging members all happen.
const SNAPSHOT_COUNT: u64 = 40;

/// A member that runs.
struct Running {
    raft: Raft,
    sm: SharedStateMachine,
    store: StateMachineStore,
}

pub struct Cluster {
    router: Arc<Router>,
    configs: BTreeMap<u64, ConsensusConfig>,
    running: BTreeMap<u64, Running>,
    /// The members that are down, in the order they crashed.
    down: Vec<u64>,
    /// Kept for the data dirs' lifetime; removed when the cluster is dropped.
    _dirs: Vec<TempDir>,
}

impl Cluster {
    /// Starts members `1..=size`, which elect a leader among themselves.
    pub async fn start(size: u64, router: Arc<Router>) -> Cluster {
        let members: BTreeMap<u64, Member> = (1..=size)
            .map(|id| {
                let member = Member {
                    name: format!("m{id}"),
                    peer_urls: vec![format!("sim://m{id}")],
                    client_urls: Vec::new(),
                    is_learner: false,
                };
                (id, member)
            })
            .collect();
        let mut dirs = Vec::new();
        let mut configs = BTreeMap::new();
        for (id, member) in &members {
            let dir = tempfile::tempdir().expect("a temporary data dir");
            configs.insert(
                *id,
                ConsensusConfig {
                    node_id: *id,
                    node_name: member.name.clone(),
                    cluster_id: 1,
                    join_existing: false,
                    force_new_cluster: false,
                    peer_tls: None,
                    data_dir: dir.path().to_path_buf(),
                    peer_url: member.peer_urls[0].clone(),
                    client_urls: Vec::new(),
                    snapshot_count: SNAPSHOT_COUNT,
                    heartbeat_ms: HEARTBEAT_MS,
                    election_ms: ELECTION_MS,
                    initial_members: members.clone(),
                },
            );
            dirs.push(dir);
        }
        let mut cluster = Cluster {
            router,
            configs,
            running: BTreeMap::new(),
            down: Vec::new(),
            _dirs: dirs,
        };
        for id in 1..=size {
            cluster.restart(id).await;
        }
        cluster
    }

    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.configs.keys().copied()
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.running.contains_key(&id)
    }

    /// The running member `pick` names now, if any runs.
    pub fn pick(&self, pick: Pick) -> Option<u64> {
        let leader = || {
            self.running
                .iter()
                .find(|(_, node)| node.raft.metrics().borrow_watched().state == ServerState::Leader)
                .map(|(id, _)| *id)
        };
        match pick {
            Pick::Leader => leader().or_else(|| self.running.keys().next().copied()),
            Pick::Nth(n) => self.running.keys().cycle().nth(n).copied(),
        }
    }

    /// Opens member `id` from its data dir (a fresh one initializes the membership, as
    /// `Consensus::open` does) and connects it to the network.
    pub async fn restart(&mut self, id: u64) {
        assert!(!self.is_running(id), "member {id} already runs");
        let cfg = &self.configs[&id];
        let sm: SharedStateMachine = Arc::new(parking_lot::RwLock::new(StateMachine::new()));
        let hook: ApplyHook = Arc::new(|_| {});
        let log = LogStore::open(cfg.wal_dir(), cfg.snap_dir()).expect("the log opens");
        let store =
            StateMachineStore::open(sm.clone(), hook, cfg.snap_dir()).expect("the snapshot loads");
        let raft_config = cfg.raft_config().validate().expect("a valid raft config");
        let raft = Raft::new(
            id,
            Arc::new(raft_config),
            self.router.endpoint(id),
            log,
            store.clone(),
        )
        .await
        .expect("raft starts");
        if !raft.is_initialized().await.expect("raft answers") {
            raft.initialize(cfg.initial_membership())
                .await
                .expect("a fresh member initializes");
        }
        self.router.attach(id, raft.clone());
        self.running.insert(id, Running { raft, sm, store });
        self.down.retain(|d| *d != id);
    }

    /// Cuts member `id` off the network and stops it. What it had fsynced stays on disk.
    pub async fn crash(&mut self, id: u64) {
        self.router.detach(id);
        let node = self
            .running
            .remove(&id)
            .expect("only a running member crashes");
        self.down.push(id);
        node.raft.shutdown().await.expect("raft stops");
        // A snapshot still being written must not land after the next incarnation opened.
        node.store.close().await;
    }

    /// Restarts the member that has been down longest, if one is down.
    pub async fn restart_longest_down(&mut self) {
        if let Some(&id) = self.down.first() {
            self.restart(id).await;
        }
    }

    /// Restarts every member that is down.
    pub async fn restart_all(&mut self) {
        while !self.down.is_empty() {
            self.restart_longest_down().await;
        }
    }

    /// The running members' state machines.
    pub fn state_machines(&self) -> BTreeMap<u64, SharedStateMachine> {
        self.running
            .iter()
            .map(|(id, node)| (*id, node.sm.clone()))
            .collect()
    }

    /// Each member's Raft state, one line each: what a failure report needs to show.
    pub fn describe(&self) -> String {
        let mut lines = Vec::new();
        for id in self.ids() {
            let line = match self.running.get(&id) {
                None => format!("member {id}: down"),
                Some(node) => {
                    let m = node.raft.metrics().borrow_watched().clone();
                    let stopped = m.running_state.err().map(|e| format!(" stopped: {e}"));
                    format!(
                        "member {id}: {:?} vote {} leader {:?} last log {:?} committed {:?} applied {:?} snapshot {:?} purged {:?}{}",
                        m.state,
                        m.vote,
                        m.current_leader,
                        m.last_log_index,
                        m.local_committed.map(|c| c.index),
                        m.last_applied.map(|a| a.index),
                        m.snapshot.map(|s| s.index),
                        m.purged.map(|p| p.index),
                        stopped.unwrap_or_default(),
                    )
                }
            };
            lines.push(line);
        }
        lines.join("\n")
    }

    /// Stops every member, so nothing outlives the seed's runtime.
    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.running.keys().copied().collect();
        for id in ids {
            self.crash(id).await;
        }
    }
}
