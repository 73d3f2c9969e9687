//! Peer traffic as etcd reports it: per-follower append latency and counts on the leader
//! (`/v2/stats/leader`), appends sent and received on every member (`/v2/stats/self`).

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::time::Duration;

/// Shared by the peer client (sends) and the peer routes (receives).
#[derive(Default)]
pub struct PeerStats {
    inner: Mutex<Totals>,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub followers: BTreeMap<u64, FollowerStats>,
    pub sent_appends: u64,
    pub received_appends: u64,
}

/// Append round trips to one follower, in milliseconds as etcd's `LatencyStats`.
#[derive(Clone, Debug, Default)]
pub struct FollowerStats {
    pub current_ms: f64,
    pub minimum_ms: f64,
    pub maximum_ms: f64,
    pub success: u64,
    pub fail: u64,
    sum_ms: f64,
    sum_squares: f64,
}

impl FollowerStats {
    pub fn average_ms(&self) -> f64 {
        if self.success == 0 {
            0.0
        } else {
            self.sum_ms / self.success as f64
        }
    }

    pub fn standard_deviation_ms(&self) -> f64 {
        if self.success == 0 {
            return 0.0;
        }
        let mean = self.average_ms();
        (self.sum_squares / self.success as f64 - mean * mean)
            .max(0.0)
            .sqrt()
    }

    fn record(&mut self, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        self.minimum_ms = if self.success == 0 {
            ms
        } else {
            self.minimum_ms.min(ms)
        };
        self.maximum_ms = self.maximum_ms.max(ms);
        self.current_ms = ms;
        self.success += 1;
        self.sum_ms += ms;
        self.sum_squares += ms * ms;
    }
}

impl PeerStats {
    pub(crate) fn append_sent(&self, target: u64, outcome: Result<Duration, ()>) {
        let mut totals = self.inner.lock();
        totals.sent_appends += 1;
        let follower = totals.followers.entry(target).or_default();
        // etcd's metrics name the peer by its hex ID in a label `To`.
        let to = format!("{target:x}");
        match outcome {
            Ok(took) => {
                follower.record(took);
                metrics::histogram!("etcd_network_peer_round_trip_time_seconds", "To" => to)
                    .record(took.as_secs_f64());
            }
            Err(()) => {
                follower.fail += 1;
                metrics::counter!("etcd_network_peer_sent_failures_total", "To" => to).increment(1);
            }
        }
    }

    pub(crate) fn append_received(&self) {
        self.inner.lock().received_appends += 1;
    }

    pub fn totals(&self) -> Totals {
        self.inner.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_statistics_are_etcds() {
        let stats = PeerStats::default();
        for ms in [1, 3] {
            stats.append_sent(7, Ok(Duration::from_millis(ms)));
        }
        stats.append_sent(7, Err(()));
        stats.append_received();
        let totals = stats.totals();
        let f = &totals.followers[&7];
        assert_eq!((f.success, f.fail), (2, 1));
        assert_eq!((f.minimum_ms, f.maximum_ms, f.current_ms), (1.0, 3.0, 3.0));
        assert_eq!((f.average_ms(), f.standard_deviation_ms()), (2.0, 1.0));
        assert_eq!((totals.sent_appends, totals.received_appends), (3, 1));
    }
}
