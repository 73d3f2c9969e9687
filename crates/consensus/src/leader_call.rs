//! Calls the server makes on the leader through the peer channel, for state only the
//! leader holds (etcd forwards lease KeepAlive and TimeToLive to its leader this way).
//!
//! The caller names a path under `/musubi/` and gives what to run if it leads; a follower
//! POSTs the request as JSON to the leader's peer URL, where a route made by
//! [`leader_route`] runs the same thing. Peer TLS and the cluster-ID check apply as to
//! every peer request. Only calls that are safe to repeat belong here: a call whose reply
//! is lost is asked again of whoever leads.

use crate::cluster::IfLost;
use crate::forward::reply;
use crate::{Consensus, ConsensusError};
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;

impl Consensus {
    /// Runs `here` if this member leads, else asks the leader to run it (see the module).
    pub async fn on_leader_call<Req, Resp, F, Fut>(
        &self,
        path: &'static str,
        req: &Req,
        here: F,
    ) -> Result<Resp, ConsensusError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Resp, ConsensusError>>,
    {
        let body = || crate::cluster::encode(req);
        self.on_leader(path, body, IfLost::Retry, here).await
    }
}

/// The leader's side of [`Consensus::on_leader_call`] for `path`: decodes the request, and
/// runs `handler` only while this member leads (else the caller looks for the leader).
/// Merge it into [`Consensus::peer_router_with`].
pub fn leader_route<Req, Resp, F, Fut>(
    consensus: Consensus,
    path: &'static str,
    handler: F,
) -> Router
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, ConsensusError>> + Send + 'static,
{
    Router::new().route(
        path,
        post(move |body: Bytes| async move {
            let req: Req = match serde_json::from_slice(&body) {
                Ok(req) => req,
                Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            };
            if !consensus.is_leader() {
                let leader = consensus.status().leader;
                return reply::<Resp>(Err(ConsensusError::NotLeader { leader }));
            }
            let result: Result<Resp, ConsensusError> = handler(req).await;
            let response: Response = reply(result);
            response
        }),
    )
}
