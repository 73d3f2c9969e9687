//! The shared directory on disk: what it holds now (a scan), what it held at the last sync
//! (the state file, `.musubi-files/state`), and the one way files are written into it
//! (temp file in the same filesystem, fsync, rename), so no reader ever sees half a file.

use super::ToolError;
use super::layout::format_mode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The hidden directory that holds the state, the lock and staged files. Never shared.
pub const STATE_DIR: &str = ".musubi-files";
const STATE_VERSION: u32 = 1;

/// What a path is, as far as sharing goes: a regular file (content and permission bits)
/// or a symbolic link (its target).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Entry {
    File {
        sha256: String,
        mode: String,
        size: u64,
    },
    Link {
        target: String,
    },
}

/// A path's entry plus the stat fields that tell, without reading it, that a file has not
/// changed since it was hashed (size, mtime, ctime, inode: as git's index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synced {
    #[serde(flatten)]
    pub entry: Entry,
    #[serde(default)]
    pub stat: String,
}

/// `.musubi-files/state`: the base of the three-way comparison. `files` is per path, so a
/// push that leaves remote changes unpulled keeps their old base and they still show as
/// "to pull".
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub v: u32,
    pub share: String,
    pub rev: u64,
    pub root: Option<String>,
    pub files: BTreeMap<String, Synced>,
    /// A push about to publish: recorded before its compare-and-swap, so that a push
    /// killed after publishing but before recording its base is recognised next time
    /// (its revision is `HEAD`, or in the history) instead of showing its own files as
    /// changed on both sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pending {
    pub rev: u64,
    pub root: String,
    /// The new base of each pushed path (`None`: deleted).
    pub files: BTreeMap<String, Option<Synced>>,
}

impl State {
    /// Take a pending push's base as this state's: it was published.
    pub fn adopt(&mut self, pending: Pending) {
        for (path, synced) in pending.files {
            match synced {
                Some(synced) => self.files.insert(path, synced),
                None => self.files.remove(&path),
            };
        }
        self.rev = pending.rev;
        self.root = Some(pending.root);
    }

    pub fn base(&self) -> BTreeMap<String, Entry> {
        self.files
            .iter()
            .map(|(path, synced)| (path.clone(), synced.entry.clone()))
            .collect()
    }
}

/// A directory being shared.
pub struct Dir {
    pub root: PathBuf,
}

impl Dir {
    pub fn new(root: &Path) -> Result<Dir, ToolError> {
        if !root.is_dir() {
            return Err(ToolError::usage(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        Ok(Dir {
            root: root.to_path_buf(),
        })
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Hold the directory's lock while a command changes the tree or the state, so that a
    /// `watch` and a `push` in the same directory take turns.
    pub fn lock(&self) -> Result<File, ToolError> {
        fs::create_dir_all(self.state_dir()).map_err(io_error)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.state_dir().join("lock"))
            .map_err(io_error)?;
        lock.lock().map_err(io_error)?;
        Ok(lock)
    }

    /// The state, or an empty one (nothing synced yet) for `share`.
    pub fn load_state(&self, share: &str) -> Result<State, ToolError> {
        let path = self.state_dir().join("state");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(State {
                    v: STATE_VERSION,
                    share: share.to_string(),
                    ..State::default()
                });
            }
            Err(e) => return Err(io_error(e)),
        };
        let state: State = serde_json::from_str(&text)
            .map_err(|e| ToolError::data(format!("{} is damaged: {e}", path.display())))?;
        if state.share != share {
            return Err(ToolError::usage(format!(
                "{} is synced with share {:?}, not {share:?}",
                self.root.display(),
                state.share
            )));
        }
        Ok(state)
    }

    /// Written last, after every file it describes, so a crash leaves the old base, from
    /// which the next command sees the installed files as already converged.
    pub fn save_state(&self, state: &State) -> Result<(), ToolError> {
        let text = serde_json::to_vec_pretty(state).expect("state serialises");
        let staged = self.stage_bytes(&text, 0o644)?;
        fs::rename(&staged, self.state_dir().join("state")).map_err(io_error)?;
        sync_dir(&self.state_dir())
    }

    /// Every file and link in the tree (the state directory excepted), each file hashed
    /// unless its stat fields match the state's.
    pub fn scan(&self, state: &State) -> Result<BTreeMap<String, Synced>, ToolError> {
        let mut found = BTreeMap::new();
        self.scan_into(&self.root, "", state, &mut found)?;
        Ok(found)
    }

    fn scan_into(
        &self,
        dir: &Path,
        prefix: &str,
        state: &State,
        found: &mut BTreeMap<String, Synced>,
    ) -> Result<(), ToolError> {
        for item in fs::read_dir(dir).map_err(io_error)? {
            let item = item.map_err(io_error)?;
            let Ok(name) = item.file_name().into_string() else {
                eprintln!("musubi files: skipping {:?}: not UTF-8", item.path());
                continue;
            };
            if prefix.is_empty() && name == STATE_DIR {
                continue;
            }
            let relative = format!("{prefix}{name}");
            let meta = fs::symlink_metadata(item.path()).map_err(io_error)?;
            let stat = stat_key(&meta);
            if meta.is_dir() {
                self.scan_into(&item.path(), &format!("{relative}/"), state, found)?;
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(item.path()).map_err(io_error)?;
                let target = target.to_str().ok_or_else(|| {
                    ToolError::data(format!("link {relative} has a non-UTF-8 target"))
                })?;
                let entry = Entry::Link {
                    target: target.to_string(),
                };
                found.insert(relative, Synced { entry, stat });
            } else if meta.is_file() {
                let cached = state
                    .files
                    .get(&relative)
                    .filter(|s| s.stat == stat && matches!(s.entry, Entry::File { .. }));
                let mode = format_mode(meta.permissions().mode());
                let sha256 = match cached {
                    Some(Synced {
                        entry: Entry::File { sha256, .. },
                        ..
                    }) => sha256.clone(),
                    _ => hash_file(&item.path())?,
                };
                let entry = Entry::File {
                    sha256,
                    mode,
                    size: meta.len(),
                };
                found.insert(relative, Synced { entry, stat });
            }
        }
        Ok(())
    }

    /// Write `bytes` to a new file in the staging directory, with `mode`, synced.
    pub fn stage_bytes(&self, bytes: &[u8], mode: u32) -> Result<PathBuf, ToolError> {
        let mut staged = self.stage_file()?;
        staged.file.write_all(bytes).map_err(io_error)?;
        staged.finish(mode)
    }

    /// A new, empty file in the staging directory (same filesystem as the tree, so the
    /// final rename is atomic).
    pub fn stage_file(&self) -> Result<Staged, ToolError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = self.state_dir().join("tmp");
        fs::create_dir_all(&dir).map_err(io_error)?;
        let path = dir.join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error)?;
        Ok(Staged { path, file })
    }

    /// Remove staged files that no living process is writing (left by a killed pull).
    pub fn clean_staging(&self) {
        let Ok(items) = fs::read_dir(self.state_dir().join("tmp")) else {
            return;
        };
        for item in items.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().unwrap_or_default();
            if pid != std::process::id().to_string() && !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_file(item.path());
            }
        }
    }

    /// Move a staged file (or link) over `relative`, creating its directories.
    pub fn install(&self, staged: &Path, relative: &str) -> Result<(), ToolError> {
        let target = self.path(relative);
        let parent = target.parent().expect("a path in the tree has a parent");
        fs::create_dir_all(parent).map_err(io_error)?;
        if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
            return Err(ToolError::conflict(format!(
                "{relative} is a directory here"
            )));
        }
        fs::rename(staged, &target).map_err(io_error)?;
        sync_dir(parent)
    }

    /// A symbolic link staged for [`Dir::install`].
    pub fn stage_link(&self, target: &str) -> Result<PathBuf, ToolError> {
        let staged = self.stage_file()?;
        drop(staged.file);
        fs::remove_file(&staged.path).map_err(io_error)?;
        std::os::unix::fs::symlink(target, &staged.path).map_err(io_error)?;
        Ok(staged.path)
    }

    /// Delete a file the share deleted, and the directories that leaves empty.
    pub fn remove(&self, relative: &str) -> Result<(), ToolError> {
        let target = self.path(relative);
        match fs::remove_file(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(e)),
        }
        let mut dir = target.parent();
        while let Some(d) = dir {
            if d == self.root || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    /// The stat fields of an installed path, for the state.
    pub fn stat(&self, relative: &str) -> Result<String, ToolError> {
        Ok(stat_key(
            &fs::symlink_metadata(self.path(relative)).map_err(io_error)?,
        ))
    }
}

/// A file being written in the staging directory.
pub struct Staged {
    pub path: PathBuf,
    pub file: File,
}

impl Staged {
    /// Set the mode and fsync; the file is then ready to be renamed into place.
    pub fn finish(self, mode: u32) -> Result<PathBuf, ToolError> {
        self.file
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_error)?;
        self.file.sync_all().map_err(io_error)?;
        Ok(self.path)
    }
}

fn stat_key(meta: &fs::Metadata) -> String {
    format!(
        "{}:{}.{}:{}.{}:{}",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino()
    )
}

/// The sha256 of a file's content, read in 1 MiB steps.
pub fn hash_file(path: &Path) -> Result<String, ToolError> {
    let mut file = File::open(path).map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(super::layout::hex(&hasher.finalize()))
}

/// Read up to `buffer.len()` bytes, fewer only at the end of the file.
pub fn read_full(file: &mut File, buffer: &mut [u8]) -> Result<usize, ToolError> {
    let mut filled = 0;
    while filled < buffer.len() {
        let n = file.read(&mut buffer[filled..]).map_err(io_error)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// A rename is durable once its directory is synced.
fn sync_dir(dir: &Path) -> Result<(), ToolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error)
}

/// Local I/O failures: the directory, not the store, is in the way (exit 5, data).
pub fn io_error(e: io::Error) -> ToolError {
    ToolError::data(format!("local file: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::layout::sha256_hex;
    use super::*;

    #[test]
    fn a_scan_sees_files_modes_and_links_but_not_the_state() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::new(tmp.path()).unwrap();
        fs::create_dir_all(tmp.path().join("bin")).unwrap();
        fs::write(tmp.path().join("bin/ntp"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(
            tmp.path().join("bin/ntp"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("bin/ntp", tmp.path().join("ntp")).unwrap();
        dir.lock().unwrap();
        let scan = dir.scan(&State::default()).unwrap();
        assert_eq!(scan.keys().collect::<Vec<_>>(), ["bin/ntp", "ntp"]);
        assert_eq!(
            scan["bin/ntp"].entry,
            Entry::File {
                sha256: sha256_hex(b"#!/bin/sh\n"),
                mode: "0755".into(),
                size: 10
            }
        );
        assert_eq!(
            scan["ntp"].entry,
            Entry::Link {
                target: "bin/ntp".into()
            }
        );
    }

    #[test]
    fn an_unchanged_stat_reuses_the_recorded_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::new(tmp.path()).unwrap();
        fs::write(tmp.path().join("a"), b"x").unwrap();
        let mut state = State::default();
        let mut scan = dir.scan(&state).unwrap();
        if let Entry::File { sha256, .. } = &mut scan.get_mut("a").unwrap().entry {
            *sha256 = "recorded".into();
        }
        state.files = scan;
        let again = dir.scan(&state).unwrap();
        assert!(matches!(&again["a"].entry, Entry::File { sha256, .. } if sha256 == "recorded"));
    }
}
