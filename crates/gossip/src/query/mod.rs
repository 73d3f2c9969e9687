//! Serf's queries (`serf query NAME PAYLOAD`): a request gossiped to every member, which
//! each member it is meant for acks and answers straight back to the origin.
//!
//! - [`message`]: the query, ack/response and relay messages on the wire.
//! - [`filters`]: `-node` and `-tag` filters.
//! - [`gossip`]: the receiving half inside foca's custom broadcasts: stamps, de-duplicates
//!   by (LTime, ID), hands first sightings to the node.
//! - [`origin`]: the asking member's side: collects acks and responses per node until the
//!   timeout, then says `Done`.
//! - [`answers`]: the answering member's side: which delivered queries may still be
//!   answered, and the response size limit.
//! - [`internal`]: `_serf_*` queries answered by the agent itself (`_serf_ping`, and the
//!   key queries other modules register).
//!
//! The agent's node task ties them to the socket and the member table.

pub mod answers;
pub mod filters;
pub mod gossip;
mod internal;
pub mod message;
pub mod origin;

pub use internal::InternalQueries;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use std::time::Instant;

/// Queries whose names start with this are the agent's own.
pub const INTERNAL_PREFIX: &str = "_serf_";
/// The one internal query an RPC client may send (`serf reachability`).
pub const PING: &str = "_serf_ping";

/// memberlist's LAN gossip interval and Serf's `QueryTimeoutMult`.
const GOSSIP_INTERVAL: Duration = Duration::from_millis(200);
const QUERY_TIMEOUT_MULT: u32 = 16;

/// Serf's default: gossip interval × 16 × ceil(log10(N + 1)), N the live members.
pub fn default_timeout(alive_members: usize) -> Duration {
    let scale = ((alive_members as f64) + 1.0).log10().ceil().max(0.0) as u32;
    GOSSIP_INTERVAL * QUERY_TIMEOUT_MULT * scale
}

/// Serf's `query_size_limit` and `query_response_size_limit` (agent config keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// The encoded query, Serf's type byte included.
    pub query_size: usize,
    /// The encoded response, its type byte included.
    pub response_size: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            query_size: 1024,
            response_size: 1024,
        }
    }
}

/// What the asker wants: Serf's `QueryParam` plus the name and payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryParams {
    pub name: String,
    pub payload: Vec<u8>,
    /// Only these members answer (none: everyone).
    pub filter_nodes: Vec<String>,
    /// Only members whose tags match these patterns answer.
    pub filter_tags: BTreeMap<String, String>,
    pub request_ack: bool,
    /// Each answer is also sent through this many other members.
    pub relay_factor: u8,
    /// `None`: [`default_timeout`].
    pub timeout: Option<Duration>,
}

/// What the asker hears, in order; `Done` last, at the timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryRecord {
    Ack { from: String },
    Response { from: String, payload: Vec<u8> },
    Done,
}

/// A query delivered to this member, as handlers and RPC streams see it, with what it
/// takes to answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryEvent {
    pub ltime: u64,
    pub id: u32,
    pub name: String,
    pub payload: Vec<u8>,
    /// Where the answer goes.
    pub origin: SocketAddr,
    pub source_node: String,
    pub relay_factor: u8,
    /// No answer after this.
    pub deadline: Instant,
}

/// Fixtures for tests here and in the crates that deliver queries (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use super::*;

    /// A delivered query named `name`, already past its deadline, for tests to adjust.
    pub fn event(name: &str) -> QueryEvent {
        QueryEvent {
            ltime: 1,
            id: 1,
            name: name.into(),
            payload: vec![],
            origin: "127.0.0.1:1".parse().unwrap(),
            source_node: "o".into(),
            relay_factor: 0,
            deadline: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_timeout_grows_with_the_log_of_the_cluster() {
        let ms = |n| default_timeout(n).as_millis();
        assert_eq!(ms(1), 3200);
        assert_eq!(ms(9), 3200);
        assert_eq!(ms(10), 6400);
        assert_eq!(ms(99), 6400);
        assert_eq!(ms(100), 9600);
    }
}
