//! The summary of a run, as text or JSON.

use super::histogram::Histogram;
use serde::Serialize;
use std::time::Duration;

#[derive(Serialize)]
pub struct Report {
    pub op: &'static str,
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub requests: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub seconds: f64,
    /// Completed requests (errors included) per second.
    pub throughput: f64,
    pub latency_ms: Latency,
}

#[derive(Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram) -> Self {
        Latency {
            mean: ms(h.mean()),
            p50: ms(h.quantile(0.50)),
            p99: ms(h.quantile(0.99)),
            p999: ms(h.quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Report {
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} {}: {} requests in {:.3}s, {} connections, {} in flight\n",
            self.op,
            self.endpoints.join(","),
            self.requests,
            self.seconds,
            self.conns,
            self.clients
        );
        s += &format!("  throughput  {:.1} req/s\n", self.throughput);
        s += &format!("  errors      {}", self.errors);
        if let Some(e) = &self.first_error {
            s += &format!(" (first: {e})");
        }
        let l = &self.latency_ms;
        s += &format!(
            "\n  latency ms  p50 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3}  mean {:.3}\n",
            l.p50, l.p99, l.p999, l.max, l.mean
        );
        s
    }
}
