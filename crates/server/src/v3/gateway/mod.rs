//! etcd 3.4's v3 JSON gateway (grpc-gateway v1) on the client port: `POST /v3/<service>/
//! <method>` with the request message as JSON, answered with the response message as
//! JSON. The services are the gRPC ones, called directly.
//!
//! Promises (each checked against etcd 3.4.23):
//! - paths as etcd registers them; `/v3beta/` is `/v3/`; any other path is 404
//!   `Not Found`, and a method other than POST on a known path is 405;
//! - a request is read as Go's jsonpb reads it, errors worded as Go words them (see
//!   [`schema`] and [`json`]); an empty body is an empty request, and only the first
//!   JSON value of a unary request's body is read;
//! - a reply is the response message in etcd's JSON (pbjson: proto names, 64-bit integers
//!   as strings, zero values left out), or `{"error","message","code"}` with the HTTP
//!   status of the gRPC code;
//! - watch and keepalive stream: their body may hold many requests one after another,
//!   each reply is one `{"result":...}` line in one HTTP chunk, and a failure mid-stream is
//!   a last `{"error":{...}}` chunk. Keepalive ends with its body; a watch goes on.
//!   Observe and snapshot (server streams) read their one request as a unary call does and
//!   stream their replies the same way.
//!
//! The `Authorization` header is the call's auth token (gRPC metadata `authorization`).

mod json;
mod messages;
mod reply;
mod schema;
mod stream;

use super::V3;
use super::auth::{self, service::AuthService};
use super::cluster::ClusterService;
use super::election::ElectionService;
use super::kv::KvService;
use super::lease::{LeaseGrpc, LeaseService};
use super::lock::LockService;
use super::maintenance::MaintenanceService;
use super::watch;
use crate::grpc_metrics::Call;
use axum::http::{Method, StatusCode};
use futures::StreamExt;
use json::{Json, Next};
use musubi_proto::etcdserverpb::{
    self as pb, auth_server::Auth, cluster_server::Cluster, kv_server::Kv, lease_server::Lease,
    maintenance_server::Maintenance,
};
use musubi_proto::v3electionpb::election_server::Election;
use musubi_proto::v3lockpb::lock_server::Lock;
use reply::HttpResponse;
use schema::Msg;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use tonic::{Code, Request, Status};

/// The part of `path` after `/v3` if the gateway serves it (`/v3beta/` is the same API;
/// `/v3alpha/` is gone in 3.4).
pub fn api_path(path: &str) -> Option<&str> {
    path.strip_prefix("/v3beta/")
        .or_else(|| path.strip_prefix("/v3/"))
        .map(|rest| &path[path.len() - rest.len() - 1..])
}

/// What a gateway path calls. Each variant is named as etcd names the gRPC method, which
/// the call is counted under in `/metrics` ([`Rpc::grpc_path`]).
#[derive(Debug)]
enum Rpc {
    Range,
    Put,
    DeleteRange,
    Txn,
    Compact,
    LeaseGrant,
    LeaseRevoke,
    LeaseTimeToLive,
    LeaseLeases,
    LeaseKeepAlive,
    Watch,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    MemberList,
    MemberPromote,
    Alarm,
    Status,
    Defragment,
    Hash,
    Snapshot,
    MoveLeader,
    /// An Auth RPC.
    Auth(AuthRpc),
    Lock,
    Unlock,
    Campaign,
    Proclaim,
    Leader,
    Observe,
    Resign,
}

/// The RPCs of the Auth service.
#[derive(Clone, Copy, Debug)]
enum AuthRpc {
    AuthEnable,
    AuthDisable,
    Authenticate,
    UserAdd,
    UserGet,
    UserList,
    UserDelete,
    UserChangePassword,
    UserGrantRole,
    UserRevokeRole,
    RoleAdd,
    RoleGet,
    RoleList,
    RoleDelete,
    RoleGrantPermission,
    RoleRevokePermission,
}

/// The RPC behind a path under `/v3` (etcd 3.4's `google.api.http` annotations).
fn rpc(path: &str) -> Option<Rpc> {
    let auth = |rpc| Some(Rpc::Auth(rpc));
    match path {
        "/kv/range" => Some(Rpc::Range),
        "/kv/put" => Some(Rpc::Put),
        "/kv/deleterange" => Some(Rpc::DeleteRange),
        "/kv/txn" => Some(Rpc::Txn),
        "/kv/compaction" => Some(Rpc::Compact),
        "/lease/grant" => Some(Rpc::LeaseGrant),
        "/lease/revoke" | "/kv/lease/revoke" => Some(Rpc::LeaseRevoke),
        "/lease/timetolive" | "/kv/lease/timetolive" => Some(Rpc::LeaseTimeToLive),
        "/lease/leases" | "/kv/lease/leases" => Some(Rpc::LeaseLeases),
        "/lease/keepalive" => Some(Rpc::LeaseKeepAlive),
        "/watch" => Some(Rpc::Watch),
        "/cluster/member/add" => Some(Rpc::MemberAdd),
        "/cluster/member/remove" => Some(Rpc::MemberRemove),
        "/cluster/member/update" => Some(Rpc::MemberUpdate),
        "/cluster/member/list" => Some(Rpc::MemberList),
        "/cluster/member/promote" => Some(Rpc::MemberPromote),
        "/maintenance/alarm" => Some(Rpc::Alarm),
        "/maintenance/status" => Some(Rpc::Status),
        "/maintenance/defragment" => Some(Rpc::Defragment),
        // HashKV is annotated with this path too, but Hash comes first.
        "/maintenance/hash" => Some(Rpc::Hash),
        "/maintenance/snapshot" => Some(Rpc::Snapshot),
        "/maintenance/transfer-leadership" => Some(Rpc::MoveLeader),
        "/auth/enable" => auth(AuthRpc::AuthEnable),
        "/auth/disable" => auth(AuthRpc::AuthDisable),
        "/auth/authenticate" => auth(AuthRpc::Authenticate),
        "/auth/user/add" => auth(AuthRpc::UserAdd),
        "/auth/user/get" => auth(AuthRpc::UserGet),
        "/auth/user/list" => auth(AuthRpc::UserList),
        "/auth/user/delete" => auth(AuthRpc::UserDelete),
        "/auth/user/changepw" => auth(AuthRpc::UserChangePassword),
        "/auth/user/grant" => auth(AuthRpc::UserGrantRole),
        "/auth/user/revoke" => auth(AuthRpc::UserRevokeRole),
        "/auth/role/add" => auth(AuthRpc::RoleAdd),
        "/auth/role/get" => auth(AuthRpc::RoleGet),
        "/auth/role/list" => auth(AuthRpc::RoleList),
        "/auth/role/delete" => auth(AuthRpc::RoleDelete),
        "/auth/role/grant" => auth(AuthRpc::RoleGrantPermission),
        "/auth/role/revoke" => auth(AuthRpc::RoleRevokePermission),
        "/lock/lock" => Some(Rpc::Lock),
        "/lock/unlock" => Some(Rpc::Unlock),
        "/election/campaign" => Some(Rpc::Campaign),
        "/election/proclaim" => Some(Rpc::Proclaim),
        "/election/leader" => Some(Rpc::Leader),
        "/election/observe" => Some(Rpc::Observe),
        "/election/resign" => Some(Rpc::Resign),
        _ => None,
    }
}

impl Rpc {
    /// The gRPC path of the method (`/etcdserverpb.KV/Range`): etcd's gateway is a gRPC
    /// client of its own member, so its calls are counted as the gRPC calls they are.
    fn grpc_path(&self) -> String {
        let service = match self {
            Rpc::Range | Rpc::Put | Rpc::DeleteRange | Rpc::Txn | Rpc::Compact => "etcdserverpb.KV",
            Rpc::LeaseGrant
            | Rpc::LeaseRevoke
            | Rpc::LeaseTimeToLive
            | Rpc::LeaseLeases
            | Rpc::LeaseKeepAlive => "etcdserverpb.Lease",
            Rpc::Watch => "etcdserverpb.Watch",
            Rpc::MemberAdd
            | Rpc::MemberRemove
            | Rpc::MemberUpdate
            | Rpc::MemberList
            | Rpc::MemberPromote => "etcdserverpb.Cluster",
            Rpc::Alarm
            | Rpc::Status
            | Rpc::Defragment
            | Rpc::Hash
            | Rpc::Snapshot
            | Rpc::MoveLeader => "etcdserverpb.Maintenance",
            Rpc::Auth(method) => return format!("/etcdserverpb.Auth/{method:?}"),
            Rpc::Lock | Rpc::Unlock => "v3lockpb.Lock",
            Rpc::Campaign | Rpc::Proclaim | Rpc::Leader | Rpc::Observe | Rpc::Resign => {
                "v3electionpb.Election"
            }
        };
        format!("/{service}/{self:?}")
    }
}

/// grpc-gateway splits a `:verb` off the last segment; no etcd path has one, so only an
/// empty verb (`/v3/kv/range:`) still matches.
fn without_verb(path: &str) -> Option<&str> {
    let last = &path[path.rfind('/').map_or(0, |i| i + 1)..];
    match last.rfind(':') {
        None => Some(path),
        Some(i) if i > 0 && i + 1 == last.len() => Some(&path[..path.len() - 1]),
        Some(_) => None,
    }
}

/// Serves one gateway request; `path` is what [`api_path`] returned.
pub async fn serve(v3: &V3, req: axum::extract::Request, path: &str) -> HttpResponse {
    let Some(rpc) = without_verb(path).and_then(rpc) else {
        return reply::plain(StatusCode::NOT_FOUND, "Not Found\n");
    };
    if req.method() != Method::POST {
        return reply::plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    let path = rpc.grpc_path();
    // etcd's gateway is a gRPC client of its own member: a learner refuses it the same.
    if v3.app.raft.is_learner() && !matches!(rpc, Rpc::Status | Rpc::Range) {
        return counted(&path, failed(&super::learner::refused()));
    }
    let limit = v3.app.limits.max_body_bytes;
    // etcd's gateway hands the `Authorization` header on as the call's token.
    let token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req.into_body();
    match rpc {
        Rpc::Watch => {
            let v3 = v3.clone();
            stream::bidi(&path, body, &schema::WATCH, limit, move |requests| {
                watch::serve_as(v3, requests, false, token)
            })
            .await
        }
        Rpc::LeaseKeepAlive => {
            let lease = Arc::new(LeaseService(v3.clone()));
            stream::bidi(&path, body, &schema::LEASE_ID, limit, move |requests| {
                lease.keep_alive(requests)
            })
            .await
        }
        rpc => match read_body(body, UNARY_BODY_FACTOR * v3.app.limits.max_value_bytes).await {
            Ok(body) => counted(&path, unary(v3, rpc, &path, &body, &token).await),
            Err(read) => {
                // What gRPC says of a message over its limit, the size being what came of
                // the body before it was given up (etcd's gateway reads it all).
                let max = v3.app.limits.max_value_bytes;
                let message = format!("grpc: received message larger than max ({read} vs. {max})");
                reply::error(Code::ResourceExhausted, &message)
            }
        },
    }
}

/// How much larger than gRPC's message limit a unary body may be: its JSON (base64 is a
/// third larger than the bytes) is read whole before the message's size is known.
const UNARY_BODY_FACTOR: usize = 4;

/// The whole body, or how much of it was read when it passed `limit` (or broke off).
async fn read_body(body: axum::body::Body, limit: usize) -> Result<Vec<u8>, usize> {
    let mut data = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|_| buf.len())?;
        buf.extend_from_slice(&chunk);
        if buf.len() > limit {
            return Err(buf.len());
        }
    }
    Ok(buf)
}

async fn unary(v3: &V3, rpc: Rpc, path: &str, body: &[u8], token: &auth::Token) -> HttpResponse {
    use schema::*;
    let kv = KvService(v3.clone());
    let lease = LeaseService(v3.clone());
    let lease_grpc = LeaseGrpc(Arc::new(LeaseService(v3.clone())));
    let cluster = ClusterService(v3.clone());
    let maintenance = MaintenanceService(v3.clone());
    let lock = LockService(v3.clone());
    let election = ElectionService(v3.clone());
    match rpc {
        // Through the gRPC faces, which check the caller.
        Rpc::Range => call(v3, body, &RANGE, |r| grpc(Kv::range(&kv, with(r, token)))).await,
        Rpc::Put => call(v3, body, &PUT, |r| grpc(Kv::put(&kv, with(r, token)))).await,
        Rpc::DeleteRange => {
            call(v3, body, &DELETE_RANGE, |r| {
                grpc(Kv::delete_range(&kv, with(r, token)))
            })
            .await
        }
        Rpc::Txn => call(v3, body, &TXN, |r| grpc(Kv::txn(&kv, with(r, token)))).await,
        Rpc::Compact => {
            call(v3, body, &COMPACTION, |r| {
                grpc(Kv::compact(&kv, with(r, token)))
            })
            .await
        }
        Rpc::LeaseGrant => {
            call(v3, body, &LEASE_GRANT, |r| {
                grpc(lease_grpc.lease_grant(with(r, token)))
            })
            .await
        }
        Rpc::LeaseRevoke => {
            call(v3, body, &LEASE_ID, |r| {
                grpc(lease_grpc.lease_revoke(with(r, token)))
            })
            .await
        }
        Rpc::LeaseTimeToLive => {
            call(v3, body, &LEASE_TIME_TO_LIVE, |r| {
                grpc(lease_grpc.lease_time_to_live(with(r, token)))
            })
            .await
        }
        Rpc::LeaseLeases => {
            call(v3, body, &EMPTY, |_: pb::LeaseLeasesRequest| async {
                Ok(lease.leases())
            })
            .await
        }
        // Cluster and Maintenance through their gRPC faces, which answer Unimplemented for
        // what is not served yet.
        Rpc::MemberAdd => {
            call(v3, body, &MEMBER_ADD, |r| {
                grpc(cluster.member_add(with(r, token)))
            })
            .await
        }
        Rpc::MemberRemove => {
            call(v3, body, &MEMBER_ID, |r| {
                grpc(cluster.member_remove(with(r, token)))
            })
            .await
        }
        Rpc::MemberUpdate => {
            call(v3, body, &MEMBER_UPDATE, |r| {
                grpc(cluster.member_update(with(r, token)))
            })
            .await
        }
        Rpc::MemberList => {
            call(v3, body, &EMPTY, |r| {
                grpc(Cluster::member_list(&cluster, Request::new(r)))
            })
            .await
        }
        Rpc::MemberPromote => {
            call(v3, body, &MEMBER_ID, |r| {
                grpc(cluster.member_promote(with(r, token)))
            })
            .await
        }
        Rpc::Alarm => {
            call(v3, body, &ALARM, |r| {
                grpc(maintenance.alarm(with(r, token)))
            })
            .await
        }
        Rpc::Status => {
            call(v3, body, &EMPTY, |r| {
                grpc(Maintenance::status(&maintenance, Request::new(r)))
            })
            .await
        }
        Rpc::Defragment => {
            call(v3, body, &EMPTY, |r| {
                grpc(maintenance.defragment(with(r, token)))
            })
            .await
        }
        Rpc::Hash => call(v3, body, &EMPTY, |r| grpc(maintenance.hash(with(r, token)))).await,
        Rpc::MoveLeader => {
            call(v3, body, &MOVE_LEADER, |r| {
                grpc(maintenance.move_leader(with(r, token)))
            })
            .await
        }
        Rpc::Snapshot => {
            // A server stream: its one request is read as a unary one's.
            let request = match read(body, &EMPTY) {
                Ok(request) => request,
                Err(message) => return reply::error(Code::InvalidArgument, &message),
            };
            match maintenance.snapshot(with(request, token)).await {
                Ok(responses) => stream::forward(Call::start(path), responses.into_inner()).await,
                Err(status) => failed(&status),
            }
        }
        Rpc::Lock => call(v3, body, &LOCK, |r| grpc(Lock::lock(&lock, with(r, token)))).await,
        Rpc::Unlock => call(v3, body, &UNLOCK, |r| grpc(lock.unlock(with(r, token)))).await,
        Rpc::Campaign => {
            call(v3, body, &CAMPAIGN, |r| {
                grpc(election.campaign(with(r, token)))
            })
            .await
        }
        Rpc::Proclaim => {
            call(v3, body, &PROCLAIM, |r| {
                grpc(election.proclaim(with(r, token)))
            })
            .await
        }
        Rpc::Leader => call(v3, body, &LEADER, |r| grpc(election.leader(with(r, token)))).await,
        Rpc::Resign => call(v3, body, &RESIGN, |r| grpc(election.resign(with(r, token)))).await,
        Rpc::Observe => {
            // A server stream: its one request is read as a unary one's.
            let request = match read(body, &LEADER) {
                Ok(request) => request,
                Err(message) => return reply::error(Code::InvalidArgument, &message),
            };
            match election.observe(with(request, token)).await {
                Ok(responses) => stream::forward(Call::start(path), responses.into_inner()).await,
                Err(status) => failed(&status),
            }
        }
        Rpc::Auth(method) => auth_rpc(v3, method, body, token).await,
        Rpc::Watch | Rpc::LeaseKeepAlive => unreachable!("streams are served apart"),
    }
}

/// An Auth RPC through its gRPC face, with the caller's token.
async fn auth_rpc(v3: &V3, method: AuthRpc, body: &[u8], token: &auth::Token) -> HttpResponse {
    use schema::*;
    let s = AuthService(v3.clone());
    let t = token;
    match method {
        AuthRpc::AuthEnable => call(v3, body, &EMPTY, |r| grpc(s.auth_enable(with(r, t)))).await,
        AuthRpc::AuthDisable => call(v3, body, &EMPTY, |r| grpc(s.auth_disable(with(r, t)))).await,
        AuthRpc::Authenticate => {
            call(v3, body, &NAME_PASSWORD, |r| {
                grpc(s.authenticate(with(r, t)))
            })
            .await
        }
        AuthRpc::UserAdd => call(v3, body, &USER_ADD, |r| grpc(s.user_add(with(r, t)))).await,
        AuthRpc::UserGet => call(v3, body, &NAME, |r| grpc(s.user_get(with(r, t)))).await,
        AuthRpc::UserList => call(v3, body, &EMPTY, |r| grpc(s.user_list(with(r, t)))).await,
        AuthRpc::UserDelete => call(v3, body, &NAME, |r| grpc(s.user_delete(with(r, t)))).await,
        AuthRpc::UserChangePassword => {
            call(v3, body, &NAME_PASSWORD, |r| {
                grpc(s.user_change_password(with(r, t)))
            })
            .await
        }
        AuthRpc::UserGrantRole => {
            call(v3, body, &USER_GRANT_ROLE, |r| {
                grpc(s.user_grant_role(with(r, t)))
            })
            .await
        }
        AuthRpc::UserRevokeRole => {
            call(v3, body, &USER_REVOKE_ROLE, |r| {
                grpc(s.user_revoke_role(with(r, t)))
            })
            .await
        }
        AuthRpc::RoleAdd => call(v3, body, &NAME, |r| grpc(s.role_add(with(r, t)))).await,
        AuthRpc::RoleGet => call(v3, body, &ROLE, |r| grpc(s.role_get(with(r, t)))).await,
        AuthRpc::RoleList => call(v3, body, &EMPTY, |r| grpc(s.role_list(with(r, t)))).await,
        AuthRpc::RoleDelete => call(v3, body, &ROLE, |r| grpc(s.role_delete(with(r, t)))).await,
        AuthRpc::RoleGrantPermission => {
            call(v3, body, &ROLE_GRANT, |r| {
                grpc(s.role_grant_permission(with(r, t)))
            })
            .await
        }
        AuthRpc::RoleRevokePermission => {
            call(v3, body, &ROLE_REVOKE, |r| {
                grpc(s.role_revoke_permission(with(r, t)))
            })
            .await
        }
    }
}

/// A gRPC request carrying the gateway's token as etcd's gateway passes it (metadata
/// `authorization`).
fn with<T>(message: T, token: &auth::Token) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(value) = token.as_deref().and_then(|t| t.parse().ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// A gRPC method's answer without its metadata.
async fn grpc<T>(
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    call.await.map(tonic::Response::into_inner)
}

/// A unary call: the request read from `body`, refused as gRPC refuses a message over
/// its size limit, then `service`'s answer.
async fn call<Req, Resp, Fut>(
    v3: &V3,
    body: &[u8],
    msg: &'static Msg,
    service: impl FnOnce(Req) -> Fut,
) -> HttpResponse
where
    Req: DeserializeOwned + prost::Message,
    Resp: Serialize,
    Fut: Future<Output = Result<Resp, Status>>,
{
    let req: Req = match read(body, msg) {
        Ok(req) => req,
        Err(message) => return reply::error(Code::InvalidArgument, &message),
    };
    let (size, max) = (req.encoded_len(), v3.app.limits.max_value_bytes);
    if size > max {
        let message = format!("grpc: received message larger than max ({size} vs. {max})");
        return reply::error(Code::ResourceExhausted, &message);
    }
    answered(service(req).await)
}

/// Counts the unary call at `path` if a service answered it: a request the gateway itself
/// refuses (bad JSON, too large) never reaches etcd's gRPC server either.
fn counted(path: &str, response: HttpResponse) -> HttpResponse {
    if let Some(Answered(code)) = response.extensions().get() {
        Call::start(path).end(*code);
    }
    response
}

/// The gRPC code a service answered a unary call with, kept on the HTTP reply for the
/// call's count (`serve`).
#[derive(Clone, Copy)]
struct Answered(Code);

/// The reply to what a service answered.
fn answered<Resp: Serialize>(answer: Result<Resp, Status>) -> HttpResponse {
    match answer {
        Ok(resp) => with_code(reply::message(&resp), Code::Ok),
        Err(status) => failed(&status),
    }
}

/// The reply to a service's refusal.
fn failed(status: &Status) -> HttpResponse {
    with_code(reply::status(status), status.code())
}

fn with_code(mut reply: HttpResponse, code: Code) -> HttpResponse {
    reply.extensions_mut().insert(Answered(code));
    reply
}

/// A unary request: the first JSON value of `body` (an empty body is an empty request).
fn read<T: DeserializeOwned>(body: &[u8], msg: &Msg) -> Result<T, String> {
    first_value(body).and_then(|v| decode(msg, &v))
}

fn first_value(body: &[u8]) -> Result<Json, String> {
    match json::next_value(body, true) {
        Next::Value(v, _) => Ok(v),
        Next::End | Next::More => Ok(Json::Null),
        Next::Bad(message) => Err(message),
    }
}

/// A request from its JSON, as jsonpb reads it (see [`schema`]).
fn decode<T: DeserializeOwned>(msg: &Msg, v: &Json) -> Result<T, String> {
    let normalized = schema::normalize(msg, v)?;
    serde_json::from_value(normalized).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_rpcs_as_in_etcd() {
        assert_eq!(api_path("/v3/kv/range"), Some("/kv/range"));
        assert_eq!(api_path("/v3beta/kv/range"), Some("/kv/range"));
        assert_eq!(api_path("/v3alpha/kv/range"), None);
        assert_eq!(api_path("/v2/keys"), None);
        assert!(matches!(rpc("/kv/lease/revoke"), Some(Rpc::LeaseRevoke)));
        assert!(matches!(rpc("/lock/lock"), Some(Rpc::Lock)));
        assert!(matches!(rpc("/election/observe"), Some(Rpc::Observe)));
        // 3.4 has no AuthStatus.
        assert!(rpc("/auth/status").is_none());
        assert_eq!(without_verb("/kv/range:"), Some("/kv/range"));
        assert_eq!(without_verb("/kv/range:get"), None);
        assert_eq!(without_verb("/kv/:range"), None);
        assert_eq!(without_verb("/kv/range"), Some("/kv/range"));
    }

    #[test]
    fn unary_bodies_are_read_as_etcd_reads_them() {
        assert_eq!(
            read::<pb::RangeRequest>(br#"{"key":"Zm9vMQ"}"#, &schema::RANGE),
            Err("illegal base64 data at input byte 4".into())
        );
        // Empty and whitespace bodies are empty requests; what follows the first value
        // is not read.
        for body in [&b""[..], b"  \n", b"null", b"{}{", b"{} x"] {
            let req = read::<pb::RangeRequest>(body, &schema::RANGE);
            assert_eq!(req, Ok(pb::RangeRequest::default()), "{body:?}");
        }
        assert_eq!(
            read::<pb::RangeRequest>(b"{\"key\":\"YQ==\"} {\"key\":\"Yg==\"}", &schema::RANGE)
                .map(|r| r.key),
            Ok(b"a".to_vec())
        );
    }
}
