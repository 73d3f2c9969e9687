//! etcd's v3 API: the gRPC services over the one keyspace, and what they share.
//!
//! Each service turns a request into a read of the state machine or a `Request::V3` through
//! the log, and fills the response header as etcd does: the cluster, the member that
//! served the call, its Raft term, and the revision.

pub mod auth;
pub mod cluster;
pub mod concurrency;
pub mod election;
pub mod gateway;
pub mod kv;
pub mod learner;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod move_leader;
pub mod quota;
pub mod snapshot;
pub mod status;
pub mod watch;

use crate::app::App;
use musubi_proto::etcdserverpb::ResponseHeader;
use musubi_store::v3::{V3Response, V3Write};
use musubi_store::{Request, Response};
use std::sync::Arc;
use tonic::Status;

/// What every v3 service holds: the member, and the lease deadlines its leader keeps.
#[derive(Clone)]
pub struct V3 {
    pub app: Arc<App>,
    pub leases: Arc<lease::Deadlines>,
    /// The space quota and the keyspace's measured size.
    pub quota: Arc<quota::Quota>,
    /// The auth tokens this member is refreshing.
    pub refreshing: Arc<auth::Refreshing>,
    /// The watch streams' ranges, to wake each for its own keys' changes.
    pub watch_wakeups: Arc<watch::wakeups::Wakeups>,
}

impl V3 {
    pub fn new(app: Arc<App>) -> V3 {
        V3 {
            quota: Arc::new(quota::Quota::new(app.limits.quota_backend_bytes)),
            app,
            leases: Arc::new(lease::Deadlines::default()),
            refreshing: Arc::default(),
            watch_wakeups: Arc::default(),
        }
    }

    /// The header of a response at `revision` (0 leaves it out, as a cluster call does).
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.app.identity.cluster_id,
            member_id: self.app.identity.member_id,
            revision,
            raft_term: self.app.raft.position().1,
        }
    }

    /// `header`'s fields around the revision a store response carries.
    pub fn fill(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    /// Proposes `write` and waits for its response, on whichever member leads.
    pub async fn propose(&self, write: V3Write) -> Result<V3Response, Status> {
        self.propose_as(write, None).await
    }

    /// [`propose`](Self::propose) for a caller whose rights were checked at auth revision
    /// `seen`: applied only if v3 auth is off or unchanged since, else refused with
    /// etcd's `revision of auth store is old`.
    pub async fn propose_as(
        &self,
        write: V3Write,
        seen: Option<auth::Seen>,
    ) -> Result<V3Response, Status> {
        let now_ms = crate::clock::now_ms();
        let request = match seen {
            None => Request::V3 { write, now_ms },
            Some(auth_revision) => Request::V3As {
                write,
                now_ms,
                auth_revision,
            },
        };
        let applied = match tokio::time::timeout(
            self.app.limits.request_timeout,
            self.app.raft.write(request),
        )
        .await
        {
            Ok(Ok(applied)) => applied,
            Ok(Err(e)) => return Err(status::from_consensus(e)),
            Err(_) => return Err(status::timed_out()),
        };
        match applied.response {
            Response::V3 { result, .. } => result.map_err(status::from_store),
            _ => Err(Status::internal("unexpected response to a v3 request")),
        }
    }

    /// Waits until this member has applied everything committed before the call
    /// (ReadIndex), so that a read after it is linearizable.
    pub async fn linearize(&self) -> Result<(), Status> {
        // A learner serves only what its own state answers (learner.rs).
        if self.app.raft.is_learner() {
            return Err(learner::refused());
        }
        match tokio::time::timeout(
            self.app.limits.request_timeout,
            self.app.raft.linearizable_barrier(),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(status::from_consensus(e)),
            Err(_) => Err(status::timed_out()),
        }
    }
}
