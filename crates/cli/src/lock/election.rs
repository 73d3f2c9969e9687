//! Leader election as a library. **Shared with `reconcile`**, which leads its instances
//! with it:
//!
//! ```ignore
//! let leadership = election::campaign(store, "NAME", "instance-1", &Campaign::default()).await?;
//! // leadership.token: the fencing token (the leader key's create revision / createdIndex);
//! // compare it in the same Txn as a write: `If create_revision(leadership.key) == token`.
//! tokio::select! { _ = leadership.lost() => { /* stop acting */ }, ... }
//! // A handler killed at the lease deadline: the guardian, fed `leadership.deadlines()`.
//! let mut guarded = supervise::spawn_guarded(&spec, *leadership.deadlines().borrow())?;
//! leadership.resign().await?;
//! ```
//!
//! The layout is `musubi elect`'s: v3 etcdctl's `NAME/<lease hex>` = value, v2
//! `/_musubi/elect/NAME/<in-order key>` = value; the leader is the oldest key.

use super::acquire::{Rules, Turn, wait_turn};
use super::queue::{Entry, Kind, Queue};
use super::session::Session;
use crate::supervise::Deadline;
use crate::toolkit::{Store, ToolError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A campaign's settings.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// The lease (v3) or key TTL (v2): how long a dead leader holds on.
    pub ttl: Duration,
    /// SIGTERM to SIGKILL for a guarded child, taken off the deadline.
    pub grace: Duration,
    /// Wait this long before leading after the previous leader expired.
    pub lock_delay: Duration,
}

impl Default for Campaign {
    fn default() -> Campaign {
        Campaign {
            ttl: Duration::from_secs(10),
            grace: Duration::from_secs(2),
            lock_delay: Duration::from_secs(3),
        }
    }
}

/// Being the leader. Dropping it stops the renewals (the key then expires); [`resign`]
/// deletes it at once.
///
/// [`resign`]: Leadership::resign
pub struct Leadership {
    /// The fencing token: our key's create revision (v3) or createdIndex (v2). It grows with
    /// every new leader.
    pub token: i64,
    /// Our key in the store.
    pub key: String,
    session: Session,
}

/// Wait until we lead `name` (campaigning with `value`). Errors: the store is unreachable;
/// [`ToolError::conflict`] if our key expired before we came to lead.
pub async fn campaign(
    store: Arc<Store>,
    name: &str,
    value: &str,
    settings: &Campaign,
) -> Result<Leadership, ToolError> {
    let queue = Queue::new(store, Kind::Elect, name);
    let ticket = queue.join(value, settings.ttl).await?;
    let session = Session::keep(queue, ticket, settings.grace);
    let rules = Rules {
        limit: 1,
        lock_delay: settings.lock_delay,
        once: false,
    };
    match wait_turn(&session, &rules).await {
        Ok(Turn::Held) => Ok(Leadership {
            token: session.ticket.token,
            key: session.ticket.key.clone(),
            session,
        }),
        Ok(_) => Err(ToolError::conflict(
            "our campaign's key expired before we came to lead",
        )),
        Err(e) => {
            let _ = session.close().await;
            Err(e)
        }
    }
}

/// The current leader of `name`, if any.
pub async fn leader(store: Arc<Store>, name: &str) -> Result<Option<Entry>, ToolError> {
    let queue = Queue::new(store, Kind::Elect, name);
    Ok(queue.list().await?.0.into_iter().next())
}

impl Leadership {
    /// Resolves once the leadership is lost (lease gone, or not renewed by its deadline).
    pub async fn lost(&self) {
        self.session.lost().await
    }

    pub fn is_lost(&self) -> bool {
        self.session.is_lost()
    }

    /// Each new deadline as renewals succeed (for a guardian of one's own).
    pub fn deadlines(&self) -> watch::Receiver<Deadline> {
        self.session.deadlines()
    }

    /// Step down: delete our key (only if it is still ours).
    pub async fn resign(self) -> Result<(), ToolError> {
        self.session.close().await
    }
}
