//! v3 writes: Put, DeleteRange, Compact, lease grant and revoke, applied at one revision.

use super::range::{key_value, keys_in};
use super::{V3Error, V3Response, V3Write, header};
use crate::entry::{Entry, Meta};
use crate::tree::{self, is_v2_path};
use crate::{Action, Event, StateMachine};
use musubi_proto::etcdserverpb as pb;

/// One v3 write in progress: every change it makes is at `revision`, which the keyspace
/// reaches only if something changed (a write that changes nothing costs no revision).
pub(crate) struct Write {
    pub revision: i64,
    pub changed: bool,
    /// Deletions are lease expiries (v2 watchers see `expire`).
    pub expiry: bool,
    /// What v2 watchers see of the changes, one event per v2-nameable key.
    pub v2_events: Vec<Event>,
}

impl Write {
    fn new(current: i64) -> Write {
        Write {
            revision: current + 1,
            changed: false,
            expiry: false,
            v2_events: Vec::new(),
        }
    }

    /// What a Txn rolled back must put back: whether anything had changed, and how many
    /// v2 events there were.
    pub fn snapshot(&self) -> (bool, usize) {
        (self.changed, self.v2_events.len())
    }

    pub fn restore(&mut self, (changed, events): (bool, usize)) {
        self.changed = changed;
        self.v2_events.truncate(events);
    }

    /// The revision a response shows: the new one once something changed.
    pub fn header_revision(&self) -> i64 {
        if self.changed {
            self.revision
        } else {
            self.revision - 1
        }
    }
}

impl StateMachine {
    /// Applies one v3 write; returns its response and what v2 watchers see of it.
    pub(crate) fn apply_v3(
        &mut self,
        write: &V3Write,
    ) -> (Result<V3Response, V3Error>, Vec<Event>) {
        if let Some(refused) = self.alarms.refuses(write) {
            return (Err(refused), Vec::new());
        }
        let mut w = Write::new(self.keyspace.revision());
        let result = match write {
            V3Write::Put(req) => self.put(&mut w, req).map(V3Response::Put),
            V3Write::DeleteRange(req) => {
                Ok(V3Response::DeleteRange(self.delete_range(&mut w, req)))
            }
            V3Write::Txn(req) => self.txn(&mut w, req).map(V3Response::Txn),
            V3Write::Compact(req) => self
                .keyspace
                .compact(req.revision)
                .map(|()| {
                    V3Response::Compact(pb::CompactionResponse {
                        header: header(w.header_revision()),
                    })
                })
                .map_err(V3Error::from),
            V3Write::LeaseGrant { id, ttl } => {
                self.grant(&w, *id, *ttl).map(V3Response::LeaseGrant)
            }
            V3Write::LeaseRevoke { id, expired } => {
                w.expiry = *expired;
                self.revoke(&mut w, *id).map(V3Response::LeaseRevoke)
            }
            V3Write::Alarm(req) => Ok(V3Response::Alarm(self.alarms.apply(req))),
            V3Write::Auth(op) => self.apply_auth_v3(op),
        };
        // Changes are only made once a request is known to succeed, but should one fail
        // half-way, what it changed still needs its revision for the history to hold.
        if w.changed {
            self.keyspace.advance_to(w.revision);
        }
        (result, w.v2_events)
    }

    pub(crate) fn check_put(&self, req: &pb::PutRequest) -> Result<(), V3Error> {
        check_put_request(req)?;
        if req.lease != 0 && !self.leases.contains(req.lease) {
            return Err(V3Error::LeaseNotFound);
        }
        let exists = self.keyspace.get(&req.key).is_some_and(Entry::is_key);
        if (req.ignore_value || req.ignore_lease) && !exists {
            return Err(V3Error::KeyNotFound);
        }
        Ok(())
    }

    pub(crate) fn put(
        &mut self,
        w: &mut Write,
        req: &pb::PutRequest,
    ) -> Result<pb::PutResponse, V3Error> {
        self.check_put(req)?;
        let key = req.key.as_slice();
        let old = self.keyspace.get(key).cloned();
        let old_key = old.as_ref().filter(|e| e.is_key());
        let old_meta = old.as_ref().map(Entry::meta).unwrap_or_default();
        let rev = w.revision;
        let meta = Meta {
            dir: old_meta.dir,
            create_revision: old_key.map_or(rev, |_| old_meta.create_revision),
            mod_revision: rev,
            version: old_key.map_or(1, |_| old_meta.version + 1),
            lease: match (req.ignore_lease, old_key) {
                (true, Some(_)) => old_meta.lease,
                _ => req.lease,
            },
            // A put without `ignore_lease` ends a v2 TTL, as it ends a lease.
            expire_at: old_meta.expire_at.filter(|_| req.ignore_lease),
        };
        let value = match (req.ignore_value, old_key) {
            (true, Some(e)) => e.value(),
            _ => Some(req.value.as_slice()),
        };
        let entry = Entry::new(key, value, meta);
        if old.is_none()
            && let Some(path) = v2_path(key)
        {
            tree::create_parents(&mut self.keyspace, path, rev);
        }
        self.leases.reattach(key, old_meta.lease, meta.lease);
        self.keyspace.put(entry.clone(), rev);
        w.changed = true;
        if let Some(path) = v2_path(key).filter(|_| !meta.dir) {
            let prev_node =
                old_key.map(|e| tree::view(&self.keyspace, path, e, false, self.now_ms));
            let node = tree::view(&self.keyspace, path, &entry, false, self.now_ms);
            w.v2_events
                .push(v2_event(Action::Set, node, prev_node, rev));
        }
        Ok(pb::PutResponse {
            header: header(rev),
            prev_kv: old_key.filter(|_| req.prev_kv).map(key_value),
        })
    }

    pub(crate) fn delete_range(
        &mut self,
        w: &mut Write,
        req: &pb::DeleteRangeRequest,
    ) -> pb::DeleteRangeResponse {
        // The keys as they are now: inside a Txn, after the Txn's earlier ops.
        let doomed = keys_in(&self.keyspace, &req.key, &req.range_end, i64::MAX);
        let deleted = doomed.len() as i64;
        for entry in &doomed {
            self.delete_key(w, entry);
        }
        pb::DeleteRangeResponse {
            header: header(w.header_revision()),
            deleted,
            prev_kvs: if req.prev_kv {
                doomed.iter().map(key_value).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Deletes one v3 key at the write's revision. A v2 directory that a v3 put gave a
    /// value loses the value and stays a directory.
    fn delete_key(&mut self, w: &mut Write, entry: &Entry) {
        let rev = w.revision;
        let key = entry.key();
        let meta = entry.meta();
        self.leases.reattach(key, meta.lease, 0);
        if meta.dir {
            let dir = Meta { lease: 0, ..meta };
            self.keyspace.put(Entry::new(key, None, dir), rev);
        } else {
            self.keyspace.remove(key, rev);
        }
        w.changed = true;
        if let Some(path) = v2_path(key).filter(|_| !meta.dir) {
            let prev_node = tree::view(&self.keyspace, path, entry, false, self.now_ms);
            let node = crate::NodeView {
                key: path.to_string(),
                value: None,
                dir: false,
                expiration_ms: None,
                ttl: 0,
                nodes: None,
                modified_index: rev as u64,
                created_index: meta.create_revision as u64,
            };
            let action = if w.expiry {
                Action::Expire
            } else {
                Action::Delete
            };
            w.v2_events
                .push(v2_event(action, node, Some(prev_node), rev));
        }
    }

    fn grant(&mut self, w: &Write, id: i64, ttl: i64) -> Result<pb::LeaseGrantResponse, V3Error> {
        if self.leases.contains(id) {
            return Err(V3Error::LeaseExists);
        }
        self.leases.grant(id, ttl);
        Ok(pb::LeaseGrantResponse {
            header: header(w.header_revision()),
            id,
            ttl,
            error: String::new(),
        })
    }

    /// Ends a lease and deletes its keys, in key order, at one revision.
    fn revoke(&mut self, w: &mut Write, id: i64) -> Result<pb::LeaseRevokeResponse, V3Error> {
        let lease = self.leases.remove(id).ok_or(V3Error::LeaseNotFound)?;
        for key in &lease.keys {
            if let Some(entry) = self.keyspace.get(key).cloned() {
                self.delete_key(w, &entry);
            }
        }
        Ok(pb::LeaseRevokeResponse {
            header: header(w.header_revision()),
        })
    }
}

/// What a Put must be whatever the state (etcd's checkPutRequest, which the API runs
/// before proposing; the state machine runs it again, as a proposal may come from a peer).
pub fn check_put_request(req: &pb::PutRequest) -> Result<(), V3Error> {
    if req.key.is_empty() {
        return Err(V3Error::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(V3Error::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(V3Error::LeaseProvided);
    }
    Ok(())
}

/// The v2 path a key is, if v2 can name it.
fn v2_path(key: &[u8]) -> Option<&str> {
    is_v2_path(key)
        .then(|| std::str::from_utf8(key).ok())
        .flatten()
}

fn v2_event(
    action: Action,
    node: crate::NodeView,
    prev_node: Option<crate::NodeView>,
    rev: i64,
) -> Event {
    Event {
        action,
        node,
        prev_node,
        etcd_index: rev as u64,
        refresh: false,
    }
}
