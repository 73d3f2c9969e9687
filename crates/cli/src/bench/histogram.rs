//! A fixed-size log-linear latency histogram: recording is an index computation and an
//! increment, with under 1% relative error, so it can sit on the hot path of every request.

use std::time::Duration;

/// Values below 2^SUB_BITS nanoseconds are exact; above, each power of two is split in 64.
const SUB_BITS: u32 = 7;
const HALF: u64 = 1 << (SUB_BITS - 1);
const BUCKETS: usize = (64 - SUB_BITS as usize + 2) * HALF as usize;

pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    sum_nanos: u128,
    max_nanos: u64,
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            sum_nanos: 0,
            max_nanos: 0,
        }
    }

    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(nanos)] += 1;
        self.count += 1;
        self.sum_nanos += u128::from(nanos);
        self.max_nanos = self.max_nanos.max(nanos);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_nanos += other.sum_nanos;
        self.max_nanos = self.max_nanos.max(other.max_nanos);
    }

    /// The latency below which a fraction `q` (0..=1) of the samples fall.
    pub fn quantile(&self, q: f64) -> Duration {
        let target = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Duration::from_nanos(value(i).min(self.max_nanos));
            }
        }
        Duration::from_nanos(self.max_nanos)
    }

    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos((self.sum_nanos / u128::from(self.count)) as u64)
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_nanos)
    }
}

fn index(v: u64) -> usize {
    if v < (1 << SUB_BITS) {
        return v as usize;
    }
    let shift = 63 - v.leading_zeros() - (SUB_BITS - 1);
    (u64::from(shift) * HALF + (v >> shift)) as usize
}

/// The middle of bucket `i`'s range.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < (1 << SUB_BITS) {
        return i;
    }
    let shift = i / HALF - 1;
    let mantissa = i % HALF + HALF;
    (mantissa << shift) + ((1 << shift) >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_within_one_percent() {
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            1_000,
            65_432,
            1_234_567,
            9_876_543_210,
            u64::MAX,
        ] {
            let i = index(v);
            assert!(i < BUCKETS);
            let back = value(i) as f64;
            assert!(
                (back - v as f64).abs() <= (v as f64) * 0.01 + 1.0,
                "{v} -> {i} -> {back}"
            );
        }
        assert_eq!(index(127) + 1, index(128));
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let mut h = Histogram::new();
        for us in 1..=1000 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).as_micros() as i64;
        let p99 = h.quantile(0.99).as_micros() as i64;
        assert!((p50 - 500).abs() <= 5, "{p50}");
        assert!((p99 - 990).abs() <= 10, "{p99}");
        assert_eq!(h.max(), Duration::from_micros(1000));
        let mut merged = Histogram::new();
        merged.merge(&h);
        assert_eq!(merged.quantile(0.5), h.quantile(0.5));
    }
}
