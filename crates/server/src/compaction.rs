//! Auto-compaction of the v3 history, proposed by the leader through the log so every
//! member forgets the same revisions (`--auto-compaction-mode`, `--auto-compaction-retention`).
//!
//! etcd keeps history on disk and compacts only when told. musubi keeps it in memory, so
//! with no mode given it still bounds it: the last [`DEFAULT_RETAINED_REVISIONS`] revisions
//! are kept (docs/keyspace.md).

use crate::app::App;
use musubi_proto::etcdserverpb::CompactionRequest;
use musubi_store::Request;
use musubi_store::v3::V3Write;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Revisions kept when no auto-compaction is configured.
pub const DEFAULT_RETAINED_REVISIONS: i64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AutoCompaction {
    /// Keep this many revisions.
    Revision(i64),
    /// Keep the revisions of this long.
    Periodic(Duration),
}

impl AutoCompaction {
    /// Reads the two flags as etcd 3.4 does: the mode defaults to periodic; a periodic
    /// retention is a Go duration or a number of hours; 0 turns compaction off (here: the
    /// default bound). Errors name the flag, the value and why.
    pub fn parse(
        mode: Option<&str>,
        retention: Option<&str>,
    ) -> Result<AutoCompaction, (&'static str, String, String)> {
        let retention = retention.unwrap_or("0");
        let bad = |why: &str| {
            (
                "auto-compaction-retention",
                retention.to_string(),
                why.to_string(),
            )
        };
        match mode.unwrap_or("periodic") {
            "revision" => match retention.parse::<i64>() {
                Ok(0) => Ok(AutoCompaction::Revision(DEFAULT_RETAINED_REVISIONS)),
                Ok(n) if n > 0 => Ok(AutoCompaction::Revision(n)),
                _ => Err(bad("revision mode takes a positive number of revisions")),
            },
            "periodic" => {
                let period = match retention.parse::<u64>() {
                    Ok(hours) => Duration::from_secs(hours * 3600),
                    Err(_) => musubi_gocompat::duration::parse(retention)
                        .map_err(|_| bad("not a number of hours or a duration such as 30m"))?,
                };
                Ok(if period.is_zero() {
                    AutoCompaction::Revision(DEFAULT_RETAINED_REVISIONS)
                } else {
                    AutoCompaction::Periodic(period)
                })
            }
            other => Err((
                "auto-compaction-mode",
                other.to_string(),
                "must be periodic or revision".into(),
            )),
        }
    }
}

/// How often the leader looks at the history.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(app: Arc<App>, policy: AutoCompaction) {
    // (when, revision) samples for periodic mode, oldest first.
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (revision, compacted) = {
            let sm = app.sm.read();
            (sm.revision(), sm.compacted())
        };
        let now = Instant::now();
        let target = match policy {
            // Compact in steps of a tenth of the retention, not every revision.
            AutoCompaction::Revision(keep) => {
                (revision - compacted > keep + keep / 10).then_some(revision - keep)
            }
            AutoCompaction::Periodic(period) => {
                samples.push_back((now, revision));
                let mut target = None;
                while samples
                    .front()
                    .is_some_and(|(at, _)| now.duration_since(*at) >= period)
                {
                    target = samples.pop_front().map(|(_, rev)| rev);
                }
                target
            }
        };
        let Some(target) = target.filter(|t| *t > compacted) else {
            continue;
        };
        if !app.raft.is_leader() {
            continue;
        }
        let compact = Request::V3 {
            write: V3Write::Compact(CompactionRequest {
                revision: target,
                physical: false,
            }),
            now_ms: crate::clock::now_ms(),
        };
        match app.raft.write(compact).await {
            Ok(_) => tracing::info!(revision = target, "auto-compacted the v3 history"),
            Err(e) => tracing::warn!(error = %e, "could not propose auto-compaction; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_as_etcd_reads_them() {
        assert_eq!(
            AutoCompaction::parse(None, Some("1")),
            Ok(AutoCompaction::Periodic(Duration::from_secs(3600)))
        );
        assert_eq!(
            AutoCompaction::parse(Some("periodic"), Some("1h30m")),
            Ok(AutoCompaction::Periodic(Duration::from_secs(5400)))
        );
        assert_eq!(
            AutoCompaction::parse(Some("revision"), Some("1000")),
            Ok(AutoCompaction::Revision(1000))
        );
        assert_eq!(
            AutoCompaction::parse(None, None),
            Ok(AutoCompaction::Revision(DEFAULT_RETAINED_REVISIONS))
        );
        assert!(AutoCompaction::parse(Some("daily"), Some("1")).is_err());
        assert!(AutoCompaction::parse(Some("periodic"), Some("1d")).is_err());
    }
}
