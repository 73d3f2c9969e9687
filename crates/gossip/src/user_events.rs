//! User events (`serf event NAME PAYLOAD`): stamped with the event Lamport clock, spread
//! by piggybacking on foca's packets as custom broadcasts, and delivered once per member.
//!
//! foca calls [`UserEventGossip::receive_item`] for every event it is handed, the ones
//! this node sends (`Foca::add_broadcast`) as well as the ones that arrive; an event seen
//! for the first time is delivered to the agent and disseminated further, a repeat is
//! dropped. Like Serf, a member remembers the events of the last 512 Lamport times, and
//! ignores events older than that.
//!
//! Events too big for gossip (past [`GOSSIP_EVENT_MAX`], possible when
//! `user_event_size_limit` is raised) go from their origin straight to every member over
//! the stream transport, and meet the same de-duplication here (see `broadcasts`).

use crate::deliver::Deliver;
use crate::event_history::EventHistory;
use crate::lamport::LamportClock;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Serf's `user_event_size_limit` default: name plus payload, in bytes.
pub const DEFAULT_USER_EVENT_SIZE_LIMIT: usize = 512;
/// Events up to this size (type byte and encoding included, as Serf's limit counts them)
/// ride on foca's packets: it is what Serf's own gossip is built for, and it leaves room
/// in a 1400-byte packet for foca's header (two identities with their tags) and
/// membership updates. Larger ones go over the stream transport.
pub const GOSSIP_EVENT_MAX: usize = 512;

/// One user event, as Serf's `messageUserEvent` carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserEvent {
    #[serde(rename = "LTime")]
    pub ltime: u64,
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Coalesce: only the latest event of this name matters to handlers.
    #[serde(rename = "CC")]
    pub coalesce: bool,
}

impl UserEvent {
    /// Serf refuses an event whose name and payload together exceed the limit.
    pub fn check_size(name: &str, payload: &[u8], limit: usize) -> Result<(), UserEventError> {
        if name.len() + payload.len() > limit {
            return Err(UserEventError::TooLarge { limit });
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a user event always encodes")
    }

    /// Serf checks the limit again on the encoded message, its type byte included; ours
    /// is the same msgpack map, so the same events pass (name and payload lengths that
    /// Go's older msgpack encodes one byte longer are far below the limit).
    pub fn check_encoded_size(encoded: &[u8], limit: usize) -> Result<(), UserEventError> {
        if 1 + encoded.len() > limit {
            return Err(UserEventError::EncodedTooLarge { limit });
        }
        Ok(())
    }
}

/// Why an event is not sent, in Serf's words; nothing is sent and no clock moves.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserEventError {
    #[error("user event exceeds configured limit of {limit} bytes before encoding")]
    TooLarge { limit: usize },
    #[error("encoded user event exceeds configured limit of {limit} bytes after encoding")]
    EncodedTooLarge { limit: usize },
}

/// foca's dissemination key for a user event.
#[derive(Debug, PartialEq, Eq)]
pub struct UserEventKey(UserEvent);

#[derive(Debug, thiserror::Error)]
#[error("malformed user event: {0}")]
pub struct MalformedUserEvent(#[from] rmp_serde::decode::Error);

/// The user-event half of foca's custom broadcasts (see [`crate::broadcasts`]).
pub struct UserEventGossip {
    clock: Arc<LamportClock>,
    history: EventHistory,
    deliver: Deliver<UserEvent>,
}

impl UserEventGossip {
    pub fn new(clock: Arc<LamportClock>, deliver: Deliver<UserEvent>) -> Self {
        UserEventGossip {
            clock,
            history: EventHistory::default(),
            deliver,
        }
    }

    /// Record into `history`, which the node shares (joins read and raise it).
    pub fn with_history(self, history: EventHistory) -> Self {
        UserEventGossip { history, ..self }
    }

    /// A user event foca handed us (sent from here or received): deliver it and pass it
    /// on the first time; `None` for a repeat.
    pub fn receive_item(
        &mut self,
        data: &[u8],
    ) -> Result<Option<UserEventKey>, MalformedUserEvent> {
        let event: UserEvent = rmp_serde::from_slice(data)?;
        if !self.history.record(&event, &self.clock) {
            return Ok(None);
        }
        (self.deliver)(event.clone());
        Ok(Some(UserEventKey(event)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::Inbox;
    use crate::lamport::REMEMBERED_TIMES;

    fn event(ltime: u64, name: &str, payload: &[u8]) -> UserEvent {
        UserEvent {
            ltime,
            name: name.into(),
            payload: payload.to_vec(),
            coalesce: true,
        }
    }

    fn gossip() -> (UserEventGossip, Inbox<UserEvent>) {
        let delivered = Inbox::default();
        (
            UserEventGossip::new(Arc::new(LamportClock::default()), delivered.sink()),
            delivered,
        )
    }

    #[test]
    fn an_event_is_delivered_once_and_moves_the_clock() {
        let (mut gossip, delivered) = gossip();
        let deploy = event(5, "deploy", b"v1");
        assert!(gossip.receive_item(&deploy.encode()).unwrap().is_some());
        assert!(gossip.receive_item(&deploy.encode()).unwrap().is_none());
        assert_eq!(delivered.pop().unwrap(), deploy);
        assert!(delivered.pop().is_none());
        assert_eq!(gossip.clock.time(), 6);
    }

    #[test]
    fn same_time_different_payload_is_another_event() {
        let (mut gossip, delivered) = gossip();
        for payload in [&b"a"[..], b"b"] {
            let item = event(1, "deploy", payload).encode();
            assert!(gossip.receive_item(&item).unwrap().is_some());
        }
        for payload in [&b"a"[..], b"b"] {
            assert_eq!(delivered.pop().unwrap(), event(1, "deploy", payload));
        }
    }

    #[test]
    fn events_older_than_the_window_are_dropped() {
        let (mut gossip, delivered) = gossip();
        gossip.clock.witness(1000);
        let stale = event(1001 - REMEMBERED_TIMES - 1, "old", b"").encode();
        assert!(gossip.receive_item(&stale).unwrap().is_none());
        assert!(delivered.pop().is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (mut gossip, _delivered) = gossip();
        assert!(gossip.receive_item(b"\xc1\x00").is_err());
    }

    #[test]
    fn the_size_limit_counts_name_and_payload() {
        assert!(UserEvent::check_size("n", &[0; 511], 512).is_ok());
        let error = UserEvent::check_size("nn", &[0; 511], 512).unwrap_err();
        assert_eq!(
            error.to_string(),
            "user event exceeds configured limit of 512 bytes before encoding"
        );
    }

    #[test]
    fn the_encoded_limit_matches_serfs() {
        // serf 0.9.4 accepts `serf event ok` with 480 payload bytes and refuses 481
        for (len, fits) in [(480, true), (481, false)] {
            let encoded = event(3, "ok", &vec![b'x'; len]).encode();
            assert_eq!(UserEvent::check_encoded_size(&encoded, 512).is_ok(), fits);
        }
    }

    #[test]
    fn a_raised_limit_admits_large_events() {
        let payload = vec![7u8; 65_536];
        let limit = 70_000;
        assert!(UserEvent::check_size("big", &payload, limit).is_ok());
        let encoded = event(1, "big", &payload).encode();
        assert!(UserEvent::check_encoded_size(&encoded, limit).is_ok());
        assert!(encoded.len() > GOSSIP_EVENT_MAX);
    }
}
