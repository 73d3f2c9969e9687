//! Linearizable reads that arrive together share one ReadIndex, as etcd's read loop
//! shares one among every read waiting for it.
//!
//! A ReadIndex costs the leader a heartbeat round to a quorum, and a follower a request to
//! the leader on top: one per read made a three-member cluster spend more on the
//! confirmation than on the read. Here, while one ReadIndex is being fetched, the readers
//! that arrive wait for the next, which starts when that one returns and serves them all.
//!
//! Still linearizable: a reader's index always comes from a fetch that *started after the
//! reader arrived*, so it covers every write acknowledged before the read began. A reader
//! that arrives during a fetch never takes that fetch's answer.

use crate::ConsensusError;
use parking_lot::Mutex;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::oneshot;

/// One fetch's answer, shared by every reader of its batch.
type Shared = Result<u64, Arc<ConsensusError>>;

#[derive(Default)]
pub(crate) struct ReadBatch {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// A fetch is running (and the task that runs it will look at `waiting` again after).
    fetching: bool,
    /// The readers that arrived since the running fetch started, if any: the next batch.
    waiting: Vec<oneshot::Sender<Shared>>,
}

impl ReadBatch {
    /// The read index for a read arriving now: the answer of the next `fetch` to start,
    /// shared with every reader that joins before it does.
    pub(crate) async fn index<F, Fut>(self: &Arc<Self>, fetch: F) -> Result<u64, ConsensusError>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, ConsensusError>> + Send + 'static,
    {
        let (reader, answer) = oneshot::channel();
        let start = {
            let mut state = self.state.lock();
            state.waiting.push(reader);
            !std::mem::replace(&mut state.fetching, true)
        };
        // A task of its own, so that a reader who gives up does not strand the others.
        if start {
            tokio::spawn(self.clone().fetch_while_waited_for(fetch));
        }
        match answer.await {
            Ok(shared) => shared.map_err(ConsensusError::from_shared),
            Err(_) => Err(ConsensusError::Fatal(
                "the read index fetch ended without an answer".into(),
            )),
        }
    }

    /// Fetches for one batch after another until no reader is waiting.
    async fn fetch_while_waited_for<F, Fut>(self: Arc<Self>, fetch: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<u64, ConsensusError>>,
    {
        let mut running = Running {
            batch: self.clone(),
            finished: false,
        };
        loop {
            let batch = {
                let mut state = self.state.lock();
                if state.waiting.is_empty() {
                    state.fetching = false;
                    running.finished = true;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            let shared = fetch().await.map_err(Arc::new);
            for reader in batch {
                // A reader that gave up has dropped its end.
                let _ = reader.send(shared.clone());
            }
        }
    }
}

/// The fetching task, which must not end and leave `fetching` set: if a fetch panics, its
/// readers get an error (their senders are dropped), so do those waiting for the next, and
/// the next reader starts a fetch of its own instead of waiting for a task that is gone.
struct Running {
    batch: Arc<ReadBatch>,
    /// Ended the way it should: with no reader waiting, `fetching` cleared under the lock.
    finished: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            let mut state = self.batch.state.lock();
            state.fetching = false;
            state.waiting.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::sync::Notify;

    /// A fetch that waits to be released, counting how often it started.
    struct Gate {
        started: AtomicU64,
        release: Notify,
    }

    fn gated() -> Arc<Gate> {
        Arc::new(Gate {
            started: AtomicU64::new(0),
            release: Notify::new(),
        })
    }

    fn fetch(
        gate: &Arc<Gate>,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<u64, ConsensusError>> + Send>>
    + Send
    + 'static {
        let gate = gate.clone();
        move || {
            let gate = gate.clone();
            Box::pin(async move {
                let n = gate.started.fetch_add(1, Ordering::SeqCst) + 1;
                gate.release.notified().await;
                Ok(n)
            })
        }
    }

    #[tokio::test]
    async fn readers_arriving_during_a_fetch_share_the_next_one_and_never_the_running_one() {
        let batch = Arc::new(ReadBatch::default());
        let gate = gated();
        let first = tokio::spawn({
            let (batch, f) = (batch.clone(), fetch(&gate));
            async move { batch.index(f).await.unwrap() }
        });
        while gate.started.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Fetch 1 is running: these three arrive after it started.
        let later: Vec<_> = (0..3)
            .map(|_| {
                let (batch, f) = (batch.clone(), fetch(&gate));
                tokio::spawn(async move { batch.index(f).await.unwrap() })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            gate.started.load(Ordering::SeqCst),
            1,
            "no second fetch while one runs"
        );
        gate.release.notify_one();
        assert_eq!(first.await.unwrap(), 1);
        while gate.started.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        gate.release.notify_one();
        for reader in later {
            assert_eq!(
                reader.await.unwrap(),
                2,
                "the fetch that started after they came"
            );
        }
        assert_eq!(
            gate.started.load(Ordering::SeqCst),
            2,
            "one fetch for the three"
        );
    }

    #[tokio::test]
    async fn an_error_reaches_every_reader_of_the_batch() {
        let batch = Arc::new(ReadBatch::default());
        let failing = || async { Err(ConsensusError::NoLeader("member a".into())) };
        let (a, b) = tokio::join!(batch.index(failing), batch.index(failing));
        for result in [a, b] {
            assert!(matches!(result, Err(ConsensusError::NoLeader(m)) if m == "member a"));
        }
        // And the batch is ready for the next reader.
        assert_eq!(batch.index(|| async { Ok(7) }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_fetch_that_panics_fails_its_readers_and_strands_no_later_one() {
        let batch = Arc::new(ReadBatch::default());
        let panicking = || async { panic!("a bug in the fetch") };
        assert!(matches!(
            batch.index(panicking).await,
            Err(ConsensusError::Fatal(_))
        ));
        let later = batch.index(|| async { Ok(8) });
        let answered = tokio::time::timeout(std::time::Duration::from_secs(5), later).await;
        assert_eq!(answered.expect("a later reader is answered").unwrap(), 8);
    }
}
