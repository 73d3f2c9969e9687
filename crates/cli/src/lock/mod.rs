//! `musubi lock` and `musubi elect` (docs/lock.md): a lock, a semaphore or a leadership in
//! the store, with a fencing token, and a child run under a guardian that kills it when
//! the lock is lost. [`election`] and [`session`] are also a library for `reconcile`.

mod acquire;
mod elect_cli;
pub mod election;
mod queue;
pub mod session;
mod v2;
mod v3;

use crate::supervise::{Deadline, Spec};
use crate::toolkit::{OutputFormat, Store, StoreArgs, ToolError, child};
use acquire::{Rules, Turn, wait_turn};
use clap::Args;
use queue::{Entry, Kind, Queue};
use serde_json::json;
use session::Session;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use elect_cli::{ElectArgs, run as run_elect};

/// The exit codes, for `--help` (docs/lock.md).
pub const EXIT_CODES: &str = "\
Exit codes: the child's own (128+N if signal N killed it); 0 when a hold without a command
ends on a signal; 120 the lock was lost while held (the child was terminated); 124 not
acquired within --timeout, or at once with --try; 125 an error before the child ran (usage,
store unreachable, another contender's -n differs); 126 the command cannot be executed; 127 the command was not found.
--check: 0 while TOKEN holds, 3 when it does not. --release: 0 when TOKEN's key was
deleted, 3 when there is none. elect --leader: 5 when there is no leader.";

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct LockArgs {
    /// The lock's name (v3: the key prefix NAME/, as etcdctl lock; v2: /_locks/NAME).
    pub name: String,
    /// The command to run while holding the lock; without one, hold until a signal.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A semaphore: up to N holders at once.
    #[arg(short = 'n', long = "limit", default_value_t = 1)]
    pub limit: usize,
    #[command(flatten)]
    pub hold: HoldArgs,
    /// Do not wait: exit 124 at once if the lock is held.
    #[arg(long = "try")]
    pub try_once: bool,
    /// Print the holders and waiters, and exit.
    #[arg(long, conflicts_with_all = ["command", "check"])]
    pub status: bool,
    /// Exit 0 if TOKEN holds the lock now, 3 otherwise.
    #[arg(long, value_name = "TOKEN")]
    pub check: Option<i64>,
    /// Delete TOKEN's key (a holder or waiter that cannot release it itself); 3 if none.
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["command", "check", "status"])]
    pub release: Option<i64>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What `lock` and `elect` share: the lease and the child's supervision.
#[derive(Args, Debug, Clone)]
pub struct HoldArgs {
    /// How long a holder that stops renewing keeps the lock (lease TTL / v2 key TTL).
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse_or_seconds)]
    pub ttl: Duration,
    /// Between SIGTERM and SIGKILL when the child is terminated.
    #[arg(long, default_value = "2s", value_parser = crate::duration::parse_or_seconds)]
    pub grace: Duration,
    /// After a holder expired (rather than released), wait this long before taking over.
    #[arg(long, default_value = "3s", value_parser = crate::duration::parse_or_seconds)]
    pub lock_delay: Duration,
    /// Run the command through /bin/sh -c.
    #[arg(long)]
    pub shell: bool,
}

impl HoldArgs {
    /// The child must outlive a renewal or two: SIGTERM comes `grace` before the kill, which
    /// comes a margin before the TTL is up, and renewals go every third of the TTL.
    fn check(&self) -> Result<(), ToolError> {
        let deadline = Deadline::after_renewal(0, self.ttl, self.grace);
        if Duration::from_nanos(deadline.term) <= self.ttl / 3 {
            return Err(ToolError::usage(format!(
                "--grace {:?} leaves no time to run under --ttl {:?} (SIGTERM comes --grace \
                 before max(1s, ttl/10) before the TTL is up, after renewals every ttl/3): \
                 raise --ttl or lower --grace",
                self.grace, self.ttl
            )));
        }
        Ok(())
    }
}

pub fn run(args: LockArgs) -> ExitCode {
    ExitCode::from(runtime().block_on(lock(args)))
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn lock(args: LockArgs) -> u8 {
    if args.limit == 0 {
        eprintln!("musubi lock: -n must be at least 1");
        return child::ERROR;
    }
    let store = match Store::connect(&args.store).await {
        Ok(store) => Arc::new(store),
        Err(e) => return error(&e),
    };
    let queue = Queue::new(store, Kind::Lock, &args.name);
    if args.status {
        return status(&queue, args.limit, args.store.format).await;
    }
    if let Some(token) = args.check {
        return match queue.list().await {
            Ok((entries, _)) if holders(&entries, args.limit).any(|e| e.token == token) => 0,
            Ok(_) => crate::toolkit::ToolExit::Conflict as u8,
            Err(e) => e.exit as u8,
        };
    }
    if let Some(token) = args.release {
        return match queue.release_token(token).await {
            Ok(true) => 0,
            Ok(false) => crate::toolkit::ToolExit::Conflict as u8,
            Err(e) => error(&e),
        };
    }
    let rules = Rules {
        limit: args.limit,
        lock_delay: args.hold.lock_delay,
        once: args.try_once,
    };
    let value = contender_value(args.limit);
    hold(
        &queue,
        &value,
        &rules,
        &args.hold,
        &args.command,
        args.store.format,
        args.store.timeout,
    )
    .await
}

/// Join the queue, wait for our turn, then run the command (or hold until a signal) and
/// leave. Shared by `lock` and `elect VALUE`.
pub(crate) async fn hold(
    queue: &Queue,
    value: &str,
    rules: &Rules,
    hold: &HoldArgs,
    command: &[String],
    format: OutputFormat,
    wait_limit: Option<Duration>,
) -> u8 {
    if let Err(e) = hold.check() {
        return error(&e);
    }
    let mut stops = match Stops::new() {
        Ok(stops) => stops,
        Err(e) => return error(&ToolError::usage(format!("signals: {e}"))),
    };
    let ticket = match queue.join(value, hold.ttl).await {
        Ok(ticket) => ticket,
        Err(e) => return error(&e),
    };
    let session = Session::keep(queue.clone(), ticket, hold.grace);
    let waiting = async {
        match wait_limit {
            Some(limit) => tokio::time::timeout(limit, wait_turn(&session, rules))
                .await
                .unwrap_or(Ok(Turn::Busy)),
            None => wait_turn(&session, rules).await,
        }
    };
    // Interrupted while waiting: leave the queue now rather than let our key block the
    // others until its TTL runs out.
    let waited = tokio::select! {
        waited = waiting => waited,
        signal = stops.next() => {
            let _ = session.close().await;
            return 128 + signal as u8;
        }
    };
    match waited {
        Ok(Turn::Held) => {}
        Ok(Turn::Busy) => {
            let _ = session.close().await;
            eprintln!("musubi: {}: not acquired", queue.name);
            return child::NOT_ACQUIRED;
        }
        Ok(Turn::Lost) => {
            report(format, "lost", &session, None, None);
            return child::LOST;
        }
        Err(e) => {
            let _ = session.close().await;
            return error(&e);
        }
    }
    let since = Instant::now();
    report(format, "acquired", &session, None, None);
    let code = if command.is_empty() {
        hold_until_signal(&session, &mut stops).await
    } else {
        session
            .run_guarded(&child_spec(&session, hold, command))
            .await
    };
    let held_ms = since.elapsed().as_millis();
    let lost = code == child::LOST || session.is_lost();
    report(
        format,
        if lost { "lost" } else { "released" },
        &session,
        Some(code),
        Some(held_ms),
    );
    // Even after a loss the key may still be ours (the deadline passed while renewals went
    // unanswered): deleting it spares the next holder the rest of the TTL.
    if let Err(e) = session.close().await {
        eprintln!("musubi: {}: release: {e}", queue.name);
    }
    if lost { child::LOST } else { code }
}

/// No command: print our key and token (etcdctl prints the key), hold until a signal.
async fn hold_until_signal(session: &Session, stops: &mut Stops) -> u8 {
    println!("{}", session.ticket.key);
    println!("token: {}", session.ticket.token);
    tokio::select! {
        _ = stops.next() => 0,
        _ = session.lost() => child::LOST,
    }
}

/// The signals that end a wait or a hold: INT, TERM, HUP. (While a child runs, the
/// session forwards them to it instead.)
struct Stops([(i32, tokio::signal::unix::Signal); 3]);

impl Stops {
    fn new() -> std::io::Result<Stops> {
        use tokio::signal::unix::{SignalKind, signal};
        let on = |kind: SignalKind| Ok::<_, std::io::Error>((kind.as_raw_value(), signal(kind)?));
        Ok(Stops([
            on(SignalKind::interrupt())?,
            on(SignalKind::terminate())?,
            on(SignalKind::hangup())?,
        ]))
    }

    /// The next of them to arrive.
    async fn next(&mut self) -> i32 {
        let [(int, a), (term, b), (hup, c)] = &mut self.0;
        tokio::select! {
            _ = a.recv() => *int,
            _ = b.recv() => *term,
            _ = c.recv() => *hup,
        }
    }
}

fn child_spec(session: &Session, hold: &HoldArgs, command: &[String]) -> Spec {
    let token = session.ticket.token.to_string();
    let key = session.ticket.key.clone();
    Spec {
        argv: command.to_vec(),
        shell: hold.shell,
        env: vec![
            ("MUSUBI_LOCK_TOKEN".into(), token.clone()),
            ("MUSUBI_LOCK_KEY".into(), key.clone()),
            // etcdctl lock's names: the key, and a revision at which we held it.
            ("ETCD_LOCK_KEY".into(), key),
            ("ETCD_LOCK_REV".into(), token),
        ],
        grace: hold.grace,
        piped_stdin: false,
    }
}

/// Our own lines go to stderr: stdout is the child's.
fn report(
    format: OutputFormat,
    event: &str,
    session: &Session,
    child_exit: Option<u8>,
    held_ms: Option<u128>,
) {
    let ticket = &session.ticket;
    match format {
        OutputFormat::Json => eprintln!(
            "{}",
            json!({"event": event, "name": session.queue.name, "key": ticket.key,
                   "token": ticket.token, "child_exit": child_exit, "held_ms": held_ms})
        ),
        OutputFormat::Text if event == "lost" => eprintln!(
            "musubi: {}: lost {} (token {}){}",
            session.queue.name,
            ticket.key,
            ticket.token,
            session
                .lost_because()
                .map(|why| format!(": {why}"))
                .unwrap_or_default()
        ),
        OutputFormat::Text => {}
    }
}

fn holders(entries: &[Entry], limit: usize) -> impl Iterator<Item = &Entry> {
    entries.iter().take(limit)
}

async fn status(queue: &Queue, limit: usize, format: OutputFormat) -> u8 {
    let entries = match queue.list_with_ttl().await {
        Ok(entries) => entries,
        Err(e) => return error(&e),
    };
    let describe = |entry: &Entry| {
        let value: serde_json::Value = serde_json::from_str(&entry.value).unwrap_or_default();
        json!({"token": entry.token, "key": entry.key, "id": value.get("id"),
               "host": value.get("host"), "pid": value.get("pid"), "ttl_left": entry.ttl_left})
    };
    let (held, waiting) = entries.split_at(limit.min(entries.len()));
    match format {
        OutputFormat::Json => println!(
            "{}",
            json!({"holders": held.iter().map(describe).collect::<Vec<_>>(),
                   "waiters": waiting.iter().map(describe).collect::<Vec<_>>(),
                   "limit": limit})
        ),
        OutputFormat::Text => {
            for (role, entries) in [("holder", held), ("waiter", waiting)] {
                for entry in entries {
                    println!(
                        "{role} token={} key={} {}",
                        entry.token, entry.key, entry.value
                    );
                }
            }
        }
    }
    0
}

/// A contender's value: python-etcd's lock compares it (a unique id) to find its own key
/// after a lost reply; the host and pid are for people reading `--status`; the limit lets
/// each contender see that all agree on `-n` (acquire.rs).
fn contender_value(limit: usize) -> String {
    let id: [u8; 16] = rand::random();
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    json!({"id": id, "host": hostname(), "pid": std::process::id(), "limit": limit}).to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

fn error(e: &ToolError) -> u8 {
    eprintln!("musubi: {e}");
    child::ERROR
}
