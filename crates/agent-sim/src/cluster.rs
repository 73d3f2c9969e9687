//! A simulated cluster: members that start (joining through a few seeds, re-announcing
//! as the agent's join does), sync by push-pull as the node does, crash and restart, and
//! checks of what every running member's table says.

use crate::member::Member;
use crate::network::{Happening, World};
use foca::{OwnedNotification, Timer};
use musubi_gossip::identity::NodeId;
use musubi_gossip::lifeguard::on_foca::Declared;
use musubi_gossip::membership::MemberStatus;
use musubi_gossip::profile::Profile;
use musubi_gossip::push_pull::{self, StateMessage};
use musubi_gossip::swim;
use musubi_gossip::wire::{self, Datagram};
use rand_foca::rngs::StdRng;
use rand_foca::seq::index;
use rand_foca::{RngExt, SeedableRng};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

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
    /// Every failure a member declared itself (its suspicion's deadline came), in order;
    /// the others learned it by gossip.
    pub declared: Vec<Declared>,
}

/// How long a phase took in cluster time: until every member was done, and until all but
/// 1% were (the tail and the bulk of the cluster behave differently).
#[derive(Debug)]
pub struct PhaseTime {
    pub all: Duration,
    pub most: Duration,
}

impl Simulation {
    pub fn new(seed: u64, size: usize) -> Self {
        assert!(size > JOIN_SEEDS && size <= 65_536);
        let members = (0..size)
            .map(|i| Member::new(format!("m{i:05}"), address_of(i)))
            .collect();
        Simulation {
            world: World::new(seed),
            members,
            joining: vec![None; size],
            next_join_tick: Duration::ZERO,
            declared: Vec::new(),
        }
    }

    pub fn size(&self) -> usize {
        self.members.len()
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
            self.members[i].crash();
            self.joining[i] = None;
        }
        crashed
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
    /// Reads the alive count each member keeps; `recount` checks those against the tables.
    pub fn behind_on_alive(&self, i: usize) -> bool {
        self.members[i]
            .running
            .as_ref()
            .is_none_or(|r| r.alive != self.members.len())
    }

    /// Every running member's kept alive count is the number of alive records in its
    /// table (panics otherwise: the simulation's own bookkeeping would be wrong).
    pub fn recount(&self) {
        for member in &self.members {
            if let Some(running) = &member.running {
                assert_eq!(
                    running.alive,
                    running.table.alive_count(),
                    "{}'s alive count drifted from its table",
                    member.name
                );
            }
        }
    }

    /// Member `i` is running and its table does not list each of `crashed` as failed.
    pub fn behind_on_failed(&self, i: usize, crashed: &[usize]) -> bool {
        self.members[i].running.as_ref().is_some_and(|r| {
            !crashed
                .iter()
                .all(|&c| r.status_of(&self.members[c].name) == Some(MemberStatus::Failed))
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
                Some(Happening::Timer {
                    member,
                    life,
                    timer,
                }) => self.fire(member, life, timer),
                Some(Happening::PushPull { member, life }) => self.push_pull(member, life),
                Some(Happening::SuspicionDeadline { member, life }) => {
                    self.declare_due_suspects(member, life)
                }
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
                self.members[i].start(started_ms, rng);
                self.first_push_pull(i);
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
            let running = self.members[i].running.as_mut().expect("just started");
            // As `NodeHandle::join`: done once the member joined through is seen alive.
            if alone || running.table.is_alive_at(address_of(seed)) {
                self.joining[i] = None;
                continue;
            }
            running
                .foca
                .announce(NodeId::unknown_at(address_of(seed)), &mut running.runtime)
                .expect("announcing to an address is always possible");
            self.joining[i] = Some(now + REANNOUNCE_EVERY);
            self.drain(i);
        }
    }

    fn deliver(&mut self, from: usize, to: usize, data: &[u8]) {
        let Some(running) = self.members[to].running.as_mut() else {
            return;
        };
        match wire::decode(data) {
            Ok(Datagram::Foca(packet)) => {
                // foca refuses what it cannot use (e.g. a packet for an earlier life), as
                // the node task does with a log line
                let _ = swim::receive(
                    &mut running.foca,
                    packet,
                    &mut running.runtime,
                    &running.urgent,
                );
            }
            Ok(Datagram::PushPull(body)) => {
                let mut state = StateMessage::decode(body).expect("the simulation's own state");
                // as the node: what foca refuses is logged and dropped
                let _ = state.merge_members(&mut running.foca, &mut running.runtime);
                if !state.reply {
                    self.send_state(to, from, true);
                }
            }
            other => {
                panic!("the simulation only sends foca and push-pull datagrams, got {other:?}")
            }
        }
        self.drain(to);
    }

    /// The node's push-pull tick: a sync with a random alive member, then the next tick
    /// after the profile's interval for the current size.
    fn push_pull(&mut self, i: usize, life: u32) {
        if self.members[i].life != life || !self.members[i].is_up() {
            return;
        }
        self.sync_with_random_member(i);
        let interval = self.push_pull_interval(i);
        self.schedule_push_pull(i, interval);
    }

    /// As the node: the first sync at a random point of the first interval.
    fn first_push_pull(&mut self, i: usize) {
        let stagger = self
            .push_pull_interval(i)
            .mul_f64(self.world.rng.random::<f64>());
        self.schedule_push_pull(i, stagger);
    }

    fn push_pull_interval(&self, i: usize) -> Duration {
        let running = self.members[i].running.as_ref().expect("a running member");
        Profile::Lan.push_pull_interval(running.alive)
    }

    fn schedule_push_pull(&mut self, i: usize, after: Duration) {
        let life = self.members[i].life;
        self.world
            .schedule(after, Happening::PushPull { member: i, life });
    }

    fn sync_with_random_member(&mut self, i: usize) {
        let member = &self.members[i];
        let running = member.running.as_ref().expect("a running member syncs");
        if let Some(partner) = push_pull::partner(&running.table, &member.name, &mut self.world.rng)
        {
            self.send_state(i, index_of(partner), false);
        }
    }

    /// Member `from`'s state to `to`, over the stream transport (the simulation's members
    /// neither leave nor send user events).
    fn send_state(&mut self, from: usize, to: usize, reply: bool) {
        let member = &self.members[from];
        let running = member.running.as_ref().expect("a running member sends");
        let (state, _) = StateMessage::build(
            member.addr,
            reply,
            running.foca.iter_membership_state(),
            Vec::new(),
            0,
            Vec::new(),
        );
        self.world.send_reliably(from, to, state.encode());
    }

    fn fire(&mut self, member: usize, life: u32, timer: Timer<NodeId>) {
        if self.members[member].life != life {
            return;
        }
        let Some(running) = self.members[member].running.as_mut() else {
            return;
        };
        running
            .foca
            .handle_timer(timer, &mut running.runtime)
            .expect("foca handles its own timers");
        self.drain(member);
    }

    /// The node's look at its held suspicions when the next one's deadline comes: those
    /// due go back to foca, and the members it declares failed are recorded.
    fn declare_due_suspects(&mut self, member: usize, life: u32) {
        let now = self.world.now;
        if self.members[member].life != life {
            return;
        }
        let Some(running) = self.members[member].running.as_mut() else {
            return;
        };
        if running.suspicion_check.is_some_and(|at| at <= now) {
            running.suspicion_check = None;
        }
        let due =
            running
                .lifeguard
                .declare_due_suspects(&mut running.foca, &mut running.runtime, now);
        assert!(due.errors.is_empty(), "foca handles its own timers");
        self.declared.extend(due.declared);
        self.drain(member);
    }

    /// foca's output, as the node task drains it: datagrams (their headers to Lifeguard),
    /// timers (through Lifeguard, which holds the suspicions'), notifications; then the
    /// confirmations foca's broadcast handler took in, and a look at the held suspicions
    /// when their next deadline comes.
    fn drain(&mut self, i: usize) {
        let now = self.world.now;
        let life = self.members[i].life;
        let running = self.members[i]
            .running
            .as_mut()
            .expect("draining a running member");
        let mut outgoing = Vec::new();
        while let Some((to, packet)) = running.runtime.to_send() {
            let read = swim::read_outgoing(&packet).expect("foca's own packet decodes");
            if read.empty_gossip {
                continue;
            }
            running.lifeguard.sent(&read.header, now);
            outgoing.push((index_of(to.addr), wire::foca_datagram(&packet)));
        }
        let bounds = Profile::Lan.suspicion_bounds(running.alive);
        let mut timers = Vec::new();
        while let Some((delay, timer)) = running.runtime.to_schedule() {
            timers.extend(running.lifeguard.schedule(delay, timer, bounds, now));
        }
        let mut joined = false;
        while let Some(notification) = running.runtime.to_notify() {
            // as the node: one extra sync at once, with the member just joined through
            joined |= matches!(notification, OwnedNotification::Active);
            running.apply(notification, now);
        }
        while let Some(confirmation) = running.confirmations.pop() {
            running
                .lifeguard
                .confirm(confirmation.suspect, &confirmation.by, now);
        }
        // The deadline only comes forward between looks (a new suspicion, a confirmation);
        // a look at a time since moved later finds nothing due and is harmless.
        let deadline = running.lifeguard.next_deadline();
        let check = deadline.filter(|&at| running.suspicion_check.is_none_or(|set| at < set));
        if let Some(at) = check {
            running.suspicion_check = Some(at);
        }
        for (to, datagram) in outgoing {
            self.world.send(i, to, datagram);
        }
        if joined {
            self.sync_with_random_member(i);
        }
        for (after, timer) in timers {
            self.world.schedule(
                after,
                Happening::Timer {
                    member: i,
                    life,
                    timer,
                },
            );
        }
        if let Some(at) = check {
            self.world.schedule(
                at.saturating_sub(now),
                Happening::SuspicionDeadline { member: i, life },
            );
        }
    }
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
