//! Serf's RPC protocol (the `serf` CLI and its client libraries talk it to port 7373).
//! `codec` is the wire format, `commands` the per-command behaviour, `members` the member records and filters, `queries` query and event streams, `server` the sockets,
//! `streams` the records a command keeps sending after its reply.

pub mod codec;
mod commands;
mod members;
mod queries;
mod server;
pub mod streams;

pub use server::serve;
