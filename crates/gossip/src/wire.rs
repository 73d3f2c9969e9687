//! What travels in one gossip datagram: a kind byte, then either a foca packet or one of
//! the agent's own messages. foca owns the membership protocol; the agent adds only what
//! foca has no word for (a member saying it leaves, as opposed to failing; a query's ack
//! or response; user events and queries too big to ride on foca's packets; the member
//! lifecycle's [`LifecycleMessage`]s; a key catch-up; a push-pull sync's state), and a
//! foca packet with our network coordinate in front (probe acks, as Serf's carry it). The same datagrams
//! also arrive whole over the stream transport. A datagram that deflates smaller travels
//! compressed (kind 11, `compression`); with encryption, each whole datagram is then sealed (`keys`).

use crate::coordinate::compact;
use crate::user_events::UserEvent;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The largest datagram sent or accepted whole, as one stream transport frame. Far above the
/// largest user event, query or answer the agent can be configured to send, far below what
/// could hurt.
pub const MAX_FRAME: usize = 1 << 20;

const KIND_FOCA: u8 = 0;
const KIND_LEAVE_INTENT: u8 = 1;
const KIND_QUERY_REPLY: u8 = 2;
// 3 and 4 were coordinate pings and pongs of their own, before acks carried coordinates.
const KIND_KEY_CATCH_UP: u8 = 5;
const KIND_LIFECYCLE: u8 = 6;
const KIND_DIRECT_BROADCAST: u8 = 8;
const KIND_PUSH_PULL: u8 = 9;
const KIND_FOCA_WITH_POSITION: u8 = 10;
const KIND_COMPRESSED: u8 = 11;

/// The member lifecycle's messages (kind 6), msgpack-encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LifecycleMessage {
    /// `force-leave -prune`: drop this member from the list now.
    Prune { node: String },
    /// Name conflict: which address do you know `name` at? `id` pairs the answers.
    WhoHolds { id: u64, name: String },
    /// The answer: the address the sender lists `name` at, if it lists it.
    Holder {
        id: u64,
        name: String,
        addr: Option<SocketAddr>,
    },
    /// A member that just joined through us asks for our event clock and, to replay
    /// them, our recent user events.
    EventsRequest { replay: bool },
    /// The answer, in as many datagrams as the events need (each carries the clock).
    EventsReply {
        replay: bool,
        event_clock: u64,
        events: Vec<UserEvent>,
    },
}

impl LifecycleMessage {
    /// The answer to an `EventsRequest`: the events packed into replies that each fit
    /// one datagram (at least one reply, which carries the clock).
    pub fn event_replies(replay: bool, event_clock: u64, events: Vec<UserEvent>) -> Vec<Self> {
        // Room for the reply's own fields under foca's 1400-byte packets.
        const BUDGET: usize = 1200;
        let reply = |events| LifecycleMessage::EventsReply {
            replay,
            event_clock,
            events,
        };
        let mut replies = Vec::new();
        let (mut batch, mut size) = (Vec::new(), 0);
        for event in events {
            let event_size = event.encode().len();
            if !batch.is_empty() && size + event_size > BUDGET {
                replies.push(reply(std::mem::take(&mut batch)));
                size = 0;
            }
            size += event_size;
            batch.push(event);
        }
        replies.push(reply(batch));
        replies
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Datagram<'a> {
    Foca(&'a [u8]),
    /// The named member is leaving (it said so itself) or was force-left.
    LeaveIntent(&'a str),
    /// A query's ack or response, or a request to relay one ([`crate::query::message`]).
    QueryReply(&'a [u8]),
    Lifecycle(LifecycleMessage),
    /// A foca packet (a probe ack) and the sender's coordinate ([`compact`]).
    FocaWithPosition {
        position: &'a [u8],
        packet: &'a [u8],
    },
    /// A custom broadcast (`broadcasts`: a user event or a query) sent straight from its
    /// origin, over the stream transport since it is too big for gossip; delivered here,
    /// not passed on.
    DirectBroadcast(&'a [u8]),
    /// Another member's key ring, sent because we sealed with a key it retired (keys.rs).
    KeyCatchUp(&'a [u8]),
    /// A member's whole state for a periodic sync (`push_pull::StateMessage`), over the
    /// stream transport.
    PushPull(&'a [u8]),
    /// Another datagram, deflated (`compression`); the node inflates it before decoding.
    Compressed(&'a [u8]),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("empty datagram")]
    Empty,
    #[error("unknown datagram kind {0}")]
    UnknownKind(u8),
    #[error("leave intent names no valid node")]
    BadNodeName,
    #[error("malformed lifecycle message")]
    BadLifecycleMessage,
    #[error("coordinate datagram too short")]
    ShortPosition,
}

pub fn decode(datagram: &[u8]) -> Result<Datagram<'_>, WireError> {
    let (&kind, body) = datagram.split_first().ok_or(WireError::Empty)?;
    match kind {
        KIND_FOCA => Ok(Datagram::Foca(body)),
        KIND_LEAVE_INTENT => std::str::from_utf8(body)
            .ok()
            .filter(|name| !name.is_empty())
            .map(Datagram::LeaveIntent)
            .ok_or(WireError::BadNodeName),
        KIND_KEY_CATCH_UP => Ok(Datagram::KeyCatchUp(body)),
        KIND_QUERY_REPLY => Ok(Datagram::QueryReply(body)),
        KIND_LIFECYCLE => rmp_serde::from_slice(body)
            .map(Datagram::Lifecycle)
            .map_err(|_| WireError::BadLifecycleMessage),
        KIND_FOCA_WITH_POSITION if body.len() > compact::ENCODED_LEN => {
            let (position, packet) = body.split_at(compact::ENCODED_LEN);
            Ok(Datagram::FocaWithPosition { position, packet })
        }
        KIND_FOCA_WITH_POSITION => Err(WireError::ShortPosition),
        KIND_DIRECT_BROADCAST => Ok(Datagram::DirectBroadcast(body)),
        KIND_PUSH_PULL => Ok(Datagram::PushPull(body)),
        KIND_COMPRESSED => Ok(Datagram::Compressed(body)),
        other => Err(WireError::UnknownKind(other)),
    }
}

pub fn foca_datagram(packet: &[u8]) -> Vec<u8> {
    framed(KIND_FOCA, packet)
}

pub fn leave_intent_datagram(node: &str) -> Vec<u8> {
    framed(KIND_LEAVE_INTENT, node.as_bytes())
}

pub fn key_catch_up_datagram(ring: &[u8]) -> Vec<u8> {
    framed(KIND_KEY_CATCH_UP, ring)
}

pub fn query_reply_datagram(body: &[u8]) -> Vec<u8> {
    framed(KIND_QUERY_REPLY, body)
}

/// A foca packet behind our encoded coordinate ([`compact::encode`]).
pub fn foca_with_position_datagram(position: &[u8], packet: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(1 + position.len() + packet.len());
    datagram.push(KIND_FOCA_WITH_POSITION);
    datagram.extend_from_slice(position);
    datagram.extend_from_slice(packet);
    datagram
}

pub fn direct_broadcast_datagram(broadcast: &[u8]) -> Vec<u8> {
    framed(KIND_DIRECT_BROADCAST, broadcast)
}

pub fn push_pull_datagram(state: &[u8]) -> Vec<u8> {
    framed(KIND_PUSH_PULL, state)
}

pub fn compressed_datagram(deflated: &[u8]) -> Vec<u8> {
    framed(KIND_COMPRESSED, deflated)
}

pub fn lifecycle_datagram(message: &LifecycleMessage) -> Vec<u8> {
    let body = rmp_serde::to_vec(message).expect("a lifecycle message always encodes");
    framed(KIND_LIFECYCLE, &body)
}

/// A kind (or type) byte, then the body.
pub fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(1 + body.len());
    datagram.push(kind);
    datagram.extend_from_slice(body);
    datagram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip() {
        assert_eq!(
            decode(&foca_datagram(b"\x01\x02")),
            Ok(Datagram::Foca(b"\x01\x02"))
        );
        assert_eq!(
            decode(&leave_intent_datagram("node-1")),
            Ok(Datagram::LeaveIntent("node-1"))
        );
        assert_eq!(
            decode(&query_reply_datagram(b"\x05x")),
            Ok(Datagram::QueryReply(b"\x05x"))
        );
        assert_eq!(
            decode(&key_catch_up_datagram(b"\x10k")),
            Ok(Datagram::KeyCatchUp(b"\x10k"))
        );
        let position = [7u8; compact::ENCODED_LEN];
        assert_eq!(
            decode(&foca_with_position_datagram(&position, b"\x01\x02")),
            Ok(Datagram::FocaWithPosition {
                position: &position,
                packet: b"\x01\x02"
            })
        );
        assert_eq!(
            decode(&foca_with_position_datagram(&position[1..], b"")),
            Err(WireError::ShortPosition)
        );
        assert_eq!(
            decode(&direct_broadcast_datagram(b"\x03e")),
            Ok(Datagram::DirectBroadcast(b"\x03e"))
        );
        assert_eq!(
            decode(&push_pull_datagram(b"\x95s")),
            Ok(Datagram::PushPull(b"\x95s"))
        );
        assert_eq!(
            decode(&compressed_datagram(b"\x4bz")),
            Ok(Datagram::Compressed(b"\x4bz"))
        );
        let answer = LifecycleMessage::Holder {
            id: 7,
            name: "a".into(),
            addr: Some("127.0.0.1:7946".parse().unwrap()),
        };
        assert_eq!(
            decode(&lifecycle_datagram(&answer)),
            Ok(Datagram::Lifecycle(answer))
        );
    }

    #[test]
    fn replayed_events_are_packed_into_datagrams() {
        let events: Vec<UserEvent> = (0..10)
            .map(|ltime| UserEvent {
                ltime,
                name: "deploy".into(),
                payload: vec![b'x'; 400],
                coalesce: false,
            })
            .collect();
        let replies = LifecycleMessage::event_replies(true, 11, events.clone());
        assert!(replies.len() > 1);
        let mut carried = Vec::new();
        for reply in &replies {
            assert!(lifecycle_datagram(reply).len() <= 1400);
            if let LifecycleMessage::EventsReply { events, .. } = reply {
                carried.extend(events.iter().cloned());
            }
        }
        assert_eq!(carried, events);
        // nothing to replay still tells the clock
        assert_eq!(
            LifecycleMessage::event_replies(false, 11, Vec::new()),
            vec![LifecycleMessage::EventsReply {
                replay: false,
                event_clock: 11,
                events: Vec::new()
            }]
        );
    }

    #[test]
    fn malformed_datagrams_are_rejected() {
        assert_eq!(decode(b""), Err(WireError::Empty));
        assert_eq!(decode(b"\x07abc"), Err(WireError::UnknownKind(7)));
        assert_eq!(decode(b"\x01"), Err(WireError::BadNodeName));
        assert_eq!(decode(b"\x01\xff\xfe"), Err(WireError::BadNodeName));
        assert_eq!(decode(b"\x06\xc1"), Err(WireError::BadLifecycleMessage));
    }
}
