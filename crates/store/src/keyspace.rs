//! The one keyspace both APIs share: every key's current entry, ordered by its bytes, and
//! the history of changes that v3 reads at old revisions and watches from.
//!
//! One revision counter orders every write: it is v3's `revision` and v2's index. A key's
//! entry may be a v3 key, a v2 file (the same thing: a key with a value), a v2 directory
//! (no value: invisible to v3), or a v2 directory that a v3 put also gave a value. Only
//! changes v3 can see go into the history: a v2 directory appearing is not an event to a
//! v3 watcher, as etcd's v2v3 mode has it.
//!
//! Every structure is a persistent map (`imbl`), so a snapshot is an O(1) clone taken
//! under the read lock and serialised after it is released: writes never wait for one.

use crate::Bytes;
use imbl::{OrdMap, OrdSet, Vector};
use serde::{Deserialize, Serialize};
use std::ops::Bound;
use std::sync::Arc;

/// A revision: v3's `revision`, v2's index. The empty keyspace is at 1.
pub type Revision = i64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `None` for a v2 directory that no v3 put gave a value.
    pub value: Option<Bytes>,
    /// A v2 directory: v2 lists its children and refuses value writes to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dir: bool,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    /// Writes since the key was created (v3 puts and v2 writes alike).
    pub version: i64,
    /// The v3 lease the key is attached to, 0 for none.
    #[serde(default)]
    pub lease: i64,
    /// A v2 TTL: when the key expires, Unix ms.
    #[serde(default)]
    pub expire_at: Option<u64>,
}

impl Entry {
    /// A key just created at `rev` holding `value` (for tests).
    #[cfg(test)]
    pub(crate) fn new_key(value: &str, rev: Revision) -> Entry {
        Entry {
            value: Some(value.into()),
            dir: false,
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            lease: 0,
            expire_at: None,
        }
    }

    /// Whether v3 sees this entry as a key (it has a value).
    pub fn is_key(&self) -> bool {
        self.value.is_some()
    }
}

/// One change a v3 watcher sees: `key` at `revision`, from `prev` to `kv` (`None`: no
/// key). Several changes may share a revision (a Txn, a lease revoke, a v2 recursive
/// delete); they are kept in the order they were made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub revision: Revision,
    pub key: Bytes,
    pub kv: Option<Arc<Entry>>,
    pub prev: Option<Arc<Entry>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyspace {
    /// Entries behind an `Arc`: the history shares them, and a map slot is small, which
    /// keeps the B-tree's inserts (shifting a node's slots) and its memory down.
    entries: OrdMap<Bytes, Arc<Entry>>,
    /// (expiry in Unix ms, key) for every entry with a v2 TTL.
    #[serde(skip)]
    expiring: OrdSet<(u64, Bytes)>,
    /// Changes at revisions `compacted..=revision`, oldest first.
    history: Vector<Change>,
    revision: Revision,
    /// Reads and watches below this revision are refused; -1 before any compaction.
    compacted: Revision,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            entries: OrdMap::new(),
            expiring: OrdSet::new(),
            history: Vector::new(),
            revision: 1,
            // etcd starts its compaction revision at -1, so `Compact(0)` on a fresh store
            // succeeds (and a second one is refused).
            compacted: -1,
        }
    }
}

/// Why a read or compaction at a revision is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevisionError {
    Compacted,
    Future,
}

impl Keyspace {
    /// Whether a keyspace read from a snapshot (as untrusted as a proposal) is whole: its
    /// history in revision order, none of it past the revision or below the compaction.
    pub fn is_consistent(&self) -> bool {
        let mut last = self.compacted;
        self.compacted <= self.revision
            && self.history.iter().all(|c| {
                let in_order = c.revision >= last && c.revision <= self.revision;
                last = c.revision;
                in_order
            })
    }

    /// Rebuilds what a snapshot leaves out (the expiry queue).
    pub fn restored(mut self) -> Keyspace {
        self.expiring = self
            .iter()
            .filter_map(|(k, e)| e.expire_at.map(|at| (at, k.clone())))
            .collect();
        self
    }

    pub fn revision(&self) -> Revision {
        self.revision
    }

    pub fn compacted(&self) -> Revision {
        self.compacted
    }

    /// Sets the revision after a write (all its changes were made at `revision`).
    pub fn advance_to(&mut self, revision: Revision) {
        debug_assert!(revision >= self.revision);
        self.revision = revision;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys and values held, current and in the history (`Status`'s
    /// `dbSizeInUse`). Walks everything: for occasional calls only.
    pub fn approximate_bytes(&self) -> usize {
        let entry = |e: &Entry| e.value.as_ref().map_or(0, |v| v.len());
        let current: usize = self.iter().map(|(k, e)| k.len() + entry(e)).sum();
        let history: usize = self
            .history
            .iter()
            .map(|c| c.key.len() + c.kv.as_deref().map_or(0, entry))
            .sum();
        current + history
    }

    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key).map(|e| &**e)
    }

    /// The entry under `key`, shared (for the history and responses built from it).
    pub fn get_shared(&self, key: &[u8]) -> Option<&Arc<Entry>> {
        self.entries.get(key)
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.entries.iter().map(|(k, e)| (k, &**e))
    }

    /// Entries with keys in `[from, to)` (`to == None`: to the end), in key order.
    pub fn range<'a>(
        &'a self,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = (&'a Bytes, &'a Entry)> + use<'a> {
        let end = match to {
            Some(to) => Bound::Excluded(Bytes::from(to)),
            None => Bound::Unbounded,
        };
        self.entries
            .range((Bound::Included(Bytes::from(from)), end))
            .map(|(k, e)| (k, &**e))
    }

    /// The first entry at or after `from`, as a cursor walking the keys sees it.
    pub fn first_from(&self, from: Bound<Bytes>) -> Option<(&Bytes, &Entry)> {
        self.entries
            .range((from, Bound::Unbounded))
            .next()
            .map(|(k, e)| (k, &**e))
    }

    /// Writes `entry` under `key` at `revision` (the caller advances the keyspace to it),
    /// recording the change if v3 sees one.
    pub fn put(&mut self, key: &Bytes, entry: Entry, revision: Revision) {
        let new_expiry = entry.expire_at;
        let entry = Arc::new(entry);
        let visible = entry.is_key().then(|| entry.clone());
        let old = self.entries.insert(key.clone(), entry);
        // Forget the old expiry before recording the new one: they may be equal.
        if let Some(old) = &old {
            self.forget_expiry(key, old);
        }
        if let Some(at) = new_expiry {
            self.expiring.insert((at, key.clone()));
        }
        self.record(key, old, visible, revision);
    }

    /// Removes `key` at `revision`, recording the deletion if v3 saw the key.
    pub fn remove(&mut self, key: &[u8], revision: Revision) -> Option<Arc<Entry>> {
        let (key, old) = self.entries.remove_with_key(key)?;
        self.forget_expiry(&key, &old);
        self.record(&key, Some(old.clone()), None, revision);
        Some(old)
    }

    fn record(
        &mut self,
        key: &Bytes,
        old: Option<Arc<Entry>>,
        kv: Option<Arc<Entry>>,
        revision: Revision,
    ) {
        let prev = old.filter(|e| e.is_key());
        if prev.is_none() && kv.is_none() {
            return;
        }
        self.history.push_back(Change {
            revision,
            key: key.clone(),
            kv,
            prev,
        });
    }

    fn forget_expiry(&mut self, key: &Bytes, old: &Entry) {
        if let Some(at) = old.expire_at {
            self.expiring.remove(&(at, key.clone()));
        }
    }

    /// The key whose v2 TTL ran out first, if one has by `now_ms`.
    pub fn first_expired(&self, now_ms: u64) -> Option<Bytes> {
        self.expiring
            .get_min()
            .filter(|(at, _)| *at <= now_ms)
            .map(|(_, key)| key.clone())
    }

    pub fn next_expiry(&self) -> Option<u64> {
        self.expiring.get_min().map(|(at, _)| *at)
    }

    /// Checks that the keyspace at `revision` can be read (0: the current one).
    pub fn check_readable(&self, revision: Revision) -> Result<Revision, RevisionError> {
        if revision <= 0 {
            return Ok(self.revision);
        }
        if revision > self.revision {
            return Err(RevisionError::Future);
        }
        if revision < self.compacted {
            return Err(RevisionError::Compacted);
        }
        Ok(revision)
    }

    /// The v3 keys in `[from, to)` as they were at `revision` (checked readable): the
    /// current ones, with every later change undone, newest first.
    pub fn keys_at(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        revision: Revision,
    ) -> Vec<(Bytes, Arc<Entry>)> {
        let in_range = |k: &[u8]| k >= from && to.is_none_or(|to| k < to);
        let end = match to {
            Some(to) => Bound::Excluded(Bytes::from(to)),
            None => Bound::Unbounded,
        };
        let current = self
            .entries
            .range((Bound::Included(Bytes::from(from)), end))
            .filter(|(_, e)| e.is_key())
            .map(|(k, e)| (k.clone(), e.clone()));
        if self.is_current(revision) {
            return current.collect();
        }
        let mut at: std::collections::BTreeMap<Bytes, Arc<Entry>> = current.collect();
        let later = self.first_change_after(revision);
        for change in self.history.iter().skip(later).rev() {
            if !in_range(&change.key) {
                continue;
            }
            match &change.prev {
                Some(prev) => at.insert(change.key.clone(), prev.clone()),
                None => at.remove(change.key.as_slice()),
            };
        }
        at.into_iter().collect()
    }

    /// Whether the keyspace as it is now is the keyspace at `revision`: no change was made
    /// after it (inside a Txn, the Txn's own changes are already made at the next one).
    pub fn is_current(&self, revision: Revision) -> bool {
        self.history.last().is_none_or(|c| c.revision <= revision)
    }

    /// The changes at `from` and later, oldest first (`from` at or above `compacted`).
    pub fn changes_from(&self, from: Revision) -> impl Iterator<Item = &Change> {
        self.history.iter().skip(self.first_change_after(from - 1))
    }

    /// The position of the first change with a revision above `revision`.
    fn first_change_after(&self, revision: Revision) -> usize {
        let (mut lo, mut hi) = (0, self.history.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.history[mid].revision <= revision {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Forgets the changes below `revision`, and the deletions at it: reads at older
    /// revisions are refused from now.
    pub fn compact(&mut self, revision: Revision) -> Result<(), RevisionError> {
        if revision > self.revision {
            return Err(RevisionError::Future);
        }
        if revision <= self.compacted {
            return Err(RevisionError::Compacted);
        }
        let keep_from = self.first_change_after(revision - 1);
        let at_revision = self.first_change_after(revision).max(keep_from);
        // Of the changes at the compaction revision itself, etcd keeps the keys' values
        // but not their deletions: a watch from there replays only the puts.
        let mut kept: Vector<Change> = self
            .history
            .skip(keep_from)
            .take(at_revision - keep_from)
            .into_iter()
            .filter(|c| c.kv.is_some())
            .collect();
        kept.append(self.history.skip(at_revision));
        self.history = kept;
        self.compacted = revision;
        Ok(())
    }

    /// Changes held, for metrics and the retention policy.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: &str, rev: Revision) -> Entry {
        Entry::new_key(v, rev)
    }

    fn put(ks: &mut Keyspace, k: &str, v: &str) {
        let rev = ks.revision() + 1;
        ks.put(&k.into(), value(v, rev), rev);
        ks.advance_to(rev);
    }

    #[test]
    fn old_revisions_read_what_was_there_then() {
        let mut ks = Keyspace::default();
        put(&mut ks, "a", "1"); // 2
        put(&mut ks, "b", "1"); // 3
        put(&mut ks, "a", "2"); // 4
        ks.remove(b"b", 5);
        ks.advance_to(5);
        let at = |rev| -> Vec<(String, String)> {
            ks.keys_at(b"a", Some(b"z"), rev)
                .into_iter()
                .map(|(k, e)| (k.to_text(), e.value.as_ref().unwrap().to_text()))
                .collect()
        };
        assert_eq!(at(1), vec![]);
        assert_eq!(
            at(3),
            vec![("a".into(), "1".into()), ("b".into(), "1".into())]
        );
        assert_eq!(
            at(4),
            vec![("a".into(), "2".into()), ("b".into(), "1".into())]
        );
        assert_eq!(at(5), vec![("a".into(), "2".into())]);
    }

    #[test]
    fn compaction_keeps_the_changes_at_its_revision() {
        let mut ks = Keyspace::default();
        for v in ["1", "2", "3"] {
            put(&mut ks, "a", v); // 2, 3, 4
        }
        assert_eq!(ks.compact(3), Ok(()));
        assert_eq!(ks.compact(3), Err(RevisionError::Compacted));
        assert_eq!(ks.compact(9), Err(RevisionError::Future));
        assert_eq!(ks.check_readable(2), Err(RevisionError::Compacted));
        assert_eq!(
            ks.changes_from(3).map(|c| c.revision).collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(ks.keys_at(b"a", None, 3)[0].1.value, Some("2".into()));
    }
}
