//! The tools' exit codes: one table for `conf`, `files` and `reconcile`, and the reserved
//! codes of the commands that run a child (`lock`, `elect`, `conf watch --exec`, reconcile
//! handlers), whose own exit code otherwise passes through. Scripts branch on these, so
//! they never change meaning (docs/tools.md lists them, and so does each command's --help).

use std::fmt;
use std::process::ExitCode;

/// How a `conf`, `files` or `reconcile` command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolExit {
    /// Done, or already in sync.
    Ok = 0,
    /// The command line was wrong.
    Usage = 1,
    /// `status`/`--check`/`diff` found differences (nothing was changed).
    Differences = 2,
    /// Someone else won: a compare-and-swap lost, not the leader, local edits in the way.
    Conflict = 3,
    /// The store could not be reached, timed out, or refused for want of a leader.
    Unreachable = 4,
    /// The data is wrong: missing, a hash mismatch, a tree that breaks the schema.
    Data = 5,
    /// A hook (check, reload or handler command) failed.
    HookFailed = 6,
}

impl From<ToolExit> for ExitCode {
    fn from(exit: ToolExit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// The reserved exit codes of the commands that run a child; any other code is the child's
/// (a child killed by signal N exits 128+N, as a shell reports it).
pub mod child {
    /// The lock or the leadership was lost while the child ran: the child was terminated.
    pub const LOST: u8 = 120;
    /// Not acquired within `--timeout` (or at once, with `--try`).
    pub const NOT_ACQUIRED: u8 = 124;
    /// Failed before the child was started (usage, store unreachable, ...).
    pub const ERROR: u8 = 125;
    /// The child's program was found but could not be executed (as `env(1)`).
    pub const CANNOT_EXECUTE: u8 = 126;
    /// The child's program was not found (as `env(1)`).
    pub const NOT_FOUND: u8 = 127;
}

/// A tool's failure: what to print on stderr, and the exit code it maps to.
#[derive(Debug)]
pub struct ToolError {
    pub exit: ToolExit,
    pub message: String,
}

impl ToolError {
    pub fn new(exit: ToolExit, message: impl Into<String>) -> ToolError {
        ToolError {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> ToolError {
        ToolError::new(ToolExit::Usage, message)
    }

    pub fn conflict(message: impl Into<String>) -> ToolError {
        ToolError::new(ToolExit::Conflict, message)
    }

    pub fn unreachable(message: impl Into<String>) -> ToolError {
        ToolError::new(ToolExit::Unreachable, message)
    }

    pub fn data(message: impl Into<String>) -> ToolError {
        ToolError::new(ToolExit::Data, message)
    }

    pub fn hook_failed(message: impl Into<String>) -> ToolError {
        ToolError::new(ToolExit::HookFailed, message)
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

/// A v2 failure: no answer (or no leader) is "unreachable"; an etcd error body is the
/// store's refusal, which each command maps itself when it means a conflict or missing data,
/// and is "data" otherwise.
impl From<musubi_client::Error> for ToolError {
    fn from(error: musubi_client::Error) -> ToolError {
        let exit = match &error {
            musubi_client::Error::Etcd(_) | musubi_client::Error::Refused { .. } => ToolExit::Data,
            _ => ToolExit::Unreachable,
        };
        ToolError::new(exit, error.to_string())
    }
}

/// A v3 failure: a status made by the transport, `Unavailable` and deadlines are
/// "unreachable"; the server's own refusals are "data" unless a command maps them.
impl From<tonic::Status> for ToolError {
    fn from(status: tonic::Status) -> ToolError {
        use tonic::Code;
        let exit = match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                ToolExit::Unreachable
            }
            Code::FailedPrecondition | Code::Aborted => ToolExit::Conflict,
            _ => ToolExit::Data,
        };
        ToolError::new(exit, status.message().to_string())
    }
}
