//! A simulated cluster: members that start (joining through a few seeds, re-announcing
//! as the agent's join does), crash and restart, are cut off and paused, send user events,
//! queries and key operations; the driver's loop for every member's [`Core`] (datagrams
//! in, outputs out, one wake-up at its next deadline), and checks of what every running
//! member's table says.
//!
//! [`Core`]: musubi_gossip::core::Core

use crate::checks::{QueryId, Reports};
use crate::member::Member;
use crate::network::{Happening, World};
use musubi_gossip::core::{Event, Output, Transport};
use musubi_gossip::key_queries::{KeyOperation, KeyTally};
use musubi_gossip::keyring::Keyring;
use musubi_gossip::keys::GossipKeys;
use musubi_gossip::membership::MemberStatus;
use musubi_gossip::query::QueryParams;
use rand_foca::rngs::StdRng;
use rand_foca::seq::index;
use rand_foca::{RngExt, SeedableRng};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Members everyone else joins through, as `-join`/`-retry-join` name a few.
const JOIN_SEEDS: usize = 3;
/// A joining agent re-announces this often until someone answers (node.rs's join).
const REANNOUNCE_EVERY: Duration = Duration::from_millis(500);
/// How often starts and announces that are due happen.
const JOIN_TICK: Duration = Duration::from_millis(50);
/// How often `run_until` looks at every member's table.
const CHECK_EVERY: Duration = Duration::from_secs(1);

pub struct Simulation {
    pub world: World,
    members: Vec<Member>,
    /// Members started but not yet answered by anyone, and when they next announce.
    joining: Vec<Option<Duration>>,
    next_join_tick: Duration,
    /// The cores' clock reads `epoch` plus the simulation's time.
    epoch: Instant,
    /// What the members reported: user events, query answers.
    pub reports: Reports,
}

/// How long a phase took in cluster time: until every member was done, and until all but
/// 1% were (the tail and the bulk of the cluster behave differently).
#[derive(Debug)]
pub struct PhaseTime {
    pub all: Duration,
    pub most: Duration,
}

impl Simulation {
    /// `size` members gossiping in the clear.
    pub fn new(seed: u64, size: usize) -> Self {
        Self::with_keys(seed, size, None)
    }

    /// `size` members that all start with `ring` in their keyring file.
    pub fn with_keys(seed: u64, size: usize, ring: Option<Keyring>) -> Self {
        assert!(size > JOIN_SEEDS && size <= 65_536);
        let members = (0..size)
            .map(|i| {
                let keys = GossipKeys::new(ring.clone(), None);
                Member::new(name_of(i), address_of(i), keys)
            })
            .collect();
        Simulation {
            world: World::new(seed),
            members,
            joining: vec![None; size],
            next_join_tick: Duration::ZERO,
            // Only differences of instants matter to a core: any base replays alike.
            epoch: Instant::now(),
            reports: Reports::default(),
        }
    }

    /// The members send their datagrams uncompressed (`-disable-compression`).
    pub fn without_compression(mut self) -> Self {
        for member in &mut self.members {
            member.compress = false;
        }
        self
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// Member `i` starts `after` from now, with a start time later than any earlier
    /// life's; it joins through one of the seeds (the very first member starts alone, as
    /// the first agent of a cluster does).
    pub fn start_at(&mut self, i: usize, after: Duration) {
        self.joining[i] = Some(self.world.now + after);
    }

    /// kill -9 of a random `fraction` of the members; returns which.
    pub fn crash_some(&mut self, fraction: f64) -> Vec<usize> {
        let crashed = self.pick(fraction);
        for &i in &crashed {
            self.crash(i);
        }
        crashed
    }

    /// kill -9 of member `i`.
    pub fn crash(&mut self, i: usize) {
        self.members[i].crash();
        self.joining[i] = None;
    }

    /// Cuts a random `fraction` of the members off from the rest for `lasting` (a rack
    /// losing its uplink); returns which.
    pub fn cut_off_some(&mut self, fraction: f64, lasting: Duration) -> Vec<usize> {
        let cut_off = self.pick(fraction);
        let mut group_of = vec![0; self.members.len()];
        for &i in &cut_off {
            group_of[i] = 1;
        }
        self.world.partition(group_of, lasting);
        cut_off
    }

    /// Stops a random `fraction` of the members for `lasting` each (SIGSTOP, then
    /// SIGCONT); returns which.
    pub fn pause_some(&mut self, fraction: f64, lasting: Duration) -> Vec<usize> {
        let paused = self.pick(fraction);
        for &i in &paused {
            self.world.pause(i, lasting);
        }
        paused
    }

    /// A random `fraction` of the members, in order.
    fn pick(&mut self, fraction: f64) -> Vec<usize> {
        let count = (self.members.len() as f64 * fraction) as usize;
        let mut picked = index::sample(&mut self.world.rng, self.members.len(), count).into_vec();
        picked.sort_unstable();
        picked
    }

    /// `serf event NAME` on member `i` (no payload, not coalesced).
    pub fn send_user_event(&mut self, i: usize, name: &str) {
        let now = self.instant();
        self.core(i)
            .send_user_event(name.to_string(), Vec::new(), false, now)
            .expect("a small event is always sent");
        self.settle(i);
    }

    /// `serf query` on member `i`; every member's handler answers with its own name.
    pub fn send_query(&mut self, i: usize, params: QueryParams) -> QueryId {
        let id = self.open_query(i, params);
        self.settle(i);
        id
    }

    /// `serf keys -install/-use/-remove KEY` on member `i`, through Serf's `_serf_*-key`
    /// query as the agent sends it; the answers are added up in `reports.key_tallies`.
    pub fn key_operation(&mut self, i: usize, op: KeyOperation, key: &str) -> QueryId {
        let params = op.query(key).expect("a valid base64 key");
        let alive = self.core(i).alive_count();
        let id = self.open_query(i, params);
        self.reports
            .key_tallies
            .insert(id, KeyTally::new(op, alive));
        self.settle(i);
        id
    }

    /// Member `i` sends a query; nothing it outputs is taken yet.
    fn open_query(&mut self, i: usize, params: QueryParams) -> QueryId {
        let now = self.instant();
        let ltime = self
            .core(i)
            .send_query(params, now)
            .expect("a small query is always sent");
        QueryId { asker: i, ltime }
    }

    /// Runs until no member `is_behind` (looked at every `CHECK_EVERY`); panics with
    /// `what` when `bound` of cluster time passes first. Only the members still behind at
    /// the last look are looked at again (a full look at 1,000 tables every second would
    /// cost more than the gossip), and a full look confirms the end.
    pub fn run_until(
        &mut self,
        bound: Duration,
        what: &str,
        is_behind: impl Fn(&Self, usize) -> bool,
    ) -> PhaseTime {
        let start = self.world.now;
        let mut most = None;
        let mut behind: Vec<usize> = (0..self.members.len()).collect();
        loop {
            let until = self.world.now + CHECK_EVERY;
            self.run_to(until);
            behind.retain(|&i| is_behind(self, i));
            if behind.is_empty() {
                behind = (0..self.members.len())
                    .filter(|&i| is_behind(self, i))
                    .collect();
            }
            let elapsed = self.world.now - start;
            if behind.len() * 100 <= self.members.len() {
                most.get_or_insert(elapsed);
            }
            if behind.is_empty() {
                return PhaseTime {
                    all: elapsed,
                    most: most.unwrap_or(elapsed),
                };
            }
            assert!(
                elapsed < bound,
                "{what}: not after {bound:?} of cluster time; {} members are not there yet, e.g. {}",
                behind.len(),
                self.members[behind[0]].name
            );
        }
    }

    /// Member `i` is not running yet, or its table does not list every member alive.
    pub fn behind_on_alive(&self, i: usize) -> bool {
        self.members[i]
            .core
            .as_ref()
            .is_none_or(|core| core.alive_count() != self.members.len())
    }

    /// Member `i` is running and its table does not list each of `crashed` as failed.
    pub fn behind_on_failed(&self, i: usize, crashed: &[usize]) -> bool {
        self.members[i].core.as_ref().is_some_and(|core| {
            !crashed.iter().all(|&c| {
                core.member(&self.members[c].name)
                    .is_some_and(|record| record.status == MemberStatus::Failed)
            })
        })
    }

    /// Plays every happening for `lasting` of cluster time.
    pub fn run_for(&mut self, lasting: Duration) {
        self.run_to(self.world.now + lasting);
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
                Some(Happening::Datagram { from, to, data }) => self.deliver(from, to, &data),
                Some(Happening::Wake { member, life }) => self.wake(member, life),
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
                // ms granularity, and later than any renewal (+1 each) of an earlier life
                let started_ms = 1 + now.as_millis() as u64 * 1_000;
                let instant = self.instant();
                self.members[i].start(started_ms, rng, instant);
            }
            let alone = self.members.iter().filter(|m| m.is_up()).count() == 1;
            // The other seeds join the first member (which joins the second when it comes
            // back from a crash): seeds joining each other in a ring could each be answered
            // by their own joiners first and stay apart, two clusters for good.
            let seed = match i % JOIN_SEEDS {
                _ if i == 0 => 1,
                own if own == i => 0,
                other => other,
            };
            let seed_name = &self.members[seed].name;
            let core = self.members[i].core.as_ref().expect("just started");
            // As `NodeHandle::join`: done once the member joined through is seen alive.
            let seen = core
                .member(seed_name)
                .is_some_and(|record| record.status == MemberStatus::Alive);
            if alone || seen {
                self.joining[i] = None;
            } else {
                let instant = self.instant();
                self.core(i).announce(&[address_of(seed)], instant);
                self.joining[i] = Some(now + REANNOUNCE_EVERY);
            }
            self.settle(i);
        }
    }

    fn deliver(&mut self, from: usize, to: usize, data: &[u8]) {
        let now = self.instant();
        let Some(core) = self.members[to].core.as_mut() else {
            return;
        };
        core.handle_datagram(data, address_of(from), now);
        self.settle(to);
    }

    /// The wake-up member `i`'s core asked for, unless a later one replaced it or the
    /// member has restarted since.
    fn wake(&mut self, i: usize, life: u32) {
        let member = &mut self.members[i];
        let due = member.wake_at.is_some_and(|at| at <= self.world.now);
        if member.life != life || !due || !member.is_up() {
            return;
        }
        member.wake_at = None;
        let now = self.instant();
        self.core(i).tick(now);
        self.settle(i);
    }

    /// The driver's part after every input to member `i`'s core: its datagrams to the
    /// network, its events to the reports (a query to the member's handler, which answers
    /// at once with the member's name), and a wake-up at its next deadline.
    fn settle(&mut self, i: usize) {
        let life = self.members[i].life;
        loop {
            let mut to_answer = Vec::new();
            for output in self.core(i).take_outputs() {
                match output {
                    Output::Send {
                        to,
                        datagram,
                        transport: Transport::Udp,
                    } => self.world.send(i, index_of(to), datagram),
                    Output::Send {
                        to,
                        datagram,
                        transport: Transport::Stream,
                    } => self.world.send_reliably(i, index_of(to), datagram),
                    Output::Event(event) => {
                        // member events follow from the datagrams, which the history has
                        if !matches!(event, Event::Member { .. }) {
                            self.world.record((i, format!("{event:?}")));
                        }
                        to_answer.extend(self.reports.take(i, life, event, index_of_name));
                    }
                }
            }
            if to_answer.is_empty() {
                break;
            }
            let now = self.instant();
            let name = self.members[i].name.clone().into_bytes();
            for query in to_answer {
                self.core(i)
                    .respond(&query, name.clone(), now)
                    .expect("a query is answered once, in time");
            }
        }
        let deadline = self.core(i).next_deadline();
        let at = deadline.saturating_duration_since(self.epoch);
        let member = &mut self.members[i];
        if member.wake_at.is_none_or(|set| at < set) {
            member.wake_at = Some(at);
            let after = at.saturating_sub(self.world.now);
            self.world
                .schedule(after, Happening::Wake { member: i, life });
        }
    }

    fn core(&mut self, i: usize) -> &mut musubi_gossip::core::Core {
        self.members[i].core.as_mut().expect("a running member")
    }

    /// The cores' clock now.
    fn instant(&self) -> Instant {
        self.epoch + self.world.now
    }
}

fn name_of(i: usize) -> String {
    format!("m{i:05}")
}

/// The index of the member named `name` (see [`name_of`]).
fn index_of_name(name: &str) -> usize {
    name[1..].parse().expect("a simulated member's name")
}

/// Member i gossips at 10.0.(i / 256).(i % 256):7946.
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
