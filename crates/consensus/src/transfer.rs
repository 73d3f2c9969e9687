//! Moving the leadership on request (etcd's MoveLeader, `etcdctl move-leader`): the leader
//! asks a caught-up voter to campaign at once (openraft's transfer trigger), then waits
//! until it sees that voter lead.

use crate::Consensus;
use openraft::async_runtime::watch::WatchReceiver;
use std::time::Duration;

/// Why the leadership did not move. The messages are etcd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// This member does not lead; nothing was done. Ask the leader.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// The target is not a voting member; nothing was done.
    #[error("etcdserver: bad leader transferee")]
    BadTransferee,
    /// The transfer was asked for but the target did not take over in time; it still may.
    #[error("etcdserver: request timed out, leader transfer took too long")]
    TimedOut,
    /// Raft has stopped.
    #[error("etcdserver: server stopped")]
    Stopped,
}

impl Consensus {
    /// Makes voter `to` the leader; this member must lead. Moving it to the leader itself
    /// succeeds at once, as in etcd.
    pub async fn transfer_leadership(
        &self,
        to: u64,
        timeout: Duration,
    ) -> Result<(), TransferError> {
        if !self.is_leader() {
            return Err(TransferError::NotLeader);
        }
        let voter = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            m.membership_config.voter_ids().any(|id| id == to)
        };
        // A learner, even one musubi will promote once caught up, cannot lead yet.
        if !voter {
            return Err(TransferError::BadTransferee);
        }
        if to == self.node_id {
            return Ok(());
        }
        tracing::info!(to = %format!("{to:x}"), "moving the leadership on request");
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|_| TransferError::Stopped)?;
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader == Some(to), "leadership moved")
            .await
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => TransferError::TimedOut,
                _ => TransferError::Stopped,
            })?;
        Ok(())
    }
}
