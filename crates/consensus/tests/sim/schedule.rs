//! The fault schedule: everything that happens to a cluster during a run, drawn from the
//! seed before the run starts, so a failing seed replays the same schedule.

use rand::rngs::StdRng;
use rand::seq::IteratorRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::time::Duration;

/// The member a step aims at, resolved when the step is played, so that faults can hit
/// whoever leads by then. Given the same history, it resolves to the same member.
#[derive(Clone, Copy, Debug)]
pub enum Pick {
    /// The member that leads now (if none does, the first running member).
    Leader,
    /// The n-th running member, counting round the running members.
    Nth(usize),
}

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
    /// Cut every link between `side` and the other members (and no other link).
    Partition {
        side: BTreeSet<u64>,
    },
    /// Cut every link of one member.
    Isolate(Pick),
    /// Reconnect every link.
    Heal,
    Crash(Pick),
    /// Restart the member that has been down longest.
    Restart,
}

#[derive(Debug)]
pub struct Schedule {
    pub size: u64,
    pub steps: Vec<Step>,
}

/// Steps per run: with `Run` steps of up to 400 ms, the faulty phase lasts a few seconds.
const STEPS: usize = 36;

impl Schedule {
    /// A cluster of 3 or 5 members and a sequence of faults. At most a minority is down at
    /// any time, so clients can make progress between partitions.
    pub fn generate(seed: u64) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed);
        let size = if rng.random_bool(0.5) { 3 } else { 5 };
        let pick = |rng: &mut StdRng| {
            if rng.random_bool(0.5) {
                Pick::Leader
            } else {
                Pick::Nth(rng.random_range(0..size as usize))
            }
        };
        let mut down = 0;
        let mut steps = Vec::with_capacity(STEPS);
        while steps.len() < STEPS {
            let step = match rng.random_range(0..13) {
                0..=3 => Step::Run(Duration::from_millis(rng.random_range(50..400))),
                4..=5 => Step::Weather {
                    loss_permille: rng.random_range(0..250),
                    duplicate_permille: rng.random_range(0..100),
                    max_delay: Duration::from_millis(rng.random_range(0..60)),
                },
                6 => {
                    let count = rng.random_range(1..=size / 2);
                    let side = (1..=size).choose_multiple(&mut rng, count as usize);
                    Step::Partition {
                        side: side.into_iter().collect(),
                    }
                }
                7 => Step::Isolate(pick(&mut rng)),
                8..=9 => Step::Heal,
                10..=11 if down < size / 2 => {
                    down += 1;
                    Step::Crash(pick(&mut rng))
                }
                _ if down > 0 => {
                    down -= 1;
                    Step::Restart
                }
                _ => continue,
            };
            steps.push(step);
        }
        Schedule { size, steps }
    }
}
