//! The receiving half of query dissemination, called by foca for every query it is handed
//! (one this node sends, through `Foca::add_broadcast`, or one that arrives). A query seen
//! for the first time, by (LTime, ID), is handed to the node to act on and passed on
//! unless it says not to; repeats and queries older than the remembered window are dropped.

use super::message::QueryMessage;
use crate::deliver::Deliver;
use crate::lamport::{LamportClock, REMEMBERED_TIMES, SeenWindow, Sighting};
use std::sync::Arc;
use tracing::warn;

/// foca's dissemination key for a query.
#[derive(Debug, PartialEq, Eq)]
pub struct QueryKey {
    ltime: u64,
    id: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed query: {0}")]
pub struct MalformedQuery(#[from] rmp_serde::decode::Error);

pub struct QueryGossip {
    clock: Arc<LamportClock>,
    seen: SeenWindow<u32>,
    /// To the node task, which filters, acks and delivers (it owns the socket).
    received: Deliver<QueryMessage>,
}

impl QueryGossip {
    pub fn new(clock: Arc<LamportClock>, received: Deliver<QueryMessage>) -> Self {
        QueryGossip {
            clock,
            seen: SeenWindow::new(REMEMBERED_TIMES),
            received,
        }
    }

    /// `Some` key when foca should pass the query on.
    pub fn receive_item(&mut self, data: &[u8]) -> Result<Option<QueryKey>, MalformedQuery> {
        let query: QueryMessage = rmp_serde::from_slice(data)?;
        match self.seen.sight(&self.clock, query.ltime, query.id) {
            Sighting::First => {}
            Sighting::Repeat => return Ok(None),
            Sighting::TooOld => {
                warn!(
                    "received old query {} from time {} (current: {})",
                    query.name,
                    query.ltime,
                    self.clock.time()
                );
                return Ok(None);
            }
        }
        let key = (!query.no_broadcast()).then_some(QueryKey {
            ltime: query.ltime,
            id: query.id,
        });
        (self.received)(query);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::FLAG_NO_BROADCAST;
    use super::*;
    use crate::deliver::Inbox;

    fn query(ltime: u64, id: u32, flags: u32) -> Vec<u8> {
        QueryMessage {
            ltime,
            id,
            addr: vec![127, 0, 0, 1],
            port: 1,
            source_node: "o".into(),
            filters: vec![],
            flags,
            relay_factor: 0,
            timeout: 0,
            name: "q".into(),
            payload: vec![],
        }
        .encode()
    }

    fn gossip() -> (QueryGossip, Inbox<QueryMessage>) {
        let inbox = Inbox::default();
        (
            QueryGossip::new(Arc::new(LamportClock::default()), inbox.sink()),
            inbox,
        )
    }

    #[test]
    fn a_query_is_handed_over_once_per_ltime_and_id() {
        let (mut gossip, inbox) = gossip();
        assert!(gossip.receive_item(&query(3, 1, 0)).unwrap().is_some());
        assert!(gossip.receive_item(&query(3, 1, 0)).unwrap().is_none());
        assert!(gossip.receive_item(&query(3, 2, 0)).unwrap().is_some());
        assert_eq!(inbox.pop().unwrap().id, 1);
        assert_eq!(inbox.pop().unwrap().id, 2);
        assert!(inbox.pop().is_none());
        assert_eq!(gossip.clock.time(), 4);
    }

    #[test]
    fn no_broadcast_queries_are_handled_but_not_passed_on() {
        let (mut gossip, inbox) = gossip();
        let item = query(1, 1, FLAG_NO_BROADCAST);
        assert!(gossip.receive_item(&item).unwrap().is_none());
        assert!(inbox.pop().is_some());
    }

    #[test]
    fn old_queries_and_garbage_are_dropped() {
        let (mut gossip, inbox) = gossip();
        gossip.clock.witness(2000);
        assert!(gossip.receive_item(&query(100, 1, 0)).unwrap().is_none());
        assert!(inbox.pop().is_none());
        assert!(gossip.receive_item(b"\xc1").is_err());
    }
}
