//! How many durable appends per second group commit sustains.
//!
//! `cargo run -p musubi-raftlog --example append_throughput [clients] [seconds] [payload bytes]`
//!
//! Each client thread submits one record and waits until it is durable, as an HTTP client
//! waits for its write. One appender thread (in musubi, openraft's log task) drains whatever
//! is queued into a single batch and appends it; the flusher covers it with one fdatasync.

use musubi_raftlog::{Log, Options, WriteBatch};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

type Done = Sender<()>;

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (clients, seconds, size) = (arg(1, 64) as usize, arg(2, 3), arg(3, 120) as usize);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Arc::new(Log::open(dir.path(), Options::default()).expect("log opens"));
    let (submit, queue) = channel::<Done>();

    let appender = std::thread::spawn(move || {
        let (mut next, mut batches, mut batch) = (1u64, 0u64, WriteBatch::new());
        let payload = vec![b'x'; size];
        while let Ok(first) = queue.recv() {
            let waiters: Vec<Done> = std::iter::once(first).chain(queue.try_iter()).collect();
            batch.clear();
            for _ in &waiters {
                batch.push(next, &payload);
                next += 1;
            }
            log.append(
                &batch,
                Box::new(move |r| {
                    r.expect("append is durable");
                    for w in &waiters {
                        let _ = w.send(());
                    }
                }),
            )
            .expect("append");
            batches += 1;
        }
        batches
    });

    let start = Arc::new(Barrier::new(clients + 1));
    let deadline = Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (submit, start) = (submit.clone(), start.clone());
            std::thread::spawn(move || {
                let (tx, rx) = channel();
                start.wait();
                let began = Instant::now();
                let mut writes = 0u64;
                while began.elapsed() < deadline {
                    submit.send(tx.clone()).expect("appender runs");
                    rx.recv().expect("completion");
                    writes += 1;
                }
                writes
            })
        })
        .collect();
    drop(submit);
    start.wait();
    let began = Instant::now();
    let writes: u64 = threads.into_iter().map(|t| t.join().expect("client")).sum();
    let secs = began.elapsed().as_secs_f64();
    let batches = appender.join().expect("appender");
    println!(
        "{clients} clients, {size}-byte records: {:.0} durable appends/s, {:.0} batches (fsyncs or fewer)/s, {:.1} records per batch",
        writes as f64 / secs,
        batches as f64 / secs,
        writes as f64 / batches as f64
    );
}
