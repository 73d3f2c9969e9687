//! The file layer: every file-system call the log and the small durable files make, behind
//! one trait, so a test can run them on a disk that forgets what was never fsynced.
//!
//! Production uses [`StdFs`] (through [`real`]): each call is the `std::fs` call the code
//! made before this layer existed, so behaviour is unchanged. Files are `Arc<dyn FsFile>`
//! and the file system an `Arc<dyn Fs>` created once per log; the cost of the indirection
//! is one virtual call per system call, nanoseconds beside the system call itself, and far
//! below the noise of an `fdatasync`. Static dispatch (a type parameter on `Log`) would have
//! leaked into every type that holds a log, openraft's storage types included, for nothing
//! measurable.
//!
//! The trait is deliberately small and says exactly which calls carry durability:
//! - [`FsFile::sync_data`] / [`FsFile::sync_all`] make a file's contents (and length)
//!   durable, and nothing else;
//! - a file's *name* (its creation, a rename to it, its removal) is durable only once its
//!   directory is synced with [`Fs::sync_dir`], as POSIX says and as ext4 without the
//!   ordering guarantees of `data=ordered` (which nothing should rely on) behaves.
//!
//! The simulated file system in [`crate::sim`] (feature `sim`) holds code to exactly that.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// The directory and whole-file calls the log and the durable files make.
///
/// Paths are used as given; the real implementation resolves relative ones against the
/// working directory as `std::fs` does.
pub trait Fs: Send + Sync + 'static {
    /// Creates one directory. Fails with `AlreadyExists` if something has that name and with
    /// `NotFound` if the parent is missing. The new name is durable after `sync_dir` of the
    /// parent (see [`create_dir_all`]).
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates a file that must not exist yet, open for reading and writing.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Creates a file, or truncates the existing one, open for writing.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// A whole file's contents.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file (its name; open handles keep working).
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names in a directory, in no particular order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Makes the directory's entries (creations, renames, removals in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file: positional I/O, length changes and the two syncs.
pub trait FsFile: Send + Sync {
    /// Writes all of `buf` at `offset`, extending the file if needed (a write past the end
    /// leaves zeros in between, as `pwrite` does).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Fills `buf` from `offset`; `UnexpectedEof` if the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Cuts or zero-extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the contents and length become durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: as `sync_data`, and the rest of the file's metadata too.
    fn sync_all(&self) -> io::Result<()>;
}

/// The real file system: `std::fs`, unchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

/// The real file system, as the shared handle the log and stores take.
pub fn real() -> Arc<dyn Fs> {
    Arc::new(StdFs)
}

impl Fs for StdFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(file))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        Ok(Arc::new(File::create(path)?))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(file))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl FsFile for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }
}

/// Creates `dir` and any missing parents, durably: each directory created is followed by a
/// `sync_dir` of its parent, so a power loss cannot take a fresh data dir's `wal/` away
/// after records in it were acknowledged. A directory that exists costs one `mkdir` that
/// fails, as `std::fs::create_dir_all` does.
pub fn create_dir_all(fs: &dyn Fs, dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    match fs.create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let Some(parent) = dir.parent() else {
                return Err(e);
            };
            create_dir_all(fs, parent)?;
            match fs.create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    fs.sync_dir(parent_of(dir))
}

/// The directory holding `path`: `.` for a bare relative name.
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes a file; one that is already gone is not an error.
pub(crate) fn remove_if_present(fs: &dyn Fs, path: &Path) -> io::Result<()> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
