//! What a v2 operation reports: an action, the node as it is now, and the node before.

use serde::{Deserialize, Serialize};

/// etcd's v2 action names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Get,
    Set,
    Create,
    Update,
    Delete,
    CompareAndSwap,
    CompareAndDelete,
    Expire,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Set => "set",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::CompareAndSwap => "compareAndSwap",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
        }
    }

    /// Deletions tell watchers of descendants that their key went away with a directory.
    pub fn removes_node(self) -> bool {
        matches!(
            self,
            Action::Delete | Action::CompareAndDelete | Action::Expire
        )
    }
}

/// A node as a response shows it. Time-dependent fields (`ttl`) are derived from
/// `expiration_ms` when the response is rendered, so one view serves every watcher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub key: String,
    /// `None` for directories and for the bare nodes of delete events.
    pub value: Option<String>,
    pub dir: bool,
    pub expiration_ms: Option<u64>,
    /// Seconds left when the view was taken, rounded up as etcd does; 0 is not shown.
    pub ttl: i64,
    /// Children of a listed directory; `None` when not listed or empty.
    pub nodes: Option<Vec<NodeView>>,
    pub modified_index: u64,
    pub created_index: u64,
}

/// The result of one v2 operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub action: Action,
    pub node: NodeView,
    pub prev_node: Option<NodeView>,
    /// The store index right after this event (etcd's `EtcdIndex`, the `X-Etcd-Index`).
    pub etcd_index: u64,
    /// A TTL refresh: recorded in history but not sent to watchers.
    pub refresh: bool,
}

/// Seconds from `now_ms` until `expire_ms`, rounded up as etcd does; negative once overdue.
pub fn remaining_seconds(expire_ms: u64, now_ms: u64) -> i64 {
    let left = expire_ms as i64 - now_ms as i64;
    if left > 0 {
        (left + 999) / 1000
    } else {
        left / 1000
    }
}

impl Event {
    /// The index that orders this event in the history: the node's modifiedIndex.
    pub fn index(&self) -> u64 {
        self.node.modified_index
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn remaining_ttl_rounds_up() {
        assert_eq!(super::remaining_seconds(10_001, 0), 11);
        assert_eq!(super::remaining_seconds(10_000, 0), 10);
        assert_eq!(super::remaining_seconds(0, 300), 0);
    }
}
