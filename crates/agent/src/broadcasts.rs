//! foca's custom broadcasts: the messages that ride on its packets to every member. Each
//! starts with Serf's message type byte: 3 a user event ([`crate::user_events`]), 4 a
//! query ([`crate::query::gossip`]); foca calls one handler, which hands each to its owner.

use crate::identity::NodeId;
use crate::query::gossip::{MalformedQuery, QueryGossip, QueryKey};
use crate::user_events::{MalformedUserEvent, UserEventGossip, UserEventKey};
use crate::wire::framed;
use foca::{BroadcastHandler, Invalidates};

const USER_EVENT: u8 = 3;
const QUERY: u8 = 4;

/// A user event, framed for `Foca::add_broadcast`.
pub fn user_event(encoded: &[u8]) -> Vec<u8> {
    framed(USER_EVENT, encoded)
}

/// A query, framed for `Foca::add_broadcast`.
pub fn query(encoded: &[u8]) -> Vec<u8> {
    framed(QUERY, encoded)
}

#[derive(Debug, PartialEq, Eq)]
pub enum BroadcastKey {
    UserEvent(UserEventKey),
    Query(QueryKey),
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
}

pub struct ClusterGossip {
    pub user_events: UserEventGossip,
    pub queries: QueryGossip,
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
        match kind {
            USER_EVENT => Ok(self
                .user_events
                .receive_item(body)?
                .map(BroadcastKey::UserEvent)),
            QUERY => Ok(self.queries.receive_item(body)?.map(BroadcastKey::Query)),
            other => Err(MalformedBroadcast::UnknownType(other)),
        }
    }
}
