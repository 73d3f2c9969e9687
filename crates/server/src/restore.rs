//! `musubi snapshot restore`: a data dir for one member of a NEW cluster, holding what a
//! backup holds (keys, history, revisions, compaction, leases, v2 auth), as `etcdctl
//! snapshot restore` makes one from etcd's.
//!
//! The member is described with `musubi serve`'s own flags (`--name`, `--data-dir`,
//! `--initial-cluster`, `--initial-cluster-token`, `--initial-advertise-peer-urls`), parsed
//! by `config::parse` with the same defaults, so the data dir records exactly the identity
//! `musubi serve` will compute from the same flags (`bootstrap::resume` checks it). Then:
//! 1. the file's digest and framing are checked, and its state read back as a snapshot from
//!    a peer would be (`StateMachine::from_snapshot`), before anything is written;
//! 2. the identity (`identity::record`) and a first Raft snapshot holding the state and the
//!    new membership (`musubi_consensus::write_restored`) are written, each fsynced, into a
//!    sibling directory that is then renamed to the data dir: a crash leaves no half data dir.
//!
//! Nothing of the old cluster survives but its data: new cluster ID, the given members
//! (none of the old ones), a fresh Raft log. Leases restart with their full TTL under the
//! new cluster's first leader, as after any leader change.

use crate::app::Identity;
use crate::config::{self, Config, ConfigError, Invocation};
use crate::identity::{self, Founding, IdentityError};
use musubi_consensus::Member;
use musubi_store::backup::{self, BackupError, BackupHeader};
use musubi_store::{SnapshotError, StateMachine};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Flags(#[from] ConfigError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    State(#[from] SnapshotError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(
        "--initial-cluster has {name}={cluster_urls} but missing from --initial-advertise-peer-urls={advertised}"
    )]
    NotAdvertised {
        name: String,
        cluster_urls: String,
        advertised: String,
    },
    #[error("{0:?} asks for help or the version, not for a member to restore")]
    NotAMember(String),
    #[error("data-dir {0:?} exists and is not empty")]
    Exists(PathBuf),
    #[error("cannot write data dir {dir:?}: {source}")]
    Write { dir: PathBuf, source: io::Error },
}

/// What was restored, and where.
#[derive(Debug)]
pub struct Restored {
    pub data_dir: PathBuf,
    pub identity: Identity,
    /// The new cluster's members: ID, name, peer URLs.
    pub members: Vec<(u64, String, Vec<String>)>,
    pub header: BackupHeader,
}

/// Restores `file` (a backup's bytes) into the data dir `serve_flags` describe;
/// `check_hash` false skips the digest (`--skip-hash-check`).
pub fn restore(
    file: &[u8],
    serve_flags: &[String],
    check_hash: bool,
) -> Result<Restored, RestoreError> {
    let Invocation::Serve(config) = config::parse(serve_flags)? else {
        return Err(RestoreError::NotAMember(serve_flags.join(" ")));
    };
    let backup = backup::decode(file, check_hash)?;
    StateMachine::from_snapshot(backup.data)?;
    let founding = Founding::from_flags(&config);
    let identity = founding.identity(&config.name)?;
    let members = founding.members()?;
    check_advertised(&config, &members)?;
    let data_dir = config.data_dir.clone();
    if !is_missing_or_empty(&data_dir) {
        return Err(RestoreError::Exists(data_dir));
    }
    let membership: BTreeMap<u64, Member> = members
        .iter()
        .map(|(id, name, peer_urls)| (*id, Member::founding(name, peer_urls)))
        .collect();
    write(&data_dir, &identity, membership, backup.data).map_err(|source| RestoreError::Write {
        dir: data_dir.clone(),
        source,
    })?;
    Ok(Restored {
        data_dir,
        identity,
        members,
        header: backup.header,
    })
}

/// This member's `--initial-cluster` entry must be where it says peers reach it, or the
/// others would dial a member that is not there (etcd refuses the same).
fn check_advertised(
    config: &Config,
    members: &[(u64, String, Vec<String>)],
) -> Result<(), RestoreError> {
    let mine = members
        .iter()
        .find(|(_, name, _)| *name == config.name)
        .map(|(_, _, urls)| urls.clone())
        .unwrap_or_default();
    let mut cluster_urls = mine.clone();
    let mut advertised = config.initial_advertise_peer_urls.clone();
    cluster_urls.sort();
    advertised.sort();
    if cluster_urls == advertised {
        return Ok(());
    }
    Err(RestoreError::NotAdvertised {
        name: config.name.clone(),
        cluster_urls: mine.join(","),
        advertised: config.initial_advertise_peer_urls.join(","),
    })
}

fn is_missing_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// Writes the data dir beside its final place, then renames it there (over an empty
/// directory, which rename allows) and syncs the parent so the rename is durable.
fn write(
    data_dir: &Path,
    identity: &Identity,
    membership: BTreeMap<u64, Member>,
    state: &[u8],
) -> io::Result<()> {
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let file_name = data_dir
        .file_name()
        .ok_or_else(|| io::Error::other("the data dir has no name"))?;
    let staging = parent.join(format!(".{}.restoring", file_name.to_string_lossy()));
    if staging.exists() {
        // Left by a restore that crashed: it was never renamed into place.
        std::fs::remove_dir_all(&staging)?;
    }
    identity::record(&staging, identity).map_err(io::Error::other)?;
    musubi_consensus::write_restored(&staging, membership, state)?;
    // The files are synced with their directories; the directories' own entries too.
    for dir in [staging.join("member"), staging.clone()] {
        std::fs::File::open(dir)?.sync_all()?;
    }
    std::fs::rename(&staging, data_dir)?;
    std::fs::File::open(&parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use musubi_store::backup::Origin;

    fn flags(dir: &Path, name: &str) -> Vec<String> {
        [
            "--name",
            name,
            "--data-dir",
            &dir.display().to_string(),
            "--initial-cluster",
            "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3",
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{}", (name.as_bytes()[0] - b'a' + 1)),
            "--initial-cluster-token",
            "restored",
        ]
        .map(String::from)
        .to_vec()
    }

    fn backup_file() -> Vec<u8> {
        backup::encode(&StateMachine::new().freeze(), Origin::default()).1
    }

    #[test]
    fn every_member_gets_the_identity_serve_computes_from_the_same_flags() {
        let tmp = tempfile::tempdir().unwrap();
        let file = backup_file();
        let mut clusters = Vec::new();
        for name in ["a", "b", "c"] {
            let dir = tmp.path().join(name);
            let args = flags(&dir, name);
            let restored = restore(&file, &args, true).unwrap();
            let Invocation::Serve(config) = config::parse(&args).unwrap() else {
                panic!("serve flags");
            };
            let computed = Founding::from_flags(&config).identity(name).unwrap();
            assert_eq!(identity::recorded(&dir).unwrap(), Some(computed));
            assert_eq!(restored.members.len(), 3);
            clusters.push(restored.identity.cluster_id);
        }
        assert!(clusters.iter().all(|c| *c == clusters[0]));
    }

    #[test]
    fn the_data_dirs_snapshot_holds_the_backups_state() {
        let mut sm = StateMachine::new();
        let write = musubi_store::v3::V3Write::Put(musubi_proto::etcdserverpb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        });
        sm.apply(&musubi_store::Request::V3 { write, now_ms: 0 });
        let file = backup::encode(&sm.freeze(), Origin::default()).1;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        restore(&file, &flags(&dir, "a"), true).unwrap();
        let opened = std::sync::Arc::new(parking_lot::RwLock::new(StateMachine::new()));
        let hook: musubi_consensus::ApplyHook = std::sync::Arc::new(|_| {});
        let snap = dir.join("member").join("snap");
        musubi_consensus::StateMachineStore::open(opened.clone(), hook, snap).unwrap();
        assert_eq!(opened.read().to_snapshot(), sm.to_snapshot());
    }

    #[test]
    fn a_used_data_dir_a_corrupt_file_and_a_wrong_peer_url_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = backup_file();
        let dir = tmp.path().join("a");
        restore(&file, &flags(&dir, "a"), true).unwrap();
        assert!(matches!(
            restore(&file, &flags(&dir, "a"), true),
            Err(RestoreError::Exists(_))
        ));
        let mut corrupt = file.clone();
        corrupt[40] ^= 0xff;
        let other = tmp.path().join("b");
        assert!(matches!(
            restore(&corrupt, &flags(&other, "b"), true),
            Err(RestoreError::Backup(BackupError::HashMismatch))
        ));
        let mut wrong = flags(&other, "b");
        wrong[7] = "http://127.0.0.1:9".into();
        assert!(matches!(
            restore(&file, &wrong, true),
            Err(RestoreError::NotAdvertised { .. })
        ));
        assert!(!other.exists(), "nothing written for a refused restore");
    }
}
