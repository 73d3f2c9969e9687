//! Queries the agent answers itself (`_serf_*`): never shown to handlers or RPC streams.
//! Each name maps to a function from the query's payload to the response, if any; acks
//! are sent as for any query. `_serf_ping` (`serf reachability`) needs only the ack. Other
//! modules register theirs (the key ring's `_serf_install-key`, ...).

use std::collections::HashMap;
use std::time::Instant;

/// From a query's payload and the time it arrived to the response, if any.
pub type InternalQueryHandler = Box<dyn Fn(&[u8], Instant) -> Option<Vec<u8>> + Send + Sync>;

pub struct InternalQueries {
    handlers: HashMap<String, InternalQueryHandler>,
}

impl Default for InternalQueries {
    fn default() -> Self {
        let mut queries = InternalQueries {
            handlers: HashMap::new(),
        };
        queries.register(super::PING, Box::new(|_, _| None));
        queries
    }
}

impl InternalQueries {
    pub fn register(&mut self, name: &str, handler: InternalQueryHandler) {
        self.handlers.insert(name.to_string(), handler);
    }

    /// `None` if no handler has the name; `Some(response)` otherwise.
    pub fn answer(&self, name: &str, payload: &[u8], now: Instant) -> Option<Option<Vec<u8>>> {
        self.handlers.get(name).map(|handler| handler(payload, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_is_known_and_answered_by_its_ack_alone() {
        let mut queries = InternalQueries::default();
        let now = Instant::now();
        assert_eq!(queries.answer("_serf_ping", b"", now), Some(None));
        assert_eq!(queries.answer("_serf_list-keys", b"", now), None);
        queries.register("_serf_echo", Box::new(|payload, _| Some(payload.to_vec())));
        assert_eq!(
            queries.answer("_serf_echo", b"x", now),
            Some(Some(b"x".to_vec()))
        );
    }
}
