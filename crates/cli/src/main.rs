//! The `musubi` binary.
//!
//! 1. Invoked under the name `etcd` (python-etcd's tests put a link named `etcd` on `$PATH`),
//!    or as `musubi serve ARGS`, it hands the raw arguments to the server, which parses
//!    etcd's flags itself (old single-dash 0.x ones included).
//! 2. `musubi agent ARGS` hands the raw arguments to the gossip agent, which parses Serf's
//!    single-dash flags itself (`-node`, `-bind`, `-join`, ...).
//! 3. `musubi members`, `musubi query`, ... (Serf's client commands, listed in
//!    `agent_cli::VERBS`) hand their raw arguments to `agent_cli`, which parses them with
//!    Go's flag rules as `serf` does (docs/agent-cli.md).
//! 4. `musubi kv` and `musubi cluster` with `--api 3` or `ETCDCTL_API=3` hand the arguments
//!    after them to `v3`, etcdctl v3's commands (docs/cli-v3.md).
//! 5. Otherwise clap parses a client command (`kv`, `bench`) and runs it on its own runtime.
//!
//! Usage errors exit 1 and unknown commands 3, as `etcdctl` does (docs/cli-kv.md).

mod agent_cli;
mod bench;
mod cluster;
mod conf;
mod files;
mod humanize;
mod kv;
mod lock;
mod reconcile;
#[cfg(feature = "server")]
mod snapshot;
mod supervise;
mod toolkit;
mod v3;

// Go-style durations live in the agent crate, which parses Serf's duration keys too.
use musubi_gocompat::duration;

use clap::error::ErrorKind;
use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "musubi",
    version,
    about = "A distributed key-value store compatible with etcd's v2 API."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a store member; takes etcd's flags (`musubi serve --help`).
    #[command(disable_help_flag = true)]
    Serve {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run a gossip agent; takes Serf's agent flags (`musubi agent -help`).
    #[command(disable_help_flag = true)]
    Agent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// etcdctl v2's key commands (set, get, ls, watch, …) against any v2 endpoint.
    Kv(kv::KvArgs),
    /// Membership: list, add, remove, update and promote members; check health.
    Cluster(cluster::ClusterArgs),
    /// A load generator for the v2 keys API.
    Bench(bench::BenchArgs),
    /// Render a key tree as one JSON config file and keep it current (render, watch, import, consumers).
    Conf(conf::ConfArgs),
    /// Share a directory through the store: status, push, pull, watch, log, gc.
    Files(files::FilesArgs),
    /// Desired-state reconciliation: one leader acts once per difference (run, status, diff, actions).
    Reconcile(reconcile::ReconcileArgs),
    /// Backups: save a member's snapshot, restore one into a new cluster, inspect one.
    #[cfg(feature = "server")]
    Snapshot(snapshot::SnapshotArgs),
    /// Run a command while holding a lock (or one of N), with a fencing token.
    Lock(lock::LockArgs),
    /// Leader election: campaign (and run a command while leader), --listen, --leader.
    Elect(lock::ElectArgs),
    #[command(name = supervise::GUARDIAN_COMMAND, hide = true)]
    Guardian(supervise::GuardianArgs),
}

/// jemalloc, not glibc's malloc: a request's buffers are allocated on one thread and freed
/// on another (connection task, Raft core, apply), which glibc serves through its arena
/// locks and slow paths. Under etcd-benchmark's put load it cut the server's CPU per
/// request by a fifth, with the same RSS at 1M keys (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let invoked_as = args
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or_default();
    if invoked_as == "etcd" {
        return serve(args[1..].to_vec());
    }
    // `musubi kv|cluster --api 3` (or ETCDCTL_API=3): etcdctl v3's command tree.
    if let Some(v3_args) = v3::requested(&args) {
        return v3::run(v3_args);
    }
    let matches = match with_agent_verbs(Cli::command()).try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(e) => return usage_error(e),
    };
    if let Some((name, verb_matches)) = matches.subcommand()
        && let Some(verb) = agent_cli::find(name)
    {
        let verb_args = verb_matches
            .get_many::<String>("args")
            .map(|args| args.cloned().collect())
            .unwrap_or_default();
        return agent_cli::run(verb, verb_args);
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match cli.command {
        Command::Serve { args } => serve(args),
        Command::Agent { args } => musubi_agent::cli_main(args),
        Command::Kv(args) => kv::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Conf(args) => conf::run(args),
        Command::Files(args) => files::run(args),
        Command::Reconcile(args) => reconcile::run(args),
        #[cfg(feature = "server")]
        Command::Snapshot(args) => snapshot::run(args),
        Command::Lock(args) => lock::run(args),
        Command::Elect(args) => lock::run_elect(args),
        Command::Guardian(args) => supervise::guardian_main(args),
    }
}

/// Serf's client verbs as subcommands that take their arguments raw, so `musubi --help`
/// lists them and `agent_cli` parses their single-dash flags itself.
fn with_agent_verbs(command: clap::Command) -> clap::Command {
    command.subcommands(agent_cli::VERBS.iter().map(|verb| {
        clap::Command::new(verb.name)
            .about(verb.about)
            .disable_help_flag(true)
            .arg(
                Arg::new("args")
                    .num_args(0..)
                    .trailing_var_arg(true)
                    .allow_hyphen_values(true),
            )
    }))
}

#[cfg(feature = "server")]
fn serve(args: Vec<String>) -> ExitCode {
    musubi_server::cli_main(args)
}

#[cfg(not(feature = "server"))]
fn serve(_args: Vec<String>) -> ExitCode {
    eprintln!("musubi: this build has no server (built without the `server` feature)");
    ExitCode::from(1)
}

/// Print clap's message and exit as etcdctl does: 0 for help and version, 3 for an unknown
/// command, 1 for any other usage error.
fn usage_error(e: clap::Error) -> ExitCode {
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::SUCCESS,
        ErrorKind::InvalidSubcommand => ExitCode::from(3),
        _ => ExitCode::from(1),
    }
}
