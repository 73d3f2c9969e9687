//! The user events a member has seen lately, shared by foca's broadcast handler (which
//! records what arrives) and the node (which hands them to a joining member that asks to
//! replay them, and raises the floor below which events are ignored).
//!
//! Like Serf, a member remembers the events of the last 512 Lamport times and ignores
//! events older than that, repeats, and events below its minimum time: the ones it
//! handled before a restart (the snapshot's event clock), or, after a join without
//! replay, the ones the cluster had before it joined.

use crate::lamport::{LamportClock, REMEMBERED_TIMES, SeenWindow, Sighting};
use crate::user_events::UserEvent;
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::{debug, warn};

#[derive(Clone, Debug)]
pub struct EventHistory {
    inner: Arc<Mutex<History>>,
}

#[derive(Debug)]
struct History {
    /// Events seen, by Lamport time; times older than the window are gone.
    seen: SeenWindow<UserEvent>,
    min_time: u64,
}

impl Default for EventHistory {
    fn default() -> Self {
        EventHistory {
            inner: Arc::new(Mutex::new(History {
                seen: SeenWindow::new(REMEMBERED_TIMES),
                min_time: 0,
            })),
        }
    }
}

impl EventHistory {
    pub fn new(min_time: u64) -> Self {
        let history = EventHistory::default();
        history.raise_min_time(min_time);
        history
    }

    /// Record the event, moving `clock` past it; false if it is a repeat, too old to
    /// tell, or below the minimum time.
    pub fn record(&self, event: &UserEvent, clock: &LamportClock) -> bool {
        let mut history = self.lock();
        if event.ltime < history.min_time {
            clock.witness(event.ltime);
            debug!(
                "ignoring event {} from time {}: below the minimum time {}",
                event.name, event.ltime, history.min_time
            );
            return false;
        }
        match history.seen.sight(clock, event.ltime, event.clone()) {
            Sighting::First => true,
            Sighting::Repeat => false,
            Sighting::TooOld => {
                warn!(
                    "received old event {} from time {} (current: {})",
                    event.name,
                    event.ltime,
                    clock.time()
                );
                false
            }
        }
    }

    /// Events another member sent us whole (a replay on join, a push-pull sync), with its
    /// event clock: our clock moves up to it, and the events not seen before are recorded
    /// and returned, to be delivered here.
    pub fn record_remote(
        &self,
        event_clock: u64,
        events: Vec<UserEvent>,
        clock: &LamportClock,
    ) -> Vec<UserEvent> {
        // As Serf: no event with the sender's current time has been sent yet.
        clock.witness(event_clock.saturating_sub(1));
        events
            .into_iter()
            .filter(|event| self.record(event, clock))
            .collect()
    }

    /// Events below `time` are ignored from now on.
    pub fn raise_min_time(&self, time: u64) {
        let mut history = self.lock();
        history.min_time = history.min_time.max(time);
    }

    /// The remembered events, oldest first.
    pub fn recent(&self) -> Vec<UserEvent> {
        self.lock().seen.keys().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, History> {
        // The history is only ever mutated through whole statements; a panic elsewhere
        // cannot leave it half-updated.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ltime: u64, name: &str) -> UserEvent {
        UserEvent {
            ltime,
            name: name.into(),
            payload: b"p".to_vec(),
            coalesce: false,
        }
    }

    #[test]
    fn events_below_the_minimum_time_are_ignored() {
        let clock = LamportClock::default();
        let history = EventHistory::new(5);
        assert!(!history.record(&event(4, "old"), &clock));
        assert!(history.record(&event(5, "new"), &clock));
        history.raise_min_time(3); // never lowered
        assert!(!history.record(&event(4, "old2"), &clock));
        history.raise_min_time(9);
        assert!(!history.record(&event(8, "x"), &clock));
        assert_eq!(history.recent(), vec![event(5, "new")]);
    }

    #[test]
    fn remote_events_are_delivered_once_and_move_the_clock() {
        let clock = LamportClock::default();
        let history = EventHistory::new(2);
        let sent = vec![event(1, "below"), event(2, "a"), event(3, "b")];
        let fresh = history.record_remote(10, sent.clone(), &clock);
        assert_eq!(fresh, vec![event(2, "a"), event(3, "b")]);
        assert!(clock.time() >= 9);
        assert!(history.record_remote(10, sent, &clock).is_empty());
    }

    #[test]
    fn recent_events_come_oldest_first_without_repeats() {
        let clock = LamportClock::default();
        let history = EventHistory::default();
        for (ltime, name) in [(3, "c"), (1, "a"), (3, "c"), (2, "b")] {
            history.record(&event(ltime, name), &clock);
        }
        let names: Vec<String> = history.recent().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
