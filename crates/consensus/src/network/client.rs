//! The sending side of the peer transport.

use super::PeerStats;
use super::post::{HttpClient, PostFailure, http_client, peer_base, post_json};
use super::reachability::{Reachability, Report};
use super::{APPEND, PRE_VOTE, SNAPSHOT, SNAPSHOT_HEAD_LEN, SnapshotHead, TRANSFER_LEADER, VOTE};
use crate::{Member, Snapshot, TypeConfig, Vote};
use bytes::Bytes;
use openraft::OptionalSend;
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use rustls::ClientConfig;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Makes a [`PeerClient`] per target; all share one HTTP connection pool.
#[derive(Clone)]
pub struct PeerNetwork {
    http: HttpClient,
    cluster: u64,
    stats: Arc<PeerStats>,
    reachability: Arc<Mutex<Reachability>>,
}

impl PeerNetwork {
    /// `tls` dials `https://` peers (see [`http_client`]); only members of `cluster` are
    /// talked to.
    pub fn new(tls: Option<Arc<ClientConfig>>, cluster: u64) -> Self {
        Self {
            http: http_client(None, tls),
            cluster,
            stats: Arc::default(),
            reachability: Arc::default(),
        }
    }

    /// What this member has sent, for `/v2/stats`.
    pub fn stats(&self) -> Arc<PeerStats> {
        self.stats.clone()
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &Member) -> PeerClient {
        PeerClient {
            target,
            name: node.name.clone(),
            base: peer_base(node).to_string(),
            http: self.http.clone(),
            cluster: self.cluster,
            stats: self.stats.clone(),
            reachability: self.reachability.clone(),
        }
    }
}

/// Sends Raft RPCs to one peer.
pub struct PeerClient {
    target: u64,
    /// The target's member name, for the log.
    name: String,
    base: String,
    http: HttpClient,
    cluster: u64,
    stats: Arc<PeerStats>,
    /// Shared by every client this member makes: whether each peer answers.
    reachability: Arc<Mutex<Reachability>>,
}

/// A failed exchange, before it is shaped into the error type a given RPC returns. Public
/// so that other transports (the simulation's) report failures the same way.
pub enum Failure {
    /// Nothing was delivered: the peer is down, partitioned away, or its Raft has stopped.
    /// openraft backs off.
    Unreachable(String),
    /// Anything later on the way (timeouts, resets, lost or bad replies): it may have been
    /// delivered.
    Network(String),
}

impl From<Failure> for RPCError<TypeConfig> {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            Failure::Network(m) => RPCError::Network(NetworkError::from_string(m)),
        }
    }
}

impl From<Failure> for StreamingError<TypeConfig> {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Unreachable(m) => StreamingError::Unreachable(Unreachable::from_string(m)),
            Failure::Network(m) => StreamingError::Network(NetworkError::from_string(m)),
        }
    }
}

impl PeerClient {
    /// POSTs `body` to `path` and decodes the JSON `Result` the peer answers with.
    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Bytes,
        ttl: Duration,
    ) -> Result<T, Failure> {
        let url = format!("{}{path}", self.base);
        let sent = post_json(&self.http, Some(self.cluster), &url, body, ttl).await;
        self.log_reachability(sent.as_ref().map(|_| ()).map_err(|f| match f {
            PostFailure::Unreachable(m) | PostFailure::NoRoute(m) | PostFailure::Failed(m) => {
                m.as_str()
            }
        }));
        let reply: Result<T, RaftError<TypeConfig>> = sent.map_err(|f| match f {
            PostFailure::Unreachable(m) => Failure::Unreachable(m),
            PostFailure::NoRoute(m) | PostFailure::Failed(m) => Failure::Network(m),
        })?;
        // The peer's Raft has stopped: as good as down, so back off.
        reply.map_err(|e| Failure::Unreachable(format!("member {:x}: {e}", self.target)))
    }

    /// One line when the peer stops answering, a reminder per interval, one when it is
    /// back (see `reachability`); openraft's own per-heartbeat warnings are filtered out.
    fn log_reachability(&self, outcome: Result<(), &str>) {
        let report = self
            .reachability
            .lock()
            .record(self.target, outcome, Instant::now());
        let (name, id) = (&self.name, self.target);
        match report {
            None => {}
            Some(Report::Lost { reason }) => {
                tracing::warn!("cannot reach member {name} ({id:x}): {reason}")
            }
            Some(Report::StillLost {
                down_for,
                failures,
                reason,
            }) => tracing::warn!(
                "member {name} ({id:x}) still unreachable after {}s, {failures} failed attempts: {reason}",
                down_for.as_secs()
            ),
            Some(Report::Regained { down_for, failures }) => tracing::info!(
                "member {name} ({id:x}) is reachable again after {:.1}s, {failures} failed attempts",
                down_for.as_secs_f64()
            ),
        }
    }

    async fn call_json<Req: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        ttl: Duration,
    ) -> Result<T, Failure> {
        let body = serde_json::to_vec(req)
            .map_err(|e| Failure::Network(format!("cannot encode a raft message: {e}")))?;
        self.call(path, body.into(), ttl).await
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let started = std::time::Instant::now();
        let reply = self.call_json(APPEND, &rpc, option.hard_ttl()).await;
        let outcome = reply.as_ref().map(|_| started.elapsed()).map_err(drop);
        self.stats.append_sent(self.target, outcome);
        Ok(reply?)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call_json(VOTE, &rpc, option.hard_ttl()).await?)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self.call_json(PRE_VOTE, &rpc, option.hard_ttl()).await?)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        Ok(self
            .call_json(TRANSFER_LEADER, &req, option.hard_ttl())
            .await?)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let head = serde_json::to_vec(&SnapshotHead {
            vote,
            meta: snapshot.meta,
        })
        .map_err(|e| StreamingError::Network(NetworkError::from_string(e.to_string())))?;
        let mut body = Vec::with_capacity(SNAPSHOT_HEAD_LEN + head.len() + snapshot.snapshot.len());
        body.extend_from_slice(&(head.len() as u32).to_be_bytes());
        body.extend_from_slice(&head);
        body.extend_from_slice(&snapshot.snapshot);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            reply = self.call(SNAPSHOT, body.into(), option.hard_ttl()) => Ok(reply?),
        }
    }
}
