//! The fault schedule: everything that happens to a cluster during a run, drawn from the
//! seed before the run starts, so a failing seed replays the same schedule.

use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::time::Duration;

/// One thing the schedule does to the cluster; clients keep writing throughout.
#[derive(Clone, Debug)]
pub enum Step {
    /// Let the cluster run as it is for a while.
    Run(Duration),
    /// Change how lossy and slow the network is.
    Weather {
        loss_permille: u32,
        duplicate_permille: u32,
        max_delay: Duration,
    },
    /// Cut every link between `side` and the other members.
    Partition {
        side: BTreeSet<u64>,
    },
    /// Reconnect every link.
    Heal,
    Crash(u64),
    Restart(u64),
}

#[derive(Debug)]
pub struct Schedule {
    pub size: u64,
    pub steps: Vec<Step>,
}

/// Steps per run: with `Run` steps of up to 400 ms, the faulty phase lasts a few seconds.
const STEPS: usize = 24;

impl Schedule {
    /// A cluster of 3 or 5 members and a sequence of faults. At most a minority is down at
    /// any time, so clients can make progress between partitions.
    pub fn generate(seed: u64) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed);
        let size = if rng.random_bool(0.5) { 3 } else { 5 };
        let ids = 1..=size;
        let mut down = BTreeSet::new();
        let mut steps = Vec::with_capacity(STEPS);
        while steps.len() < STEPS {
            let step = match rng.random_range(0..10) {
                0..=2 => Step::Run(Duration::from_millis(rng.random_range(50..400))),
                3..=4 => Step::Weather {
                    loss_permille: rng.random_range(0..250),
                    duplicate_permille: rng.random_range(0..100),
                    max_delay: Duration::from_millis(rng.random_range(0..60)),
                },
                5 => {
                    let count = rng.random_range(1..=size / 2);
                    let side = ids.clone().choose_multiple(&mut rng, count as usize);
                    Step::Partition {
                        side: side.into_iter().collect(),
                    }
                }
                6 => Step::Heal,
                7..=8 if (down.len() as u64) < size / 2 => {
                    let id = ids.clone().filter(|id| !down.contains(id)).choose(&mut rng);
                    let id = id.expect("a majority runs");
                    down.insert(id);
                    Step::Crash(id)
                }
                _ => match down.iter().copied().choose(&mut rng) {
                    Some(id) => {
                        down.remove(&id);
                        Step::Restart(id)
                    }
                    None => continue,
                },
            };
            steps.push(step);
        }
        Schedule { size, steps }
    }
}
