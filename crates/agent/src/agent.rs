//! `musubi agent`: wire the node, the RPC listener, discovery and the joins together, then
//! wait for what ends the agent: an RPC `leave`, a signal, or retry-join giving up.
//! SIGHUP reloads the config instead ([`reload`](crate::reload)).

use crate::config::{AgentConfig, ConfigError};
use crate::discover::{self, Discovery};
use crate::identity::NodeId;
use crate::invoke;
use crate::join;
use crate::logging::{self, LogLevelControl};
use crate::node::{self, NodeHandle};
use crate::reload::{self, Reloader};
use crate::retry_join::{self, RetryJoin};
use crate::rpc;
use crate::syslog::Syslog;
use crate::tags_file::TagsFile;
use clap::error::ErrorKind;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{error, info};

/// How long a graceful leave may take before the agent exits anyway (Serf's 3 s).
const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(3);

/// Entry point for `musubi agent ARGS`: 0 after a graceful leave; 1 on a usage or start
/// error, an exit without leaving, or retry-join giving up (as `serf agent`).
pub fn cli_main(args: Vec<String>) -> ExitCode {
    let config = match AgentConfig::load(&args) {
        Ok(config) => config,
        Err(ConfigError::Usage(e)) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            };
        }
        Err(ConfigError::Invalid(message)) => return fail(&message),
    };
    for notice in &config.notices {
        println!("==> {notice}");
    }
    let syslog = match config.enable_syslog {
        true => match Syslog::connect(&config.syslog_facility) {
            Ok(syslog) => Some(syslog),
            Err(e) => return fail(&format!("Syslog setup failed: {e}")),
        },
        false => None,
    };
    let log_level = logging::init(&config.log_level, syslog);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(args, config, log_level)) {
        Ok(code) => code,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("==> {message}");
    ExitCode::from(1)
}

async fn run(
    args: Vec<String>,
    config: AgentConfig,
    log_level: LogLevelControl,
) -> Result<ExitCode, String> {
    // Listening before anything serves: a signal sent as soon as the RPC port answers
    // must already get Serf's handling, not the default of dying.
    let signals = Signals::listen()?;
    let handlers = reload::parse_handlers(&config.event_handlers)?;
    let tags_file = config.tags_file.clone().map(TagsFile::new);
    let tags = match &tags_file {
        Some(_) if !config.tags.is_empty() => {
            return Err("Tags config not allowed while using tag files".to_string());
        }
        Some(file) => file.load()?,
        None => config.tag_map(),
    };
    let identity = NodeId {
        name: config.node_name(),
        addr: config.advertise_addr()?,
        tags,
        started_ms: unix_millis(),
    };
    println!("==> Starting musubi agent...");
    let (events, delivered_events) = mpsc::unbounded_channel();
    let node = node::start(
        identity.clone(),
        config.bind,
        config.profile,
        tags_file,
        events,
    )
    .await
    .map_err(|e| format!("cannot bind the gossip listener to {}: {e}", config.bind))?;
    let listener = TcpListener::bind(config.rpc_addr)
        .await
        .map_err(|e| format!("Error starting RPC listener: {e}"))?;
    let leave_done = Arc::new(Notify::new());
    tokio::spawn(rpc::serve(
        listener,
        node.clone(),
        leave_done.clone(),
        config.rpc_auth.clone(),
    ));
    let (handlers_now, handlers_view) = watch::channel(handlers);
    tokio::spawn(invoke::run_event_loop(
        delivered_events,
        handlers_view,
        node.local_identity(),
    ));
    // Kept for the agent's lifetime: dropping the daemon would stop the announcement.
    let _mdns = match &config.discover {
        Some(cluster) => Some(
            discover::start(
                node.clone(),
                Discovery {
                    cluster: cluster.clone(),
                    node_name: identity.name.clone(),
                    advertise: identity.addr,
                    replay: config.replay_on_join,
                    interface: config.interface.clone(),
                },
            )
            .map_err(|e| format!("Error starting mDNS listener: {e}"))?,
        ),
        None => None,
    };
    print_banner(&config, &identity);
    if !config.join.is_empty() {
        join_at_start(&node, &config).await?;
    }
    let retry_exhausted = Arc::new(Notify::new());
    if !config.retry_join.is_empty() {
        let plan = RetryJoin {
            peers: config.retry_join.clone(),
            replay: config.replay_on_join,
            interval: config.retry_interval,
            max_attempts: config.retry_max_attempts,
        };
        let exhausted = retry_exhausted.clone();
        let node = node.clone();
        tokio::spawn(async move {
            if retry_join::run(node, plan).await.is_err() {
                exhausted.notify_one();
            }
        });
    }
    let reloader = Reloader {
        args,
        current: config,
        log_level,
        handlers: handlers_now,
        node: node.clone(),
    };
    wait_for_the_end(signals, reloader, &node, &leave_done, &retry_exhausted).await
}

fn print_banner(config: &AgentConfig, identity: &NodeId) {
    println!("==> musubi agent running!");
    println!("     Node name: '{}'", identity.name);
    println!("     Bind addr: '{}'", config.bind);
    println!("     Advertise: '{}'", identity.addr);
    println!("      RPC addr: '{}'", config.rpc_addr);
    println!("       Profile: {}", config.profile.name());
    if let Some(cluster) = &config.discover {
        println!("  mDNS cluster: {cluster}");
    }
}

/// Serf's agent exits when its `-join` reaches nobody.
async fn join_at_start(node: &NodeHandle, config: &AgentConfig) -> Result<(), String> {
    println!("==> Joining cluster...(replay: {})", config.replay_on_join);
    let outcome = join::join(node, &config.join, config.replay_on_join)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(error) = outcome.error() {
        return Err(format!("Failed to join: {error}"));
    }
    println!(
        "    Join completed. Synced with {} initial agents",
        outcome.reached
    );
    Ok(())
}

/// Serf's signal semantics: SIGINT leaves gracefully unless `skip_leave_on_interrupt`;
/// SIGTERM leaves only with `leave_on_terminate`; exiting without a leave is exit 1, and
/// the others then see this member fail. SIGHUP reloads and waits on.
async fn wait_for_the_end(
    signals: Signals,
    mut reloader: Reloader,
    node: &NodeHandle,
    leave_done: &Notify,
    retry_exhausted: &Notify,
) -> Result<ExitCode, String> {
    let Signals {
        mut interrupt,
        mut terminate,
        mut hangup,
    } = signals;
    loop {
        let graceful = tokio::select! {
            _ = leave_done.notified() => {
                info!("left the cluster on request");
                return Ok(ExitCode::SUCCESS);
            }
            _ = retry_exhausted.notified() => return Ok(ExitCode::from(1)),
            _ = hangup.recv() => {
                println!("==> Caught signal: hangup");
                if reloader.reload().await.is_err() {
                    return Ok(ExitCode::from(1));
                }
                continue;
            }
            _ = interrupt.recv() => {
                println!("==> Caught signal: interrupt");
                !reloader.current.skip_leave_on_interrupt
            }
            _ = terminate.recv() => {
                println!("==> Caught signal: terminated");
                reloader.current.leave_on_terminate
            }
        };
        if !graceful {
            info!("exiting without leaving the cluster");
            return Ok(ExitCode::from(1));
        }
        println!("==> Gracefully shutting down agent...");
        let left = tokio::select! {
            left = tokio::time::timeout(GRACEFUL_TIMEOUT, node.leave()) => matches!(left, Ok(Ok(()))),
            // A second signal while leaving: give up on the leave, as Serf does.
            _ = interrupt.recv() => false,
            _ = terminate.recv() => false,
        };
        if !left {
            error!("graceful leave did not complete");
        }
        return Ok(if left {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
}

struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn listen() -> Result<Signals, String> {
        let listen = |kind| signal(kind).map_err(|e| format!("cannot listen for signals: {e}"));
        Ok(Signals {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
            hangup: listen(SignalKind::hangup())?,
        })
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
