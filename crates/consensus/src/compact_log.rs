//! Storage compaction on request (the v3 Defragment): a snapshot of everything applied,
//! then the log purged up to it, so the data dir holds the state and little else.
//!
//! etcd's defragmentation rewrites its database file without its free pages. musubi's
//! state lives in memory; what grows on disk is the log between snapshots (and its
//! preallocated segments), which only a snapshot lets go of. The snapshot is openraft's
//! own (`trigger().snapshot()`, as the `--snapshot-count` policy takes them), and so is
//! the purge (`trigger().purge_log`); entries a lagging follower still needs are purged
//! once it has them, and a follower too far behind then gets the snapshot.

use crate::{Consensus, ConsensusError};
use openraft::async_runtime::watch::WatchReceiver;
use std::time::Duration;

/// How long a purge may wait for the followers' replication before it is left to finish
/// in the background.
const PURGE_WAIT: Duration = Duration::from_secs(2);

impl Consensus {
    /// Takes a snapshot of everything applied now and purges the log up to it. Returns
    /// once the snapshot is durable (within `timeout`) and the purge is done, or the
    /// purge has waited `PURGE_WAIT` for a follower (it then finishes in the background).
    pub async fn compact_log(&self, timeout: Duration) -> Result<(), ConsensusError> {
        let applied = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            m.last_applied.map_or(0, |id| id.index)
        };
        self.raft.trigger().snapshot().await?;
        let snapshot = self
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= applied),
                "snapshot taken",
            )
            .await
            .map_err(|e| ConsensusError::Unavailable(format!("no snapshot: {e}")))?
            .snapshot
            .map_or(0, |s| s.index);
        self.raft.trigger().purge_log(snapshot).await?;
        let purged = self
            .raft
            .wait(Some(PURGE_WAIT))
            .metrics(
                |m| m.purged.is_some_and(|p| p.index >= snapshot),
                "log purged",
            )
            .await;
        if let Err(e) = purged {
            tracing::info!(upto = snapshot, error = %e, "the log is purged once followers have caught up");
        }
        Ok(())
    }
}
