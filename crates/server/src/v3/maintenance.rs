//! The Maintenance service: Status, hashes, alarms, defragmentation, leadership
//! transfer, and the snapshot stream (in `snapshot.rs`).

use super::{V3, status};
use musubi_proto::etcdserverpb::{
    self as pb, alarm_request::AlarmAction, maintenance_server::Maintenance,
};
use musubi_store::v3::{V3Response, V3Write};
use std::pin::Pin;
use tonic::{Request, Response, Status};

pub struct MaintenanceService(pub V3);

impl MaintenanceService {
    pub async fn status(&self) -> pb::StatusResponse {
        let raft = self.0.app.raft.status();
        let (revision, alarms, in_use) = {
            let sm = self.0.app.sm.read();
            let alarms = sm.alarms().get(pb::AlarmType::None as i32);
            (sm.revision(), alarms, sm.keyspace().held_bytes() as i64)
        };
        // etcd lists a missing leader, then every active alarm.
        let errors = (!raft.has_leader)
            .then(|| "etcdserver: no leader".to_string())
            .into_iter()
            .chain(alarms.iter().map(musubi_store::describe_alarm))
            .collect();
        // etcd's dbSize is its database file; musubi's is its data dir (log, snapshots).
        let size = dir_bytes(&self.0.app.data_dir) as i64;
        let me = self.0.app.identity.member_id;
        pb::StatusResponse {
            header: Some(self.0.header(revision)),
            version: crate::v2::cluster::ETCD_API_VERSION.into(),
            db_size: size,
            leader: raft.leader.filter(|_| raft.has_leader).unwrap_or(0),
            raft_index: raft.commit_index,
            raft_term: raft.term,
            raft_applied_index: raft.applied_index,
            errors,
            db_size_in_use: in_use,
            is_learner: raft.members.iter().any(|m| m.id == me && m.is_learner),
        }
    }

    /// GET reads this member's alarms once it has applied everything committed (etcd
    /// sends a GET through its log too); ACTIVATE and DEACTIVATE go through the log.
    pub async fn answer_alarm(&self, req: pb::AlarmRequest) -> Result<pb::AlarmResponse, Status> {
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => {
                self.0.linearize().await?;
                let alarms = self.0.app.sm.read().alarms().get(req.alarm);
                Ok(pb::AlarmResponse {
                    header: None,
                    alarms,
                })
            }
            Ok(AlarmAction::Activate | AlarmAction::Deactivate) => {
                match self.0.propose(V3Write::Alarm(req)).await? {
                    V3Response::Alarm(resp) => Ok(resp),
                    _ => Err(Status::internal("unexpected response to an alarm")),
                }
            }
            // etcd's applier does nothing for an action it does not know.
            Err(_) => Ok(pb::AlarmResponse::default()),
        }
    }

    /// etcd's Hash: the whole replicated state (`musubi_store::Frozen::hash`), computed
    /// on a copy, off the lock and off the async runtime.
    pub async fn state_hash(&self) -> Result<pb::HashResponse, Status> {
        let (frozen, revision) = {
            let sm = self.0.app.sm.read();
            (sm.freeze(), sm.revision())
        };
        let hash = tokio::task::spawn_blocking(move || frozen.hash())
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(pb::HashResponse {
            header: Some(self.0.header(revision)),
            hash,
        })
    }

    /// etcd's HashKV at a revision (0: the current one), computed as `state_hash`.
    pub async fn kv_hash(&self, req: pb::HashKvRequest) -> Result<pb::HashKvResponse, Status> {
        let frozen = self.0.app.sm.read().freeze();
        let kv = tokio::task::spawn_blocking(move || frozen.hash_kv(req.revision))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status::from_store)?;
        Ok(pb::HashKvResponse {
            header: Some(self.0.header(kv.revision)),
            hash: kv.hash,
            compact_revision: kv.compact_revision,
        })
    }

    /// Defragment: a snapshot now and the log purged up to it (`Consensus::compact_log`),
    /// so the data dir shrinks to the state and what was written since. etcd answers
    /// with no header.
    pub async fn compact_storage(&self) -> Result<pb::DefragmentResponse, Status> {
        self.0
            .app
            .raft
            .compact_log(self.0.app.limits.request_timeout)
            .await
            .map_err(status::from_consensus)?;
        Ok(pb::DefragmentResponse::default())
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

type SnapshotStream =
    Pin<Box<dyn futures::Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        MaintenanceService::answer_alarm(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(MaintenanceService::status(self).await))
    }

    async fn defragment(
        &self,
        request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        super::auth::admin_maintenance(&self.0, request.metadata())?;
        MaintenanceService::compact_storage(self)
            .await
            .map(Response::new)
    }

    async fn hash(
        &self,
        request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        super::auth::admin_maintenance(&self.0, request.metadata())?;
        MaintenanceService::state_hash(self)
            .await
            .map(Response::new)
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        super::auth::admin_maintenance(&self.0, request.metadata())?;
        MaintenanceService::kv_hash(self, request.into_inner())
            .await
            .map(Response::new)
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        super::auth::admin_maintenance(&self.0, request.metadata())?;
        super::snapshot::stream(&self.0).await.map(Response::new)
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        super::move_leader::move_leader(&self.0, request.into_inner())
            .await
            .map(Response::new)
    }
}
