//! `pull`: bring the share's changes into the directory, whole revision by whole file.
//!
//! 1. Compare (three-way). Paths changed on both sides are left alone (exit 3 at the end)
//!    unless `--force`; paths changed only here are never touched.
//! 2. Stage every changed file in `.musubi-files/tmp`: fetch its blobs, check each one's
//!    hash and then the file's size and hash, set its mode, fsync. Any mismatch or missing
//!    blob: the staged files are removed, the tree is untouched (exit 5); if `HEAD` moved
//!    meanwhile (a `gc` after a newer push), start again from the new `HEAD`.
//! 3. Rename each staged file over its path (atomic: a reader sees the old file or the
//!    new one), delete what the share deleted, and only then record the new base.

use super::diff::{Change, Clash, Conflict, Op};
use super::layout::{FileEntry, Kind, decode_blob, hex, parse_mode};
use super::local::{Entry, Synced, io_error};
use super::report;
use super::session::{Published, Session, View};
use super::{ToolError, ToolExit};
use clap::Args;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::PathBuf;

/// Blob downloads in flight at once.
const DOWNLOADS_IN_FLIGHT: usize = 4;
/// How often a pull starts again because `HEAD` moved under it.
const RETRIES: usize = 3;

#[derive(Args, Clone, Debug)]
pub struct PullArgs {
    /// Only the path, or the paths under the directory, this names.
    pub pattern: Option<String>,
    /// Take the share's side of conflicts (the local changes there are overwritten).
    #[arg(long)]
    pub force: bool,
    /// A share nobody pushed to yet is not an error (exit 0 instead of 5).
    #[arg(long)]
    pub allow_empty: bool,
}

/// What one pull did.
pub struct Pulled {
    pub published: Published,
    pub changes: Vec<Change>,
    /// Left as they are: changed here and in the share.
    pub conflicts: Vec<Conflict>,
    pub base_rev: u64,
}

pub async fn run(session: &Session, args: &PullArgs) -> Result<(), ToolError> {
    let pulled = pull(session, args).await?;
    print(session, &pulled);
    if pulled.conflicts.is_empty() {
        Ok(())
    } else {
        Err(ToolError::conflict(format!(
            "{} path(s) changed on both sides were left as they are; pull --force takes the share's",
            pulled.conflicts.len()
        )))
    }
}

pub fn print(session: &Session, pulled: &Pulled) {
    if session.json() {
        report::print_json(&json!({
            "share": session.share,
            "remote": report::revision(pulled.published.rev(), pulled.published.root()),
            "pulled": pulled.changes,
            "conflicts": pulled.conflicts,
        }));
    } else {
        report::conflicts(&pulled.conflicts, pulled.base_rev);
        report::pulled(&pulled.changes);
    }
}

pub async fn pull(session: &Session, args: &PullArgs) -> Result<Pulled, ToolError> {
    let _lock = session.dir.lock()?;
    session.dir.clean_staging();
    let mut attempt = 0;
    loop {
        let view = session.view(args.pattern.as_deref()).await?;
        if view.published.head.is_none() && !args.allow_empty {
            return Err(ToolError::data(format!(
                "share {:?} is empty: nothing was pushed to it",
                session.share
            )));
        }
        let mut changes = view.diff.pull.clone();
        let mut conflicts = view.diff.conflicts.clone();
        if args.force {
            changes.extend(conflicts.drain(..).map(|c| Change {
                path: c.path,
                op: match c.op {
                    Clash::DeletedRemotely => Op::Delete,
                    Clash::BothAdded | Clash::DeletedLocally => Op::Add,
                    Clash::BothModified => Op::Modify,
                },
            }));
        }
        match apply(session, &view, &changes).await {
            Ok(()) => {
                return Ok(Pulled {
                    base_rev: view.state.rev,
                    published: view.published,
                    changes,
                    conflicts,
                });
            }
            Err(e) if e.exit == ToolExit::Data && attempt < RETRIES => {
                let now = session.remote.head().await?.map_or(0, |h| h.version);
                if now == view.published.version() {
                    return Err(e);
                }
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Stage and verify everything, then install it, then record it.
async fn apply(session: &Session, view: &View, changes: &[Change]) -> Result<(), ToolError> {
    let remote = view.published.tree();
    let mut staged: Vec<(&str, PathBuf)> = Vec::new();
    for change in changes {
        let path = change.path.as_str();
        let result = match remote.get(path) {
            None => continue,
            Some(Entry::Link { target }) => session.dir.stage_link(target),
            Some(Entry::File { .. }) => stage(session, &view.published.manifest.files[path]).await,
        };
        match result {
            Ok(file) => staged.push((path, file)),
            Err(e) => {
                for (_, file) in staged {
                    let _ = fs::remove_file(file);
                }
                return Err(e);
            }
        }
    }
    for (path, file) in staged {
        session.dir.install(&file, path)?;
    }
    let mut state = view.state.clone();
    for change in changes {
        let path = &change.path;
        match remote.get(path) {
            None => {
                session.dir.remove(path)?;
                state.files.remove(path);
            }
            Some(entry) => {
                let synced = Synced {
                    entry: entry.clone(),
                    stat: session.dir.stat(path)?,
                };
                state.files.insert(path.clone(), synced);
            }
        }
    }
    for path in &view.diff.converged {
        if let Some(local) = view.local.get(path) {
            state.files.insert(path.clone(), local.clone());
        }
    }
    state.rev = view.published.rev();
    state.root = view.published.root().map(str::to_string);
    session.dir.save_state(&state)
}

/// One file, assembled from its blobs in the staging directory and verified.
async fn stage(session: &Session, entry: &FileEntry) -> Result<PathBuf, ToolError> {
    let mut staged = session.dir.stage_file()?;
    let path = staged.path.clone();
    let written = async {
        let remote = &session.remote;
        let mut blobs = stream::iter(entry.chunks.iter())
            .map(|name| async move {
                let read = remote
                    .get(&remote.keys.key(Kind::Blobs, name))
                    .await?
                    .ok_or_else(|| ToolError::data(format!("blob {name} is missing")))?;
                decode_blob(&read.value, name)
            })
            .buffered(DOWNLOADS_IN_FLIGHT);
        let mut whole = Sha256::new();
        let mut size = 0u64;
        while let Some(raw) = blobs.try_next().await? {
            whole.update(&raw);
            size += raw.len() as u64;
            staged.file.write_all(&raw).map_err(io_error)?;
        }
        if size != entry.size || hex(&whole.finalize()) != entry.sha256 {
            return Err(ToolError::data(format!(
                "file {} does not match its hash",
                entry.sha256
            )));
        }
        staged.finish(parse_mode(&entry.mode)?)
    }
    .await;
    if written.is_err() {
        let _ = fs::remove_file(&path);
    }
    written
}
