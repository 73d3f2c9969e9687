//! Where Lifeguard acts on foca instead of only watching it: broadcasting our confirmation
//! of a suspicion, and handing held suspicion timers back. The node task and the
//! simulation both run their foca through these, so the simulation proves the node's
//! failure detector and not a copy of it.

use super::Lifeguard;
use crate::broadcasts;
use crate::identity::NodeId;
use foca::{BroadcastHandler, Foca, PostcardCodec, ProbeNumber, Runtime, State, Timer};
use rand_foca::rngs::StdRng;
use std::time::Duration;

/// foca as the agent runs it, with the broadcast handler of the node (shared with its
/// direct broadcasts) or of the simulation (its own).
type Swim<B> = Foca<NodeId, PostcardCodec, StdRng, B>;

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
    /// suspicion foca raised, broadcast to the others while the suspicion still wants one.
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
    /// member down unless it refuted the suspicion meanwhile.
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
        due
    }
}
