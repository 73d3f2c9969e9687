//! A client for Serf's RPC protocol, as `musubi members`, `musubi query`, ... use it: the
//! same conversation Serf's Go client has with an agent (handshake, optional auth, then
//! requests answered by Seq, and streams whose records reuse the Seq that opened them).
//! It talks to a musubi agent and to a Serf agent alike.

mod connection;
pub mod messages;

pub use connection::{ClientError, ReplyHeader, RpcClient};
