//! Small files replaced atomically and durably: the Raft vote, snapshots.
//!
//! A write goes to `<name>.tmp`, is fsynced, renamed over `<name>`, and the directory is
//! fsynced, so after a crash the file holds either the old or the new contents, whole. Each
//! part is framed like a log record, so a damaged file is reported, not misread.

use crate::log::sync_dir;
use crate::record::{self, Decoded};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Atomically replaces `dir/name` with `parts`; [`read`] returns them separately.
pub fn write_atomic(dir: &Path, name: &str, parts: &[&[u8]]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = io::BufWriter::new(File::create(&tmp)?);
    for (i, part) in parts.iter().enumerate() {
        file.write_all(&record::header(i as u64, part))?;
        file.write_all(part)?;
    }
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// The parts of `dir/name`, or `None` if there is no such file.
pub fn read(dir: &Path, name: &str) -> io::Result<Option<Vec<Vec<u8>>>> {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
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
    match std::fs::remove_file(dir.join(name)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
