//! The handle the server holds: open, write, read barrier, status, shutdown.

use crate::force;
use crate::forward::{self, Forwarder};
use crate::network::{self, PeerNetwork, PeerStats};
use crate::read_batch::ReadBatch;
use crate::{
    ApplyHook, ConsensusConfig, ConsensusError, LogStore, MemberInfo, Raft, SharedStateMachine,
    StateMachineStore,
};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::{Instant, ServerState};
use std::sync::Arc;
use std::time::Duration;

/// A running Raft member. Cheap to clone; every clone drives the same node.
#[derive(Clone)]
pub struct Consensus {
    pub(crate) raft: Raft,
    pub(crate) state_machine: StateMachineStore,
    pub(crate) node_id: u64,
    peer_stats: Arc<PeerStats>,
    pub(crate) cluster_id: u64,
    pub(crate) forwarder: Forwarder,
    /// The election timeout: a leader unacknowledged for longer may have lost its quorum.
    pub(crate) election: Duration,
    /// How long a request waits for a leader to appear before it fails.
    pub(crate) leader_wait: Duration,
    /// Quorum reads waiting for a ReadIndex, served one fetch per batch.
    pub(crate) read_batch: Arc<ReadBatch>,
    pub(crate) write_metrics: WriteMetrics,
}

/// The metrics every write updates, registered once: finding a metric by name in the
/// registry on each write cost more than the update.
#[derive(Clone)]
pub(crate) struct WriteMetrics {
    pub(crate) pending: metrics::Gauge,
    pub(crate) failed: metrics::Counter,
}

impl WriteMetrics {
    fn register() -> WriteMetrics {
        WriteMetrics {
            pending: metrics::gauge!("etcd_server_proposals_pending"),
            failed: metrics::counter!("etcd_server_proposals_failed_total"),
        }
    }
}

/// A committed, applied write.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    pub response: musubi_store::Response,
    pub log_index: u64,
    pub term: u64,
}

/// A point-in-time view of this member's Raft state.
#[derive(Clone, Debug)]
pub struct RaftStatus {
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub leader: Option<u64>,
    pub is_leader: bool,
    /// There is a leader and it is in touch with a quorum: false on a leader no quorum has
    /// acknowledged within an election timeout (openraft keeps such a leader leading, where
    /// etcd's check-quorum steps it down), so that `etcd_server_has_leader` and Status'
    /// `no leader` tell the truth on the cut-off side of a partition.
    pub has_leader: bool,
    pub members: Vec<MemberInfo>,
}

/// The members in `m`'s membership, learners flagged.
pub(crate) fn member_infos(m: &openraft::RaftMetrics<crate::TypeConfig>) -> Vec<MemberInfo> {
    let voters: Vec<u64> = m.membership_config.voter_ids().collect();
    m.membership_config
        .nodes()
        .map(|(id, node)| MemberInfo::new(*id, node, voters.contains(id)))
        .collect()
}

impl Consensus {
    /// Opens (or creates) the log and snapshot under `data_dir`, restores the state machine
    /// from the latest snapshot and replays the log; on a fresh data dir initializes the
    /// initial membership. When this member is the only voter it returns once it leads and
    /// has applied everything it had logged; with other voters it returns at once (reads are
    /// served locally, writes wait briefly for a leader and then fail naming who is missing).
    pub async fn open(
        cfg: ConsensusConfig,
        sm: SharedStateMachine,
        hook: ApplyHook,
    ) -> Result<Consensus, ConsensusError> {
        let mut log =
            LogStore::open(cfg.wal_dir(), cfg.snap_dir()).map_err(ConsensusError::storage(
                format!("cannot open the raft log in {}", cfg.wal_dir().display()),
            ))?;
        if cfg.force_new_cluster {
            force::make_sole_voter(&mut log, cfg.node_id, cfg.me())
                .await
                .map_err(ConsensusError::storage("cannot force a new cluster"))?;
        }
        let state_machine = StateMachineStore::open(sm, hook, cfg.snap_dir()).map_err(
            ConsensusError::storage(format!(
                "cannot restore the snapshot in {}",
                cfg.snap_dir().display()
            )),
        )?;
        let raft_config = cfg
            .raft_config()
            .validate()
            .map_err(|e| ConsensusError::Config(e.to_string()))?;
        let network = PeerNetwork::new(cfg.peer_tls.clone(), cfg.cluster_id);
        let raft = Raft::new(
            cfg.node_id,
            Arc::new(raft_config),
            network.clone(),
            log,
            state_machine.clone(),
        )
        .await?;
        let election = Duration::from_millis(cfg.election_ms.max(2 * cfg.heartbeat_ms.max(1)));
        let this = Consensus {
            raft,
            state_machine,
            node_id: cfg.node_id,
            peer_stats: network.stats(),
            cluster_id: cfg.cluster_id,
            forwarder: Forwarder::new(cfg.peer_tls.clone(), Some(cfg.cluster_id)),
            election,
            // A follower campaigns within 1.2x election of silence (`raft_config`); three
            // allow a split or failed round on top.
            leader_wait: 3 * election,
            read_batch: Arc::default(),
            write_metrics: WriteMetrics::register(),
        };

        let initialized = this.raft.is_initialized().await?;
        tokio::spawn(this.clone().promote_caught_up());
        tokio::spawn(crate::observe::leader_changes(
            this.raft.clone(),
            cfg.node_id,
        ));
        if !initialized && cfg.join_existing {
            // Added by the cluster already: the leader sends the log, membership included.
            tracing::info!(member = %format!("{:x}", cfg.node_id), "waiting for the leader to send the cluster's log");
            tokio::spawn(
                this.clone()
                    .publish(cfg.node_name.clone(), cfg.client_urls.clone()),
            );
            return Ok(this);
        }
        if !initialized {
            let members = cfg.initial_membership();
            tracing::info!(member = %format!("{:x}", cfg.node_id), size = members.len(), "initializing a new cluster");
            // Peers are not served yet, so no leader can have written to this log first.
            this.raft.initialize(members).await.map_err(|e| {
                ConsensusError::Fatal(format!("cannot initialize the cluster: {e}"))
            })?;
        }
        let timeout = Duration::from_millis(10 * cfg.election_ms.max(100) + 5000);
        if this.is_sole_voter(timeout).await? {
            this.lead_alone(timeout).await?;
        }
        // A lone founder's membership names its client URLs already (publishing finds
        // nothing to do), but one restored from a backup (`write_restored`) has none yet.
        tokio::spawn(
            this.clone()
                .publish(cfg.node_name.clone(), cfg.client_urls.clone()),
        );
        Ok(this)
    }

    /// Whether this member is the only voter, once Raft has published the membership it
    /// loaded or was just initialized with (metrics trail the core by a moment).
    async fn is_sole_voter(&self, timeout: Duration) -> Result<bool, ConsensusError> {
        let known = |m: &openraft::RaftMetrics<crate::TypeConfig>| {
            m.membership_config.voter_ids().next().is_some()
        };
        let metrics = self
            .raft
            .wait(Some(timeout))
            .metrics(known, "membership is known")
            .await
            .map_err(|e| ConsensusError::Fatal(format!("raft did not load its membership: {e}")))?;
        Ok(metrics.membership_config.voter_ids().eq([self.node_id]))
    }

    /// A sole voter need not wait out an election timeout after a restart: it campaigns at
    /// once, then waits until its log is committed and applied.
    async fn lead_alone(&self, timeout: Duration) -> Result<(), ConsensusError> {
        if !self.raft.is_leader() {
            self.raft.trigger().elect(false).await?;
        }
        let unavailable = |e: openraft::metrics::WaitError| {
            ConsensusError::Unavailable(format!("this member did not become leader: {e}"))
        };
        self.raft
            .wait(Some(timeout))
            .state(ServerState::Leader, "sole voter leads")
            .await
            .map_err(unavailable)?;
        self.raft
            .wait_for_recovery(Some(timeout))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The committed index and the current term: what every reply reports in
    /// `X-Raft-Index` / `X-Raft-Term`. Cheap (no copy of the metrics), for hot paths.
    pub fn position(&self) -> (u64, u64) {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        (m.local_committed.map_or(0, |id| id.index), m.current_term)
    }

    /// Whether this member leads right now. Cheap, like [`Consensus::position`].
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.current_leader == Some(self.node_id) && m.state == ServerState::Leader
    }

    /// Whether this member is a learner right now (a member but not a voter). Cheap, like
    /// [`Consensus::is_leader`].
    pub fn is_learner(&self) -> bool {
        let metrics = self.raft.metrics();
        let config = &metrics.borrow_watched().membership_config;
        config.nodes().any(|(id, _)| *id == self.node_id)
            && !config.voter_ids().any(|id| id == self.node_id)
    }

    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let is_leader = m.current_leader == Some(self.node_id) && m.state == ServerState::Leader;
        RaftStatus {
            term: m.current_term,
            commit_index: m.local_committed.map_or(0, |id| id.index),
            applied_index: m.last_applied.map_or(0, |id| id.index),
            leader: m.current_leader,
            is_leader,
            has_leader: m.current_leader.is_some() && (!is_leader || self.quorum_acked(&m)),
            members: member_infos(&m),
        }
    }

    /// On a leader: a quorum acknowledged it within an election timeout (a lone voter is
    /// its own quorum; a leader not yet acknowledged since its election was just voted in).
    pub(crate) fn quorum_acked(&self, m: &openraft::RaftMetrics<crate::TypeConfig>) -> bool {
        m.membership_config.voter_ids().count() <= 1
            || m.last_quorum_acked
                .as_ref()
                .is_none_or(|t| t.elapsed() < self.election)
    }

    /// A leader that stops hands its leadership to the most caught-up voter first, as etcd
    /// does on a graceful stop: the cluster need not wait out an election, and the others
    /// learn the commit index at once, so a local read on any of them right after the stop
    /// sees every write this leader acknowledged. Gives up after an election timeout.
    async fn hand_over_leadership(&self) {
        let (successor, term) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            if m.current_leader != Some(self.node_id) || m.state != ServerState::Leader {
                return;
            }
            let voters: Vec<u64> = m.membership_config.voter_ids().collect();
            let successor = m.replication.as_ref().and_then(|replication| {
                replication
                    .iter()
                    .filter(|(id, _)| **id != self.node_id && voters.contains(id))
                    .max_by_key(|(_, matched)| matched.as_ref().map(|l| l.index))
                    .map(|(id, _)| *id)
            });
            (successor, m.current_term)
        };
        let Some(successor) = successor else {
            return;
        };
        tracing::info!(to = %format!("{successor:x}"), "stopping: handing leadership over");
        if self
            .raft
            .trigger()
            .transfer_leader(successor)
            .await
            .is_err()
        {
            return;
        }
        // Handed over once the successor has committed an entry of its own term: the
        // broadcast that told this member so told the others too.
        let handed_over = self
            .raft
            .wait(Some(self.election))
            .metrics(
                |m| {
                    m.current_leader.is_some_and(|l| l != self.node_id)
                        && m.local_committed.is_some_and(|c| c.leader_id.term > term)
                },
                "leadership handed over",
            )
            .await;
        if let Err(e) = handed_over {
            tracing::warn!(error = %e, "stopping without a successor");
        }
    }

    /// A copy of this member's state machine, with the index and term of the last entry
    /// applied to it (a backup's origin). O(1); serialise it off the async runtime.
    pub fn freeze(&self) -> (u64, u64, musubi_store::Frozen) {
        let (applied, frozen) = self.state_machine.freeze();
        let (index, term) = applied.map_or((0, 0), |id| (id.index, id.leader_id.term));
        (index, term, frozen)
    }

    /// Appends sent and received, and each follower's latency as this member has seen it.
    pub fn peer_stats(&self) -> network::Totals {
        self.peer_stats.totals()
    }

    /// The peer routes (`/raft/...`) to serve on this member's peer URLs; only members of
    /// this member's cluster are served (`network::cluster_stamp`).
    pub fn peer_router(&self) -> axum::Router {
        self.peer_router_with(axum::Router::new())
    }

    /// The peer routes with the server's own leader-side routes (`leader_route`) beside
    /// them, behind the same cluster-ID check.
    pub fn peer_router_with(&self, extra: axum::Router) -> axum::Router {
        let routes = network::router(self.raft.clone(), self.peer_stats.clone())
            .merge(forward::router(self.clone()).layer(network::peer_body_limit()))
            .merge(extra);
        network::cluster_stamp::guard(routes, self.cluster_id, forward::OPEN_TO_NEWCOMERS)
    }

    /// Stops Raft and waits for a snapshot being written; pending writes fail. Everything
    /// acknowledged is already durable. A leader hands its leadership over first.
    pub async fn shutdown(&self) {
        self.hand_over_leadership().await;
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
        self.state_machine.close().await;
    }
}
