//! `musubi agent`: wire the node, the RPC listener and the signals together, and run until
//! the agent leaves (on SIGINT, SIGTERM or an RPC `leave`).

use crate::coalesce;
use crate::config::AgentConfig;
use crate::event_handlers::EventHandler;
use crate::identity::NodeId;
use crate::invoke;
use crate::join;
use crate::key_queries;
use crate::keys::GossipKeys;
use crate::lamport::Clocks;
use crate::log_ring::LogRing;
use crate::node::{self, Lifecycle, NodeHandle, NodeOptions, QuerySettings};
use crate::query::InternalQueries;
use crate::reaper::ReapTimeouts;
use crate::rpc;
use crate::snapshot::{Restored, Snapshot};
use crate::tags_file::TagsFile;
use clap::error::ErrorKind;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// Entry point for `musubi agent ARGS`: 0 after a graceful leave, 1 on a usage or start
/// error (as `serf agent`).
pub fn cli_main(args: Vec<String>) -> ExitCode {
    let config = match AgentConfig::parse_serf_args(args) {
        Ok(config) => config,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            };
        }
    };
    let logs = init_logging(&config.log_level);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(config, logs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("==> {message}");
    ExitCode::from(1)
}

/// stderr gets the lines at `-log-level` and above; the ring behind `serf monitor` gets
/// every line, as Serf's does.
fn init_logging(level: &str) -> Arc<LogRing> {
    let level: tracing::Level = level.parse().unwrap_or(tracing::Level::INFO);
    let logs = LogRing::new();
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(LevelFilter::from_level(level));
    tracing_subscriber::registry()
        .with(stderr)
        .with(logs.layer())
        .init();
    logs
}

async fn run(config: AgentConfig, logs: Arc<LogRing>) -> Result<(), String> {
    let handlers = config
        .event_handlers
        .iter()
        .map(|spec| EventHandler::parse(spec))
        .collect::<Result<Vec<_>, _>>()?;
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
    let keys = Arc::new(GossipKeys::from_config(
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
    let lifecycle = Lifecycle {
        clocks: clocks.clone(),
        // As Serf: events up to the restored event time were handled before.
        event_min_time: restored.event_clock + 1,
        timeouts: ReapTimeouts::from_config(&config),
    };
    let options = NodeOptions {
        user_event_size_limit: config.user_event_size_limit,
        disable_coordinates: config.disable_coordinates,
        keys: keys.clone(),
    };
    let mut internal = InternalQueries::default();
    key_queries::register(&mut internal, keys.clone());
    let queries = QuerySettings {
        limits: config.query_limits(),
        internal,
    };
    let (events, node_events) = mpsc::unbounded_channel();
    let node = node::start(
        identity.clone(),
        config.bind,
        tags_file,
        events,
        lifecycle,
        queries,
        options,
    )
    .await
    .map_err(|e| format!("cannot bind the gossip listener to {}: {e}", config.bind))?;
    // Serf's order: the snapshot sees every event, handlers see them coalesced.
    let node_events = match &snapshot {
        Some((snapshot, _)) => crate::snapshot::spawn_tee(snapshot.clone(), clocks, node_events),
        None => node_events,
    };
    let delivered_events = coalesce::spawn(node_events, coalesce::Periods::SERF);
    let listener = TcpListener::bind(config.rpc_addr)
        .await
        .map_err(|e| format!("cannot bind the RPC listener to {}: {e}", config.rpc_addr))?;
    let leave_done = Arc::new(Notify::new());
    let agent = Arc::new(rpc::AgentState {
        event_handlers: handlers.clone(),
        logs,
    });
    tokio::spawn(rpc::serve(
        listener,
        node.clone(),
        agent,
        leave_done.clone(),
    ));
    tokio::spawn(invoke::run_event_loop(
        delivered_events,
        handlers,
        node.clone(),
    ));
    println!("==> musubi agent running!");
    println!("     Node name: '{}'", identity.name);
    println!("     Bind addr: '{}'", config.bind);
    println!("     Advertise: '{}'", identity.addr);
    println!("      RPC addr: '{}'", config.rpc_addr);
    println!("     Encrypted: {}", keys.is_enabled());
    if let Some((_, restored)) = &snapshot {
        tokio::spawn(rejoin(
            node.clone(),
            identity.name.clone(),
            restored.alive.clone(),
        ));
    }
    if !config.join.is_empty() {
        join_at_start(&node, &config.join, config.replay_on_join).await?;
    }

    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = leave_done.notified() => info!("left the cluster on request"),
        _ = interrupt.recv() => leave(&node, "interrupt").await,
        _ = terminate.recv() => leave(&node, "terminate").await,
        _ = node.shut_down() => {
            warn!("Serf shutdown detected, quitting");
            return Ok(());
        }
    }
    if let Some((snapshot, _)) = &snapshot {
        snapshot.leave();
    }
    Ok(())
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
        match join::join(&node, std::slice::from_ref(&addr), true).await {
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
async fn join_at_start(node: &NodeHandle, peers: &[String], replay: bool) -> Result<(), String> {
    let outcome = join::join(node, peers, replay)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(error) = outcome.error() {
        return Err(format!("Failed to join: {error}"));
    }
    info!("joined: {} nodes", outcome.reached);
    Ok(())
}

async fn leave(node: &NodeHandle, signal: &str) {
    info!("caught signal {signal}: leaving gracefully");
    // Already stopping means there is nothing left to leave.
    let _ = node.leave().await;
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
