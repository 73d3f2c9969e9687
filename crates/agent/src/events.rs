//! The events the agent reports, in Serf's terms: a member joined, left, failed or changed
//! its tags, a user event arrived, or a query asks for an answer. Member events are derived from the member table:
//! what a member's record was before a change and what it is after.

use musubi_gossip::identity::NodeId;
use musubi_gossip::membership::{MemberRecord, MemberStatus};
use musubi_gossip::query::QueryEvent;
use musubi_gossip::user_events::UserEvent;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberEventKind {
    Join,
    Leave,
    Failed,
    Update,
    /// The member was removed from the list: failed or left long enough ago (reaping),
    /// or pruned by `force-leave -prune`.
    Reap,
}

impl MemberEventKind {
    /// The name handlers filter on and see in `SERF_EVENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberEventKind::Join => "member-join",
            MemberEventKind::Leave => "member-leave",
            MemberEventKind::Failed => "member-failed",
            MemberEventKind::Update => "member-update",
            MemberEventKind::Reap => "member-reap",
        }
    }

    /// What a change to one member's record means; `None` if nothing Serf reports
    /// (a member saying it is leaving is reported when it is gone).
    pub fn of_change(before: Option<&MemberRecord>, after: &MemberRecord) -> Option<Self> {
        use MemberStatus::*;
        let before_status = before.map(|record| record.status);
        match (before_status, after.status) {
            (Some(Alive), Alive) => before
                .filter(|record| record.id.tags != after.id.tags)
                .map(|_| MemberEventKind::Update),
            (_, Alive) => Some(MemberEventKind::Join),
            (Some(Alive | Leaving | Failed), Left) => Some(MemberEventKind::Leave),
            (Some(Alive | Leaving), Failed) => Some(MemberEventKind::Failed),
            _ => None,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use MemberStatus::*;

    fn record(status: MemberStatus, role: &str) -> MemberRecord {
        MemberRecord {
            id: NodeId {
                name: "b".into(),
                addr: "127.0.0.1:1".parse().unwrap(),
                tags: [("role".to_string(), role.to_string())].into(),
                started_ms: 1,
            },
            status,
        }
    }

    fn change(
        before: Option<(MemberStatus, &str)>,
        after: (MemberStatus, &str),
    ) -> Option<&'static str> {
        let before = before.map(|(status, role)| record(status, role));
        MemberEventKind::of_change(before.as_ref(), &record(after.0, after.1)).map(|k| k.as_str())
    }

    #[test]
    fn member_changes_map_to_serfs_events() {
        assert_eq!(change(None, (Alive, "web")), Some("member-join"));
        assert_eq!(
            change(Some((Failed, "web")), (Alive, "web")),
            Some("member-join")
        );
        assert_eq!(
            change(Some((Alive, "web")), (Alive, "db")),
            Some("member-update")
        );
        assert_eq!(change(Some((Alive, "web")), (Alive, "web")), None);
        assert_eq!(change(Some((Alive, "web")), (Leaving, "web")), None);
        assert_eq!(
            change(Some((Leaving, "web")), (Left, "web")),
            Some("member-leave")
        );
        assert_eq!(
            change(Some((Failed, "web")), (Left, "web")),
            Some("member-leave")
        );
        assert_eq!(
            change(Some((Alive, "web")), (Failed, "web")),
            Some("member-failed")
        );
        assert_eq!(change(Some((Failed, "web")), (Failed, "web")), None);
        assert_eq!(change(Some((Left, "web")), (Left, "web")), None);
    }
}
