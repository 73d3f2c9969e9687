//! Whether this member has a leader, for the watch streams that ask to end without one
//! (gRPC metadata `hasleader=true`, which etcdctl and clientv3 send).
//!
//! A member cut off from the others still names the last leader it knew (Pre-Vote keeps
//! its term, so nothing clears it), so knowing a leader is not enough: a check is a quorum
//! read, as `/health` does. One monitor per member checks for all its streams, and stops
//! a while after the last of them has gone.

use crate::app::App;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Failed checks in a row after which a stream ends: with a check every
/// [`CHECK_INTERVAL`] that fails after [`CHECK_TIMEOUT`], about 4.5 s without a leader
/// (etcd: more than 3 election timeouts, 4 s by default).
pub const MAX_FAILED_CHECKS: u32 = 3;
const CHECK_INTERVAL: Duration = Duration::from_millis(500);
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a monitor goes on with no stream watching it, for the next one to find it.
const LINGER: Duration = Duration::from_secs(30);

/// Failed checks in a row; `None` before the first check is done.
pub type Failures = Option<u32>;

/// The running monitors, by the address of their member's `App` (each holds its `App`, so
/// the address is not reused while it runs).
static MONITORS: LazyLock<Mutex<HashMap<usize, watch::Sender<Failures>>>> =
    LazyLock::new(Default::default);

/// The monitor of `app`'s member, started if none runs.
pub fn subscribe(app: &Arc<App>) -> watch::Receiver<Failures> {
    let key = Arc::as_ptr(app) as usize;
    let mut monitors = MONITORS.lock();
    if let Some(tx) = monitors.get(&key) {
        return tx.subscribe();
    }
    let (tx, rx) = watch::channel(None);
    monitors.insert(key, tx.clone());
    tokio::spawn(run(app.clone(), key, tx));
    rx
}

/// One check: a leader is known, and a quorum read through it completes in time.
pub async fn has_leader(app: &App) -> bool {
    app.raft.status().has_leader
        && matches!(
            tokio::time::timeout(CHECK_TIMEOUT, app.raft.linearizable_barrier()).await,
            Ok(Ok(()))
        )
}

async fn run(app: Arc<App>, key: usize, tx: watch::Sender<Failures>) {
    let mut unwatched_since = None;
    loop {
        let ok = has_leader(&app).await;
        tx.send_modify(|failures| *failures = Some(if ok { 0 } else { failures.unwrap_or(0) + 1 }));
        tokio::time::sleep(CHECK_INTERVAL).await;
        // Under the registry's lock, so that no stream subscribes to a monitor that stops.
        let mut monitors = MONITORS.lock();
        if tx.receiver_count() > 0 {
            unwatched_since = None;
        } else if unwatched_since.get_or_insert_with(Instant::now).elapsed() >= LINGER {
            monitors.remove(&key);
            return;
        }
    }
}
