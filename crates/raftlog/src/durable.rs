//! Small files replaced atomically and durably: the Raft vote, snapshots.
//!
//! A write goes to `<name>.tmp`, is fsynced, renamed over `<name>`, and the directory is
//! fsynced, so after a crash the file holds either the old or the new contents, whole. Each
//! part is framed like a log record, so a damaged file is reported, not misread.
//!
//! Each function has an `_on` twin that takes the file system (see [`crate::fs`]); the plain
//! ones use the real one.

use crate::fs::{self, Fs, FsFile, remove_if_present};
use crate::record::{self, Decoded};
use std::io::{self, Write};
use std::path::Path;

/// Atomically replaces `dir/name` with `parts`; [`read`] returns them separately.
pub fn write_atomic(dir: &Path, name: &str, parts: &[&[u8]]) -> io::Result<()> {
    write_atomic_on(&fs::StdFs, dir, name, parts)
}

/// [`write_atomic`] on `fs`.
pub fn write_atomic_on(fs: &dyn Fs, dir: &Path, name: &str, parts: &[&[u8]]) -> io::Result<()> {
    fs::create_dir_all(fs, dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let file = fs.create(&tmp)?;
    let mut out = io::BufWriter::new(Sequential {
        file: &*file,
        at: 0,
    });
    for (i, part) in parts.iter().enumerate() {
        out.write_all(&record::header(i as u64, part))?;
        out.write_all(part)?;
    }
    out.flush()?;
    drop(out);
    file.sync_all()?;
    fs.rename(&tmp, &dir.join(name))?;
    fs.sync_dir(dir)
}

/// The parts of `dir/name`, or `None` if there is no such file.
pub fn read(dir: &Path, name: &str) -> io::Result<Option<Vec<Vec<u8>>>> {
    read_on(&fs::StdFs, dir, name)
}

/// [`read`] on `fs`.
pub fn read_on(fs: &dyn Fs, dir: &Path, name: &str) -> io::Result<Option<Vec<Vec<u8>>>> {
    let path = dir.join(name);
    let bytes = match fs.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut parts = Vec::new();
    let mut at = 0;
    loop {
        match record::decode(&bytes, at) {
            Decoded::Record {
                index,
                payload,
                next,
            } if index == parts.len() as u64 => {
                parts.push(payload.to_vec());
                at = next;
            }
            Decoded::End => return Ok(Some(parts)),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is damaged", path.display()),
                ));
            }
        }
    }
}

/// Removes `dir/name` if it exists.
pub fn remove(dir: &Path, name: &str) -> io::Result<()> {
    remove_on(&fs::StdFs, dir, name)
}

/// [`remove`] on `fs`.
pub fn remove_on(fs: &dyn Fs, dir: &Path, name: &str) -> io::Result<()> {
    remove_if_present(fs, &dir.join(name))
}

/// Writes a fresh file front to back, so a `BufWriter` can batch the small header and
/// payload writes into few system calls, as it did over `std::fs::File`.
struct Sequential<'a> {
    file: &'a dyn FsFile,
    at: u64,
}

impl Write for Sequential<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.at)?;
        self.at += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
