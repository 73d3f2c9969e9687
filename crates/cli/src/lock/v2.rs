//! The v2 queue: python-etcd 0.4.5's lock layout (`/_locks/NAME/<in-order key>`, created by
//! POST with a TTL; the holder is the lowest key), so python-etcd's `Lock` and musubi exclude
//! each other. Elections use `/_musubi/elect/NAME/` the same way. Keys live by `refresh=true`
//! renewals; an `expire` event (not a delete) tells a waiter its predecessor died.

use super::queue::{Entry, Kind, Moved, Queue, Renewal, Ticket};
use crate::supervise;
use crate::toolkit::ToolError;
use musubi_client::{DeleteOptions, Error, GetOptions, PrevExist, SetOptions, WatchOptions};
use std::time::Duration;

/// etcd v2's "Key not found", "Compare failed" and "The event in requested index is
/// outdated and cleared".
const KEY_NOT_FOUND: u32 = 100;
const TEST_FAILED: u32 = 101;
const EVENT_INDEX_CLEARED: u32 = 401;

/// The queue's directory.
pub fn dir(queue: &Queue) -> String {
    match queue.kind {
        // python-etcd's `client.lock_prefix` + "/" + name.
        Kind::Lock => format!("/_locks/{}", queue.name),
        Kind::Elect => format!("/_musubi/elect/{}", queue.name),
    }
}

fn etcd_code(error: &Error) -> Option<u32> {
    match error {
        Error::Etcd(e) => Some(e.code),
        _ => None,
    }
}

pub async fn join(queue: &Queue, value: &str, ttl: Duration) -> Result<Ticket, ToolError> {
    let secs = ttl.as_secs().max(1);
    let sent = supervise::now();
    let created = match queue
        .store
        .v2
        .create_in_order(&dir(queue), value, Some(secs))
        .await
    {
        Ok(reply) => Some((reply.node.key, reply.node.created_index as i64)),
        // No answer: the key may exist. Like python-etcd, find it by our unique value.
        Err(Error::Cluster(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let (key, token) = match created {
        Some(created) => created,
        None => {
            let (entries, _) = list(queue).await?;
            match entries.into_iter().find(|entry| entry.value == value) {
                Some(entry) => (entry.key, entry.token),
                None => return Err(ToolError::unreachable("the store did not answer")),
            }
        }
    };
    Ok(Ticket {
        key,
        token,
        value: value.to_string(),
        lease: 0,
        ttl: Duration::from_secs(secs),
        sent,
    })
}

pub async fn list(queue: &Queue) -> Result<(Vec<Entry>, i64), ToolError> {
    let options = GetOptions {
        recursive: true,
        sorted: true,
        quorum: !queue.store.stale,
    };
    let reply = match queue.store.v2.get(&dir(queue), &options).await {
        Ok(reply) => reply,
        Err(Error::Etcd(e)) if e.code == KEY_NOT_FOUND => return Ok((Vec::new(), e.index as i64)),
        Err(e) => return Err(e.into()),
    };
    let mut entries: Vec<Entry> = reply
        .node
        .children()
        .iter()
        // In-order keys only: python-etcd's are all there is; `_`-names are ours (a limit).
        .filter(|node| !node.dir && !last_segment(&node.key).starts_with('_'))
        .map(|node| Entry {
            key: node.key.clone(),
            token: node.created_index as i64,
            value: node.value.clone(),
            ttl_left: (node.ttl > 0).then_some(node.ttl),
        })
        .collect();
    entries.sort_by_key(|entry| entry.token);
    Ok((entries, reply.meta.etcd_index as i64))
}

fn last_segment(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Watch the directory from `after + 1` until a key is deleted or expires; an index the
/// store no longer has (401) returns at once: the caller lists again.
pub async fn wait_moved(queue: &Queue, after: i64, any: bool) -> Result<Moved, ToolError> {
    let options = WatchOptions {
        after_index: after.max(0) as u64,
        recursive: true,
    };
    let mut watcher = queue.store.v2.watcher(&dir(queue), options);
    loop {
        match watcher.next().await {
            Ok(event) => match event.action.as_str() {
                "expire" => {
                    return Ok(Moved {
                        predecessor_expired: true,
                    });
                }
                "delete" | "compareAndDelete" => return Ok(Moved::default()),
                _ if any => return Ok(Moved::default()),
                _ => {}
            },
            Err(e) if etcd_code(&e) == Some(EVENT_INDEX_CLEARED) => return Ok(Moved::default()),
            Err(e) => return Err(e.into()),
        }
    }
}

pub async fn renew(queue: &Queue, ticket: &Ticket) -> Result<Renewal, ToolError> {
    let options = SetOptions {
        ttl: Some(ticket.ttl.as_secs()),
        prev_exist: PrevExist::Exist,
        refresh: true,
        ..Default::default()
    };
    match queue.store.v2.set(&ticket.key, "", &options).await {
        Ok(_) => Ok(Renewal::Granted(ticket.ttl)),
        Err(e) if etcd_code(&e) == Some(KEY_NOT_FOUND) => Ok(Renewal::Gone),
        Err(e) => Err(e.into()),
    }
}

/// Compare-and-delete on our own value, so a key that expired and was reused is left alone.
pub async fn release(queue: &Queue, ticket: &Ticket) -> Result<(), ToolError> {
    let options = DeleteOptions {
        prev_value: Some(ticket.value.clone()),
        ..Default::default()
    };
    match queue.store.v2.delete(&ticket.key, &options).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(etcd_code(&e), Some(KEY_NOT_FOUND | TEST_FAILED)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
