//! Push-pull anti-entropy (Serf's state exchange): every push-pull interval a member sends
//! one random alive member its whole view (foca's membership, suspect and down members
//! included; the members it knows left, as Serf's sync carries its left members; its
//! recent user events with its event clock); the receiver merges it and answers once
//! with its own. Gossip reaches almost every member within seconds, but a
//! member that missed an item would otherwise wait for foca to probe the member concerned;
//! with this it learns it within about one interval from whoever it syncs with.
//!
//! The message goes over the stream transport (a thousand members do not fit a datagram)
//! as wire kind 9. This module builds, bounds, encodes and merges it; the node task and the
//! simulation (crates/agent-sim) both call it, with their own transport.

use crate::identity::NodeId;
use crate::membership::{MemberStatus, MemberTable};
use crate::user_events::UserEvent;
use crate::wire;
use foca::{BroadcastHandler, Codec, Foca, Member, Runtime, State};
use rand_foca::RngExt;
use rand_foca::seq::IteratorRandom;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The largest encoded message: the transport's frame limit, less room for the kind byte,
/// the seal (version, nonce and tag) and msgpack's array headers.
const BUDGET: usize = wire::MAX_FRAME - 1024;

/// One side of a sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMessage {
    /// Where the sender gossips: the answer goes there (a stream frame arrives from an
    /// ephemeral port).
    pub sender: SocketAddr,
    /// Set on the answer to a sync, which is not answered again.
    pub reply: bool,
    /// foca's view of every member it knows, down ones included.
    pub members: Vec<Member<NodeId>>,
    /// The members the sender lists as leaving or left. foca tells only that a member is
    /// down; without these, a member that missed the leave intent would list the leaver
    /// as failed.
    pub left: Vec<LeftMember>,
    pub event_clock: u64,
    /// The sender's recent user events, oldest first.
    pub events: Vec<UserEvent>,
}

/// A member that said it leaves, as the identity it left with (a member that left and
/// came back is a newer identity, which this does not touch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftMember {
    pub name: String,
    pub started_ms: u64,
}

impl LeftMember {
    /// The members `table` lists as leaving or left.
    pub fn all_in(table: &MemberTable) -> Vec<LeftMember> {
        table
            .records()
            .filter(|m| matches!(m.status, MemberStatus::Leaving | MemberStatus::Left))
            .map(|m| LeftMember {
                name: m.id.name.clone(),
                started_ms: m.id.started_ms,
            })
            .collect()
    }

    /// Whether `table` lists this very identity as alive or failed: it missed the leave.
    pub fn missed_by(&self, table: &MemberTable) -> bool {
        table.get(&self.name).is_some_and(|m| {
            m.id.started_ms == self.started_ms
                && matches!(m.status, MemberStatus::Alive | MemberStatus::Failed)
        })
    }
}

/// What did not fit in [`BUDGET`]: dropped from this sync only (the next one, with another
/// member, starts afresh).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Overflow {
    pub members: usize,
    pub events: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed push-pull message: {0}")]
pub struct MalformedState(#[from] rmp_serde::decode::Error);

impl StateMessage {
    /// This member's state, cut to fit one transport frame. Past the budget the news goes
    /// first: the left members (a name each), down and suspect members before alive ones
    /// (an alive member that is left out is still probed and gossiped), then the newest
    /// events, which fewer members have had the time to see. Whatever is left out is
    /// counted in the [`Overflow`].
    pub fn build<'a>(
        sender: SocketAddr,
        reply: bool,
        members: impl Iterator<Item = &'a Member<NodeId>>,
        left: Vec<LeftMember>,
        event_clock: u64,
        events: Vec<UserEvent>,
    ) -> (Self, Overflow) {
        let mut members: Vec<Member<NodeId>> = members.cloned().collect();
        members.sort_by_key(|m| match m.state() {
            State::Down => 0,
            State::Suspect => 1,
            State::Alive => 2,
        });
        let mut room = BUDGET;
        let (left, left_dropped) = take_within(left, &mut room);
        let (members, members_dropped) = take_within(members, &mut room);
        let (mut events, events_dropped) = take_within(events.into_iter().rev(), &mut room);
        events.reverse();
        let message = StateMessage {
            sender,
            reply,
            members,
            left,
            event_clock,
            events,
        };
        let overflow = Overflow {
            members: members_dropped + left_dropped,
            events: events_dropped,
        };
        (message, overflow)
    }

    /// The datagram (kind 9) to hand the stream transport.
    pub fn encode(&self) -> Vec<u8> {
        let body = rmp_serde::to_vec(self).expect("a state message always encodes");
        wire::push_pull_datagram(&body)
    }

    pub fn decode(body: &[u8]) -> Result<Self, MalformedState> {
        Ok(rmp_serde::from_slice(body)?)
    }

    /// Hand the members to foca as a periodic sync: foca keeps what is newer than what it
    /// knows, refutes a suspicion of ourselves, and notifies the changes through
    /// `runtime` as gossip would. They are not re-gossiped: the sender syncs with others
    /// itself. The events and clock are the caller's (the node has a history; the
    /// simulation sends none).
    pub fn merge_members<C, R, B>(
        &mut self,
        foca: &mut Foca<NodeId, C, R, B>,
        runtime: impl Runtime<NodeId>,
    ) -> Result<(), foca::Error>
    where
        C: Codec<NodeId>,
        C::Error: core::error::Error,
        R: RngExt,
        B: BroadcastHandler<NodeId>,
        B::Error: core::error::Error + 'static,
    {
        foca.apply_many(
            std::mem::take(&mut self.members).into_iter(),
            false,
            runtime,
        )
    }
}

/// The longest prefix of `items` whose encodings fit in `room` (which shrinks by what
/// they take), and how many were left out.
fn take_within<T: Serialize>(
    items: impl IntoIterator<Item = T>,
    room: &mut usize,
) -> (Vec<T>, usize) {
    let mut kept = Vec::new();
    let mut dropped = 0;
    for item in items {
        let size = rmp_serde::to_vec(&item).map_or(usize::MAX, |bytes| bytes.len());
        if dropped == 0 && size <= *room {
            *room -= size;
            kept.push(item);
        } else {
            dropped += 1;
        }
    }
    (kept, dropped)
}

/// The member to sync with this interval: a random alive one other than `local`.
pub fn partner(table: &MemberTable, local: &str, rng: &mut impl RngExt) -> Option<SocketAddr> {
    table
        .records()
        .filter(|m| m.status == MemberStatus::Alive && m.id.name != local)
        .map(|m| m.id.addr)
        .choose(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::wire::Datagram;
    use foca::{AccumulatingRuntime, NoCustomBroadcast, OwnedNotification, PostcardCodec};
    use rand_foca::SeedableRng;
    use rand_foca::rngs::StdRng;

    type Swim = Foca<NodeId, PostcardCodec, StdRng, NoCustomBroadcast>;

    fn id(name: &str, port: u16) -> NodeId {
        NodeId {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tags: [("role".into(), "web".into())].into(),
            started_ms: 1,
        }
    }

    fn swim(id: NodeId) -> Swim {
        Foca::new(
            id,
            Profile::Lan.swim_config(3),
            StdRng::seed_from_u64(7),
            PostcardCodec,
        )
    }

    fn event(ltime: u64, payload: usize) -> UserEvent {
        UserEvent {
            ltime,
            name: "deploy".into(),
            payload: vec![b'x'; payload],
            coalesce: false,
        }
    }

    /// Through the wire as the node sends it: datagram kind 9, then decoded.
    fn over_the_wire(state: &StateMessage) -> StateMessage {
        let datagram = state.encode();
        let Ok(Datagram::PushPull(body)) = wire::decode(&datagram) else {
            panic!("not a push-pull datagram");
        };
        StateMessage::decode(body).expect("decodes")
    }

    #[test]
    fn a_member_that_missed_a_down_learns_it_from_a_sync() {
        let (a, b, gone) = (id("a", 1), id("b", 2), id("gone", 3));
        let mut knows = swim(a.clone());
        let mut missed = swim(b.clone());
        let mut runtime = AccumulatingRuntime::new();
        let updates = [Member::alive(b.clone()), Member::down(gone.clone())];
        knows
            .apply_many(updates.into_iter(), false, &mut runtime)
            .unwrap();
        missed
            .apply_many(
                [Member::alive(a.clone()), Member::alive(gone.clone())].into_iter(),
                false,
                &mut runtime,
            )
            .unwrap();
        let mut missed_runtime = AccumulatingRuntime::new();
        let (state, overflow) = StateMessage::build(
            a.addr,
            false,
            knows.iter_membership_state(),
            vec![LeftMember {
                name: "went".into(),
                started_ms: 9,
            }],
            5,
            vec![event(4, 3)],
        );
        assert_eq!(overflow, Overflow::default());
        let mut received = over_the_wire(&state);
        assert_eq!(received, state);
        assert!(!received.reply);
        received
            .merge_members(&mut missed, &mut missed_runtime)
            .unwrap();
        let mut notified = Vec::new();
        while let Some(notification) = missed_runtime.to_notify() {
            notified.push(notification);
        }
        assert!(
            notified.contains(&OwnedNotification::MemberDown(gone.clone())),
            "{notified:?}"
        );
        let gone_state = missed
            .iter_membership_state()
            .find(|m| m.id() == &gone)
            .map(|m| m.state());
        assert_eq!(gone_state, Some(State::Down));
    }

    #[test]
    fn a_state_past_one_frame_keeps_the_news_and_the_newest_events() {
        let members: Vec<Member<NodeId>> = (0..20_000u16)
            .map(|i| {
                let member = id(&format!("member-{i:05}-with-a-longer-name"), i);
                if i % 1000 == 999 {
                    Member::down(member)
                } else {
                    Member::alive(member)
                }
            })
            .collect();
        let events: Vec<UserEvent> = (0..100).map(|t| event(t, 1000)).collect();
        let (state, overflow) = StateMessage::build(
            id("a", 1).addr,
            true,
            members.iter(),
            Vec::new(),
            100,
            events,
        );
        assert!(overflow.members > 0);
        assert_eq!(overflow.members + state.members.len(), members.len());
        let downs = state
            .members
            .iter()
            .filter(|m| m.state() == State::Down)
            .count();
        assert_eq!(downs, 20);
        // the members took the whole frame: no room was left for events
        assert_eq!(overflow.events, 100);
        assert!(state.encode().len() <= wire::MAX_FRAME);

        let few: Vec<Member<NodeId>> = members[..10].to_vec();
        let big_events: Vec<UserEvent> = (0..2_000).map(|t| event(t, 1000)).collect();
        let (state, overflow) = StateMessage::build(
            id("a", 1).addr,
            false,
            few.iter(),
            Vec::new(),
            2_000,
            big_events,
        );
        assert_eq!(overflow.members, 0);
        assert!(overflow.events > 0);
        assert_eq!(state.events.last().map(|e| e.ltime), Some(1_999));
        assert!(state.events.windows(2).all(|w| w[0].ltime < w[1].ltime));
        assert!(state.encode().len() <= wire::MAX_FRAME);
    }

    #[test]
    fn a_leave_applies_to_the_identity_that_left_and_only_while_missed() {
        let mut table = MemberTable::new(id("a", 1));
        table.member_up(id("b", 2));
        table.member_up(id("c", 3));
        table.leave_intent("c");
        let left = LeftMember::all_in(&table);
        assert_eq!(
            left,
            vec![LeftMember {
                name: "c".into(),
                started_ms: 1
            }]
        );
        let mut missed = MemberTable::new(id("b", 2));
        missed.member_up(id("c", 3));
        assert!(left[0].missed_by(&missed));
        missed.member_down(&id("c", 3));
        assert!(left[0].missed_by(&missed), "failed is a missed leave too");
        missed.leave_intent("c");
        assert!(!left[0].missed_by(&missed), "left already");
        let mut back = MemberTable::new(id("b", 2));
        back.member_up(NodeId {
            started_ms: 2,
            ..id("c", 3)
        });
        assert!(!left[0].missed_by(&back), "c came back as a newer identity");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(StateMessage::decode(b"\xc1\x00").is_err());
        assert!(StateMessage::decode(b"").is_err());
    }

    #[test]
    fn the_partner_is_another_alive_member() {
        let mut table = MemberTable::new(id("a", 1));
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(partner(&table, "a", &mut rng), None);
        table.member_up(id("b", 2));
        table.member_up(id("c", 3));
        table.member_down(&id("c", 3));
        for _ in 0..20 {
            assert_eq!(partner(&table, "a", &mut rng), Some(id("b", 2).addr));
        }
    }
}
