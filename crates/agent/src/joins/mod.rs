//! Joining the members at addresses users typed, for `-join` and the RPC `join` alike.

pub mod discover;
pub mod retry;

use crate::config::address;
use crate::node::{NodeHandle, NodeStopped};
use std::net::SocketAddr;
use std::time::Duration;
use tracing::info;

/// How long a join waits for a member to answer at each address.
pub const JOIN_PATIENCE: Duration = Duration::from_secs(5);
/// How long a join waits for the members' event clock before it announces itself.
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(1);

/// Serf's refusal of a join once the agent has left the cluster.
const JOIN_AFTER_LEAVE: &str = "Serf can't Join after Leave or Shutdown";

#[derive(Debug, PartialEq, Eq)]
pub struct JoinOutcome {
    pub reached: usize,
    /// One line per address that could not be resolved or reached.
    pub failures: Vec<String>,
    /// The agent had left the cluster, so nothing was tried.
    after_leave: bool,
}

impl JoinOutcome {
    /// Like memberlist, a join that reached anyone succeeded; otherwise the failures in
    /// hashicorp/go-multierror's format, which Serf's join errors come in. A join after
    /// leaving is Serf's one plain error.
    pub fn error(&self) -> Option<String> {
        if self.after_leave {
            return Some(JOIN_AFTER_LEAVE.to_string());
        }
        if self.reached > 0 || self.failures.is_empty() {
            return None;
        }
        let count = match self.failures.len() {
            1 => "1 error occurred".to_string(),
            n => format!("{n} errors occurred"),
        };
        let items: String = self.failures.iter().map(|e| format!("\n\t* {e}")).collect();
        Some(format!("{count}:{items}\n\n"))
    }
}

/// Join the members at `peers`. First they are asked for their event clock, so that the
/// user events from before the join are ignored (the first to answer sets the time; it
/// must arrive before the events still gossiped do), or, with `replay`, for their recent
/// events, which are then delivered (Serf's `join -replay`; the agent's `-replay` for its
/// own joins: `-join`, retry-join, discovery).
pub async fn join(
    node: &NodeHandle,
    peers: &[String],
    replay: bool,
) -> Result<JoinOutcome, NodeStopped> {
    if node.has_left().await? {
        return Ok(JoinOutcome {
            reached: 0,
            failures: Vec::new(),
            after_leave: true,
        });
    }
    info!("joining: {peers:?} replay: {replay}");
    let mut resolved: Vec<(&String, SocketAddr)> = Vec::new();
    let mut failures = Vec::new();
    for text in peers {
        match address::resolve_peer(text).await {
            Ok(addr) => resolved.push((text, addr)),
            Err(e) => failures.push(format!("Failed to resolve {text}: {e}")),
        }
    }
    let addrs: Vec<SocketAddr> = resolved.iter().map(|&(_, addr)| addr).collect();
    if !addrs.is_empty() {
        node.catch_up(addrs.clone(), replay, CATCH_UP_PATIENCE)
            .await?;
    }
    let reached_addrs = node.join(&addrs, JOIN_PATIENCE).await?;
    failures.extend(
        resolved
            .iter()
            .filter(|(_, addr)| !reached_addrs.contains(addr))
            .map(|(text, addr)| format!("Failed to join {text}: no member answered at {addr}")),
    );
    Ok(JoinOutcome {
        reached: reached_addrs.len(),
        failures,
        after_leave: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(reached: usize, failures: &[&str]) -> JoinOutcome {
        JoinOutcome {
            reached,
            failures: failures.iter().map(|f| f.to_string()).collect(),
            after_leave: false,
        }
    }

    #[test]
    fn join_errors_read_like_go_multierror() {
        assert_eq!(
            outcome(0, &["x"]).error().unwrap(),
            "1 error occurred:\n\t* x\n\n"
        );
        assert_eq!(
            outcome(0, &["x", "y"]).error().unwrap(),
            "2 errors occurred:\n\t* x\n\t* y\n\n"
        );
    }

    #[test]
    fn reaching_anyone_is_success() {
        assert_eq!(outcome(1, &["x"]).error(), None);
        assert_eq!(outcome(0, &[]).error(), None);
    }
}
