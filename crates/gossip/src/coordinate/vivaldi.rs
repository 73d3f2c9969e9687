//! Vivaldi network coordinates with Serf's refinements (a height for the access link, a
//! per-node adjustment term, a latency filter and a weak pull towards the origin), so
//! `serf rtt`, which does the distance arithmetic itself, reads our coordinates exactly as
//! it reads a Serf agent's.
//!
//! Units are seconds throughout, as on Serf's wire (`Height` 1e-5 is 10 µs).

use rand_foca::RngExt;
use rand_foca::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Serf's defaults (coordinate.DefaultConfig): clients with other settings would not agree
/// on distances, so these are not configurable.
pub const DIMENSIONS: usize = 8;
const ERROR_MAX: f64 = 1.5;
/// How much one sample may move the error estimate (ce) and the position (cc).
const ERROR_GAIN: f64 = 0.25;
const POSITION_GAIN: f64 = 0.25;
const ADJUSTMENT_WINDOW: usize = 20;
pub const HEIGHT_MIN: f64 = 10.0e-6;
/// Samples per peer whose median is used: one slow reply does not throw the position off.
const LATENCY_FILTER: usize = 3;
/// Distance from the origin (seconds) at which the pull back equals 1 s of force; keeps
/// the whole cluster's coordinates from drifting away together.
const GRAVITY_RHO: f64 = 150.0;
/// Below this, lengths count as zero (no direction to push in).
const ZERO: f64 = 1.0e-6;
/// RTTs beyond this are not samples of a working network path.
const MAX_RTT: Duration = Duration::from_secs(10);

/// One node's position, as `get-coordinate` and the coordinate datagrams carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Coordinate {
    pub adjustment: f64,
    pub error: f64,
    pub height: f64,
    pub vec: Vec<f64>,
}

impl Default for Coordinate {
    /// Where every node starts: the origin, with the largest error.
    fn default() -> Self {
        Coordinate {
            adjustment: 0.0,
            error: ERROR_MAX,
            height: HEIGHT_MIN,
            vec: vec![0.0; DIMENSIONS],
        }
    }
}

impl Coordinate {
    /// Finite numbers of the right dimension: anything else from the network is refused.
    pub fn is_valid(&self) -> bool {
        self.vec.len() == DIMENSIONS
            && self
                .vec
                .iter()
                .chain([&self.error, &self.adjustment, &self.height])
                .all(|x| x.is_finite())
    }

    /// The estimated round trip to `other`: the Euclidean distance plus both heights,
    /// plus both adjustments when that leaves a positive time.
    pub fn distance_to(&self, other: &Coordinate) -> Duration {
        Duration::try_from_secs_f64(self.seconds_to(other)).unwrap_or(Duration::MAX)
    }

    /// [`Coordinate::distance_to`] in seconds, kept as a float so that the arithmetic of a
    /// coordinate that is blowing up stays representable until it is reset. The two must
    /// have the same number of dimensions.
    pub fn seconds_to(&self, other: &Coordinate) -> f64 {
        let raw = self.raw_distance_to(other);
        let adjusted = raw + self.adjustment + other.adjustment;
        if adjusted > 0.0 { adjusted } else { raw }
    }

    fn raw_distance_to(&self, other: &Coordinate) -> f64 {
        magnitude(&difference(&self.vec, &other.vec)) + self.height + other.height
    }

    /// Move by `force` seconds along the line from `other` to us (negative: towards it);
    /// the height takes its share of the push.
    fn pushed(&self, force: f64, other: &Coordinate, rng: &mut StdRng) -> Coordinate {
        let (unit, length) = unit_vector_from(&other.vec, &self.vec, rng);
        let mut moved = self.clone();
        for (x, u) in moved.vec.iter_mut().zip(&unit) {
            *x += u * force;
        }
        if length > ZERO {
            moved.height =
                ((moved.height + other.height) * force / length + moved.height).max(HEIGHT_MIN);
        }
        moved
    }
}

/// This node's own coordinate and what refines it.
pub struct VivaldiClient {
    coordinate: Coordinate,
    origin: Coordinate,
    /// The last `ADJUSTMENT_WINDOW` differences between measured and estimated RTTs.
    adjustment_samples: VecDeque<f64>,
    latency_samples: BTreeMap<String, VecDeque<f64>>,
    /// Times the coordinate went invalid (numeric blow-up) and started over.
    resets: u64,
    rng: StdRng,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UpdateError {
    #[error("the other node's coordinate is invalid")]
    InvalidCoordinate,
    #[error("round trip time {0:?} is not in (0, 10 s]")]
    RttOutOfRange(Duration),
}

impl VivaldiClient {
    pub fn with_rng(rng: StdRng) -> Self {
        VivaldiClient {
            coordinate: Coordinate::default(),
            origin: Coordinate::default(),
            adjustment_samples: VecDeque::with_capacity(ADJUSTMENT_WINDOW),
            latency_samples: BTreeMap::new(),
            resets: 0,
            rng,
        }
    }

    #[cfg(test)]
    pub fn seeded(seed: u64) -> Self {
        use rand_foca::SeedableRng;
        VivaldiClient::with_rng(StdRng::seed_from_u64(seed))
    }

    pub fn coordinate(&self) -> &Coordinate {
        &self.coordinate
    }

    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// One measured round trip to `node`, which says it is at `other`.
    pub fn update(
        &mut self,
        node: &str,
        other: &Coordinate,
        rtt: Duration,
    ) -> Result<&Coordinate, UpdateError> {
        if !other.is_valid() {
            return Err(UpdateError::InvalidCoordinate);
        }
        if rtt.is_zero() || rtt > MAX_RTT {
            return Err(UpdateError::RttOutOfRange(rtt));
        }
        let rtt = self.filtered_latency(node, rtt.as_secs_f64());
        self.move_towards_measurement(other, rtt);
        self.update_adjustment(other, rtt);
        self.apply_gravity();
        if !self.coordinate.is_valid() {
            self.resets += 1;
            self.coordinate = Coordinate::default();
        }
        Ok(&self.coordinate)
    }

    /// The median of the last few samples to this node.
    fn filtered_latency(&mut self, node: &str, rtt: f64) -> f64 {
        let samples = self.latency_samples.entry(node.to_string()).or_default();
        if samples.len() == LATENCY_FILTER {
            samples.pop_front();
        }
        samples.push_back(rtt);
        let mut sorted: Vec<f64> = samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    /// Vivaldi's spring step: the more confident we are relative to the other node, the
    /// less we move; the error estimate tracks how wrong the prediction was.
    fn move_towards_measurement(&mut self, other: &Coordinate, rtt: f64) {
        let rtt = rtt.max(ZERO);
        let predicted = self.coordinate.seconds_to(other);
        let wrongness = (predicted - rtt).abs() / rtt;
        let total_error = (self.coordinate.error + other.error).max(ZERO);
        let weight = self.coordinate.error / total_error;
        self.coordinate.error = (ERROR_GAIN * weight * wrongness
            + self.coordinate.error * (1.0 - ERROR_GAIN * weight))
            .min(ERROR_MAX);
        let force = POSITION_GAIN * weight * (rtt - predicted);
        self.coordinate = self.coordinate.pushed(force, other, &mut self.rng);
    }

    /// What the geometry cannot express (a slow host, an asymmetric path) goes into the
    /// adjustment: half the mean residual over the window, shared between both ends.
    fn update_adjustment(&mut self, other: &Coordinate, rtt: f64) {
        if self.adjustment_samples.len() == ADJUSTMENT_WINDOW {
            self.adjustment_samples.pop_front();
        }
        self.adjustment_samples
            .push_back(rtt - self.coordinate.raw_distance_to(other));
        let sum: f64 = self.adjustment_samples.iter().sum();
        self.coordinate.adjustment = sum / (2.0 * ADJUSTMENT_WINDOW as f64);
    }

    fn apply_gravity(&mut self) {
        let distance = self.origin.seconds_to(&self.coordinate);
        let force = -(distance / GRAVITY_RHO).powi(2);
        self.coordinate = self.coordinate.pushed(force, &self.origin, &mut self.rng);
    }
}

fn difference(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

fn magnitude(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The unit vector pointing from `from` to `to`, and their distance. Two nodes at the same
/// spot (every node at start) get a random direction, so they can push each other apart.
fn unit_vector_from(from: &[f64], to: &[f64], rng: &mut StdRng) -> (Vec<f64>, f64) {
    let direction = difference(to, from);
    let length = magnitude(&direction);
    if length > ZERO {
        return (direction.iter().map(|x| x / length).collect(), length);
    }
    let random: Vec<f64> = (0..direction.len())
        .map(|_| rng.random::<f64>() - 0.5)
        .collect();
    let random_length = magnitude(&random);
    if random_length > ZERO {
        return (random.iter().map(|x| x / random_length).collect(), 0.0);
    }
    let mut axis = vec![0.0; direction.len()];
    axis[0] = 1.0;
    (axis, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: f64) -> Duration {
        Duration::from_secs_f64(millis / 1000.0)
    }

    fn at(vec: [f64; DIMENSIONS], height: f64, adjustment: f64) -> Coordinate {
        Coordinate {
            adjustment,
            error: 0.5,
            height,
            vec: vec.to_vec(),
        }
    }

    #[test]
    fn distance_is_euclidean_plus_heights_plus_positive_adjustments() {
        let a = at([3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 0.5, 0.0);
        let b = at([0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 0.25, 0.0);
        assert_eq!(a.distance_to(&b), Duration::from_secs_f64(5.75));
        let adjusted = Coordinate {
            adjustment: 0.25,
            ..b.clone()
        };
        assert_eq!(a.distance_to(&adjusted), Duration::from_secs_f64(6.0));
        // an adjustment that would make the distance negative is ignored
        let negative = Coordinate {
            adjustment: -10.0,
            ..b
        };
        assert_eq!(a.distance_to(&negative), Duration::from_secs_f64(5.75));
    }

    #[test]
    fn invalid_inputs_are_refused() {
        let mut client = VivaldiClient::seeded(1);
        let mut bad = Coordinate::default();
        bad.vec[3] = f64::NAN;
        assert_eq!(
            client.update("b", &bad, ms(1.0)).unwrap_err(),
            UpdateError::InvalidCoordinate
        );
        let short = Coordinate {
            vec: vec![0.0; 3],
            ..Coordinate::default()
        };
        assert!(client.update("b", &short, ms(1.0)).is_err());
        for rtt in [Duration::ZERO, Duration::from_secs(11)] {
            assert_eq!(
                client.update("b", &Coordinate::default(), rtt).unwrap_err(),
                UpdateError::RttOutOfRange(rtt)
            );
        }
        assert_eq!(client.coordinate(), &Coordinate::default());
    }

    #[test]
    fn the_latency_filter_ignores_one_outlier() {
        let mut client = VivaldiClient::seeded(1);
        for rtt in [0.010, 0.010, 5.0] {
            assert_eq!(client.filtered_latency("b", rtt), 0.010);
        }
    }

    /// Three nodes exchanging the RTTs of a triangle (10, 20 and 25 ms): after enough
    /// rounds each pair's estimate is within a few percent of its real RTT, and the
    /// error estimates have dropped from the start's 1.5.
    #[test]
    fn three_nodes_converge_on_a_triangle() {
        let names = ["a", "b", "c"];
        let rtt = |i: usize, j: usize| match (i.min(j), i.max(j)) {
            (0, 1) => 10.0,
            (0, 2) => 20.0,
            (1, 2) => 25.0,
            _ => unreachable!(),
        };
        let mut clients: Vec<VivaldiClient> = (0..3).map(VivaldiClient::seeded).collect();
        for round in 0..2000 {
            let i = round % 3;
            let j = (i + 1 + (round / 3) % 2) % 3;
            let other = clients[j].coordinate().clone();
            clients[i].update(names[j], &other, ms(rtt(i, j))).unwrap();
        }
        for i in 0..3 {
            for j in (i + 1)..3 {
                let estimate = clients[i].coordinate().distance_to(clients[j].coordinate());
                let real = rtt(i, j);
                let estimate_ms = estimate.as_secs_f64() * 1000.0;
                assert!(
                    (estimate_ms - real).abs() < 0.05 * real,
                    "{} <-> {}: estimated {estimate_ms:.3} ms, real {real} ms",
                    names[i],
                    names[j]
                );
            }
            assert!(clients[i].coordinate().error < 0.5);
            assert_eq!(clients[i].resets(), 0);
        }
    }

    #[test]
    fn a_blown_up_coordinate_starts_over() {
        let mut client = VivaldiClient::seeded(1);
        client.coordinate.vec[0] = f64::MAX;
        client.coordinate.vec[1] = f64::MAX;
        let far = at([-f64::MAX, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1.0, 0.0);
        let _ = client.update("b", &far, ms(1.0));
        assert_eq!(client.resets(), 1);
        assert_eq!(client.coordinate(), &Coordinate::default());
    }
}
