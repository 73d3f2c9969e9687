//! One load-generating connection: a single task that keeps up to `depth` requests in flight
//! on one keep-alive HTTP/1.1 connection (pipelined when `depth` > 1), timing each from
//! write to response.

use super::histogram::Histogram;
use super::http::{Parsed, parse};
use super::workload::{Budget, KeyChoice, Rng, Template};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What all connections of a run share.
pub struct Shared {
    pub budget: Budget,
    pub keys: KeyChoice,
    /// Requests claimed so far, across connections.
    pub issued: AtomicU64,
}

impl Shared {
    /// Claim the next request: its sequence number, or `None` when the run is over.
    fn claim(&self) -> Option<u64> {
        match self.budget {
            Budget::Requests(total) => {
                let n = self.issued.fetch_add(1, Ordering::Relaxed);
                (n < total).then_some(n)
            }
            Budget::Until(deadline) => {
                (Instant::now() < deadline).then(|| self.issued.fetch_add(1, Ordering::Relaxed))
            }
        }
    }
}

/// One connection's results.
pub struct Outcome {
    pub latencies: Histogram,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Outcome {
    fn fail(&mut self, n: u64, why: impl FnOnce() -> String) {
        self.errors += n;
        if self.first_error.is_none() {
            self.first_error = Some(why());
        }
    }
}

/// Drive one connection to `addr` until the budget is spent.
pub async fn drive(
    addr: String,
    template: Arc<Template>,
    shared: Arc<Shared>,
    depth: usize,
    seed: u64,
) -> Outcome {
    let mut out = Outcome {
        latencies: Histogram::new(),
        ok: 0,
        errors: 0,
        first_error: None,
    };
    let mut rng = Rng::new(seed);
    let mut write_buf = Vec::with_capacity(depth * 512);
    let mut read_buf = vec![0u8; 64 * 1024];
    let mut sent: VecDeque<Instant> = VecDeque::with_capacity(depth);
    'connection: loop {
        let mut stream = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(e) => {
                // An endpoint that cannot be reached ends this connection's share of the run.
                out.fail(1, || format!("connect {addr}: {e}"));
                return out;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut start, mut end) = (0usize, 0usize);
        sent.clear();
        loop {
            while sent.len() < depth {
                let Some(n) = shared.claim() else { break };
                let key = if shared.keys.sequential {
                    n % shared.keys.space
                } else {
                    rng.below(shared.keys.space)
                };
                template.write(key, shared.keys.size, &mut write_buf);
                sent.push_back(Instant::now());
            }
            if !write_buf.is_empty() {
                let written = stream.write_all(&write_buf).await;
                write_buf.clear();
                if let Err(e) = written {
                    out.fail(sent.len() as u64, || format!("write: {e}"));
                    continue 'connection;
                }
            }
            if sent.is_empty() {
                return out;
            }
            // Read until the oldest request's response is complete.
            let (status, close) = loop {
                match parse(&read_buf[start..end]) {
                    Parsed::Complete { status, len, close } => {
                        start += len;
                        break (status, close);
                    }
                    Parsed::Invalid => {
                        out.fail(sent.len() as u64, || {
                            "unparseable HTTP response".to_string()
                        });
                        continue 'connection;
                    }
                    Parsed::Incomplete => {}
                }
                if start > 0 {
                    read_buf.copy_within(start..end, 0);
                    (start, end) = (0, end - start);
                }
                if end == read_buf.len() {
                    read_buf.resize(read_buf.len() * 2, 0);
                }
                match stream.read(&mut read_buf[end..]).await {
                    Ok(0) => {
                        out.fail(sent.len() as u64, || {
                            "connection closed by server".to_string()
                        });
                        continue 'connection;
                    }
                    Ok(n) => end += n,
                    Err(e) => {
                        out.fail(sent.len() as u64, || format!("read: {e}"));
                        continue 'connection;
                    }
                }
            };
            let began = sent.pop_front().expect("a response answers a sent request");
            out.latencies.record(began.elapsed());
            if (200..300).contains(&status) {
                out.ok += 1;
            } else {
                out.fail(1, || format!("HTTP status {status}"));
            }
            if close {
                // Requests pipelined behind this one will not be answered.
                out.fail(sent.len() as u64, || {
                    "server closed the connection".to_string()
                });
                continue 'connection;
            }
        }
    }
}
