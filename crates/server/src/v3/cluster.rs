//! The Cluster service: etcd's member list and member management over the membership
//! the consensus layer runs (the same members and the same changes as `/v2/members` and
//! `musubi cluster`: each RPC is one `Consensus::change_membership`).
//!
//! A reply lists the members as the member that served the call sees them once the
//! change has reached it, as etcd's does. A member added to vote is listed as a learner
//! until it has caught up and the leader promotes it (docs/v3-api.md, "Cluster").

use super::{V3, status};
use musubi_consensus::{ConsensusError, MemberInfo, MembershipChange, MembershipError};
use musubi_proto::etcdserverpb::{self as pb, cluster_server::Cluster};
use std::time::Duration;
use tonic::{Code, Request, Response, Status};

/// How long a reply waits for a change committed on the leader to reach this member.
const SETTLE: Duration = Duration::from_secs(2);

pub struct ClusterService(pub V3);

impl ClusterService {
    pub fn member_list(&self) -> pb::MemberListResponse {
        pb::MemberListResponse {
            header: Some(self.header()),
            members: to_proto(self.0.app.raft.status().members),
        }
    }

    /// Cluster calls carry no revision, as etcd's.
    fn header(&self) -> pb::ResponseHeader {
        self.0.header(0)
    }

    /// Runs `change` on the leader; returns the member it changed and the members once
    /// this member sees the change (`gone`: the change removes the member).
    async fn change(
        &self,
        change: MembershipChange,
        gone: bool,
    ) -> Result<(MemberInfo, Vec<pb::Member>), Status> {
        let raft = &self.0.app.raft;
        let member = match tokio::time::timeout(
            self.0.app.limits.request_timeout,
            raft.change_membership(change),
        )
        .await
        {
            Ok(Ok(member)) => member,
            Ok(Err(e)) => return Err(from_consensus(e)),
            Err(_) => return Err(status::timed_out()),
        };
        let (id, want) = (member.id, (!gone).then(|| member.clone()));
        let members = raft
            .members_once(move |list| shows(list, id, want.as_ref()), SETTLE)
            .await;
        Ok((member, to_proto(members)))
    }
}

/// `list` holds `want` (its peer URLs, and a voter if `want` is one), or lacks `id` when
/// `want` is None. A member added to vote may be promoted before this member looks.
fn shows(list: &[MemberInfo], id: u64, want: Option<&MemberInfo>) -> bool {
    match (list.iter().find(|m| m.id == id), want) {
        (None, None) => true,
        (Some(m), Some(w)) => m.peer_urls == w.peer_urls && (w.is_learner || !m.is_learner),
        _ => false,
    }
}

fn to_proto(members: Vec<MemberInfo>) -> Vec<pb::Member> {
    members.into_iter().map(member).collect()
}

fn member(m: MemberInfo) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

/// A refused change as etcd's gRPC error (its `toGRPCErrorMap`); consensus failures as
/// every other v3 call reports them.
fn from_consensus(e: ConsensusError) -> Status {
    let ConsensusError::Membership(e) = e else {
        return status::from_consensus(e);
    };
    let (code, message) = match e {
        MembershipError::NotFound(_) => (Code::NotFound, "member not found"),
        MembershipError::BadPeerUrl(_) => (Code::InvalidArgument, "given member URLs are invalid"),
        MembershipError::PeerUrlExists(_) => (Code::FailedPrecondition, "Peer URLs already exists"),
        MembershipError::NotLearner(_) => (
            Code::FailedPrecondition,
            "can only promote a learner member",
        ),
        MembershipError::LearnerNotReady(_) => (
            Code::FailedPrecondition,
            "can only promote a learner member which is in sync with leader",
        ),
        MembershipError::TooManyLearners => (
            Code::FailedPrecondition,
            "too many learner members in cluster",
        ),
        MembershipError::NotEnoughStarted => (
            Code::FailedPrecondition,
            "re-configuration failed due to not enough started members",
        ),
        MembershipError::Unhealthy => (Code::Unavailable, "unhealthy cluster"),
    };
    Status::new(code, format!("etcdserver: {message}"))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        super::auth::admin(&self.0, request.metadata())?;
        let r = request.into_inner();
        let change = MembershipChange::Add {
            name: String::new(),
            peer_urls: r.peer_ur_ls,
            client_urls: Vec::new(),
            is_learner: r.is_learner,
        };
        let (added, members) = self.change(change, false).await?;
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(self.header()),
            member: Some(member(added)),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        super::auth::admin(&self.0, request.metadata())?;
        let change = MembershipChange::Remove {
            id: request.into_inner().id,
        };
        let (_, members) = self.change(change, true).await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: Some(self.header()),
            members,
        }))
    }

    async fn member_update(
        &self,
        request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        super::auth::admin(&self.0, request.metadata())?;
        let r = request.into_inner();
        let change = MembershipChange::UpdatePeerUrls {
            id: r.id,
            peer_urls: r.peer_ur_ls,
        };
        let (_, members) = self.change(change, false).await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: Some(self.header()),
            members,
        }))
    }

    async fn member_list(
        &self,
        _: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        Ok(Response::new(ClusterService::member_list(self)))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        super::auth::admin(&self.0, request.metadata())?;
        let change = MembershipChange::Promote {
            id: request.into_inner().id,
        };
        let (_, members) = self.change(change, false).await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: Some(self.header()),
            members,
        }))
    }
}
