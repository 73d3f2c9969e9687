//! Whether each peer answers, told the way an operator wants to read it: one warning when a
//! member stops answering, one info line when it answers again (with how long it was gone),
//! and in between one reminder per [`REMINDER_INTERVAL`] with the count of failed attempts,
//! instead of a line per heartbeat (ten a second while a member is down). Pure: the caller
//! passes the time in and logs what comes back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often a peer that stays unreachable is mentioned again.
pub const REMINDER_INTERVAL: Duration = Duration::from_secs(30);

/// What to tell the operator after one exchange with a peer.
#[derive(Debug, PartialEq)]
pub enum Report {
    /// The first failure after the peer answered (or since start).
    Lost { reason: String },
    /// Still failing, [`REMINDER_INTERVAL`] after the last report.
    StillLost {
        down_for: Duration,
        failures: u64,
        reason: String,
    },
    /// It answered again.
    Regained { down_for: Duration, failures: u64 },
}

#[derive(Default)]
pub struct Reachability {
    down: HashMap<u64, Outage>,
}

/// A peer that has not answered since `since`.
struct Outage {
    since: Instant,
    last_report: Instant,
    /// Failed attempts since `since`.
    failures: u64,
}

impl Reachability {
    /// Takes the outcome of one exchange with `peer` at `now`; says what to log, if anything.
    pub fn record(&mut self, peer: u64, outcome: Result<(), &str>, now: Instant) -> Option<Report> {
        match outcome {
            Ok(()) => self.down.remove(&peer).map(|outage| Report::Regained {
                down_for: now.saturating_duration_since(outage.since),
                failures: outage.failures,
            }),
            Err(reason) => {
                let Some(outage) = self.down.get_mut(&peer) else {
                    self.down.insert(
                        peer,
                        Outage {
                            since: now,
                            last_report: now,
                            failures: 1,
                        },
                    );
                    return Some(Report::Lost {
                        reason: reason.to_string(),
                    });
                };
                outage.failures += 1;
                if now.saturating_duration_since(outage.last_report) < REMINDER_INTERVAL {
                    return None;
                }
                outage.last_report = now;
                Some(Report::StillLost {
                    down_for: now.saturating_duration_since(outage.since),
                    failures: outage.failures,
                    reason: reason.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_answers_is_never_mentioned() {
        let mut peers = Reachability::default();
        let now = Instant::now();
        assert_eq!(peers.record(1, Ok(()), now), None);
        assert_eq!(peers.record(1, Ok(()), now), None);
    }

    #[test]
    fn an_outage_is_one_line_when_it_starts_a_reminder_per_interval_and_one_when_it_ends() {
        let mut peers = Reachability::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(
            peers.record(7, Err("refused"), at(0)),
            Some(Report::Lost {
                reason: "refused".into()
            })
        );
        // Heartbeats every 100 ms fail silently until the reminder is due.
        for ms in (100..30_000).step_by(100) {
            assert_eq!(peers.record(7, Err("refused"), at(ms)), None, "at {ms} ms");
        }
        assert_eq!(
            peers.record(7, Err("refused"), at(30_000)),
            Some(Report::StillLost {
                down_for: Duration::from_secs(30),
                failures: 301,
                reason: "refused".into()
            })
        );
        assert_eq!(peers.record(7, Err("refused"), at(30_100)), None);
        assert_eq!(
            peers.record(7, Ok(()), at(31_000)),
            Some(Report::Regained {
                down_for: Duration::from_secs(31),
                failures: 302
            })
        );
        assert_eq!(peers.record(7, Ok(()), at(31_100)), None);
    }

    #[test]
    fn peers_are_followed_apart() {
        let mut peers = Reachability::default();
        let now = Instant::now();
        assert!(peers.record(1, Err("down"), now).is_some());
        assert!(peers.record(2, Err("down"), now).is_some());
        assert!(matches!(
            peers.record(1, Ok(()), now),
            Some(Report::Regained { .. })
        ));
        assert_eq!(peers.record(2, Err("down"), now), None);
    }
}
