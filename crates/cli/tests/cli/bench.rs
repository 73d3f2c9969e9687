//! `musubi bench` against the target: it completes, counts, and reports in JSON.

use crate::util::{bootstrap, run};
use std::process::Command;

fn bench(url: &str, args: &[&str]) -> serde_json::Value {
    let r = run(Command::new(env!("CARGO_BIN_EXE_musubi"))
        .args(["bench", "--endpoints", url, "--format", "json"])
        .args(args));
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn bench_put_and_get_count_every_request_and_report_latency() {
    let Some(s) = bootstrap() else { return };
    let put = bench(
        &s.url,
        &[
            "put",
            "--total",
            "2000",
            "--conns",
            "8",
            "--key-space",
            "100",
        ],
    );
    assert_eq!(
        (put["requests"].as_u64(), put["errors"].as_u64()),
        (Some(2000), Some(0)),
        "{put}"
    );
    let latency = &put["latency_ms"];
    assert!(latency["p50"].as_f64() <= latency["p99"].as_f64(), "{put}");
    assert!(latency["p99"].as_f64() <= latency["p999"].as_f64(), "{put}");
    assert!(put["throughput"].as_f64().unwrap_or(0.0) > 0.0, "{put}");

    // Pipelined: more requests in flight than connections.
    let get = bench(
        &s.url,
        &[
            "get",
            "--total",
            "3000",
            "--conns",
            "4",
            "--clients",
            "16",
            "--key-space",
            "50",
        ],
    );
    assert_eq!(
        (get["requests"].as_u64(), get["errors"].as_u64()),
        (Some(3000), Some(0)),
        "{get}"
    );
    assert_eq!(s.kv(&["get", "/bench/00000049"]).code, 0);
}

#[test]
fn bench_runs_for_a_duration() {
    let Some(s) = bootstrap() else { return };
    let r = bench(&s.url, &["put", "--duration", "1s", "--conns", "4"]);
    let seconds = r["seconds"].as_f64().unwrap_or(0.0);
    assert!((1.0..3.0).contains(&seconds), "{r}");
    assert!(r["requests"].as_u64().unwrap_or(0) > 0, "{r}");
}
