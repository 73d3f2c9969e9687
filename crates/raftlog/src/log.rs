//! The log: a directory of segments, appended with group commit, truncated at either end.

use crate::batch::WriteBatch;
use crate::flusher::{Flusher, OnDurable};
use crate::fs::{self, Fs, remove_if_present};
use crate::segment::{self, Segment};
use parking_lot::Mutex;
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// Tuning for a [`Log`].
#[derive(Clone, Debug)]
pub struct Options {
    /// A segment that has grown past this size is closed and the next append starts a new
    /// one. Purging frees whole segments, so this is also the granularity of compaction.
    pub segment_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
        }
    }
}

/// A write-ahead log of records with consecutive indexes.
///
/// Every method is safe to call from many threads. Appends are written under a short lock
/// and made durable by a background flusher thread (see [`Log::append`]).
pub struct Log {
    state: Mutex<State>,
    flusher: Flusher,
}

struct State {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: Options,
    /// Consecutive segments: each starts where the previous one ends.
    segments: Vec<Segment>,
    /// Records below this index are purged, even if their segment still exists.
    first: u64,
}

impl Log {
    /// Opens the log in `dir`, creating the directory if needed, and recovers its segments.
    ///
    /// A torn or corrupt tail is cut off and reported with `tracing::warn!`; so is anything
    /// after it, because the records after a hole cannot be trusted to follow on.
    pub fn open(dir: impl Into<PathBuf>, options: Options) -> io::Result<Self> {
        Self::open_on(fs::real(), dir, options)
    }

    /// [`Log::open`] on the file system `fs` (a simulated one in tests, see [`crate::fs`]).
    pub fn open_on(fs: Arc<dyn Fs>, dir: impl Into<PathBuf>, options: Options) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&*fs, &dir)?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for name in fs.list_dir(&dir)? {
            if let Some(first) = name.to_str().and_then(segment::parse_name) {
                names.push((first, dir.join(name)));
            }
        }
        names.sort();
        let mut segments: Vec<Segment> = Vec::new();
        let mut names = names.into_iter();
        let mut removed = false;
        for (first, path) in names.by_ref() {
            if let Some(prev) = segments.last()
                && prev.next() != first
            {
                tracing::warn!(segment = %path.display(), expected = prev.next(), "raft log segment does not follow on; dropping it and every later segment");
                remove_if_present(&*fs, &path)?;
                removed = true;
                break;
            }
            let (seg, torn) = Segment::recover(&*fs, path, first)?;
            if let Some(why) = torn {
                tracing::warn!(segment = %seg.path.display(), kept_records = seg.len(), reason = why, "truncated the torn tail of the raft log");
            }
            if seg.len() == 0 {
                remove_if_present(&*fs, &seg.path)?;
                removed = true;
            } else {
                segments.push(seg);
            }
            if torn.is_some() {
                break;
            }
        }
        for (_, path) in names {
            tracing::warn!(segment = %path.display(), "dropping raft log segment after a torn tail");
            remove_if_present(&*fs, &path)?;
            removed = true;
        }
        if removed {
            fs.sync_dir(&dir)?;
        }
        let first = segments.first().map_or(0, |s| s.first);
        let flusher = Flusher::start(format!("raftlog-flush {}", dir.display()))?;
        Ok(Self {
            state: Mutex::new(State {
                fs,
                dir,
                options,
                segments,
                first,
            }),
            flusher,
        })
    }

    /// The lowest index held, or `None` if the log is empty.
    pub fn first_index(&self) -> Option<u64> {
        self.state.lock().range().map(|r| r.start)
    }

    /// The highest index held, or `None` if the log is empty.
    pub fn last_index(&self) -> Option<u64> {
        self.state.lock().range().map(|r| r.end - 1)
    }

    /// Writes `batch` and returns at once; `on_durable` runs on the flusher thread once the
    /// batch is fsynced.
    ///
    /// The batch must continue the log (start at `last_index() + 1`) unless the log is empty,
    /// in which case it may start anywhere at or after the purge point. Completions run in
    /// append order, and each one also vouches for every append before it.
    pub fn append(&self, batch: &WriteBatch, on_durable: OnDurable) -> io::Result<()> {
        let mut st = self.state.lock();
        let Some(first) = batch.first_index() else {
            // Nothing to write, but the caller may rely on the ordering of completions.
            match st.segments.last() {
                Some(seg) => self.flusher.submit(seg.file.clone(), on_durable),
                None => on_durable(Ok(())),
            }
            return Ok(());
        };
        let active = st.active_for(first)?;
        active.write(&batch.buf, &batch.starts)?;
        self.flusher.submit(active.file.clone(), on_durable);
        Ok(())
    }

    /// Blocks until everything appended so far is durable.
    pub fn flush(&self) -> io::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.append(&WriteBatch::new(), Box::new(move |r| drop(tx.send(r))))?;
        rx.recv()
            .map_err(|_| io::Error::other("the log flusher thread has stopped"))?
    }

    /// Removes every record at or after `index`, durably (a Raft conflict: the leader
    /// overrules the suffix).
    pub fn truncate_from(&self, index: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        let mut removed = false;
        while st.segments.last().is_some_and(|s| s.first >= index) {
            let seg = st.segments.pop().expect("checked above");
            remove_if_present(&*st.fs, &seg.path)?;
            removed = true;
        }
        if let Some(seg) = st.segments.last_mut()
            && seg.next() > index
        {
            seg.truncate_from(index)?;
        }
        if removed {
            st.fs.sync_dir(&st.dir)?;
        }
        Ok(())
    }

    /// Forgets every record up to and including `index` (compaction after a snapshot).
    ///
    /// Whole segments below the new start are deleted; the rest are hidden. The purge point
    /// itself is not persisted: the owner of the log records it (Raft keeps it with the
    /// snapshot) and purges again after [`Log::open`].
    pub fn purge_upto(&self, index: u64) -> io::Result<()> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.first = st.first.max(index + 1);
        let keep_from = st
            .segments
            .iter()
            .position(|s| s.next() > st.first)
            .unwrap_or(st.segments.len());
        for seg in st.segments.drain(..keep_from) {
            remove_if_present(&*st.fs, &seg.path)?;
        }
        Ok(())
    }

    /// Calls `f` with each record in `range` that the log holds, in index order.
    pub fn read(
        &self,
        range: Range<u64>,
        mut f: impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let st = self.state.lock();
        let Some(held) = st.range() else {
            return Ok(());
        };
        let (from, to) = (range.start.max(held.start), range.end.min(held.end));
        let mut buf = Vec::new();
        for seg in &st.segments {
            let (a, b) = (from.max(seg.first), to.min(seg.next()));
            if a < b {
                seg.read(a, b, &mut buf, &mut f)?;
            }
        }
        Ok(())
    }
}

impl State {
    fn range(&self) -> Option<Range<u64>> {
        let start = self.segments.first()?.first.max(self.first);
        let end = self.segments.last()?.next();
        (start < end).then_some(start..end)
    }

    /// The segment the next record, `index`, goes into: the current one, or a fresh one when
    /// the current one is full or the log is empty and restarts at a new index.
    fn active_for(&mut self, index: u64) -> io::Result<&mut Segment> {
        let next = self.segments.last().map(Segment::next);
        if next != Some(index) {
            if self.range().is_some() {
                let expected = next.expect("a non-empty log has segments");
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("raft log append at index {index}, expected {expected}"),
                ));
            }
            if index < self.first {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "raft log append at index {index}, below the purge point {}",
                        self.first
                    ),
                ));
            }
            // Everything held is purged: start over at `index`. The old segments go first,
            // durably, so a crash cannot bring them back in front of a gap.
            for seg in self.segments.drain(..) {
                remove_if_present(&*self.fs, &seg.path)?;
            }
            self.fs.sync_dir(&self.dir)?;
            self.roll(index)?;
        } else if self
            .segments
            .last()
            .is_some_and(|s| s.end >= self.options.segment_bytes)
        {
            self.roll(index)?;
        }
        Ok(self.segments.last_mut().expect("rolled or continuing"))
    }

    fn roll(&mut self, first: u64) -> io::Result<()> {
        let seg = Segment::create(&*self.fs, &self.dir, first)?;
        // The new file's directory entry must survive a crash as surely as its records.
        self.fs.sync_dir(&self.dir)?;
        self.segments.push(seg);
        Ok(())
    }
}
