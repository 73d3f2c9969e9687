//! The v3 queue: etcdctl's layout (`NAME/<lease hex>`, created once in a Txn, kept by its
//! lease), so `etcdctl lock`/`elect` and musubi exclude each other. A clean release also
//! writes `/_musubi/released/<key>` in the Txn that deletes the key (under the same lease,
//! so the revoke that follows removes it): a waiter that sees a key deleted without that
//! mark at the same revision knows it expired, and waits the lock-delay.

use super::queue::{Entry, Moved, Queue, Renewal, Ticket};
use crate::supervise;
use crate::toolkit::{Call, ToolError};
use crate::v3::kv::prefix_end;
use musubi_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use musubi_proto::etcdserverpb::lease_client::LeaseClient;
use musubi_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use musubi_proto::etcdserverpb::request_op::Request as Op;
use musubi_proto::etcdserverpb::response_op::Response as OpResponse;
use musubi_proto::etcdserverpb::watch_client::WatchClient;
use musubi_proto::etcdserverpb::watch_request::RequestUnion;
use musubi_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
    WatchRequest,
};
use musubi_proto::mvccpb::event::EventType;
use std::time::Duration;
use tonic::codegen::tokio_stream::{self, StreamExt};
use tonic::{Code, Status};

/// Where a clean release leaves its mark (see the module's comment).
const RELEASED: &str = "/_musubi/released/";

/// The queue's prefix: etcd's mutex and election use `NAME/`.
pub fn prefix(queue: &Queue) -> String {
    format!("{}/", queue.name)
}

pub async fn join(queue: &Queue, value: &str, ttl: Duration) -> Result<Ticket, ToolError> {
    let how = Call::resend(queue.request_timeout(ttl));
    let sent = supervise::now();
    let grant = queue
        .store
        .v3_call(how, |ch| async move {
            LeaseClient::new(ch)
                .lease_grant(LeaseGrantRequest {
                    ttl: ttl.as_secs().max(1) as i64,
                    id: 0,
                })
                .await
                .map(tonic::Response::into_inner)
        })
        .await?;
    let key = format!("{}{:x}", prefix(queue), grant.id);
    // Create once: a retried request finds the key it created and reads its revision.
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Create as i32,
            key: key.clone().into_bytes(),
            range_end: vec![],
            target_union: Some(TargetUnion::CreateRevision(0)),
        }],
        success: vec![RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: key.clone().into_bytes(),
                value: value.as_bytes().to_vec(),
                lease: grant.id,
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(Op::RequestRange(RangeRequest {
                key: key.clone().into_bytes(),
                ..Default::default()
            })),
        }],
    };
    let reply = queue.store.txn(how, txn).await?;
    let token = if reply.succeeded {
        reply.header.map(|h| h.revision).unwrap_or_default()
    } else {
        match reply.responses.first().and_then(|r| r.response.as_ref()) {
            Some(OpResponse::ResponseRange(range)) => range
                .kvs
                .first()
                .map(|kv| kv.create_revision)
                .unwrap_or_default(),
            _ => 0,
        }
    };
    if token == 0 {
        return Err(ToolError::data(format!(
            "the key {key} could not be created"
        )));
    }
    Ok(Ticket {
        key,
        token,
        value: value.to_string(),
        lease: grant.id,
        ttl: Duration::from_secs(grant.ttl.max(1) as u64),
        sent,
    })
}

/// The lease a key of the queue names (`NAME/<lease hex>`); 0 if it names none.
pub fn lease_of(queue: &Queue, key: &str) -> i64 {
    key.strip_prefix(&prefix(queue))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .map(|id| id as i64)
        .unwrap_or_default()
}

/// Fill in each entry's `ttl_left` from its lease (for `--status`).
pub async fn fill_ttl_left(queue: &Queue, entries: &mut [Entry]) {
    for entry in entries {
        let id = lease_of(queue, &entry.key);
        let reply = queue
            .store
            .v3_call(queue.store.call(), |ch| async move {
                LeaseClient::new(ch)
                    .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
                    .await
                    .map(tonic::Response::into_inner)
            })
            .await;
        entry.ttl_left = reply.ok().map(|reply| reply.ttl).filter(|ttl| *ttl >= 0);
    }
}

pub async fn list(queue: &Queue) -> Result<(Vec<Entry>, i64), ToolError> {
    let prefix = prefix(queue).into_bytes();
    let request = RangeRequest {
        range_end: prefix_end(&prefix),
        key: prefix,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        serializable: queue.store.stale,
        ..Default::default()
    };
    let reply = queue.store.range(queue.store.call(), request).await?;
    let entries = reply
        .kvs
        .into_iter()
        .map(|kv| Entry {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            token: kv.create_revision,
            value: String::from_utf8_lossy(&kv.value).into_owned(),
            ttl_left: None,
        })
        .collect();
    Ok((
        entries,
        reply.header.map(|h| h.revision).unwrap_or_default(),
    ))
}

/// Watch the prefix from `after + 1` until a key is deleted. A watch the store cancels
/// (compacted past `after`) returns at once: the caller lists again.
pub async fn wait_moved(queue: &Queue, after: i64, any: bool) -> Result<Moved, ToolError> {
    let prefix = prefix(queue).into_bytes();
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            range_end: prefix_end(&prefix),
            key: prefix,
            start_revision: after + 1,
            prev_kv: true,
            ..Default::default()
        })),
    };
    let Some(channel) = queue.store.v3() else {
        return Ok(Moved::default());
    };
    // The request stream stays open: closing it would end the watch.
    let stream = tokio_stream::iter([create]).chain(tokio_stream::pending());
    let mut replies = match WatchClient::new(channel).watch(stream).await {
        Ok(replies) => replies.into_inner(),
        Err(status) => {
            queue.store.v3_failover();
            return Err(status.into());
        }
    };
    loop {
        let reply = match replies.message().await {
            Ok(Some(reply)) => reply,
            Ok(None) => return Ok(Moved::default()),
            Err(status) => {
                queue.store.v3_failover();
                return Err(status.into());
            }
        };
        if reply.canceled {
            return Ok(Moved::default());
        }
        let mut moved = (any && !reply.events.is_empty()).then(Moved::default);
        for event in &reply.events {
            if event.r#type != EventType::Delete as i32 {
                continue;
            }
            let Some(kv) = &event.kv else { continue };
            let moved = moved.get_or_insert(Moved::default());
            if !released_cleanly(queue, &kv.key, kv.mod_revision).await {
                moved.predecessor_expired = true;
            }
        }
        if let Some(moved) = moved {
            return Ok(moved);
        }
    }
}

/// Whether the key deleted at `revision` was released by its holder (its mark was written
/// in the same Txn) rather than expired. Unknown (compacted, unreachable) counts as expired:
/// the lock-delay is the safe side.
async fn released_cleanly(queue: &Queue, key: &[u8], revision: i64) -> bool {
    let mut mark = RELEASED.as_bytes().to_vec();
    mark.extend_from_slice(key);
    let request = RangeRequest {
        key: mark,
        revision,
        ..Default::default()
    };
    let reply = queue.store.range(queue.store.call(), request).await;
    matches!(reply, Ok(reply) if reply.kvs.iter().any(|kv| kv.mod_revision == revision))
}

pub async fn renew(queue: &Queue, ticket: &Ticket) -> Result<Renewal, ToolError> {
    let id = ticket.lease;
    let how = Call::resend(queue.request_timeout(ticket.ttl));
    let reply = queue
        .store
        .v3_call(how, |ch| async move {
            let stream = tokio_stream::iter([LeaseKeepAliveRequest { id }]);
            let mut replies = LeaseClient::new(ch).lease_keep_alive(stream).await?;
            replies
                .get_mut()
                .message()
                .await?
                .ok_or_else(|| Status::unavailable("keep-alive stream closed"))
        })
        .await?;
    Ok(if reply.ttl <= 0 {
        Renewal::Gone
    } else {
        Renewal::Granted(Duration::from_secs(reply.ttl as u64))
    })
}

pub async fn release(queue: &Queue, ticket: &Ticket) -> Result<(), ToolError> {
    let how = Call::resend(queue.request_timeout(ticket.ttl));
    let key = ticket.key.clone().into_bytes();
    let mut mark = RELEASED.as_bytes().to_vec();
    mark.extend_from_slice(&key);
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Create as i32,
            key: key.clone(),
            range_end: vec![],
            target_union: Some(TargetUnion::CreateRevision(ticket.token)),
        }],
        success: vec![
            RequestOp {
                request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                    key,
                    ..Default::default()
                })),
            },
            RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: mark,
                    lease: ticket.lease,
                    ..Default::default()
                })),
            },
        ],
        failure: vec![],
    };
    let mut txn = txn;
    if ticket.lease == 0 {
        // A key of no lease we know: a mark with no lease would stay forever.
        txn.success.truncate(1);
    }
    queue.store.txn(how, txn).await?;
    if ticket.lease == 0 {
        return Ok(());
    }
    let id = ticket.lease;
    let revoked = queue
        .store
        .v3_call(how, |ch| async move {
            LeaseClient::new(ch)
                .lease_revoke(LeaseRevokeRequest { id })
                .await
                .map(tonic::Response::into_inner)
        })
        .await;
    match revoked {
        // Already expired: nothing left to release.
        Err(status) if status.code() == Code::NotFound => Ok(()),
        other => other.map(drop).map_err(ToolError::from),
    }
}
