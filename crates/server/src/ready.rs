//! A member serves clients only once it belongs to a working cluster: it has seen a leader
//! and the membership shows the name and client URLs it published. etcd 3.4 does the same
//! (its client listeners serve after `ReadyNotify`, which publishing closes), and clients
//! rely on it: before, a new cluster answered `/v2/machines` empty and listed itself in
//! `/v2/members` without client URLs, and a client that synced its endpoints then had none.
//!
//! The client listeners are bound from the start, so a client that connects early waits in
//! the accept queue and is answered once the member is ready, as with etcd.

use musubi_consensus::{Consensus, RaftStatus};
use std::time::Duration;

/// How often readiness is checked; a member is ready within a few heartbeats of start.
const POLL: Duration = Duration::from_millis(10);

/// Resolves once this member (`id`, published as `name` with `client_urls`) is ready.
pub async fn published(raft: &Consensus, id: u64, name: &str, client_urls: &[String]) {
    while !is_ready(&raft.status(), id, name, client_urls) {
        tokio::time::sleep(POLL).await;
    }
}

fn is_ready(status: &RaftStatus, id: u64, name: &str, client_urls: &[String]) -> bool {
    status.leader.is_some()
        && status
            .members
            .iter()
            .any(|m| m.id == id && m.name == name && m.client_urls == client_urls)
}
