//! etcd 3.4's v3 auth on the server: who a call comes from (its simple token), what it
//! may do (each RPC's entry calls one check here), and the Auth service itself
//! ([`service`]).
//!
//! The token travels in gRPC metadata `token`, or `authorization` (the gateway's
//! `Authorization` header, as etcd's gateway forwards it). While auth is off a token is
//! ignored. While it is on, a call without one is `user name is empty`, and one with a
//! token no member issued, or that ran out, is `invalid auth token`. A token is good for
//! `--auth-token-ttl` from its last refresh; a member that accepts one in the second half of its
//! life proposes a refresh, so a token in use lives on, on every member.

pub mod service;
pub mod status;

use super::V3;
use musubi_proto::etcdserverpb::{self as pb, request_op};
use musubi_store::v3::V3Write;
use musubi_store::v3::auth::{Access, AuthV3, AuthV3Error, AuthV3Op};
use parking_lot::Mutex;
use std::collections::HashSet;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// The token of a call, as sent (`None`: none).
pub type Token = Option<String>;

/// The call's token: metadata `token`, else `authorization` (etcd's two keys).
pub fn token(md: &MetadataMap) -> Token {
    ["token", "authorization"]
        .iter()
        .find_map(|k| md.get(*k))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Tokens this member is refreshing now, so a busy token is refreshed once at a time.
#[derive(Default)]
pub struct Refreshing(Mutex<HashSet<String>>);

/// Whose a call is: `None` when it carries no token (or auth is off).
fn caller(v3: &V3, auth: &AuthV3, token: &Token) -> Result<Option<String>, AuthV3Error> {
    let Some(token) = token.as_deref().filter(|_| auth.enabled) else {
        return Ok(None);
    };
    let now = crate::clock::now_ms();
    let entry = auth.token(token, now).ok_or(AuthV3Error::InvalidToken)?;
    if entry.expires_ms.saturating_sub(now) < entry.ttl_ms / 2 {
        refresh(v3, token);
    }
    Ok(Some(entry.user.clone()))
}

fn refresh(v3: &V3, token: &str) {
    if !v3.refreshing.0.lock().insert(token.to_owned()) {
        return;
    }
    let (v3, token) = (v3.clone(), token.to_owned());
    tokio::spawn(async move {
        let op = AuthV3Op::Refresh {
            token: token.clone(),
        };
        if let Err(e) = v3.propose(V3Write::Auth(op)).await {
            tracing::debug!(error = %e, "could not refresh an auth token; it may run out");
        }
        v3.refreshing.0.lock().remove(&token);
    });
}

/// The auth revision a check was made at: a write carries it, so that it is refused at
/// apply if auth changed in between (`V3::propose_as`).
pub type Seen = u64;

/// Runs `check` with the auth state and the caller of `token`, mapping a refusal to etcd's
/// status.
fn with_caller(
    v3: &V3,
    token: &Token,
    check: impl FnOnce(&AuthV3, Option<&str>) -> Result<(), AuthV3Error>,
) -> Result<Seen, Status> {
    checked(v3, token, check).map_err(status::from_auth)
}

/// `check` with the auth state and the caller of `token`; anything goes while auth is off.
fn checked(
    v3: &V3,
    token: &Token,
    check: impl FnOnce(&AuthV3, Option<&str>) -> Result<(), AuthV3Error>,
) -> Result<Seen, AuthV3Error> {
    let sm = v3.app.sm.read();
    let auth = sm.auth_v3();
    if auth.enabled {
        let user = caller(v3, auth, token)?;
        check(auth, user.as_deref())?;
    }
    Ok(auth.revision())
}

/// The user a call comes from (`None`: auth is off, or the call has no token).
pub fn caller_name(v3: &V3, md: &MetadataMap) -> Result<Option<String>, Status> {
    let sm = v3.app.sm.read();
    caller(v3, sm.auth_v3(), &token(md)).map_err(status::from_auth)
}

/// RPCs open to anyone that still go through the log (LeaseGrant, Compact): a token, if
/// sent, must be good, as etcd resolves the token of every proposal.
pub fn token_valid(v3: &V3, md: &MetadataMap) -> Result<Seen, Status> {
    with_caller(v3, &token(md), |_, _| Ok(()))
}

/// Member changes and the auth admin RPCs: the `root` role (etcd's IsAdminPermitted).
pub fn admin(v3: &V3, md: &MetadataMap) -> Result<Seen, Status> {
    with_caller(v3, &token(md), |auth, user| auth.check_admin(user))
}

/// Hash, HashKV, Defragment and Snapshot (not MoveLeader: etcd 3.4 checks no caller
/// there): root too, refused with the auth store's unmapped errors, as etcd's
/// Maintenance service does.
pub fn admin_maintenance(v3: &V3, md: &MetadataMap) -> Result<(), Status> {
    checked(v3, &token(md), |auth, user| auth.check_admin(user))
        .map(|_| ())
        .map_err(status::from_auth_unmapped)
}

pub fn range(v3: &V3, md: &MetadataMap, req: &pb::RangeRequest) -> Result<(), Status> {
    with_caller(v3, &token(md), |auth, user| {
        auth.check(user, Access::Read, &req.key, &req.range_end)
    })
    .map(|_| ())
}

pub fn put(v3: &V3, md: &MetadataMap, req: &pb::PutRequest) -> Result<Seen, Status> {
    with_caller(v3, &token(md), |auth, user| check_put(v3, auth, user, req))
}

pub fn delete_range(
    v3: &V3,
    md: &MetadataMap,
    req: &pb::DeleteRangeRequest,
) -> Result<Seen, Status> {
    with_caller(v3, &token(md), |auth, user| check_delete(auth, user, req))
}

/// Every compare is a read; every op of both branches is checked, nested Txns included.
pub fn txn(v3: &V3, md: &MetadataMap, req: &pb::TxnRequest) -> Result<Seen, Status> {
    with_caller(v3, &token(md), |auth, user| check_txn(auth, user, req))
}

/// A revoke deletes the lease's keys: it needs write on each of them.
pub fn lease_revoke(v3: &V3, md: &MetadataMap, id: i64) -> Result<Seen, Status> {
    with_caller(v3, &token(md), |auth, user| {
        lease_keys(v3, id, |key| auth.check(user, Access::Write, key, b""))
    })
}

/// TimeToLive with `keys` shows the lease's key names: read on each of them.
pub fn lease_time_to_live(
    v3: &V3,
    md: &MetadataMap,
    req: &pb::LeaseTimeToLiveRequest,
) -> Result<(), Status> {
    if !req.keys {
        return Ok(());
    }
    with_caller(v3, &token(md), |auth, user| {
        lease_keys(v3, req.id, |key| auth.check(user, Access::Read, key, b""))
    })
    .map(|_| ())
}

/// Why a watch stream with `token` may not watch what `create` asks, if it may not: the
/// check's error as Go prints a gRPC status, which etcd puts in the `cancel_reason` of
/// the watch it cancels at once.
pub fn watch_refusal(v3: &V3, token: &Token, create: &pb::WatchCreateRequest) -> Option<String> {
    let refused = with_caller(v3, token, |auth, user| {
        auth.check(user, Access::Read, &create.key, &create.range_end)
    })
    .err()?;
    let code = match refused.code() {
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::Unauthenticated => "Unauthenticated",
        _ => "PermissionDenied",
    };
    Some(format!(
        "rpc error: code = {code} desc = {}",
        refused.message()
    ))
}

fn lease_keys(
    v3: &V3,
    id: i64,
    mut check: impl FnMut(&[u8]) -> Result<(), AuthV3Error>,
) -> Result<(), AuthV3Error> {
    let sm = v3.app.sm.read();
    match sm.leases().get(id) {
        Some(lease) => lease.keys.iter().try_for_each(|k| check(k)),
        None => Ok(()),
    }
}

/// A put writes its key, reads it for `prev_kv`, and attaches it to a lease whose other
/// keys it must be able to write too (etcd's checkLeasePuts).
fn check_put(
    v3: &V3,
    auth: &AuthV3,
    user: Option<&str>,
    req: &pb::PutRequest,
) -> Result<(), AuthV3Error> {
    auth.check(user, Access::Write, &req.key, b"")?;
    if req.lease != 0 {
        lease_keys(v3, req.lease, |key| {
            auth.check(user, Access::Write, key, b"")
        })?;
    }
    if req.prev_kv {
        auth.check(user, Access::Read, &req.key, b"")?;
    }
    Ok(())
}

fn check_delete(
    auth: &AuthV3,
    user: Option<&str>,
    req: &pb::DeleteRangeRequest,
) -> Result<(), AuthV3Error> {
    if req.prev_kv {
        auth.check(user, Access::Read, &req.key, &req.range_end)?;
    }
    auth.check(user, Access::Write, &req.key, &req.range_end)
}

fn check_txn(auth: &AuthV3, user: Option<&str>, req: &pb::TxnRequest) -> Result<(), AuthV3Error> {
    for c in &req.compare {
        auth.check(user, Access::Read, &c.key, &c.range_end)?;
    }
    for op in req.success.iter().chain(&req.failure) {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => {
                auth.check(user, Access::Read, &r.key, &r.range_end)?
            }
            // As etcd's: a put inside a Txn is checked for write only.
            Some(request_op::Request::RequestPut(p)) => {
                auth.check(user, Access::Write, &p.key, b"")?
            }
            Some(request_op::Request::RequestDeleteRange(d)) => check_delete(auth, user, d)?,
            Some(request_op::Request::RequestTxn(t)) => check_txn(auth, user, t)?,
            None => {}
        }
    }
    Ok(())
}
