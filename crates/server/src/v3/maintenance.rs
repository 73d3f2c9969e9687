//! The Maintenance service: Status, hashes, alarms, defragmentation, leadership
//! transfer, and the snapshot stream (in `snapshot.rs`).

use super::V3;
use musubi_proto::etcdserverpb::{self as pb, maintenance_server::Maintenance};
use std::pin::Pin;
use tonic::{Request, Response, Status};

pub struct MaintenanceService(pub V3);

impl MaintenanceService {
    pub fn status(&self) -> pb::StatusResponse {
        let raft = self.0.app.raft.status();
        let (revision, in_use) = {
            let sm = self.0.app.sm.read();
            (sm.revision(), sm.keyspace().approximate_bytes() as i64)
        };
        // etcd's dbSize is its database file; musubi's is its data dir (log, snapshots).
        let size = dir_bytes(&self.0.app.data_dir) as i64;
        let me = self.0.app.identity.member_id;
        pb::StatusResponse {
            header: Some(self.0.header(revision)),
            version: crate::v2::cluster::ETCD_API_VERSION.into(),
            db_size: size,
            leader: raft.leader.unwrap_or(0),
            raft_index: raft.commit_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors: Vec::new(),
            db_size_in_use: in_use,
            is_learner: raft.members.iter().any(|m| m.id == me && m.is_learner),
        }
    }
}

/// Bytes of the files below `dir`.
pub(crate) fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn later() -> Status {
    Status::unimplemented("musubi does not serve this RPC yet")
}

type SnapshotStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        _: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        Err(later())
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(MaintenanceService::status(self)))
    }

    async fn defragment(
        &self,
        _: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        Err(later())
    }

    async fn hash(
        &self,
        _: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        Err(later())
    }

    async fn hash_kv(
        &self,
        _: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        Err(later())
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _: Request<pb::SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        super::snapshot::stream(&self.0).await.map(Response::new)
    }

    async fn move_leader(
        &self,
        _: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(later())
    }
}
