//! MoveLeader (`etcdctl move-leader`, `/v3/maintenance/transfer-leadership`): the leader
//! hands its leadership to a voter. As in etcd, only the leader takes the call; a follower
//! answers `etcdserver: not leader`, and etcdctl asks every endpoint it was given for the
//! one that leads.

use super::V3;
use musubi_consensus::TransferError;
use musubi_proto::etcdserverpb as pb;
use tonic::{Code, Status};

/// Moves the leadership to `request.target_id`; the reply has no header, as etcd's.
pub async fn move_leader(
    v3: &V3,
    request: pb::MoveLeaderRequest,
) -> Result<pb::MoveLeaderResponse, Status> {
    let timeout = v3.app.limits.request_timeout;
    match v3
        .app
        .raft
        .transfer_leadership(request.target_id, timeout)
        .await
    {
        Ok(()) => Ok(pb::MoveLeaderResponse::default()),
        Err(e) => Err(to_status(e)),
    }
}

/// etcd's codes: a refusal is FailedPrecondition, a transfer that did not finish (or a
/// stopping member) Unavailable, so the client may retry.
fn to_status(e: TransferError) -> Status {
    let code = match e {
        TransferError::NotLeader | TransferError::BadTransferee => Code::FailedPrecondition,
        TransferError::TimedOut | TransferError::Stopped => Code::Unavailable,
    };
    Status::new(code, e.to_string())
}
