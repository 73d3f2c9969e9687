//! The simulated world's time and wire: one queue of everything that will happen (a
//! datagram arriving, a member's core asking to be woken), ordered by virtual time, and the faults the seed and the scenario put on it:
//!
//! - **loss**: a datagram is dropped with the seed's probability (stream transport
//!   messages are never lost at random, as TCP retransmits);
//! - **delay**: every message arrives after a random latency, so reordering happens too,
//!   and now and then after a spike of up to a second (a congested link, a busy host);
//! - **partitions**: members in different groups of a [`Partition`] cannot reach each
//!   other, over UDP or TCP, until it heals; a message is cut if it arrives while its
//!   sender and receiver are apart;
//! - **pauses**: a paused member (SIGSTOP) handles nothing until it resumes; what arrives
//!   meanwhile and its timers that come due wait, and are handled at once, in order,
//!   when it resumes;
//! - **crashes**: a member that is down receives nothing, and wake-ups it asked for
//!   before going down never come in its next life (each life has its own number).
//!
//! All of it draws from the one seeded RNG, and every happening handed out is folded into
//! [`World::history`], so two runs of one seed can be compared in one number.

use rand_foca::rngs::StdRng;
use rand_foca::{RngExt, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// The network's weather for one seed.
#[derive(Clone, Copy, Debug)]
pub struct Weather {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    pub min_latency: Duration,
    pub max_latency: Duration,
    /// Probability that a message is held up by a spike on top of its latency.
    pub spike: f64,
    pub max_spike: Duration,
}

impl Weather {
    /// LAN-like weather that varies with the seed: up to 5% loss, up to 20 ms latency,
    /// and up to 1% of messages delayed by up to 1 s more.
    pub fn for_seed(rng: &mut StdRng) -> Self {
        let min_latency = Duration::from_micros(rng.random_range(100..2_000));
        Weather {
            loss: rng.random_range(0.0..0.05),
            min_latency,
            max_latency: min_latency + Duration::from_micros(rng.random_range(0..18_000)),
            spike: rng.random_range(0.0..0.01),
            max_spike: Duration::from_secs(1),
        }
    }
}

/// A cut of the network into groups that cannot reach each other until `heals_at`.
pub struct Partition {
    /// The group of each member, by index.
    pub group_of: Vec<u8>,
    pub heals_at: Duration,
}

impl Partition {
    fn separates(&self, a: usize, b: usize, now: Duration) -> bool {
        now < self.heals_at && self.group_of[a] != self.group_of[b]
    }
}

pub enum Happening {
    Datagram {
        from: usize,
        to: usize,
        data: Vec<u8>,
    },
    /// The member's core asked to be woken now ([`musubi_gossip::core::Core::next_deadline`]),
    /// in that life.
    Wake { member: usize, life: u32 },
}

impl Happening {
    /// The member it happens to.
    fn member(&self) -> usize {
        match *self {
            Happening::Datagram { to, .. } => to,
            Happening::Wake { member, .. } => member,
        }
    }

    /// What the history keeps of it: its kind, member and life, a datagram's bytes.
    fn fold_into(&self, history: &mut DefaultHasher) {
        match self {
            Happening::Datagram { from, to, data } => (0u8, from, to, data).hash(history),
            Happening::Wake { member, life } => (1u8, member, life).hash(history),
        }
    }
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

/// What the network did to the messages sent so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub sent: u64,
    /// Datagrams dropped by the weather's loss.
    pub lost: u64,
    /// Messages that arrived while a partition kept their ends apart.
    pub cut: u64,
    /// Messages delayed by a spike.
    pub spiked: u64,
}

pub struct World {
    pub now: Duration,
    queue: BinaryHeap<Reverse<Scheduled>>,
    order: u64,
    weather: Weather,
    pub rng: StdRng,
    pub traffic: Traffic,
    partition: Option<Partition>,
    /// Until when each member is paused (members never paused are past its end).
    paused_until: Vec<Duration>,
    history: DefaultHasher,
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
            traffic: Traffic::default(),
            partition: None,
            paused_until: Vec::new(),
            history: DefaultHasher::new(),
        }
    }

    pub fn weather(&self) -> Weather {
        self.weather
    }

    /// A datagram over UDP: lost with the weather's probability, else delayed.
    pub fn send(&mut self, from: usize, to: usize, data: Vec<u8>) {
        if self.rng.random_bool(self.weather.loss) {
            self.traffic.sent += 1;
            self.traffic.lost += 1;
            return;
        }
        self.send_reliably(from, to, data);
    }

    /// A message over the stream transport (TCP): never lost at random, delayed alike.
    pub fn send_reliably(&mut self, from: usize, to: usize, data: Vec<u8>) {
        self.traffic.sent += 1;
        let mut latency = self
            .rng
            .random_range(self.weather.min_latency..=self.weather.max_latency);
        if self.rng.random_bool(self.weather.spike) {
            self.traffic.spiked += 1;
            latency += self.weather.max_spike.mul_f64(self.rng.random::<f64>());
        }
        self.schedule(latency, Happening::Datagram { from, to, data });
    }

    pub fn schedule(&mut self, after: Duration, what: Happening) {
        self.schedule_at(self.now + after, what);
    }

    fn schedule_at(&mut self, at: Duration, what: Happening) {
        self.order += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            order: self.order,
            what,
        }));
    }

    /// Cuts the network into `group_of`'s groups (one per member) for `lasting`; a cut
    /// in place is replaced.
    pub fn partition(&mut self, group_of: Vec<u8>, lasting: Duration) {
        self.partition = Some(Partition {
            group_of,
            heals_at: self.now + lasting,
        });
    }

    /// Member `i` stops for `lasting`, as under SIGSTOP.
    pub fn pause(&mut self, i: usize, lasting: Duration) {
        if self.paused_until.len() <= i {
            self.paused_until.resize(i + 1, Duration::ZERO);
        }
        self.paused_until[i] = self.now + lasting;
    }

    /// A number that two runs share exactly when they handed out the same happenings at
    /// the same times, in the same order, plus whatever the caller [`World::record`]ed.
    pub fn history(&self) -> u64 {
        self.history.finish()
    }

    /// Folds something the caller observed (an event delivered, an answer) into the
    /// history.
    pub fn record(&mut self, what: impl Hash) {
        what.hash(&mut self.history);
    }

    /// The next happening at or before `until`, advancing the clock to it; `None` (and
    /// the clock at `until`) when nothing is due by then. A message its partition cuts is
    /// dropped here; a happening for a paused member waits for the member to resume.
    pub fn next_until(&mut self, until: Duration) -> Option<Happening> {
        loop {
            match self.queue.peek() {
                Some(Reverse(next)) if next.at <= until => {
                    let Reverse(next) = self.queue.pop().expect("peeked");
                    self.now = next.at;
                    let member = next.what.member();
                    if let Some(&resumes) = self.paused_until.get(member)
                        && resumes > self.now
                    {
                        self.schedule_at(resumes, next.what);
                        continue;
                    }
                    if let Happening::Datagram { from, to, .. } = next.what
                        && self
                            .partition
                            .as_ref()
                            .is_some_and(|p| p.separates(from, to, self.now))
                    {
                        self.traffic.cut += 1;
                        continue;
                    }
                    self.now.hash(&mut self.history);
                    next.what.fold_into(&mut self.history);
                    return Some(next.what);
                }
                _ => {
                    self.now = until;
                    return None;
                }
            }
        }
    }
}
