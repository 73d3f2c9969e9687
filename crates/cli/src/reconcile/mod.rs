//! `musubi reconcile`: a level-triggered reconciler of a desired key tree against actual
//! state (a key tree reporters keep, or the local agent's live members), with one active
//! instance per NAME (leader election with a fencing token), one action record per difference
//! created under that token before its handler runs, and takeover that re-checks what a
//! gone leader left in flight instead of re-running it (docs/reconcile.md).
//!
//! `core` decides (pure), `records` and `source` read and write, `run` is the loop of the
//! active instance, `report` prints `status`, `diff` and `actions`.

mod core;
mod handler;
mod records;
mod report;
mod run;
mod source;

use crate::toolkit::{self, StoreArgs, ToolError, ToolExit};
use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes: 0 converged (status, diff) or stopped by a signal (run); 1 usage; 2 differences;
3 parked actions (status, diff, actions) or the record changed meanwhile (retry); 4 store
unreachable, timed out or refused (run: at start); 5 bad data.
Handlers: stdin gets the action as JSON; env MUSUBI_ACTION_ID, MUSUBI_FENCE_TOKEN,
MUSUBI_RECONCILE_NAME. Exit 0 done, 75 retry later (new attempt ID), else failed.";

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct ReconcileArgs {
    #[command(subcommand)]
    command: ReconcileCommand,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Subcommand, Debug)]
enum ReconcileCommand {
    /// Reconcile NAME: one instance of any number leads and acts; the others wait.
    #[command(after_help = EXIT_CODES)]
    Run(Box<RunArgs>),
    /// The leader, its token, and whether NAME has converged.
    #[command(after_help = EXIT_CODES)]
    Status(NameArg),
    /// The differences between desired and actual state now, and each one's action.
    #[command(after_help = EXIT_CODES)]
    Diff(DiffArgs),
    /// Every action record, with its state.
    #[command(after_help = EXIT_CODES)]
    Actions(NameArg),
    /// Release a parked action: it is marked resolved, so if its difference is still there
    /// the leader acts on it again, under a new ID (the old one never runs twice).
    #[command(after_help = EXIT_CODES)]
    Retry(IdArgs),
}

#[derive(Args, Debug)]
pub struct NameArg {
    pub name: String,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    pub name: String,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    pub name: String,
    /// The agent's RPC address, when the actual state is the agent's members.
    #[arg(long, env = "SERF_RPC_ADDR", default_value = "127.0.0.1:7373")]
    pub rpc_addr: String,
    #[arg(long, env = "SERF_RPC_AUTH", default_value = "")]
    pub rpc_auth: String,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    pub name: String,
    /// The desired key tree (default /musubi/desired/NAME).
    #[arg(long)]
    pub desired: Option<String>,
    /// The actual state: a key tree (default /musubi/actual/NAME), or `agent` for the local
    /// agent's alive members (values: their tags as JSON).
    #[arg(long)]
    pub actual: Option<String>,
    /// The handler command (split on spaces; with --shell, a line for /bin/sh -c).
    #[arg(long)]
    pub handler: String,
    #[arg(long)]
    pub shell: bool,
    /// This instance's name in the election and in views (default host:pid).
    #[arg(long)]
    pub instance: Option<String>,
    /// The leader's lease (v3) or TTL (v2).
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse_or_seconds)]
    pub ttl: Duration,
    /// After a leader expired (rather than resigned), wait this long before leading.
    #[arg(long, default_value = "3s", value_parser = crate::duration::parse_or_seconds)]
    pub lock_delay: Duration,
    /// How often a pass compares the whole desired tree with the actual state.
    #[arg(long, default_value = "1s", value_parser = crate::duration::parse_or_seconds)]
    pub interval: Duration,
    /// How long a difference must last before it is acted on.
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse_or_seconds)]
    pub grace: Duration,
    /// How long the leader must have read the actual state without a break before a
    /// difference counts.
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse_or_seconds)]
    pub fresh_after: Duration,
    /// A handler still running after this is terminated, and the action failed.
    #[arg(long, default_value = "2m", value_parser = crate::duration::parse_or_seconds)]
    pub action_timeout: Duration,
    /// Handlers are idempotent on their action ID: re-run an action whose outcome is unknown
    /// (same ID), and retry failed ones.
    #[arg(long)]
    pub idempotent: bool,
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// The first wait after a handler's 75, doubled each attempt.
    #[arg(long, default_value = "1s", value_parser = crate::duration::parse_or_seconds)]
    pub retry_backoff: Duration,
    /// Log what would be done; write no record, run no handler.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, env = "SERF_RPC_ADDR", default_value = "127.0.0.1:7373")]
    pub rpc_addr: String,
    #[arg(long, env = "SERF_RPC_AUTH", default_value = "")]
    pub rpc_auth: String,
}

impl RunArgs {
    pub fn desired_prefix(&self) -> String {
        self.desired
            .clone()
            .unwrap_or_else(|| format!("/musubi/desired/{}", self.name))
    }

    pub fn actual_source(&self) -> String {
        self.actual
            .clone()
            .unwrap_or_else(|| format!("/musubi/actual/{}", self.name))
    }
}

pub fn run(args: ReconcileArgs) -> ExitCode {
    let runtime = match toolkit::runtime("reconcile") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let outcome: Result<ToolExit, ToolError> = runtime.block_on(async {
        match &args.command {
            ReconcileCommand::Run(run_args) => run::run(&args.store, run_args).await,
            ReconcileCommand::Status(name) => report::status(&args.store, &name.name).await,
            ReconcileCommand::Diff(diff) => report::diff(&args.store, diff).await,
            ReconcileCommand::Actions(name) => report::actions(&args.store, &name.name).await,
            ReconcileCommand::Retry(id) => report::retry(&args.store, id).await,
        }
    });
    // Handlers may still hold the runtime's blocking threads: do not wait for them.
    runtime.shutdown_background();
    toolkit::exit("reconcile", outcome)
}
