//! Lifeguard (Dadgar et al., 2018), as memberlist runs it under Serf, on top of foca's SWIM.
//!
//! foca runs plain SWIM: fixed probe timing, fixed suspicion timeouts. Lifeguard's two
//! refinements need no change inside foca, only a view of what it does (its probe
//! notifications and its packets' headers) and control over when its timers fire:
//! - [`awareness`]: the local health multiplier. Failed probes and refuted suspicions
//!   raise it, answered probes lower it, and it stretches foca's probe interval and probe
//!   timeout, so a member that is itself slow stops accusing healthy ones.
//! - [`suspicion`]: dynamic suspicion timeouts, from long to short as other members
//!   independently confirm a suspicion.
//!
//! The node feeds it every foca packet header going out or coming in and every timer
//! foca asks for, and so does the simulation (crates/agent-sim); both act on foca
//! through [`on_foca`]. The rest is pure state: times are offsets from a clock the
//! caller picks.

mod awareness;
pub mod gossip;
pub mod on_foca;
pub(crate) mod suspicion;

use crate::identity::NodeId;
use awareness::Awareness;
use foca::{Header, Incarnation, Member, Message, ProbeNumber, State, Timer};
use gossip::SuspicionConfirmation;
use std::collections::BTreeMap;
use std::time::Duration;
use suspicion::{SuspectKey, SuspicionBounds, Suspicions};

/// A ping still unanswered after this long will never count (foca numbers its probes
/// with one byte, so old numbers come back).
const PING_MEMORY: Duration = Duration::from_secs(30);

/// A probe of ours answered directly: `member` answered after `rtt`.
#[derive(Debug, PartialEq)]
pub struct RoundTrip {
    pub member: NodeId,
    pub rtt: Duration,
}

#[derive(Default)]
pub struct Lifeguard {
    awareness: Awareness,
    /// Our pings by probe number: whom, and when.
    pings: BTreeMap<ProbeNumber, (String, Duration)>,
    suspicions: Suspicions,
    /// Our identity's name, start and incarnation as our last packet carried them: the
    /// incarnation rising under the same identity means we refuted a suspicion.
    ours: Option<(String, u64, Incarnation)>,
}

impl Lifeguard {
    /// A foca packet is leaving with this header.
    pub fn sent(&mut self, header: &Header<NodeId>, now: Duration) {
        let identity = (header.src.name.clone(), header.src.started_ms);
        if let Some((name, started_ms, incarnation)) = &self.ours
            && (name, started_ms) == (&identity.0, &identity.1)
            && header.src_incarnation > *incarnation
        {
            self.awareness.doubt();
        }
        self.ours = Some((identity.0, identity.1, header.src_incarnation));
        if let Message::Ping(probe) = header.message {
            self.pings.retain(|_, (_, sent)| now - *sent < PING_MEMORY);
            self.pings.insert(probe, (header.dst.name.clone(), now));
        }
    }

    /// foca accepted a packet with this header; an answer to one of our pings is a round
    /// trip (for the network coordinates) and a sign of our own health.
    pub fn received(&mut self, header: &Header<NodeId>, now: Duration) -> Option<RoundTrip> {
        match &header.message {
            Message::Ack(probe) => {
                let (to, sent) = self.pings.get(probe)?;
                if *to != header.src.name {
                    return None;
                }
                let rtt = now.saturating_sub(*sent);
                self.pings.remove(probe);
                self.awareness.probe_answered();
                Some(RoundTrip {
                    member: header.src.clone(),
                    rtt,
                })
            }
            // Answered through another member: the target lives, our own link is in doubt,
            // so the score stays where it is (as memberlist).
            Message::ForwardedAck { probe_number, .. } => {
                self.pings.remove(probe_number);
                None
            }
            _ => None,
        }
    }

    /// Neither `id` (probed with `probe`) nor anyone asked to reach it for us answered.
    /// foca suspects it now (unless it refuted or is down already), and we, `by`, are one
    /// of its independent suspecters: the confirmation to broadcast, while the suspicion
    /// still wants one. `members` is foca's membership state.
    pub fn probe_failed<'a>(
        &mut self,
        probe: ProbeNumber,
        id: &NodeId,
        members: impl IntoIterator<Item = &'a Member<NodeId>>,
        by: &str,
        now: Duration,
    ) -> Option<SuspicionConfirmation> {
        self.pings.remove(&probe);
        self.awareness.doubt();
        let suspect = members
            .into_iter()
            .find(|member| member.id() == id && member.state() == State::Suspect)
            .map(|member| SuspectKey::of(id, member.incarnation()))?;
        self.suspicions
            .confirm(suspect.clone(), by, now)
            .then(|| SuspicionConfirmation {
                suspect,
                by: by.to_string(),
            })
    }

    /// A timer foca asked for, and what to do with it: the delay to schedule it after
    /// (probe timers stretched by our health), or None when a suspicion holds it.
    pub fn schedule(
        &mut self,
        delay: Duration,
        timer: Timer<NodeId>,
        bounds: SuspicionBounds,
        now: Duration,
    ) -> Option<(Duration, Timer<NodeId>)> {
        match timer {
            Timer::ProbeRandomMember(_) | Timer::SendIndirectProbe { .. } => {
                Some((self.awareness.scale(delay), timer))
            }
            Timer::ChangeSuspectToDown {
                ref member_id,
                incarnation,
                ..
            } => {
                let key = SuspectKey::of(member_id, incarnation);
                self.suspicions.hold(key, timer, bounds, now);
                None
            }
            other => Some((delay, other)),
        }
    }

    /// `by` suspects a member on its own; true when worth passing on (see
    /// [`Suspicions::confirm`]).
    pub fn confirm(&mut self, suspect: SuspectKey, by: &str, now: Duration) -> bool {
        self.suspicions.confirm(suspect, by, now)
    }

    /// When the next held suspicion timer is due.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.suspicions.next_deadline()
    }

    /// The held suspicion timers due by `now`, for foca, with their confirmations.
    pub fn take_due(&mut self, now: Duration) -> Vec<(Timer<NodeId>, u32)> {
        self.suspicions.take_due(now)
    }

    /// Serf's `health_score`.
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    const MS: Duration = Duration::from_millis(1);

    fn id(name: &str) -> NodeId {
        NodeId {
            name: name.into(),
            addr: "127.0.0.1:7946".parse::<SocketAddr>().unwrap(),
            tags: Default::default(),
            started_ms: 1,
        }
    }

    fn header(
        src: &str,
        incarnation: Incarnation,
        dst: &str,
        message: Message<NodeId>,
    ) -> Header<NodeId> {
        Header {
            src: id(src),
            src_incarnation: incarnation,
            dst: id(dst),
            message,
        }
    }

    fn bounds() -> SuspicionBounds {
        SuspicionBounds {
            min: Duration::from_secs(5),
            max: Duration::from_secs(30),
            wanted: 2,
        }
    }

    #[test]
    fn a_direct_ack_is_a_round_trip_and_heals_and_a_failed_probe_hurts() {
        let mut lifeguard = Lifeguard::default();
        lifeguard.probe_failed(9, &id("x"), [], "a", MS);
        lifeguard.probe_failed(10, &id("x"), [], "a", MS);
        assert_eq!(lifeguard.health_score(), 2);
        lifeguard.sent(&header("a", 0, "b", Message::Ping(11)), 100 * MS);
        // an ack from someone else, or for another probe, proves nothing
        assert_eq!(
            lifeguard.received(&header("c", 0, "a", Message::Ack(11)), 101 * MS),
            None
        );
        assert_eq!(
            lifeguard.received(&header("b", 0, "a", Message::Ack(12)), 101 * MS),
            None
        );
        let answer = lifeguard.received(&header("b", 0, "a", Message::Ack(11)), 103 * MS);
        assert_eq!(
            answer,
            Some(RoundTrip {
                member: id("b"),
                rtt: 3 * MS
            })
        );
        assert_eq!(lifeguard.health_score(), 1);
        assert_eq!(
            lifeguard.received(&header("b", 0, "a", Message::Ack(11)), 104 * MS),
            None
        );
    }

    #[test]
    fn a_failed_probe_of_a_suspect_is_our_confirmation_until_enough_came() {
        let mut lifeguard = Lifeguard::default();
        let alive = [Member::alive(id("b"))];
        assert_eq!(lifeguard.probe_failed(1, &id("b"), &alive, "a", MS), None);
        let suspect = [Member::new(id("b"), 4, State::Suspect)];
        let key = SuspectKey::of(&id("b"), 4);
        assert_eq!(
            lifeguard.probe_failed(2, &id("b"), &suspect, "a", MS),
            Some(SuspicionConfirmation {
                suspect: key.clone(),
                by: "a".into()
            })
        );
        assert_eq!(
            lifeguard.probe_failed(3, &id("b"), &suspect, "a", MS),
            None,
            "said once"
        );
        let down = Timer::ChangeSuspectToDown {
            member_id: id("b"),
            incarnation: 4,
            token: 0,
        };
        lifeguard.schedule(MS, down, bounds(), MS);
        lifeguard.confirm(key.clone(), "c", MS);
        lifeguard.confirm(key, "d", MS);
        assert_eq!(
            lifeguard.probe_failed(4, &id("b"), &suspect, "e", MS),
            None,
            "enough"
        );
    }

    #[test]
    fn refuting_a_suspicion_about_ourselves_is_a_doubt() {
        let mut lifeguard = Lifeguard::default();
        lifeguard.sent(&header("a", 0, "b", Message::Gossip), MS);
        lifeguard.sent(&header("a", 0, "c", Message::Gossip), MS);
        assert_eq!(lifeguard.health_score(), 0);
        lifeguard.sent(&header("a", 1, "b", Message::Gossip), MS);
        assert_eq!(lifeguard.health_score(), 1);
    }

    #[test]
    fn probe_timers_stretch_with_doubt_and_suspicion_timers_are_held() {
        let mut lifeguard = Lifeguard::default();
        let probe = Timer::ProbeRandomMember(0);
        let second = Duration::from_secs(1);
        assert_eq!(
            lifeguard.schedule(second, probe.clone(), bounds(), Duration::ZERO),
            Some((second, probe.clone()))
        );
        lifeguard.probe_failed(1, &id("x"), [], "a", MS);
        lifeguard.probe_failed(2, &id("x"), [], "a", MS);
        assert_eq!(
            lifeguard.schedule(second, probe.clone(), bounds(), Duration::ZERO),
            Some((3 * second, probe))
        );
        let gossip = Timer::PeriodicGossip(0);
        assert_eq!(
            lifeguard.schedule(second, gossip.clone(), bounds(), Duration::ZERO),
            Some((second, gossip))
        );
        let down = Timer::ChangeSuspectToDown {
            member_id: id("b"),
            incarnation: 0,
            token: 0,
        };
        assert_eq!(
            lifeguard.schedule(second, down.clone(), bounds(), second),
            None
        );
        assert_eq!(lifeguard.next_deadline(), Some(31 * second));
        let key = SuspectKey::of(&id("b"), 0);
        for by in ["c", "d", "e"] {
            lifeguard.confirm(key.clone(), by, 2 * second);
        }
        assert_eq!(lifeguard.take_due(6 * second), vec![(down, 2)]);
    }
}
