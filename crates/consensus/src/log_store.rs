//! openraft's log storage over `musubi_raftlog`.
//!
//! Entries are JSON-encoded straight into one reusable write batch per append (a payload
//! as it was first encoded, or as it arrived: `Payload`); the batch is written at once and
//! openraft's `IOFlushed` callback is handed to the log's flusher, so it fires only after
//! the fsync that covers the batch. The vote and the purge point live in small atomically
//! replaced files beside the snapshots.
//!
//! The most recent entries are also kept decoded in memory ([`Recent`]): the state machine
//! applies, and the leader replicates, entries just appended, and reading those back from
//! the log meant decoding each JSON entry again on every write. They are bounded by count
//! and by the bytes they hold, payload JSON included.

use crate::committed::CommittedHint;
use crate::{Entry, LogId, TypeConfig, Vote};
use musubi_raftlog::fs::{self, Fs};
use musubi_raftlog::{Log, Options, WriteBatch, durable};
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, entry::RaftEntry};
use parking_lot::Mutex;
use serde::{Serialize, de::DeserializeOwned};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::sync::Arc;

const VOTE: &str = "vote";
/// Entries kept decoded in memory, at most, and the bytes they may hold: by count alone,
/// entries of the largest values (1.5 MiB, with their JSON as much again) could hold GiBs.
const RECENT_ENTRIES: usize = 8192;
const RECENT_BYTES: usize = 64 << 20;
const PURGED: &str = "purged";

/// The Raft log. Cheap to clone: clones share the same files (one is openraft's reader).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    log: Log,
    /// The file system of the log and of the vote and purge files.
    fs: Arc<dyn Fs>,
    meta_dir: PathBuf,
    vote: Mutex<Option<Vote>>,
    purged: Mutex<Option<LogId>>,
    /// Reused by every append, so encoding a batch allocates nothing once it has grown.
    batch: Mutex<WriteBatch>,
    committed: Arc<CommittedHint>,
    recent: Mutex<Recent>,
}

/// The newest entries of the log, decoded, with consecutive indexes: always what the log
/// holds at those indexes (appends, truncations and purges change both).
struct Recent {
    /// Each entry with what it held when it came ([`held_bytes`]).
    entries: std::collections::VecDeque<(Entry, usize)>,
    /// What `entries` hold.
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for Recent {
    fn default() -> Self {
        Self::new(RECENT_ENTRIES, RECENT_BYTES)
    }
}

/// What an entry holds in memory beyond its fixed size.
fn held_bytes(entry: &Entry) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(payload) => payload.held_bytes(),
        _ => 0,
    }
}

impl Recent {
    fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: Default::default(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    fn push(&mut self, entry: Entry) {
        if self
            .entries
            .back()
            .is_some_and(|(last, _)| last.index() + 1 != entry.index())
        {
            self.entries.clear();
            self.bytes = 0;
        }
        let adding = held_bytes(&entry);
        while !self.entries.is_empty()
            && (self.entries.len() == self.max_entries || self.bytes + adding > self.max_bytes)
        {
            self.pop_front();
        }
        self.bytes += adding;
        self.entries.push_back((entry, adding));
    }

    fn pop_front(&mut self) {
        let removed = self.entries.pop_front();
        self.forget(removed);
    }

    /// Stops counting what a removed entry held.
    fn forget(&mut self, removed: Option<(Entry, usize)>) {
        if let Some((_, held)) = removed {
            self.bytes -= held;
        }
    }

    /// Entries `start..end`, if all of them are held.
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let first = self.entries.front()?.0.index();
        let last = self.entries.back()?.0.index();
        if start < first || end > last + 1 || start >= end {
            return None;
        }
        let from = (start - first) as usize;
        Some(
            self.entries
                .range(from..from + (end - start) as usize)
                .map(|(entry, _)| entry.clone())
                .collect(),
        )
    }

    fn truncate_from(&mut self, from: u64) {
        while self.entries.back().is_some_and(|(e, _)| e.index() >= from) {
            let removed = self.entries.pop_back();
            self.forget(removed);
        }
    }

    fn purge_upto(&mut self, upto: u64) {
        while self.entries.front().is_some_and(|(e, _)| e.index() <= upto) {
            self.pop_front();
        }
    }
}

impl LogStore {
    /// Opens the log in `wal_dir`; the vote and purge point are kept in `meta_dir`.
    pub fn open(wal_dir: PathBuf, meta_dir: PathBuf) -> io::Result<Self> {
        Self::open_on(fs::real(), wal_dir, meta_dir)
    }

    /// [`LogStore::open`] on the file system `fs` (a simulated disk in the simulation).
    pub fn open_on(fs: Arc<dyn Fs>, wal_dir: PathBuf, meta_dir: PathBuf) -> io::Result<Self> {
        let log = Log::open_on(fs.clone(), wal_dir, Options::default())?;
        let vote = read_json::<Vote>(&*fs, &meta_dir, VOTE)?;
        let purged = read_json::<LogId>(&*fs, &meta_dir, PURGED)?;
        if let Some(p) = &purged {
            log.purge_upto(p.index)?;
        }
        let inner = Inner {
            log,
            committed: CommittedHint::new(fs.clone(), meta_dir.clone()),
            fs,
            meta_dir,
            vote: Mutex::new(vote),
            purged: Mutex::new(purged),
            batch: Mutex::new(WriteBatch::new()),
            recent: Mutex::new(Recent::default()),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    fn entries(&self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        if let Some(held) = self.inner.recent.lock().get(start, end) {
            return Ok(held);
        }
        let mut out = Vec::with_capacity(end.saturating_sub(start).min(4096) as usize);
        self.inner.log.read(start..end, |_, payload| {
            out.push(serde_json::from_slice(payload).map_err(invalid)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Appends one entry outside Raft and waits for its fsync (`--force-new-cluster`).
    pub(crate) fn append_durably(&self, entry: Entry) -> io::Result<()> {
        let mut batch = WriteBatch::new();
        batch
            .push_with(entry.index(), |buf| serde_json::to_writer(buf, &entry))
            .map_err(invalid)?;
        let (done, flushed) = std::sync::mpsc::channel();
        self.inner.log.append(
            &batch,
            Box::new(move |result| {
                let _ = done.send(result);
            }),
        )?;
        flushed
            .recv()
            .map_err(|_| io::Error::other("the log flusher stopped"))?
    }

    /// Writes a small file with an fsync, off the async runtime's worker threads.
    async fn save_json<T: Serialize>(&self, name: &'static str, value: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(invalid)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            durable::write_atomic_on(&*inner.fs, &inner.meta_dir, name, &[&bytes])
        })
        .await
        .map_err(io::Error::other)?
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i + 1,
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        self.entries(start, end)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        Ok(*self.inner.vote.lock())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id = *self.inner.purged.lock();
        let last = match self.inner.log.last_index() {
            Some(i) => self.entries(i, i + 1)?.pop().map(|e| e.log_id),
            None => None,
        };
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.save_json(VOTE, vote).await?;
        *self.inner.vote.lock() = Some(*vote);
        Ok(())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = self.inner.batch.lock();
        batch.clear();
        let mut appended = Vec::new();
        for entry in entries {
            batch
                .push_with(entry.index(), |buf| serde_json::to_writer(buf, &entry))
                .map_err(invalid)?;
            appended.push(entry);
        }
        self.inner.log.append(
            &batch,
            Box::new(move |result| callback.io_completed(result)),
        )?;
        let mut recent = self.inner.recent.lock();
        if let Some(first) = appended.first() {
            // An append over a conflicting tail replaces it.
            recent.truncate_from(first.index());
        }
        appended.into_iter().for_each(|e| recent.push(e));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        self.inner.recent.lock().truncate_from(from);
        self.inner.log.truncate_from(from)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        self.inner.committed.record(committed);
        Ok(())
    }

    /// The committed hint (`committed`), if this log holds the very entry it names.
    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        let Some(hint) = self.inner.committed.load() else {
            return Ok(None);
        };
        let purged = *self.inner.purged.lock();
        if purged.is_some_and(|p| p.index >= hint.index) {
            return Ok((purged == Some(hint)).then_some(hint));
        }
        // A log cut short by a power loss may not reach the hint: then it is no hint.
        let held = self
            .entries(hint.index, hint.index + 1)
            .is_ok_and(|e| e.first().is_some_and(|e| e.log_id == hint));
        Ok(held.then_some(hint))
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // Record the purge point first: after a crash the log may hold less, never more.
        self.save_json(PURGED, &log_id).await?;
        *self.inner.purged.lock() = Some(log_id);
        self.inner.recent.lock().purge_upto(log_id.index);
        self.inner.log.purge_upto(log_id.index)
    }
}

fn read_json<T: DeserializeOwned>(
    fs: &dyn Fs,
    dir: &std::path::Path,
    name: &str,
) -> io::Result<Option<T>> {
    match durable::read_on(fs, dir, name)? {
        Some(parts) => {
            let first = parts
                .first()
                .ok_or_else(|| invalid(format!("{name} is empty")))?;
            serde_json::from_slice(first).map(Some).map_err(invalid)
        }
        None => Ok(None),
    }
}

fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::type_config::alias::LeaderIdOf;
    use openraft::vote::RaftLeaderIdExt;

    fn entry(index: u64) -> Entry {
        let leader = <LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(1, 1);
        Entry::new_blank(LogId::new(leader, index))
    }

    /// An entry whose payload's JSON, as an append makes it, is about `len` bytes.
    fn entry_of(index: u64, len: usize) -> Entry {
        let leader = <LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(1, 1);
        let proposal = musubi_store::Proposal::once(musubi_store::Request::V2 {
            op: musubi_store::V2Op::Set {
                key: "/k".into(),
                value: Some("v".repeat(len)),
                expiry: musubi_store::Expiry::Permanent,
                refresh: false,
            },
            now_ms: 0,
        });
        let entry = Entry::new_normal(LogId::new(leader, index), Arc::new(proposal.into()));
        serde_json::to_vec(&entry).unwrap();
        entry
    }

    fn indexes(got: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        got.map(|es| es.iter().map(|e| e.index()).collect())
    }

    #[test]
    fn recent_entries_follow_appends_truncations_and_purges() {
        let mut recent = Recent::default();
        (1..=5).for_each(|i| recent.push(entry(i)));
        assert_eq!(indexes(recent.get(2, 4)), Some(vec![2, 3]));
        assert_eq!(indexes(recent.get(4, 7)), None);
        recent.truncate_from(4);
        assert_eq!(indexes(recent.get(3, 5)), None);
        recent.push(entry(4));
        recent.purge_upto(2);
        assert_eq!(indexes(recent.get(3, 5)), Some(vec![3, 4]));
        assert_eq!(indexes(recent.get(2, 3)), None);
        // A gap (a snapshot installed past the log) starts the window again.
        recent.push(entry(9));
        assert_eq!(indexes(recent.get(9, 10)), Some(vec![9]));
        assert_eq!(indexes(recent.get(4, 5)), None);
    }

    #[test]
    fn recent_entries_hold_at_most_their_byte_budget() {
        let held = held_bytes(&entry_of(1, 1000));
        let mut recent = Recent::new(100, 3 * held);
        (1..=3).for_each(|i| recent.push(entry_of(i, 1000)));
        assert_eq!(indexes(recent.get(1, 4)), Some(vec![1, 2, 3]));
        // A fourth pushes out the first; one as large as the rest together, all of them.
        recent.push(entry_of(4, 1000));
        assert_eq!(indexes(recent.get(1, 2)), None);
        assert_eq!(indexes(recent.get(2, 5)), Some(vec![2, 3, 4]));
        recent.push(entry_of(5, 3000));
        assert_eq!(indexes(recent.get(4, 5)), None);
        assert_eq!(indexes(recent.get(5, 6)), Some(vec![5]));
        // What truncation and purges remove is no longer counted.
        recent.truncate_from(5);
        (5..=7).for_each(|i| recent.push(entry_of(i, 1000)));
        assert_eq!(indexes(recent.get(5, 8)), Some(vec![5, 6, 7]));
        recent.purge_upto(6);
        recent.push(entry_of(8, 1000));
        recent.push(entry_of(9, 1000));
        assert_eq!(indexes(recent.get(7, 10)), Some(vec![7, 8, 9]));
    }
}
