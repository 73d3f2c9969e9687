//! The answering member's side: the queries delivered here that may still be answered.
//! A query is answered once (a handler's output or an RPC `respond`, whichever comes
//! first) and only before its deadline; both refusals use Serf's words.

use super::QueryEvent;
use super::message::QueryResponseMessage;
use std::collections::HashMap;
use tokio::time::Instant;

/// Queries delivered here and not answered yet, by (LTime, ID), with their deadlines.
#[derive(Default)]
pub struct Answerable {
    pending: HashMap<(u64, u32), Instant>,
}

impl Answerable {
    pub fn delivered(&mut self, event: &QueryEvent) {
        let now = Instant::now();
        self.pending.retain(|_, deadline| *deadline > now);
        self.pending.insert((event.ltime, event.id), event.deadline);
    }

    /// Claim the right to answer `event`: the encoded response if it may go out, otherwise
    /// Serf's error.
    pub fn answer(
        &mut self,
        event: &QueryEvent,
        from: &str,
        payload: Vec<u8>,
        size_limit: usize,
    ) -> Result<Vec<u8>, String> {
        let response = QueryResponseMessage {
            ltime: event.ltime,
            id: event.id,
            from: from.to_string(),
            flags: 0,
            payload,
        }
        .encode();
        let refusal = if response.len() > size_limit {
            Some(format!("response exceeds limit of {size_limit} bytes"))
        } else if Instant::now() > event.deadline {
            Some("response is past the deadline".to_string())
        } else if self.pending.remove(&(event.ltime, event.id)).is_none() {
            Some("response already sent".to_string())
        } else {
            None
        };
        match refusal {
            Some(why) => Err(format!("failed to respond to key query: {why}")),
            None => Ok(response),
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
            ..crate::query::tests::event("q")
        }
    }

    #[test]
    fn a_query_is_answered_once() {
        let mut answerable = Answerable::default();
        let event = event(Instant::now() + Duration::from_secs(5));
        answerable.delivered(&event);
        assert!(
            answerable
                .answer(&event, "me", b"ok".to_vec(), 1024)
                .is_ok()
        );
        assert_eq!(
            answerable.answer(&event, "me", b"ok".to_vec(), 1024),
            Err("failed to respond to key query: response already sent".into())
        );
    }

    #[test]
    fn late_and_oversized_answers_are_refused() {
        let mut answerable = Answerable::default();
        let late = event(Instant::now() - Duration::from_millis(1));
        answerable.delivered(&late);
        assert_eq!(
            answerable.answer(&late, "me", vec![], 1024),
            Err("failed to respond to key query: response is past the deadline".into())
        );
        let fresh = event(Instant::now() + Duration::from_secs(5));
        answerable.delivered(&fresh);
        assert_eq!(
            answerable.answer(&fresh, "me", vec![b'x'; 1024], 1024),
            Err("failed to respond to key query: response exceeds limit of 1024 bytes".into())
        );
        // the refusal did not use up the answer
        assert!(
            answerable
                .answer(&fresh, "me", vec![b'x'; 10], 1024)
                .is_ok()
        );
    }
}
