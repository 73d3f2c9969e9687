//! Reaching a running cluster from outside it, before this member's Raft starts: a fresh
//! member asks any peer to add it (0.x `-peers`), or looks itself up in the member list
//! (`--initial-cluster-state existing`, after `member add`).

use crate::forward::{self, Forwarder, SendError, WireError};
use crate::{ConsensusError, Member, MemberInfo};
use rustls::ClientConfig;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long one peer has to answer; adding a member waits for a commit.
const ATTEMPT_TTL: Duration = Duration::from_secs(10);
/// How long a probe waits for each peer.
const PROBE_TTL: Duration = Duration::from_secs(1);
/// Rounds over all peers before giving up, and the pause between rounds: enough to ride
/// out an election, short enough that a wrong address is reported within a minute.
const ROUNDS: usize = 5;
const PAUSE: Duration = Duration::from_secs(2);

/// Who is in a cluster, as one of its members sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterView {
    pub cluster_id: u64,
    /// The member that answered, and whether it leads: only a leader's list is the latest.
    pub from: u64,
    pub from_leader: bool,
    /// The member a join added (or found already added).
    pub member: Option<MemberInfo>,
    pub members: Vec<MemberInfo>,
}

/// Asks the members at `peer_urls`, one after another, to add `me`; the cluster answers
/// with the ID it gave this member. `me` becomes a voter once it has caught up.
/// `tls` dials `https://` peers.
pub async fn join(
    peer_urls: &[String],
    me: &Member,
    tls: Option<Arc<ClientConfig>>,
) -> Result<ClusterView, ConsensusError> {
    let body = serde_json::to_vec(me)
        .map_err(|e| ConsensusError::Rejected(format!("cannot encode the join request: {e}")))?;
    ask_peers(
        &Forwarder::new(tls, None),
        peer_urls,
        forward::JOIN,
        body,
        ROUNDS,
    )
    .await
}

/// The member list of the cluster the members at `peer_urls` belong to.
pub async fn fetch_cluster(
    peer_urls: &[String],
    tls: Option<Arc<ClientConfig>>,
) -> Result<ClusterView, ConsensusError> {
    let forwarder = Forwarder::new(tls, None);
    ask_peers(&forwarder, peer_urls, forward::MEMBERS, Vec::new(), ROUNDS).await
}

/// The member list as one of `peer_urls` sees it, asking all at once and briefly; `None`
/// when none of `cluster`'s members answers in time. Members of a cluster that is still
/// forming bind their ports before they serve them, so a slow answer means "nothing to
/// see" and must not hold up this member's start.
pub async fn probe_cluster(
    peer_urls: &[String],
    cluster: u64,
    tls: Option<Arc<ClientConfig>>,
) -> Option<ClusterView> {
    ask_each_briefly(&Forwarder::new(tls, Some(cluster)), peer_urls)
        .await
        .into_iter()
        .next()
}

/// The member list as the leader among `peer_urls` sees it; `None` if the leader is not
/// among those that answered in time.
pub(crate) async fn ask_leader(forwarder: &Forwarder, peer_urls: &[String]) -> Option<ClusterView> {
    ask_each_briefly(forwarder, peer_urls)
        .await
        .into_iter()
        .find(|view| view.from_leader)
}

/// Every answer to one `members` request sent to each of `peer_urls` at once.
async fn ask_each_briefly(forwarder: &Forwarder, peer_urls: &[String]) -> Vec<ClusterView> {
    let probes = peer_urls.iter().map(|url| async move {
        let reply = forwarder
            .call::<ClusterView>(&peer_at(url), forward::MEMBERS, Vec::new(), PROBE_TTL)
            .await;
        reply.ok()?.ok()
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn ask_peers(
    forwarder: &Forwarder,
    peer_urls: &[String],
    path: &str,
    body: Vec<u8>,
    rounds: usize,
) -> Result<ClusterView, ConsensusError> {
    let mut failures = Vec::new();
    for round in 1..=rounds {
        failures.clear();
        for url in peer_urls {
            let peer = peer_at(url);
            match forwarder
                .call::<ClusterView>(&peer, path, body.clone(), ATTEMPT_TTL)
                .await
            {
                Ok(Ok(view)) => return Ok(view),
                // A refusal is the cluster's answer; another peer would give the same.
                Ok(Err(WireError::Membership(e))) => return Err(e.into()),
                Ok(Err(e)) => failures.push(format!("{url}: {}", ConsensusError::from(e))),
                Err(SendError::Unreachable(m) | SendError::Lost(m)) => failures.push(m),
            }
        }
        if round < rounds {
            tracing::warn!(
                "cannot reach the cluster through {}; retrying in {PAUSE:?} ({round}/{rounds})",
                failures.join("; ")
            );
            tokio::time::sleep(PAUSE).await;
        }
    }
    Err(ConsensusError::NoLeader(format!(
        "no peer could be reached after {rounds} rounds: {}",
        failures.join("; ")
    )))
}

/// A peer known only by its URL.
fn peer_at(url: &str) -> Member {
    Member {
        peer_urls: vec![url.to_string()],
        ..Member::default()
    }
}
