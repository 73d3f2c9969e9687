//! A seeded in-process simulation of a 1,000-member agent cluster.
//!
//! Every member is foca with the agent's own identity, LAN config and member table
//! (`member`), exchanging the agent's real datagrams (`wire`) over a simulated network
//! with loss and latency and a virtual clock (`network`), so a run of minutes of cluster
//! time takes seconds and replays exactly from its seed. A seed runs three acts:
//! 1. join: every member joins through one of a few seeds; the cluster must converge
//!    (every member sees every other alive) within `JOIN_BOUND`;
//! 2. failure: 10% of the members crash at once; every live member must mark each of
//!    them failed within `DETECTION_BOUND`;
//! 3. restart: they come back with new start times and join again; every member must see
//!    every other alive within `JOIN_BOUND`.
//!
//! Environment (as crates/consensus/tests/sim):
//! - `MUSUBI_SIM_SEEDS=N` runs seeds `1..=N` (default 1: one seed takes about a minute
//!   in a debug build);
//! - `MUSUBI_SIM_SEED=S` runs seed `S` alone, to replay a failure;
//! - `MUSUBI_SIM_MEMBERS=N` changes the cluster size (default 1000).

mod member;
mod network;

use foca::Timer;
use member::Member;
use musubi_agent::identity::NodeId;
use musubi_agent::membership::MemberStatus;
use musubi_agent::wire::{self, Datagram};
use network::{Happening, World};
use rand_foca::rngs::StdRng;
use rand_foca::seq::index;
use rand_foca::{RngExt, SeedableRng};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const DEFAULT_SEEDS: u64 = 1;
const DEFAULT_MEMBERS: usize = 1000;
/// Members everyone else joins through, as `-join`/`-retry-join` name a few.
const JOIN_SEEDS: usize = 3;
/// Joins are spread over this long, as a fleet of agents starting does.
const JOIN_SPREAD: Duration = Duration::from_secs(5);
/// A joining agent re-announces this often until someone answers (node.rs's join).
const REANNOUNCE_EVERY: Duration = Duration::from_millis(500);
/// How often starts and announces that are due happen.
const JOIN_TICK: Duration = Duration::from_millis(50);
/// How often the checks look at every member's table.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Convergence after joins and restarts. Dissemination of 1,000 joins through 1,400-byte
/// packets takes tens of seconds; foca also announces to a random member every 30 s.
const JOIN_BOUND: Duration = Duration::from_secs(1200);
/// LAN timings for 1,000 members: a crashed member is probed within seconds, suspected
/// for log10(1000) × 4 × 1 s = 12 s, and the down notice then spreads by gossip.
const DETECTION_BOUND: Duration = Duration::from_secs(60);
const CRASHED_FRACTION: f64 = 0.10;

#[test]
fn a_thousand_members_converge_after_joins_failures_and_restarts() {
    for seed in seeds() {
        run_seed(seed);
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

fn seeds() -> Vec<u64> {
    match env_number("MUSUBI_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=env_number("MUSUBI_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    }
}

fn run_seed(seed: u64) {
    let size = env_number("MUSUBI_SIM_MEMBERS").map_or(DEFAULT_MEMBERS, |n| n as usize);
    let wall = Instant::now();
    let mut sim = Simulation::new(seed, size);
    eprintln!("seed {seed}: {size} members, {:?}", sim.world.weather());

    for i in 0..size {
        let at = JOIN_SPREAD.mul_f64(i as f64 / size as f64);
        sim.start_at(i, at);
    }
    let converged = sim.run_until(JOIN_BOUND, "every member sees every other alive", |s| {
        s.everyone_sees_everyone_alive()
    });
    eprintln!("seed {seed}: joined and converged after {converged:?}");

    let crashed = sim.crash_some(CRASHED_FRACTION);
    let detected = sim.run_until(DETECTION_BOUND, "every live member sees the crashed failed", |s| {
        s.everyone_sees_failed(&crashed)
    });
    eprintln!("seed {seed}: {} crashed, all marked failed after {detected:?}", crashed.len());

    for &i in &crashed {
        sim.start_at(i, Duration::ZERO);
    }
    let back = sim.run_until(JOIN_BOUND, "every member sees the restarted alive", |s| {
        s.everyone_sees_everyone_alive()
    });
    eprintln!(
        "seed {seed}: restarted, all alive again after {back:?}; {} datagrams ({} lost), {:.1?} wall",
        sim.world.sent,
        sim.world.lost,
        wall.elapsed()
    );
}

struct Simulation {
    world: World,
    members: Vec<Member>,
    /// Members started but not yet answered by anyone, and when they next announce.
    joining: Vec<Option<Duration>>,
    next_join_tick: Duration,
}

impl Simulation {
    fn new(seed: u64, size: usize) -> Self {
        assert!(size > JOIN_SEEDS && size <= 65_536);
        let members = (0..size)
            .map(|i| Member::new(format!("m{i:04}"), address_of(i)))
            .collect();
        Simulation {
            world: World::new(seed),
            members,
            joining: vec![None; size],
            next_join_tick: Duration::ZERO,
        }
    }

    /// Member `i` starts `after` from now; it joins through one of the seeds (the first
    /// seed starts alone, as the cluster's first agent does).
    fn start_at(&mut self, i: usize, after: Duration) {
        self.joining[i] = Some(self.world.now + after);
    }

    fn crash_some(&mut self, fraction: f64) -> Vec<usize> {
        let count = (self.members.len() as f64 * fraction) as usize;
        let mut crashed = index::sample(&mut self.world.rng, self.members.len(), count).into_vec();
        crashed.sort_unstable();
        for &i in &crashed {
            self.members[i].crash();
            self.joining[i] = None;
        }
        crashed
    }

    /// Runs until `done` holds (checked every `CHECK_EVERY`), returning how long that took
    /// in cluster time; panics with `what` when `bound` passes first.
    fn run_until(&mut self, bound: Duration, what: &str, done: impl Fn(&Self) -> bool) -> Duration {
        let start = self.world.now;
        loop {
            let until = self.world.now + CHECK_EVERY;
            self.run_to(until);
            if done(self) {
                return self.world.now - start;
            }
            if (self.world.now - start).as_secs() % 30 == 0 {
                eprintln!("  {:?}: {}", self.world.now - start, self.stragglers());
            }
            assert!(
                self.world.now - start < bound,
                "{what}: not after {bound:?} of cluster time; {}",
                self.stragglers()
            );
        }
    }

    /// Plays every happening up to `until`; starts and announces are looked at every
    /// `JOIN_TICK` (looking at every member after every happening would cost O(n) each).
    fn run_to(&mut self, until: Duration) {
        loop {
            if self.world.now >= self.next_join_tick {
                self.start_and_announce();
                self.next_join_tick = self.world.now + JOIN_TICK;
            }
            match self.world.next_until(until.min(self.next_join_tick)) {
                Some(Happening::Datagram { to, data }) => self.deliver(to, &data),
                Some(Happening::Timer { member, life, timer }) => self.fire(member, life, timer),
                None if self.world.now >= until => return,
                None => {}
            }
        }
    }

    /// Starts the members whose time has come and has those not yet answered announce
    /// (again) to their seed.
    fn start_and_announce(&mut self) {
        let now = self.world.now;
        for i in 0..self.members.len() {
            let Some(due) = self.joining[i] else { continue };
            if due > now {
                continue;
            }
            if !self.members[i].is_up() {
                let rng = StdRng::seed_from_u64(self.world.rng.random());
                // later than any earlier life's identity, renewals included
                let started_ms = 1 + now.as_millis() as u64 * 1_000;
                self.members[i].start(started_ms, rng);
            }
            let alone = self.members.iter().filter(|m| m.is_up()).count() == 1;
            let running = self.members[i].running.as_mut().expect("just started");
            // the first agent of a new cluster has nobody to join; the others stop
            // announcing once someone has answered
            if alone || running.alive > 1 {
                self.joining[i] = None;
                continue;
            }
            let seed = seed_for(i);
            let seed = if seed == i { (i + 1) % JOIN_SEEDS } else { seed };
            running
                .foca
                .announce(NodeId::unknown_at(address_of(seed)), &mut running.runtime)
                .expect("announce");
            self.joining[i] = Some(now + REANNOUNCE_EVERY);
            self.drain(i);
        }
    }

    fn deliver(&mut self, to: usize, data: &[u8]) {
        let Some(running) = self.members[to].running.as_mut() else { return };
        match wire::decode(data) {
            Ok(Datagram::Foca(packet)) => {
                // foca refuses packets it cannot use (e.g. for a previous identity)
                let _ = running.foca.handle_data(packet, &mut running.runtime);
            }
            other => panic!("the simulation only sends foca datagrams, got {other:?}"),
        }
        self.drain(to);
    }

    fn fire(&mut self, member: usize, life: u32, timer: Timer<NodeId>) {
        if self.members[member].life != life {
            return;
        }
        let Some(running) = self.members[member].running.as_mut() else { return };
        running
            .foca
            .handle_timer(timer, &mut running.runtime)
            .expect("foca timer");
        self.drain(member);
    }

    /// foca's output, in the node task's order: datagrams, timers, notifications.
    fn drain(&mut self, i: usize) {
        let life = self.members[i].life;
        let running = self.members[i].running.as_mut().expect("draining a running member");
        let mut outgoing = Vec::new();
        while let Some((to, packet)) = running.runtime.to_send() {
            outgoing.push((index_of(to.addr), wire::foca_datagram(&packet)));
        }
        let mut timers = Vec::new();
        while let Some(timer) = running.runtime.to_schedule() {
            timers.push(timer);
        }
        while let Some(notification) = running.runtime.to_notify() {
            running.apply(notification);
        }
        for (to, datagram) in outgoing {
            self.world.send(to, datagram);
        }
        for (after, timer) in timers {
            self.world.schedule(after, Happening::Timer { member: i, life, timer });
        }
    }

    fn live(&self) -> impl Iterator<Item = &member::Running> {
        self.members.iter().filter_map(|m| m.running.as_ref())
    }

    fn everyone_sees_everyone_alive(&self) -> bool {
        let up = self.members.iter().filter(|m| m.is_up()).count();
        up == self.members.len()
            && self.live().all(|r| r.alive == up)
            && self.live().all(|r| {
                self.members
                    .iter()
                    .all(|m| r.status_of(&m.name) == Some(MemberStatus::Alive))
            })
    }

    fn everyone_sees_failed(&self, crashed: &[usize]) -> bool {
        self.live().all(|r| {
            crashed
                .iter()
                .all(|&i| r.status_of(&self.members[i].name) == Some(MemberStatus::Failed))
        })
    }

    /// For a failure message: how far from done the slowest members are.
    fn stragglers(&self) -> String {
        let up = self.members.iter().filter(|m| m.is_up()).count();
        let mut behind: Vec<(usize, &str)> = self
            .members
            .iter()
            .filter_map(|m| m.running.as_ref().map(|r| (r.alive, m.name.as_str())))
            .filter(|(alive, _)| *alive != up)
            .collect();
        behind.sort_unstable();
        format!(
            "{up} members up; {} see a different alive count, e.g. {:?}",
            behind.len(),
            &behind[..behind.len().min(5)]
        )
    }
}

/// Members join through the first `JOIN_SEEDS`, spread evenly.
fn seed_for(i: usize) -> usize {
    i % JOIN_SEEDS
}

/// Member i gossips at 10.0.(i / 256).(i % 256):7946; foca knows members by address.
fn address_of(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8), 7946))
}

fn index_of(addr: SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(v4) => {
            let [_, _, high, low] = v4.ip().octets();
            usize::from(high) * 256 + usize::from(low)
        }
        SocketAddr::V6(_) => unreachable!("the simulation only uses IPv4 addresses"),
    }
}
