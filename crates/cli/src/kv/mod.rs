//! `musubi kv`: etcdctl v2's key commands, with etcdctl 3.4's output (`ETCDCTL_API=2`), error
//! text and exit codes (docs/cli-kv.md).
//!
//! 1. Parse the global options and the verb.
//! 2. Build a client; unless `--no-sync`, replace the endpoints with the cluster's advertised
//!    client URLs (an unreachable cluster exits 2 here, as in etcdctl).
//! 3. Run the verb: one request (bounded by `--total-timeout`) or, for the watch verbs, a
//!    loop of long polls until the event (or Ctrl-C).

mod failure;
mod output;
mod read;
mod remove;
mod watch;
mod write;

use clap::{Args, Subcommand, ValueEnum};
use failure::Failure;
use musubi_client::{Client, Error};
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct KvArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    verb: Verb,
}

/// The connection options every client command shares (etcdctl's global flags).
#[derive(Args)]
pub struct GlobalArgs {
    /// The etcd API: 2 (this parser); `--api 3` or `ETCDCTL_API=3` is `v3`'s (docs/cli-v3.md).
    #[arg(long, global = true, default_value = "2", value_parser = ["2"])]
    api: String,
    /// Comma-separated list of machine addresses in the cluster.
    #[arg(
        long,
        short = 'C',
        alias = "endpoint",
        alias = "peers",
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379,http://127.0.0.1:4001"
    )]
    endpoints: Vec<String>,
    /// Output format (`--format` is an alias).
    #[arg(
        long,
        short = 'o',
        alias = "format",
        global = true,
        value_enum,
        default_value = "simple"
    )]
    output: Format,
    /// Print each request as a curl command on stderr.
    #[arg(long, global = true)]
    debug: bool,
    /// Use the endpoints as given instead of the ones the cluster advertises.
    #[arg(long, global = true)]
    no_sync: bool,
    /// Connection and response-header timeout per request (Go duration).
    #[arg(long, global = true, default_value = "2s", value_parser = crate::duration::parse_or_seconds)]
    timeout: Duration,
    /// Timeout of the whole command, watches excepted (Go duration).
    #[arg(long, global = true, default_value = "5s", value_parser = crate::duration::parse_or_seconds)]
    total_timeout: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Simple,
    Extended,
    Json,
}

#[derive(Subcommand)]
enum Verb {
    /// Set the value of a key.
    Set(write::SetArgs),
    /// Make a new key with a given value.
    Mk(write::MkArgs),
    /// Make a new directory.
    Mkdir(write::DirArgs),
    /// Create a new directory or update an existing directory's TTL.
    Setdir(write::DirArgs),
    /// Update an existing key with a given value.
    Update(write::UpdateArgs),
    /// Update an existing directory.
    Updatedir(write::DirArgs),
    /// Retrieve the value of a key.
    Get(read::GetArgs),
    /// Retrieve a directory.
    Ls(read::LsArgs),
    /// Remove a key or a directory.
    Rm(remove::RmArgs),
    /// Remove the key if it is an empty directory or a key-value pair.
    Rmdir(remove::RmdirArgs),
    /// Watch a key for changes.
    Watch(watch::WatchArgs),
    /// Watch a key for changes and run a command for each.
    ExecWatch(watch::ExecWatchArgs),
}

/// What every verb gets: the client and how to print.
pub struct Ctx {
    pub client: Client,
    format: Format,
    total_timeout: Duration,
}

impl Ctx {
    /// `-o json`: commands print one JSON document instead of text.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Run one client call within `--total-timeout`; its failure is a server error (exit 4).
    async fn call<T>(&self, call: impl Future<Output = Result<T, Error>>) -> Result<T, Failure> {
        match tokio::time::timeout(self.total_timeout, call).await {
            Ok(result) => result.map_err(Failure::Server),
            Err(_) => Err(Failure::DeadlineExceeded),
        }
    }
}

pub fn run(args: KvArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    match runtime.block_on(execute(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn execute(args: KvArgs) -> Result<(), Failure> {
    let ctx = connect(&args.global).await?;
    match &args.verb {
        Verb::Set(a) => a.run(&ctx).await,
        Verb::Mk(a) => a.run(&ctx).await,
        Verb::Mkdir(a) => a.run(&ctx, write::DirVerb::Mkdir).await,
        Verb::Setdir(a) => a.run(&ctx, write::DirVerb::Setdir).await,
        Verb::Update(a) => a.run(&ctx).await,
        Verb::Updatedir(a) => a.run(&ctx, write::DirVerb::Updatedir).await,
        Verb::Get(a) => a.run(&ctx).await,
        Verb::Ls(a) => a.run(&ctx).await,
        Verb::Rm(a) => a.run(&ctx).await,
        Verb::Rmdir(a) => a.run(&ctx).await,
        Verb::Watch(a) => until_interrupted(a.run(&ctx)).await,
        Verb::ExecWatch(a) => until_interrupted(a.run(&ctx)).await,
    }
}

/// Watches run until Ctrl-C, which (as in etcdctl) ends them successfully.
async fn until_interrupted(
    watch: impl Future<Output = Result<(), Failure>>,
) -> Result<(), Failure> {
    tokio::select! {
        result = watch => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Build the client and sync the endpoint list, printing what etcdctl prints with `--debug`.
pub async fn connect(global: &GlobalArgs) -> Result<Ctx, Failure> {
    let client = Client::new(global.endpoints.clone())
        .map_err(|e| Failure::BadArgs(e.to_string()))?
        .with_debug(global.debug)
        .with_timeout(global.timeout);
    let ctx = Ctx {
        client,
        format: global.output,
        total_timeout: global.total_timeout,
    };
    if !global.no_sync {
        if global.debug {
            eprintln!(
                "start to sync cluster using endpoints({})",
                ctx.client.endpoints().join(",")
            );
        }
        // Like etcdctl, only "no endpoint could be connected to" is fatal: a server without
        // /v2/members, or a slow one, is still tried with the endpoints as given.
        if let Err(Failure::Server(Error::Cluster(c))) = ctx.call(ctx.client.sync()).await
            && c.all_unreachable()
        {
            return Err(Failure::Connection(Error::Cluster(c)));
        }
        if global.debug {
            eprintln!(
                "got endpoints({}) after sync",
                ctx.client.endpoints().join(",")
            );
        }
    }
    if global.debug {
        eprintln!("Cluster-Endpoints: {}", ctx.client.endpoints().join(", "));
    }
    Ok(ctx)
}

/// etcdctl's check for a missing key argument.
fn require_key(key: &Option<String>) -> Result<&str, Failure> {
    key.as_deref()
        .ok_or_else(|| Failure::BadArgs("key required".to_string()))
}
