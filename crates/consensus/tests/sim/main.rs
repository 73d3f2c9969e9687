//! A seeded simulation of a musubi Raft cluster, in the spirit of TigerBeetle's VOPR.
//!
//! Each seed fixes a cluster size (3 or 5) and a schedule of faults: lossy, slow and
//! duplicating network weather, partitions, crashes and restarts. Members run the real log
//! and state machine stores and openraft with musubi's configuration; the network
//! (`network`) and the disks (`cluster`) are simulated. A run has two phases:
//! 1. safety: clients write unique keys while the schedule plays out;
//! 2. liveness: faults heal, every member restarts, and one more write must commit and
//!    reach every member within a deadline.
//!
//! A crash is a power loss, not just a killed process. Each member runs on its own
//! simulated disk (`musubi_raftlog::sim::SimDisk`, through the `musubi_raftlog::fs::Fs` file
//! layer that production runs on `std::fs`). The disk models the page cache: a file's
//! writes and length changes are durable only after `fdatasync`/`fsync` of that file, and a
//! file's creation, rename or removal only after an fsync of its directory; a sync takes
//! 0.1-2 ms, as on a real disk. The power goes in the middle of the member's own I/O (at
//! one of its next few disk calls, see `Cluster::crash`), and at that instant the member
//! leaves the network. Its disk drops everything not durable: unsynced writes are lost (or,
//! with some chance, a prefix of them landed, the last one possibly torn and followed by
//! garbage), names not made durable revert, syncs under way fail, and the crashed process
//! can touch the disk no more. The restart then runs the real recovery code on what is
//! left. A `kill -9` would keep the page cache and so could not show that an acknowledged
//! write had been fsynced; this can (docs/safety.md, "Power loss in the simulation", lists
//! the missing fsyncs it was shown to catch).
//!
//! Then the checkers (`checks`) require that every acknowledged write is on every member,
//! that all state machines are identical, that no member's vote ever went backwards
//! (votes must survive crashes), that no term had two leaders (etcd's Raft promise,
//! which musubi keeps by declaring standard Raft leader ids), and, throughout, that every
//! member comes back after every crash (a log, vote or snapshot that fails to open is a
//! violation, not a panic) and that no thread panicked (openraft asserts its invariants on
//! runtime workers).
//!
//! Timing is real (tokio), so a seed fixes the schedule (and the disks' choices, given the
//! same writes) but not every interleaving; a failing seed usually fails again.
//! Environment:
//! - `MUSUBI_SIM_SEEDS=N` runs seeds `1..=N` (default 8);
//! - `MUSUBI_SIM_SEED=S` runs seed `S` alone, to replay a failure;
//! - `MUSUBI_SIM_FS=real` runs the members on temporary directories of the real file
//!   system instead, where a crash keeps the page cache (for comparison).

mod checks;
mod cluster;
mod network;
mod schedule;
mod workload;

use checks::ElectionWatch;
use cluster::{Cluster, Disks};
use network::{Faults, Router};
use openraft::async_runtime::watch::WatchReceiver;
use schedule::{Schedule, Step};
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};
use workload::Workload;

const DEFAULT_SEEDS: u64 = 8;
/// Concurrent clients during the safety phase.
const CLIENTS: usize = 3;
/// After healing: a write must commit, and every member apply it, within this long.
const LIVENESS_DEADLINE: Duration = Duration::from_secs(15);

#[test]
fn acknowledged_writes_survive_lossy_networks_partitions_and_crashes() {
    for seed in seeds() {
        run_seed(seed);
    }
}

/// The seeds to run, from the environment (see the module docs).
fn seeds() -> Vec<u64> {
    let var = |name| {
        std::env::var(name).ok().map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
    };
    match var("MUSUBI_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=var("MUSUBI_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    }
}

/// The members' disks, from the environment (see the module docs).
fn disks() -> Disks {
    match std::env::var("MUSUBI_SIM_FS").as_deref() {
        Err(_) | Ok("sim") => Disks::Simulated,
        Ok("real") => Disks::Real,
        Ok(other) => panic!("MUSUBI_SIM_FS={other}: expected `sim` or `real`"),
    }
}

/// Every panic of any thread during the run, as reported (see [`watch_panics`]).
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records every panic, of any thread, before the default hook reports it. A panic on a
/// runtime worker (openraft asserting an invariant, say: a follower's log went backwards
/// after it lost what it had acknowledged) would otherwise kill one task and go unnoticed.
fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_owned();
            if let Ok(mut panics) = PANICS.lock() {
                panics.push(format!("thread '{thread}' {info}"));
            }
            report(info)
        }));
    });
}

/// Runs one seed on its own runtime; on any failure, names the seed and how to replay it.
fn run_seed(seed: u64) {
    watch_panics();
    PANICS.lock().expect("the panic log").clear();
    let schedule = Schedule::generate(seed);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let disks = disks();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(simulate(seed, &schedule, disks))
    }));
    let fs = match disks {
        Disks::Simulated => "",
        Disks::Real => "MUSUBI_SIM_FS=real ",
    };
    let replay = format!(
        "replay: {fs}MUSUBI_SIM_SEED={seed} cargo test -p musubi-consensus --test sim -- --nocapture"
    );
    drop(runtime);
    let panics = std::mem::take(&mut *PANICS.lock().expect("the panic log"));
    let outcome = match outcome {
        Ok(Ok(_)) if !panics.is_empty() => Ok(Err(format!(
            "{} panics during the run, the first: {}",
            panics.len(),
            panics[0]
        ))),
        outcome => outcome,
    };
    match outcome {
        Ok(Ok(summary)) => println!("seed {seed}: {summary} in {:.1?}", started.elapsed()),
        Ok(Err(violation)) => {
            panic!("seed {seed} failed: {violation}\nschedule: {schedule:#?}\n{replay}")
        }
        Err(panic) => {
            eprintln!("seed {seed} panicked\nschedule: {schedule:#?}\n{replay}");
            std::panic::resume_unwind(panic)
        }
    }
}

/// One run: the safety phase under the schedule, the liveness phase, then the checks.
async fn simulate(seed: u64, schedule: &Schedule, disks: Disks) -> Result<String, String> {
    // The network draws its own faults, so the schedule stays the same if they change.
    let router = Router::new(seed.rotate_left(32) ^ 0x5eed);
    let mut cluster = Cluster::start(schedule.size, router.clone(), disks, seed).await?;
    let elections = ElectionWatch::start(router.clone());
    let workload = Workload::start(router.clone(), CLIENTS);

    let mut played = Ok(());
    for step in &schedule.steps {
        played = play(step, &mut cluster, &router).await;
        if played.is_err() {
            break;
        }
    }
    let restarted = match played {
        Ok(()) => {
            router.set_faults(Faults::default());
            cluster.restart_all().await
        }
        Err(e) => Err(e),
    };
    let history = workload.stop().await;
    if let Err(refused) = restarted {
        let _ = elections.finish().await;
        let report = format!("{refused}\n{}", cluster.describe());
        cluster.shutdown().await;
        return Err(report);
    }
    let last = workload::write(
        &router,
        workload::set("/sim/after-healing", "done"),
        LIVENESS_DEADLINE,
    )
    .await
    .map_err(|e| {
        format!(
            "no write commits after healing: {e}\n{}",
            cluster.describe()
        )
    })?;
    all_apply(&router, last)
        .await
        .map_err(|e| format!("{e}\n{}", cluster.describe()))?;

    let elections = elections.finish().await?;
    elections.one_leader_per_term()?;
    let state_machines = cluster.state_machines();
    checks::acknowledged_writes_survive(&history, &state_machines)?;
    checks::state_machines_agree(&state_machines)?;
    let restarts = cluster.restarts();
    let power = cluster.power_losses().clone();
    cluster.shutdown().await;

    let acknowledged = history.iter().filter(|w| w.acknowledged.is_some()).count();
    let disk = match disks {
        Disks::Simulated => format!(
            "; {} power losses: {} unsynced bytes lost, {} files reverted, {} kept a prefix, {} torn writes, {} names lost, {} syncs cut short",
            power.count,
            power.lost.bytes_lost,
            power.lost.files_reverted,
            power.lost.files_kept_prefix,
            power.lost.torn_writes,
            power.lost.files_unlinked,
            power.lost.syncs_interrupted,
        ),
        Disks::Real => "; real disks (crashes keep the page cache)".into(),
    };
    Ok(format!(
        "{} members, {acknowledged} of {} writes acknowledged, {} terms led, {restarts} restarts{disk}",
        schedule.size,
        history.len(),
        elections.leaders.len(),
    ))
}

/// Does what `step` says to the cluster or its network; fails if a member cannot restart.
async fn play(step: &Step, cluster: &mut Cluster, router: &Router) -> Result<(), String> {
    match step {
        Step::Run(duration) => tokio::time::sleep(*duration).await,
        Step::Weather {
            loss_permille,
            duplicate_permille,
            max_delay,
        } => router.update_faults(|f| {
            f.loss_permille = *loss_permille;
            f.duplicate_permille = *duplicate_permille;
            f.max_delay = *max_delay;
        }),
        Step::Partition { side } => {
            let others: Vec<u64> = cluster.ids().filter(|id| !side.contains(id)).collect();
            router.update_faults(|f| {
                f.cut = side
                    .iter()
                    .flat_map(|a| others.iter().map(move |b| (*a.min(b), *a.max(b))))
                    .collect();
            });
        }
        Step::Isolate(pick) => {
            if let Some(alone) = cluster.pick(*pick) {
                let others: Vec<u64> = cluster.ids().filter(|id| *id != alone).collect();
                router.update_faults(|f| {
                    f.cut
                        .extend(others.iter().map(|b| (alone.min(*b), alone.max(*b))))
                });
            }
        }
        Step::Heal => router.update_faults(|f| f.cut.clear()),
        Step::Crash(pick) => {
            if let Some(id) = cluster.pick(*pick) {
                cluster.crash(id).await;
            }
        }
        Step::Restart => cluster.restart_longest_down().await?,
    }
    Ok(())
}

/// Waits until every running member has applied the log up to `index`.
async fn all_apply(router: &Router, index: u64) -> Result<(), String> {
    for (id, raft) in router.running() {
        raft.wait(Some(LIVENESS_DEADLINE))
            .applied_index_at_least(Some(index), "the final write is applied")
            .await
            .map_err(|e| {
                let applied = raft.metrics().borrow_watched().last_applied;
                format!("member {id} did not apply index {index} (it applied {applied:?}): {e}")
            })?;
    }
    Ok(())
}
