//! The queue a lock or an election is: keys under one prefix, each a contender's, ordered by
//! creation (revision on v3, index on v2); the first N hold. Both layouts are other tools'
//! so that they exclude each other with us: v3 etcdctl's (`NAME/<lease hex>`, the lease
//! keeps the key), v2 python-etcd's (`/_locks/NAME/<in-order key>`, a TTL keeps it).

use super::{v2, v3};
use crate::toolkit::{Store, ToolError};
use std::sync::Arc;
use std::time::Duration;

/// Which queue: a lock's or an election's (their v2 layouts differ; v3 is `NAME/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Lock,
    Elect,
}

/// A contender's key as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// The key's creation revision (v3) or createdIndex (v2): the fencing token.
    pub token: i64,
    pub value: String,
    /// Seconds left before the key expires, where the store says.
    pub ttl_left: Option<i64>,
}

/// Our place in the queue.
#[derive(Clone, Debug)]
pub struct Ticket {
    pub key: String,
    pub token: i64,
    pub value: String,
    /// The v3 lease that keeps the key (0 on v2).
    pub lease: i64,
    pub ttl: Duration,
    /// When the request that created the lease (v3) or the key (v2) was sent (monotonic ns):
    /// the store cannot expire it before this plus `ttl`.
    pub sent: u64,
}

/// What made the queue move while we waited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    /// A key created before ours expired (rather than being released): lock-delay applies.
    pub predecessor_expired: bool,
}

/// A renewal's outcome.
pub enum Renewal {
    /// The store extended the key's life: it cannot expire before the send time plus this.
    Granted(Duration),
    /// The key or its lease is gone.
    Gone,
}

/// A lock's or an election's queue in the store, on the v3 path where the store has it.
#[derive(Clone)]
pub struct Queue {
    pub store: Arc<Store>,
    pub kind: Kind,
    pub name: String,
}

impl Queue {
    pub fn new(store: Arc<Store>, kind: Kind, name: &str) -> Queue {
        Queue {
            store,
            kind,
            name: name.to_string(),
        }
    }

    pub fn is_v3(&self) -> bool {
        self.store.v3().is_some()
    }

    /// Take a place at the end of the queue with `value`, kept alive for `ttl`.
    pub async fn join(&self, value: &str, ttl: Duration) -> Result<Ticket, ToolError> {
        if self.is_v3() {
            v3::join(self, value, ttl).await
        } else {
            v2::join(self, value, ttl).await
        }
    }

    /// The contenders in queue order, and the revision/index the list was read at.
    pub async fn list(&self) -> Result<(Vec<Entry>, i64), ToolError> {
        if self.is_v3() {
            v3::list(self).await
        } else {
            v2::list(self).await
        }
    }

    /// The contenders as [`Queue::list`] gives them, with the time each has left.
    pub async fn list_with_ttl(&self) -> Result<Vec<Entry>, ToolError> {
        let (mut entries, _) = self.list().await?;
        if self.is_v3() {
            v3::fill_ttl_left(self, &mut entries).await;
        }
        Ok(entries)
    }

    /// Wait until a key is deleted or expires after revision/index `after` (with `any`,
    /// until any key changes: a new first key is a new leader too).
    pub async fn wait_moved(&self, after: i64, any: bool) -> Result<Moved, ToolError> {
        if self.is_v3() {
            v3::wait_moved(self, after, any).await
        } else {
            v2::wait_moved(self, after, any).await
        }
    }

    /// Extend the ticket's life once.
    pub async fn renew(&self, ticket: &Ticket) -> Result<Renewal, ToolError> {
        if self.is_v3() {
            v3::renew(self, ticket).await
        } else {
            v2::renew(self, ticket).await
        }
    }

    /// Leave the queue (only our own key: compare on its creation or value).
    pub async fn release(&self, ticket: &Ticket) -> Result<(), ToolError> {
        if self.is_v3() {
            v3::release(self, ticket).await
        } else {
            v2::release(self, ticket).await
        }
    }

    /// Delete the key whose token is `token`, whoever holds it (`--release TOKEN`): false
    /// when there is none.
    pub async fn release_token(&self, token: i64) -> Result<bool, ToolError> {
        let (entries, _) = self.list().await?;
        let Some(entry) = entries.into_iter().find(|entry| entry.token == token) else {
            return Ok(false);
        };
        let lease = if self.is_v3() {
            v3::lease_of(self, &entry.key)
        } else {
            0
        };
        let ticket = Ticket {
            key: entry.key,
            token,
            value: entry.value,
            lease,
            ttl: self.store.timeout * 3,
            sent: 0,
        };
        self.release(&ticket).await?;
        Ok(true)
    }

    /// The time each request may take: a third of the TTL, so that a member that does not
    /// answer leaves time to fail over before the key expires (and never above --timeout).
    pub fn request_timeout(&self, ttl: Duration) -> Duration {
        (ttl / 3)
            .min(self.store.timeout)
            .max(Duration::from_millis(500))
    }
}

/// Where `token` stands: `Some(rank)` (0 is the first) or `None` when its key is gone.
pub fn rank(entries: &[Entry], token: i64) -> Option<usize> {
    entries.iter().position(|entry| entry.token == token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token: i64) -> Entry {
        Entry {
            key: format!("k{token}"),
            token,
            value: String::new(),
            ttl_left: None,
        }
    }

    #[test]
    fn rank_is_the_place_in_creation_order() {
        let entries = [entry(4), entry(9), entry(12)];
        assert_eq!(rank(&entries, 4), Some(0));
        assert_eq!(rank(&entries, 12), Some(2));
        assert_eq!(rank(&entries, 7), None);
    }
}
