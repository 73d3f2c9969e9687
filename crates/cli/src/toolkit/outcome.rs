//! How a tool's command becomes the process's end: the runtime it runs on, and its outcome
//! turned into the exit code of docs/tools.md, with the failure said once on stderr.

use super::{ToolError, ToolExit};
use std::process::ExitCode;
use tokio::runtime::Runtime;

/// A two-worker runtime for the tools that wait on children (hooks, handlers) while they
/// keep streams to the store open; one that cannot start is "unreachable", said as `tool`.
pub fn runtime(tool: &str) -> Result<Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("musubi {tool}: {e}");
            ToolExit::Unreachable.into()
        })
}

/// The exit code of a command's outcome. A failure's message goes to stderr as
/// `musubi <tool>: <message>`; an empty one says nothing, for failures whose report was
/// already printed (a status that found differences).
pub fn exit(tool: &str, outcome: Result<impl Into<ExitCode>, ToolError>) -> ExitCode {
    match outcome {
        Ok(code) => code.into(),
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("musubi {tool}: {e}");
            }
            e.exit.into()
        }
    }
}
