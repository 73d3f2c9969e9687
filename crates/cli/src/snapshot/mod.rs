//! `musubi snapshot save|restore|status`: etcdctl 3.4's snapshot commands, on musubi's own
//! backup file (`musubi_store::backup`; docs/operations.md, "Backup and restore").
//!
//! - `save FILE`: one member's snapshot through the v3 `Maintenance.Snapshot` stream;
//! - `restore FILE`: a data dir for one member of a new cluster holding the same data;
//! - `status FILE`: the file's hash, revision, keys and size, as etcdctl prints them.
//!
//! Errors print `Error: <message>` and exit as etcdctl's do: 5 for a failed save (its
//! "interrupted" code), 1 otherwise.

mod progress;
mod restore;
mod save;
mod status;

use clap::{Args, Subcommand};
use std::process::ExitCode;

const EXIT_ERROR: u8 = 1;
const EXIT_INTERRUPTED: u8 = 5;

#[derive(Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Stream one member's snapshot into FILE (written whole or not at all).
    Save(save::SaveArgs),
    /// Write a data dir for a member of a NEW cluster from a saved snapshot.
    Restore(restore::RestoreArgs),
    /// Print a snapshot file's hash, revision, total keys and size.
    Status(status::StatusArgs),
}

pub fn run(args: SnapshotArgs) -> ExitCode {
    let (result, failed) = match args.verb {
        Verb::Save(args) => (save::run(args), EXIT_INTERRUPTED),
        Verb::Restore(args) => (restore::run(args), EXIT_ERROR),
        Verb::Status(args) => (status::run(args), EXIT_ERROR),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("Error: {message}");
            ExitCode::from(failed)
        }
    }
}
