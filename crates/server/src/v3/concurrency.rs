//! What the Lock and Election services share: etcd's `concurrency` package (the one
//! `etcdctl lock` and `elect` run client-side), run inside the member over the KV, Lease
//! and Watch services, so that a server-side holder and a client-side one on the same
//! name see one key layout and exclude each other.
//!
//! The layout: a session is a lease; a name's contenders are the keys `<name>/<lease in
//! hex>`, and the oldest of them (lowest create revision) holds the lock or leads. A
//! contender waits until every key under `<name>/` created before its own is deleted,
//! watching the youngest of them, then looking again (so a key that goes while another
//! still waits wakes nobody else).
//!
//! As in etcd, the services are clients of their own member ([`Client`]): each call goes
//! through the KV, Lease or Watch service's gRPC face with the caller's metadata, so the
//! caller's auth token is checked at each, and every error reaches the caller with code
//! `Unknown` and the message of the call that failed (etcd's client turns the statuses it
//! knows back into plain errors).

use super::V3;
use super::auth;
use super::kv::KvService;
use super::lease::{LeaseGrpc, LeaseService};
use super::watch;
use futures::{Stream, StreamExt};
use musubi_proto::etcdserverpb::{
    self as pb, Compare, RequestOp, ResponseHeader, WatchCreateRequest, WatchRequest,
    WatchResponse, compare, kv_server::Kv, lease_server::Lease, range_request, request_op,
    response_op, watch_request,
};
use musubi_proto::mvccpb::{KeyValue, event::EventType};
use musubi_store::v3::{V3Error, prefix_end};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Status};

/// The TTL of the lease a session grants itself when the caller gives none (etcd's
/// concurrency.defaultSessionTTL). Nobody keeps it alive: the services orphan it.
pub const SESSION_TTL: i64 = 60;

/// An error as these services return it: code `Unknown`, the message kept.
pub fn unknown(status: Status) -> Status {
    Status::new(Code::Unknown, status.message())
}

/// The member as a client of itself, on behalf of one caller (its metadata, and so its
/// auth token, goes with every call).
#[derive(Clone)]
pub struct Client {
    v3: V3,
    metadata: MetadataMap,
}

impl Client {
    pub fn new(v3: &V3, metadata: &MetadataMap) -> Client {
        Client {
            v3: v3.clone(),
            metadata: metadata.clone(),
        }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        Request::from_parts(self.metadata.clone(), Default::default(), message)
    }

    /// A linearizable read.
    pub async fn range(&self, req: pb::RangeRequest) -> Result<pb::RangeResponse, Status> {
        let kv = KvService(self.v3.clone());
        Ok(Kv::range(&kv, self.request(req)).await?.into_inner())
    }

    pub async fn txn(&self, req: pb::TxnRequest) -> Result<pb::TxnResponse, Status> {
        let kv = KvService(self.v3.clone());
        Ok(Kv::txn(&kv, self.request(req)).await?.into_inner())
    }

    pub async fn delete(&self, key: Vec<u8>) -> Result<pb::DeleteRangeResponse, Status> {
        let req = pb::DeleteRangeRequest {
            key,
            ..Default::default()
        };
        let kv = KvService(self.v3.clone());
        Ok(Kv::delete_range(&kv, self.request(req)).await?.into_inner())
    }

    /// The lease of a session: `lease`, or a new one of [`SESSION_TTL`] seconds if 0.
    pub async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let grant = pb::LeaseGrantRequest {
            ttl: SESSION_TTL,
            id: 0,
        };
        let leases = LeaseGrpc(Arc::new(LeaseService(self.v3.clone())));
        Ok(leases
            .lease_grant(self.request(grant))
            .await?
            .into_inner()
            .id)
    }

    /// The changes to `[key, range_end)` from `revision` on, as a watch of the Watch
    /// service reports them, without its `created` reply. A watch canceled because the
    /// history it needs was compacted (or refused) ends the stream with that error.
    pub fn watch_from(
        &self,
        key: Vec<u8>,
        range_end: Vec<u8>,
        revision: i64,
    ) -> impl Stream<Item = Result<WatchResponse, Status>> + Send + 'static {
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key,
                    range_end,
                    start_revision: revision,
                    ..Default::default()
                },
            )),
        };
        // One request, then a half-close: the watch goes on until the stream is dropped.
        let requests = futures::stream::iter([Ok(create)]);
        let token = auth::token(&self.metadata);
        watch::serve_as(self.v3.clone(), requests, false, token)
            .filter(|resp| std::future::ready(!matches!(resp, Ok(r) if r.created && !r.canceled)))
            .map(|resp| match resp {
                Ok(r) if r.canceled && r.compact_revision != 0 => {
                    Err(super::status::from_store(V3Error::Compacted))
                }
                Ok(r) if r.canceled => Err(Status::unknown(r.cancel_reason)),
                other => other,
            })
    }

    /// Waits until no key under `prefix` created at or before `max_create_revision` is
    /// left, and returns the header of the read that found none (etcd's waitDeletes).
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_revision: i64,
    ) -> Result<Option<ResponseHeader>, Status> {
        loop {
            let req = pb::RangeRequest {
                max_create_revision,
                ..by_create(prefix, range_request::SortOrder::Descend)
            };
            let resp = self.range(req).await?;
            let Some(youngest) = resp.kvs.first() else {
                return Ok(resp.header);
            };
            let revision = resp.header.as_ref().map_or(0, |h| h.revision);
            self.wait_delete(&youngest.key, revision).await?;
        }
    }

    /// Waits for `key`'s deletion at `revision` or later.
    async fn wait_delete(&self, key: &[u8], revision: i64) -> Result<(), Status> {
        let mut changes = std::pin::pin!(self.watch_from(key.to_vec(), Vec::new(), revision));
        while let Some(resp) = changes.next().await {
            let deleted = resp?
                .events
                .iter()
                .any(|e| e.r#type == EventType::Delete as i32);
            if deleted {
                return Ok(());
            }
        }
        Err(Status::unknown("lost watcher waiting for delete"))
    }
}

/// `<name>/`: the prefix under which a name's contenders put their keys.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    [name, b"/"].concat()
}

/// A contender's key: the prefix and its lease in lowercase hex, as Go's `%x` writes an
/// int64 (a minus sign before the magnitude).
pub fn contender_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    [prefix, hex.as_bytes()].concat()
}

/// A Range of the one key under `prefix` first (or last) by create revision.
fn by_create(prefix: &[u8], order: range_request::SortOrder) -> pb::RangeRequest {
    pb::RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: range_request::SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The oldest contender under `prefix` (the holder or leader), as a Range.
pub fn oldest(prefix: &[u8]) -> pb::RangeRequest {
    by_create(prefix, range_request::SortOrder::Ascend)
}

/// A compare that `key` was created at `revision` (0: that it does not exist).
pub fn created_at(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(revision)),
        range_end: Vec::new(),
    }
}

pub fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(pb::PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

pub fn range_op(req: pb::RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(req)),
    }
}

pub fn get_op(key: &[u8]) -> RequestOp {
    range_op(pb::RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

pub fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            pb::DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    }
}

/// The keys a Txn's `index`th op (a Range) read.
pub fn range_kvs(resp: &pb::TxnResponse, index: usize) -> &[KeyValue] {
    match resp.responses.get(index).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

/// A write spawned if this is dropped before [`Self::disarm`]: how a contender whose
/// caller went away takes its key back, as etcd does when the call's context ends.
pub struct Cleanup {
    write: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Cleanup {
    pub fn new(write: impl Future<Output = ()> + Send + 'static) -> Cleanup {
        Cleanup {
            write: Some(Box::pin(write)),
        }
    }

    pub fn disarm(mut self) {
        self.write = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // A member shutting down drops its calls with no runtime left to run the write.
        if let (Some(write), Ok(runtime)) =
            (self.write.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(write);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contender_keys_are_the_name_and_the_lease_in_go_hex() {
        let p = prefix(b"mylock");
        assert_eq!(p, b"mylock/");
        assert_eq!(
            contender_key(&p, 0x1b6da24829593f05),
            b"mylock/1b6da24829593f05"
        );
        assert_eq!(contender_key(&prefix(b""), 255), b"/ff");
        assert_eq!(contender_key(&p, -26), b"mylock/-1a");
        assert_eq!(contender_key(&p, i64::MIN), b"mylock/-8000000000000000");
    }

    #[test]
    fn the_oldest_contender_is_read_first_by_create_revision() {
        let r = oldest(b"n/");
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice()),
            (&b"n/"[..], &b"n0"[..])
        );
        assert_eq!(r.limit, 1);
        assert_eq!(r.sort_target, range_request::SortTarget::Create as i32);
        assert_eq!(r.sort_order, range_request::SortOrder::Ascend as i32);
    }
}
