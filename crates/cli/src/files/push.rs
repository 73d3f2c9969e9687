//! `push`: publish the local changes as one new revision, all or nothing.
//!
//! 1. Compare (three-way); conflicts stop the push (exit 3) unless `--force`.
//! 2. The new manifest is the published one with the local changes applied, so changes
//!    pushed by others to other paths since our base are kept.
//! 3. Upload each changed file's chunks (a few at a time), skipping blobs that are known
//!    to exist and to outlive any `gc` (see `reusable`).
//! 4. Write the manifest, then compare-and-swap `HEAD` from the version read in step 1:
//!    until that succeeds nothing is visible; if another push got there first, exit 3.
//! 5. Record the new base in the state.

use super::diff::{Change, Clash, Op};
use super::layout::{FileEntry, Head, Kind, VERSION, encode_blob, hex};
use super::local::{Entry, Pending, Synced, io_error, read_full};
use super::report;
use super::session::{Published, Session};
use super::{ToolError, hostname, now_rfc3339};
use clap::Args;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::future::Future;
use std::pin::Pin;

/// Blob uploads in flight at once.
const UPLOADS_IN_FLIGHT: usize = 4;
/// The largest manifest a push writes: one value, under etcd's 1.5 MiB request limit.
const MAX_MANIFEST_BYTES: usize = 1_400_000;

#[derive(Args, Clone, Debug)]
pub struct PushArgs {
    /// Only the path, or the paths under the directory, this names.
    pub pattern: Option<String>,
    /// Push the local side of conflicts too (the share's changes there are overwritten).
    #[arg(long)]
    pub force: bool,
    /// A message recorded with the revision (`files log`).
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Bytes of file content per blob (etcd 3.4 takes 1.5 MiB per request; base64 adds a third).
    #[arg(long, default_value_t = 512 * 1024, value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024))]
    pub chunk_size: u32,
    /// Refuse (exit 5) files larger than this many bytes: the store keeps them in memory.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub max_file_size: u64,
}

pub async fn run(session: &Session, args: &PushArgs) -> Result<(), ToolError> {
    let _lock = session.dir.lock()?;
    let view = session.view(args.pattern.as_deref()).await?;
    let mut changes = view.diff.push.clone();
    if !view.diff.conflicts.is_empty() {
        if !args.force {
            if !session.json() {
                report::conflicts(&view.diff.conflicts, view.state.rev);
            }
            return Err(ToolError::conflict(format!(
                "push refused: {} path(s) changed on both sides; pull, or push --force",
                view.diff.conflicts.len()
            )));
        }
        changes.extend(view.diff.conflicts.iter().map(|c| Change {
            path: c.path.clone(),
            op: match c.op {
                Clash::BothAdded => Op::Add,
                Clash::DeletedLocally => Op::Delete,
                Clash::BothModified | Clash::DeletedRemotely => Op::Modify,
            },
        }));
    }
    if changes.is_empty() {
        print_result(session, &view.published, &[], &view.published);
        return Ok(());
    }

    let mut uploader = Uploader::new(session, &view.published, args).await?;
    let mut manifest = view.published.manifest.clone();
    let mut synced: BTreeMap<String, Option<Synced>> = BTreeMap::new();
    for change in &changes {
        manifest.files.remove(&change.path);
        manifest.links.remove(&change.path);
        let mut local = view.local.get(&change.path).cloned();
        match local.as_mut().map(|s| &mut s.entry) {
            None => {}
            Some(Entry::Link { target }) => {
                manifest.links.insert(change.path.clone(), target.clone());
            }
            Some(Entry::File { sha256, mode, size }) => {
                // The base is what was published: if the file changed since the scan, its
                // stat no longer matches and the next scan hashes it again.
                let entry = uploader.file(&change.path, mode).await?;
                (*sha256, *size) = (entry.sha256.clone(), entry.size);
                manifest.files.insert(change.path.clone(), entry);
            }
        }
        synced.insert(change.path.clone(), local);
    }
    uploader.finish().await?;

    let text = manifest.to_json();
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(ToolError::data(format!(
            "the manifest would be {} bytes, more than one value may hold ({MAX_MANIFEST_BYTES})",
            text.len()
        )));
    }
    let root = manifest.root();
    let hex = root.trim_start_matches("sha256:").to_string();
    session
        .remote
        .put(&session.remote.keys.key(Kind::Manifests, &hex), text)
        .await?;
    let head = Head {
        v: VERSION,
        rev: view.published.rev() + 1,
        root: root.clone(),
        parent: view.published.root().map(str::to_string),
        by: hostname(),
        msg: args.message.clone(),
        time: now_rfc3339(),
    };
    let mut state = view.state;
    state.pending = Some(Pending {
        rev: head.rev,
        root: root.clone(),
        files: synced,
    });
    session.dir.save_state(&state)?;
    let expected = view.published.head.as_ref().map(|h| h.version);
    if !session.remote.publish(&head, expected).await? {
        let now = session.remote.head().await?.map_or(0, |h| h.value.rev);
        return Err(ToolError::conflict(format!(
            "push rejected: the share moved from rev {} to rev {now} meanwhile; pull first",
            view.published.rev()
        )));
    }

    let pending = state.pending.take().expect("recorded above");
    state.adopt(pending);
    for path in &view.diff.converged {
        if let Some(local) = view.local.get(path) {
            state.files.insert(path.clone(), local.clone());
        }
    }
    session.dir.save_state(&state)?;
    let published = Published {
        head: Some(super::remote::Versioned {
            value: head,
            version: 0,
        }),
        manifest,
        index: 0,
    };
    print_result(session, &view.published, &changes, &published);
    Ok(())
}

fn print_result(session: &Session, before: &Published, changes: &[Change], after: &Published) {
    if session.json() {
        report::print_json(&json!({
            "share": session.share,
            "parent": report::revision(before.rev(), before.root()),
            "remote": report::revision(after.rev(), after.root()),
            "pushed": changes,
        }));
    } else if changes.is_empty() {
        println!("Everything up-to-date.");
    } else {
        report::pushed(changes);
    }
}

type Upload<'a> = Pin<Box<dyn Future<Output = Result<(), ToolError>> + 'a>>;

/// Reads changed files chunk by chunk and uploads the blobs the share lacks.
struct Uploader<'a> {
    session: &'a Session,
    /// Blobs that exist and that no `gc` will remove before this push publishes: those of
    /// the published manifest (gc keeps HEAD's) and, on v3, those written after HEAD
    /// (gc only removes blobs older than the HEAD it read).
    reusable: HashSet<String>,
    in_flight: FuturesUnordered<Upload<'a>>,
    chunk_size: usize,
    max_file_size: u64,
}

impl<'a> Uploader<'a> {
    async fn new(
        session: &'a Session,
        published: &Published,
        args: &PushArgs,
    ) -> Result<Uploader<'a>, ToolError> {
        let mut reusable: HashSet<String> =
            published.manifest.blobs().map(str::to_string).collect();
        // v2 lists values with the keys, so there only the manifest's blobs count.
        if session.remote.api() == "3" {
            let base = published.version();
            for blob in session.remote.list(Kind::Blobs, false).await? {
                if blob.version > base {
                    reusable.insert(blob.name);
                }
            }
        }
        Ok(Uploader {
            session,
            reusable,
            in_flight: FuturesUnordered::new(),
            chunk_size: args.chunk_size as usize,
            max_file_size: args.max_file_size,
        })
    }

    /// The manifest entry of one local file, its missing chunks queued for upload.
    async fn file(&mut self, path: &str, mode: &str) -> Result<FileEntry, ToolError> {
        let full = self.session.dir.path(path);
        let mut file = File::open(&full).map_err(io_error)?;
        let size = file.metadata().map_err(io_error)?.len();
        if size > self.max_file_size {
            return Err(ToolError::data(format!(
                "{path} has {size} bytes, more than --max-file-size {}",
                self.max_file_size
            )));
        }
        let mut whole = Sha256::new();
        let mut chunks = Vec::new();
        let mut total = 0u64;
        loop {
            let mut buffer = vec![0u8; self.chunk_size];
            let n = read_full(&mut file, &mut buffer)?;
            if n == 0 {
                break;
            }
            buffer.truncate(n);
            total += n as u64;
            whole.update(&buffer);
            let name = hex(&Sha256::digest(&buffer));
            chunks.push(name.clone());
            if self.reusable.insert(name.clone()) {
                self.upload(name, buffer).await?;
            }
        }
        Ok(FileEntry {
            mode: mode.to_string(),
            size: total,
            sha256: hex(&whole.finalize()),
            chunks,
        })
    }

    async fn upload(&mut self, name: String, raw: Vec<u8>) -> Result<(), ToolError> {
        while self.in_flight.len() >= UPLOADS_IN_FLIGHT {
            self.in_flight.next().await.expect("uploads in flight")?;
        }
        let remote = &self.session.remote;
        self.in_flight.push(Box::pin(async move {
            let key = remote.keys.key(Kind::Blobs, &name);
            remote.put(&key, encode_blob(&raw)).await
        }));
        Ok(())
    }

    async fn finish(mut self) -> Result<(), ToolError> {
        while let Some(done) = self.in_flight.next().await {
            done?;
        }
        Ok(())
    }
}
