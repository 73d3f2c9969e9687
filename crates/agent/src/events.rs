//! The events the agent reports, in Serf's terms: a member joined, left, failed or changed
//! its tags, a user event arrived, or a query asks for an answer. Member events come from
//! the core ([`MemberEventKind::of_change`]).

pub use musubi_gossip::core::MemberEventKind;
use musubi_gossip::identity::NodeId;
use musubi_gossip::query::QueryEvent;
use musubi_gossip::user_events::UserEvent;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEvent {
    Member {
        kind: MemberEventKind,
        members: Vec<NodeId>,
    },
    User(UserEvent),
    Query(QueryEvent),
}

impl AgentEvent {
    /// `SERF_EVENT`'s value.
    pub fn type_name(&self) -> &'static str {
        match self {
            AgentEvent::Member { kind, .. } => kind.as_str(),
            AgentEvent::User(_) => "user",
            AgentEvent::Query(_) => "query",
        }
    }
}

/// As Serf's agent logs it: `member-join`, `user-event: deploy`, `query: uptime`.
impl fmt::Display for AgentEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentEvent::Member { kind, .. } => f.write_str(kind.as_str()),
            AgentEvent::User(event) => write!(f, "user-event: {}", event.name),
            AgentEvent::Query(query) => write!(f, "query: {}", query.name),
        }
    }
}
