//! The asking member's side of its queries: each open query, by its Lamport time, collects
//! acks and responses (one of each per member, repeats dropped: relays send copies) and
//! passes them to whoever asked, until its timeout closes it with `Done`.

use super::QueryRecord;
use super::message::QueryResponseMessage;
use crate::deliver::Deliver;
use std::collections::{HashMap, HashSet};
use tracing::warn;

struct OpenQuery {
    id: u32,
    ack_requested: bool,
    acked: HashSet<String>,
    responded: HashSet<String>,
    records: Deliver<QueryRecord>,
}

/// Open queries by Lamport time; each time stamps one query only, since the clock moves
/// on with every query sent.
#[derive(Default)]
pub struct OpenQueries {
    by_ltime: HashMap<u64, OpenQuery>,
}

impl OpenQueries {
    pub fn open(
        &mut self,
        ltime: u64,
        id: u32,
        ack_requested: bool,
        records: Deliver<QueryRecord>,
    ) {
        let query = OpenQuery {
            id,
            ack_requested,
            acked: HashSet::new(),
            responded: HashSet::new(),
            records,
        };
        self.by_ltime.insert(ltime, query);
    }

    /// An ack or response arrived, directly or relayed.
    pub fn receive(&mut self, reply: QueryResponseMessage) {
        let Some(query) = self.by_ltime.get_mut(&reply.ltime) else {
            warn!(
                "reply for non-running query (LTime: {}, ID: {}) From: {}",
                reply.ltime, reply.id, reply.from
            );
            return;
        };
        if query.id != reply.id {
            warn!(
                "query reply ID mismatch (Local: {}, Response: {})",
                query.id, reply.id
            );
            return;
        }
        let record = if reply.is_ack() {
            if !query.ack_requested || !query.acked.insert(reply.from.clone()) {
                return;
            }
            metrics::counter!("serf.query_acks").increment(1);
            QueryRecord::Ack { from: reply.from }
        } else {
            if !query.responded.insert(reply.from.clone()) {
                return;
            }
            metrics::counter!("serf.query_responses").increment(1);
            QueryRecord::Response {
                from: reply.from,
                payload: reply.payload,
            }
        };
        (query.records)(record);
    }

    /// The query's timeout passed: no more records, then `Done`.
    pub fn close(&mut self, ltime: u64) {
        if let Some(mut query) = self.by_ltime.remove(&ltime) {
            (query.records)(QueryRecord::Done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::FLAG_ACK;
    use super::*;
    use crate::deliver::Inbox;

    fn reply(ltime: u64, id: u32, from: &str, ack: bool, payload: &[u8]) -> QueryResponseMessage {
        QueryResponseMessage {
            ltime,
            id,
            from: from.into(),
            flags: if ack { FLAG_ACK } else { 0 },
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn one_ack_and_one_response_per_member_then_done() {
        let mut open = OpenQueries::default();
        let records = Inbox::default();
        open.open(4, 99, true, records.sink());
        open.receive(reply(4, 99, "a", true, b""));
        open.receive(reply(4, 99, "a", true, b""));
        open.receive(reply(4, 99, "a", false, b"up"));
        open.receive(reply(4, 99, "a", false, b"up"));
        open.receive(reply(4, 98, "b", true, b""));
        open.receive(reply(5, 99, "c", true, b""));
        open.close(4);
        open.receive(reply(4, 99, "d", true, b""));
        assert_eq!(
            records.take(),
            [
                QueryRecord::Ack { from: "a".into() },
                QueryRecord::Response {
                    from: "a".into(),
                    payload: b"up".to_vec()
                },
                QueryRecord::Done
            ]
        );
    }

    #[test]
    fn acks_nobody_asked_for_are_dropped() {
        let mut open = OpenQueries::default();
        let records = Inbox::default();
        open.open(1, 1, false, records.sink());
        open.receive(reply(1, 1, "a", true, b""));
        open.close(1);
        assert_eq!(records.take(), [QueryRecord::Done]);
    }
}
