//! TTL expiry through the log: while TTL keys exist, the leader proposes one `Expire`
//! entry whenever the earliest expiry has passed (checked every 500 ms, as etcd's SYNC),
//! so every member removes the same keys at the same index.

use crate::app::App;
use musubi_store::Request;
use std::sync::Arc;
use std::time::Duration;

const SYNC_INTERVAL: Duration = Duration::from_millis(500);

pub async fn run(app: Arc<App>) {
    let mut ticker = tokio::time::interval(SYNC_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now_ms = crate::clock::now_ms();
        let due = app.sm.read().next_expiry().is_some_and(|at| at <= now_ms);
        if due
            && app.raft.is_leader()
            && let Err(e) = app.raft.write(Request::Expire { now_ms }).await
        {
            tracing::warn!(error = %e, "could not propose TTL expiry; will retry");
        }
    }
}
