//! v2 writes with etcd v2's semantics for every action, over the shared keyspace.
//!
//! Each successful v2 write is one revision. A v2 write detaches any v3 lease from the key
//! it writes (its TTL, if any, is v2's own); a v2 `set` replaces a key, so the key starts
//! again at version 1 with a new create revision, as v2's `createdIndex` does.

use crate::entry::{Entry, Meta};
use crate::tree;
use crate::{
    Action, Bytes, Compare, ErrorCode, Event, Expiry, NodeView, StateMachine, V2Error, V2Op,
};

impl StateMachine {
    pub(crate) fn apply_v2(&mut self, op: &V2Op) -> Result<Event, V2Error> {
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
                    format!("{}/{:020}", key.trim_end_matches('/'), self.index() + 1)
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

    fn lookup(&self, key: &str) -> Result<&Entry, V2Error> {
        tree::lookup(&self.keyspace, key, self.index())
    }

    fn set(
        &mut self,
        key: &str,
        value: Option<&str>,
        expiry: Expiry,
        refresh: bool,
    ) -> Result<Event, V2Error> {
        let existing = self.lookup(key).ok().cloned();
        let value = if refresh {
            // A refresh keeps the value (and the kind) of the node it refreshes.
            let node = self.lookup(key)?;
            tree::v2_value(node)
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
        let index = self.index();
        refuse_root(key, index)?;
        tree::check_parents(&self.keyspace, key, index)?;
        let mut old_lease = 0;
        if let Ok(existing) = self.lookup(key) {
            if !replace {
                return Err(V2Error::new(ErrorCode::NodeExist, key, index));
            }
            if existing.dir() {
                return Err(V2Error::new(ErrorCode::NotFile, key, index));
            }
            old_lease = existing.lease();
        }
        let next = self.next_revision();
        tree::create_parents(&mut self.keyspace, key, next);
        let meta = Meta {
            dir: value.is_none(),
            create_revision: next,
            mod_revision: next,
            version: 1,
            lease: 0,
            expire_at: expire_at(expiry),
        };
        let entry = Entry::new(key.as_bytes(), value.map(str::as_bytes), meta);
        let node = self.view(key, &entry);
        self.leases.reattach(key.as_bytes(), old_lease, 0);
        self.keyspace.put(entry, next);
        self.keyspace.advance_to(next);
        Ok(Event {
            action,
            node,
            prev_node: prev,
            etcd_index: next as u64,
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
        let index = self.index();
        refuse_root(key, index)?;
        let existing = self.lookup(key)?.clone();
        if existing.dir() && value.is_some_and(|v| !v.is_empty()) {
            return Err(V2Error::new(ErrorCode::NotFile, key, index));
        }
        let new_value = match (existing.dir(), refresh) {
            (true, _) | (false, true) => existing.value().map(Bytes::from),
            (false, false) => Some(Bytes::from(value.unwrap_or_default())),
        };
        let prev = self.view(key, &existing);
        // etcd reports the new index for a directory update but keeps the directory's
        // stored modifiedIndex (only its TTL changes).
        let stored_revision = if existing.dir() {
            existing.mod_revision()
        } else {
            self.next_revision()
        };
        Ok(self.rewrite(
            Action::Update,
            key,
            new_value,
            expiry,
            refresh,
            prev,
            stored_revision,
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
        let index = self.index();
        refuse_root(key, index)?;
        let existing = self.lookup(key)?.clone();
        check_compare(key, &existing, compare, index)?;
        let new_value = if refresh {
            existing.value().map(Bytes::from)
        } else {
            Some(Bytes::from(value))
        };
        let prev = self.view(key, &existing);
        let next = self.next_revision();
        Ok(self.rewrite(
            Action::CompareAndSwap,
            key,
            new_value,
            expiry,
            refresh,
            prev,
            next,
        ))
    }

    /// Writes a new value and expiry into an existing node, keeping its create revision.
    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &mut self,
        action: Action,
        key: &str,
        value: Option<Bytes>,
        expiry: Expiry,
        refresh: bool,
        prev: NodeView,
        stored_revision: i64,
    ) -> Event {
        let next = self.next_revision();
        let key_bytes = Bytes::from(key);
        let old = self
            .keyspace
            .get(&key_bytes)
            .cloned()
            .expect("rewrite follows a successful lookup");
        let old_meta = old.meta();
        let meta = Meta {
            mod_revision: stored_revision,
            version: old_meta.version + 1,
            lease: 0,
            expire_at: expire_at(expiry),
            ..old_meta
        };
        let entry = Entry::new(key.as_bytes(), value.as_deref(), meta);
        self.leases.reattach(key.as_bytes(), old_meta.lease, 0);
        self.keyspace.put(entry.clone(), next);
        self.keyspace.advance_to(next);
        let mut node = self.view(key, &entry);
        node.modified_index = next as u64;
        Event {
            action,
            node,
            prev_node: Some(prev),
            etcd_index: next as u64,
            refresh,
        }
    }

    fn delete(&mut self, key: &str, dir: bool, recursive: bool) -> Result<Event, V2Error> {
        let index = self.index();
        refuse_root(key, index)?;
        let existing = self.lookup(key)?.clone();
        if existing.dir() {
            if !dir {
                return Err(V2Error::new(ErrorCode::NotFile, key, index));
            }
            if !recursive && tree::has_children(&self.keyspace, key) {
                return Err(V2Error::new(ErrorCode::DirNotEmpty, key, index));
            }
        }
        Ok(self.remove(Action::Delete, key, &existing))
    }

    fn compare_and_delete(&mut self, key: &str, compare: &Compare) -> Result<Event, V2Error> {
        let index = self.index();
        let existing = self.lookup(key)?.clone();
        check_compare(key, &existing, compare, index)?;
        Ok(self.remove(Action::CompareAndDelete, key, &existing))
    }

    /// Removes a node and its subtree (v3 keys below it included, their leases detached);
    /// the event's node carries only key, dir and indexes.
    pub(crate) fn remove(&mut self, action: Action, key: &str, existing: &Entry) -> Event {
        let next = self.next_revision();
        let prev = self.view(key, existing);
        for removed in tree::remove_subtree(&mut self.keyspace, key, next) {
            self.leases.reattach(removed.key(), removed.lease(), 0);
        }
        self.keyspace.advance_to(next);
        let node = NodeView {
            key: key.to_string(),
            value: None,
            dir: existing.dir(),
            expiration_ms: None,
            ttl: 0,
            nodes: None,
            modified_index: next as u64,
            created_index: existing.create_revision() as u64,
        };
        Event {
            action,
            node,
            prev_node: Some(prev),
            etcd_index: next as u64,
            refresh: false,
        }
    }

    /// A node as an event shows it, with the `ttl` left at the applying request's clock.
    fn view(&self, key: &str, entry: &Entry) -> NodeView {
        tree::view(&self.keyspace, key, entry, false, self.now_ms)
    }

    fn next_revision(&self) -> i64 {
        self.keyspace.revision() + 1
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
    let Some(value) = tree::v2_value(node) else {
        // For the root, etcd's cause is its internal namespace, which trims to nothing.
        let cause = if key == "/" { "" } else { key };
        return Err(V2Error::new(ErrorCode::NotFile, cause, index));
    };
    let modified = node.mod_revision() as u64;
    let want_value = compare.prev_value.as_deref().filter(|v| !v.is_empty());
    let want_index = compare.prev_index.filter(|i| *i != 0);
    let value_ok = want_value.is_none_or(|v| v == value);
    let index_ok = want_index.is_none_or(|i| i == modified);
    let cause = match (value_ok, index_ok) {
        (true, true) => return Ok(()),
        (false, true) => format!("[{} != {}]", want_value.unwrap_or_default(), value),
        (true, false) => format!("[{} != {}]", want_index.unwrap_or_default(), modified),
        (false, false) => format!(
            "[{} != {}] [{} != {}]",
            want_value.unwrap_or_default(),
            value,
            want_index.unwrap_or_default(),
            modified
        ),
    };
    Err(V2Error::new(ErrorCode::TestFailed, cause, index))
}
