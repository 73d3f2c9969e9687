//! How the agent runs foca, the same in the node task and in the simulation
//! (crates/agent-sim): the type, and broadcasts that go out at once.
//!
//! foca sends a custom broadcast on the packets that leave anyway and on its gossip tick
//! (200 ms on LAN), so each hop of an epidemic waits for a tick. Here a user event or a
//! query (see [`UrgentNews`] for why not suspicion confirmations) is hurried over its
//! first two hops: its origin sends it at once to three members (foca's `Broadcast`
//! message), and each member that gets it that way sends it at once to three more (as
//! foca's `Gossip` message, which is not hurried again). 1 + 3 + 9 members have it within
//! two round trips, the rest by their next tick. Hurrying every hop would be faster still
//! but cost a fifth more packets under load (measured among 20 agents at one event a
//! second): items would leave the queue before they could ride on probes. The hurried
//! sends count against the item's retransmit limit like any other.

use crate::broadcasts::UrgentNews;
use crate::identity::NodeId;
use foca::{BroadcastHandler, Codec, Foca, Header, Message, PostcardCodec, Runtime};
use rand_foca::rngs::StdRng;

/// foca as the agent runs it, with the broadcast handler of the node (shared with its
/// direct broadcasts) or of the simulation.
pub type Swim<B> = Foca<NodeId, PostcardCodec, StdRng, B>;

/// What foca's codec (postcard) says of a packet it cannot read.
pub type CodecError = <PostcardCodec as Codec<NodeId>>::Error;

/// What the agent reads of a packet foca is about to send.
pub struct Outgoing {
    pub header: Header<NodeId>,
    /// A gossip message with nothing in it. foca's gossip tick sends one message to three
    /// members; the first takes what the queue still had to send and the others can go
    /// out empty, 80 bytes that tell the receiver nothing (0.9 a second per member among
    /// 20 under one event a second). The agent does not send them.
    pub empty_gossip: bool,
}

/// The header of a packet foca encoded (with the agent's codec), and what follows it.
pub fn read_outgoing(packet: &[u8]) -> Result<Outgoing, CodecError> {
    let mut rest = packet;
    let header: Header<NodeId> = PostcardCodec.decode_header(&mut rest)?;
    // after the header: a u16 count of membership updates, then custom broadcasts
    let empty_gossip = header.message == Message::Gossip && rest == [0, 0];
    Ok(Outgoing {
        header,
        empty_gossip,
    })
}

/// A packet from another member, for foca; a user event or query new here (counted in
/// `urgent` by the broadcast handler) that came hurried from its origin goes on at once.
pub fn receive<B>(
    foca: &mut Swim<B>,
    packet: &[u8],
    mut runtime: impl Runtime<NodeId>,
    urgent: &UrgentNews,
) -> Result<(), foca::Error>
where
    B: BroadcastHandler<NodeId>,
    B::Error: core::error::Error + 'static,
{
    let seen = urgent.seen();
    let readdressed = readdressed(packet, foca.identity());
    let packet = readdressed.as_deref().unwrap_or(packet);
    let received = foca.handle_data(packet, &mut runtime);
    // also after an error: what foca took in before it is in the backlog
    if urgent.seen() > seen && sent_by_origin(packet) {
        foca.gossip(&mut runtime)?;
    }
    received
}

/// A packet addressed to an earlier identity of ours (our name and address, an older
/// `started_ms`: its sender has not heard of our new tags yet), readdressed to the current
/// one; none for any other packet. foca takes only packets addressed to its exact identity,
/// and tags live in the identity: when every member changes its tags at once (a role's tags
/// changed in the store, `-config-store`), each one's pings and gossip are addressed to the
/// others' old identities, all would be dropped, and the members would declare each other
/// failed. Taken in, each packet's sender identity teaches the receiver the new one.
fn readdressed(packet: &[u8], us: &NodeId) -> Option<Vec<u8>> {
    let mut rest = packet;
    let mut header: Header<NodeId> = PostcardCodec.decode_header(&mut rest).ok()?;
    let dst = &header.dst;
    let earlier_us =
        dst != us && dst.addr == us.addr && dst.name == us.name && dst.started_ms < us.started_ms;
    if !earlier_us {
        return None;
    }
    header.dst = us.clone();
    let mut out = Vec::with_capacity(packet.len() + 64);
    PostcardCodec.encode_header(&header, &mut out).ok()?;
    out.extend_from_slice(rest);
    Some(out)
}

/// Whether a packet is foca's `Broadcast` message: only an origin hurrying its own user
/// event or query sends one ([`broadcast`]).
fn sent_by_origin(packet: &[u8]) -> bool {
    let header: Result<Header<NodeId>, _> = PostcardCodec.decode_header(packet);
    header.is_ok_and(|header| header.message == Message::Broadcast)
}

/// A user event or query of ours: foca delivers it here (through the broadcast handler),
/// queues it for gossip and sends it at once to a few members.
pub fn broadcast<B>(
    foca: &mut Swim<B>,
    data: &[u8],
    mut runtime: impl Runtime<NodeId>,
) -> Result<(), foca::Error>
where
    B: BroadcastHandler<NodeId>,
    B::Error: core::error::Error + 'static,
{
    foca.add_broadcast(data)?;
    foca.broadcast(&mut runtime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcasts::{self, ClusterGossip};
    use crate::lamport::LamportClock;
    use crate::lifeguard::gossip::ConfirmationGossip;
    use crate::profile::Profile;
    use crate::query::gossip::QueryGossip;
    use crate::user_events::{UserEvent, UserEventGossip};
    use foca::{AccumulatingRuntime, Member};
    use rand_foca::SeedableRng;
    use std::net::SocketAddr;
    use std::sync::Arc;

    fn member(name: &str, port: u16, urgent: &UrgentNews) -> Swim<ClusterGossip> {
        let clock = Arc::new(LamportClock::default());
        let gossip = ClusterGossip {
            user_events: UserEventGossip::new(clock.clone(), Box::new(drop)),
            queries: QueryGossip::new(clock, Box::new(drop)),
            confirmations: ConfirmationGossip::new(Box::new(drop)),
            urgent: urgent.clone(),
        };
        let id = NodeId {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tags: Default::default(),
            started_ms: 1,
        };
        Foca::with_custom_broadcast(
            id,
            Profile::Lan.swim_config(3),
            StdRng::seed_from_u64(port.into()),
            PostcardCodec,
            gossip,
        )
    }

    #[test]
    fn only_a_gossip_message_with_nothing_in_it_is_empty() {
        let urgent = UrgentNews::default();
        let (a, b) = (member("a", 1, &urgent), member("b", 2, &urgent));
        let packet = |message: Message<NodeId>, rest: &[u8]| {
            let header = Header {
                src: a.identity().clone(),
                src_incarnation: 0,
                dst: b.identity().clone(),
                message,
            };
            let mut packet = Vec::new();
            PostcardCodec.encode_header(&header, &mut packet).unwrap();
            packet.extend_from_slice(rest);
            packet
        };
        let empty = read_outgoing(&packet(Message::Gossip, &[0, 0])).unwrap();
        assert!(empty.empty_gossip);
        assert_eq!(empty.header.dst.name, "b");
        assert!(
            !read_outgoing(&packet(Message::Gossip, &[0, 1, 9]))
                .unwrap()
                .empty_gossip
        );
        assert!(
            !read_outgoing(&packet(Message::Gossip, &[0, 0, 3, 7]))
                .unwrap()
                .empty_gossip
        );
        assert!(
            !read_outgoing(&packet(Message::Ping(1), &[0, 0]))
                .unwrap()
                .empty_gossip
        );
        assert!(read_outgoing(b"\xff").is_err());
    }

    #[test]
    fn members_changing_tags_at_once_still_hear_each_other() {
        let urgent = UrgentNews::default();
        let (mut a, mut b) = (member("a", 1, &urgent), member("b", 2, &urgent));
        let mut runtime = AccumulatingRuntime::new();
        let (a_old, b_old) = (a.identity().clone(), b.identity().clone());
        a.apply_many(
            [Member::alive(b_old.clone())].into_iter(),
            false,
            &mut runtime,
        )
        .unwrap();
        b.apply_many(
            [Member::alive(a_old.clone())].into_iter(),
            false,
            &mut runtime,
        )
        .unwrap();
        let tagged = |id: &NodeId| NodeId {
            tags: [("role".to_string(), "db".to_string())].into(),
            started_ms: id.started_ms + 1,
            ..id.clone()
        };
        let (a_new, b_new) = (tagged(&a_old), tagged(&b_old));
        let mut at_a = AccumulatingRuntime::new();
        a.change_identity(a_new.clone(), &mut at_a).unwrap();
        b.change_identity(b_new, &mut AccumulatingRuntime::new())
            .unwrap();
        // a tells of its new tags to the b it knows: b's previous identity
        let (to, packet) = at_a.to_send().expect("a gossips its new identity");
        assert_eq!(to, b_old);
        receive(&mut b, &packet, &mut AccumulatingRuntime::new(), &urgent).unwrap();
        assert!(
            b.iter_members().any(|m| m.id() == &a_new),
            "b took a's new tags"
        );
        // a packet for another member is not taken in
        let mut stranger = member("c", 3, &urgent);
        let before = stranger.num_members();
        let _ = receive(
            &mut stranger,
            &packet,
            &mut AccumulatingRuntime::new(),
            &urgent,
        );
        assert_eq!(stranger.num_members(), before);
    }

    #[test]
    fn an_event_is_hurried_from_its_origin_and_once_more_but_no_further() {
        let (urgent_at_b, urgent_at_d) = (UrgentNews::default(), UrgentNews::default());
        let mut a = member("a", 1, &Default::default());
        let mut b = member("b", 2, &urgent_at_b);
        let mut d = member("d", 4, &urgent_at_d);
        let mut runtime = AccumulatingRuntime::new();
        // a knows b; b knows a and d; d knows b
        let ids = [
            a.identity().clone(),
            b.identity().clone(),
            d.identity().clone(),
        ];
        for (foca, known) in [(&mut a, vec![1]), (&mut b, vec![0, 2]), (&mut d, vec![1])] {
            let members = known.into_iter().map(|i| Member::alive(ids[i].clone()));
            foca.apply_many(members, false, &mut runtime).unwrap();
        }
        while runtime.backlog() > 0 {
            runtime.to_send();
            runtime.to_schedule();
            runtime.to_notify();
        }
        let event = UserEvent {
            ltime: 1,
            name: "deploy".into(),
            payload: b"v1".to_vec(),
            coalesce: false,
        };
        broadcast(
            &mut a,
            &broadcasts::user_event(&event.encode()),
            &mut runtime,
        )
        .unwrap();
        let (to, packet) = runtime.to_send().expect("sent at once, no tick waited for");
        assert_eq!(to.name, "b");

        let mut at_b = AccumulatingRuntime::new();
        receive(&mut b, &packet, &mut at_b, &urgent_at_b).unwrap();
        let sent: Vec<_> = std::iter::from_fn(|| at_b.to_send()).collect();
        assert_eq!(sent.len(), 2, "hurried on to both members b knows");
        let (_, to_d) = sent.into_iter().find(|(to, _)| to.name == "d").unwrap();

        let mut at_d = AccumulatingRuntime::new();
        receive(&mut d, &to_d, &mut at_d, &urgent_at_d).unwrap();
        assert_eq!(urgent_at_d.seen(), 1, "news to d");
        assert!(at_d.to_send().is_none(), "but not hurried a third time");
        // a repeat is not news either
        let mut again = AccumulatingRuntime::new();
        receive(&mut b, &packet, &mut again, &urgent_at_b).unwrap();
        assert!(again.to_send().is_none());
    }
}
