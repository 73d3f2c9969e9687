//! `musubi kv --api 3` (or `ETCDCTL_API=3 musubi kv`): etcdctl 3.4's v3 commands over etcd's
//! gRPC API, with its flags, output (`-w simple|json|fields|table`), error lines and exit codes
//! (docs/cli-v3.md).
//!
//! 1. `requested` sees `--api 3` or `ETCDCTL_API=3` after `musubi kv` or `musubi cluster`
//!    and takes the arguments that follow, before the v2 parser would refuse them.
//! 2. clap parses etcdctl's global flags and the command; arguments are checked by the
//!    command itself, for etcdctl's messages and exit codes.
//! 3. `Conn` opens lazy channels to the endpoints and authenticates with `--user`; the
//!    command runs its calls through `Conn::unary` (or `Conn::read`) and prints as `Out`
//!    says.

mod auth;
pub(crate) mod conn;
mod endpoint;
mod failure;
mod fields;
pub(crate) mod kv;
mod lease;
mod maintenance;
mod member;
mod output;
mod role;
pub(crate) mod table;
mod tls;
mod txn;
mod user;
mod watch;

use clap::{Args, Parser, Subcommand};
use conn::{Conn, Settings};
pub use failure::Failure;
use output::{Format, Out};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The v3 arguments, when `args` (the whole command line) asks for v3.
pub fn requested(args: &[String]) -> Option<Vec<String>> {
    if !matches!(args.get(1).map(String::as_str), Some("kv" | "cluster")) {
        return None;
    }
    let rest = &args[2..];
    let flag = rest.iter().enumerate().find_map(|(i, a)| match a.as_str() {
        "--api" => rest.get(i + 1).map(String::as_str),
        _ => a.strip_prefix("--api="),
    });
    let api = match flag {
        Some(api) => api.to_string(),
        None => std::env::var("ETCDCTL_API").unwrap_or_default(),
    };
    (api == "3").then(|| rest.to_vec())
}

/// etcdctl 3.4's v3 commands over etcd's gRPC API (docs/cli-v3.md).
#[derive(Parser)]
// Flags given twice: the last one counts, as with etcdctl's (lists append, as there too).
#[command(
    name = "musubi kv --api 3",
    no_binary_name = true,
    args_override_self = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// etcdctl 3.4's global flags; each may also come from `ETCDCTL_<NAME>`, as in etcdctl.
#[derive(Args)]
struct Global {
    /// The API version: 3 here (`--api 2` or no flag is `musubi kv`'s v2).
    #[arg(long, global = true, default_value = "3", value_parser = ["3"])]
    api: String,
    /// gRPC endpoints, comma-separated (`host:port` or URLs).
    #[arg(
        long,
        global = true,
        env = "ETCDCTL_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    endpoints: Vec<String>,
    /// Dial timeout for client connections (Go duration).
    #[arg(long, global = true, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s",
          value_parser = crate::duration::parse)]
    dial_timeout: Duration,
    /// Timeout for a short-running command, connecting included (Go duration).
    #[arg(long, global = true, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s",
          value_parser = crate::duration::parse)]
    command_timeout: Duration,
    /// How often to ping an idle connection (HTTP/2 keepalive, Go duration).
    #[arg(long, global = true, env = "ETCDCTL_KEEPALIVE_TIME", default_value = "2s",
          value_parser = crate::duration::parse)]
    keepalive_time: Duration,
    /// How long a ping may go unanswered before the connection is dropped (Go duration).
    #[arg(long, global = true, env = "ETCDCTL_KEEPALIVE_TIMEOUT", default_value = "6s",
          value_parser = crate::duration::parse)]
    keepalive_timeout: Duration,
    /// Verify the servers' certificates with this CA bundle.
    #[arg(long, global = true, env = "ETCDCTL_CACERT")]
    cacert: Option<PathBuf>,
    /// Client certificate for servers that ask for one.
    #[arg(long, global = true, env = "ETCDCTL_CERT")]
    cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, global = true, env = "ETCDCTL_KEY")]
    key: Option<PathBuf>,
    /// Accept any server certificate (for testing only).
    #[arg(long, global = true, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY")]
    insecure_skip_tls_verify: bool,
    /// `name[:password]` to authenticate as.
    #[arg(long, global = true, env = "ETCDCTL_USER")]
    user: Option<String>,
    /// The password, when `--user` has none.
    #[arg(long, global = true, env = "ETCDCTL_PASSWORD")]
    password: Option<String>,
    /// Output format.
    #[arg(
        short = 'w',
        long,
        global = true,
        env = "ETCDCTL_WRITE_OUT",
        value_enum,
        default_value = "simple"
    )]
    write_out: Format,
    /// Print keys and values as hex-escaped bytes.
    #[arg(long, global = true, env = "ETCDCTL_HEX")]
    hex: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Put a key.
    Put(kv::PutArgs),
    /// Get a key or a range of keys.
    Get(kv::GetArgs),
    /// Delete a key or a range of keys.
    Del(kv::DelArgs),
    /// A transaction: compares, then the ops on success, then the ops on failure (stdin).
    Txn(txn::TxnArgs),
    /// Watch a key or a range for events.
    Watch(watch::WatchArgs),
    /// Compact the history up to a revision.
    Compaction(kv::CompactionArgs),
    /// Leases: grant, revoke, timetolive, list, keep-alive.
    Lease {
        #[command(subcommand)]
        verb: lease::Verb,
    },
    /// Members: list, add, remove, update, promote.
    Member {
        #[command(subcommand)]
        verb: member::Verb,
    },
    /// Endpoints: status, health, hashkv.
    Endpoint(endpoint::EndpointArgs),
    /// Hand the leadership to another member.
    MoveLeader(maintenance::MoveLeaderArgs),
    /// Alarms: list, disarm.
    Alarm {
        #[command(subcommand)]
        verb: maintenance::AlarmVerb,
    },
    /// Defragment the members' storage.
    Defrag(maintenance::DefragArgs),
    /// Users: add, delete, get, list, passwd, grant-role, revoke-role.
    User {
        #[command(subcommand)]
        verb: user::UserVerb,
    },
    /// Roles: add, delete, get, list, grant-permission, revoke-permission.
    Role {
        #[command(subcommand)]
        verb: role::RoleVerb,
    },
    /// Authentication: enable, disable.
    Auth {
        #[command(subcommand)]
        verb: auth::AuthVerb,
    },
}

/// What every command gets: the connection and how to print.
pub struct Ctx {
    pub conn: Conn,
    pub out: Out,
}

pub fn run(args: Vec<String>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.code)
        }
    }
}

/// clap's message, and etcdctl v3's exit codes: 0 for help, 1 for any usage error (an
/// unknown command too, where `musubi kv`'s v2 exits 3 as etcdctl v2 does).
fn usage_error(e: clap::Error) -> ExitCode {
    let _ = e.print();
    match e.kind() {
        clap::error::ErrorKind::DisplayHelp
        | clap::error::ErrorKind::DisplayVersion
        | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::SUCCESS,
        _ => ExitCode::from(failure::EXIT_ERROR),
    }
}

async fn execute(cli: Cli) -> Result<(), Failure> {
    let ctx = connect(&cli.global).await?;
    match cli.command {
        Command::Put(a) => a.run(&ctx).await,
        Command::Get(a) => a.run(&ctx).await,
        Command::Del(a) => a.run(&ctx).await,
        Command::Txn(a) => a.run(&ctx).await,
        Command::Watch(a) => a.run(&ctx).await,
        Command::Compaction(a) => a.run(&ctx).await,
        Command::Lease { verb } => verb.run(&ctx).await,
        Command::Member { verb } => verb.run(&ctx).await,
        Command::Endpoint(a) => a.run(&ctx).await,
        Command::MoveLeader(a) => a.run(&ctx).await,
        Command::Alarm { verb } => verb.run(&ctx).await,
        Command::Defrag(a) => a.run(&ctx).await,
        Command::User { verb } => verb.run(&ctx).await,
        Command::Role { verb } => verb.run(&ctx).await,
        Command::Auth { verb } => verb.run(&ctx).await,
    }
}

async fn connect(global: &Global) -> Result<Ctx, Failure> {
    let tls = tls::Config::from_flags(tls::Flags {
        cacert: global.cacert.as_deref(),
        cert: global.cert.as_deref(),
        key: global.key.as_deref(),
        skip_verify: global.insecure_skip_tls_verify,
    })?;
    let settings = Settings {
        dial_timeout: global.dial_timeout,
        command_timeout: global.command_timeout,
        keepalive_time: global.keepalive_time,
        keepalive_timeout: global.keepalive_timeout,
        tls,
    };
    let mut conn = Conn::new(global.endpoints.clone(), settings)?;
    if let Some(user) = &global.user {
        let (name, password) = credentials(user, global.password.as_deref())?;
        // As etcd's client: no password, no authentication.
        if !password.is_empty() {
            // etcdctl fails to make its client then: exit 2.
            conn.authenticate(&name, &password)
                .await
                .map_err(|f| f.with_code(failure::EXIT_BAD_CONNECTION))?;
        }
    }
    Ok(Ctx {
        conn,
        out: Out {
            format: global.write_out,
            hex: global.hex,
        },
    })
}

/// `--user name:password`, or `--user name --password p` (then the whole `--user` is the
/// name). Without either password etcdctl prompts on the terminal; musubi reads the line
/// from stdin after the same prompt, without hiding it.
fn credentials(user: &str, password: Option<&str>) -> Result<(String, String), Failure> {
    if let Some(password) = password {
        return Ok((user.to_string(), password.to_string()));
    }
    if let Some((name, password)) = user.split_once(':') {
        return Ok((name.to_string(), password.to_string()));
    }
    print!("Password: ");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure::bad_args(format!("read password: {e}")))?;
    Ok((
        user.to_string(),
        line.trim_end_matches(['\r', '\n']).to_string(),
    ))
}
