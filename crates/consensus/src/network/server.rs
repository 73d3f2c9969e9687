//! The receiving side of the peer transport: axum routes that hand RPCs to the local Raft.

use super::PeerStats;
use super::{APPEND, PRE_VOTE, SNAPSHOT, SNAPSHOT_HEAD_LEN, SnapshotHead, TRANSFER_LEADER, VOTE};
use crate::{Raft, Snapshot, TypeConfig, Vote};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use musubi_raftlog::durable;
use openraft::errors::RaftError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The largest body a peer may send: a snapshot as large as one can be saved and its head.
/// axum's default limit (2 MiB) refused every larger snapshot with 413, and a member that
/// needed one never caught up; an append of openraft's batch of entries (300 at most,
/// each within `--max-request-bytes`) stays under this too.
const PEER_BODY_MAX: usize = durable::MAX_PART_BYTES + (1 << 20);

/// The peer routes for `raft`. Serve them on the peer URLs (any path prefix is the caller's).
pub fn router(raft: Raft, stats: Arc<PeerStats>) -> Router {
    Router::new()
        .route(
            APPEND,
            post(move |state, body| {
                stats.append_received();
                append(state, body)
            }),
        )
        .route(VOTE, post(vote))
        .route(PRE_VOTE, post(pre_vote))
        .route(SNAPSHOT, post(snapshot))
        .route(TRANSFER_LEADER, post(transfer_leader))
        .layer(peer_body_limit())
        .with_state(raft)
}

/// [`PEER_BODY_MAX`] for a peer route's body, in place of axum's 2 MiB. The forwarded
/// requests need it too: a proposal's value may be 1.5 MiB (`--max-request-bytes`),
/// 2 MiB once base64 in JSON, and a batch of them more (`propose_batch`).
pub(crate) fn peer_body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(PEER_BODY_MAX)
}

async fn append(State(raft): State<Raft>, body: Bytes) -> Response {
    handle(&body, |req| async move { raft.append_entries(req).await }).await
}

async fn vote(State(raft): State<Raft>, body: Bytes) -> Response {
    handle(&body, |req| async move { raft.vote(req).await }).await
}

async fn pre_vote(State(raft): State<Raft>, body: Bytes) -> Response {
    handle(&body, |req| async move { raft.pre_vote(req).await }).await
}

async fn transfer_leader(State(raft): State<Raft>, body: Bytes) -> Response {
    handle(&body, |req| async move {
        raft.handle_transfer_leader(req)
            .await
            .map_err(RaftError::Fatal)
    })
    .await
}

async fn snapshot(State(raft): State<Raft>, body: Bytes) -> Response {
    let (vote, snapshot) = match decode_snapshot(&body) {
        Ok(decoded) => decoded,
        Err(msg) => return bad_request(&msg),
    };
    let result = raft.install_full_snapshot(vote, snapshot).await;
    reply(result.map_err(RaftError::Fatal))
}

/// Decodes a `/raft/snapshot` body (a 4-byte big-endian head length, the JSON head, then
/// the snapshot bytes); the error is the text of the 400 reply.
pub fn decode_snapshot(body: &[u8]) -> Result<(Vote, Snapshot), String> {
    let Some(len) = body
        .get(..SNAPSHOT_HEAD_LEN)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
    else {
        return Err("snapshot body too short".into());
    };
    let Some(head) = body.get(SNAPSHOT_HEAD_LEN..SNAPSHOT_HEAD_LEN + len) else {
        return Err("snapshot head truncated".into());
    };
    let head: SnapshotHead = match serde_json::from_slice(head) {
        Ok(h) => h,
        Err(e) => return Err(format!("snapshot head: {e}")),
    };
    let data = body[SNAPSHOT_HEAD_LEN + len..].to_vec();
    Ok((
        head.vote,
        Snapshot {
            meta: head.meta,
            snapshot: data,
        },
    ))
}

/// Decodes the JSON body of a Raft RPC as the peer routes do (`/raft/append`, `/raft/vote`,
/// `/raft/pre-vote`, `/raft/transfer-leader`).
pub fn decode_rpc<Req: DeserializeOwned>(body: &[u8]) -> serde_json::Result<Req> {
    serde_json::from_slice(body)
}

/// Decodes a JSON request, runs it, and encodes the `Result` as the reply body.
async fn handle<Req, Resp, Fut>(body: &[u8], run: impl FnOnce(Req) -> Fut) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: Future<Output = Result<Resp, RaftError<TypeConfig>>>,
{
    match decode_rpc(body) {
        Ok(req) => reply(run(req).await),
        Err(e) => bad_request(&format!("undecodable raft message: {e}")),
    }
}

fn reply<T: Serialize>(result: Result<T, RaftError<TypeConfig>>) -> Response {
    match serde_json::to_vec(&result) {
        Ok(body) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn bad_request(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, msg.to_string()).into_response()
}
