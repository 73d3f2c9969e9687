//! foca's custom broadcasts: the messages that ride on its packets to every member. Each
//! starts with a type byte: Serf's 3 a user event ([`crate::user_events`]) and 4 a query
//! ([`crate::query::gossip`]), and our own 5 a Lifeguard suspicion confirmation
//! ([`crate::lifeguard::gossip`]); foca calls one handler, which hands each to its owner.
//!
//! A broadcast too big for foca's packets is sent by its origin straight to every member
//! over the stream transport ([`SharedGossip::receive_direct`]): the same handler, shared
//! with the node, delivers it once, and it is not passed on (the origin already reached
//! every member it knows; re-gossiping a large payload would multiply it by the fan-out).

use crate::identity::NodeId;
use crate::lifeguard::gossip::{ConfirmationGossip, MalformedConfirmation, SuspicionConfirmation};
use crate::query::gossip::{MalformedQuery, QueryGossip, QueryKey};
use crate::user_events::{MalformedUserEvent, UserEventGossip, UserEventKey};
use crate::wire::framed;
use foca::{BroadcastHandler, Invalidates};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const USER_EVENT: u8 = 3;
const QUERY: u8 = 4;
const SUSPICION_CONFIRMATION: u8 = 5;

/// Queries up to this size (Serf's default `query_size_limit`) ride on foca's packets;
/// larger ones, possible with a raised limit, go over the stream transport.
pub const GOSSIP_QUERY_MAX: usize = 1024;

/// A user event, framed for `Foca::add_broadcast`.
pub fn user_event(encoded: &[u8]) -> Vec<u8> {
    framed(USER_EVENT, encoded)
}

/// A query, framed for `Foca::add_broadcast`.
pub fn query(encoded: &[u8]) -> Vec<u8> {
    framed(QUERY, encoded)
}

/// A suspicion confirmation, framed for `Foca::add_broadcast`.
pub fn suspicion_confirmation(confirmation: &SuspicionConfirmation) -> Vec<u8> {
    framed(SUSPICION_CONFIRMATION, &confirmation.encode())
}

#[derive(Debug, PartialEq, Eq)]
pub enum BroadcastKey {
    UserEvent(UserEventKey),
    Query(QueryKey),
    Confirmation(SuspicionConfirmation),
}

/// A message only ever replaces an identical copy of itself: every user event and query
/// is disseminated in full.
impl Invalidates for BroadcastKey {
    fn invalidates(&self, other: &Self) -> bool {
        self == other
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MalformedBroadcast {
    #[error("empty broadcast")]
    Empty,
    #[error("unknown broadcast type {0}")]
    UnknownType(u8),
    #[error(transparent)]
    UserEvent(#[from] MalformedUserEvent),
    #[error(transparent)]
    Query(#[from] MalformedQuery),
    #[error(transparent)]
    Confirmation(#[from] MalformedConfirmation),
}

pub struct ClusterGossip {
    pub user_events: UserEventGossip,
    pub queries: QueryGossip,
    pub confirmations: ConfirmationGossip,
    pub urgent: UrgentNews,
}

/// How many user events and queries the handler has seen for the first time: the news a
/// person waits for, which [`crate::swim::receive`] passes on at once. Suspicion
/// confirmations are left to foca's gossip tick, as memberlist's suspect messages: when
/// many members fail together, hurrying each confirmation would flood the network.
#[derive(Clone, Debug, Default)]
pub struct UrgentNews(Arc<AtomicU64>);

impl UrgentNews {
    pub fn seen(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn one_more(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl BroadcastHandler<NodeId> for ClusterGossip {
    type Key = BroadcastKey;
    type Error = MalformedBroadcast;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&NodeId>,
    ) -> Result<Option<BroadcastKey>, MalformedBroadcast> {
        let (&kind, body) = data.split_first().ok_or(MalformedBroadcast::Empty)?;
        let key = match kind {
            USER_EVENT => self
                .user_events
                .receive_item(body)?
                .map(BroadcastKey::UserEvent),
            QUERY => self.queries.receive_item(body)?.map(BroadcastKey::Query),
            SUSPICION_CONFIRMATION => self
                .confirmations
                .receive_item(body)?
                .map(BroadcastKey::Confirmation),
            other => return Err(MalformedBroadcast::UnknownType(other)),
        };
        if matches!(
            key,
            Some(BroadcastKey::UserEvent(_) | BroadcastKey::Query(_))
        ) {
            self.urgent.one_more();
        }
        Ok(key)
    }
}

/// foca's broadcast handler, shared with the node for broadcasts that came directly.
#[derive(Clone)]
pub struct SharedGossip(Arc<Mutex<ClusterGossip>>);

impl SharedGossip {
    pub fn new(gossip: ClusterGossip) -> Self {
        SharedGossip(Arc::new(Mutex::new(gossip)))
    }

    /// A broadcast sent straight to us (or from here): delivered on its first sighting,
    /// as if gossiped, but never passed on.
    pub fn receive_direct(&self, data: &[u8]) -> Result<(), MalformedBroadcast> {
        self.lock().receive_item(data, None).map(|_| ())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClusterGossip> {
        // Only a panic inside a handler poisons it; its de-duplication state is still sound.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BroadcastHandler<NodeId> for SharedGossip {
    type Key = BroadcastKey;
    type Error = MalformedBroadcast;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&NodeId>,
    ) -> Result<Option<BroadcastKey>, MalformedBroadcast> {
        self.lock().receive_item(data, sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::Inbox;
    use crate::lamport::LamportClock;
    use crate::user_events::UserEvent;

    #[test]
    fn a_direct_broadcast_is_delivered_once_and_never_passed_on() {
        let delivered = Inbox::default();
        let clock = Arc::new(LamportClock::default());
        let mut gossip = SharedGossip::new(ClusterGossip {
            user_events: UserEventGossip::new(clock.clone(), delivered.sink()),
            queries: QueryGossip::new(clock, Box::new(drop)),
            confirmations: ConfirmationGossip::new(Box::new(drop)),
            urgent: UrgentNews::default(),
        });
        let event = UserEvent {
            ltime: 1,
            name: "big".into(),
            payload: vec![1; 70_000],
            coalesce: false,
        };
        let broadcast = user_event(&event.encode());
        gossip.receive_direct(&broadcast).unwrap();
        gossip.receive_direct(&broadcast).unwrap();
        // the same event arriving by gossip later is a repeat: foca is not told to pass it on
        assert!(gossip.receive_item(&broadcast, None).unwrap().is_none());
        assert_eq!(delivered.take(), vec![event]);
        assert!(gossip.receive_direct(b"\x09junk").is_err());
    }
}
