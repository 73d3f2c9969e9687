//! `musubi bench put|get`: a load generator for the v2 keys API.
//!
//! 1. Prebuild each endpoint's request template (see [`workload`]).
//! 2. For `get`, first write every key of the key space so reads find something.
//! 3. Open `--conns` keep-alive connections, spread over the endpoints, and give them
//!    `--clients` in-flight requests between them; each connection is one task that
//!    pipelines its share.
//! 4. Stop after `--total` requests or `--duration`, merge the per-connection histograms and
//!    print throughput, latency percentiles and errors.

mod connection;
mod histogram;
mod http;
mod progress;
mod report;
mod workload;

use clap::{Args, ValueEnum};
use connection::{Outcome, Shared, drive};
use histogram::Histogram;
use report::{Latency, Report};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use workload::{Budget, KeyChoice, Op, Template};

#[derive(Args)]
pub struct BenchArgs {
    /// The operation: `put` (PUT value) or `get` (GET).
    #[arg(value_enum)]
    op: Op,
    /// Comma-separated endpoints; connections are spread over them.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// TCP connections.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Requests in flight at once, shared by the connections (pipelined beyond one per
    /// connection); defaults to --conns.
    #[arg(long)]
    clients: Option<usize>,
    /// Requests to send (default 100000 unless --duration is given).
    #[arg(long)]
    total: Option<u64>,
    /// Run for this long instead (seconds or a Go duration such as 30s).
    #[arg(long, value_parser = crate::duration::parse_or_seconds, conflicts_with = "total")]
    duration: Option<Duration>,
    /// Key length in bytes (keys are zero-padded numbers).
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Value length in bytes.
    #[arg(long, default_value_t = 64)]
    val_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    key_space: u64,
    /// Use keys in order instead of at random.
    #[arg(long)]
    sequential_keys: bool,
    /// Directory the keys live under.
    #[arg(long, default_value = "/bench")]
    prefix: String,
    /// `get` only: linearizable reads (quorum=true).
    #[arg(long)]
    quorum: bool,
    /// `get` only: do not write the key space first.
    #[arg(long)]
    no_populate: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// One endpoint: where to connect and what to put in `Host`.
struct Target {
    addr: String,
}

pub fn run(args: BenchArgs) -> ExitCode {
    let targets = match targets(&args.endpoints) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("musubi bench: {e}");
            return ExitCode::from(1);
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.enable_all().build().expect("tokio runtime starts");
    runtime.block_on(async {
        if args.op == Op::Get && !args.no_populate {
            eprintln!("populating {} keys under {} …", args.key_space, args.prefix);
            let keys = KeyChoice {
                size: args.key_size,
                space: args.key_space,
                sequential: true,
            };
            let populate = load(
                &args,
                &targets,
                Op::Put,
                Budget::Requests(args.key_space),
                keys,
            )
            .await;
            if populate.errors > 0 {
                eprintln!(
                    "musubi bench: populating failed: {}",
                    populate.first_error.unwrap_or_default()
                );
                return ExitCode::from(2);
            }
        }
        let budget = match args.duration {
            Some(d) => Budget::Until(Instant::now() + d),
            None => Budget::Requests(args.total.unwrap_or(100_000)),
        };
        let keys = KeyChoice {
            size: args.key_size,
            space: args.key_space,
            sequential: args.sequential_keys,
        };
        let summary = load(&args, &targets, args.op, budget, keys).await;
        let report = summary.report(&args);
        match args.format {
            Format::Text => print!("{}", report.text()),
            Format::Json => println!(
                "{}",
                serde_json::to_string(&report).expect("report serialises")
            ),
        }
        // Some errors are part of measuring (an overloaded server); none succeeding is not.
        if summary.ok == 0 {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn targets(endpoints: &[String]) -> Result<Vec<Target>, String> {
    endpoints
        .iter()
        .map(|e| {
            let addr = e
                .trim()
                .strip_prefix("http://")
                .unwrap_or(e.trim())
                .trim_end_matches('/');
            if addr.is_empty() || addr.contains('/') || e.starts_with("https://") {
                return Err(format!("{e}: expected http://host:port"));
            }
            Ok(Target {
                addr: addr.to_string(),
            })
        })
        .collect()
}

/// The merged outcome of all connections.
struct Summary {
    latencies: Histogram,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

impl Summary {
    fn report(&self, args: &BenchArgs) -> Report {
        let requests = self.ok + self.errors;
        let seconds = self.elapsed.as_secs_f64();
        Report {
            op: args.op.name(),
            endpoints: args.endpoints.clone(),
            conns: args.conns,
            clients: args.clients.unwrap_or(args.conns).max(args.conns),
            requests,
            errors: self.errors,
            first_error: self.first_error.clone(),
            seconds,
            throughput: if seconds > 0.0 {
                requests as f64 / seconds
            } else {
                0.0
            },
            latency_ms: Latency::of(&self.latencies),
        }
    }
}

async fn load(
    args: &BenchArgs,
    targets: &[Target],
    op: Op,
    budget: Budget,
    keys: KeyChoice,
) -> Summary {
    let conns = args.conns.max(1);
    let clients = args.clients.unwrap_or(conns).max(conns);
    let templates: Vec<Arc<Template>> = targets
        .iter()
        .map(|t| {
            Arc::new(Template::new(
                op,
                &t.addr,
                &args.prefix,
                args.val_size,
                args.quorum,
            ))
        })
        .collect();
    let shared = Arc::new(Shared {
        budget,
        keys,
        issued: AtomicU64::new(0),
    });
    let started = Instant::now();
    let progress = progress::Progress::follow(op.name(), shared.clone());
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            let t = i % targets.len();
            // Spread the in-flight requests as evenly as the division allows.
            let depth = clients / conns + usize::from(i < clients % conns);
            let seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1);
            tokio::spawn(drive(
                targets[t].addr.clone(),
                templates[t].clone(),
                shared.clone(),
                depth,
                seed,
            ))
        })
        .collect();
    let mut summary = Summary {
        latencies: Histogram::new(),
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let Outcome {
            latencies,
            ok,
            errors,
            first_error,
        } = task.await.expect("connection task does not panic");
        summary.latencies.merge(&latencies);
        summary.ok += ok;
        summary.errors += errors;
        summary.first_error = summary.first_error.take().or(first_error);
    }
    summary.elapsed = started.elapsed();
    progress.finish();
    summary
}
