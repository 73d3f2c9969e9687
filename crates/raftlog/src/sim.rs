//! A simulated disk that loses power: an in-memory [`Fs`] that models the page cache, so a
//! test can check that everything acknowledged as durable was really synced.
//!
//! A process crash (`kill -9`) keeps every write in the page cache, so it proves nothing
//! about fsync. A power loss keeps only what reached the disk. [`SimDisk`] keeps, for every
//! file, its *durable* contents and the *pending* operations (writes, length changes) made
//! since its last sync, and for every directory its durable and live entries:
//! - [`FsFile::sync_data`] and [`FsFile::sync_all`] make a file's pending operations
//!   durable (its contents and length, not its name): those made before the sync began,
//!   once it returns;
//! - creating, renaming or removing a name changes only the live entries of its directory;
//!   [`Fs::sync_dir`] makes a directory's live entries, as they were when it began, durable
//!   at once. A new directory is itself a name in its parent. Nothing is ordered for free:
//!   ext4's `data=ordered` and rename heuristics are not promises to build on;
//! - a sync may take time ([`SimDisk::with_sync_latency`]), as a real one does: until it
//!   returns nothing is promised, and a crash meanwhile makes it fail. Without that window an
//!   in-memory sync would be instant and a crash would almost never find data unsynced;
//! - [`SimDisk::crash`] is the power loss: every directory goes back to its durable entries,
//!   files no durable name reaches are gone, and each surviving file goes back to its
//!   durable contents, except that with some chance a prefix of its pending operations
//!   reached the disk first. The last operation of that prefix may be torn: only a random
//!   prefix of its bytes landed, possibly followed by garbage within the range it was
//!   writing (a sector half written). The choices come from the disk's seeded generator.
//!
//! A crash also ends the process that used the disk: every [`Fs`] handed out before it, and
//! every file opened through one, fails from then on, so nothing the dead process still had
//! in flight can reach the disk afterwards. A restarted process takes a fresh [`SimDisk::fs`].
//!
//! A crash can come from outside at any time ([`SimDisk::crash`]), or be armed to strike in
//! the middle of the process's own I/O ([`SimDisk::crash_within`]): right after one of its
//! next state-changing calls reached the page cache, or while a sync is under way. That is
//! where a power loss finds the most unsynced data, and where a missing fsync shows.
//!
//! Paths are absolute and need no real directory: `/m1/member/wal` is created in memory
//! (the root `/` always exists). Everything is kept in memory until the disk is dropped.

use crate::fs::{Fs, FsFile};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Component, Path};
use std::sync::Arc;
use std::time::Duration;

/// One disk: clone it to share it (clones are the same disk).
#[derive(Clone)]
pub struct SimDisk {
    disk: Arc<Mutex<Disk>>,
}

/// What one [`SimDisk::crash`] threw away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced bytes written that did not survive (a torn write counts the bytes it lost).
    pub bytes_lost: u64,
    /// Files that had unsynced operations and kept none of them.
    pub files_reverted: usize,
    /// Files that kept a prefix of their unsynced operations.
    pub files_kept_prefix: usize,
    /// Of those, files whose last kept write was torn (garbage may follow the torn prefix).
    pub torn_writes: usize,
    /// Files that had a name before the crash and have none after it (their creation or
    /// rename was never made durable by a directory sync).
    pub files_unlinked: usize,
    /// Directories whose unsynced entry changes were undone.
    pub dirs_reverted: usize,
    /// Syncs (of files or directories) still in progress, which now fail.
    pub syncs_interrupted: usize,
}

impl std::ops::AddAssign for CrashReport {
    fn add_assign(&mut self, o: Self) {
        self.bytes_lost += o.bytes_lost;
        self.files_reverted += o.files_reverted;
        self.files_kept_prefix += o.files_kept_prefix;
        self.torn_writes += o.torn_writes;
        self.files_unlinked += o.files_unlinked;
        self.dirs_reverted += o.dirs_reverted;
        self.syncs_interrupted += o.syncs_interrupted;
    }
}

type Ino = u64;
const ROOT: Ino = 0;

/// Runs at the instant an armed crash strikes.
type OnCrash = Box<dyn FnOnce(CrashReport) + Send>;

struct Armed {
    /// State-changing calls to go, this one included.
    countdown: u64,
    then: OnCrash,
}

struct Disk {
    /// Bumped by every crash; handles from an older epoch fail.
    epoch: u64,
    armed: Option<Armed>,
    rng: SplitMix,
    /// How long a sync takes, drawn uniformly from this range; `None`: no time at all.
    sync_latency: Option<(Duration, Duration)>,
    syncs_in_flight: usize,
    next_ino: Ino,
    nodes: HashMap<Ino, Node>,
}

enum Node {
    Dir(Dir),
    File(FileData),
}

#[derive(Default)]
struct Dir {
    live: BTreeMap<OsString, Ino>,
    durable: BTreeMap<OsString, Ino>,
    /// Counts changes to `live`; `durable` is `live` as of change `durable_version`.
    version: u64,
    durable_version: u64,
}

impl Dir {
    fn changed(&mut self) -> &mut BTreeMap<OsString, Ino> {
        self.version += 1;
        &mut self.live
    }
}

#[derive(Default)]
struct FileData {
    /// What reads see: the durable contents with the pending operations applied.
    live: Vec<u8>,
    /// What survives a power loss.
    durable: Vec<u8>,
    /// Operations since the last sync, in order.
    pending: Vec<Pending>,
    /// The sequence number of `pending[0]`: operations are numbered in the order made, so a
    /// sync knows which were made before it began.
    pending_from: u64,
}

impl FileData {
    fn push(&mut self, op: Pending) {
        op.apply(&mut self.live);
        self.pending.push(op);
    }

    /// One past the number of the last operation made.
    fn next_seq(&self) -> u64 {
        self.pending_from + self.pending.len() as u64
    }

    /// Makes the operations numbered below `upto` durable.
    fn sync_upto(&mut self, upto: u64) {
        let n = upto.saturating_sub(self.pending_from) as usize;
        let n = n.min(self.pending.len());
        for op in self.pending.drain(..n) {
            op.apply(&mut self.durable);
        }
        self.pending_from += n as u64;
    }
}

enum Pending {
    Write { at: u64, data: Vec<u8> },
    SetLen(u64),
}

impl Pending {
    fn apply(&self, to: &mut Vec<u8>) {
        match self {
            Pending::Write { at, data } => write_into(to, *at, data),
            Pending::SetLen(len) => resize(to, *len as usize),
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Pending::Write { data, .. } => data.len() as u64,
            Pending::SetLen(_) => 0,
        }
    }
}

fn write_into(to: &mut Vec<u8>, at: u64, data: &[u8]) {
    let at = at as usize;
    if to.len() < at + data.len() {
        resize(to, at + data.len());
    }
    to[at..at + data.len()].copy_from_slice(data);
}

/// `Vec::resize(len, 0)` by block copies: byte by byte, as it runs in debug builds, the
/// log's 4 MiB preallocations would dominate a simulation.
fn resize(v: &mut Vec<u8>, len: usize) {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    v.truncate(len);
    v.reserve(len - v.len());
    while v.len() < len {
        let n = (len - v.len()).min(ZEROS.len());
        v.extend_from_slice(&ZEROS[..n]);
    }
}

impl SimDisk {
    /// An empty disk (only `/`) whose crashes draw their choices from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node::Dir(Dir::default()));
        Self {
            disk: Arc::new(Mutex::new(Disk {
                epoch: 0,
                armed: None,
                rng: SplitMix(seed),
                sync_latency: None,
                syncs_in_flight: 0,
                next_ino: ROOT + 1,
                nodes,
            })),
        }
    }

    /// A disk whose every sync (of a file or a directory) blocks its caller for a time drawn
    /// from `min..=max`, like a real `fsync`; a crash in that time makes the sync fail.
    pub fn with_sync_latency(seed: u64, min: Duration, max: Duration) -> Self {
        let disk = Self::new(seed);
        disk.disk.lock().sync_latency = Some((min, max.max(min)));
        disk
    }

    /// The file system as a process started now sees it. It and the files opened through it
    /// fail once the disk crashes.
    pub fn fs(&self) -> Arc<dyn Fs> {
        Arc::new(SimFs {
            disk: self.disk.clone(),
            epoch: self.disk.lock().epoch,
        })
    }

    /// Loses power: everything not durable is lost (see the module docs), and every handle
    /// handed out so far stops working.
    pub fn crash(&self) -> CrashReport {
        self.disk.lock().crash()
    }

    /// Arms a power loss that strikes at one of the next `calls` (at least 1, drawn from the
    /// disk's generator) state-changing calls: writes, length changes, creations, renames,
    /// removals and syncs. The call takes effect in the page cache (a sync: begins), then the
    /// power goes and the call fails. `then` runs at that instant, on the calling thread,
    /// with what the crash threw away: it must be quick and must not use the disk. Arming
    /// again replaces an armed crash that has not struck.
    pub fn crash_within(&self, calls: u64, then: impl FnOnce(CrashReport) + Send + 'static) {
        let mut disk = self.disk.lock();
        let countdown = 1 + disk.rng.below(calls.max(1));
        disk.armed = Some(Armed {
            countdown,
            then: Box::new(then),
        });
    }

    /// Strikes the armed crash now, if it has not struck yet (the process made too few
    /// calls); returns whether it did.
    pub fn crash_armed_now(&self) -> bool {
        let mut disk = self.disk.lock();
        let Some(armed) = disk.armed.take() else {
            return false;
        };
        let report = disk.crash();
        drop(disk);
        (armed.then)(report);
        true
    }
}

impl Disk {
    fn crash(&mut self) -> CrashReport {
        let mut report = CrashReport {
            syncs_interrupted: std::mem::take(&mut self.syncs_in_flight),
            ..CrashReport::default()
        };
        self.epoch += 1;
        // A crash armed for the process that just died must not strike its successor.
        self.armed = None;
        let named = self.reachable(|dir| &dir.live);
        // Whatever no durable name reaches is gone.
        let reachable = self.reachable(|dir| &dir.durable);
        self.nodes.retain(|ino, node| {
            let keep = reachable.contains(ino);
            if !keep && named.contains(ino) && matches!(node, Node::File(_)) {
                report.files_unlinked += 1;
            }
            keep
        });
        for node in self.nodes.values_mut() {
            if let Node::Dir(dir) = node
                && dir.live != dir.durable
            {
                dir.live = dir.durable.clone();
                dir.version = dir.durable_version;
                report.dirs_reverted += 1;
            }
        }
        let mut inos: Vec<Ino> = self.nodes.keys().copied().collect();
        inos.sort_unstable(); // a fixed order, so the seed alone decides the draws
        for ino in inos {
            let Some(Node::File(file)) = self.nodes.get_mut(&ino) else {
                continue;
            };
            if file.pending.is_empty() {
                continue;
            }
            let pending = std::mem::take(&mut file.pending);
            file.pending_from += pending.len() as u64;
            let total: u64 = pending.iter().map(Pending::bytes).sum();
            // Half the time nothing unsynced landed; otherwise a prefix of the operations
            // did, and the last of them may be torn.
            let keep = if self.rng.chance(1, 2) {
                0
            } else {
                1 + self.rng.below(pending.len() as u64) as usize
            };
            let mut kept = 0;
            for (i, op) in pending.iter().take(keep).enumerate() {
                let last = i + 1 == keep;
                match op {
                    Pending::Write { at, data } if last && self.rng.chance(1, 2) => {
                        let cut = self.rng.below(data.len() as u64 + 1) as usize;
                        write_into(&mut file.durable, *at, &data[..cut]);
                        let room = data.len() - cut;
                        if room > 0 && self.rng.chance(1, 2) {
                            let n = 1 + self.rng.below(room.min(64) as u64) as usize;
                            let garbage: Vec<u8> = (0..n).map(|_| self.rng.next() as u8).collect();
                            write_into(&mut file.durable, *at + cut as u64, &garbage);
                        }
                        kept += cut as u64;
                        report.torn_writes += 1;
                    }
                    op => {
                        op.apply(&mut file.durable);
                        kept += op.bytes();
                    }
                }
            }
            if keep == 0 {
                report.files_reverted += 1;
            } else {
                report.files_kept_prefix += 1;
            }
            report.bytes_lost += total - kept;
            file.live = file.durable.clone();
        }
        report
    }

    /// The inodes reachable from the root through `entries` of each directory.
    fn reachable(&self, entries: impl Fn(&Dir) -> &BTreeMap<OsString, Ino>) -> BTreeSet<Ino> {
        let mut seen = BTreeSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if let Some(Node::Dir(dir)) = self.nodes.get(&ino) {
                for child in entries(dir).values() {
                    if seen.insert(*child) {
                        todo.push(*child);
                    }
                }
            }
        }
        seen
    }

    /// Starts a sync: how long it will take. [`end_sync`] ends it.
    fn begin_sync(&mut self) -> Duration {
        self.syncs_in_flight += 1;
        let Some((min, max)) = self.sync_latency else {
            return Duration::ZERO;
        };
        let spread = (max - min).as_micros() as u64;
        min + Duration::from_micros(self.rng.below(spread + 1))
    }

    /// Counts one state-changing call against an armed crash; if it was the one, crashes and
    /// returns what to run once the lock is released.
    fn tick(&mut self) -> Option<(OnCrash, CrashReport)> {
        let armed = self.armed.as_mut()?;
        armed.countdown -= 1;
        if armed.countdown > 0 {
            return None;
        }
        let then = self.armed.take().expect("checked above").then;
        Some((then, self.crash()))
    }

    fn next_ino(&mut self) -> Ino {
        self.next_ino += 1;
        self.next_ino - 1
    }

    /// The inode `path` names now (through live entries).
    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let mut ino = ROOT;
        for name in components(path)? {
            ino = match self.nodes.get(&ino) {
                Some(Node::Dir(dir)) => *dir
                    .live
                    .get(name)
                    .ok_or_else(|| error(io::ErrorKind::NotFound, path, "no such file"))?,
                _ => return Err(error(io::ErrorKind::NotADirectory, path, "not a directory")),
            };
        }
        Ok(ino)
    }

    /// The directory that holds `path`, and the name in it.
    fn parent_of<'p>(&mut self, path: &'p Path) -> io::Result<(&mut Dir, &'p OsStr)> {
        let mut names = components(path)?;
        let name = names
            .pop()
            .ok_or_else(|| error(io::ErrorKind::AlreadyExists, path, "the root"))?;
        let parent: std::path::PathBuf = names.iter().collect();
        let ino = self.lookup(&Path::new("/").join(parent))?;
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(dir)) => Ok((dir, name)),
            _ => Err(error(
                io::ErrorKind::NotADirectory,
                path,
                "parent is not a directory",
            )),
        }
    }

    fn dir(&mut self, path: &Path) -> io::Result<&mut Dir> {
        let ino = self.lookup(path)?;
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(dir)) => Ok(dir),
            _ => Err(error(io::ErrorKind::NotADirectory, path, "not a directory")),
        }
    }

    fn file(&mut self, ino: Ino) -> io::Result<&mut FileData> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(file)) => Ok(file),
            _ => Err(io::Error::other("simulated file vanished")),
        }
    }

    fn file_at(&mut self, path: &Path) -> io::Result<Ino> {
        let ino = self.lookup(path)?;
        match self.nodes.get(&ino) {
            Some(Node::File(_)) => Ok(ino),
            _ => Err(error(io::ErrorKind::IsADirectory, path, "is a directory")),
        }
    }

    fn new_node(&mut self, path: &Path, node: Node) -> io::Result<Ino> {
        let ino = self.next_ino();
        let (dir, name) = self.parent_of(path)?;
        if dir.live.contains_key(name) {
            return Err(error(io::ErrorKind::AlreadyExists, path, "already exists"));
        }
        dir.changed().insert(name.to_owned(), ino);
        self.nodes.insert(ino, node);
        Ok(ino)
    }
}

/// The names along an absolute path.
fn components(path: &Path) -> io::Result<Vec<&OsStr>> {
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => names.push(name),
            _ => {
                return Err(error(
                    io::ErrorKind::InvalidInput,
                    path,
                    "the simulated disk takes absolute paths without `..`",
                ));
            }
        }
    }
    if !path.has_root() {
        return Err(error(
            io::ErrorKind::InvalidInput,
            path,
            "the simulated disk takes absolute paths",
        ));
    }
    Ok(names)
}

fn error(kind: io::ErrorKind, path: &Path, what: &str) -> io::Error {
    io::Error::new(kind, format!("{}: {what} (simulated disk)", path.display()))
}

type Guard<'a> = parking_lot::MutexGuard<'a, Disk>;

/// Ends a state-changing call, whose change is made: releases the disk, and if an armed
/// crash strikes at this call, the power goes now and the call fails.
fn changed(mut disk: Guard<'_>) -> io::Result<()> {
    match disk.tick() {
        None => Ok(()),
        Some((then, report)) => {
            drop(disk);
            then(report);
            Err(powered_off())
        }
    }
}

/// Waits out a sync begun with [`Disk::begin_sync`], which may be where an armed crash
/// strikes; fails if the disk crashed meanwhile.
fn wait_sync<'a>(
    disk: Guard<'a>,
    lock: &'a Mutex<Disk>,
    epoch: u64,
    latency: Duration,
) -> io::Result<Guard<'a>> {
    changed(disk)?;
    if !latency.is_zero() {
        std::thread::sleep(latency);
    }
    let mut disk = lock.lock();
    if disk.epoch != epoch {
        return Err(powered_off());
    }
    disk.syncs_in_flight -= 1;
    Ok(disk)
}

fn powered_off() -> io::Error {
    io::Error::other("the simulated disk lost power since this process started")
}

/// The file system one process sees, until the disk crashes.
struct SimFs {
    disk: Arc<Mutex<Disk>>,
    epoch: u64,
}

impl SimFs {
    fn disk(&self) -> io::Result<Guard<'_>> {
        let disk = self.disk.lock();
        if disk.epoch != self.epoch {
            return Err(powered_off());
        }
        Ok(disk)
    }

    fn handle(&self, ino: Ino) -> Arc<dyn FsFile> {
        Arc::new(SimFile {
            disk: self.disk.clone(),
            epoch: self.epoch,
            ino,
        })
    }
}

impl Fs for SimFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk()?;
        disk.new_node(dir, Node::Dir(Dir::default()))?;
        changed(disk)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let mut disk = self.disk()?;
        let ino = disk.new_node(path, Node::File(FileData::default()))?;
        changed(disk)?;
        Ok(self.handle(ino))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let mut disk = self.disk()?;
        let ino = match disk.file_at(path) {
            Ok(ino) => {
                disk.file(ino)?.push(Pending::SetLen(0));
                ino
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                disk.new_node(path, Node::File(FileData::default()))?
            }
            Err(e) => return Err(e),
        };
        changed(disk)?;
        Ok(self.handle(ino))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let ino = self.disk()?.file_at(path)?;
        Ok(self.handle(ino))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut disk = self.disk()?;
        let ino = disk.file_at(path)?;
        Ok(disk.file(ino)?.live.clone())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk()?;
        let ino = disk.lookup(from)?;
        if matches!(disk.nodes.get(&ino), Some(Node::Dir(_))) {
            return Err(error(
                io::ErrorKind::Unsupported,
                from,
                "renaming directories is not simulated",
            ));
        }
        // The inode `to` named before, if any, loses that name (and is gone at the next
        // crash unless a durable name still reaches it).
        let (to_dir, to_name) = disk.parent_of(to)?;
        to_dir.changed().insert(to_name.to_owned(), ino);
        let (from_dir, from_name) = disk.parent_of(from)?;
        if from_dir.live.get(from_name) == Some(&ino) && from != to {
            from_dir.changed().remove(from_name);
        }
        changed(disk)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk()?;
        disk.file_at(path)?;
        let (dir, name) = disk.parent_of(path)?;
        dir.changed().remove(name);
        changed(disk)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        Ok(self.disk()?.dir(dir)?.live.keys().cloned().collect())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk()?;
        let dir = disk.dir(path)?;
        let (entries, version) = (dir.live.clone(), dir.version);
        let latency = disk.begin_sync();
        let mut disk = wait_sync(disk, &self.disk, self.epoch, latency)?;
        let dir = disk.dir(path)?;
        if version > dir.durable_version {
            dir.durable = entries;
            dir.durable_version = version;
        }
        Ok(())
    }
}

/// An open file of one process.
struct SimFile {
    disk: Arc<Mutex<Disk>>,
    epoch: u64,
    ino: Ino,
}

impl SimFile {
    fn disk(&self) -> io::Result<Guard<'_>> {
        let disk = self.disk.lock();
        if disk.epoch != self.epoch {
            return Err(powered_off());
        }
        Ok(disk)
    }

    fn with<T>(&self, f: impl FnOnce(&mut FileData) -> io::Result<T>) -> io::Result<T> {
        f(self.disk()?.file(self.ino)?)
    }

    /// A write or length change: into the page cache.
    fn change(&self, op: Pending) -> io::Result<()> {
        let mut disk = self.disk()?;
        disk.file(self.ino)?.push(op);
        changed(disk)
    }

    /// Makes the operations made so far durable, after the disk's sync latency.
    fn sync(&self) -> io::Result<()> {
        let mut disk = self.disk()?;
        let upto = disk.file(self.ino)?.next_seq();
        let latency = disk.begin_sync();
        let mut disk = wait_sync(disk, &self.disk, self.epoch, latency)?;
        disk.file(self.ino)?.sync_upto(upto);
        Ok(())
    }
}

impl FsFile for SimFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.change(Pending::Write {
            at: offset,
            data: buf.to_vec(),
        })
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(|file| {
            let at = offset as usize;
            let src = file
                .live
                .get(at..at + buf.len())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(src);
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.change(Pending::SetLen(len))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }
}

/// SplitMix64: a tiny seeded generator, so the crate needs no `rand`.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the bias is negligible for the small `n` used here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Log, Options, WriteBatch, durable};
    use std::path::PathBuf;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    /// A disk with `/d` created durably.
    fn disk(seed: u64) -> (SimDisk, Arc<dyn Fs>) {
        let disk = SimDisk::new(seed);
        let fs = disk.fs();
        crate::fs::create_dir_all(&*fs, &p("/d")).unwrap();
        (disk, fs)
    }

    #[test]
    fn an_unsynced_append_is_lost_and_a_synced_one_kept() {
        // Seeds differ in whether unsynced bytes land; every outcome must keep the synced.
        for seed in 0..64 {
            let (disk, fs) = disk(seed);
            let f = fs.create_new(&p("/d/f")).unwrap();
            fs.sync_dir(&p("/d")).unwrap();
            f.write_all_at(b"synced", 0).unwrap();
            f.sync_data().unwrap();
            f.write_all_at(b"-unsynced", 6).unwrap();
            let report = disk.crash();
            let after = disk.fs().read(&p("/d/f")).unwrap();
            assert!(after.starts_with(b"synced"), "seed {seed}: {after:?}");
            assert!(after.len() <= b"synced-unsynced".len(), "seed {seed}");
            // Garbage may follow a torn prefix, so the length bounds what was kept from above.
            assert!(report.bytes_lost >= 15 - after.len() as u64, "seed {seed}");
        }
        // Whenever nothing unsynced lands, the file is exactly what was synced.
        let mut reverted = 0;
        for seed in 0..16 {
            let (disk, fs) = disk(seed);
            let f = fs.create_new(&p("/d/f")).unwrap();
            fs.sync_dir(&p("/d")).unwrap();
            f.write_all_at(b"synced", 0).unwrap();
            f.sync_all().unwrap();
            f.write_all_at(b"-unsynced", 6).unwrap();
            f.set_len(3).unwrap();
            if disk.crash().files_reverted == 1 {
                assert_eq!(disk.fs().read(&p("/d/f")).unwrap(), b"synced");
                reverted += 1;
            }
        }
        assert!(reverted > 0);
    }

    #[test]
    fn a_new_file_is_gone_after_a_crash_unless_its_directory_was_synced() {
        let (disk, fs) = disk(0);
        let f = fs.create_new(&p("/d/new")).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        f.sync_all().unwrap(); // the contents are durable, the name is not
        assert_eq!(disk.crash().files_unlinked, 1);
        let fs = disk.fs();
        assert_eq!(
            fs.read(&p("/d/new")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let f = fs.create_new(&p("/d/new")).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        disk.crash();
        assert_eq!(disk.fs().read(&p("/d/new")).unwrap(), b"data");
    }

    #[test]
    fn a_rename_is_not_durable_before_its_directory_is_synced() {
        let (disk, fs) = disk(0);
        durable::write_atomic_on(&*fs, &p("/d"), "vote", &[b"old"]).unwrap();
        let tmp = fs.create(&p("/d/vote.tmp")).unwrap();
        tmp.write_all_at(b"new", 0).unwrap();
        tmp.sync_all().unwrap();
        fs.rename(&p("/d/vote.tmp"), &p("/d/vote")).unwrap();
        let name = |fs: &dyn Fs| fs.read(&p("/d/vote")).unwrap();
        assert_eq!(name(&*fs), b"new");
        disk.crash();
        let fs = disk.fs();
        // The old name and contents are back; the temp file is gone with its name.
        assert_eq!(
            durable::read_on(&*fs, &p("/d"), "vote").unwrap(),
            Some(vec![b"old".to_vec()])
        );
        assert_eq!(fs.list_dir(&p("/d")).unwrap(), [OsString::from("vote")]);
        // Synced, the rename survives.
        durable::write_atomic_on(&*fs, &p("/d"), "vote", &[b"new"]).unwrap();
        disk.crash();
        assert_eq!(
            durable::read_on(&*disk.fs(), &p("/d"), "vote").unwrap(),
            Some(vec![b"new".to_vec()])
        );
    }

    #[test]
    fn a_removal_is_not_durable_before_its_directory_is_synced() {
        let (disk, fs) = disk(0);
        durable::write_atomic_on(&*fs, &p("/d"), "f", &[b"x"]).unwrap();
        durable::remove_on(&*fs, &p("/d"), "f").unwrap();
        disk.crash();
        assert!(
            durable::read_on(&*disk.fs(), &p("/d"), "f")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_directory_created_without_syncing_its_parent_is_lost() {
        let disk = SimDisk::new(0);
        let fs = disk.fs();
        fs.create_dir(&p("/a")).unwrap();
        fs.create_dir(&p("/a/b")).unwrap();
        fs.sync_dir(&p("/a")).unwrap();
        disk.crash();
        assert_eq!(disk.fs().list_dir(&p("/")).unwrap(), Vec::<OsString>::new());
        // `create_dir_all` syncs each parent.
        crate::fs::create_dir_all(&*disk.fs(), &p("/a/b/c")).unwrap();
        disk.crash();
        assert_eq!(
            disk.fs().list_dir(&p("/a/b")).unwrap(),
            [OsString::from("c")]
        );
    }

    #[test]
    fn the_tail_may_be_torn_with_garbage_but_the_synced_part_never_changes() {
        let data: Vec<u8> = (0..200u8).collect();
        let (mut lost_all, mut whole, mut torn, mut garbage) = (0, 0, 0, 0);
        for seed in 0..400 {
            let (disk, fs) = disk(seed);
            let f = fs.create_new(&p("/d/f")).unwrap();
            fs.sync_dir(&p("/d")).unwrap();
            f.write_all_at(b"head", 0).unwrap();
            f.sync_data().unwrap();
            f.write_all_at(&data, 4).unwrap();
            disk.crash();
            let after = disk.fs().read(&p("/d/f")).unwrap();
            assert_eq!(&after[..4], b"head", "seed {seed}");
            let tail = &after[4..];
            assert!(tail.len() <= data.len(), "seed {seed}");
            let intact = tail.iter().zip(&data).take_while(|(a, b)| a == b).count();
            match tail.len() {
                0 => lost_all += 1,
                n if n == data.len() && intact == n => whole += 1,
                _ if intact == tail.len() => torn += 1,
                _ => garbage += 1,
            }
        }
        assert!(
            lost_all > 0 && whole > 0 && torn > 0 && garbage > 0,
            "lost {lost_all}, whole {whole}, torn {torn}, torn with garbage {garbage}"
        );
    }

    /// A disk whose syncs take 40 ms, with a file `/d/f` whose name is durable, and a sync
    /// of that file begun 10 ms after `written` was written at offset 0.
    fn syncing_after(
        written: &[u8],
    ) -> (
        SimDisk,
        Arc<dyn FsFile>,
        std::thread::JoinHandle<io::Result<()>>,
    ) {
        let ms = Duration::from_millis;
        let disk = SimDisk::with_sync_latency(0, ms(40), ms(40));
        let fs = disk.fs();
        crate::fs::create_dir_all(&*fs, &p("/d")).unwrap();
        let f = fs.create_new(&p("/d/f")).unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        f.write_all_at(written, 0).unwrap();
        let syncing = {
            let f = f.clone();
            std::thread::spawn(move || f.sync_data())
        };
        std::thread::sleep(ms(10));
        (disk, f, syncing)
    }

    #[test]
    fn a_sync_in_progress_when_the_power_goes_fails() {
        let (disk, _, syncing) = syncing_after(b"x");
        let report = disk.crash();
        assert!(syncing.join().unwrap().is_err());
        assert_eq!(report.syncs_interrupted, 1);
        // Nothing was promised: the write is there or not, as any unsynced write.
        assert_eq!(report.files_reverted + report.files_kept_prefix, 1);
    }

    #[test]
    fn a_sync_covers_what_was_written_before_it_began() {
        let (disk, f, syncing) = syncing_after(b"before");
        f.write_all_at(b"-during", 6).unwrap();
        syncing.join().unwrap().unwrap();
        let report = disk.crash();
        assert_eq!(report.files_reverted + report.files_kept_prefix, 1);
        assert!(disk.fs().read(&p("/d/f")).unwrap().starts_with(b"before"));
    }

    #[test]
    fn an_armed_crash_strikes_in_the_middle_of_the_io() {
        let mut struck_at = BTreeSet::new();
        for seed in 0..32 {
            let (disk, fs) = disk(seed);
            let f = fs.create_new(&p("/d/f")).unwrap();
            fs.sync_dir(&p("/d")).unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            disk.crash_within(4, move |report| tx.send(report).unwrap());
            let mut calls = 0;
            let failed = (0..4u64).find(|i| {
                calls += 1;
                let r = if i % 2 == 0 {
                    f.write_all_at(b"abc", 3 * i)
                } else {
                    f.sync_data()
                };
                r.is_err()
            });
            let report = rx.try_recv().expect("the crash struck within 4 calls");
            assert_eq!(failed, Some(calls - 1), "seed {seed}");
            struck_at.insert(calls);
            // Everything after the crash fails; the next process sees what was synced.
            assert!(f.write_all_at(b"x", 0).is_err());
            let after = disk.fs().read(&p("/d/f")).unwrap();
            let synced = if calls >= 3 { 3 } else { 0 };
            assert!(after.len() >= synced, "seed {seed}: {after:?}");
            if calls == 2 {
                assert_eq!(report.syncs_interrupted, 1, "seed {seed}");
            }
        }
        assert_eq!(struck_at, BTreeSet::from([1, 2, 3, 4]));
        // Armed but not struck: it can be struck from outside, once.
        let (disk, _fs) = disk(0);
        disk.crash_within(1000, |_| {});
        assert!(disk.crash_armed_now());
        assert!(!disk.crash_armed_now());
    }

    #[test]
    fn a_crash_ends_the_process_that_used_the_disk() {
        let (disk, fs) = disk(0);
        let f = fs.create_new(&p("/d/f")).unwrap();
        disk.crash();
        assert!(f.write_all_at(b"late", 0).is_err());
        assert!(f.sync_data().is_err());
        assert!(fs.list_dir(&p("/")).is_err());
        assert!(disk.fs().list_dir(&p("/")).is_ok());
    }

    /// Appends on the log, some waited for, crashing at random: whatever was acknowledged
    /// survives, nothing that was truncated comes back, and the log always opens.
    #[test]
    fn the_log_keeps_every_acknowledged_record_across_power_losses() {
        let opts = || Options {
            segment_bytes: 1024,
        };
        let mut crashes = CrashReport::default();
        for seed in 0..32 {
            let mut rng = SplitMix(seed);
            let disk = SimDisk::new(seed);
            let dir = p("/data/wal");
            // The payload written last at each index; the highest acknowledged index.
            let mut written: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
            let mut acked = 0u64;
            let mut log = Log::open_on(disk.fs(), &dir, opts()).unwrap();
            let mut next = 1;
            for step in 0..60u64 {
                match rng.below(10) {
                    0..=5 => {
                        let mut batch = WriteBatch::new();
                        for i in next..next + 1 + rng.below(5) {
                            let payload = format!("{i}@{seed}/{step}").into_bytes();
                            batch.push(i, &payload);
                            written.insert(i, payload);
                        }
                        let last = batch.last_index().unwrap();
                        next = last + 1;
                        let (tx, rx) = std::sync::mpsc::channel();
                        log.append(&batch, Box::new(move |r| drop(tx.send(r))))
                            .unwrap();
                        if rng.chance(1, 2) {
                            rx.recv().unwrap().unwrap();
                            acked = last;
                        }
                    }
                    6 if next > 2 => {
                        let from = 1 + rng.below(next - 1);
                        if from > acked {
                            log.truncate_from(from).unwrap();
                            written.split_off(&from);
                            next = from;
                        }
                    }
                    _ => {
                        // The flusher may or may not have synced the latest appends.
                        crashes += disk.crash();
                        drop(log);
                        log = Log::open_on(disk.fs(), &dir, opts())
                            .unwrap_or_else(|e| panic!("seed {seed}: the log opens: {e}"));
                        let mut seen = Vec::new();
                        log.read(0..u64::MAX, |i, payload| {
                            seen.push((i, payload.to_vec()));
                            Ok(())
                        })
                        .unwrap();
                        for (n, (i, payload)) in seen.iter().enumerate() {
                            assert_eq!(*i, n as u64 + 1, "seed {seed}: a hole");
                            assert_eq!(Some(payload), written.get(i), "seed {seed}: index {i}");
                        }
                        let held = seen.len() as u64;
                        assert!(held >= acked, "seed {seed}: acked {acked}, held {held}");
                        written.split_off(&(held + 1));
                        next = held + 1;
                    }
                }
            }
        }
        // The runs did lose unsynced records, and tore some.
        assert!(
            crashes.bytes_lost > 0 && crashes.torn_writes > 0,
            "{crashes:?}"
        );
    }
}
