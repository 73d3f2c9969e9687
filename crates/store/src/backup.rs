//! musubi's backup file: what the v3 `Snapshot` stream sends, `musubi snapshot save` keeps
//! and `musubi snapshot restore` reads. Pure: bytes in, bytes out.
//!
//! Layout (all integers big-endian):
//! 1. the magic `MAGIC` (16 bytes), so a file is recognised before anything is parsed;
//! 2. a `u32` length and a JSON [`BackupHeader`]: the file format, what the data is, and
//!    where and when in the cluster it was taken (revision, Raft index, member);
//! 3. a `u64` length and the data: the state machine's own snapshot ([`Frozen`]);
//! 4. zeros up to a multiple of 512 bytes, then the SHA-256 of everything before it.
//!
//! The padding and the digest are etcd's framing: `etcdctl snapshot save` accepts a stream
//! only if its length is `512·k + 32` (etcd's bbolt file is pages of 4 KiB, then its
//! SHA-256), and `etcdctl snapshot restore` checks the digest the same way.

use crate::state_machine::Frozen;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 16] = b"musubi-snapshot\n";
/// The layout above. Bumped when it changes; an unknown format is refused, not misread.
pub const FORMAT: u32 = 1;
/// The block the body is padded to, and the digest that follows it (etcd's framing).
pub const BLOCK: usize = 512;
pub const DIGEST: usize = 32;

/// What a backup file says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    pub format: u32,
    /// What the data is, for a reader that has only the file.
    pub content: String,
    /// The keyspace's revision and compaction revision (0: never compacted).
    pub revision: i64,
    pub compact_revision: i64,
    /// Keys v3 sees (v2 directories without a value are not counted), and leases.
    pub keys: u64,
    pub leases: u64,
    /// Where it was taken: the last applied Raft entry, and the member and cluster.
    #[serde(flatten)]
    pub origin: Origin,
}

/// The member a snapshot was taken on, and how far its log was applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub raft_index: u64,
    pub raft_term: u64,
    pub cluster_id: u64,
    pub member_id: u64,
}

/// Why a file cannot be restored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackupError {
    #[error(
        "not a musubi snapshot: it is an etcd (bbolt) database; musubi restores only snapshots saved from musubi"
    )]
    Bolt,
    #[error("not a musubi snapshot (no musubi-snapshot header)")]
    NotASnapshot,
    #[error(
        "sha256 checksum not found [bytes: {0}]: the file is truncated, or not a snapshot saved whole"
    )]
    NoChecksum(usize),
    #[error("snapshot file integrity check failed: sha256 mismatch (the file is corrupt)")]
    HashMismatch,
    #[error("snapshot file format {0} is not {FORMAT}: written by another musubi version")]
    Format(u32),
    #[error("the snapshot file is damaged: {0}")]
    Damaged(String),
}

/// A backup file read back: its header and the state machine's snapshot inside it.
#[derive(Debug)]
pub struct Backup<'a> {
    pub header: BackupHeader,
    pub data: &'a [u8],
}

/// The whole file for `frozen`, taken at `origin` (header, data, padding and digest), and
/// the header written into it.
pub fn encode(frozen: &Frozen, origin: Origin) -> (BackupHeader, Vec<u8>) {
    let keyspace = frozen.keyspace();
    let header = BackupHeader {
        format: FORMAT,
        content: "musubi state machine snapshot (JSON, store layout inside): MVCC keyspace \
                  with history, leases, auth, alarms, request IDs"
            .into(),
        revision: keyspace.revision(),
        compact_revision: keyspace.compacted(),
        keys: keyspace.iter().filter(|e| e.is_key()).count() as u64,
        leases: frozen.leases().len() as u64,
        origin,
    };
    let json = serde_json::to_vec(&header).expect("a header serializes");
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&(json.len() as u32).to_be_bytes());
    file.extend_from_slice(&json);
    // The data is serialised in place; its length is filled in after.
    let length_at = file.len();
    file.extend_from_slice(&[0; 8]);
    frozen
        .write_to(&mut file)
        .expect("the state always serializes into memory");
    let data_len = (file.len() - length_at - 8) as u64;
    file[length_at..length_at + 8].copy_from_slice(&data_len.to_be_bytes());
    file.resize(file.len().next_multiple_of(BLOCK), 0);
    let digest = Sha256::digest(&file);
    file.extend_from_slice(&digest);
    (header, file)
}

/// Whether `size` bytes can be a whole snapshot: etcd's check, which `etcdctl snapshot
/// save` applies to what it received.
pub fn has_checksum(size: usize) -> bool {
    size % BLOCK == DIGEST
}

/// Checks that `file` ends with the SHA-256 of what precedes it.
pub fn verify(file: &[u8]) -> Result<(), BackupError> {
    if !has_checksum(file.len()) {
        return Err(BackupError::NoChecksum(file.len()));
    }
    let (body, digest) = file.split_at(file.len() - DIGEST);
    if Sha256::digest(body).as_slice() != digest {
        return Err(BackupError::HashMismatch);
    }
    Ok(())
}

/// Reads a backup file; `check_hash` false skips the digest (etcd's `--skip-hash-check`).
pub fn decode(file: &[u8], check_hash: bool) -> Result<Backup<'_>, BackupError> {
    // bbolt's meta page carries its magic 0xED0CDAED at byte 16 (little-endian).
    if file.get(16..20) == Some(&[0xED, 0xDA, 0x0C, 0xED]) {
        return Err(BackupError::Bolt);
    }
    if !file.starts_with(MAGIC) {
        return Err(BackupError::NotASnapshot);
    }
    if check_hash {
        verify(file)?;
    }
    let damaged = |what: &str| BackupError::Damaged(what.into());
    let mut rest = &file[MAGIC.len()..];
    let header_len = take(&mut rest, 4).ok_or_else(|| damaged("no header length"))?;
    let header_len = u32::from_be_bytes(header_len.try_into().expect("4 bytes")) as usize;
    let header = take(&mut rest, header_len).ok_or_else(|| damaged("the header is cut"))?;
    let format: Format =
        serde_json::from_slice(header).map_err(|e| BackupError::Damaged(e.to_string()))?;
    if format.format != FORMAT {
        return Err(BackupError::Format(format.format));
    }
    let header: BackupHeader =
        serde_json::from_slice(header).map_err(|e| BackupError::Damaged(e.to_string()))?;
    let data_len = take(&mut rest, 8).ok_or_else(|| damaged("no data length"))?;
    let data_len = u64::from_be_bytes(data_len.try_into().expect("8 bytes"));
    let data = usize::try_from(data_len)
        .ok()
        .and_then(|n| take(&mut rest, n))
        .ok_or_else(|| damaged("the data is cut"))?;
    Ok(Backup { header, data })
}

/// Just the format, read first, so a newer layout is named rather than misparsed.
#[derive(Deserialize)]
struct Format {
    format: u32,
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StateMachine;
    use crate::v3::V3Write;
    use crate::{Expiry, Request, V2Op};
    use musubi_proto::etcdserverpb::PutRequest;

    fn filled() -> StateMachine {
        let mut sm = StateMachine::new();
        for i in 0..50 {
            let write = V3Write::Put(PutRequest {
                key: format!("k{i}").into_bytes(),
                value: vec![b'v'; i],
                ..Default::default()
            });
            sm.apply(&Request::V3 { write, now_ms: 0 });
        }
        let op = V2Op::Set {
            key: "/dir/file".into(),
            value: Some("x".into()),
            expiry: Expiry::Permanent,
            refresh: false,
        };
        sm.apply(&Request::V2 { op, now_ms: 0 });
        sm
    }

    fn origin() -> Origin {
        Origin {
            raft_index: 77,
            raft_term: 3,
            cluster_id: 0xabc,
            member_id: 0xdef,
        }
    }

    #[test]
    fn a_backup_has_etcds_framing_and_reads_back_to_the_same_state() {
        let sm = filled();
        let (header, file) = encode(&sm.freeze(), origin());
        assert!(has_checksum(file.len()), "{} bytes", file.len());
        let backup = decode(&file, true).unwrap();
        assert_eq!(backup.header.revision, sm.revision());
        assert_eq!(backup.header.keys, 51);
        assert_eq!(backup.header.origin, origin());
        assert_eq!(backup.header, header);
        let restored = StateMachine::from_snapshot(backup.data).unwrap();
        assert_eq!(restored.to_snapshot(), sm.to_snapshot());
    }

    #[test]
    fn a_flipped_byte_anywhere_is_refused() {
        let (_, file) = encode(&filled().freeze(), origin());
        for at in [20, file.len() / 2, file.len() - 40, file.len() - 1] {
            let mut bad = file.clone();
            bad[at] ^= 1;
            assert_eq!(
                decode(&bad, true).unwrap_err(),
                BackupError::HashMismatch,
                "{at}"
            );
        }
    }

    #[test]
    fn cut_foreign_and_future_files_are_named() {
        let (_, file) = encode(&filled().freeze(), origin());
        let cut = &file[..file.len() - 100];
        assert_eq!(
            decode(cut, true).unwrap_err(),
            BackupError::NoChecksum(cut.len())
        );
        assert_eq!(
            decode(b"hello world", true).unwrap_err(),
            BackupError::NotASnapshot
        );
        let mut bolt = vec![0u8; 4096];
        bolt[16..20].copy_from_slice(&0xED0CDAEDu32.to_le_bytes());
        assert_eq!(decode(&bolt, false).unwrap_err(), BackupError::Bolt);
        let mut future = MAGIC.to_vec();
        let header = br#"{"format":9}"#;
        future.extend_from_slice(&(header.len() as u32).to_be_bytes());
        future.extend_from_slice(header);
        assert_eq!(decode(&future, false).unwrap_err(), BackupError::Format(9));
    }
}
