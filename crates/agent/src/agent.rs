//! `musubi agent`: wire the node, the RPC listener, discovery and the joins together, then
//! wait for what ends the agent: an RPC `leave`, a signal, or retry-join giving up.
//! SIGHUP reloads the config instead ([`reload`](crate::reload)), and so does a change in
//! the store with `-config-store` ([`config_store`]).

use crate::coalesce;
use crate::config::tags_file::{self, TagsFile};
use crate::config::{AgentConfig, ConfigError};
use crate::config_store;
use crate::handlers::invoke;
use crate::joins;
use crate::joins::discover::{self, Discovery};
use crate::joins::retry::{self, RetryJoin};
use crate::keyring_file;
use crate::logs::syslog::Syslog;
use crate::logs::{self, Logging};
use crate::node::{self, NodeHandle};
use crate::reload::{self, Reloader};
use crate::rpc;
use crate::snapshot::{Restored, Snapshot};
use musubi_gossip::core::Settings;
use musubi_gossip::identity::NodeId;
use musubi_gossip::lamport::Clocks;
use musubi_gossip::query::InternalQueries;
use musubi_gossip::reaper::ReapTimeouts;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{error, info, warn};

/// How long a graceful leave may take before the agent exits anyway (Serf's 3 s).
const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(3);

/// Entry point for `musubi agent ARGS`: 0 after a graceful leave; 1 on a usage or start
/// error, an exit without leaving, or retry-join giving up (as `serf agent`).
pub fn cli_main(args: Vec<String>) -> ExitCode {
    // As serf agent: help asked for anywhere is the usage on stderr, exit 0; a flag Go's
    // `flag` refuses is its message on stderr, then `==> ` and the usage on stdout, exit 1
    // (`-help=false`, Go's own help request, the usage alone).
    if musubi_gocompat::flag::help_requested(&args) {
        eprintln!("{}", crate::config::flags::usage());
        return ExitCode::SUCCESS;
    }
    let config = match AgentConfig::load(&args) {
        Ok(config) => config,
        Err(ConfigError::Flag(e)) => {
            if e != musubi_gocompat::flag::FlagError::Help {
                eprintln!("{e}");
            }
            println!("==> {}", crate::config::flags::usage());
            return ExitCode::from(1);
        }
        Err(ConfigError::Invalid(message)) => return fail(&message),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let (config, store) = match config_store::at_start(&args, config, &runtime) {
        Ok(resolved) => resolved,
        Err(message) => return fail(&message),
    };
    for notice in config.notices.iter().chain(&config.unused) {
        println!("==> {notice}");
    }
    let syslog = match config.enable_syslog {
        true => match Syslog::connect(&config.syslog_facility) {
            Ok(syslog) => Some(syslog),
            Err(e) => return fail(&format!("Syslog setup failed: {e}")),
        },
        false => None,
    };
    let logging = logs::init(&config.log_level, syslog);
    match runtime.block_on(run(args, config, logging, store)) {
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
    logging: Logging,
    store: Option<config_store::Started>,
) -> Result<ExitCode, String> {
    // Listening before anything serves: a signal sent as soon as the RPC port answers
    // must already get Serf's handling, not the default of dying.
    let signals = Signals::listen()?;
    // Before the node starts, so that its first join is counted.
    let http_node = crate::telemetry::start(&config.telemetry()).await?;
    let handlers = reload::parse_handlers(&config.event_handlers)?;
    let tags_file = config.tags_file.clone().map(TagsFile::new);
    let tags = match &tags_file {
        Some(_) if !config.tags.is_empty() => {
            return Err("Tags config not allowed while using tag files".to_string());
        }
        Some(file) => file.load()?,
        None => config.tag_map(),
    };
    tags_file::check_encoded_size(&tags)
        .map_err(|e| format!("Failed to start the Serf agent: Error creating Serf: {e}"))?;
    let identity = NodeId {
        name: config.node_name(),
        addr: config.advertise_addr()?,
        tags,
        started_ms: unix_millis(),
    };
    let keys = Arc::new(keyring_file::gossip_keys(
        config.encrypt_key.as_deref(),
        config.keyring_file.clone(),
    )?);
    println!("==> Starting musubi agent...");
    let snapshot = match &config.snapshot_path {
        Some(path) => Some(Snapshot::open(path, config.rejoin_after_leave)?),
        None => None,
    };
    let nothing_restored = Restored::default();
    let restored = snapshot
        .as_ref()
        .map_or(&nothing_restored, |(_, restored)| restored);
    let clocks = restored_clocks(restored);
    let mut internal_queries = InternalQueries::default();
    musubi_gossip::key_queries::register(&mut internal_queries, keys.clone());
    let settings = Settings {
        identity: identity.clone(),
        profile: config.profile,
        user_event_size_limit: config.user_event_size_limit,
        disable_coordinates: config.disable_coordinates,
        disable_name_resolution: config.disable_name_resolution,
        enable_compression: config.enable_compression,
        keys: keys.clone(),
        clocks: clocks.clone(),
        // As Serf: events up to the restored event time were handled before.
        event_min_time: restored.event_clock + 1,
        reap: ReapTimeouts::configured(
            config.reconnect_interval,
            config.reconnect_timeout,
            config.tombstone_timeout,
        ),
        query_limits: config.query_limits(),
        internal_queries,
    };
    let (events, node_events) = mpsc::unbounded_channel();
    let node = node::start(settings, config.bind, tags_file, events)
        .await
        .map_err(|e| format!("cannot bind the gossip listener to {}: {e}", config.bind))?;
    http_node.fill(node.clone());
    // Serf's order: the snapshot sees every event, handlers see them coalesced.
    let node_events = match &snapshot {
        Some((snapshot, _)) => crate::snapshot::spawn_tee(snapshot.clone(), clocks, node_events),
        None => node_events,
    };
    let delivered_events = coalesce::spawn(node_events, coalesce::Periods::SERF);
    let listener = TcpListener::bind(config.rpc_addr)
        .await
        .map_err(|e| format!("Error starting RPC listener: {e}"))?;
    let leave_done = Arc::new(Notify::new());
    let (handlers_now, handlers_view) = watch::channel(handlers);
    let agent = Arc::new(rpc::AgentState {
        event_handlers: handlers_view.clone(),
        logs: logging.ring,
        rpc_auth: config.rpc_auth.clone().filter(|key| !key.is_empty()),
        config_store: store.as_ref().map(config_store::Started::handle),
    });
    tokio::spawn(rpc::serve(
        listener,
        node.clone(),
        agent,
        leave_done.clone(),
    ));
    tokio::spawn(invoke::run_event_loop(
        delivered_events,
        handlers_view,
        node.clone(),
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
    print_banner(&config, &identity, keys.is_enabled());
    if let Some((_, restored)) = &snapshot {
        tokio::spawn(rejoin(
            node.clone(),
            identity.name.clone(),
            restored.alive.clone(),
        ));
    }
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
            if retry::run(node, plan).await.is_err() {
                exhausted.notify_one();
            }
        });
    }
    let store_status = store.as_ref().map(|s| (s.handle(), config.clone()));
    let store_updates =
        store.map_or_else(config_store::Updates::none, config_store::Started::watch);
    let reloader = Reloader {
        args,
        current: config,
        log_level: logging.level,
        handlers: handlers_now,
        node: node.clone(),
        store: store_updates.clone(),
        store_status,
    };
    let ends = Endings {
        leave_done: &leave_done,
        retry_exhausted: &retry_exhausted,
        snapshot: snapshot.map(|(snapshot, _)| snapshot),
    };
    wait_for_the_end(signals, reloader, &node, ends, store_updates).await
}

fn print_banner(config: &AgentConfig, identity: &NodeId, encrypted: bool) {
    println!("==> musubi agent running!");
    println!("     Node name: '{}'", identity.name);
    println!("     Bind addr: '{}'", config.bind);
    println!("     Advertise: '{}'", identity.addr);
    println!("      RPC addr: '{}'", config.rpc_addr);
    println!("     Encrypted: {encrypted}");
    println!("       Profile: {}", config.profile.name());
    if let Some(cluster) = &config.discover {
        println!("  mDNS cluster: {cluster}");
    }
}

/// Serf's clocks start at 1, or past the times a snapshot recorded.
fn restored_clocks(restored: &Restored) -> Clocks {
    let clocks = Clocks::default();
    clocks.member.witness(restored.clock);
    clocks.event.witness(restored.event_clock);
    clocks.query.witness(restored.query_clock);
    clocks
}

/// With a snapshot, join the members that were alive when the agent stopped, one at a
/// time until one answers (in the background, as Serf).
async fn rejoin(node: NodeHandle, local_name: String, previous: Vec<(String, String)>) {
    let others: Vec<_> = previous
        .into_iter()
        .filter(|(name, _)| *name != local_name)
        .collect();
    if others.is_empty() {
        return;
    }
    for (name, addr) in others {
        info!("Attempting re-join to previously known node: {name}: {addr}");
        // As Serf's rejoin: the events missed while down are delivered; the ones
        // handled before are below the restored minimum time.
        match joins::join(&node, std::slice::from_ref(&addr), true).await {
            Ok(outcome) if outcome.reached > 0 => {
                info!("Re-joined to previously known node: {name}: {addr}");
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
    warn!("Failed to re-join any previously known node");
}

/// Serf's agent exits when its `-join` reaches nobody.
async fn join_at_start(node: &NodeHandle, config: &AgentConfig) -> Result<(), String> {
    println!("==> Joining cluster...(replay: {})", config.replay_on_join);
    let outcome = joins::join(node, &config.join, config.replay_on_join)
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

/// What ends the agent besides a signal, and the snapshot a graceful leave is recorded in.
struct Endings<'a> {
    /// An RPC `leave` completed.
    leave_done: &'a Notify,
    /// `-retry-max` failed rounds.
    retry_exhausted: &'a Notify,
    snapshot: Option<Snapshot>,
}

/// Serf's signal semantics: SIGINT leaves gracefully unless `skip_leave_on_interrupt`;
/// SIGTERM leaves only with `leave_on_terminate`; exiting without a leave is exit 1, and
/// the others then see this member fail. SIGHUP reloads and waits on. A node stopped on
/// its own (it lost its name) exits 0, as Serf's agent does.
async fn wait_for_the_end(
    signals: Signals,
    mut reloader: Reloader,
    node: &NodeHandle,
    ends: Endings<'_>,
    mut store_updates: config_store::Updates,
) -> Result<ExitCode, String> {
    let Signals {
        mut interrupt,
        mut terminate,
        mut hangup,
    } = signals;
    let record_leave = || {
        if let Some(snapshot) = &ends.snapshot {
            snapshot.leave();
        }
    };
    loop {
        let graceful = tokio::select! {
            _ = ends.leave_done.notified() => {
                info!("left the cluster on request");
                record_leave();
                return Ok(ExitCode::SUCCESS);
            }
            _ = ends.retry_exhausted.notified() => return Ok(ExitCode::from(1)),
            _ = node.shut_down() => {
                warn!("Serf shutdown detected, quitting");
                return Ok(ExitCode::SUCCESS);
            }
            _ = hangup.recv() => {
                println!("==> Caught signal: hangup");
                if reloader.reload().await.is_err() {
                    return Ok(ExitCode::from(1));
                }
                continue;
            }
            // A change in the store takes SIGHUP's path.
            _ = store_updates.next() => {
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
        // As Serf's leave, recorded first: a restart does not rejoin (without `-rejoin`)
        // even if the leave itself does not complete.
        record_leave();
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
