//! The answering member's side: the queries delivered here that may still be answered.
//! A query is answered once (a handler's output or an RPC `respond`, whichever comes
//! first) and only before its deadline; both refusals use Serf's words.

use super::QueryEvent;
use super::message::QueryResponseMessage;
use std::collections::HashMap;
use std::time::Instant;

/// Why an answer does not go out, in Serf's words (Serf says "key query" for every
/// query); the query may still be answered unless it is past its deadline or answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerRefused {
    #[error("failed to respond to key query: response exceeds limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("failed to respond to key query: response is past the deadline")]
    PastDeadline,
    #[error("failed to respond to key query: response already sent")]
    AlreadySent,
}

/// Queries delivered here and not answered yet, by (LTime, ID), with their deadlines.
#[derive(Default)]
pub struct Answerable {
    pending: HashMap<(u64, u32), Instant>,
}

impl Answerable {
    pub fn delivered(&mut self, event: &QueryEvent, now: Instant) {
        self.pending.retain(|_, deadline| *deadline > now);
        self.pending.insert((event.ltime, event.id), event.deadline);
    }

    /// Claim the right to answer `event` at `now`: the encoded response if it may go out,
    /// otherwise Serf's refusal.
    pub fn answer(
        &mut self,
        event: &QueryEvent,
        from: &str,
        payload: Vec<u8>,
        size_limit: usize,
        now: Instant,
    ) -> Result<Vec<u8>, AnswerRefused> {
        let response = QueryResponseMessage {
            ltime: event.ltime,
            id: event.id,
            from: from.to_string(),
            flags: 0,
            payload,
        }
        .encode();
        if response.len() > size_limit {
            Err(AnswerRefused::TooLarge { limit: size_limit })
        } else if now > event.deadline {
            Err(AnswerRefused::PastDeadline)
        } else if self.pending.remove(&(event.ltime, event.id)).is_none() {
            Err(AnswerRefused::AlreadySent)
        } else {
            Ok(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event(deadline: Instant) -> QueryEvent {
        QueryEvent {
            deadline,
            ..crate::query::testing::event("q")
        }
    }

    #[test]
    fn a_query_is_answered_once() {
        let now = Instant::now();
        let mut answerable = Answerable::default();
        let event = event(now + Duration::from_secs(5));
        answerable.delivered(&event, now);
        assert!(
            answerable
                .answer(&event, "me", b"ok".to_vec(), 1024, now)
                .is_ok()
        );
        assert_eq!(
            answerable.answer(&event, "me", b"ok".to_vec(), 1024, now),
            Err(AnswerRefused::AlreadySent)
        );
    }

    #[test]
    fn late_and_oversized_answers_are_refused() {
        let now = Instant::now();
        let mut answerable = Answerable::default();
        let late = event(now);
        answerable.delivered(&late, now);
        let after = now + Duration::from_millis(1);
        assert_eq!(
            answerable
                .answer(&late, "me", vec![], 1024, after)
                .unwrap_err()
                .to_string(),
            "failed to respond to key query: response is past the deadline"
        );
        let fresh = event(now + Duration::from_secs(5));
        answerable.delivered(&fresh, now);
        assert_eq!(
            answerable
                .answer(&fresh, "me", vec![b'x'; 1024], 1024, now)
                .unwrap_err()
                .to_string(),
            "failed to respond to key query: response exceeds limit of 1024 bytes"
        );
        // the refusal did not use up the answer
        assert!(
            answerable
                .answer(&fresh, "me", vec![b'x'; 10], 1024, now)
                .is_ok()
        );
    }
}
