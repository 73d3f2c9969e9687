//! openraft's state machine over the shared `musubi_store::StateMachine`.
//!
//! Entries are applied in chunks under one write lock; the [`ApplyHook`] sees each response
//! while that lock is held, and clients get their responses after it is released. The last
//! applied log id and membership change under the same lock, so a snapshot taken under the
//! read lock is always consistent with them.

use crate::snapshot::SnapshotStore;
use crate::{
    ApplyHook, LogId, SharedStateMachine, Snapshot, SnapshotMeta, StoredMembership, TypeConfig,
};
use futures::{Stream, StreamExt};
use musubi_raftlog::fs::{self, Fs};
use musubi_store::{Frozen, Outcome, Response, StateMachine};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use parking_lot::Mutex;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries applied under one acquisition of the write lock, at most.
const APPLY_CHUNK: usize = 1024;

/// The state machine openraft drives. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

struct Shared {
    sm: SharedStateMachine,
    hook: ApplyHook,
    /// The last applied log id and membership: changed only under `sm`'s write lock.
    applied: Mutex<SnapshotMeta>,
    /// `applied`'s last index plus one (0: none), stored after each chunk: every write asks
    /// for it, and `applied` is held for as long as a chunk takes to apply.
    applied_index: AtomicU64,
    snapshots: SnapshotStore,
}

impl StateMachineStore {
    /// Restores `sm` from the snapshot in `snap_dir`, if there is one.
    pub fn open(sm: SharedStateMachine, hook: ApplyHook, snap_dir: PathBuf) -> io::Result<Self> {
        Self::open_on(fs::real(), sm, hook, snap_dir)
    }

    /// [`StateMachineStore::open`] with snapshots on the file system `fs` (a simulated disk
    /// in the simulation).
    pub fn open_on(
        fs: Arc<dyn Fs>,
        sm: SharedStateMachine,
        hook: ApplyHook,
        snap_dir: PathBuf,
    ) -> io::Result<Self> {
        let (snapshots, found) = SnapshotStore::open(fs, snap_dir)?;
        let mut applied = SnapshotMeta::default();
        if let Some(Snapshot { meta, snapshot }) = found {
            *sm.write() = StateMachine::from_snapshot(&snapshot)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            tracing::info!(last_log_id = ?meta.last_log_id, "restored the state machine from a snapshot");
            applied = meta;
        }
        Ok(Self {
            shared: Arc::new(Shared {
                sm,
                hook,
                applied_index: AtomicU64::new(index_plus_one(&applied)),
                applied: Mutex::new(applied),
                snapshots,
            }),
        })
    }

    /// Waits for a snapshot being saved and refuses later ones, so that a member that shut
    /// down leaves no writer behind in its data dir. Call it after `Raft::shutdown`.
    pub async fn close(&self) {
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.snapshots.close()).await;
    }

    /// The index of the last entry applied: exact the moment a reply leaves `apply`, where
    /// openraft's metrics report it a loop iteration later.
    pub fn applied_index(&self) -> Option<u64> {
        self.shared
            .applied_index
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// A copy of the state and the last log entry applied to it: see [`Shared::freeze`].
    pub fn freeze(&self) -> (Option<LogId>, Frozen) {
        let (meta, frozen) = self.shared.freeze();
        (meta.last_log_id, frozen)
    }

    /// Applies one chunk under the write lock and returns the replies owed to clients.
    fn apply_chunk(
        &self,
        chunk: Vec<EntryResponder<TypeConfig>>,
    ) -> Vec<(openraft::storage::ApplyResponder<TypeConfig>, Response)> {
        let mut replies = Vec::with_capacity(chunk.len());
        let mut sm = self.shared.sm.write();
        let mut applied = self.shared.applied.lock();
        for (entry, responder) in chunk {
            let response = match entry.payload {
                EntryPayload::Normal(proposal) => {
                    match sm.apply_proposal(&proposal, entry.log_id.index) {
                        Outcome::Applied(response) => {
                            (self.shared.hook)(&response);
                            Some(response)
                        }
                        // A retry of a write applied before: watchers saw it then. Or one
                        // that may have been, and was refused: nothing to see.
                        outcome => Some(outcome.into_response()),
                    }
                }
                EntryPayload::Membership(membership) => {
                    // Under the same lock as the membership itself, in log order: every
                    // member records the same removals (etcd's removed-member store).
                    let before = applied
                        .last_membership
                        .membership()
                        .nodes()
                        .map(|(id, _)| *id);
                    let after = membership.nodes().map(|(id, _)| *id).collect();
                    sm.record_membership(before, &after);
                    applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    None
                }
                EntryPayload::Blank => None,
            };
            applied.last_log_id = Some(entry.log_id);
            if let Some(responder) = responder {
                // Blank and membership entries change no key; an empty expiry says just that.
                replies.push((responder, response.unwrap_or(Response::Expired(Vec::new()))));
            }
        }
        // Before any reply of the chunk leaves.
        self.shared.record_applied(&applied);
        replies
    }
}

impl Shared {
    /// Publishes `applied`'s last index to [`StateMachineStore::applied_index`].
    fn record_applied(&self, applied: &SnapshotMeta) {
        self.applied_index
            .store(index_plus_one(applied), Ordering::Release);
    }

    /// Copies the state and what was applied to it under the read lock (O(1): persistent
    /// maps), so the two agree and the caller serialises the copy after the lock is gone.
    fn freeze(&self) -> (SnapshotMeta, Frozen) {
        let sm = self.sm.read();
        let meta = self.applied.lock().clone();
        (meta, sm.freeze())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = Vec<u8>;

    /// Copies the state under the read lock, then serialises it into the file as it goes,
    /// all on a blocking thread, so neither the apply loop nor the async runtime waits for
    /// the disk, and the snapshot is never whole in memory (at 1M keys it is ~220 MB of
    /// JSON, which a buffer would add to the member's peak).
    ///
    /// The returned snapshot carries no data: openraft keeps only the meta of a snapshot
    /// it had built (`BuildSnapshotDone(meta)`, openraft =0.10.0-alpha.37, pinned), and
    /// reads the data from [`RaftStateMachine::get_current_snapshot`], i.e. the file, when
    /// a follower needs it.
    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let shared = self.shared.clone();
        let (meta, saved) = tokio::task::spawn_blocking(move || {
            // Serialised after the lock is released, so writes go on meanwhile.
            let (meta, frozen) = shared.freeze();
            let saved = shared
                .snapshots
                .save_streamed(&meta, |out| frozen.write_to(out))?;
            io::Result::Ok((meta, saved))
        })
        .await
        .map_err(io::Error::other)??;
        match saved {
            Some(bytes) => {
                tracing::info!(last_log_id = ?meta.last_log_id, bytes, "saved a snapshot")
            }
            None => {
                tracing::info!(last_log_id = ?meta.last_log_id, "a later snapshot is saved already")
            }
        }
        Ok(Snapshot {
            meta,
            snapshot: Vec::new(),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let applied = self.shared.applied.lock();
        Ok((applied.last_log_id, applied.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        let mut done = false;
        while !done {
            let mut chunk = Vec::new();
            while chunk.len() < APPLY_CHUNK {
                match entries.next().await {
                    Some(item) => chunk.push(item?),
                    None => {
                        done = true;
                        break;
                    }
                }
            }
            for (responder, response) in self.apply_chunk(chunk) {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Vec<u8>) -> io::Result<()> {
        let shared = self.shared.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            let restored = StateMachine::from_snapshot(&snapshot)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            shared.snapshots.save(&meta, &snapshot)?;
            let mut sm = shared.sm.write();
            *sm = restored;
            tracing::info!(last_log_id = ?meta.last_log_id, bytes = snapshot.len(), "installed a snapshot from the leader");
            let mut applied = shared.applied.lock();
            *applied = meta;
            shared.record_applied(&applied);
            io::Result::Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.snapshots.load())
            .await
            .map_err(io::Error::other)?
    }
}

/// The last applied index plus one, 0 if none: how `Shared::applied_index` holds it.
fn index_plus_one(applied: &SnapshotMeta) -> u64 {
    applied.last_log_id.map_or(0, |id| id.index + 1)
}
