//! 1,000 simulated agents (see the crate docs): they join through a few seeds and
//! converge; 10% crash and every live member marks them failed, members that declared a
//! crash themselves mostly on other members' confirmations (Lifeguard's dynamic
//! suspicion at work); they restart and every member sees them alive again. Each phase
//! must end within a bound that follows from SWIM as foca runs it under Lifeguard, and
//! prints how long it took, for all members and for 99%.
//!
//! The bounds: gossip reaches almost every member within seconds; a member that missed
//! an item learns it by push-pull. Every member syncs its whole state with a random alive
//! member once per push-pull interval (the LAN profile's 30 s, grown as memberlist does by
//! one interval per doubling past 32 members: 180 s at 1,000), and that member knows the
//! item with high probability. So a member learns of a joiner, a restart or (after the
//! suspicion timeout) a crash within two push-pull intervals plus slack: N enters only
//! through log factors. Without push-pull the bound was foca's probe rounds, two of them
//! (2N periods): a member that missed the gossip waited to probe the member concerned
//! itself.
//!
//! Environment (as crates/consensus/tests/sim):
//! - `MUSUBI_SIM_SEEDS=N` runs seeds `1..=N` (default 1; one 1,000-member seed takes about
//!   1 minute in a debug build, see docs/agent-proof.md);
//! - `MUSUBI_SIM_SEED=S` runs seed `S` alone, to replay a failure;
//! - `MUSUBI_SIM_MEMBERS=N` changes the cluster size (default 1000).

use musubi_agent_sim::cluster::Simulation;
use musubi_gossip::profile::Profile;
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
/// How long the healed cluster runs before the crashes.
const SETTLE: Duration = Duration::from_secs(30);
/// The size of the runs that check a seed replays.
const REPLAY_MEMBERS: usize = 50;
/// For what the bounds leave out: gossip's own spread to most members, announces lost
/// and retried, the partner of a sync that had not heard either.
const SLACK: Duration = Duration::from_secs(60);

#[test]
fn a_thousand_members_converge_after_joins_partitions_failures_and_restarts() {
    let size = env_number("MUSUBI_SIM_MEMBERS").map_or(DEFAULT_MEMBERS, |n| n as usize);
    for seed in seeds() {
        run_seed(seed, size);
    }
}

/// Everything a run does follows from its seed: the same seed, the same history.
#[test]
fn a_seed_replays_exactly() {
    let history = |seed| run_seed(seed, REPLAY_MEMBERS).world.history();
    let first = history(7);
    assert_eq!(first, history(7), "seed 7 ran differently the second time");
    assert_ne!(first, history(8), "seeds 7 and 8 ran alike");
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

fn run_seed(seed: u64, size: usize) -> Simulation {
    let wall = Instant::now();
    let mut sim = Simulation::new(seed, size);
    eprintln!("seed {seed}: {size} members, {:?}", sim.world.weather());

    for i in 0..size {
        sim.start_at(i, JOIN_SPREAD.mul_f64(i as f64 / size as f64));
    }
    let join_bound = JOIN_SPREAD + two_syncs(size) + SLACK;
    let joined = sim.run_until(join_bound, "every member sees every other alive", |s, i| {
        s.behind_on_alive(i)
    });
    sim.recount();
    eprintln!("seed {seed}: joined; all see all alive after {joined:?}");

    let before_outage = sim.declared.len();
    let cut_off = sim.cut_off_some(CUT_OFF_FRACTION, OUTAGE);
    let paused = sim.pause_some(PAUSED_FRACTION, OUTAGE);
    sim.run_for(OUTAGE);
    let declared_apart = sim.declared.len() - before_outage;
    // The outage outlasts a suspicion: the two sides declared each other failed, and
    // what follows checks that they find each other again.
    assert!(
        declared_apart > 0,
        "seed {seed}: no failure declared while {} members were cut off for {OUTAGE:?}",
        cut_off.len()
    );
    let healed = sim.run_until(
        OUTAGE + two_syncs(size) + SLACK,
        "every member sees every other alive after a partition and pauses",
        |s, i| s.behind_on_alive(i),
    );
    sim.recount();
    eprintln!(
        "seed {seed}: {} cut off and {} paused for {OUTAGE:?}, {declared_apart} failures \
         declared meanwhile; healed, all see all alive after {healed:?}",
        cut_off.len(),
        paused.len()
    );

    // Health scores raised by the outage's failed probes come down with good ones.
    sim.run_for(SETTLE);
    let crashed = sim.crash_some(CRASHED_FRACTION);
    let declared_before = sim.declared.len();
    let detection_bound = two_syncs(size) + longest_suspicion(size) + SLACK;
    let detected = sim.run_until(
        detection_bound,
        "every live member sees the crashed failed",
        |s, i| s.behind_on_failed(i, &crashed),
    );
    eprintln!(
        "seed {seed}: {} crashed; all marked failed after {detected:?}",
        crashed.len()
    );
    let declarations = &sim.declared[declared_before..];
    let confirmed = declarations.iter().filter(|d| d.confirmations > 0).count();
    let wanted = Profile::Lan.suspicion_bounds(size).wanted;
    let fully = declarations
        .iter()
        .filter(|d| d.confirmations >= wanted)
        .count();
    eprintln!(
        "seed {seed}: {} failures declared by their suspecters' own deadlines, {confirmed} \
         with a peer's confirmation, {fully} with all {wanted} that count",
        declarations.len()
    );
    // Lifeguard's confirmations reach the suspecters: most declarations waited for no
    // more than a confirmed suspicion's timeout, not for a lone suspicion's six times it.
    assert!(
        confirmed * 2 > declarations.len(),
        "seed {seed}: {confirmed} of {} declarations had a peer's confirmation",
        declarations.len()
    );

    for &i in &crashed {
        sim.start_at(i, Duration::ZERO);
    }
    let back = sim.run_until(
        two_syncs(size) + SLACK,
        "every member sees the restarted alive",
        |s, i| s.behind_on_alive(i),
    );
    sim.recount();
    eprintln!(
        "seed {seed}: restarted; all alive again after {back:?}; {:?}; {:.1?} of wall time",
        sim.world.traffic,
        wall.elapsed()
    );
    sim
}
