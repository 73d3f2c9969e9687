//! Serf's RPC protocol (the `serf` CLI and its client libraries talk it to port 7373).
//! The wire format is `musubi_serf_rpc::codec`; `commands` the per-command behaviour, `members` the member records and filters, `queries` query and event streams, `stats` what `serf info` shows, `monitor` the log stream, `server` the sockets,
//! `streams` the records a command keeps sending after its reply.

mod commands;
pub mod members;
mod monitor;
mod queries;
mod server;
mod stats;
pub mod streams;

pub use server::serve;

use crate::handlers::EventHandler;
use crate::logs::ring::LogRing;
use std::sync::Arc;
use tokio::sync::watch;

/// What RPC commands need from the agent besides the node.
pub struct AgentState {
    /// For `stats` (`serf info`'s `event_handlers`): the handlers of the moment, which a
    /// SIGHUP reload may change.
    pub event_handlers: watch::Receiver<Vec<EventHandler>>,
    /// For `monitor`.
    pub logs: Arc<LogRing>,
    /// Config `rpc_auth`: when set (not empty), clients must `auth` with it before any
    /// other command.
    pub rpc_auth: Option<String>,
    /// With `-config-store`: `info`'s `config_store` section, and the store `tags` writes
    /// the node's tags to.
    pub config_store: Option<crate::config_store::Handle>,
}
