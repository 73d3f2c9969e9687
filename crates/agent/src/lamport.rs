//! Serf's Lamport clock (serf/lamport.go): orders user events across the cluster without
//! synchronized wall clocks. Shared between the node, which stamps the events it sends,
//! and foca's broadcast handler, which witnesses the times of the events it receives.

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

#[cfg(test)]
mod tests {
    use super::*;

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
