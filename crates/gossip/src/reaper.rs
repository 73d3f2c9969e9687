//! Reaping and reconnecting (Serf's serf/config.go timings): a failed member is tried
//! again now and then, in case it comes back, and dropped from the member list once it
//! has been failed for `reconnect_timeout`; a left member is dropped after
//! `tombstone_timeout`. Removal is Serf's `member-reap` event.
//!
//! Pure bookkeeping: the node tells the reaper when members change and asks it, on its
//! reap and reconnect ticks, whom to drop and whom to try.

use crate::membership::{MemberRecord, MemberStatus};
use rand_foca::{Rng, RngExt};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReapTimeouts {
    /// How often the member list is checked for members to drop (Serf: 15 s, fixed).
    pub reap_interval: Duration,
    pub reconnect_interval: Duration,
    pub reconnect_timeout: Duration,
    pub tombstone_timeout: Duration,
}

impl Default for ReapTimeouts {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        ReapTimeouts {
            reap_interval: Duration::from_secs(15),
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: DAY,
            tombstone_timeout: DAY,
        }
    }
}

impl ReapTimeouts {
    /// Serf's defaults, with what the configuration sets instead (its `reconnect_interval`,
    /// `reconnect_timeout` and `tombstone_timeout`).
    pub fn configured(
        reconnect_interval: Option<Duration>,
        reconnect_timeout: Option<Duration>,
        tombstone_timeout: Option<Duration>,
    ) -> Self {
        let defaults = ReapTimeouts::default();
        ReapTimeouts {
            reconnect_interval: reconnect_interval.unwrap_or(defaults.reconnect_interval),
            reconnect_timeout: reconnect_timeout.unwrap_or(defaults.reconnect_timeout),
            tombstone_timeout: tombstone_timeout.unwrap_or(defaults.tombstone_timeout),
            ..defaults
        }
    }
}

pub struct Reaper {
    timeouts: ReapTimeouts,
    /// Failed and left members, with their address and since when they have been so.
    gone: BTreeMap<String, (MemberStatus, SocketAddr, Instant)>,
}

impl Reaper {
    pub fn new(timeouts: ReapTimeouts) -> Self {
        Reaper {
            timeouts,
            gone: BTreeMap::new(),
        }
    }

    pub fn timeouts(&self) -> ReapTimeouts {
        self.timeouts
    }

    /// A member's record after a change (`None`: it is no longer listed).
    pub fn observe(&mut self, name: &str, record: Option<&MemberRecord>, now: Instant) {
        match record {
            Some(record) if matches!(record.status, MemberStatus::Failed | MemberStatus::Left) => {
                let unchanged = self
                    .gone
                    .get(name)
                    .is_some_and(|(status, _, _)| *status == record.status);
                if !unchanged {
                    self.gone
                        .insert(name.to_string(), (record.status, record.id.addr, now));
                }
            }
            _ => {
                self.gone.remove(name);
            }
        }
    }

    /// Since when `name` has been failed, if it is.
    pub fn failed_since(&self, name: &str) -> Option<Instant> {
        match self.gone.get(name) {
            Some((MemberStatus::Failed, _, since)) => Some(*since),
            _ => None,
        }
    }

    /// Members gone long enough to be dropped.
    pub fn due(&self, now: Instant) -> Vec<String> {
        self.gone
            .iter()
            .filter(|(_, (status, _, since))| {
                let timeout = match status {
                    MemberStatus::Failed => self.timeouts.reconnect_timeout,
                    _ => self.timeouts.tombstone_timeout,
                };
                now.duration_since(*since) >= timeout
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// One failed member to try again, or none. As Serf: tried with probability
    /// failed/alive, so a large cluster with a few failures does not keep knocking.
    pub fn reconnect_candidate(
        &self,
        alive: usize,
        rng: &mut impl Rng,
    ) -> Option<(String, SocketAddr)> {
        let failed: Vec<(&String, SocketAddr)> = self
            .gone
            .iter()
            .filter(|(_, (status, _, _))| *status == MemberStatus::Failed)
            .map(|(name, (_, addr, _))| (name, *addr))
            .collect();
        if failed.is_empty() {
            return None;
        }
        let probability = failed.len() as f64 / alive.max(1) as f64;
        if !rng.random_bool(probability.min(1.0)) {
            return None;
        }
        let (name, addr) = failed[rng.random_range(0..failed.len())];
        Some((name.clone(), addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeId;
    use rand_foca::SeedableRng;
    use rand_foca::rngs::StdRng;

    fn record(name: &str, status: MemberStatus) -> MemberRecord {
        MemberRecord {
            id: NodeId {
                name: name.into(),
                addr: "127.0.0.1:9".parse().unwrap(),
                tags: Default::default(),
                started_ms: 1,
            },
            status,
        }
    }

    fn reaper() -> Reaper {
        Reaper::new(ReapTimeouts {
            reconnect_timeout: Duration::from_secs(10),
            tombstone_timeout: Duration::from_secs(20),
            ..ReapTimeouts::default()
        })
    }

    #[test]
    fn failed_and_left_members_are_due_after_their_timeouts() {
        let mut reaper = reaper();
        let start = Instant::now();
        reaper.observe("f", Some(&record("f", MemberStatus::Failed)), start);
        reaper.observe("l", Some(&record("l", MemberStatus::Left)), start);
        reaper.observe("a", Some(&record("a", MemberStatus::Alive)), start);
        assert!(reaper.due(start + Duration::from_secs(9)).is_empty());
        assert_eq!(reaper.due(start + Duration::from_secs(10)), vec!["f"]);
        assert_eq!(reaper.due(start + Duration::from_secs(20)), vec!["f", "l"]);
    }

    #[test]
    fn coming_back_or_leaving_restarts_the_count() {
        let mut reaper = reaper();
        let start = Instant::now();
        reaper.observe("f", Some(&record("f", MemberStatus::Failed)), start);
        // the same status again does not move the start
        let later = start + Duration::from_secs(5);
        reaper.observe("f", Some(&record("f", MemberStatus::Failed)), later);
        assert_eq!(reaper.due(start + Duration::from_secs(10)), vec!["f"]);
        // force-left: now a tombstone, counted from then
        reaper.observe("f", Some(&record("f", MemberStatus::Left)), later);
        assert!(reaper.due(start + Duration::from_secs(24)).is_empty());
        reaper.observe("f", Some(&record("f", MemberStatus::Alive)), later);
        assert!(reaper.due(start + Duration::from_secs(100)).is_empty());
        reaper.observe("f", Some(&record("f", MemberStatus::Failed)), later);
        reaper.observe("f", None, later);
        assert!(reaper.due(start + Duration::from_secs(100)).is_empty());
    }

    #[test]
    fn reconnects_pick_failed_members_only() {
        let mut reaper = reaper();
        let mut rng = StdRng::seed_from_u64(7);
        let now = Instant::now();
        assert_eq!(reaper.reconnect_candidate(1, &mut rng), None);
        reaper.observe("l", Some(&record("l", MemberStatus::Left)), now);
        assert_eq!(reaper.reconnect_candidate(1, &mut rng), None);
        reaper.observe("f", Some(&record("f", MemberStatus::Failed)), now);
        // one failed, one alive: probability 1
        assert_eq!(
            reaper.reconnect_candidate(1, &mut rng),
            Some(("f".to_string(), "127.0.0.1:9".parse().unwrap()))
        );
    }
}
