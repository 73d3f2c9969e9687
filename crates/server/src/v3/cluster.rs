//! The Cluster service: etcd's member list and member management over the membership
//! the consensus layer runs (the same members `/v2/members` shows).

use super::V3;
use musubi_proto::etcdserverpb::{self as pb, cluster_server::Cluster};
use tonic::{Request, Response, Status};

pub struct ClusterService(pub V3);

impl ClusterService {
    pub fn member_list(&self) -> pb::MemberListResponse {
        let status = self.0.app.raft.status();
        pb::MemberListResponse {
            // Cluster calls carry no revision, as etcd's.
            header: Some(self.0.header(0)),
            members: status
                .members
                .into_iter()
                .map(|m| pb::Member {
                    id: m.id,
                    name: m.name,
                    peer_ur_ls: m.peer_urls,
                    client_ur_ls: m.client_urls,
                    is_learner: m.is_learner,
                })
                .collect(),
        }
    }
}

fn later() -> Status {
    Status::unimplemented("musubi does not serve this RPC yet")
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(later())
    }

    async fn member_remove(
        &self,
        _: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(later())
    }

    async fn member_update(
        &self,
        _: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(later())
    }

    async fn member_list(
        &self,
        _: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        Ok(Response::new(ClusterService::member_list(self)))
    }

    async fn member_promote(
        &self,
        _: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        Err(later())
    }
}
