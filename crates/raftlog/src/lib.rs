//! musubi's write-ahead log: the Raft log on disk, plus the small files Raft keeps beside it.
//!
//! Promises:
//! - An append is acknowledged (its `on_durable` callback runs) only after its records are
//!   fsynced; completions run in append order.
//! - Many appends share one `fdatasync` (group commit): a dedicated flusher thread syncs
//!   whatever has been written since its last sync, so async callers never block on the disk.
//! - Every record carries a CRC32. Opening a log whose tail was torn by a crash, or damaged,
//!   cuts the tail off and logs a warning; it never panics and never returns a bad record.
//!
//! The driving loop, as the consensus layer uses it:
//! 1. [`Log::open`] recovers the segments in a directory;
//! 2. entries are encoded into a [`WriteBatch`] and handed to [`Log::append`], which writes
//!    them and returns; the callback fires once they are durable;
//! 3. [`Log::read`] streams records back by index; [`Log::truncate_from`] drops a
//!    conflicting suffix; [`Log::purge_upto`] drops a prefix once a snapshot covers it;
//! 4. [`durable::write_atomic`] stores the vote and snapshots (temp file, fsync, rename,
//!    fsync of the directory).
//!
//! Every file-system call goes through [`fs::Fs`]: the real file system by default
//! ([`Log::open`]), any other with [`Log::open_on`] and the `durable::*_on` functions. With
//! the `sim` feature, [`sim::SimDisk`] is a simulated disk that loses every write not yet
//! fsynced when it "loses power", so tests can check that what was acknowledged was synced.
//!
//! ```
//! use musubi_raftlog::{Log, Options, WriteBatch};
//! let dir = tempfile::tempdir().unwrap();
//! let log = Log::open(dir.path(), Options::default()).unwrap();
//! let mut batch = WriteBatch::new();
//! batch.push(1, b"first");
//! batch.push(2, b"second");
//! let (tx, rx) = std::sync::mpsc::channel();
//! log.append(&batch, Box::new(move |result| tx.send(result).unwrap())).unwrap();
//! rx.recv().unwrap().unwrap(); // durable now
//! let mut seen = Vec::new();
//! log.read(1..3, |index, payload| Ok(seen.push((index, payload.to_vec())))).unwrap();
//! assert_eq!(seen, [(1, b"first".to_vec()), (2, b"second".to_vec())]);
//! ```

mod batch;
pub mod durable;
mod flusher;
pub mod fs;
#[doc(hidden)]
pub mod fuzzing;
mod log;
mod record;
mod segment;
#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use batch::WriteBatch;
pub use flusher::OnDurable;
pub use log::{Log, Options};
