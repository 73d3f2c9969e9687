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

/// The most one part may hold (1 GiB): a snapshot larger than this cannot be saved.
pub const MAX_PART_BYTES: usize = record::MAX_PAYLOAD;

/// Atomically replaces `dir/name` with `parts`; [`read`] returns them separately.
pub fn write_atomic(dir: &Path, name: &str, parts: &[&[u8]]) -> io::Result<()> {
    write_atomic_on(&fs::StdFs, dir, name, parts)
}

/// [`write_atomic`] on `fs`.
pub fn write_atomic_on(fs: &dyn Fs, dir: &Path, name: &str, parts: &[&[u8]]) -> io::Result<()> {
    replace_on(fs, dir, name, |out| write_parts(out, parts))
}

/// How much of a streamed part is checksummed at a time.
const CHECKSUM_CHUNK: usize = 64 * 1024;

/// [`write_atomic_on`] with one more part after `parts`, which `write_last` writes as it
/// produces it, so that it is never whole in memory (a snapshot of the state). [`read`]
/// returns it as a part like the others. Returns its length.
pub fn write_atomic_streamed_on(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
    write_last: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<u64> {
    let mut last_len = 0;
    replace_on(fs, dir, name, |out| {
        write_parts(out, parts)?;
        // The header goes in once the payload's length and checksum are known.
        out.flush()?;
        let header_at = out.get_ref().at;
        out.write_all(&[0; record::HEADER])?;
        // Buffered above the checksum too: a serializer writes a few bytes at a time, and
        // a CRC over each few bytes cost more than the JSON it covered.
        let mut last = io::BufWriter::with_capacity(
            CHECKSUM_CHUNK,
            Checksummed {
                out: &mut *out,
                record: record::Streamed::new(parts.len() as u64),
            },
        );
        write_last(&mut last)?;
        let record = last
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .record;
        last_len = record.len() as u64;
        let header = record.header().ok_or_else(|| {
            io::Error::other(format!(
                "{name} would take {last_len} bytes, past the 1 GiB record limit"
            ))
        })?;
        out.flush()?;
        out.get_ref().file.write_all_at(&header, header_at)
    })?;
    Ok(last_len)
}

fn write_parts(out: &mut impl Write, parts: &[&[u8]]) -> io::Result<()> {
    for (i, part) in parts.iter().enumerate() {
        out.write_all(&record::header(i as u64, part))?;
        out.write_all(part)?;
    }
    Ok(())
}

/// Writes `dir/name.tmp` with `write`, fsyncs it, renames it over `dir/name` and fsyncs the
/// directory.
fn replace_on(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut io::BufWriter<Sequential<'_>>) -> io::Result<()>,
) -> io::Result<()> {
    fs::create_dir_all(fs, dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let file = fs.create(&tmp)?;
    let mut out = io::BufWriter::new(Sequential {
        file: &*file,
        at: 0,
        synced: 0,
    });
    write(&mut out)?;
    out.flush()?;
    drop(out);
    file.sync_all()?;
    fs.rename(&tmp, &dir.join(name))?;
    fs.sync_dir(dir)
}

/// A record's payload on its way out, checksummed as it passes.
struct Checksummed<'a, W: Write> {
    out: &'a mut W,
    record: record::Streamed,
}

impl<W: Write> Write for Checksummed<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.out.write(buf)?;
        self.record.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
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
    let mut ranges = Vec::new();
    let mut at = 0;
    loop {
        match record::decode(&bytes, at) {
            Decoded::Record {
                index,
                payload,
                next,
            } if index == ranges.len() as u64 => {
                ranges.push(next - payload.len()..next);
                at = next;
            }
            Decoded::End => break,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is damaged", path.display()),
                ));
            }
        }
    }
    // The last part is the large one (a snapshot's state): it keeps the file's buffer
    // rather than being copied out of it, so reading never holds the state twice.
    let last = ranges.pop();
    let mut parts: Vec<Vec<u8>> = ranges.into_iter().map(|r| bytes[r].to_vec()).collect();
    if let Some(last) = last {
        let mut bytes = bytes;
        bytes.truncate(last.end);
        bytes.drain(..last.start);
        parts.push(bytes);
    }
    Ok(Some(parts))
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
    /// How much of the file has been synced on the way (see [`SYNC_EVERY`]).
    synced: u64,
}

/// A large file (a snapshot: tens to hundreds of MB) is synced every this many bytes as it
/// is written, not only once at the end. On ext4 (`data=ordered`) a journal commit waits
/// for the data of every file with newly allocated blocks, so one final fsync of a whole
/// snapshot made the log's `fdatasync`s, which commit the journal too, wait for all of it
/// at once: tens of milliseconds in every write's latency, v2 put's p99 under wrk twice
/// what it was with no snapshot in the run (docs/benchmarks.md, sixth session). Synced in
/// slices, each log sync waits for one slice at most. The file is still only trusted once
/// the final sync and the rename are done.
const SYNC_EVERY: u64 = 4 << 20;

impl Write for Sequential<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all_at(buf, self.at)?;
        self.at += buf.len() as u64;
        if self.at - self.synced >= SYNC_EVERY {
            self.file.sync_data()?;
            self.synced = self.at;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_part_reads_back_like_one_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let fs = fs::StdFs;
        // Past a few sync slices, the last one partial.
        let words = (SYNC_EVERY * 5 / 2 / 4) as u32;
        let big: Vec<u8> = (0..words).flat_map(u32::to_le_bytes).collect();
        let len = write_atomic_streamed_on(&fs, dir.path(), "snap", &[b"head"], |out| {
            for piece in big.chunks(777) {
                out.write_all(piece)?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(len, big.len() as u64);
        let expected = Some(vec![b"head".to_vec(), big.clone()]);
        assert_eq!(read_on(&fs, dir.path(), "snap").unwrap(), expected);
        // The same bytes as the whole-part writer's.
        let whole = dir.path().join("whole");
        write_atomic_on(&fs, &whole, "snap", &[b"head", &big]).unwrap();
        assert_eq!(
            std::fs::read(whole.join("snap")).unwrap(),
            std::fs::read(dir.path().join("snap")).unwrap()
        );
    }

    #[test]
    fn a_failed_stream_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = fs::StdFs;
        write_atomic_on(&fs, dir.path(), "snap", &[b"old"]).unwrap();
        let failed = write_atomic_streamed_on(&fs, dir.path(), "snap", &[], |out| {
            out.write_all(b"half")?;
            Err(io::Error::other("serialisation failed"))
        });
        assert!(failed.is_err());
        assert_eq!(
            read_on(&fs, dir.path(), "snap").unwrap(),
            Some(vec![b"old".to_vec()])
        );
    }
}
