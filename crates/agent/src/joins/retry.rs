//! `-retry-join`: join in the background, trying again every `-retry-interval` until some
//! member answers; after `-retry-max` failed retries the agent gives up and exits 1. The
//! log lines are Serf's, so scripts that watch for them keep working.

use crate::go_duration;
use crate::node::NodeHandle;
use std::time::Duration;
use tracing::{error, info, warn};

pub struct RetryJoin {
    pub peers: Vec<String>,
    pub replay: bool,
    pub interval: Duration,
    /// Failed rounds to retry after; 0 (or less) retries forever. As in Serf, N allows
    /// N + 1 rounds in all.
    pub max_attempts: i64,
}

/// The retries ran out: the agent exits 1.
#[derive(Debug, PartialEq, Eq)]
pub struct Exhausted;

/// Join until a round reaches someone (or the node stops), or give up.
pub async fn run(node: NodeHandle, plan: RetryJoin) -> Result<(), Exhausted> {
    let mut failures: i64 = 0;
    loop {
        info!("Joining cluster...(replay: {})", plan.replay);
        let Ok(outcome) = super::join(&node, &plan.peers, plan.replay).await else {
            return Ok(());
        };
        let Some(error) = outcome.error() else {
            info!(
                "Join completed. Synced with {} initial agents",
                outcome.reached
            );
            return Ok(());
        };
        failures += 1;
        if plan.max_attempts > 0 && failures > plan.max_attempts {
            error!("maximum retry join attempts made, exiting");
            return Err(Exhausted);
        }
        warn!(
            "Join failed: {error}, retrying in {}",
            go_duration::format(plan.interval)
        );
        tokio::time::sleep(plan.interval).await;
    }
}
