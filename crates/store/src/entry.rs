//! One key's entry, packed: its key, metadata and value in a single shared allocation.
//!
//! The keyspace holds one entry per key, and the history shares the entries its changes
//! name, so an entry's size is most of the store's memory. A struct of fields with the key
//! and the value as two more shared buffers cost three allocations and about 240 bytes per
//! key of 16 bytes with a 64-byte value; packed, the same entry is one allocation of about
//! 110 bytes (docs/benchmarks.md, "Memory with 1M keys: packed entries"). The metadata are
//! written as variable-length integers after the key, which comes first so that comparing
//! two keys (the B-tree's every step) reads one length byte.
//!
//! Layout: `key length, key, flags, create_revision, mod_revision, version, lease,
//! [expire_at], value`; integers as LEB128, flags saying whether there is a value, a
//! directory and an expiry.

use crate::Bytes;
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use triomphe::ThinArc;

/// A revision: v3's `revision`, v2's index. The empty keyspace is at 1.
pub type Revision = i64;

/// An entry's metadata: everything but its key and value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// A v2 directory: v2 lists its children and refuses value writes to it.
    pub dir: bool,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    /// Writes since the key was created (v3 puts and v2 writes alike).
    pub version: i64,
    /// The v3 lease the key is attached to, 0 for none.
    pub lease: i64,
    /// A v2 TTL: when the key expires, Unix ms.
    pub expire_at: Option<u64>,
}

const HAS_VALUE: u8 = 1;
const DIR: u8 = 2;
const HAS_EXPIRY: u8 = 4;

/// A key's entry: a v3 key, a v2 file (the same thing: a key with a value), a v2
/// directory (no value: invisible to v3), or a v2 directory that a v3 put also gave a
/// value. Cloning it shares it.
///
/// A thin pointer (the length is in the allocation): the B-tree's slots and the history's
/// changes hold one pointer per entry, 8 bytes instead of a slice's 16.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry(ThinArc<(), u8>);

impl Entry {
    /// `key` holding `value` (`None`: a v2 directory no v3 put gave a value) with `meta`.
    pub fn new(key: &[u8], value: Option<&[u8]>, meta: Meta) -> Entry {
        let value_len = value.map_or(0, <[u8]>::len);
        let mut packed = Vec::with_capacity(key.len() + value_len + 40);
        put_varint(&mut packed, key.len() as u64);
        packed.extend_from_slice(key);
        let flags = (if value.is_some() { HAS_VALUE } else { 0 })
            | (if meta.dir { DIR } else { 0 })
            | (if meta.expire_at.is_some() {
                HAS_EXPIRY
            } else {
                0
            });
        packed.push(flags);
        for n in [
            meta.create_revision,
            meta.mod_revision,
            meta.version,
            meta.lease,
        ] {
            // Revisions, versions and lease IDs are never negative; a cast keeps any i64.
            put_varint(&mut packed, n as u64);
        }
        if let Some(at) = meta.expire_at {
            put_varint(&mut packed, at);
        }
        packed.extend_from_slice(value.unwrap_or_default());
        Entry(ThinArc::from_header_and_slice((), &packed))
    }

    /// A key just created at `rev` holding `value` (for tests).
    #[cfg(test)]
    pub(crate) fn new_key(key: &str, value: &str, rev: Revision) -> Entry {
        let meta = Meta {
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            ..Meta::default()
        };
        Entry::new(key.as_bytes(), Some(value.as_bytes()), meta)
    }

    pub fn key(&self) -> &[u8] {
        let (len, at) = varint(self.packed(), 0);
        &self.packed()[at..at + len as usize]
    }

    /// The value, `None` for a v2 directory that no v3 put gave a value.
    pub fn value(&self) -> Option<&[u8]> {
        let (flags, _, start) = self.decode();
        (flags & HAS_VALUE != 0).then(|| &self.packed()[start..])
    }

    pub fn meta(&self) -> Meta {
        self.decode().1
    }

    /// The bytes of its key and value: what the space quota and the metrics count.
    pub fn data_len(&self) -> usize {
        self.key().len() + self.value().map_or(0, <[u8]>::len)
    }

    /// Whether v3 sees this entry as a key (it has a value).
    pub fn is_key(&self) -> bool {
        self.flags() & HAS_VALUE != 0
    }

    pub fn dir(&self) -> bool {
        self.flags() & DIR != 0
    }

    pub fn create_revision(&self) -> Revision {
        self.meta().create_revision
    }

    pub fn mod_revision(&self) -> Revision {
        self.meta().mod_revision
    }

    pub fn version(&self) -> i64 {
        self.meta().version
    }

    pub fn lease(&self) -> i64 {
        self.meta().lease
    }

    pub fn expire_at(&self) -> Option<u64> {
        self.meta().expire_at
    }

    /// Whether `other` is this very entry, shared, not an equal copy.
    pub fn is_same(&self, other: &Entry) -> bool {
        std::ptr::eq(self.packed(), other.packed())
    }

    /// Where this entry lives: equal for [`is_same`](Self::is_same) entries only, while
    /// both are held.
    pub(crate) fn address(&self) -> usize {
        self.packed().as_ptr() as usize
    }

    fn packed(&self) -> &[u8] {
        &self.0.slice
    }

    /// The key and the flags' position.
    fn flags_at(&self) -> usize {
        let (len, at) = varint(self.packed(), 0);
        at + len as usize
    }

    fn flags(&self) -> u8 {
        self.packed()[self.flags_at()]
    }

    /// The flags, the metadata and where the value starts.
    fn decode(&self) -> (u8, Meta, usize) {
        let mut at = self.flags_at();
        let flags = self.packed()[at];
        at += 1;
        let mut next = || {
            let (n, end) = varint(self.packed(), at);
            at = end;
            n
        };
        let mut meta = Meta {
            dir: flags & DIR != 0,
            create_revision: next() as i64,
            mod_revision: next() as i64,
            version: next() as i64,
            lease: next() as i64,
            expire_at: None,
        };
        if flags & HAS_EXPIRY != 0 {
            meta.expire_at = Some(next());
        }
        (flags, meta, at)
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The LEB128 integer at `at` and the position after it (`Entry::new` wrote it).
fn varint(bytes: &[u8], mut at: usize) -> (u64, usize) {
    let mut n = 0u64;
    let mut shift = 0;
    loop {
        let byte = bytes[at];
        at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return (n, at);
        }
        shift += 7;
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value", &self.value().map(String::from_utf8_lossy))
            .field("meta", &self.meta())
            .finish()
    }
}

/// An entry as snapshots hold it, its key beside it (a map's key, a change's field): the
/// fields the entry had when it was a struct, so snapshots written before it was packed
/// still restore.
#[derive(Deserialize)]
pub(crate) struct EntryFields {
    value: Option<Bytes>,
    #[serde(default)]
    dir: bool,
    create_revision: Revision,
    mod_revision: Revision,
    version: i64,
    #[serde(default)]
    lease: i64,
    #[serde(default)]
    expire_at: Option<u64>,
}

impl EntryFields {
    pub(crate) fn into_entry(self, key: &[u8]) -> Entry {
        let meta = Meta {
            dir: self.dir,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
            expire_at: self.expire_at,
        };
        Entry::new(key, self.value.as_deref(), meta)
    }
}

/// Written as [`EntryFields`] are read: the key is not among them.
impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let meta = self.meta();
        let mut fields = s.serialize_struct("Entry", 7)?;
        fields.serialize_field("value", &self.value().map(crate::bytes::Base64))?;
        if meta.dir {
            fields.serialize_field("dir", &true)?;
        } else {
            fields.skip_field("dir")?;
        }
        fields.serialize_field("create_revision", &meta.create_revision)?;
        fields.serialize_field("mod_revision", &meta.mod_revision)?;
        fields.serialize_field("version", &meta.version)?;
        fields.serialize_field("lease", &meta.lease)?;
        fields.serialize_field("expire_at", &meta.expire_at)?;
        fields.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reads_back() {
        let meta = Meta {
            dir: true,
            create_revision: 2,
            mod_revision: 300_000,
            version: 7,
            lease: i64::MAX,
            expire_at: Some(1_764_000_000_000),
        };
        let e = Entry::new(b"/a/b", Some(b"value"), meta);
        assert_eq!(e.key(), b"/a/b");
        assert_eq!(e.value(), Some(&b"value"[..]));
        assert_eq!(e.meta(), meta);
        assert!(e.is_key() && e.dir());
        let dir = Entry::new(&[0x80; 200], None, Meta::default());
        assert_eq!(
            (dir.key(), dir.value(), dir.is_key()),
            (&[0x80; 200][..], None, false)
        );
        assert_eq!(Entry::new(b"k", Some(b""), meta).value(), Some(&b""[..]));
    }

    #[test]
    fn the_snapshot_form_is_the_old_struct() {
        let e = Entry::new_key("k", "v", 5);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"value":"dg==","create_revision":5,"mod_revision":5,"version":1,"lease":0,"expire_at":null}"#
        );
        let fields: EntryFields = serde_json::from_str(&json).unwrap();
        assert_eq!(fields.into_entry(b"k"), e);
    }
}
