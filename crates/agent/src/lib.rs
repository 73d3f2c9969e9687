//! musubi's gossip agent: cluster membership that HashiCorp Serf's tools can drive.
//!
//! Promises: the membership protocol is foca's SWIM (sans-IO, no runtime crashes on bad
//! input); a member is alive, leaving, left or failed exactly when Serf would say so; the
//! RPC port speaks Serf's protocol byte for byte, so the real `serf` CLI works against it.
//!
//! How it runs:
//! 1. [`config`] resolves Serf's flags over its JSON config files ([`config::file`], each
//!    file and the flags one [`config::layer`]); [`agent`] builds this node's
//!    [`NodeId`](musubi_gossip::identity::NodeId) (tags from `-tag`/`tags` or the
//!    [`config::tags_file`]).
//! 2. [`node`] owns the UDP socket and the clock in one task and drives this member's
//!    protocol, [`Core`](musubi_gossip::core::Core): each datagram (over UDP or the stream
//!    [`transport`]), command or deadline is handed to the core with the time, then its
//!    outputs go out: datagrams to the socket or the transport, Serf's events to the
//!    event loop. Inside the core, foca's SWIM keeps the
//!    [`membership`](musubi_gossip::membership) table; user events and queries ride on
//!    foca's packets, each stamped by a [`lamport`](musubi_gossip::lamport) clock; with
//!    `-encrypt` or `-keyring-file` every datagram is sealed and opened with the
//!    [`keys`](musubi_gossip::keys) ring.
//! 3. Member changes, user events and queries become Serf's [`events`]; the [`snapshot`]
//!    records them, the [`coalesce`]r merges bursts as Serf does, then one task logs them,
//!    passes them to RPC event streams and runs the matching [`handlers`] one at a
//!    time ([`handlers::invoke`]); a handler's output answers a query.
//! 4. [`rpc`] serves Serf's RPC clients and asks the node through a `NodeHandle`; its
//!    `monitor` reads the [`logs::ring`], which [`logs`] fills beside stderr and syslog.
//!    The wire format and the client (`musubi members`, ...) are `musubi_serf_rpc`'s.
//! 5. [`joins`]: `-join` at start, `-retry-join` in the background ([`joins::retry`]),
//!    `-discover` over mDNS ([`joins::discover`]).
//! 6. RPC `leave`, SIGINT (unless `skip_leave_on_interrupt`) or SIGTERM (with
//!    `leave_on_terminate`): tell every member we leave, leave the SWIM cluster, exit 0
//!    (the [`snapshot`] records the leave); other signals that end the agent exit 1
//!    without leaving. Losing its name to another member stops the node and the agent
//!    exits 0, as Serf's. SIGHUP reloads the log level, handlers and tags (`reload`).

mod agent;
mod coalesce;
mod config;
mod config_store;
mod event_streams;
pub mod events;
mod handlers;
use musubi_gocompat::base64 as go_base64;
pub use musubi_gocompat::duration as go_duration;
mod joins;
mod key_queries;
mod keyring_file;
mod logs;
pub mod node;
mod reload;
mod rpc;
mod snapshot;
mod telemetry;
pub mod transport;

pub use agent::cli_main;
pub use config_store::serf_shapes;
