//! The latest snapshot on disk: one file, `current.snap`, replaced atomically.
//!
//! It holds two framed parts: openraft's metadata (last applied log id and last membership,
//! as JSON) and the store's own snapshot bytes. Only the newest snapshot is kept; the log
//! before it is purged by openraft once the snapshot is durable.

use crate::{LogId, Member, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, config};
use musubi_raftlog::durable;
use musubi_raftlog::fs::{self, Fs};
use openraft::Membership;
use openraft::type_config::alias::LeaderIdOf;
use openraft::vote::RaftLeaderIdExt;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FILE: &str = "current.snap";

pub(crate) struct SnapshotStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    /// Serialises writers (a build and an install may race) and remembers what is on disk.
    current: Mutex<Current>,
}

struct Current {
    meta: Option<SnapshotMeta>,
    /// Set on shutdown: a build still running then must not write into a data dir that the
    /// next incarnation of this member may already have opened.
    closed: bool,
}

impl SnapshotStore {
    /// Opens the directory and returns the snapshot found there, if any.
    pub(crate) fn open(fs: Arc<dyn Fs>, dir: PathBuf) -> io::Result<(Self, Option<Snapshot>)> {
        let found = load(&*fs, &dir)?;
        let meta = found.as_ref().map(|s| s.meta.clone());
        Ok((
            Self {
                fs,
                dir,
                current: Mutex::new(Current {
                    meta,
                    closed: false,
                }),
            },
            found,
        ))
    }

    /// Makes `meta`/`data` the current snapshot, durably, unless a newer one is already there.
    /// Blocks on fsync: call it from a blocking thread.
    pub(crate) fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        self.save_streamed(meta, |out| out.write_all(data))
            .map(drop)
    }

    /// [`SnapshotStore::save`] with the data written by `write` as it is produced, so that
    /// it is never whole in memory. Returns its length (`None`: a later snapshot is saved
    /// already, and this one is not).
    pub(crate) fn save_streamed(
        &self,
        meta: &SnapshotMeta,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<Option<u64>> {
        let mut current = self.current.lock();
        if current.closed {
            return Err(io::Error::other(
                "the member is shutting down; snapshot not saved",
            ));
        }
        if current
            .meta
            .as_ref()
            .is_some_and(|c| c.last_log_id > meta.last_log_id)
        {
            return Ok(None);
        }
        let head = serde_json::to_vec(meta).map_err(io::Error::other)?;
        let started = std::time::Instant::now();
        let len = durable::write_atomic_streamed_on(&*self.fs, &self.dir, FILE, &[&head], write)?;
        // The applied state reaching the disk apart from the log: what etcd's backend
        // commit is, under etcd's name (docs/operations.md).
        metrics::histogram!("etcd_disk_backend_commit_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        current.meta = Some(meta.clone());
        Ok(Some(len))
    }

    /// Waits for a save in progress, then refuses further saves. Blocks.
    pub(crate) fn close(&self) {
        self.current.lock().closed = true;
    }

    /// Reads the current snapshot back. Blocks on file I/O.
    pub(crate) fn load(&self) -> io::Result<Option<Snapshot>> {
        let _writers = self.current.lock();
        load(&*self.fs, &self.dir)
    }
}

/// Seeds the data dir of a member of a new cluster restored from a backup (`musubi
/// snapshot restore`): its first snapshot holds the backup's state and `members` as the
/// membership, at the log position `initialize` would have given the membership (term 0,
/// index 0). Every member restored from the same backup with the same members gets the
/// identical snapshot, so they start as one cluster: openraft sees an initialized member
/// whose log is purged up to the snapshot, and they elect a leader as after `initialize`.
pub fn write_restored(
    data_dir: &Path,
    members: BTreeMap<u64, Member>,
    data: &[u8],
) -> io::Result<()> {
    let voters = members.keys().copied().collect::<BTreeSet<u64>>();
    let membership = Membership::new(vec![voters], members).map_err(io::Error::other)?;
    let origin = <LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(0, 0);
    let log_id = LogId::new(origin, 0);
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), membership),
    };
    let (store, found) = SnapshotStore::open(fs::real(), config::snap_dir(data_dir))?;
    if found.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already holds a snapshot", data_dir.display()),
        ));
    }
    store.save(&meta, data)
}

fn load(fs: &dyn Fs, dir: &std::path::Path) -> io::Result<Option<Snapshot>> {
    let Some(mut parts) = durable::read_on(fs, dir, FILE)? else {
        return Ok(None);
    };
    if parts.len() != 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} has {} parts, expected 2",
                dir.join(FILE).display(),
                parts.len()
            ),
        ));
    }
    let data = parts.pop().expect("two parts");
    let meta = serde_json::from_slice(&parts[0])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some(Snapshot {
        meta,
        snapshot: data,
    }))
}
