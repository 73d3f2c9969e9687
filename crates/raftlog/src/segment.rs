//! One segment file: consecutive records, named after the index of its first record.

use crate::fs::{Fs, FsFile};
use crate::record::{self, Decoded};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SUFFIX: &str = ".wal";

/// Segments grow by zero-filled steps of this size, made durable once (`fsync`), so the
/// `fdatasync` of every append batch only flushes data and never has to commit a new file
/// size to the filesystem journal: that commit, not the data write, is what makes a sync
/// of an appended file slow.
const PREALLOCATE_STEP: u64 = 4 << 20;

pub(crate) struct Segment {
    pub(crate) first: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<dyn FsFile>,
    /// Byte offset of each record; record `i` holds index `first + i`.
    pub(crate) offsets: Vec<u64>,
    /// End of the last whole record: where the next append goes.
    pub(crate) end: u64,
    /// File length: zeros from `end` up to here are preallocated space.
    allocated: u64,
}

/// `00000000000000000001.wal`: fixed width, so names sort like the indexes they carry.
pub(crate) fn file_name(first: u64) -> String {
    format!("{first:020}{SUFFIX}")
}

/// The first index a segment file name announces, or `None` for files that are not segments.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Segment {
    pub(crate) fn create(fs: &dyn Fs, dir: &Path, first: u64) -> io::Result<Self> {
        let path = dir.join(file_name(first));
        let file = fs.create_new(&path)?;
        Ok(Self {
            first,
            path,
            file,
            offsets: Vec::new(),
            end: 0,
            allocated: 0,
        })
    }

    /// Opens a segment and reads its records. A torn or corrupt tail, or a record whose index
    /// breaks the sequence, ends the segment: the file is cut there and the reason returned.
    pub(crate) fn recover(
        fs: &dyn Fs,
        path: PathBuf,
        first: u64,
    ) -> io::Result<(Self, Option<&'static str>)> {
        let file = fs.open(&path)?;
        let bytes = fs.read(&path)?;
        let mut offsets = Vec::new();
        let mut at = 0;
        let torn = loop {
            match record::decode(&bytes, at) {
                Decoded::Record { index, next, .. } => {
                    if index != first + offsets.len() as u64 {
                        break Some("record index out of sequence");
                    }
                    // No index follows u64::MAX: such a record (only damage or a crafted
                    // file holds one) would overflow `next()`.
                    if index == u64::MAX {
                        break Some("record index at the end of the index space");
                    }
                    offsets.push(at as u64);
                    at = next;
                }
                Decoded::End => break None,
                // Zeros to the end of the file are preallocated space, not damage.
                Decoded::Torn(_) if all_zero(&bytes[at..]) => break None,
                Decoded::Torn(why) => break Some(why),
            }
        };
        let mut allocated = bytes.len() as u64;
        if torn.is_some() {
            file.set_len(at as u64)?;
            file.sync_all()?;
            allocated = at as u64;
        }
        let segment = Self {
            first,
            path,
            file,
            offsets,
            end: at as u64,
            allocated,
        };
        Ok((segment, torn))
    }

    pub(crate) fn len(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// One past the last index held.
    pub(crate) fn next(&self) -> u64 {
        self.first + self.len()
    }

    /// Byte offset where the record with `index` starts; `index == next()` gives the end.
    pub(crate) fn offset_of(&self, index: u64) -> u64 {
        let i = (index - self.first) as usize;
        self.offsets.get(i).copied().unwrap_or(self.end)
    }

    /// Appends already-framed records; `starts` are their offsets within `buf`.
    pub(crate) fn write(&mut self, buf: &[u8], starts: &[usize]) -> io::Result<()> {
        let needed = self.end + buf.len() as u64;
        if needed > self.allocated {
            self.preallocate(needed.next_multiple_of(PREALLOCATE_STEP))?;
        }
        self.file.write_all_at(buf, self.end)?;
        self.offsets
            .extend(starts.iter().map(|s| self.end + *s as u64));
        self.end += buf.len() as u64;
        Ok(())
    }

    /// Drops every record from `index` on, durably.
    pub(crate) fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let cut = self.offset_of(index);
        self.file.set_len(cut)?;
        self.file.sync_data()?;
        self.offsets.truncate((index - self.first) as usize);
        self.end = cut;
        self.allocated = cut;
        Ok(())
    }

    /// Extends the file with zeros up to `len` and makes the new length durable.
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let mut at = self.allocated;
        while at < len {
            let n = (len - at).min(ZEROS.len() as u64);
            self.file.write_all_at(&ZEROS[..n as usize], at)?;
            at += n;
        }
        self.file.sync_all()?;
        self.allocated = len;
        Ok(())
    }

    /// Calls `f` with each record in `from..to` (both within this segment), in order.
    pub(crate) fn read(
        &self,
        from: u64,
        to: u64,
        buf: &mut Vec<u8>,
        f: &mut impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let (start, stop) = (self.offset_of(from), self.offset_of(to));
        buf.resize((stop - start) as usize, 0);
        self.file.read_exact_at(buf, start)?;
        let mut at = 0;
        for expected in from..to {
            match record::decode(buf, at) {
                Decoded::Record {
                    index,
                    payload,
                    next,
                } if index == expected => {
                    f(index, payload)?;
                    at = next;
                }
                _ => return Err(corrupt(&self.path, expected)),
            }
        }
        Ok(())
    }
}

/// Whether `bytes` are all zero, compared a block at a time (a byte-by-byte loop over a 4
/// MiB preallocated tail is slow in debug builds, where the simulations run).
fn all_zero(bytes: &[u8]) -> bool {
    static ZEROS: [u8; 4096] = [0; 4096];
    bytes.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

fn corrupt(path: &Path, index: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("raft log record {index} in {} is corrupt", path.display()),
    )
}
