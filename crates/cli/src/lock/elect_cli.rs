//! `musubi elect NAME VALUE [-- CMD]`, `elect NAME --listen`, `elect NAME --leader`: leader
//! election on the lock's mechanism (the oldest key leads), with its token and guardian.

use super::acquire::Rules;
use super::election;
use super::queue::{Entry, Kind, Queue};
use super::{EXIT_CODES, HoldArgs, error, hold, runtime};
use crate::toolkit::{OutputFormat, Store, StoreArgs, ToolExit, child};
use clap::Args;
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct ElectArgs {
    /// The election's name (v3: the key prefix NAME/, as etcdctl elect; v2:
    /// /_musubi/elect/NAME).
    pub name: String,
    /// Our proposal: the value the leader's key holds. Required unless --listen/--leader.
    pub value: Option<String>,
    /// The command to run while leader; without one, lead until a signal.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Print each new leader's value as it changes (etcdctl elect -l).
    #[arg(short = 'l', long, conflicts_with = "leader")]
    pub listen: bool,
    /// Print the current leader, and exit (5 if there is none).
    #[arg(long)]
    pub leader: bool,
    #[command(flatten)]
    pub hold: HoldArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(args: ElectArgs) -> ExitCode {
    ExitCode::from(runtime().block_on(elect(args)))
}

async fn elect(args: ElectArgs) -> u8 {
    let store = match Store::connect(&args.store).await {
        Ok(store) => Arc::new(store),
        Err(e) => return error(&e),
    };
    let queue = Queue::new(store, Kind::Elect, &args.name);
    let format = args.store.format;
    if args.leader {
        return match election::leader(queue.store.clone(), &args.name).await {
            Ok(Some(leader)) => {
                print_leader(format, &leader);
                0
            }
            Ok(None) => ToolExit::Data as u8,
            Err(e) => error(&e),
        };
    }
    if args.listen {
        return listen(&queue, format).await;
    }
    let Some(value) = args.value else {
        eprintln!("musubi elect: a VALUE to campaign with is required (or --listen, --leader)");
        return child::ERROR;
    };
    let rules = Rules {
        limit: 1,
        lock_delay: args.hold.lock_delay,
        once: false,
    };
    hold(
        &queue,
        &value,
        &rules,
        &args.hold,
        &args.command,
        format,
        args.store.timeout,
    )
    .await
}

/// Print the leader each time it changes (including to none, in JSON), until a signal.
async fn listen(queue: &Queue, format: OutputFormat) -> u8 {
    let mut shown: Option<Option<String>> = None;
    loop {
        let (entries, revision) = match queue.list().await {
            Ok(listed) => listed,
            Err(e) => {
                eprintln!("musubi: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let leader = entries.first();
        let key = leader.map(|leader| leader.key.clone());
        if shown.as_ref() != Some(&key) {
            match leader {
                Some(leader) => print_leader(format, leader),
                None if format == OutputFormat::Json => println!("{}", json!({"leader": null})),
                None => {}
            }
            shown = Some(key);
        }
        tokio::select! {
            moved = queue.wait_moved(revision, true) => {
                if moved.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            _ = tokio::signal::ctrl_c() => return 0,
        }
    }
}

/// etcdctl's simple output is the key, then the value; JSON adds the token.
fn print_leader(format: OutputFormat, leader: &Entry) {
    match format {
        OutputFormat::Json => println!(
            "{}",
            json!({"leader": {"key": leader.key, "value": leader.value, "token": leader.token}})
        ),
        OutputFormat::Text => {
            println!("{}", leader.key);
            println!("{}", leader.value);
        }
    }
}
