//! Serf's RPC protocol (the `serf` CLI and its client libraries talk it to port 7373).
//! `codec` is the wire format, `commands` the per-command behaviour, `members` the member records and filters, `stats` what `serf info` shows, `server` the sockets,
//! `streams` the records a command keeps sending after its reply.

pub mod codec;
mod commands;
mod members;
mod server;
mod stats;
pub mod streams;

pub use server::serve;
