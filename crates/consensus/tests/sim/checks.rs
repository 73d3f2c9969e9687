//! The checkers: what must hold however the run went. They observe the cluster and never
//! change it; each returns the violation it found, described for a human.

use crate::network::Router;
use crate::workload::Write;
use musubi_consensus::{SharedStateMachine, Vote};
use openraft::ServerState;
use openraft::async_runtime::watch::WatchReceiver;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often the election watch samples every member's metrics.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

/// Watches elections by sampling every running member's metrics: who led in which term,
/// and whether any member's vote ever went backwards (a vote must survive crashes).
pub struct ElectionWatch {
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<Result<Elections, String>>,
}

/// What the election watch saw.
#[derive(Debug, Default)]
pub struct Elections {
    /// Term -> the members seen leading in it.
    pub leaders: BTreeMap<u64, BTreeSet<u64>>,
}

impl Elections {
    /// Terms in which more than one member led. openraft's default leader ids are
    /// `(term, node id)`, so several members may each win a term in turn; musubi declares
    /// standard Raft's (`leader_id_std`), which allow one, as etcd's Raft does.
    fn shared_terms(&self) -> Vec<(u64, &BTreeSet<u64>)> {
        self.leaders
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(term, ids)| (*term, ids))
            .collect()
    }

    /// Fails on the first term that had more than one leader.
    pub fn one_leader_per_term(&self) -> Result<(), String> {
        match self.shared_terms().first() {
            Some((term, ids)) => Err(format!("members {ids:?} all led in term {term}")),
            None => Ok(()),
        }
    }
}

impl ElectionWatch {
    pub fn start(router: Arc<Router>) -> ElectionWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let sampler = tokio::spawn(async move {
            let mut elections = Elections::default();
            let mut votes: BTreeMap<u64, Vote> = BTreeMap::new();
            while !stopped.load(Ordering::Relaxed) {
                for (id, raft) in router.running() {
                    let metrics = raft.metrics();
                    let m = metrics.borrow_watched();
                    if m.state == ServerState::Leader {
                        elections
                            .leaders
                            .entry(m.current_term)
                            .or_default()
                            .insert(id);
                    }
                    let seen = votes.entry(id).or_insert(m.vote);
                    if m.vote < *seen {
                        return Err(format!(
                            "member {id}'s vote went back from {seen} to {}",
                            m.vote
                        ));
                    }
                    *seen = m.vote;
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            Ok(elections)
        });
        ElectionWatch { stop, sampler }
    }

    /// Stops sampling; fails if a member's vote ever went backwards.
    pub async fn finish(self) -> Result<Elections, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.await.expect("the sampler does not panic")
    }
}

/// Every acknowledged write is in every member's state machine, with its value.
pub fn acknowledged_writes_survive(
    history: &[Write],
    state_machines: &BTreeMap<u64, SharedStateMachine>,
) -> Result<(), String> {
    for write in history.iter().filter(|w| w.acknowledged.is_some()) {
        for (id, sm) in state_machines {
            let found = sm
                .read()
                .get(&write.key, false, 0)
                .ok()
                .and_then(|e| e.node.value);
            if found.as_deref() != Some(write.value.as_str()) {
                return Err(format!(
                    "{} = {} was acknowledged at log index {}, but member {id} has {found:?}",
                    write.key,
                    write.value,
                    write.acknowledged.expect("filtered on acknowledged"),
                ));
            }
        }
    }
    Ok(())
}

/// All members hold the same state: same keys, values, store index and statistics.
pub fn state_machines_agree(
    state_machines: &BTreeMap<u64, SharedStateMachine>,
) -> Result<(), String> {
    let snapshots: BTreeMap<u64, (Vec<u8>, u64, usize)> = state_machines
        .iter()
        .map(|(id, sm)| {
            let sm = sm.read();
            (*id, (sm.to_snapshot(), sm.index(), sm.len()))
        })
        .collect();
    let Some((first_id, (first, ..))) = snapshots.iter().next() else {
        return Err("no member runs".into());
    };
    if snapshots.values().any(|(bytes, ..)| bytes != first) {
        let summary: Vec<String> = snapshots
            .iter()
            .map(|(id, (_, index, len))| format!("member {id}: store index {index}, {len} nodes"))
            .collect();
        return Err(format!(
            "the state machines differ from member {first_id}'s: {}",
            summary.join("; ")
        ));
    }
    Ok(())
}
