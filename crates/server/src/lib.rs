//! `musubi serve`: a store member. Alone it is a one-member Raft cluster with an embedded
//! data dir; with `--initial-cluster` naming several members, all of them started with the
//! same flags form one static cluster. It serves etcd's v2 keys API on its client URLs;
//! any member accepts writes (a follower forwards them to the leader).
//!
//! Start-up, in order:
//! 1. parse the configuration (flags, `MUSUBI_*` environment, defaults);
//! 2. open the Raft log and snapshot in the data dir, restoring the state machine;
//! 3. start the TTL expiry loop;
//! 4. serve clients on every client URL and peers on the peer URLs until SIGINT/SIGTERM;
//!    `https://` URLs serve TLS (see [`tls`]). Every listener speaks HTTP/1.1 and HTTP/2
//!    (see [`conn`]); the client URLs serve gRPC beside the HTTP API (see [`grpc`]).

mod advertise;
pub mod app;
mod bootstrap;
mod clock;
mod compaction;
pub mod config;
mod config_file;
mod conn;
mod dashboard;
mod discovery;
mod discovery_http;
mod etcd_only_flags;
mod expiry;
pub mod grpc;
mod grpc_metrics;
mod h2_authority;
mod http;
mod identity;
mod listen;
mod logging;
mod metrics;
mod private_files;
mod probes;
mod ready;
pub mod restore;
mod tls;
pub mod v2;
pub mod v3;

use app::{App, Limits};
use config::{Config, ConfigError, Invocation};
use conn::HttpService;
use listen::{Bound, bind_all};
use musubi_consensus::{ApplyHook, Consensus, ConsensusConfig, Member};
use musubi_store::StateMachine;
use parking_lot::RwLock;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use v2::watch::WatchHub;

/// How long a member that was removed keeps answering before it stops.
const REMOVED_GRACE: Duration = Duration::from_secs(1);

/// etcd lets a gRPC request exceed `--max-request-bytes` by this much.
const REQUEST_OVERHEAD_BYTES: usize = 512 * 1024;

/// Entry point for `musubi serve ARGS` and for the binary invoked as `etcd ARGS`.
pub fn cli_main(args: Vec<String>) -> ExitCode {
    let config = match config::parse(&args) {
        Ok(Invocation::Serve(config)) => config,
        Ok(Invocation::Version) => {
            println!("etcd Version: {}", v2::cluster::ETCD_API_VERSION);
            println!("musubi Version: {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Help) => {
            print!("{}", config::usage());
            return ExitCode::SUCCESS;
        }
        // As etcd: a flag Go's `flag` refuses is its message alone, then the usage, exit 2;
        // an argument after the flags is etcd's one line, exit 1; musubi's own checks of
        // the values say what is wrong, then the usage, exit 2.
        Err(ConfigError::Flag(e)) => {
            eprintln!("{e}\n{}", config::usage());
            return ExitCode::from(2);
        }
        Err(e @ ConfigError::Positional(_)) => {
            eprintln!("musubi serve: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("musubi serve: {e}\n\n{}", config::usage());
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(&config.log_level, config.log_format, &config.log_outputs) {
        eprintln!("musubi serve: cannot open a log output: {e}");
        return ExitCode::from(2);
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    match serving_runtime().block_on(run(*config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("musubi serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime `musubi serve` runs on: tokio's multi-threaded one, without its LIFO slot.
///
/// The LIFO slot runs a task woken by the running task next, ahead of the queue. When a
/// batch of writes commits, the apply wakes every writer's request task; each one hands its
/// response to its HTTP/2 connection, which wakes the connection task, which the LIFO slot
/// then runs at once: one response per connection poll, one `writev` per response. Without
/// the slot the connection task queues behind the batch's other request tasks and sends all
/// of their responses in one poll and one `writev`. Measured with etcd-benchmark `put` (100
/// clients on 10 connections, one member): server CPU per put 42-48 µs with the slot,
/// 27-37 without, throughput 1.2-1.4x (docs/benchmarks.md, sixth session).
///
/// `disable_lifo_slot` is behind tokio's `tokio_unstable` cfg, set in `.cargo/config.toml`;
/// a build without it gets the default runtime and the same behaviour, only slower.
fn serving_runtime() -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder.build().expect("tokio runtime starts")
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {url}: {reason}")]
    Listen { url: String, reason: String },
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(
        "the member has been permanently removed from the cluster; to serve again, add it back (musubi cluster add) and start it with a fresh data dir"
    )]
    Removed,
    #[error("consensus: {0}")]
    Consensus(#[from] musubi_consensus::ConsensusError),
}

pub async fn run(config: Config) -> Result<(), ServeError> {
    // Bad certificate flags stop the server before it touches the data dir.
    let client_tls = tls::client_server_config(&config.client_tls, &config.listen_client_urls)?;
    metrics::install();
    let peer_tls = tls::peer_configs(&config.peer_tls, &config.listen_peer_urls)?;
    private_files::keep_new_files_private();
    private_files::warn_if_open_to_others(&config.data_dir);
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let client_listeners = bind_all(
        &config.listen_client_urls,
        client_tls.clone(),
        "--cert-file",
    )
    .await?;
    // etcd serves its metrics URLs with the client URLs' certificates.
    let metrics_listeners =
        bind_all(&config.listen_metrics_urls, client_tls, "--cert-file").await?;
    let peer_listeners = bind_all(
        &config.listen_peer_urls,
        peer_tls.server,
        "--peer-cert-file",
    )
    .await?;
    let bootstrap = bootstrap::resolve(&config, peer_tls.dialer.clone()).await?;

    let sm = Arc::new(RwLock::new(StateMachine::new()));
    let hub = Arc::new(WatchHub::new(config.v2_watch_history));
    let hook_hub = hub.clone();
    let hook: ApplyHook = Arc::new(move |response| hook_hub.on_apply(response));
    let consensus_config = consensus_config(&config, &bootstrap, peer_tls.dialer);
    let identity = bootstrap.identity;
    let raft = Consensus::open(consensus_config, sm.clone(), hook).await?;

    let limits = Limits {
        max_value_bytes: config.max_request_bytes as usize + REQUEST_OVERHEAD_BYTES,
        max_body_bytes: 3 * (config.max_request_bytes as usize + REQUEST_OVERHEAD_BYTES),
        request_timeout: Duration::from_millis(5000 + 2 * config.election_timeout_ms),
        max_request_bytes: config.max_request_bytes as usize,
        max_txn_ops: config.max_txn_ops,
        quota_backend_bytes: config.quota_backend_bytes,
        min_lease_ttl: (3 * config.election_timeout_ms).div_ceil(2000) as i64,
        auth_token_ttl: Duration::from_secs(config.auth_token_ttl),
    };
    let app = Arc::new(App::new(
        sm,
        hub,
        raft.clone(),
        identity,
        limits,
        config.data_dir.clone(),
    ));
    tokio::spawn(expiry::run(app.clone()));
    tokio::spawn(compaction::run(app.clone(), config.auto_compaction));

    let v3 = v3::V3::new(app.clone());
    tokio::spawn(v3::lease::run_expiry(v3.clone()));
    tokio::spawn(v3::watch::wakeups::dispatch(
        app.clone(),
        v3.watch_wakeups.clone(),
    ));
    let client_service = grpc::mount(http::service(v3.clone()), &v3);
    let metrics_router = HttpService::new(http::metrics_router(v3.clone()));
    for bound in metrics_listeners {
        tracing::info!(url = %bound.url, "serving metrics");
        tokio::spawn(bound.serve(metrics_router.clone()));
    }
    let peer_router = HttpService::new(raft.peer_router_with(v3::lease::peer_routes(v3.clone())));
    for bound in peer_listeners {
        tracing::info!(url = %bound.url, "serving peers");
        tokio::spawn(bound.serve(peer_router.clone()));
    }
    tokio::spawn(serve_clients_when_ready(
        app.clone(),
        config.clone(),
        client_listeners,
        client_service,
    ));
    let removed = tokio::select! {
        _ = shutdown_signal() => false,
        _ = raft.removed() => {
            // The request that removed this member may still be waiting for its reply.
            tokio::time::sleep(REMOVED_GRACE).await;
            true
        }
    };
    tracing::info!("shutting down");
    notify_systemd(sd_notify::NotifyState::Stopping);
    raft.shutdown().await;
    if removed {
        return Err(ServeError::Removed);
    }
    Ok(())
}

/// Serves the client listeners once the member is ready (see [`ready`]); until then early
/// clients wait in the accept queue, as etcd's do.
async fn serve_clients_when_ready(
    app: Arc<App>,
    config: Config,
    listeners: Vec<Bound>,
    service: HttpService,
) {
    let me = &app.identity;
    ready::published(
        &app.raft,
        me.member_id,
        &me.name,
        &config.advertise_client_urls,
    )
    .await;
    for bound in listeners {
        tracing::info!(url = %bound.url, "serving clients");
        tokio::spawn(bound.serve(service.clone()));
    }
    tracing::info!(name = %me.name, data_dir = %config.data_dir.display(), "musubi is ready");
    notify_systemd(sd_notify::NotifyState::Ready);
}

/// Tells systemd (a `Type=notify` unit: `$NOTIFY_SOCKET` is set) where the member is; a
/// no-op outside systemd. etcd notifies READY=1 once it serves clients, as here.
fn notify_systemd(state: sd_notify::NotifyState) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

fn consensus_config(
    config: &Config,
    bootstrap: &bootstrap::Bootstrap,
    peer_tls: Option<Arc<rustls::ClientConfig>>,
) -> ConsensusConfig {
    // Other members' client URLs are not in --initial-cluster: each publishes its own.
    let initial_members = bootstrap
        .founding_members
        .iter()
        .map(|(id, name, peer_urls)| (*id, Member::founding(name, peer_urls)))
        .collect();
    ConsensusConfig {
        node_id: bootstrap.identity.member_id,
        node_name: bootstrap.identity.name.clone(),
        cluster_id: bootstrap.identity.cluster_id,
        join_existing: bootstrap.identity.joined,
        force_new_cluster: config.force_new_cluster,
        data_dir: config.data_dir.clone(),
        peer_url: config
            .initial_advertise_peer_urls
            .first()
            .cloned()
            .unwrap_or_default(),
        client_urls: config.advertise_client_urls.clone(),
        snapshot_count: config.snapshot_count,
        heartbeat_ms: config.heartbeat_interval_ms,
        election_ms: config.election_timeout_ms,
        initial_members,
        peer_tls,
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
