//! The members of a simulated cluster: the real log and state machine stores, each member on
//! its own disk, openraft with musubi's production configuration, and the simulated network.
//!
//! A member's disk is one of two kinds ([`Disks`]):
//! - simulated (the default): a `musubi_raftlog::sim::SimDisk` per member, holding the data
//!   dir `/m{id}` in memory. A crash is a power loss: the disk forgets everything not
//!   fsynced (unsynced writes, and names not made durable by a directory sync), may keep a
//!   torn prefix of the unsynced tail, and fails every later call of the crashed process,
//!   syncs in progress included. Syncs take 0.1-2 ms, as on a real disk, so a crash often
//!   finds appends written but not yet synced;
//! - real (`MUSUBI_SIM_FS=real`): a temporary directory per member. A crash only stops the
//!   process, so whatever it wrote stays in the page cache: this proves nothing about
//!   fsync, and is kept for comparison and to exercise the real file system.
//!
//! A crash cuts the member off the network, (on a simulated disk) loses power, then stops
//! its Raft and drops it; a restart opens the same data dir again, so every restart goes
//! through the real recovery path (torn-tail repair, snapshot restore, log replay, vote).
//! A member that cannot be opened again is a violation ([`Cluster::restart`]).

use crate::network::Router;
use crate::schedule::Pick;
use musubi_consensus::{
    ApplyHook, ConsensusConfig, LogStore, Member, Raft, SharedStateMachine, StateMachineStore,
};
use musubi_raftlog::fs::Fs;
use musubi_raftlog::sim::{CrashReport, SimDisk};
use musubi_store::StateMachine;
use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

/// Fast timers, so a seed runs in seconds: elections take a few hundred milliseconds.
const HEARTBEAT_MS: u64 = 50;
const ELECTION_MS: u64 = 150;
/// Small, so snapshots, log purges and snapshot installs on lagging members all happen.
const SNAPSHOT_COUNT: u64 = 40;
/// How long a simulated fsync takes: about what one takes on a small cloud VM's disk
/// (measured: median 0.2 ms, 90th percentile 1.8 ms). An instant sync would leave a crash
/// almost no unsynced data to lose.
const SYNC_MIN: Duration = Duration::from_micros(100);
const SYNC_MAX: Duration = Duration::from_millis(2);
/// A crashing member's power goes at one of its next this many state-changing disk calls
/// (an append batch is one or two, an fsync one, a vote save five)...
const CRASH_WITHIN_CALLS: u64 = 8;
/// ... or after this long, if it is idle (cut off, say).
const IDLE_CRASH: Duration = Duration::from_millis(250);

/// A member that runs.
struct Running {
    raft: Raft,
    sm: SharedStateMachine,
    store: StateMachineStore,
}

/// Which disks the members run on (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disks {
    /// In-memory disks that lose unsynced writes when a member crashes.
    Simulated,
    /// Temporary directories on the real file system; a crash keeps the page cache.
    Real,
}

/// A member's disk.
enum Disk {
    Simulated(SimDisk),
    Real {
        /// Kept for the data dir's lifetime; removed when the cluster is dropped.
        _dir: TempDir,
    },
}

impl Disk {
    /// The file system a newly started incarnation of the member sees.
    fn fs(&self) -> Arc<dyn Fs> {
        match self {
            Disk::Simulated(disk) => disk.fs(),
            Disk::Real { .. } => musubi_raftlog::fs::real(),
        }
    }
}

/// What the members' power losses threw away, summed.
#[derive(Clone, Debug, Default)]
pub struct PowerLosses {
    pub count: usize,
    pub lost: CrashReport,
}

pub struct Cluster {
    router: Arc<Router>,
    configs: BTreeMap<u64, ConsensusConfig>,
    disks: BTreeMap<u64, Disk>,
    running: BTreeMap<u64, Running>,
    /// The members that are down, in the order they crashed.
    down: Vec<u64>,
    /// Restarts so far (the initial starts excluded).
    restarts: usize,
    power_losses: PowerLosses,
}

impl Cluster {
    /// Starts members `1..=size` on `disks` (seeded from `seed`), which elect a leader among
    /// themselves.
    pub async fn start(
        size: u64,
        router: Arc<Router>,
        disks: Disks,
        seed: u64,
    ) -> Result<Cluster, String> {
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
        let mut configs = BTreeMap::new();
        let mut member_disks = BTreeMap::new();
        for (id, member) in &members {
            let (disk, data_dir) = match disks {
                Disks::Simulated => {
                    let disk_seed = seed.wrapping_mul(0x9e37_79b9).wrapping_add(*id);
                    let disk = SimDisk::with_sync_latency(disk_seed, SYNC_MIN, SYNC_MAX);
                    (Disk::Simulated(disk), PathBuf::from(format!("/m{id}")))
                }
                Disks::Real => {
                    let dir = tempfile::tempdir().expect("a temporary data dir");
                    let path = dir.path().to_path_buf();
                    (Disk::Real { _dir: dir }, path)
                }
            };
            configs.insert(
                *id,
                ConsensusConfig {
                    node_id: *id,
                    node_name: member.name.clone(),
                    cluster_id: 1,
                    join_existing: false,
                    force_new_cluster: false,
                    peer_tls: None,
                    data_dir,
                    peer_url: member.peer_urls[0].clone(),
                    client_urls: Vec::new(),
                    snapshot_count: SNAPSHOT_COUNT,
                    heartbeat_ms: HEARTBEAT_MS,
                    election_ms: ELECTION_MS,
                    initial_members: members.clone(),
                },
            );
            member_disks.insert(*id, disk);
        }
        let mut cluster = Cluster {
            router,
            configs,
            disks: member_disks,
            running: BTreeMap::new(),
            down: Vec::new(),
            restarts: 0,
            power_losses: PowerLosses::default(),
        };
        for id in 1..=size {
            cluster.open(id).await?;
        }
        Ok(cluster)
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
    ///
    /// Whatever a crash left on the disk, the member must come up: a log or snapshot that
    /// cannot be read, or a Raft that refuses its stored state, is returned as a violation.
    async fn open(&mut self, id: u64) -> Result<(), String> {
        assert!(!self.is_running(id), "member {id} already runs");
        let cfg = &self.configs[&id];
        let fs = self.disks[&id].fs();
        let refused = |what: &str, e: &dyn std::fmt::Display| {
            format!("member {id} refuses to start: {what}: {e}")
        };
        let sm: SharedStateMachine = Arc::new(parking_lot::RwLock::new(StateMachine::new()));
        let hook: ApplyHook = Arc::new(|_| {});
        let log = LogStore::open_on(fs.clone(), cfg.wal_dir(), cfg.snap_dir())
            .map_err(|e| refused("the log does not open", &e))?;
        let store = StateMachineStore::open_on(fs, sm.clone(), hook, cfg.snap_dir())
            .map_err(|e| refused("the snapshot does not load", &e))?;
        let raft_config = cfg.raft_config().validate().expect("a valid raft config");
        let raft = Raft::new(
            id,
            Arc::new(raft_config),
            self.router.endpoint(id),
            log,
            store.clone(),
        )
        .await
        .map_err(|e| refused("raft does not start", &e))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| refused("raft does not answer", &e))?;
        if !initialized {
            raft.initialize(cfg.initial_membership())
                .await
                .map_err(|e| refused("a fresh member does not initialize", &e))?;
        }
        self.router.attach(id, raft.clone());
        self.running.insert(id, Running { raft, sm, store });
        self.down.retain(|d| *d != id);
        Ok(())
    }

    /// Restarts member `id` after a crash (see [`Cluster::open`]).
    pub async fn restart(&mut self, id: u64) -> Result<(), String> {
        self.open(id).await?;
        self.restarts += 1;
        Ok(())
    }

    /// Crashes member `id`: cuts it off the network and, on a simulated disk, its power,
    /// then stops it.
    ///
    /// A simulated disk loses power in the middle of the member's own I/O, at one of its
    /// next `CRASH_WITHIN_CALLS` state-changing calls (see `SimDisk::crash_within`), or after
    /// `IDLE_CRASH` if it makes fewer: that is when a power loss finds written but unsynced
    /// data. At that instant the member also leaves the network, so nothing it does after
    /// its power went (its Raft runs on, with a failing disk, until stopped) is seen.
    pub async fn crash(&mut self, id: u64) {
        assert!(self.is_running(id), "only a running member crashes");
        match &self.disks[&id] {
            Disk::Simulated(disk) => {
                let (struck, report) = tokio::sync::oneshot::channel();
                let router = self.router.clone();
                disk.crash_within(CRASH_WITHIN_CALLS, move |lost| {
                    router.detach(id);
                    let _ = struck.send(lost);
                });
                let mut report = std::pin::pin!(report);
                let lost = match tokio::time::timeout(IDLE_CRASH, &mut report).await {
                    Ok(lost) => lost,
                    Err(_idle) => {
                        disk.crash_armed_now();
                        report.await
                    }
                }
                .expect("an armed crash reports when it strikes");
                self.power_losses.count += 1;
                self.power_losses.lost += lost;
            }
            Disk::Real { .. } => {
                self.router.detach(id);
            }
        }
        let node = self.running.remove(&id).expect("checked above");
        self.down.push(id);
        // The dead incarnation's storage calls now fail; it may stop with a storage error.
        let _ = node.raft.shutdown().await;
        // A snapshot still being written must not land after the next incarnation opened
        // (on a simulated disk it cannot anyway).
        node.store.close().await;
    }

    /// Restarts the member that has been down longest, if one is down.
    pub async fn restart_longest_down(&mut self) -> Result<(), String> {
        if let Some(&id) = self.down.first() {
            self.restart(id).await?;
        }
        Ok(())
    }

    /// Restarts every member that is down.
    pub async fn restart_all(&mut self) -> Result<(), String> {
        while !self.down.is_empty() {
            self.restart_longest_down().await?;
        }
        Ok(())
    }

    /// How many times members restarted after a crash.
    pub fn restarts(&self) -> usize {
        self.restarts
    }

    /// What the power losses so far threw away (none on real disks).
    pub fn power_losses(&self) -> &PowerLosses {
        &self.power_losses
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
            self.router.detach(id);
            let node = self.running.remove(&id).expect("listed as running");
            let _ = node.raft.shutdown().await;
            node.store.close().await;
        }
    }
}
