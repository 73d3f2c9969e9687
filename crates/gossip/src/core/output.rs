//! What the core hands its driver after each input ([`Output`]), and the refusals of its
//! commands ([`CommandError`], in Serf's words).

use crate::identity::NodeId;
use crate::membership::{MemberRecord, MemberStatus};
use crate::query::QueryEvent;
use crate::query::answers::AnswerRefused;
use crate::user_events::{UserEvent, UserEventError};
use std::net::SocketAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Bytes ready for the wire (compressed and sealed) to one member.
    Send {
        to: SocketAddr,
        datagram: Vec<u8>,
        transport: Transport,
    },
    Event(Event),
}

/// How a datagram leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// One whole datagram per frame over a stream connection: too big for UDP
    /// ([`super::UDP_DATAGRAM_MAX`]).
    Stream,
}

/// What Serf reports, and what the driver must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A member's record changed in a way Serf reports (this member's own join first).
    Member {
        kind: MemberEventKind,
        member: NodeId,
    },
    /// A user event seen here for the first time (sent from here or received).
    User(UserEvent),
    /// A query for this member (not a `_serf_*` one, which the core answers itself).
    Query(QueryEvent),
    /// An ack, response or the end (`Done`, at its timeout) of our query sent at `ltime`.
    QueryRecord {
        ltime: u64,
        record: crate::query::QueryRecord,
    },
    /// A member asked by [`super::Core::request_events`] told us its event clock.
    EventsCaughtUp,
    /// We lost our name in a conflict vote: as Serf, the member stops without a leave and
    /// the driver should exit.
    NameLost,
}

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

/// A command the core refused; the Display is Serf's wording.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("Failed to update tags: the agent has left the cluster")]
    TagsAfterLeave,
    #[error("Failed to update tags: {0}")]
    Tags(foca::Error),
    #[error(transparent)]
    UserEventSize(#[from] UserEventError),
    #[error("Failed to send user event: {0}")]
    UserEvent(DisseminateError),
    #[error("query exceeds limit of {limit} bytes")]
    QueryTooLarge { limit: usize },
    #[error("Failed to send query: {0}")]
    Query(DisseminateError),
    #[error(transparent)]
    Answer(#[from] AnswerRefused),
}

/// Why a user event or query did not go out.
#[derive(Debug, thiserror::Error)]
pub enum DisseminateError {
    #[error(transparent)]
    Swim(#[from] foca::Error),
    #[error(transparent)]
    Malformed(#[from] crate::broadcasts::MalformedBroadcast),
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
