//! Lifeguard's dynamic suspicion: a suspected member is declared failed after a timeout
//! that starts long and shrinks as other members independently confirm the suspicion.
//!
//! One member failing to reach another is weak evidence (the fault may be its own); several
//! members failing to reach it, each through its own probe, is strong. So a suspicion
//! starts at `max` and, with each independent confirmation up to the `wanted` number,
//! falls logarithmically to `min`; memberlist's `min` is the fixed SWIM timeout, `max` six
//! times it. foca runs fixed suspicion timeouts, so the node holds foca's
//! `ChangeSuspectToDown` timer here and hands it back at the dynamic deadline.
//!
//! Confirmations are the [`super::gossip::SuspicionConfirmation`] broadcasts: each member whose own
//! probe of the suspect failed sends one (foca's gossip says a member is suspect, but not
//! who suspects it). They can arrive before foca suspects the member here; they are kept
//! until then. Times are offsets from a clock of the caller's choosing (the node's start,
//! the simulation's zero).

use crate::identity::NodeId;
use foca::{Incarnation, Timer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Confirmations for a suspicion foca has not raised here are forgotten after this long
/// (the suspect refuted it before the news reached us, or it was declared down).
const UNHELD_PATIENCE: Duration = Duration::from_secs(120);

/// The timeouts of one suspicion, fixed when it starts (they depend on the cluster size).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SuspicionBounds {
    pub min: Duration,
    pub max: Duration,
    /// Independent confirmations that bring the timeout down to `min` (0: it is `min`).
    pub wanted: u32,
}

impl SuspicionBounds {
    /// The whole timeout of a suspicion confirmed `confirmations` times: from `max` down
    /// to `min` as log(confirmations + 1) / log(wanted + 1), whole milliseconds.
    pub fn timeout(&self, confirmations: u32) -> Duration {
        if self.wanted == 0 {
            return self.min;
        }
        let fraction =
            f64::from(confirmations.min(self.wanted)).ln_1p() / f64::from(self.wanted).ln_1p();
        let span = (self.max.saturating_sub(self.min)).as_secs_f64();
        let seconds = self.max.as_secs_f64() - fraction * span;
        Duration::from_millis((seconds * 1000.0).floor() as u64).max(self.min)
    }
}

/// Which suspicion: a member identity at one incarnation (refuting it takes a new one).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SuspectKey {
    pub name: String,
    pub started_ms: u64,
    pub incarnation: Incarnation,
}

impl SuspectKey {
    pub fn of(id: &NodeId, incarnation: Incarnation) -> Self {
        SuspectKey {
            name: id.name.clone(),
            started_ms: id.started_ms,
            incarnation,
        }
    }
}

/// foca's timer for a suspicion raised here, and when and how it started.
struct Held {
    started: Duration,
    bounds: SuspicionBounds,
    timer: Timer<NodeId>,
}

struct Suspicion {
    held: Option<Held>,
    /// Everyone who suspected the member on its own, the first one (who raised it)
    /// included; we are among them when our probe failed too.
    suspecters: BTreeSet<String>,
    first_heard: Duration,
}

impl Suspicion {
    /// The first suspecter raised the suspicion; the others confirm it.
    fn confirmations(&self) -> u32 {
        u32::try_from(self.suspecters.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    fn deadline(&self) -> Option<Duration> {
        let held = self.held.as_ref()?;
        Some(held.started + held.bounds.timeout(self.confirmations()))
    }

    fn has_enough(&self) -> bool {
        self.held
            .as_ref()
            .is_some_and(|held| self.confirmations() >= held.bounds.wanted)
    }
}

#[derive(Default)]
pub struct Suspicions {
    open: BTreeMap<SuspectKey, Suspicion>,
    /// The held suspicions by deadline: the driver asks for the next one after every
    /// datagram, and while a rack is down a member of a large cluster holds a hundred.
    by_deadline: BTreeSet<(Duration, SuspectKey)>,
}

impl Suspicions {
    /// foca suspects `key`'s member here and asked for `timer` after its fixed timeout:
    /// keep it until the dynamic deadline. A repeat (foca re-arms the timer when its own
    /// probe fails again) keeps the suspicion's start and takes the newer timer.
    pub fn hold(
        &mut self,
        key: SuspectKey,
        timer: Timer<NodeId>,
        bounds: SuspicionBounds,
        now: Duration,
    ) {
        let suspicion = self.open.entry(key.clone()).or_insert_with(|| Suspicion {
            held: None,
            suspecters: BTreeSet::new(),
            first_heard: now,
        });
        match &mut suspicion.held {
            Some(held) => held.timer = timer,
            None => {
                suspicion.held = Some(Held {
                    started: now,
                    bounds,
                    timer,
                });
                let deadline = suspicion.deadline().expect("held");
                self.by_deadline.insert((deadline, key));
            }
        }
    }

    /// `by` suspects `key`'s member on its own. True when that is news that still moves
    /// the deadline (memberlist stops passing confirmations on once enough arrived).
    pub fn confirm(&mut self, key: SuspectKey, by: &str, now: Duration) -> bool {
        let suspicion = self.open.entry(key.clone()).or_insert_with(|| Suspicion {
            held: None,
            suspecters: BTreeSet::new(),
            first_heard: now,
        });
        if suspicion.has_enough() {
            return false;
        }
        let before = suspicion.deadline();
        if !suspicion.suspecters.insert(by.to_string()) {
            return false;
        }
        if let Some(before) = before {
            let after = suspicion.deadline().expect("held");
            self.by_deadline.remove(&(before, key.clone()));
            self.by_deadline.insert((after, key));
        }
        true
    }

    pub fn next_deadline(&self) -> Option<Duration> {
        self.by_deadline.first().map(|&(deadline, _)| deadline)
    }

    /// foca's timers whose deadline has come, with the confirmations each suspicion got,
    /// to hand back to foca (it declares the member down unless the suspicion was refuted
    /// meanwhile); and forgets confirmations that never met a suspicion here.
    pub fn take_due(&mut self, now: Duration) -> Vec<(Timer<NodeId>, u32)> {
        let due: Vec<SuspectKey> = self
            .open
            .iter()
            .filter(|(_, suspicion)| match suspicion.deadline() {
                Some(deadline) => deadline <= now,
                None => now.saturating_sub(suspicion.first_heard) >= UNHELD_PATIENCE,
            })
            .map(|(key, _)| key.clone())
            .collect();
        due.into_iter()
            .filter_map(|key| {
                let suspicion = self.open.remove(&key)?;
                if let Some(deadline) = suspicion.deadline() {
                    self.by_deadline.remove(&(deadline, key));
                }
                let confirmations = suspicion.confirmations();
                Some((suspicion.held?.timer, confirmations))
            })
            .collect()
    }

    /// How many confirmations the suspicion of `key` has; the logs get theirs from
    /// `take_due`, so only the tests ask.
    #[cfg(test)]
    fn confirmations(&self, key: &SuspectKey) -> Option<u32> {
        self.open.get(key).map(Suspicion::confirmations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    const SECOND: Duration = Duration::from_secs(1);

    fn lan_bounds() -> SuspicionBounds {
        // memberlist's LAN numbers for 20 members: 4 × log10(20) s, six times that, 4 − 2
        SuspicionBounds {
            min: Duration::from_millis(5204),
            max: Duration::from_millis(31224),
            wanted: 2,
        }
    }

    fn suspect(name: &str) -> (SuspectKey, Timer<NodeId>) {
        let id = NodeId {
            name: name.into(),
            addr: "127.0.0.1:7946".parse::<SocketAddr>().unwrap(),
            tags: Default::default(),
            started_ms: 7,
        };
        let timer = Timer::ChangeSuspectToDown {
            member_id: id.clone(),
            incarnation: 3,
            token: 0,
        };
        (SuspectKey::of(&id, 3), timer)
    }

    #[test]
    fn the_timeout_falls_from_max_to_min_as_confirmations_arrive() {
        let bounds = lan_bounds();
        assert_eq!(bounds.timeout(0), bounds.max);
        // log 2 / log 3 of the way down
        assert_eq!(bounds.timeout(1), Duration::from_millis(14807));
        assert_eq!(bounds.timeout(2), bounds.min);
        assert_eq!(bounds.timeout(9), bounds.min);
        let small = SuspicionBounds {
            wanted: 0,
            ..bounds
        };
        assert_eq!(small.timeout(0), small.min);
    }

    #[test]
    fn a_lone_suspicion_waits_for_max_and_confirmations_bring_it_forward() {
        let (key, timer) = suspect("b");
        let mut suspicions = Suspicions::default();
        suspicions.hold(key.clone(), timer.clone(), lan_bounds(), SECOND);
        assert_eq!(suspicions.next_deadline(), Some(SECOND + lan_bounds().max));
        // the member that raised it, then two others on their own
        assert!(suspicions.confirm(key.clone(), "a", 2 * SECOND));
        assert!(suspicions.confirm(key.clone(), "c", 2 * SECOND));
        assert!(
            !suspicions.confirm(key.clone(), "c", 2 * SECOND),
            "a repeat is no news"
        );
        assert_eq!(
            suspicions.next_deadline(),
            Some(SECOND + Duration::from_millis(14807))
        );
        assert!(suspicions.confirm(key.clone(), "d", 3 * SECOND));
        assert!(
            !suspicions.confirm(key.clone(), "e", 3 * SECOND),
            "enough already"
        );
        assert_eq!(suspicions.next_deadline(), Some(SECOND + lan_bounds().min));
        assert!(suspicions.take_due(6 * SECOND).is_empty());
        assert_eq!(suspicions.take_due(7 * SECOND), vec![(timer, 2)]);
        assert_eq!(suspicions.next_deadline(), None);
    }

    #[test]
    fn confirmations_heard_before_the_suspicion_count_and_stray_ones_are_forgotten() {
        let (key, timer) = suspect("b");
        let mut suspicions = Suspicions::default();
        suspicions.confirm(key.clone(), "a", Duration::ZERO);
        suspicions.confirm(key.clone(), "c", Duration::ZERO);
        suspicions.hold(key.clone(), timer, lan_bounds(), SECOND);
        assert_eq!(suspicions.confirmations(&key), Some(1));

        let (stray, _) = suspect("x");
        suspicions.confirm(stray.clone(), "a", SECOND);
        assert!(suspicions.take_due(SECOND + UNHELD_PATIENCE).len() == 1);
        assert_eq!(suspicions.confirmations(&stray), None);
    }

    #[test]
    fn a_rearmed_timer_keeps_the_start_and_takes_the_newer_token() {
        let (key, timer) = suspect("b");
        let Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            ..
        } = timer.clone()
        else {
            unreachable!()
        };
        let newer = Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            token: 1,
        };
        let mut suspicions = Suspicions::default();
        suspicions.hold(key.clone(), timer, lan_bounds(), SECOND);
        suspicions.hold(key, newer.clone(), lan_bounds(), 3 * SECOND);
        assert_eq!(
            suspicions.take_due(SECOND + lan_bounds().max),
            vec![(newer, 0)]
        );
    }

    #[test]
    fn the_next_deadline_is_the_earliest_of_every_held_suspicion() {
        // Many suspicions held, confirmed and taken in a scrambled order: the index
        // answers what a scan of all of them would.
        let mut suspicions = Suspicions::default();
        let mut state = 7u64;
        let mut next = |below: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % below
        };
        for step in 0..2000u64 {
            let now = Duration::from_millis(step * 50);
            let (key, timer) = suspect(&format!("m{}", next(40)));
            match next(4) {
                0 => suspicions.hold(key, timer, lan_bounds(), now),
                1 | 2 => {
                    suspicions.confirm(key, &format!("by{}", next(5)), now);
                }
                _ => {
                    suspicions.take_due(now);
                }
            }
            let scanned = suspicions
                .open
                .values()
                .filter_map(Suspicion::deadline)
                .min();
            assert_eq!(suspicions.next_deadline(), scanned, "after step {step}");
            assert_eq!(
                suspicions.by_deadline.len(),
                suspicions
                    .open
                    .values()
                    .filter(|s| s.held.is_some())
                    .count()
            );
        }
    }
}
