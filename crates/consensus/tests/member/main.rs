//! The consensus crate's integration tests: real files, real sockets, one binary.

mod compact_log;
mod peer_network;
mod request_fence;
mod single_node;
mod util;
