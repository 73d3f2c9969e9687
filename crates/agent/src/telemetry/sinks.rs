//! Serf's statsd and statsite sinks: statsd's line format (`name:1|c`, `name:0.5|g`,
//! `name:12|ms`) under Serf's `serf-agent.` prefix, one metric a UDP datagram to
//! `statsd_addr`, newline-ended over one TCP connection to `statsite_addr`. A gauge's name
//! carries the host name after the prefix, as go-metrics' default configuration
//! (`EnableHostname`) names Serf's gauges. Sends are queued and made off the agent's tasks.

use cadence::{MetricSink, QueuingMetricSink, UdpMetricSink};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_statsd::{StatsdBuilder, StatsdRecorder};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Mutex;
use std::time::Duration;

/// go-metrics' service name in Serf's agent.
const PREFIX: &str = "serf-agent";
/// Metrics waiting for the network, past which new ones are dropped (go-metrics' statsd
/// sink buffers 4096).
const QUEUE: usize = 4096;
/// A statsite that does not accept within this is retried at the next metric.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub fn statsd(addr: &str) -> Result<HostGauges<StatsdRecorder>, String> {
    let refused = |e: &dyn std::fmt::Display| format!("Failed to start statsd sink: {e}");
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| refused(&e))?;
    let sink = UdpMetricSink::from(addr, socket).map_err(|e| refused(&e))?;
    recorder(QueuingMetricSink::with_capacity(sink, QUEUE))
}

pub fn statsite(addr: &str) -> Result<HostGauges<StatsdRecorder>, String> {
    let target = resolve(addr).map_err(|e| format!("Failed to start statsite sink: {e}"))?;
    let sink = TcpSink {
        target,
        stream: Mutex::new(None),
    };
    recorder(QueuingMetricSink::with_capacity(sink, QUEUE))
}

fn recorder(sink: QueuingMetricSink) -> Result<HostGauges<StatsdRecorder>, String> {
    let inner = StatsdBuilder::from("", 0)
        .with_sink(sink)
        .histogram_is_timer()
        .build(Some(PREFIX))
        .map_err(|e| format!("Failed to start statsd sink: {e}"))?;
    Ok(HostGauges {
        inner,
        host: crate::config::hostname(),
    })
}

fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("no address for {addr}")))
}

/// statsite's TCP stream: one connection, opened again after a failed write.
struct TcpSink {
    target: SocketAddr,
    stream: Mutex<Option<TcpStream>>,
}

impl MetricSink for TcpSink {
    fn emit(&self, metric: &str) -> io::Result<usize> {
        let mut stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        if stream.is_none() {
            *stream = Some(TcpStream::connect_timeout(&self.target, CONNECT_TIMEOUT)?);
        }
        let line = format!("{metric}\n");
        let written = stream
            .as_mut()
            .expect("connected above")
            .write_all(line.as_bytes());
        if let Err(e) = written {
            *stream = None;
            return Err(e);
        }
        Ok(line.len())
    }
}

/// Names each gauge `<host>.<name>` before the prefix is put in front; counters and
/// timers pass unchanged.
pub struct HostGauges<R> {
    inner: R,
    host: String,
}

impl<R: Recorder> Recorder for HostGauges<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description)
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description)
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description)
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.inner.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let named = Key::from_parts(
            format!("{}.{}", self.host, key.name()),
            key.labels().cloned().collect::<Vec<_>>(),
        );
        self.inner.register_gauge(&named, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.inner.register_histogram(key, metadata)
    }
}
