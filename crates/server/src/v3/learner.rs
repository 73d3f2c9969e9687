//! What a learner serves, as etcd 3.4: a learner has no vote and may lag, so it answers
//! only what it can answer from its own state (`Status`, a serializable `Range`) and
//! refuses every other v3 call, gRPC and gateway alike, with `Unavailable`
//! `etcdserver: rpc not supported for learner`; clients then go to another member.

use super::V3;
use tonic::Status;

pub fn refused() -> Status {
    Status::unavailable("etcdserver: rpc not supported for learner")
}

/// Refuses the call to `/<service>/<method>` on a learner unless it may serve it (a
/// `Range` is let in here and refused in [`V3::linearize`] unless serializable).
pub fn check_call(v3: &V3, path: &str) -> Result<(), Status> {
    let served = matches!(
        path,
        "/etcdserverpb.Maintenance/Status" | "/etcdserverpb.KV/Range"
    );
    if served || !v3.app.raft.is_learner() {
        Ok(())
    } else {
        Err(refused())
    }
}
