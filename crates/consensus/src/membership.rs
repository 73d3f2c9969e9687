//! Membership at runtime: add, remove, update and promote members, as etcd's `/v2/members`
//! and `member add --learner` / `member promote` do, run on the leader.
//!
//! Every new member starts as a non-voting learner, whatever was asked: a member that is
//! still copying the log must not count toward the quorum (etcd's "quorum grows before the
//! new member starts" pitfall). A member added as a voter is promoted by the leader once
//! it has caught up ([`Consensus::promote_caught_up`]); one added with `is_learner` waits
//! for an explicit promote.

use crate::cluster::IfLost;
use crate::reconfig::{self, Seat};
use crate::{Consensus, ConsensusError, Member, MemberInfo, TypeConfig, forward, ids, join};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{ChangeMembers, RaftMetrics};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A learner this close to the leader's last log entry counts as caught up.
const CATCH_UP_SLACK: u64 = 100;
/// How often a membership change waits for the one before it to commit.
const RETRY_CHANGE: Duration = Duration::from_millis(50);
/// How often a follower asks whether it is still a member.
const REMOVAL_POLL: Duration = Duration::from_secs(3);
/// How often the leader looks for learners to promote.
const PROMOTE_EVERY: Duration = Duration::from_millis(300);

type WriteError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;

/// One change to who is in the cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MembershipChange {
    /// A new member, known by its peer URLs; `name` and `client_urls` are empty until it
    /// starts and publishes them, unless it asked to join itself.
    Add {
        name: String,
        peer_urls: Vec<String>,
        client_urls: Vec<String>,
        is_learner: bool,
    },
    Remove {
        id: u64,
    },
    UpdatePeerUrls {
        id: u64,
        peer_urls: Vec<String>,
    },
    Promote {
        id: u64,
    },
}

/// Why a membership change was refused; nothing changed. The messages are etcd's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MembershipError {
    #[error("etcdserver: member not found")]
    NotFound(u64),
    #[error("etcdserver: peerURL exists")]
    PeerUrlExists(String),
    #[error("etcdserver: {0}")]
    BadPeerUrl(String),
    #[error("etcdserver: can only promote a learner member")]
    NotLearner(u64),
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady(u64),
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// Too few started voting members would remain (removing the last voter is this too).
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// A voting member the change needs is not answering.
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
}

impl Consensus {
    /// Runs `change` on the leader, wherever it is; resolves once the new membership is
    /// committed. Returns the member as it now stands (or as it stood, when removed).
    pub async fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<MemberInfo, ConsensusError> {
        let body = || crate::cluster::encode(&change);
        self.on_leader(forward::MEMBERSHIP, body, IfLost::Unknown, || {
            self.change_here(change.clone())
        })
        .await
    }

    /// The members as this member sees them, once `settled` holds for them or `timeout` has
    /// passed: a change committed on the leader reaches the others a heartbeat later, and
    /// a reply that lists the members should show it.
    pub async fn members_once(
        &self,
        settled: impl Fn(&[MemberInfo]) -> bool + Send + Sync,
        timeout: Duration,
    ) -> Vec<MemberInfo> {
        let until = move |m: &RaftMetrics<TypeConfig>| settled(&crate::consensus::member_infos(m));
        match self
            .raft
            .wait(Some(timeout))
            .metrics(until, "members")
            .await
        {
            Ok(m) => crate::consensus::member_infos(&m),
            Err(_) => self.status().members,
        }
    }

    /// The cluster ID this member serves in.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub(crate) async fn change_here(
        &self,
        change: MembershipChange,
    ) -> Result<MemberInfo, ConsensusError> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let view = View(&metrics);
        match change {
            MembershipChange::Add {
                name,
                peer_urls,
                client_urls,
                is_learner,
            } => {
                let peer_urls = check_peer_urls(peer_urls)?;
                let up = self.voters_up(&view.members()).await;
                reconfig::may_add(&view.seats(), is_learner, &up)?;
                view.check_unused(&peer_urls, None)?;
                if is_learner {
                    reconfig::room_for_learner(&view.seats())?;
                }
                let salt = format!("{:x}/{}", self.cluster_id, unix_nanos());
                let id = ids::member_id(&peer_urls, &salt);
                let member = Member {
                    name,
                    peer_urls,
                    client_urls,
                    is_learner,
                };
                tracing::info!(id = %format!("{id:x}"), %member, "adding a member as a learner");
                self.one_at_a_time(|| self.raft.add_learner(id, member.clone(), false))
                    .await?;
                Ok(MemberInfo::new(id, &member, false))
            }
            MembershipChange::Remove { id } => {
                let (member, is_voter) = view.find(id)?;
                let up = self.voters_up(&view.members()).await;
                reconfig::may_remove(&view.seats(), id, self.node_id, &up)?;
                let ids = BTreeSet::from([id]);
                let change = if is_voter {
                    ChangeMembers::RemoveVoters(ids)
                } else {
                    ChangeMembers::RemoveNodes(ids)
                };
                tracing::info!(id = %format!("{id:x}"), %member, "removing a member");
                self.one_at_a_time(|| self.raft.change_membership(change.clone(), false))
                    .await?;
                Ok(MemberInfo::new(id, &member, is_voter))
            }
            MembershipChange::UpdatePeerUrls { id, peer_urls } => {
                let peer_urls = check_peer_urls(peer_urls)?;
                let (member, is_voter) = view.find(id)?;
                view.check_unused(&peer_urls, Some(id))?;
                let member = Member {
                    peer_urls,
                    ..member
                };
                self.set_member(id, member.clone()).await?;
                Ok(MemberInfo::new(id, &member, is_voter))
            }
            MembershipChange::Promote { id } => {
                let (member, is_voter) = view.find(id)?;
                if is_voter {
                    return Err(MembershipError::NotLearner(id).into());
                }
                if !view.caught_up(id) {
                    return Err(MembershipError::LearnerNotReady(id).into());
                }
                reconfig::may_promote(&view.seats())?;
                let member = Member {
                    is_learner: false,
                    ..member
                };
                self.set_member(id, member.clone()).await?;
                self.promote(id).await?;
                Ok(MemberInfo::new(id, &member, true))
            }
        }
    }

    /// Resolves once this member learns it was removed from the cluster (or Raft has
    /// stopped): a removed member belongs to no cluster and should stop serving, as
    /// etcd's does.
    pub async fn removed(&self) {
        tokio::select! {
            _ = self.sees_own_removal() => {}
            _ = self.told_of_removal() => {}
        }
    }

    /// The committed membership drops this member. A joining member replays memberships
    /// from before it was added, so only leaving a membership it was in counts.
    async fn sees_own_removal(&self) {
        // The server metrics change with the membership, not with every write.
        let mut metrics = self.raft.server_metrics();
        let mut was_member = false;
        loop {
            {
                let m = metrics.borrow_watched();
                let is_member = m
                    .committed_membership_config
                    .nodes()
                    .any(|(id, _)| *id == self.node_id);
                if was_member && !is_member {
                    return;
                }
                was_member |= is_member;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// A removed follower may never see the entry that drops it (the leader stops
    /// replicating to it first), so a follower asks its peers now and then. Only the answer
    /// of its own cluster's leader counts, its list being the latest: the forwarder asks
    /// only members of this cluster (`network::cluster_stamp`), and the view must name it
    /// too, so a stray process on a peer URL cannot talk a member out of its cluster.
    async fn told_of_removal(&self) {
        loop {
            tokio::time::sleep(REMOVAL_POLL).await;
            if self.is_leader() {
                continue;
            }
            let peers: Vec<String> = self
                .status()
                .members
                .iter()
                .filter(|m| m.id != self.node_id)
                .flat_map(|m| m.peer_urls.first().cloned())
                .collect();
            let Some(view) = join::ask_leader(&self.forwarder, &peers).await else {
                continue;
            };
            if view.cluster_id == self.cluster_id
                && !view.members.iter().any(|m| m.id == self.node_id)
            {
                tracing::warn!(leader = %format!("{:x}", view.from), "the leader's member list no longer has this member");
                return;
            }
        }
    }

    async fn set_member(&self, id: u64, member: Member) -> Result<(), ConsensusError> {
        let change = ChangeMembers::SetNodes(BTreeMap::from([(id, member)]));
        self.one_at_a_time(|| self.raft.change_membership(change.clone(), true))
            .await
    }

    async fn promote(&self, id: u64) -> Result<(), ConsensusError> {
        tracing::info!(id = %format!("{id:x}"), "promoting a caught-up learner to voter");
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        self.one_at_a_time(|| self.raft.change_membership(change.clone(), false))
            .await
    }

    /// openraft takes one membership change at a time, and none before a new leader has
    /// committed its first entry: wait those out rather than fail the request.
    async fn one_at_a_time<F, Fut>(&self, change: F) -> Result<(), ConsensusError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<ClientWriteResponse<TypeConfig>, WriteError>>,
    {
        let deadline = tokio::time::Instant::now() + self.leader_wait;
        loop {
            match change().await {
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_)
                    | ChangeMembershipError::UncommittedLeaderLog(_),
                ))) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_CHANGE).await
                }
                other => return other.map(drop).map_err(ConsensusError::from),
            }
        }
    }

    /// While this member leads, promotes every learner that was added to vote once it has
    /// caught up. Runs on every member for as long as Raft runs; only a leader acts.
    pub(crate) async fn promote_caught_up(self) {
        loop {
            tokio::time::sleep(PROMOTE_EVERY).await;
            let metrics = self.raft.metrics().borrow_watched().clone();
            if metrics.running_state.is_err() {
                return;
            }
            if metrics.current_leader != Some(self.node_id) {
                continue;
            }
            let view = View(&metrics);
            let ready: Vec<u64> = view
                .learners()
                .filter(|(id, m)| !m.is_learner && view.caught_up(*id))
                .map(|(id, _)| id)
                .collect();
            for id in ready {
                if let Err(e) = self.promote(id).await {
                    tracing::warn!(id = %format!("{id:x}"), error = %e, "cannot promote yet");
                }
            }
        }
    }
}

/// The membership as this member's metrics show it.
struct View<'a>(&'a RaftMetrics<TypeConfig>);

impl View<'_> {
    fn voters(&self) -> BTreeSet<u64> {
        self.0.membership_config.voter_ids().collect()
    }

    fn members(&self) -> Vec<(u64, Member)> {
        let nodes = self.0.membership_config.nodes();
        nodes.map(|(id, m)| (*id, m.clone())).collect()
    }

    fn seats(&self) -> Vec<Seat> {
        let nodes = self.0.membership_config.nodes();
        nodes.map(|(id, m)| Seat::of(*id, m)).collect()
    }

    fn find(&self, id: u64) -> Result<(Member, bool), MembershipError> {
        let member = self
            .0
            .membership_config
            .nodes()
            .find(|(i, _)| **i == id)
            .map(|(_, m)| m.clone())
            .ok_or(MembershipError::NotFound(id))?;
        Ok((member, self.voters().contains(&id)))
    }

    fn learners(&self) -> impl Iterator<Item = (u64, &Member)> {
        let voters = self.voters();
        self.0
            .membership_config
            .nodes()
            .filter(move |(id, _)| !voters.contains(id))
            .map(|(id, m)| (*id, m))
    }

    /// No member but `except` may already use one of `urls`.
    fn check_unused(&self, urls: &[String], except: Option<u64>) -> Result<(), MembershipError> {
        let taken = self
            .0
            .membership_config
            .nodes()
            .filter(|(id, _)| Some(**id) != except)
            .flat_map(|(_, m)| m.peer_urls.iter())
            .find(|u| urls.contains(u));
        match taken {
            Some(url) => Err(MembershipError::PeerUrlExists(url.clone())),
            None => Ok(()),
        }
    }

    /// Whether the leader has replicated to `id` up to close to its last entry.
    fn caught_up(&self, id: u64) -> bool {
        let Some(replication) = &self.0.replication else {
            return false;
        };
        // A learner never heard from has matched nothing, not index 0.
        let Some(matched) = replication.get(&id).and_then(|m| m.as_ref()) else {
            return false;
        };
        matched.index + CATCH_UP_SLACK >= self.0.last_log_index.unwrap_or(0)
    }
}

/// Peer URLs as etcd takes them (its `types.NewURLs`): http, https, unix or unixs, a
/// `host:port` and no path; sorted, as etcd stores them.
fn check_peer_urls(mut urls: Vec<String>) -> Result<Vec<String>, MembershipError> {
    if urls.is_empty() {
        return Err(MembershipError::BadPeerUrl(
            "peerURLs must not be empty".into(),
        ));
    }
    for url in &mut urls {
        *url = url.trim().to_string();
        let bad = |why: &str| MembershipError::BadPeerUrl(format!("{why}: {url}"));
        let rest = ["http://", "https://", "unix://", "unixs://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .ok_or_else(|| bad("URL scheme must be http, https, unix, or unixs"))?;
        let host = rest.split_once('/').map_or(rest, |(host, _)| host);
        if !is_host_port(host) {
            return Err(bad("URL address does not have the form \"host:port\""));
        }
        if rest.contains('/') {
            return Err(bad("URL must not contain a path"));
        }
    }
    urls.sort();
    Ok(urls)
}

/// Go's `net.SplitHostPort` would split it: a port after the last colon, and a host that
/// has colons only inside brackets.
fn is_host_port(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    match host.strip_prefix('[') {
        Some(inner) => inner.ends_with(']') && !port.contains(']'),
        None => !host.contains(':') && !host.contains('[') && !port.contains(']'),
    }
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn peer_urls_are_etcds_and_come_back_sorted() {
        let got = check_peer_urls(urls(&["http://b:2", " https://a:1", "unix://[::1]:3"]));
        assert_eq!(
            got,
            Ok(urls(&["http://b:2", "https://a:1", "unix://[::1]:3"]))
        );
    }

    #[test]
    fn peer_urls_need_a_scheme_a_port_and_no_path() {
        for bad in [
            "bad",
            "ftp://a:1",
            "http://a",
            "http://a:1/",
            "http://a:1/x",
            "http://::1:2",
        ] {
            assert!(check_peer_urls(urls(&[bad])).is_err(), "{bad}");
        }
        assert!(check_peer_urls(Vec::new()).is_err());
    }
}
