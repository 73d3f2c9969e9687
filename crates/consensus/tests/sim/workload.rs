//! Clients: each writes its own unique keys, one after another, to whichever member leads,
//! and records what it was told. Only a write that returned `Ok` counts as acknowledged; a
//! write that timed out or failed otherwise may or may not have been applied.

use crate::network::Router;
use musubi_consensus::Raft;
use musubi_store::{Expiry, Proposal, Request, V2Op};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long one attempt waits for a leader and a commit before the client gives up on it.
const PATIENCE: Duration = Duration::from_secs(1);
/// Between two writes of one client: enough writes to cross several snapshots per run,
/// few enough that fsyncs on a shared machine keep up.
const THINK: Duration = Duration::from_millis(5);

/// One write and what the client learnt about it.
#[derive(Clone, Debug)]
pub struct Write {
    pub key: String,
    pub value: String,
    /// The log index it was committed at, if the cluster acknowledged it.
    pub acknowledged: Option<u64>,
}

pub fn set(key: &str, value: &str) -> Request {
    Request::V2 {
        now_ms: 0,
        op: V2Op::Set {
            key: key.into(),
            value: Some(value.into()),
            expiry: Expiry::Permanent,
            refresh: false,
        },
    }
}

/// Proposes `request` on the leader, following `ForwardToLeader` hints (nothing was proposed
/// then) until `patience` runs out. Returns the committed log index, or why the outcome
/// is unknown.
pub async fn write(router: &Router, request: Request, patience: Duration) -> Result<u64, String> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut hint = None;
    loop {
        let Some(raft) = hint
            .and_then(|id| router.node(id))
            .or_else(|| believed_leader(router))
        else {
            if tokio::time::Instant::now() >= deadline {
                return Err("no leader known".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let attempt = tokio::time::timeout_at(
            deadline,
            raft.client_write(Arc::new(Proposal::once(request.clone()).into())),
        );
        match attempt.await {
            Ok(Ok(written)) => return Ok(written.log_id.index),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err("no leader accepted the write".into());
                }
                hint = f.leader_id;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("not committed within {patience:?}")),
        }
    }
}

/// The leader some running member knows of, if it runs too.
fn believed_leader(router: &Router) -> Option<Raft> {
    let running = router.running();
    running
        .values()
        .filter_map(|raft| raft.metrics().borrow_watched().current_leader)
        .find_map(|id| running.get(&id).cloned())
}

/// Clients writing in the background until stopped.
pub struct Workload {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Vec<Write>>>,
}

impl Workload {
    pub fn start(router: Arc<Router>, clients: usize) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|client| tokio::spawn(run_client(client, router.clone(), stop.clone())))
            .collect();
        Workload { stop, clients }
    }

    /// Stops the clients once their current write is resolved; returns every write.
    pub async fn stop(self) -> Vec<Write> {
        self.stop.store(true, Ordering::Relaxed);
        let mut history = Vec::new();
        for client in self.clients {
            history.extend(client.await.expect("a client task does not panic"));
        }
        history
    }
}

async fn run_client(client: usize, router: Arc<Router>, stop: Arc<AtomicBool>) -> Vec<Write> {
    let mut history = Vec::new();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("/sim/c{client}/k{n}");
        let value = format!("v{n}");
        let acknowledged = write(&router, set(&key, &value), PATIENCE).await.ok();
        history.push(Write {
            key,
            value,
            acknowledged,
        });
        tokio::time::sleep(THINK).await;
    }
    history
}
