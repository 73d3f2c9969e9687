//! Simulated agents (see the crate docs), each the agent's own `Core`:
//!
//! - 1,000 members join through a few seeds and converge; 10% are cut off from the rest
//!   and 1% paused for longer than a suspicion lasts, while a user event is sent, then
//!   the network heals and every member sees every other alive again and got the event
//!   exactly once; 10% crash and every live member marks them failed; they restart and
//!   every member sees them alive again. Each phase must end within a bound that follows
//!   from SWIM under Lifeguard and from push-pull, and prints how long it took, for all
//!   members and for 99%.
//! - 100 members with encryption: a user event reaches every member once, a query is
//!   answered once by every member, and a key rotation (`serf keys -install`, `-use`,
//!   `-remove`, as Serf's `_serf_*-key` queries) while one member is down leaves gossip
//!   working, and the member that slept through it catches up when it comes back.
//! - 50 members twice with one seed: the same history.
//!
//! The bounds: gossip reaches almost every member within seconds; a member that missed
//! an item learns it by push-pull. Every member syncs its whole state with a random alive
//! member once per push-pull interval (the LAN profile's 30 s, grown as memberlist does by
//! one interval per doubling past 32 members: 180 s at 1,000), and that member knows the
//! item with high probability. So a member learns of a joiner, a restart, a user event or
//! (after the suspicion timeout) a crash within two push-pull intervals plus slack: N
//! enters only through log factors. Members declared failed across a partition find each
//! other again through foca's announces to down members and Serf's reconnect tick.
//!
//! Environment (as crates/consensus/tests/sim):
//! - `MUSUBI_SIM_SEEDS=N` runs seeds `1..=N` (default 1; see docs/agent-proof.md for the
//!   time a seed takes);
//! - `MUSUBI_SIM_SEED=S` runs seed `S` alone, to replay a failure (each run prints its
//!   seed first);
//! - `MUSUBI_SIM_MEMBERS=N` changes the main scenario's cluster size (default 1000).

use musubi_agent_sim::checks::QueryId;
use musubi_agent_sim::cluster::{PhaseTime, Simulation};
use musubi_gossip::crypto::SecretKey;
use musubi_gossip::key_queries::KeyOperation;
use musubi_gossip::keyring::Keyring;
use musubi_gossip::profile::Profile;
use musubi_gossip::query::{self, QueryParams};
use std::time::{Duration, Instant};

const DEFAULT_SEEDS: u64 = 1;
const DEFAULT_MEMBERS: usize = 1000;
/// Agents of a fleet start within this long of each other.
const JOIN_SPREAD: Duration = Duration::from_secs(5);
const CRASHED_FRACTION: f64 = 0.10;
/// A rack's worth of members loses its uplink for longer than a suspicion lasts, and a
/// few members stop (SIGSTOP) as long.
const CUT_OFF_FRACTION: f64 = 0.10;
const PAUSED_FRACTION: f64 = 0.01;
const OUTAGE: Duration = Duration::from_secs(30);
/// How long the healed cluster runs before the crashes: health scores raised by the
/// outage's failed probes come down with good ones.
const SETTLE: Duration = Duration::from_secs(30);
/// For what the bounds leave out: gossip's own spread to most members, announces lost
/// and retried, the partner of a sync that had not heard either.
const SLACK: Duration = Duration::from_secs(60);
/// The size of the runs that check a seed replays.
const REPLAY_MEMBERS: usize = 50;
/// The size of the events, queries and keys scenario.
const SERF_MEMBERS: usize = 100;

#[test]
fn a_thousand_members_converge_after_joins_partitions_failures_and_restarts() {
    let size = env_number("MUSUBI_SIM_MEMBERS").map_or(DEFAULT_MEMBERS, |n| n as usize);
    for seed in seeds() {
        membership(seed, size);
    }
}

/// Everything a run does follows from its seed: the same seed, the same history.
#[test]
fn a_seed_replays_exactly() {
    let history = |seed| membership(seed, REPLAY_MEMBERS).world.history();
    let first = history(7);
    assert_eq!(first, history(7), "seed 7 ran differently the second time");
    assert_ne!(first, history(8), "seeds 7 and 8 ran alike");
}

#[test]
fn events_queries_and_a_key_rotation_reach_every_member_once() {
    for seed in seeds() {
        events_queries_keys(seed);
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

/// Two push-pull intervals of the LAN profile at this size: by then a member has synced
/// twice with random members, nearly all of which knew what it missed.
fn two_syncs(size: usize) -> Duration {
    Profile::Lan.push_pull_interval(size) * 2
}

/// The longest a suspicion lasts before someone declares the member failed. SWIM's
/// timeout is 4 × log10(N) probe periods; under Lifeguard that is only the floor, reached
/// with two independent confirmations, and a suspicion no other member confirms lasts six
/// times as long. A crashed member is probed by many and confirmed at once, but the
/// bound must hold for the unlucky one whose probers' confirmations were lost.
fn longest_suspicion(size: usize) -> Duration {
    Profile::Lan.suspicion_bounds(size).max
}

/// `size` members start over `JOIN_SPREAD` and must all see each other alive.
fn join(sim: &mut Simulation, seed: u64) {
    let size = sim.size();
    for i in 0..size {
        sim.start_at(i, JOIN_SPREAD.mul_f64(i as f64 / size as f64));
    }
    let joined = sim.run_until(
        JOIN_SPREAD + two_syncs(size) + SLACK,
        "every member sees every other alive",
        |s, i| s.behind_on_alive(i),
    );
    eprintln!("seed {seed}: joined; all see all alive after {joined:?}");
}

/// Runs until each of `members` (index, life) got the user event `name`; then checks
/// that each got it exactly once and nobody twice.
fn everyone_gets(sim: &mut Simulation, seed: u64, name: &str, members: &[(usize, u32)]) {
    let name = name.to_string();
    let got = sim.run_until(
        two_syncs(sim.size()) + SLACK,
        &format!("every member got user event {name}"),
        |s, i| {
            members.binary_search_by_key(&i, |&(m, _)| m).is_ok()
                && s.reports.user_events.times(&name, &(i, s.member(i).life)) == 0
        },
    );
    if let Err(miscount) = sim
        .reports
        .user_events
        .exactly_once(&name, members.iter().copied())
    {
        panic!("seed {seed}: user event {name}: {miscount}");
    }
    eprintln!(
        "seed {seed}: user event {name} reached {} members once each after {got:?}",
        members.len()
    );
}

/// `members` start again (a later start time, the keyring file they had) and must be
/// seen alive by every member.
fn restart(sim: &mut Simulation, members: &[usize]) -> PhaseTime {
    for &i in members {
        sim.start_at(i, Duration::ZERO);
    }
    sim.run_until(
        two_syncs(sim.size()) + SLACK,
        "every member sees the restarted alive",
        |s, i| s.behind_on_alive(i),
    )
}

/// The members running now, with their lives, in order.
fn running(sim: &Simulation) -> Vec<(usize, u32)> {
    (0..sim.size())
        .filter(|&i| sim.member(i).is_up())
        .map(|i| (i, sim.member(i).life))
        .collect()
}

fn membership(seed: u64, size: usize) -> Simulation {
    let wall = Instant::now();
    // Deflating every datagram took a third of a 1,000-member run; the events, queries
    // and keys scenario compresses, as the agent does by default.
    let mut sim = Simulation::new(seed, size).without_compression();
    eprintln!("seed {seed}: {size} members, {:?}", sim.world.weather());
    join(&mut sim, seed);

    let cut_off = sim.cut_off_some(CUT_OFF_FRACTION, OUTAGE);
    let paused = sim.pause_some(PAUSED_FRACTION, OUTAGE);
    let everyone = running(&sim);
    // From a member on the larger side, which the cut-off members miss until the heal.
    let sender = (0..size).find(|i| cut_off.binary_search(i).is_err());
    sim.send_user_event(sender.expect("most members stay connected"), "apart");
    sim.run_for(OUTAGE);
    let connected = size - cut_off.len();
    let saw_them_fail = (0..size)
        .filter(|i| cut_off.binary_search(i).is_err() && !sim.behind_on_failed(*i, &cut_off))
        .count();
    eprintln!(
        "seed {seed}: {} cut off and {} paused for {OUTAGE:?}; by then {saw_them_fail} of the \
         {connected} others listed every cut-off member failed",
        cut_off.len(),
        paused.len(),
    );
    let healed = sim.run_until(
        longest_suspicion(size) + two_syncs(size) + SLACK,
        "every member sees every other alive after a partition and pauses",
        |s, i| s.behind_on_alive(i),
    );
    eprintln!("seed {seed}: healed; all see all alive after {healed:?}");
    everyone_gets(&mut sim, seed, "apart", &everyone);

    sim.run_for(SETTLE);
    let crashed = sim.crash_some(CRASHED_FRACTION);
    let detected = sim.run_until(
        two_syncs(size) + longest_suspicion(size) + SLACK,
        "every live member sees the crashed failed",
        |s, i| s.behind_on_failed(i, &crashed),
    );
    eprintln!(
        "seed {seed}: {} crashed; all marked failed after {detected:?}",
        crashed.len()
    );

    let back = restart(&mut sim, &crashed);
    eprintln!(
        "seed {seed}: restarted; all alive again after {back:?}; {:?}; {:.1?} of wall time",
        sim.world.traffic,
        wall.elapsed()
    );
    sim
}

fn events_queries_keys(seed: u64) {
    let wall = Instant::now();
    let old_key = SecretKey::new(&[1; 32]).expect("a 32-byte key");
    let new_key = SecretKey::new(&[2; 32]).expect("a 32-byte key");
    let ring = Keyring::new(vec![old_key.clone()]);
    let mut sim = Simulation::with_keys(seed, SERF_MEMBERS, ring);
    eprintln!(
        "seed {seed}: {SERF_MEMBERS} members with encryption, {:?}",
        sim.world.weather()
    );
    join(&mut sim, seed);

    sim.send_user_event(0, "hello");
    let everyone = running(&sim);
    everyone_gets(&mut sim, seed, "hello", &everyone);

    // Answers come back over UDP, each also relayed through two other members.
    let asker = SERF_MEMBERS / 2;
    let params = QueryParams {
        name: "who".into(),
        relay_factor: 2,
        ..QueryParams::default()
    };
    let query = sim.send_query(asker, params);
    run_out(&mut sim, query);
    if let Err(miscount) = sim.reports.answers.exactly_once(&query, 0..SERF_MEMBERS) {
        panic!("seed {seed}: query {query:?}: {miscount}");
    }
    eprintln!("seed {seed}: query answered once by all {SERF_MEMBERS} members");

    // The rotation, with one member down through it.
    let sleeper = SERF_MEMBERS - 1;
    sim.crash(sleeper);
    let operator = 1;
    let new = new_key.to_base64();
    for op in [
        KeyOperation::Install,
        KeyOperation::Use,
        KeyOperation::Remove,
    ] {
        let id = sim.key_operation(operator, op, &new_or_old(op, &new, &old_key));
        run_out(&mut sim, id);
        let tally = &sim.reports.key_tallies[&id];
        assert_eq!(
            tally.num_err, 0,
            "seed {seed}: {op:?}: {:?}",
            tally.messages
        );
        eprintln!(
            "seed {seed}: keys {}: {}/{} answered",
            op.command(),
            tally.num_resp,
            tally.num_nodes
        );
    }
    let rotated = vec![new.clone()];
    let stale = (0..SERF_MEMBERS)
        .filter(|&i| i != sleeper && sim.member(i).keys() != rotated)
        .collect::<Vec<_>>();
    assert!(stale.is_empty(), "seed {seed}: not rotated: {stale:?}");

    sim.send_user_event(operator, "rotated");
    let awake = running(&sim);
    everyone_gets(&mut sim, seed, "rotated", &awake);

    let caught_up = restart(&mut sim, &[sleeper]);
    assert_eq!(
        sim.member(sleeper).keys(),
        rotated,
        "seed {seed}: no catch-up"
    );
    eprintln!(
        "seed {seed}: the member down during the rotation took the new ring; all see all \
         alive after {caught_up:?}; {:?}; {:.1?} of wall time",
        sim.world.traffic,
        wall.elapsed()
    );
}

/// `-install` and `-use` name the new key, `-remove` the old one.
fn new_or_old(op: KeyOperation, new: &str, old: &SecretKey) -> String {
    match op {
        KeyOperation::Remove => old.to_base64(),
        _ => new.to_string(),
    }
}

/// Runs until `query` times out (Serf's default timeout for the cluster's size) and
/// checks that its `Done` came.
fn run_out(sim: &mut Simulation, query: QueryId) {
    sim.run_for(query::default_timeout(sim.size()) + Duration::from_secs(1));
    assert!(sim.reports.done.contains(&query), "{query:?} never ended");
}
