//! Serf's Lamport clocks (serf/lamport.go): order user events, and queries, across the
//! cluster without synchronized wall clocks. Each is shared between the node, which stamps
//! what it sends, and foca's broadcast handler, which witnesses the times it receives.
//! [`SeenWindow`] remembers what was delivered at recent times, to deliver each once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Serf's three clocks: member changes, user events and queries. The snapshot records
/// them and restores them after a restart.
#[derive(Clone, Debug, Default)]
pub struct Clocks {
    pub member: Arc<LamportClock>,
    pub event: Arc<LamportClock>,
    pub query: Arc<LamportClock>,
}

#[derive(Debug, Default)]
pub struct LamportClock {
    counter: AtomicU64,
}

impl LamportClock {
    pub fn time(&self) -> u64 {
        self.counter.load(Ordering::SeqCst)
    }

    /// A local event was stamped with the current time: later ones must sort after it.
    pub fn increment(&self) {
        self.counter.fetch_add(1, Ordering::SeqCst);
    }

    /// Another member had reached `seen`: later local events must sort after it.
    pub fn witness(&self, seen: u64) {
        self.counter
            .fetch_max(seen.saturating_add(1), Ordering::SeqCst);
    }
}

/// What a message stamped with a Lamport time is to a member that has seen others.
#[derive(Debug, PartialEq, Eq)]
pub enum Sighting {
    First,
    Repeat,
    /// Older than the remembered window: it cannot be told from a repeat, so it is dropped.
    TooOld,
}

/// How many Lamport times of past user events, and of queries, are remembered (Serf's
/// buffers).
pub const REMEMBERED_TIMES: u64 = 512;

/// The keys of the messages delivered at each of the last `window` Lamport times.
#[derive(Debug)]
pub struct SeenWindow<K> {
    window: u64,
    seen: BTreeMap<u64, Vec<K>>,
}

impl<K: PartialEq> SeenWindow<K> {
    pub fn new(window: u64) -> Self {
        SeenWindow {
            window,
            seen: BTreeMap::new(),
        }
    }

    /// Witness `ltime` on `clock`, then record `key` at that time unless it was seen.
    pub fn sight(&mut self, clock: &LamportClock, ltime: u64, key: K) -> Sighting {
        clock.witness(ltime);
        let oldest_remembered = clock.time().saturating_sub(self.window);
        if ltime < oldest_remembered {
            return Sighting::TooOld;
        }
        self.seen = self.seen.split_off(&oldest_remembered);
        let at_time = self.seen.entry(ltime).or_default();
        if at_time.contains(&key) {
            return Sighting::Repeat;
        }
        at_time.push(key);
        Sighting::First
    }

    /// The remembered keys, oldest time first.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.seen.values().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_first_once_per_time_and_old_times_are_too_old() {
        let clock = LamportClock::default();
        let mut window = SeenWindow::new(4);
        assert_eq!(window.sight(&clock, 5, "a"), Sighting::First);
        assert_eq!(window.sight(&clock, 5, "a"), Sighting::Repeat);
        assert_eq!(window.sight(&clock, 5, "b"), Sighting::First);
        assert_eq!(window.sight(&clock, 6, "a"), Sighting::First);
        assert_eq!(clock.time(), 7);
        assert_eq!(window.sight(&clock, 2, "a"), Sighting::TooOld);
        assert_eq!(window.sight(&clock, 3, "a"), Sighting::First);
    }

    #[test]
    fn ticks_and_witnesses_move_the_clock_forward_only() {
        let clock = LamportClock::default();
        clock.increment();
        assert_eq!(clock.time(), 1);
        clock.witness(7);
        assert_eq!(clock.time(), 8);
        clock.witness(3);
        assert_eq!(clock.time(), 8);
    }
}
