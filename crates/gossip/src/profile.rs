//! `-profile lan|wan|local`: memberlist's three timing profiles, as foca settings. The
//! suspicion timeout and the retransmissions grow with the cluster, so the node asks for a
//! fresh [`foca::Config`] whenever the number of alive members changes. foca's own
//! suspicion timeout is the shortest one; Lifeguard ([`crate::lifeguard`]) holds foca's
//! timers to [`Profile::suspicion_bounds`].

use crate::lifeguard::suspicion::SuspicionBounds;
use foca::{Config, PeriodicParams};
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::time::Duration;

/// A `-profile` that is none of Serf's, in Serf's words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Unknown profile: {0}")]
pub struct UnknownProfile(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    #[default]
    Lan,
    Wan,
    Local,
}

/// memberlist's numbers for one profile (DefaultLANConfig, DefaultWANConfig,
/// DefaultLocalConfig).
struct Timings {
    probe_interval: Duration,
    probe_timeout: Duration,
    indirect_checks: usize,
    suspicion_mult: f64,
    retransmit_mult: u32,
    gossip_interval: Duration,
    gossip_nodes: usize,
    /// memberlist's full state exchange (`push_pull`), at this interval up to 32 members.
    push_pull_interval: Duration,
}

impl Profile {
    pub fn parse(name: &str) -> Result<Profile, UnknownProfile> {
        match name {
            "lan" => Ok(Profile::Lan),
            "wan" => Ok(Profile::Wan),
            "local" => Ok(Profile::Local),
            other => Err(UnknownProfile(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Lan => "lan",
            Profile::Wan => "wan",
            Profile::Local => "local",
        }
    }

    fn timings(self) -> Timings {
        match self {
            Profile::Lan => Timings {
                probe_interval: Duration::from_secs(1),
                probe_timeout: Duration::from_millis(500),
                indirect_checks: 3,
                suspicion_mult: 4.0,
                retransmit_mult: 4,
                gossip_interval: Duration::from_millis(200),
                gossip_nodes: 3,
                push_pull_interval: Duration::from_secs(30),
            },
            Profile::Wan => Timings {
                probe_interval: Duration::from_secs(5),
                probe_timeout: Duration::from_secs(3),
                indirect_checks: 3,
                suspicion_mult: 6.0,
                retransmit_mult: 4,
                gossip_interval: Duration::from_millis(500),
                gossip_nodes: 4,
                push_pull_interval: Duration::from_secs(60),
            },
            Profile::Local => Timings {
                probe_interval: Duration::from_secs(1),
                probe_timeout: Duration::from_millis(200),
                indirect_checks: 1,
                suspicion_mult: 3.0,
                retransmit_mult: 2,
                gossip_interval: Duration::from_millis(100),
                gossip_nodes: 3,
                push_pull_interval: Duration::from_secs(15),
            },
        }
    }

    /// foca's settings for this profile in a cluster of `alive_members`.
    pub fn swim_config(self, alive_members: usize) -> Config {
        let t = self.timings();
        let size = cluster_size(alive_members);
        // Start from foca's LAN settings (memberlist's LAN profile) for what memberlist has
        // no knob for, e.g. how long down members are remembered.
        let mut config = Config::new_lan(size);
        config.probe_period = t.probe_interval;
        config.probe_rtt = t.probe_timeout;
        config.num_indirect_probes =
            NonZeroUsize::new(t.indirect_checks).unwrap_or(NonZeroUsize::MIN);
        config.max_transmissions = retransmit_limit(t.retransmit_mult, size);
        config.suspect_to_down_after = suspicion_timeout(t.suspicion_mult, size, t.probe_interval);
        config.periodic_gossip = Some(PeriodicParams {
            frequency: t.gossip_interval,
            num_members: NonZeroUsize::new(t.gossip_nodes).unwrap_or(NonZeroUsize::MIN),
        });
        // The node's push-pull sync does what foca's periodic announce would (a random
        // member's view, there only as much of it as fits one packet).
        config.periodic_announce = None;
        config
    }

    /// How often a member syncs its whole state with another (`push_pull`) in a cluster of
    /// `alive_members`. As memberlist: one sync carries every member, so past 32 members
    /// the interval grows by one more interval each time the cluster doubles, keeping each
    /// member's share of the bytes at O(log n) per interval.
    pub fn push_pull_interval(self, alive_members: usize) -> Duration {
        const SCALE_FROM: f64 = 32.0;
        let interval = self.timings().push_pull_interval;
        let n = alive_members as f64;
        if n <= SCALE_FROM {
            return interval;
        }
        let multiplier = (n.log2() - SCALE_FROM.log2()).ceil() + 1.0;
        interval.mul_f64(multiplier)
    }
}

/// memberlist's `SuspicionMaxTimeoutMult`, the same in its three profiles: an unconfirmed
/// suspicion lasts six times as long as a fully confirmed one.
const SUSPICION_MAX_MULT: u32 = 6;

impl Profile {
    /// Lifeguard's timeouts for a suspicion raised in a cluster of `alive_members`
    /// (memberlist's): the SWIM timeout at least, six times it at most, and
    /// `suspicion_mult − 2` confirmations to get to the least, none in clusters too small
    /// to have that many other members to confirm.
    pub fn suspicion_bounds(self, alive_members: usize) -> SuspicionBounds {
        let t = self.timings();
        let size = cluster_size(alive_members);
        let min = suspicion_timeout(t.suspicion_mult, size, t.probe_interval);
        let wanted = t.suspicion_mult as u32 - 2;
        SuspicionBounds {
            min,
            max: min * SUSPICION_MAX_MULT,
            wanted: if size.get().saturating_sub(2) < wanted {
                0
            } else {
                wanted
            },
        }
    }
}

/// The cluster size memberlist's formulas take: at least 1 (ourselves).
fn cluster_size(alive_members: usize) -> NonZeroU32 {
    u32::try_from(alive_members)
        .ok()
        .and_then(NonZeroU32::new)
        .unwrap_or(NonZeroU32::MIN)
}

/// memberlist: mult × ceil(log10(n + 1)). An item foca disseminates (a membership update,
/// a user event, a query) rides on the next packets that leave, whatever their
/// destination, until it has been sent this many times. foca's `new_lan` rounds
/// `4 × log10(n + 1)` down instead: 2 for three members, which a probe ping and its ack to
/// one member can spend within one gossip interval; the third member then never saw it
/// (user events and query answers were lost that way).
fn retransmit_limit(mult: u32, size: NonZeroU32) -> NonZeroU8 {
    let scale = f64::from(size.get().saturating_add(1)).log10().ceil() as u32;
    let limit = mult.saturating_mul(scale).clamp(1, u32::from(u8::MAX));
    NonZeroU8::new(limit as u8).unwrap_or(NonZeroU8::MIN)
}

/// memberlist: mult × max(1, log10 n) × probe interval.
fn suspicion_timeout(mult: f64, size: NonZeroU32, probe_interval: Duration) -> Duration {
    let scale = f64::from(size.get()).log10().max(1.0);
    probe_interval.mul_f64(mult * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused_as_serf() {
        for profile in [Profile::Lan, Profile::Wan, Profile::Local] {
            assert_eq!(Profile::parse(profile.name()), Ok(profile));
        }
        assert_eq!(
            Profile::parse("fast").unwrap_err().to_string(),
            "Unknown profile: fast"
        );
    }

    #[test]
    fn lan_matches_memberlist() {
        let config = Profile::Lan.swim_config(1);
        assert_eq!(config.probe_period, Duration::from_secs(1));
        assert_eq!(config.probe_rtt, Duration::from_millis(500));
        assert_eq!(config.num_indirect_probes.get(), 3);
        assert_eq!(config.suspect_to_down_after, Duration::from_secs(4));
        assert_eq!(config.max_transmissions.get(), 4);
    }

    #[test]
    fn local_detects_faster_and_wan_slower() {
        let local = Profile::Local.swim_config(5);
        let wan = Profile::Wan.swim_config(5);
        assert_eq!(local.probe_rtt, Duration::from_millis(200));
        assert_eq!(local.suspect_to_down_after, Duration::from_secs(3));
        assert_eq!(local.num_indirect_probes.get(), 1);
        assert_eq!(wan.probe_period, Duration::from_secs(5));
        assert_eq!(wan.suspect_to_down_after, Duration::from_secs(30));
    }

    #[test]
    fn suspicion_and_retransmissions_grow_with_the_cluster() {
        let big = Profile::Lan.swim_config(1000);
        assert_eq!(big.suspect_to_down_after, Duration::from_secs(12));
        assert_eq!(big.max_transmissions.get(), 16);
        assert_eq!(Profile::Local.swim_config(0).max_transmissions.get(), 2);
    }

    #[test]
    fn suspicions_start_six_times_longer_and_small_clusters_need_no_confirmation() {
        let twenty = Profile::Lan.suspicion_bounds(20);
        assert_eq!(
            twenty.min,
            Duration::from_secs(1).mul_f64(4.0 * 20f64.log10())
        );
        assert_eq!(twenty.max, twenty.min * 6);
        assert_eq!(twenty.wanted, 2);
        assert_eq!(Profile::Lan.suspicion_bounds(3).wanted, 0);
        assert_eq!(Profile::Lan.suspicion_bounds(4).wanted, 2);
        assert_eq!(Profile::Wan.suspicion_bounds(10).wanted, 4);
        assert_eq!(Profile::Local.suspicion_bounds(10).wanted, 1);
    }

    #[test]
    fn push_pull_slows_down_past_32_members_as_memberlist() {
        assert_eq!(Profile::Lan.push_pull_interval(3), Duration::from_secs(30));
        assert_eq!(Profile::Lan.push_pull_interval(32), Duration::from_secs(30));
        assert_eq!(Profile::Lan.push_pull_interval(33), Duration::from_secs(60));
        assert_eq!(Profile::Lan.push_pull_interval(64), Duration::from_secs(60));
        assert_eq!(
            Profile::Lan.push_pull_interval(1000),
            Duration::from_secs(180)
        );
        assert_eq!(
            Profile::Local.push_pull_interval(3),
            Duration::from_secs(15)
        );
        assert_eq!(Profile::Wan.push_pull_interval(3), Duration::from_secs(60));
        assert!(Profile::Lan.swim_config(3).periodic_announce.is_none());
    }
}
