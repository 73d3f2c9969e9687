//! The order of the keyspace's current entries: by their keys' bytes, with each key's
//! first eight bytes kept beside its entry's pointer.
//!
//! A point lookup walks about five B-tree nodes and makes three or four comparisons in
//! each. Read from the entries, every comparison fetches another entry's memory, cold
//! when the keys written are spread out: that was most of a write's apply (the lookup of
//! the key a v3 put writes was 5-7% of the server's CPU under etcd-benchmark's put). With
//! the head inline a comparison reads only the node, unless the two heads are equal; keys
//! under one long common prefix (`/registry/...`) pay one integer comparison more before
//! comparing their bytes, as before.

use crate::entry::Entry;
use equivalent::{Comparable, Equivalent};
use std::cmp::Ordering;

/// A key's first eight bytes, zero-padded, as a big-endian integer. Heads order keys as
/// their bytes do, except that keys with equal heads must be compared whole (`a` and
/// `a\0` share a head).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Head(u64);

impl Head {
    fn of(key: &[u8]) -> Head {
        let mut bytes = [0; 8];
        let n = key.len().min(8);
        bytes[..n].copy_from_slice(&key[..n]);
        Head(u64::from_be_bytes(bytes))
    }

    fn then_bytes(self, key: &[u8], other: Head, other_key: &[u8]) -> Ordering {
        self.cmp(&other).then_with(|| key.cmp(other_key))
    }
}

/// An entry in the ordered set of current entries, ordered and found by its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ByKey {
    head: Head,
    entry: Entry,
}

impl ByKey {
    pub(crate) fn new(entry: Entry) -> ByKey {
        ByKey {
            head: Head::of(entry.key()),
            entry,
        }
    }

    pub(crate) fn entry(&self) -> &Entry {
        &self.entry
    }

    pub(crate) fn into_entry(self) -> Entry {
        self.entry
    }
}

impl Ord for ByKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.head
            .then_bytes(self.entry.key(), other.head, other.entry.key())
    }
}

impl PartialOrd for ByKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A key to find, or to bound a range with, in a set of [`ByKey`]: its head made once for
/// the whole walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyProbe<'a> {
    head: Head,
    key: &'a [u8],
}

impl<'a> KeyProbe<'a> {
    pub(crate) fn new(key: &'a [u8]) -> KeyProbe<'a> {
        KeyProbe {
            head: Head::of(key),
            key,
        }
    }
}

impl Equivalent<ByKey> for KeyProbe<'_> {
    fn equivalent(&self, by_key: &ByKey) -> bool {
        self.head == by_key.head && self.key == by_key.entry.key()
    }
}

impl Comparable<ByKey> for KeyProbe<'_> {
    fn compare(&self, by_key: &ByKey) -> Ordering {
        self.head
            .then_bytes(self.key, by_key.head, by_key.entry.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Meta;
    use proptest::prelude::*;

    fn by_key(key: &[u8]) -> ByKey {
        ByKey::new(Entry::new(key, Some(b"v"), Meta::default()))
    }

    proptest! {
        /// Heads never contradict the bytes: ordering by head, then bytes, is byte order,
        /// for keys as short as nothing, with zero bytes, and sharing long prefixes.
        #[test]
        fn orders_as_the_key_bytes(
            a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..12),
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..12),
        ) {
            prop_assert_eq!(by_key(&a).cmp(&by_key(&b)), a.cmp(&b));
            prop_assert_eq!(KeyProbe::new(&a).compare(&by_key(&b)), a.cmp(&b));
            prop_assert_eq!(KeyProbe::new(&a).equivalent(&by_key(&b)), a == b);
        }
    }

    #[test]
    fn keys_sharing_a_head_compare_whole() {
        assert!(by_key(b"a") < by_key(b"a\0"));
        assert!(by_key(b"/registry/b") > by_key(b"/registry/a"));
        assert_eq!(Head::of(b"a"), Head::of(b"a\0"));
    }
}
