//! `musubi agent`: wire the node, the RPC listener and the signals together, and run until
//! the agent leaves (on SIGINT, SIGTERM or an RPC `leave`).

use crate::config::AgentConfig;
use crate::event_handlers::EventHandler;
use crate::identity::NodeId;
use crate::invoke;
use crate::join;
use crate::key_queries;
use crate::keys::GossipKeys;
use crate::node::{self, NodeHandle, QuerySettings};
use crate::query::InternalQueries;
use crate::rpc;
use crate::tags_file::TagsFile;
use clap::error::ErrorKind;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tracing::info;

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
    init_logging(&config.log_level);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("==> {message}");
    ExitCode::from(1)
}

fn init_logging(level: &str) {
    let level: tracing::Level = level.parse().unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

async fn run(config: AgentConfig) -> Result<(), String> {
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
    let (events, delivered_events) = mpsc::unbounded_channel();
    let mut internal = InternalQueries::default();
    key_queries::register(&mut internal, keys.clone());
    let queries = QuerySettings {
        limits: config.query_limits(),
        internal,
    };
    let node = node::start(
        identity.clone(),
        config.bind,
        tags_file,
        keys.clone(),
        events,
        queries,
    )
    .await
    .map_err(|e| format!("cannot bind the gossip listener to {}: {e}", config.bind))?;
    let listener = TcpListener::bind(config.rpc_addr)
        .await
        .map_err(|e| format!("cannot bind the RPC listener to {}: {e}", config.rpc_addr))?;
    let leave_done = Arc::new(Notify::new());
    tokio::spawn(rpc::serve(listener, node.clone(), leave_done.clone()));
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
    if !config.join.is_empty() {
        join_at_start(&node, &config.join).await?;
    }

    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = leave_done.notified() => info!("left the cluster on request"),
        _ = interrupt.recv() => leave(&node, "interrupt").await,
        _ = terminate.recv() => leave(&node, "terminate").await,
    }
    Ok(())
}

/// Serf's agent exits when its `-join` reaches nobody.
async fn join_at_start(node: &NodeHandle, peers: &[String]) -> Result<(), String> {
    let outcome = join::join(node, peers).await.map_err(|e| e.to_string())?;
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
