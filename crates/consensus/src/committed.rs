//! The committed log id, kept on disk as a hint so a restarted member replays its log up
//! to it at once.
//!
//! The state machine lives in memory and is rebuilt on start from the latest snapshot and
//! the log. openraft replays the log only up to the committed id it is given at start; with
//! none, a restarted member would serve local (serializable) reads from its snapshot until a
//! leader told it the commit index (up to an election later, when the whole cluster
//! restarted): older data than it served before the crash. etcd serves its persisted state
//! at once; so does musubi with this hint.
//!
//! The hint is written off the hot path (at most every [`EVERY`], coalesced, by a blocking
//! task) and may lag the truth or be lost with a power cut: an older committed id is always
//! safe to replay to, since a committed entry is never undone. A hint is only used if the
//! log holds exactly that entry (or it is the purge point): after a power cut the log may
//! have lost unsynced entries that the hint names, and a hint from a damaged file is ignored.
//! Linearizable reads never rely on it: they wait for the leader's read index.

use crate::LogId;
use musubi_raftlog::durable;
use musubi_raftlog::fs::Fs;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const FILE: &str = "committed";
/// How often the hint is written, at most.
const EVERY: Duration = Duration::from_millis(100);

/// The latest committed id and its file.
pub(crate) struct CommittedHint {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    latest: Mutex<Option<LogId>>,
    /// A writer task is scheduled; later ids ride along with it.
    writing: AtomicBool,
}

impl CommittedHint {
    pub(crate) fn new(fs: Arc<dyn Fs>, dir: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            fs,
            dir,
            latest: Mutex::new(None),
            writing: AtomicBool::new(false),
        })
    }

    /// The id last written, if its file is whole.
    pub(crate) fn load(&self) -> Option<LogId> {
        match durable::read_on(&*self.fs, &self.dir, FILE) {
            Ok(Some(parts)) => serde_json::from_slice(parts.first()?).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the committed-index hint");
                None
            }
        }
    }

    /// Records `committed`; it reaches the disk within [`EVERY`] or so.
    pub(crate) fn record(self: &Arc<Self>, committed: Option<LogId>) {
        *self.latest.lock() = committed;
        if self.writing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(EVERY);
            this.writing.store(false, Ordering::Release);
            let Some(id) = *this.latest.lock() else {
                return;
            };
            let written = serde_json::to_vec(&id)
                .map_err(std::io::Error::other)
                .and_then(|bytes| durable::write_atomic_on(&*this.fs, &this.dir, FILE, &[&bytes]));
            if let Err(e) = written {
                tracing::debug!(error = %e, "cannot write the committed-index hint");
            }
        });
    }
}
