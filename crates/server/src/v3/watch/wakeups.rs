//! Which watch streams a change concerns, so that an applied write wakes those alone.
//!
//! A stream reads its events from the keyspace's history itself (see the parent module);
//! what it needs from outside is a wake-up when there may be something to read. Every
//! applied write used to wake every stream, and each then read the new changes to find
//! none of its own: with 1,000 idle streams a put cost a member 76-113 µs of CPU instead of
//! 27-35, and its throughput fell to etcd's. Now one task ([`dispatch`]) reads each applied
//! change once and wakes the streams with a watch whose range holds the change's key.
//!
//! A wake-up may be spare (the change is filtered out, or the watch was canceled since),
//! never missing: the dispatcher looks a change up only after it is applied, so every
//! change after the revision a stream reads once a watch is registered finds the watch;
//! the stream reads the ones before from the history. The dispatcher then publishes how
//! far it has read ([`Wakeups::dispatched_through`]): a stream with no wake-up pending or
//! unread has nothing up to there, and its watches skip those changes unread
//! ([`super::Watches::skip_quiet`]).

use crate::app::App;
use foldhash::{HashMap, HashSet, HashSetExt};
use musubi_store::Revision;
use musubi_store::v3::in_bounds;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::Notify;

/// A watch stream, as the index knows it.
pub type StreamId = u64;

/// The watched ranges of every stream, and how to wake each stream.
#[derive(Default)]
pub struct Wakeups {
    inner: Mutex<Streams>,
    /// Every change up to this revision has been read and its streams woken.
    dispatched_through: AtomicI64,
}

#[derive(Default)]
struct Streams {
    index: RangeIndex,
    wakers: HashMap<StreamId, Arc<Notify>>,
    next_id: StreamId,
}

impl Wakeups {
    /// A new stream's registration: its wake-up, and its watches as it adds them. Dropping
    /// it removes them all.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        let notify = Arc::new(Notify::new());
        let mut streams = self.inner.lock();
        let id = streams.next_id;
        streams.next_id += 1;
        streams.wakers.insert(id, notify.clone());
        Subscription {
            id,
            notify,
            wakeups: self.clone(),
        }
    }

    /// Wakes every stream with a watch on one of `keys`. Returns how many were woken.
    fn wake_for<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) -> usize {
        let streams = self.inner.lock();
        let mut woken = HashSet::new();
        for key in keys {
            for stream in streams.index.streams_holding(key) {
                if woken.insert(stream) {
                    streams.wakers[&stream].notify_one();
                }
            }
        }
        woken.len()
    }

    /// Wakes every stream (their place in the history may be gone).
    fn wake_all(&self) {
        self.inner
            .lock()
            .wakers
            .values()
            .for_each(|n| n.notify_one());
    }

    fn is_empty(&self) -> bool {
        self.inner.lock().index.is_empty()
    }

    /// The revision through which every change has woken the streams it concerns.
    pub fn dispatched_through(&self) -> Revision {
        self.dispatched_through.load(Ordering::Acquire)
    }
}

/// One stream's registration in [`Wakeups`].
pub struct Subscription {
    id: StreamId,
    notify: Arc<Notify>,
    wakeups: Arc<Wakeups>,
}

impl Subscription {
    /// Notified on a change to a watched key (or spare): the stream should read.
    pub fn wake(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Registers watch `watch_id` on `[from, to)` (`to == None`: every key from `from`);
    /// call before the stream first reads the history for it.
    pub fn watch(&self, watch_id: i64, from: &[u8], to: Option<&[u8]>) {
        let mut streams = self.wakeups.inner.lock();
        streams.index.insert(self.id, watch_id, from, to);
    }

    pub fn unwatch(&self, watch_id: i64) {
        self.wakeups.inner.lock().index.remove(self.id, watch_id);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut streams = self.wakeups.inner.lock();
        streams.wakers.remove(&self.id);
        streams.index.remove_stream(self.id);
    }
}

/// Reads every applied change once and wakes the streams it concerns. Runs for the
/// member's life.
pub async fn dispatch(app: Arc<App>, wakeups: Arc<Wakeups>) {
    let mut applied = app.hub.applied();
    let mut next: Revision = app.sm.read().revision() + 1;
    while applied.changed().await.is_ok() {
        let sm = app.sm.read();
        let ks = sm.keyspace();
        let current = ks.revision();
        if next <= current && !wakeups.is_empty() {
            if next < ks.compacted() {
                // Compacted past what was read here: whoever it concerned, wake them all.
                wakeups.wake_all();
            } else {
                wakeups.wake_for(ks.changes_from(next).map(|c| c.key()));
            }
        }
        // Without a watch, nothing to wake: a stream registers before it reads, so one that
        // registers now reads these changes itself.
        next = next.max(current + 1);
        // After the wake-ups: a stream that sees this and no wake-up has nothing here.
        wakeups
            .dispatched_through
            .fetch_max(current, Ordering::Release);
    }
}

/// Watched ranges, found by the keys they hold.
///
/// Every key in `[from, to)` starts with the longest prefix `from` and `to` share: a key
/// that differed from `from` and `to` inside it would be below `from` or above `to`. So a
/// range is filed under that prefix, and the ranges that may hold a key are those filed
/// under one of the key's prefixes, looked up only at the lengths some prefix has. An
/// exact key's range is filed under the key itself, a prefix watch's under the prefix
/// minus its last byte, a watch from a key on (no end) under the empty prefix.
#[derive(Default)]
struct RangeIndex {
    by_prefix: HashMap<Vec<u8>, Vec<Watched>>,
    /// How many ranges are filed under a prefix of each length.
    lengths: BTreeMap<usize, usize>,
}

struct Watched {
    stream: StreamId,
    watch_id: i64,
    from: Vec<u8>,
    to: Option<Vec<u8>>,
}

impl Watched {
    fn holds(&self, key: &[u8]) -> bool {
        in_bounds(key, &self.from, self.to.as_deref())
    }
}

impl RangeIndex {
    fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    fn insert(&mut self, stream: StreamId, watch_id: i64, from: &[u8], to: Option<&[u8]>) {
        let prefix = shared_prefix(from, to).to_vec();
        *self.lengths.entry(prefix.len()).or_default() += 1;
        self.by_prefix.entry(prefix).or_default().push(Watched {
            stream,
            watch_id,
            from: from.to_vec(),
            to: to.map(<[u8]>::to_vec),
        });
    }

    fn remove(&mut self, stream: StreamId, watch_id: i64) {
        self.remove_where(|w| w.stream == stream && w.watch_id == watch_id);
    }

    fn remove_stream(&mut self, stream: StreamId) {
        self.remove_where(|w| w.stream == stream);
    }

    /// Removes the ranges `gone` picks. Scans every prefix: watches are canceled far less
    /// often than changes are looked up.
    fn remove_where(&mut self, gone: impl Fn(&Watched) -> bool) {
        let lengths = &mut self.lengths;
        self.by_prefix.retain(|prefix, watched| {
            watched.retain(|w| {
                if !gone(w) {
                    return true;
                }
                let count = lengths.get_mut(&prefix.len()).expect("counted");
                *count -= 1;
                if *count == 0 {
                    lengths.remove(&prefix.len());
                }
                false
            });
            !watched.is_empty()
        });
    }

    /// The streams with a range holding `key`, once per range.
    fn streams_holding<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = StreamId> + 'a {
        self.lengths
            .keys()
            .take_while(move |&&len| len <= key.len())
            .filter_map(move |&len| self.by_prefix.get(&key[..len]))
            .flatten()
            .filter(move |w| w.holds(key))
            .map(|w| w.stream)
    }
}

/// The longest prefix every key in `[from, to)` has.
fn shared_prefix<'a>(from: &'a [u8], to: Option<&[u8]>) -> &'a [u8] {
    let Some(to) = to else { return &[] };
    let len = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    &from[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(index: &RangeIndex, key: &[u8]) -> Vec<StreamId> {
        let mut streams: Vec<_> = index.streams_holding(key).collect();
        streams.sort();
        streams
    }

    #[test]
    fn exact_keys_prefixes_and_open_ranges_find_what_they_hold() {
        let mut index = RangeIndex::default();
        index.insert(1, 0, b"foo", Some(b"foo\0")); // the key foo
        index.insert(2, 0, b"/registry/", Some(b"/registry0")); // the prefix /registry/
        index.insert(3, 0, b"m", None); // m and every key after it
        index.insert(4, 0, b"a", Some(b"c")); // a range with no shared prefix
        index.insert(5, 0, b"\0", None); // every key: etcd's watch of the empty key
        assert_eq!(holding(&index, b"foo"), [1, 5]);
        assert_eq!(holding(&index, b"foo\0"), [5]);
        assert_eq!(holding(&index, b"m"), [3, 5]);
        assert_eq!(holding(&index, b"/registry/pods/a"), [2, 5]);
        assert_eq!(holding(&index, b"/registry"), [5]);
        assert_eq!(holding(&index, b"b"), [4, 5]);
        assert_eq!(holding(&index, b"c"), [5]);
        assert_eq!(holding(&index, b"zzz"), [3, 5]);
        assert_eq!(holding(&index, b""), Vec::<StreamId>::new());
    }

    #[test]
    fn a_range_is_found_under_its_shared_prefix_only_when_it_holds_the_key() {
        let mut index = RangeIndex::default();
        index.insert(1, 0, b"key10", Some(b"key20"));
        assert_eq!(shared_prefix(b"key10", Some(b"key20")), b"key");
        assert_eq!(holding(&index, b"key15"), [1]);
        assert_eq!(holding(&index, b"key1"), Vec::<StreamId>::new());
        assert_eq!(holding(&index, b"key20"), Vec::<StreamId>::new());
        assert_eq!(holding(&index, b"key3"), Vec::<StreamId>::new());
    }

    #[test]
    fn removing_watches_and_streams_forgets_their_ranges_and_lengths() {
        let mut index = RangeIndex::default();
        index.insert(1, 0, b"a", Some(b"a\0"));
        index.insert(1, 1, b"ab", Some(b"ab\0"));
        index.insert(2, 0, b"a", Some(b"a\0"));
        index.remove(1, 0);
        assert_eq!(holding(&index, b"a"), [2]);
        assert_eq!(holding(&index, b"ab"), [1]);
        index.remove_stream(2);
        assert_eq!(holding(&index, b"a"), Vec::<StreamId>::new());
        assert_eq!(index.lengths.keys().copied().collect::<Vec<_>>(), [2]);
        index.remove_stream(1);
        assert!(index.is_empty());
        assert!(index.by_prefix.is_empty());
    }

    #[tokio::test]
    async fn a_stream_is_woken_for_its_keys_once_and_a_dropped_one_is_forgotten() {
        let wakeups = Arc::new(Wakeups::default());
        let a = wakeups.subscribe();
        let b = wakeups.subscribe();
        a.watch(0, b"x", Some(b"x\0"));
        a.watch(1, b"x", Some(b"y"));
        b.watch(0, b"y", Some(b"y\0"));
        let keys: [&[u8]; 3] = [b"x", b"xa", b"z"];
        assert_eq!(wakeups.wake_for(keys.into_iter()), 1);
        // The permit left by the wake-up makes `woken` return at once.
        a.wake().notified().await;
        drop(a);
        assert_eq!(wakeups.wake_for([&b"x"[..]].into_iter()), 0);
        assert!(!wakeups.is_empty());
        b.unwatch(0);
        assert!(wakeups.is_empty());
    }
}
