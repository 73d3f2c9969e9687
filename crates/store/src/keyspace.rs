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
use crate::by_key::{ByKey, KeyProbe};
use crate::entry::{Entry, EntryFields, Revision};
use crate::v3::in_bounds;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use imbl::{OrdSet, Vector};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Bound;

/// One change a v3 watcher sees at `revision`: from `prev` to `kv` (`None`: no key), one of
/// them at least there, both of the same key. Several changes may share a revision (a Txn,
/// a lease revoke, a v2 recursive delete); they are kept in the order they were made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub revision: Revision,
    pub kv: Option<Entry>,
    pub prev: Option<Entry>,
}

impl Change {
    /// The bytes of the entry this change replaced or deleted, which the history holds.
    fn prev_bytes(&self) -> u64 {
        self.prev.as_ref().map_or(0, |e| e.data_len() as u64)
    }

    pub fn key(&self) -> &[u8] {
        match (&self.kv, &self.prev) {
            (Some(e), _) | (None, Some(e)) => e.key(),
            (None, None) => unreachable!("a change without an entry is never recorded"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyspace {
    /// The current entries, each holding its key: the history shares them, and one packed
    /// entry per key is most of the store's memory (crate::entry).
    entries: OrdSet<ByKey>,
    /// (expiry in Unix ms, key) for every entry with a v2 TTL.
    expiring: OrdSet<(u64, Bytes)>,
    /// Changes at revisions `compacted..=revision`, oldest first.
    history: Vector<Change>,
    revision: Revision,
    /// Reads and watches below this revision are refused; -1 before any compaction.
    compacted: Revision,
    /// What the keyspace holds, in bytes of keys and values ([`Keyspace::held_bytes`]).
    held_bytes: u64,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            entries: OrdSet::new(),
            expiring: OrdSet::new(),
            history: Vector::new(),
            revision: 1,
            // etcd starts its compaction revision at -1, so `Compact(0)` on a fresh store
            // succeeds (and a second one is refused).
            compacted: -1,
            held_bytes: 0,
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
            .filter_map(|e| e.expire_at().map(|at| (at, Bytes::from(e.key()))))
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

    /// The bytes of keys and values the keyspace holds: what the space quota
    /// (`--quota-backend-bytes`) and `Status.dbSizeInUse` measure, since musubi's keyspace
    /// lives in memory, not in a file. Every current entry counts, and so does every entry
    /// a change in the history replaced or deleted (its `prev`), which the history keeps
    /// alive for reads at old revisions and for watchers' `prev_kv`; deleting keys and
    /// compacting lowers it. Kept up to date by every write and compaction, so reading it
    /// costs nothing (it was a walk of the whole keyspace, a tenth of a core at 1M keys).
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// [`Keyspace::held_bytes`] counted from scratch, for a keyspace read from a snapshot.
    fn count_held_bytes(&self) -> u64 {
        let current: u64 = self.iter().map(|e| e.data_len() as u64).sum();
        current + self.history.iter().map(Change::prev_bytes).sum::<u64>()
    }

    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(&KeyProbe::new(key)).map(ByKey::entry)
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().map(ByKey::entry)
    }

    /// Entries with keys in `[from, to)` (`to == None`: to the end), in key order.
    pub fn range<'a>(
        &'a self,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = &'a Entry> + use<'a> {
        let end = match to {
            Some(to) => Bound::Excluded(KeyProbe::new(to)),
            None => Bound::Unbounded,
        };
        self.entries
            .range((Bound::Included(KeyProbe::new(from)), end))
            .map(ByKey::entry)
    }

    /// The first entry at or after `from`, as a cursor walking the keys sees it.
    pub fn first_from(&self, from: Bound<&[u8]>) -> Option<&Entry> {
        self.entries
            .range((from.map(KeyProbe::new), Bound::Unbounded))
            .next()
            .map(ByKey::entry)
    }

    /// Writes `entry` under its key at `revision` (the caller advances the keyspace to
    /// it), recording the change if v3 sees one.
    pub fn put(&mut self, entry: Entry, revision: Revision) {
        let new_expiry = entry.expire_at();
        let visible = entry.is_key().then(|| entry.clone());
        self.held_bytes += entry.data_len() as u64;
        let old = self
            .entries
            .insert(ByKey::new(entry.clone()))
            .map(ByKey::into_entry);
        // Forget the old expiry before recording the new one: they may be equal.
        if let Some(old) = &old {
            self.held_bytes -= old.data_len() as u64;
            self.forget_expiry(old);
        }
        if let Some(at) = new_expiry {
            self.expiring.insert((at, Bytes::from(entry.key())));
        }
        self.record(old, visible, revision);
    }

    /// Removes `key` at `revision`, recording the deletion if v3 saw the key.
    pub fn remove(&mut self, key: &[u8], revision: Revision) -> Option<Entry> {
        let old = self.entries.remove(&KeyProbe::new(key))?.into_entry();
        self.held_bytes -= old.data_len() as u64;
        self.forget_expiry(&old);
        self.record(Some(old.clone()), None, revision);
        Some(old)
    }

    fn record(&mut self, old: Option<Entry>, kv: Option<Entry>, revision: Revision) {
        let prev = old.filter(Entry::is_key);
        if prev.is_none() && kv.is_none() {
            return;
        }
        let change = Change { revision, kv, prev };
        self.held_bytes += change.prev_bytes();
        self.history.push_back(change);
    }

    fn forget_expiry(&mut self, old: &Entry) {
        if let Some(at) = old.expire_at() {
            self.expiring.remove(&(at, Bytes::from(old.key())));
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
    pub fn keys_at(&self, from: &[u8], to: Option<&[u8]>, revision: Revision) -> Vec<Entry> {
        let current = self.range(from, to).filter(|e| e.is_key());
        if self.is_current(revision) {
            return current.cloned().collect();
        }
        let mut at: std::collections::BTreeMap<&[u8], Entry> =
            current.map(|e| (e.key(), e.clone())).collect();
        let later = self.first_change_after(revision);
        for change in self.history_from(later).rev() {
            let key = change.key();
            if !in_bounds(key, from, to) {
                continue;
            }
            match &change.prev {
                Some(prev) => at.insert(key, prev.clone()),
                None => at.remove(key),
            };
        }
        at.into_values().collect()
    }

    /// Whether the keyspace as it is now is the keyspace at `revision`: no change was made
    /// after it (inside a Txn, the Txn's own changes are already made at the next one).
    pub fn is_current(&self, revision: Revision) -> bool {
        self.history.last().is_none_or(|c| c.revision <= revision)
    }

    /// The changes at `from` and later, oldest first (`from` at or above `compacted`).
    pub fn changes_from(&self, from: Revision) -> impl Iterator<Item = &Change> {
        self.history_from(self.first_change_after(from - 1))
    }

    /// The changes from `position` in the history on. Not `iter().skip(position)`: imbl's
    /// iterator skips one element at a time, and a watch reading the newest change of a
    /// history of 100,000 paid for all of them (0.3 ms per event).
    fn history_from(&self, position: usize) -> impl DoubleEndedIterator<Item = &Change> {
        self.history.focus().narrow(position..).into_iter()
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
        let (mut kept, dropped): (Vector<Change>, Vector<Change>) = self
            .history
            .skip(keep_from)
            .take(at_revision - keep_from)
            .into_iter()
            .partition(|c| c.kv.is_some());
        let freed: u64 = (self.history.iter().take(keep_from))
            .chain(dropped.iter())
            .map(Change::prev_bytes)
            .sum();
        self.held_bytes -= freed;
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

/// Snapshots hold the keyspace as they did when entries were structs beside their keys:
/// `{"entries": {key: entry}, "history": [{revision, key, kv, prev}], "revision",
/// "compacted"}` (keys and values in base64), a change's `kv` and `prev` left out where the
/// reader has them already ([`Slot`]).
impl Serialize for Keyspace {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Entries<'a>(&'a Keyspace);
        impl Serialize for Entries<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for e in self.0.iter() {
                    map.serialize_entry(&crate::bytes::Base64(e.key()), e)?;
                }
                map.end()
            }
        }
        struct History<'a>(&'a Keyspace);
        impl Serialize for History<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let ks = self.0;
                // A change's `kv` that is a current entry is the very one (shared since it
                // was applied or restored): told by address, not by a lookup per change.
                let mut current = HashSet::with_capacity(ks.len());
                current.extend(ks.iter().map(Entry::address));
                // What each key's changes so far made it.
                let mut made: HashMap<&[u8], &Entry> = HashMap::new();
                s.collect_seq(ks.history.iter().map(|c| {
                    let key = c.key();
                    let kv = match &c.kv {
                        Some(e) if current.contains(&e.address()) => Slot::Known,
                        kv => Slot::of(kv.as_ref()),
                    };
                    let prev = Slot::unless_known(c.prev.as_ref(), made.get(key).copied());
                    match &c.kv {
                        Some(e) => made.insert(key, e),
                        None => made.remove(key),
                    };
                    ChangeFields {
                        revision: c.revision,
                        key: crate::bytes::Base64(key),
                        kv,
                        prev,
                    }
                }))
            }
        }
        let mut fields = s.serialize_struct("Keyspace", 4)?;
        fields.serialize_field("entries", &Entries(self))?;
        fields.serialize_field("history", &History(self))?;
        fields.serialize_field("revision", &self.revision)?;
        fields.serialize_field("compacted", &self.compacted)?;
        fields.end()
    }
}

/// A change as snapshots hold it: its key beside its entries.
#[derive(Serialize, Deserialize)]
struct ChangeFields<K, E> {
    revision: Revision,
    key: K,
    #[serde(default = "Slot::known", skip_serializing_if = "Slot::is_known")]
    kv: Slot<E>,
    #[serde(default = "Slot::known", skip_serializing_if = "Slot::is_known")]
    prev: Slot<E>,
}

/// A change's `kv` or `prev` in a snapshot. Snapshot format 4 leaves an entry out where the
/// reader has it already: a `kv` that is still the key's current entry, a `prev` that the
/// key's previous change in the history made. So each version of a value is written once;
/// format 3 wrote most of them three times (as the current entry, as a change's `kv` and as
/// the next change's `prev`), which made a snapshot after 100,000 puts of 256-byte values
/// 116 MB where 40 MB of values were held.
enum Slot<E> {
    /// Left out: the reader knows it.
    Known,
    /// `null`: no entry (a key created, or deleted).
    Absent,
    Written(E),
}

impl<E> Slot<E> {
    /// `entry` written out.
    fn of(entry: Option<E>) -> Slot<E> {
        entry.map_or(Slot::Absent, Slot::Written)
    }

    /// `entry` written out, or left out if it equals `known`.
    fn unless_known(entry: Option<E>, known: Option<E>) -> Slot<E>
    where
        E: PartialEq,
    {
        match entry {
            Some(e) if known.is_some_and(|k| k == e) => Slot::Known,
            entry => Slot::of(entry),
        }
    }

    /// What a change that leaves the field out means (format 3 and older never did).
    fn known() -> Slot<E> {
        Slot::Known
    }

    fn is_known(&self) -> bool {
        matches!(self, Slot::Known)
    }
}

impl<E: Serialize> Serialize for Slot<E> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Slot::Written(e) => s.serialize_some(e),
            Slot::Absent | Slot::Known => s.serialize_none(),
        }
    }
}

impl<'de, E: Deserialize<'de>> Deserialize<'de> for Slot<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Slot::of(Option::<E>::deserialize(d)?))
    }
}

/// Read straight into the packed form, one entry at a time: a keyspace of a million keys
/// is never held decoded. A change whose entry is the key's current one (every change
/// since the key's last write) shares it, as it did before the snapshot.
impl<'de> Deserialize<'de> for Keyspace {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(KeyspaceVisitor)
    }
}

struct KeyspaceVisitor;

impl<'de> Visitor<'de> for KeyspaceVisitor {
    type Value = Keyspace;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a keyspace")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keyspace, A::Error> {
        let mut ks = Keyspace::default();
        let (mut revision, mut compacted) = (None, None);
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "entries" => ks.entries = map.next_value::<Entries>()?.0,
                "history" => ks.history = map.next_value_seed(HistorySeed(&ks.entries))?,
                "revision" => revision = Some(map.next_value()?),
                "compacted" => compacted = Some(map.next_value()?),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        ks.revision = revision.ok_or_else(|| de::Error::missing_field("revision"))?;
        ks.compacted = compacted.ok_or_else(|| de::Error::missing_field("compacted"))?;
        ks.held_bytes = ks.count_held_bytes();
        Ok(ks)
    }
}

struct Entries(OrdSet<ByKey>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of keys to entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = OrdSet::new();
                while let Some((key, fields)) = map.next_entry::<Bytes, EntryFields>()? {
                    entries.insert(ByKey::new(fields.into_entry(&key)));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

/// Reads the history, sharing the current entries (read before it) where a change names
/// one, and a change's `prev` with the `kv` of the key's change before it.
struct HistorySeed<'a>(&'a OrdSet<ByKey>);

impl<'de> DeserializeSeed<'de> for HistorySeed<'_> {
    type Value = Vector<Change>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for HistorySeed<'_> {
    type Value = Vector<Change>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of changes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut history = Vector::new();
        // What each key's changes so far made it: a left-out `prev`, and the one to share.
        let mut made: HashMap<Bytes, Entry> = HashMap::new();
        while let Some(c) = seq.next_element::<ChangeFields<Bytes, EntryFields>>()? {
            let current = self.0.get(&KeyProbe::new(&c.key)).map(ByKey::entry);
            let kv = c.kv.resolve(&c.key, current).map_err(|()| {
                de::Error::custom("a change names the current entry of a key without one")
            })?;
            let prev = c.prev.resolve(&c.key, made.get(&c.key)).map_err(|()| {
                de::Error::custom("a change names a previous entry the history lacks")
            })?;
            if kv.is_none() && prev.is_none() {
                return Err(de::Error::custom("a change without an entry"));
            }
            match &kv {
                Some(e) => made.insert(c.key, e.clone()),
                None => made.remove(&c.key),
            };
            history.push_back(Change {
                revision: c.revision,
                kv,
                prev,
            });
        }
        Ok(history)
    }
}

impl Slot<EntryFields> {
    /// The entry this slot stands for: `known` if it was left out (`Err` if there is none),
    /// else the one written, sharing `known`'s memory when it is the same entry.
    fn resolve(self, key: &[u8], known: Option<&Entry>) -> Result<Option<Entry>, ()> {
        match self {
            Slot::Known => known.cloned().map(Some).ok_or(()),
            Slot::Absent => Ok(None),
            Slot::Written(fields) => {
                let entry = fields.into_entry(key);
                Ok(Some(match known {
                    Some(k) if *k == entry => k.clone(),
                    _ => entry,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    fn put(ks: &mut Keyspace, k: &str, v: &str) {
        let rev = ks.revision() + 1;
        ks.put(Entry::new_key(k, v, rev), rev);
        ks.advance_to(rev);
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
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
                .map(|e| (text(e.key()), text(e.value().unwrap())))
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
        assert_eq!(ks.keys_at(b"a", None, 3)[0].value(), Some(&b"2"[..]));
    }

    #[test]
    fn held_bytes_count_current_entries_and_what_the_history_replaced() {
        let mut ks = Keyspace::default();
        put(&mut ks, "k", "0123456789"); // 2
        assert_eq!(ks.held_bytes(), 11);
        put(&mut ks, "k", "abc"); // 3: the old value stays for reads at 2
        assert_eq!(ks.held_bytes(), 11 + 4);
        put(&mut ks, "j", "x"); // 4
        ks.compact(4).unwrap();
        assert_eq!(ks.held_bytes(), 4 + 2);
        ks.remove(b"k", 5);
        ks.advance_to(5);
        assert_eq!(
            ks.held_bytes(),
            2 + 4,
            "a deleted value is held until compacted"
        );
        ks.compact(5).unwrap();
        assert_eq!(ks.held_bytes(), 2);
        assert_eq!(ks.count_held_bytes(), 2);
    }

    /// a=1 (2), a=2 (3), b=1 (4), b deleted (5), a=3 (6): three versions of `a`.
    fn three_versions() -> Keyspace {
        let mut ks = Keyspace::default();
        for v in ["1", "2"] {
            put(&mut ks, "a", v);
        }
        put(&mut ks, "b", "1");
        ks.remove(b"b", 5);
        ks.advance_to(5);
        put(&mut ks, "a", "3");
        ks
    }

    #[test]
    fn a_snapshot_writes_each_version_of_a_value_once() {
        let ks = three_versions();
        let json = serde_json::to_value(&ks).unwrap();
        let history = json["history"].as_array().unwrap();
        let written = |field: &str| -> Vec<Option<String>> {
            let value = |c: &serde_json::Value| c[field]["value"].as_str().map(String::from);
            (history.iter())
                .map(|c| c.get(field).map(|_| value(c).unwrap_or_default()))
                .map(|v| v.map(|b64| text(&STANDARD.decode(b64).unwrap())))
                .collect()
        };
        // `kv`: left out where it is still current (a=3); `prev`: left out where the
        // key's previous change made it; `null` (an empty string here) where there is none.
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            written("kv"),
            [some("1"), some("2"), some("1"), some(""), None]
        );
        assert_eq!(written("prev"), [some(""), None, some(""), None, None]);
        let restored: Keyspace = serde_json::from_value(json).unwrap();
        assert_eq!(restored, ks);
    }

    #[test]
    fn a_snapshot_that_writes_every_entry_restores_sharing_them() {
        // Format 3 and older: every change's `kv` and `prev` written out.
        let ks = three_versions();
        let every: Vec<_> = (ks.history.iter())
            .map(|c| ChangeFields {
                revision: c.revision,
                key: crate::bytes::Base64(c.key()),
                kv: Slot::of(c.kv.as_ref()),
                prev: Slot::of(c.prev.as_ref()),
            })
            .collect();
        let mut json = serde_json::to_value(&ks).unwrap();
        json["history"] = serde_json::to_value(&every).unwrap();
        let restored: Keyspace = serde_json::from_value(json).unwrap();
        assert_eq!(restored, ks);
        let changes: Vec<&Change> = restored.changes_from(2).collect();
        let (a1, a2) = (
            changes[0].kv.as_ref().unwrap(),
            changes[1].prev.as_ref().unwrap(),
        );
        assert!(
            a1.is_same(a2),
            "a prev shares the entry its key's last change made"
        );
        let a3 = changes[4].kv.as_ref().unwrap();
        assert!(a3.is_same(restored.get(b"a").unwrap()));
    }

    #[test]
    fn a_snapshot_naming_an_entry_it_never_wrote_is_refused() {
        let mut json = serde_json::to_value(three_versions()).unwrap();
        // The change at 3 leaves its prev out: its key's change at 2 made it.
        json["history"].as_array_mut().unwrap().remove(0);
        let refused = serde_json::from_value::<Keyspace>(json.clone()).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("a previous entry the history lacks")
        );
        json["entries"].as_object_mut().unwrap().clear();
        json["history"].as_array_mut().unwrap().truncate(0);
        json["history"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"revision": 6, "key": "YQ=="}));
        let refused = serde_json::from_value::<Keyspace>(json).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("current entry of a key without one")
        );
    }

    #[test]
    fn a_snapshot_restores_the_history_sharing_the_current_entries() {
        let mut ks = Keyspace::default();
        for v in ["1", "2"] {
            put(&mut ks, "a", v); // 2, 3
        }
        put(&mut ks, "b", "1"); // 4
        ks.remove(b"b", 5);
        ks.advance_to(5);
        let json = serde_json::to_string(&ks).unwrap();
        let restored: Keyspace = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, ks);
        let last_a = restored.changes_from(3).next().unwrap().kv.clone().unwrap();
        let current = restored.get(b"a").unwrap();
        assert!(last_a.is_same(current));
        assert_eq!(serde_json::to_string(&restored).unwrap(), json);
    }
}
