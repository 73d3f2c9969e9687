//! Follower-to-leader requests on the peer channel: a follower cannot propose or confirm
//! leadership itself, so it asks the leader over HTTP.
//!
//! | route | body | reply |
//! |---|---|---|
//! | `POST /raft/propose` | `Proposal` (a `Request` and its ID) | `Result<Applied, WireError>`, once applied on the leader |
//! | `POST /raft/propose-batch` | `[Proposal]` | `Result<[Result<Applied, WireError>], WireError>`, one per proposal, once all are applied (`propose_batch`) |
//! | `POST /raft/read-index` | (none) | `Result<u64, WireError>`: the leader's ReadIndex |
//! | `POST /raft/publish` | `(id, Member)` | `Result<(), WireError>`: records a member's URLs |
//! | `POST /raft/membership` | `MembershipChange` | `Result<MemberInfo, WireError>`, once committed |
//! | `GET /raft/ping` | (none) | `200`: used to name the members that cannot be reached |
//! | `POST /raft/join` | `Member` | `Result<ClusterView, WireError>`: any member adds the caller (0.x `-peers`) |
//! | `POST /raft/members` | (none) | `ClusterView`: who is in the cluster (`--initial-cluster-state existing`) |
//!
//! Only the leader serves the first five; a member that no longer leads answers
//! `NotLeader` and the caller looks for the new leader. Only a write is sent again after
//! a lost reply: it carries a request ID, which the state machine applies at most once.

use crate::network::cluster_stamp;
use crate::network::post::{HttpClient, PostFailure, http_client, peer_base, post_json};
use crate::propose_batch::ProposeBatcher;
use crate::{
    Applied, ClusterView, Consensus, ConsensusError, Member, MemberInfo, MembershipChange,
    MembershipError, Payload,
};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::Full;
use rustls::ClientConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const PROPOSE: &str = "/raft/propose";
pub(crate) const PROPOSE_BATCH: &str = "/raft/propose-batch";
pub(crate) const READ_INDEX: &str = "/raft/read-index";
pub(crate) const PUBLISH: &str = "/raft/publish";
pub(crate) const PING: &str = "/raft/ping";
pub(crate) const MEMBERSHIP: &str = "/raft/membership";
pub(crate) const JOIN: &str = "/raft/join";
pub(crate) const MEMBERS: &str = "/raft/members";

/// A leader-side failure as it travels back to the follower.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireError {
    NotLeader(Option<u64>),
    OutcomeUnknown,
    Refused(u64),
    Unavailable(String),
    Membership(MembershipError),
    Other(String),
}

impl From<ConsensusError> for WireError {
    fn from(e: ConsensusError) -> Self {
        match e {
            ConsensusError::NotLeader { leader } => Self::NotLeader(leader),
            ConsensusError::OutcomeUnknown => Self::OutcomeUnknown,
            ConsensusError::Refused { at } => Self::Refused(at),
            ConsensusError::Unavailable(m) => Self::Unavailable(m),
            ConsensusError::Membership(e) => Self::Membership(e),
            other => Self::Other(other.to_string()),
        }
    }
}

impl From<WireError> for ConsensusError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotLeader(leader) => Self::NotLeader { leader },
            WireError::OutcomeUnknown => Self::OutcomeUnknown,
            WireError::Refused(at) => Self::Refused { at },
            WireError::Unavailable(m) => Self::Unavailable(m),
            WireError::Membership(e) => Self::Membership(e),
            WireError::Other(m) => Self::Rejected(format!("on the leader: {m}")),
        }
    }
}

/// Why a forwarded request got no answer from the leader.
#[derive(Clone, Debug)]
pub(crate) enum SendError {
    /// Never reached the leader: nothing was proposed.
    Unreachable(String),
    /// Sent, but the reply was lost: the request may or may not have been applied.
    Lost(String),
}

impl From<PostFailure> for SendError {
    fn from(f: PostFailure) -> Self {
        match f {
            PostFailure::Unreachable(m) => SendError::Unreachable(m),
            // A route the leader lacks ran nothing, but only the batch sender has a
            // fallback; to a lone request it is as good as a lost reply.
            PostFailure::NoRoute(m) | PostFailure::Failed(m) => SendError::Lost(m),
        }
    }
}

/// The sending side; one connection pool for all peers.
#[derive(Clone)]
pub(crate) struct Forwarder {
    http: HttpClient,
    /// The cluster the requests go to; `None` before this member knows it (joining).
    cluster: Option<u64>,
    /// Writes (`PROPOSE`) go to the leader in batches.
    writes: ProposeBatcher,
}

impl Forwarder {
    /// `tls` dials `https://` peers, as the Raft RPCs do. With `cluster`, only members of
    /// that cluster are asked (see `network::cluster_stamp`).
    pub(crate) fn new(tls: Option<Arc<ClientConfig>>, cluster: Option<u64>) -> Self {
        // A blackholed peer must not hold a write for the whole request timeout.
        Self {
            http: http_client(Some(Duration::from_secs(1)), tls),
            cluster,
            writes: ProposeBatcher::default(),
        }
    }

    /// POSTs `body` to `path` on `member` and decodes its answer. A write (`PROPOSE`) goes
    /// in the next batch of writes to that member, and its own answer is decoded alike.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        member: &Member,
        path: &str,
        body: Vec<u8>,
        ttl: Duration,
    ) -> Result<Result<T, WireError>, SendError> {
        if path == PROPOSE {
            let answer = (self.writes)
                .propose(&self.http, self.cluster, member, body, ttl)
                .await?;
            return serde_json::from_str(answer.get())
                .map_err(|e| SendError::Lost(format!("{PROPOSE_BATCH}: undecodable answer: {e}")));
        }
        let url = format!("{}{path}", peer_base(member));
        post_json(&self.http, self.cluster, &url, Bytes::from(body), ttl)
            .await
            .map_err(SendError::from)
    }

    /// Whether `member` answers on its peer URL within `ttl`, as a member of our cluster.
    pub(crate) async fn ping(&self, member: &Member, ttl: Duration) -> bool {
        let url = format!("{}{PING}", peer_base(member));
        let Ok(mut request) = hyper::Request::get(&url).body(Full::default()) else {
            return false;
        };
        if let Some(cluster) = self.cluster {
            request
                .headers_mut()
                .insert(cluster_stamp::HEADER, cluster_stamp::value(cluster));
        }
        match tokio::time::timeout(ttl, self.http.request(request)).await {
            Ok(Ok(r)) => {
                r.status().is_success()
                    && self.cluster.is_none_or(|c| {
                        cluster_stamp::foreign_reply(&url, c, r.headers()).is_none()
                    })
            }
            _ => false,
        }
    }
}

/// The routes a member that does not know its cluster yet may call.
pub(crate) const OPEN_TO_NEWCOMERS: &[&str] = &[JOIN, MEMBERS];

/// The leader-side routes, merged into the peer router.
pub(crate) fn router(consensus: Consensus) -> Router {
    Router::new()
        .route(PROPOSE, post(propose))
        .route(PROPOSE_BATCH, post(propose_batch))
        .route(READ_INDEX, post(read_index))
        .route(PUBLISH, post(publish))
        .route(MEMBERSHIP, post(membership))
        .route(PING, get(|| async { "ok" }))
        .route(JOIN, post(join))
        .route(MEMBERS, post(members))
        .with_state(consensus)
}

/// The body of `POST /raft/propose`.
pub fn decode_propose(body: &[u8]) -> serde_json::Result<Payload> {
    serde_json::from_slice(body)
}

/// The body of `POST /raft/propose-batch`.
pub fn decode_propose_batch(body: &[u8]) -> serde_json::Result<Vec<Payload>> {
    serde_json::from_slice(body)
}

/// The body of `POST /raft/publish`.
pub fn decode_publish(body: &[u8]) -> serde_json::Result<(u64, Member)> {
    serde_json::from_slice(body)
}

/// The body of `POST /raft/membership`.
pub fn decode_membership(body: &[u8]) -> serde_json::Result<MembershipChange> {
    serde_json::from_slice(body)
}

/// The body of `POST /raft/join`.
pub fn decode_join(body: &[u8]) -> serde_json::Result<Member> {
    serde_json::from_slice(body)
}

async fn propose(State(c): State<Consensus>, body: Bytes) -> Response {
    match decode_propose(&body) {
        Ok(req) => reply::<Applied>(c.write_here(req.into()).await),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// Proposes a follower's batch all at once, so it commits in one log flush, and answers
/// each proposal as `propose` would have, in order.
async fn propose_batch(State(c): State<Consensus>, body: Bytes) -> Response {
    match decode_propose_batch(&body) {
        Ok(batch) => {
            let writes = batch.into_iter().map(|proposal| {
                let c = &c;
                async move { c.write_here(proposal.into()).await.map_err(WireError::from) }
            });
            reply(Ok(futures::future::join_all(writes).await))
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn read_index(State(c): State<Consensus>) -> Response {
    reply(c.read_index_here().await)
}

async fn publish(State(c): State<Consensus>, body: Bytes) -> Response {
    match decode_publish(&body) {
        Ok((id, member)) => reply(c.publish_here(id, member).await),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn membership(State(c): State<Consensus>, body: Bytes) -> Response {
    match decode_membership(&body) {
        Ok(change) => reply(c.change_here(change).await),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// A new member asks to be added, as a voter once it has caught up.
async fn join(State(c): State<Consensus>, body: Bytes) -> Response {
    let me = match decode_join(&body) {
        Ok(me) => me,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    // A retry after a lost reply finds itself added: hand back the same member. Only a
    // learner may be found again; a voter's ID with an empty log would be unsafe.
    let added = c
        .status()
        .members
        .into_iter()
        .find(|m| m.is_learner && m.name == me.name && m.peer_urls == me.peer_urls);
    if let Some(member) = added {
        return reply(Ok(cluster_view(&c, Some(member))));
    }
    let change = MembershipChange::Add {
        name: me.name,
        peer_urls: me.peer_urls,
        client_urls: me.client_urls,
        is_learner: me.is_learner,
    };
    let joined = c.change_membership(change).await;
    reply(joined.map(|member| cluster_view(&c, Some(member))))
}

async fn members(State(c): State<Consensus>) -> Response {
    reply(Ok(cluster_view(&c, None)))
}

fn cluster_view(c: &Consensus, member: Option<MemberInfo>) -> ClusterView {
    ClusterView {
        cluster_id: c.cluster_id(),
        from: c.node_id,
        from_leader: c.is_leader(),
        member,
        members: c.status().members,
    }
}

pub(crate) fn reply<T: Serialize>(result: Result<T, ConsensusError>) -> Response {
    match serde_json::to_vec(&result.map_err(WireError::from)) {
        Ok(body) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
