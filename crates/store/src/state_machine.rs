//! Applying requests to the keyspace, with etcd v2's semantics for every action.

use crate::dedup::{Deduplicator, Proposal};
use crate::tree::{Entry, Tree};
use crate::{
    Action, AuthError, AuthOutcome, AuthState, Compare, ErrorCode, Event, Expiry, NodeView,
    Request, V2Error, V2Op,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What applying one request produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    V2(Result<Event, V2Error>),
    /// The expire events of one SYNC, in index order.
    Expired(Vec<Event>),
    Auth(Result<AuthOutcome, AuthError>),
}

#[derive(Debug, thiserror::Error)]
#[error("snapshot is unreadable: {0}")]
pub struct SnapshotError(#[from] serde_json::Error);

/// etcd's `/v2/stats/store` counters. Write counters are replicated state (every member
/// counts the same); read counters are this member's own.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StoreStats {
    pub gets_success: AtomicU64,
    pub gets_fail: AtomicU64,
    pub sets_success: u64,
    pub sets_fail: u64,
    pub delete_success: u64,
    pub delete_fail: u64,
    pub update_success: u64,
    pub update_fail: u64,
    pub create_success: u64,
    pub create_fail: u64,
    pub compare_and_swap_success: u64,
    pub compare_and_swap_fail: u64,
    pub compare_and_delete_success: u64,
    pub compare_and_delete_fail: u64,
    pub expire_count: u64,
}

#[derive(Debug, Default)]
pub struct StateMachine {
    tree: Tree,
    /// The store index: bumped by one on every successful mutation.
    index: u64,
    /// The clock of the request being applied (the proposer's), which fixes the `ttl`
    /// its events report. Not state: every request sets it before it is used.
    now_ms: u64,
    stats: StoreStats,
    auth: AuthState,
    /// The responses of recently applied request IDs (`dedup`).
    requests: Deduplicator,
}

/// Whether applying a proposal changed anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// First seen: applied, and this is its response.
    Applied(Response),
    /// Its ID was applied before: nothing changed, and this is the first response.
    Repeated(Response),
}

impl Outcome {
    pub fn response(&self) -> &Response {
        match self {
            Outcome::Applied(r) | Outcome::Repeated(r) => r,
        }
    }

    pub fn into_response(self) -> Response {
        match self {
            Outcome::Applied(r) | Outcome::Repeated(r) => r,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotData {
    index: u64,
    stats: StoreStats,
    entries: BTreeMap<String, Entry>,
    /// Absent in snapshots taken before auth existed.
    #[serde(default)]
    auth: AuthState,
    /// Absent in snapshots taken before request IDs existed.
    #[serde(default)]
    requests: Deduplicator,
}

impl StateMachine {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Number of keys and directories held.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.len() == 0
    }

    /// When the earliest TTL runs out (Unix ms), so the leader knows when to propose SYNC.
    pub fn next_expiry(&self) -> Option<u64> {
        self.tree.next_expiry()
    }

    pub fn to_snapshot(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct SnapshotRef<'a> {
            index: u64,
            stats: &'a StoreStats,
            entries: &'a BTreeMap<String, Entry>,
            auth: &'a AuthState,
            requests: &'a Deduplicator,
        }
        let data = SnapshotRef {
            index: self.index,
            stats: &self.stats,
            entries: self.tree.entries(),
            auth: &self.auth,
            requests: &self.requests,
        };
        serde_json::to_vec(&data).expect("the keyspace always serializes")
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let data: SnapshotData = serde_json::from_slice(bytes)?;
        // The root is implicit; every stored key is a canonical key below it. A snapshot
        // from the peer port is as untrusted as a proposal.
        if let Some(key) = data
            .entries
            .keys()
            .find(|k| *k == "/" || crate::clean_key(k) != **k)
        {
            return Err(SnapshotError(serde::de::Error::custom(format!(
                "the keyspace holds a key that is not canonical: {key:?}"
            ))));
        }
        Ok(StateMachine {
            tree: Tree::from_entries(data.entries),
            index: data.index,
            now_ms: 0,
            stats: data.stats,
            auth: data.auth,
            requests: data.requests,
        })
    }

    /// A v2 GET at `now_ms`: the node, and for a directory its visible children.
    pub fn get(&self, key: &str, recursive: bool, now_ms: u64) -> Result<Event, V2Error> {
        let result = self.tree.lookup(key, self.index).map(|entry| {
            let mut node = self.tree.view(key, entry, false, now_ms);
            if entry.is_dir() {
                node.nodes = self.tree.child_views(key, recursive, now_ms);
            }
            Event {
                action: Action::Get,
                node,
                prev_node: None,
                etcd_index: self.index,
                refresh: false,
            }
        });
        let counter = if result.is_ok() {
            &self.stats.gets_success
        } else {
            &self.stats.gets_fail
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Applies `proposal` once per request ID: an ID applied before (a retried write whose
    /// first attempt was committed after all) changes nothing and gets its first response.
    pub fn apply_proposal(&mut self, proposal: &Proposal) -> Outcome {
        let Some(id) = proposal.id else {
            return Outcome::Applied(self.apply(&proposal.request));
        };
        if let Some(first) = self.requests.seen(&id) {
            return Outcome::Repeated(first.clone());
        }
        let response = self.apply(&proposal.request);
        self.requests.remember(id, &response);
        Outcome::Applied(response)
    }

    pub fn apply(&mut self, request: &Request) -> Response {
        match request {
            Request::V2 { op, now_ms } => {
                self.now_ms = *now_ms;
                let op = op.with_clean_key();
                let result = self.apply_v2(&op);
                self.count(&op, result.is_ok());
                Response::V2(result)
            }
            Request::Expire { now_ms } => {
                self.now_ms = *now_ms;
                Response::Expired(self.expire(*now_ms))
            }
            Request::Auth(op) => Response::Auth(self.auth.apply(op).map(|(outcome, writes)| {
                // etcd stores auth data in its v2 store: its writes move the index too.
                self.index += writes;
                outcome
            })),
        }
    }

    /// Users, roles and whether auth is on, for the server's checks and reads.
    pub fn auth(&self) -> &AuthState {
        &self.auth
    }

    fn apply_v2(&mut self, op: &V2Op) -> Result<Event, V2Error> {
        match op {
            V2Op::Set {
                key,
                value,
                expiry,
                refresh,
            } => self.set(key, value.as_deref(), *expiry, *refresh),
            V2Op::Create {
                key,
                value,
                expiry,
                in_order,
            } => {
                let key = if *in_order {
                    format!("{}/{:020}", key.trim_end_matches('/'), self.index + 1)
                } else {
                    key.clone()
                };
                self.create(&key, value.as_deref(), *expiry, Action::Create, false, None)
            }
            V2Op::Update {
                key,
                value,
                expiry,
                refresh,
            } => self.update(key, value.as_deref(), *expiry, *refresh),
            V2Op::CompareAndSwap {
                key,
                value,
                expiry,
                refresh,
                compare,
            } => self.compare_and_swap(key, value, *expiry, *refresh, compare),
            V2Op::Delete {
                key,
                dir,
                recursive,
            } => self.delete(key, *dir || *recursive, *recursive),
            V2Op::CompareAndDelete { key, compare } => self.compare_and_delete(key, compare),
        }
    }

    fn set(
        &mut self,
        key: &str,
        value: Option<&str>,
        expiry: Expiry,
        refresh: bool,
    ) -> Result<Event, V2Error> {
        let existing = self.tree.lookup(key, self.index).ok().cloned();
        let value = if refresh {
            // A refresh keeps the value (and the kind) of the node it refreshes.
            let node = self.tree.lookup(key, self.index)?;
            node.value.clone()
        } else {
            value.map(str::to_string)
        };
        let prev = existing.map(|e| self.view(key, &e));
        let mut event = self.create(key, value.as_deref(), expiry, Action::Set, true, prev)?;
        event.refresh = refresh;
        Ok(event)
    }

    /// etcd's internalCreate: makes missing parents, refuses `/`, replaces a file only
    /// when `replace` (set), never a directory.
    fn create(
        &mut self,
        key: &str,
        value: Option<&str>,
        expiry: Expiry,
        action: Action,
        replace: bool,
        prev: Option<NodeView>,
    ) -> Result<Event, V2Error> {
        let index = self.index;
        refuse_root(key, index)?;
        self.tree.check_parents(key, index)?;
        if let Ok(existing) = self.tree.lookup(key, index) {
            if !replace {
                return Err(V2Error::new(ErrorCode::NodeExist, key, index));
            }
            if existing.is_dir() {
                return Err(V2Error::new(ErrorCode::NotFile, key, index));
            }
        }
        let next = index + 1;
        self.tree.create_parents(key, next);
        let entry = Entry {
            value: value.map(str::to_string),
            created_index: next,
            modified_index: next,
            expire_at: expire_at(expiry),
        };
        let node = self.view(key, &entry);
        self.tree.insert(key, entry);
        self.index = next;
        Ok(Event {
            action,
            node,
            prev_node: prev,
            etcd_index: next,
            refresh: false,
        })
    }

    fn update(
        &mut self,
        key: &str,
        value: Option<&str>,
        expiry: Expiry,
        refresh: bool,
    ) -> Result<Event, V2Error> {
        let index = self.index;
        refuse_root(key, index)?;
        let existing = self.tree.lookup(key, index)?.clone();
        if existing.is_dir() && value.is_some_and(|v| !v.is_empty()) {
            return Err(V2Error::new(ErrorCode::NotFile, key, index));
        }
        let new_value = match (&existing.value, refresh) {
            (None, _) => None,
            (Some(old), true) => Some(old.clone()),
            (Some(_), false) => Some(value.unwrap_or_default().to_string()),
        };
        let prev = self.view(key, &existing);
        // etcd reports the new index for a directory update but keeps the directory's
        // stored modifiedIndex (only its TTL changes).
        let stored_index = if existing.is_dir() {
            existing.modified_index
        } else {
            self.index + 1
        };
        Ok(self.rewrite(
            Action::Update,
            key,
            new_value,
            expiry,
            refresh,
            prev,
            stored_index,
        ))
    }

    fn compare_and_swap(
        &mut self,
        key: &str,
        value: &str,
        expiry: Expiry,
        refresh: bool,
        compare: &Compare,
    ) -> Result<Event, V2Error> {
        let index = self.index;
        refuse_root(key, index)?;
        let existing = self.tree.lookup(key, index)?.clone();
        check_compare(key, &existing, compare, index)?;
        let new_value = if refresh {
            existing.value.clone()
        } else {
            Some(value.to_string())
        };
        let prev = self.view(key, &existing);
        Ok(self.rewrite(
            Action::CompareAndSwap,
            key,
            new_value,
            expiry,
            refresh,
            prev,
            self.index + 1,
        ))
    }

    /// Writes a new value and expiry into an existing node, keeping its created index.
    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &mut self,
        action: Action,
        key: &str,
        value: Option<String>,
        expiry: Expiry,
        refresh: bool,
        prev: NodeView,
        stored_index: u64,
    ) -> Event {
        let next = self.index + 1;
        self.tree
            .rewrite(key, value, stored_index, expire_at(expiry));
        self.index = next;
        let entry = self
            .tree
            .lookup(key, next)
            .expect("the node was just written");
        let mut node = self.view(key, entry);
        node.modified_index = next;
        Event {
            action,
            node,
            prev_node: Some(prev),
            etcd_index: next,
            refresh,
        }
    }

    fn delete(&mut self, key: &str, dir: bool, recursive: bool) -> Result<Event, V2Error> {
        let index = self.index;
        refuse_root(key, index)?;
        let existing = self.tree.lookup(key, index)?.clone();
        if existing.is_dir() {
            if !dir {
                return Err(V2Error::new(ErrorCode::NotFile, key, index));
            }
            if !recursive && self.tree.has_children(key) {
                return Err(V2Error::new(ErrorCode::DirNotEmpty, key, index));
            }
        }
        Ok(self.remove(Action::Delete, key, &existing))
    }

    fn compare_and_delete(&mut self, key: &str, compare: &Compare) -> Result<Event, V2Error> {
        let index = self.index;
        let existing = self.tree.lookup(key, index)?.clone();
        check_compare(key, &existing, compare, index)?;
        Ok(self.remove(Action::CompareAndDelete, key, &existing))
    }

    /// Removes a node (and its subtree); the event's node carries only key, dir and indexes.
    fn remove(&mut self, action: Action, key: &str, existing: &Entry) -> Event {
        let next = self.index + 1;
        let prev = self.view(key, existing);
        self.tree.remove_subtree(key);
        self.index = next;
        let node = NodeView {
            key: key.to_string(),
            value: None,
            dir: existing.is_dir(),
            expiration_ms: None,
            ttl: 0,
            nodes: None,
            modified_index: next,
            created_index: existing.created_index,
        };
        Event {
            action,
            node,
            prev_node: Some(prev),
            etcd_index: next,
            refresh: false,
        }
    }

    /// A node as an event shows it, with the `ttl` left at the applying request's clock.
    fn view(&self, key: &str, entry: &Entry) -> NodeView {
        self.tree.view(key, entry, false, self.now_ms)
    }

    fn expire(&mut self, now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(key) = self.tree.first_expired(now_ms) {
            let existing = self
                .tree
                .lookup(&key, self.index)
                .expect("expiry queue only holds live keys")
                .clone();
            events.push(self.remove(Action::Expire, &key, &existing));
            self.stats.expire_count += 1;
        }
        events
    }

    fn count(&mut self, op: &V2Op, ok: bool) {
        let s = &mut self.stats;
        let (success, fail) = match op {
            V2Op::Set { .. } => (&mut s.sets_success, &mut s.sets_fail),
            V2Op::Create { .. } => (&mut s.create_success, &mut s.create_fail),
            V2Op::Update { .. } => (&mut s.update_success, &mut s.update_fail),
            V2Op::CompareAndSwap { .. } => (
                &mut s.compare_and_swap_success,
                &mut s.compare_and_swap_fail,
            ),
            V2Op::Delete { .. } => (&mut s.delete_success, &mut s.delete_fail),
            V2Op::CompareAndDelete { .. } => (
                &mut s.compare_and_delete_success,
                &mut s.compare_and_delete_fail,
            ),
        };
        *(if ok { success } else { fail }) += 1;
    }
}

/// `/` itself is read-only (107); everything below it is writable.
fn refuse_root(key: &str, index: u64) -> Result<(), V2Error> {
    if key == "/" {
        return Err(V2Error::new(ErrorCode::RootReadOnly, "/", index));
    }
    Ok(())
}

fn expire_at(expiry: Expiry) -> Option<u64> {
    match expiry {
        Expiry::Permanent => None,
        Expiry::At(ms) => Some(ms),
    }
}

/// etcd's compare: an absent or empty prevValue and a prevIndex of 0 always match.
/// Directories cannot be compared (102).
fn check_compare(key: &str, node: &Entry, compare: &Compare, index: u64) -> Result<(), V2Error> {
    let Some(value) = &node.value else {
        // For the root, etcd's cause is its internal namespace, which trims to nothing.
        let cause = if key == "/" { "" } else { key };
        return Err(V2Error::new(ErrorCode::NotFile, cause, index));
    };
    let want_value = compare.prev_value.as_deref().filter(|v| !v.is_empty());
    let want_index = compare.prev_index.filter(|i| *i != 0);
    let value_ok = want_value.is_none_or(|v| v == value);
    let index_ok = want_index.is_none_or(|i| i == node.modified_index);
    let cause = match (value_ok, index_ok) {
        (true, true) => return Ok(()),
        (false, true) => format!("[{} != {}]", want_value.unwrap_or_default(), value),
        (true, false) => format!(
            "[{} != {}]",
            want_index.unwrap_or_default(),
            node.modified_index
        ),
        (false, false) => format!(
            "[{} != {}] [{} != {}]",
            want_value.unwrap_or_default(),
            value,
            want_index.unwrap_or_default(),
            node.modified_index
        ),
    };
    Err(V2Error::new(ErrorCode::TestFailed, cause, index))
}
