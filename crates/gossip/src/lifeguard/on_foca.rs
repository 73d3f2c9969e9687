//! Where Lifeguard acts on foca instead of only watching it: broadcasting our confirmation
//! of a suspicion, and handing held suspicion timers back. The node task and the
//! simulation both run their foca through these, so the simulation proves the node's
//! failure detector and not a copy of it.

use super::Lifeguard;
use crate::broadcasts;
use crate::identity::NodeId;
use crate::swim::Swim;
use foca::{BroadcastHandler, ProbeNumber, Runtime, State, Timer};
use std::time::Duration;

/// A member declared failed here because its suspicion's deadline came.
#[derive(Debug, PartialEq)]
pub struct Declared {
    pub member: NodeId,
    /// Other members' independent confirmations of the suspicion by then.
    pub confirmations: u32,
}

/// What handing the due suspicion timers back to foca did.
#[derive(Debug, Default)]
pub struct DueSuspects {
    /// The suspects still suspect at the incarnation suspected, which foca declared down;
    /// the others refuted the suspicion or were declared down by gossip meanwhile.
    pub declared: Vec<Declared>,
    /// foca refusing one of its own timers (for the log).
    pub errors: Vec<foca::Error>,
}

impl Lifeguard {
    /// Our own probe of `id` failed: a doubt about ourselves, and our confirmation of the
    /// suspicion foca raised, gossiped to the others while the suspicion still wants one.
    pub fn probe_failed_in<B>(
        &mut self,
        foca: &mut Swim<B>,
        probe: ProbeNumber,
        id: &NodeId,
        now: Duration,
    ) -> Result<(), foca::Error>
    where
        B: BroadcastHandler<NodeId>,
        B::Error: core::error::Error + 'static,
    {
        let by = foca.identity().name.clone();
        let members = foca.iter_membership_state();
        match self.probe_failed(probe, id, members, &by, now) {
            Some(confirmation) => foca
                .add_broadcast(&broadcasts::suspicion_confirmation(&confirmation))
                .map(|_| ()),
            None => Ok(()),
        }
    }

    /// The held suspicion timers due by `now` go back to foca, which declares each
    /// member down unless it refuted the suspicion meanwhile; a member declared down here
    /// is news sent at once to a few members rather than at the next gossip tick.
    pub fn declare_due_suspects<B>(
        &mut self,
        foca: &mut Swim<B>,
        mut runtime: impl Runtime<NodeId>,
        now: Duration,
    ) -> DueSuspects
    where
        B: BroadcastHandler<NodeId>,
        B::Error: core::error::Error + 'static,
    {
        let mut due = DueSuspects::default();
        for (timer, confirmations) in self.take_due(now) {
            if let Timer::ChangeSuspectToDown {
                member_id,
                incarnation,
                ..
            } = &timer
                && foca.iter_membership_state().any(|member| {
                    member.id() == member_id
                        && member.incarnation() == *incarnation
                        && member.state() == State::Suspect
                })
            {
                due.declared.push(Declared {
                    member: member_id.clone(),
                    confirmations,
                });
            }
            if let Err(e) = foca.handle_timer(timer, &mut runtime) {
                due.errors.push(e);
            }
        }
        if !due.declared.is_empty()
            && let Err(e) = foca.gossip(&mut runtime)
        {
            due.errors.push(e);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcasts::ClusterGossip;
    use crate::deliver::Inbox;
    use crate::lamport::LamportClock;
    use crate::lifeguard::gossip::{ConfirmationGossip, SuspicionConfirmation};
    use crate::lifeguard::suspicion::SuspicionBounds;
    use crate::profile::Profile;
    use crate::query::gossip::QueryGossip;
    use crate::user_events::UserEventGossip;
    use foca::{AccumulatingRuntime, Foca, Member, OwnedNotification, PostcardCodec};
    use rand_foca::SeedableRng;
    use rand_foca::rngs::StdRng;
    use std::sync::Arc;

    const SECOND: Duration = Duration::from_secs(1);

    fn id(name: &str, last: u8) -> NodeId {
        NodeId {
            name: name.into(),
            addr: ([10, 0, 0, last], 7946).into(),
            tags: Default::default(),
            started_ms: 1,
        }
    }

    fn bounds() -> SuspicionBounds {
        SuspicionBounds {
            min: 5 * SECOND,
            max: 30 * SECOND,
            wanted: 2,
        }
    }

    /// a, knowing b, whose probes of b go unanswered: foca's timers are fired at once
    /// (through Lifeguard, as the node schedules them) until a holds a suspicion of b.
    fn suspecting_b() -> (
        Swim<ClusterGossip>,
        AccumulatingRuntime<NodeId>,
        Lifeguard,
        Inbox<SuspicionConfirmation>,
    ) {
        let delivered = Inbox::default();
        let gossip = ClusterGossip {
            user_events: UserEventGossip::new(Arc::new(LamportClock::default()), Box::new(drop)),
            queries: QueryGossip::new(Arc::new(LamportClock::default()), Box::new(drop)),
            confirmations: ConfirmationGossip::new(delivered.sink()),
            urgent: Default::default(),
        };
        let mut foca = Foca::with_custom_broadcast(
            id("a", 1),
            Profile::Lan.swim_config(2),
            StdRng::seed_from_u64(1),
            PostcardCodec,
            gossip,
        );
        let mut runtime = AccumulatingRuntime::new();
        let mut lifeguard = Lifeguard::default();
        foca.apply_many([Member::alive(id("b", 2))].into_iter(), false, &mut runtime)
            .unwrap();
        for _ in 0..100 {
            while runtime.to_send().is_some() {}
            while let Some(notification) = runtime.to_notify() {
                if let OwnedNotification::ProbeFailed(probe, failed) = notification {
                    lifeguard
                        .probe_failed_in(&mut foca, probe, &failed, SECOND)
                        .unwrap();
                }
            }
            if lifeguard.next_deadline().is_some() {
                return (foca, runtime, lifeguard, delivered);
            }
            let timers: Vec<_> = std::iter::from_fn(|| runtime.to_schedule()).collect();
            for (delay, timer) in timers {
                if let Some((_, timer)) = lifeguard.schedule(delay, timer, bounds(), SECOND) {
                    foca.handle_timer(timer, &mut runtime).unwrap();
                }
            }
        }
        panic!("a never suspected b");
    }

    #[test]
    fn a_failed_probe_is_broadcast_and_the_held_suspicion_declares_the_member_when_due() {
        let (mut foca, mut runtime, mut lifeguard, delivered) = suspecting_b();
        let ours = delivered
            .pop()
            .expect("our confirmation went to foca's gossip");
        assert_eq!(ours.by, "a");
        assert_eq!(ours.suspect.name, "b");
        let lone = SECOND + bounds().max;
        assert_eq!(lifeguard.next_deadline(), Some(lone));
        let early = lifeguard.declare_due_suspects(&mut foca, &mut runtime, lone - SECOND);
        assert!(early.declared.is_empty() && early.errors.is_empty());
        let due = lifeguard.declare_due_suspects(&mut foca, &mut runtime, lone);
        assert!(due.errors.is_empty(), "{:?}", due.errors);
        assert_eq!(
            due.declared,
            vec![Declared {
                member: id("b", 2),
                confirmations: 0
            }]
        );
        assert!(
            std::iter::from_fn(|| runtime.to_notify())
                .any(|n| n == OwnedNotification::MemberDown(id("b", 2)))
        );
    }

    #[test]
    fn a_refuted_suspicion_declares_nobody_when_its_timer_comes_back() {
        let (mut foca, mut runtime, mut lifeguard, _) = suspecting_b();
        // b refutes: a newer incarnation, alive
        foca.apply_many(
            [Member::new(id("b", 2), 1, State::Alive)].into_iter(),
            false,
            &mut runtime,
        )
        .unwrap();
        let due = lifeguard.declare_due_suspects(&mut foca, &mut runtime, SECOND + bounds().max);
        assert!(due.declared.is_empty() && due.errors.is_empty());
        assert_eq!(foca.iter_members().count(), 1, "b is still up");
    }
}
