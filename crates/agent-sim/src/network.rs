//! The simulated world's time and wire: one queue of everything that will happen (a
//! datagram arriving, a foca timer firing, a push-pull interval ending), ordered by
//! virtual time. Datagrams are lost with the seed's probability and arrive after a random
//! latency, so reordering happens too (stream transport messages are never lost); a member that is down receives nothing, and timers it set before going down never
//! fire in its next life (each life has its own number).

use foca::Timer;
use musubi_gossip::identity::NodeId;
use rand_foca::rngs::StdRng;
use rand_foca::{RngExt, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// The network's weather for one seed.
#[derive(Clone, Copy, Debug)]
pub struct Weather {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    pub min_latency: Duration,
    pub max_latency: Duration,
}

impl Weather {
    /// LAN-like weather that varies with the seed: up to 5% loss, up to 20 ms latency.
    pub fn for_seed(rng: &mut StdRng) -> Self {
        let min_latency = Duration::from_micros(rng.random_range(100..2_000));
        Weather {
            loss: rng.random_range(0.0..0.05),
            min_latency,
            max_latency: min_latency + Duration::from_micros(rng.random_range(0..18_000)),
        }
    }
}

pub enum Happening {
    Datagram {
        to: usize,
        data: Vec<u8>,
    },
    Timer {
        member: usize,
        life: u32,
        timer: Timer<NodeId>,
    },
    /// The member's push-pull interval has passed (in that life).
    PushPull {
        member: usize,
        life: u32,
    },
    /// The member's next held suspicion may be due (Lifeguard's deadline, in that life).
    SuspicionDeadline {
        member: usize,
        life: u32,
    },
}

/// Ordered by time, then by the order of scheduling (so equal times replay identically).
struct Scheduled {
    at: Duration,
    order: u64,
    what: Happening,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

pub struct World {
    pub now: Duration,
    queue: BinaryHeap<Reverse<Scheduled>>,
    order: u64,
    weather: Weather,
    pub rng: StdRng,
    pub sent: u64,
    pub lost: u64,
}

impl World {
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let weather = Weather::for_seed(&mut rng);
        World {
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            order: 0,
            weather,
            rng,
            sent: 0,
            lost: 0,
        }
    }

    pub fn weather(&self) -> Weather {
        self.weather
    }

    pub fn send(&mut self, to: usize, data: Vec<u8>) {
        self.sent += 1;
        if self.rng.random_bool(self.weather.loss) {
            self.lost += 1;
            return;
        }
        let latency = self
            .rng
            .random_range(self.weather.min_latency..=self.weather.max_latency);
        self.schedule(latency, Happening::Datagram { to, data });
    }

    /// A message over the stream transport (TCP): it arrives, after the same latency.
    pub fn send_reliably(&mut self, to: usize, data: Vec<u8>) {
        self.sent += 1;
        let latency = self
            .rng
            .random_range(self.weather.min_latency..=self.weather.max_latency);
        self.schedule(latency, Happening::Datagram { to, data });
    }

    pub fn schedule(&mut self, after: Duration, what: Happening) {
        self.order += 1;
        self.queue.push(Reverse(Scheduled {
            at: self.now + after,
            order: self.order,
            what,
        }));
    }

    /// The next happening at or before `until`, advancing the clock to it; `None` (and
    /// the clock at `until`) when nothing is due by then.
    pub fn next_until(&mut self, until: Duration) -> Option<Happening> {
        match self.queue.peek() {
            Some(Reverse(next)) if next.at <= until => {
                let Reverse(next) = self.queue.pop().expect("peeked");
                self.now = next.at;
                Some(next.what)
            }
            _ => {
                self.now = until;
                None
            }
        }
    }
}
