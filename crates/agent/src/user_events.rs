//! User events (`serf event NAME PAYLOAD`): stamped with the event Lamport clock, spread
//! by piggybacking on foca's packets as custom broadcasts, and delivered once per member.
//!
//! foca calls [`UserEventGossip::receive_item`] for every event it is handed, the ones
//! this node sends (`Foca::add_broadcast`) as well as the ones that arrive; an event seen
//! for the first time is delivered to the agent and disseminated further, a repeat is
//! dropped. Like Serf, a member remembers the events of the last 512 Lamport times, and
//! ignores events older than that.

use crate::events::AgentEvent;
use crate::lamport::{LamportClock, SeenWindow, Sighting};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::warn;

/// Serf's `user_event_size_limit` default: name plus payload, in bytes.
pub const USER_EVENT_SIZE_LIMIT: usize = 512;
/// How many Lamport times of past events are remembered (Serf's event buffer).
const REMEMBERED_TIMES: u64 = 512;

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
    pub fn check_size(name: &str, payload: &[u8]) -> Result<(), String> {
        if name.len() + payload.len() > USER_EVENT_SIZE_LIMIT {
            return Err(format!(
                "user event exceeds configured limit of {USER_EVENT_SIZE_LIMIT} bytes before encoding"
            ));
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a user event always encodes")
    }

    /// Serf checks the limit again on the encoded message, its type byte included; ours
    /// is the same msgpack map, so the same events pass (name and payload lengths that
    /// Go's older msgpack encodes one byte longer are far below the limit).
    pub fn check_encoded_size(encoded: &[u8]) -> Result<(), String> {
        if 1 + encoded.len() > USER_EVENT_SIZE_LIMIT {
            return Err(format!(
                "encoded user event exceeds configured limit of {USER_EVENT_SIZE_LIMIT} bytes after encoding"
            ));
        }
        Ok(())
    }
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
    /// (name, payload) pairs seen, by Lamport time.
    seen: SeenWindow<(String, Vec<u8>)>,
    deliver: mpsc::UnboundedSender<AgentEvent>,
}

impl UserEventGossip {
    pub fn new(clock: Arc<LamportClock>, deliver: mpsc::UnboundedSender<AgentEvent>) -> Self {
        UserEventGossip {
            clock,
            seen: SeenWindow::new(REMEMBERED_TIMES),
            deliver,
        }
    }

    /// Record the event; false if it is a repeat or too old to tell.
    fn first_sighting(&mut self, event: &UserEvent) -> bool {
        let key = (event.name.clone(), event.payload.clone());
        match self.seen.sight(&self.clock, event.ltime, key) {
            Sighting::First => true,
            Sighting::Repeat => false,
            Sighting::TooOld => {
                warn!(
                    "received old event {} from time {} (current: {})",
                    event.name,
                    event.ltime,
                    self.clock.time()
                );
                false
            }
        }
    }

    /// A user event foca handed us (sent from here or received): deliver it and pass it
    /// on the first time; `None` for a repeat.
    pub fn receive_item(
        &mut self,
        data: &[u8],
    ) -> Result<Option<UserEventKey>, MalformedUserEvent> {
        let event: UserEvent = rmp_serde::from_slice(data)?;
        if !self.first_sighting(&event) {
            return Ok(None);
        }
        // The agent stopping is the only way the receiver goes; nothing is left to tell.
        let _ = self.deliver.send(AgentEvent::User(event.clone()));
        Ok(Some(UserEventKey(event)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ltime: u64, name: &str, payload: &[u8]) -> UserEvent {
        UserEvent {
            ltime,
            name: name.into(),
            payload: payload.to_vec(),
            coalesce: true,
        }
    }

    fn gossip() -> (UserEventGossip, mpsc::UnboundedReceiver<AgentEvent>) {
        let (deliver, delivered) = mpsc::unbounded_channel();
        (
            UserEventGossip::new(Arc::new(LamportClock::default()), deliver),
            delivered,
        )
    }

    #[test]
    fn an_event_is_delivered_once_and_moves_the_clock() {
        let (mut gossip, mut delivered) = gossip();
        let deploy = event(5, "deploy", b"v1");
        assert!(gossip.receive_item(&deploy.encode()).unwrap().is_some());
        assert!(gossip.receive_item(&deploy.encode()).unwrap().is_none());
        assert_eq!(delivered.try_recv().unwrap(), AgentEvent::User(deploy));
        assert!(delivered.try_recv().is_err());
        assert_eq!(gossip.clock.time(), 6);
    }

    #[test]
    fn same_time_different_payload_is_another_event() {
        let (mut gossip, mut delivered) = gossip();
        for payload in [&b"a"[..], b"b"] {
            let item = event(1, "deploy", payload).encode();
            assert!(gossip.receive_item(&item).unwrap().is_some());
        }
        for payload in [&b"a"[..], b"b"] {
            assert_eq!(
                delivered.try_recv().unwrap(),
                AgentEvent::User(event(1, "deploy", payload))
            );
        }
    }

    #[test]
    fn events_older_than_the_window_are_dropped() {
        let (mut gossip, mut delivered) = gossip();
        gossip.clock.witness(1000);
        let stale = event(1001 - REMEMBERED_TIMES - 1, "old", b"").encode();
        assert!(gossip.receive_item(&stale).unwrap().is_none());
        assert!(delivered.try_recv().is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (mut gossip, _delivered) = gossip();
        assert!(gossip.receive_item(b"\xc1\x00").is_err());
    }

    #[test]
    fn the_size_limit_counts_name_and_payload() {
        assert!(UserEvent::check_size("n", &[0; 511]).is_ok());
        let error = UserEvent::check_size("nn", &[0; 511]).unwrap_err();
        assert_eq!(
            error,
            "user event exceeds configured limit of 512 bytes before encoding"
        );
    }

    #[test]
    fn the_encoded_limit_matches_serfs() {
        // serf 0.9.4 accepts `serf event ok` with 480 payload bytes and refuses 481
        for (len, fits) in [(480, true), (481, false)] {
            let encoded = event(3, "ok", &vec![b'x'; len]).encode();
            assert_eq!(UserEvent::check_encoded_size(&encoded).is_ok(), fits);
        }
    }
}
