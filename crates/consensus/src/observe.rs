//! What the consensus layer tells operators as it runs: one info line per leader change,
//! and the metrics etcd's dashboards read (`etcd_server_leader_changes_seen_total`).

use crate::Raft;
use openraft::async_runtime::watch::WatchReceiver;

/// Counts and logs every change of leader this member sees, until Raft shuts down.
/// Watches the server metrics, which change with the vote, the leader or the membership;
/// the full metrics change with every write, and each change woke this task.
pub(crate) async fn leader_changes(raft: Raft, me: u64) {
    let mut metrics = raft.server_metrics();
    let mut seen: Option<u64> = None;
    loop {
        let (leader, term, name) = {
            let m = metrics.borrow_and_update();
            let name = m.current_leader.and_then(|id| {
                let node = m.membership_config.membership().get_node(&id)?;
                Some(node.name.clone())
            });
            (
                m.current_leader,
                m.vote.leader_id.term,
                name.unwrap_or_default(),
            )
        };
        if leader != seen {
            match leader {
                // Losing a leader is not a change of leader: etcd counts the new one only.
                Some(id) => {
                    metrics::counter!("etcd_server_leader_changes_seen_total").increment(1);
                    let role = if id == me { ", this member" } else { "" };
                    tracing::info!("leader is {name} ({id:x}{role}) at term {term}");
                }
                None => tracing::info!("no leader at term {term}"),
            }
            seen = leader;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
