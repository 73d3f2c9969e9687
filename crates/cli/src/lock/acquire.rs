//! Waiting for our turn: the first `limit` keys of the queue hold. After a key ahead of us
//! *expired* (its holder died or stalled, rather than released), we wait the lock-delay
//! before taking over, so that whatever that holder was doing has time to stop (Chubby's
//! lock-delay); the guardian has killed its child by then unless the whole host froze.

use super::queue::{Kind, Queue, rank};
use super::session::Session;
use crate::toolkit::{ToolError, ToolExit};
use std::time::Duration;

/// How a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// We hold: one of the first `limit`.
    Held,
    /// Someone else holds and we were asked not to wait.
    Busy,
    /// Our key expired while we waited.
    Lost,
}

pub struct Rules {
    /// How many hold at once (1: a lock; N: a semaphore).
    pub limit: usize,
    pub lock_delay: Duration,
    /// Do not wait: `--try`.
    pub once: bool,
}

pub async fn wait_turn(session: &Session, rules: &Rules) -> Result<Turn, ToolError> {
    let queue: &Queue = &session.queue;
    let mut delay = false;
    loop {
        let (entries, revision) = match queue.list().await {
            Ok(listed) => listed,
            // The store out of reach while we wait: our key lives on (or the session says
            // it is lost), so try again rather than give up our place.
            Err(e) if e.exit == ToolExit::Unreachable => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    _ = session.lost() => return Ok(Turn::Lost),
                }
            }
            Err(e) => return Err(e),
        };
        if session.queue.kind == Kind::Lock
            && let Some(other) = entries
                .iter()
                .filter_map(|entry| stated_limit(&entry.value))
                .find(|limit| *limit != rules.limit)
        {
            return Err(ToolError::usage(format!(
                "{}: another contender has -n {other}, we have -n {}: they must agree",
                session.queue.name, rules.limit
            )));
        }
        match rank(&entries, session.ticket.token) {
            None => return Ok(Turn::Lost),
            Some(place) if place < rules.limit => {
                if delay {
                    tokio::select! {
                        _ = tokio::time::sleep(rules.lock_delay) => {}
                        _ = session.lost() => return Ok(Turn::Lost),
                    }
                }
                return Ok(Turn::Held);
            }
            Some(_) if rules.once => return Ok(Turn::Busy),
            Some(_) => {}
        }
        tokio::select! {
            moved = queue.wait_moved(revision, false) => match moved {
                Ok(moved) => delay |= moved.predecessor_expired,
                // A broken watch: list again after a pause (the calls fail over).
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            },
            _ = session.lost() => return Ok(Turn::Lost),
        }
    }
}

/// The `-n` a musubi contender wrote in its value (`{"limit":N,…}`); none for other tools'
/// keys (python-etcd's uuid, etcdctl's empty value), which are plain locks.
fn stated_limit(value: &str) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_str(value).ok()?;
    value.get("limit")?.as_u64().map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::stated_limit;

    #[test]
    fn limits_are_read_from_musubi_values_only() {
        assert_eq!(stated_limit(r#"{"id":"ab","limit":3}"#), Some(3));
        assert_eq!(stated_limit(r#"{"id":"ab"}"#), None);
        assert_eq!(stated_limit("0123456789abcdef"), None);
        assert_eq!(stated_limit(""), None);
    }
}
