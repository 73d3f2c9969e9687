//! `watch`: pull each new whole revision as it is published. It waits on `HEAD` alone (a
//! `HEAD` names a complete manifest whose blobs exist), reads `HEAD` again after each
//! event so revisions published meanwhile are skipped, and keeps the last whole revision
//! in place while the store is down or a revision is bad, until the next one.

use super::pull::{self, PullArgs};
use super::session::Session;
use super::{ToolError, ToolExit};
use clap::Args;
use std::time::Duration;

/// The pause before trying again when the store could not be reached.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Args, Clone, Debug)]
pub struct WatchArgs {
    /// Only the path, or the paths under the directory, this names.
    pub pattern: Option<String>,
    /// Take the share's side of conflicts (the local changes there are overwritten).
    #[arg(long)]
    pub force: bool,
}

pub async fn run(session: &Session, args: &WatchArgs) -> Result<(), ToolError> {
    let pull_args = PullArgs {
        pattern: args.pattern.clone(),
        force: args.force,
        allow_empty: true,
    };
    loop {
        // The store's revision (index) of the last read of HEAD: the watch starts after it.
        let read_at = match pull::pull(session, &pull_args).await {
            Ok(pulled) => {
                if !pulled.changes.is_empty() || !pulled.conflicts.is_empty() {
                    pull::print(session, &pulled);
                }
                pulled.published.index
            }
            Err(e) => {
                eprintln!("musubi files watch: {e}");
                if e.exit == ToolExit::Unreachable {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                // Bad data or local trouble: keep what is here and wait for the next
                // revision after the one that failed.
                match session.remote.head_at().await {
                    Ok((_, index)) => index,
                    Err(_) => {
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
            }
        };
        if let Err(e) = session.remote.wait_head(read_at).await {
            eprintln!("musubi files watch: {e}");
            tokio::time::sleep(RETRY).await;
        }
    }
}
