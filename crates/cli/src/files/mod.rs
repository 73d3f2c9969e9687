//! `musubi files status|push|pull|watch|log|gc`: a directory shared through the store
//! (docs/files.md).
//!
//! Promises: a revision is published by one compare-and-swap of `HEAD` after everything it
//! names is written, so readers see whole revisions or none; files of any size (chunked
//! into content-addressed blobs well under the store's request limit); modes and symbolic
//! links kept; `pull` checks every hash before it touches a file and replaces files by
//! rename; `status` tells which side changed since the last sync.
//!
//! Each command:
//! 1. connects (v3 where the server speaks it, else v2: `toolkit::Store`);
//! 2. reads `HEAD` and its manifest, the directory's state and a scan, and compares the
//!    three (`session`, `diff`);
//! 3. acts (`push`, `pull`, `watch`, `history`) and prints (`report`);
//! 4. exits with the tools' code table (below, and docs/files.md).

mod diff;
mod history;
mod layout;
mod local;
mod pull;
mod push;
mod remote;
mod report;
mod session;
mod watch;

use crate::toolkit::{self, Store, StoreArgs, ToolError, ToolExit};
use clap::{Args, Subcommand};
use local::Dir;
use remote::Remote;
use serde_json::json;
use session::Session;
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  done, or in sync
  1  usage: bad flags, not a directory, the directory is synced with another share
  2  status: there are changes to push or pull
  3  conflict: paths changed on both sides (status, push, pull), or another push won
  4  the store could not be reached, timed out, or had no leader
  5  data: a hash mismatch, a missing blob or manifest, an empty share (pull), a file
     over --max-file-size, a local I/O error";

#[derive(Args)]
#[command(after_help = EXIT_CODES)]
pub struct FilesArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The share's name: its keys are under /_musubi/files/<share>/.
    #[arg(long, global = true, default_value = "default")]
    share: String,
    /// The shared directory.
    #[arg(long, global = true, default_value = ".")]
    dir: PathBuf,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// What to push, what to pull, and what changed on both sides since the last sync.
    #[command(after_help = EXIT_CODES)]
    Status {
        /// Only the path, or the paths under the directory, this names.
        pattern: Option<String>,
    },
    /// Publish the local changes as one new revision.
    #[command(after_help = EXIT_CODES)]
    Push(push::PushArgs),
    /// Bring the share's changes into the directory.
    #[command(after_help = EXIT_CODES)]
    Pull(pull::PullArgs),
    /// Pull each new revision as it is published, until interrupted.
    #[command(after_help = EXIT_CODES)]
    Watch(watch::WatchArgs),
    /// The published revisions, newest first.
    #[command(after_help = EXIT_CODES)]
    Log,
    /// Delete the history, manifests and blobs of all but the last revisions.
    #[command(after_help = EXIT_CODES)]
    Gc(history::GcArgs),
}

pub fn run(args: FilesArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    let outcome = runtime.block_on(execute(args)).map(|()| ToolExit::Ok);
    toolkit::exit("files", outcome)
}

async fn execute(args: FilesArgs) -> Result<(), ToolError> {
    let keys = layout::Keys::new(&args.share)?;
    let dir = Dir::new(&args.dir)?;
    let store = Store::connect(&args.store).await?;
    let session = Session {
        remote: Remote::new(store, keys),
        dir,
        share: args.share,
        format: args.store.format,
    };
    match &args.verb {
        Verb::Status { pattern } => status(&session, pattern.as_deref()).await,
        Verb::Push(a) => push::run(&session, a).await,
        Verb::Pull(a) => pull::run(&session, a).await,
        Verb::Watch(a) => {
            tokio::select! {
                result = watch::run(&session, a) => result,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        Verb::Log => history::log(&session).await,
        Verb::Gc(a) => history::gc(&session, a).await,
    }
}

/// 0 in sync, 2 changes, 3 conflicts.
async fn status(session: &Session, pattern: Option<&str>) -> Result<(), ToolError> {
    let view = session.view(pattern).await?;
    let diff = &view.diff;
    if session.json() {
        report::print_json(&json!({
            "share": session.share,
            "api": session.remote.api(),
            "remote": report::revision(view.published.rev(), view.published.root()),
            "base": report::revision(view.state.rev, view.state.root.as_deref()),
            "push": diff.push,
            "pull": diff.pull,
            "conflicts": diff.conflicts,
        }));
    } else {
        report::status(diff, view.state.rev);
    }
    if !diff.conflicts.is_empty() {
        Err(ToolError::new(ToolExit::Conflict, ""))
    } else if !diff.in_sync() {
        Err(ToolError::new(ToolExit::Differences, ""))
    } else {
        Ok(())
    }
}

/// Who pushed: `user@host`.
fn hostname() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    match std::env::var("USER") {
        Ok(user) if !user.is_empty() => format!("{user}@{host}"),
        _ => host,
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the time formats")
}
