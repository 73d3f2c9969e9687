//! Serf's telemetry: the agent records under Serf's and memberlist's metric names
//! (`serf.member.join`, `memberlist.udp.sent`, ...) through the `metrics` facade, and this
//! module installs the process's recorder: Prometheus text on `-http-addr`'s `/metrics`
//! (dots become underscores, as Consul's Prometheus sink names them), statsd lines over UDP
//! to `statsd_addr` and over TCP to `statsite_addr`, under Serf's `serf-agent` prefix.
//! With none of the three configured no recorder is installed and every call site is a
//! no-op. docs/operations.md lists the metrics. The same listener serves `/v1/members`
//! for the dashboard ([`http`]).

mod http;
mod names;
mod sinks;

pub use http::NodeSlot;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::FanoutBuilder;
use std::net::SocketAddr;
use std::time::Duration;

/// How often the Prometheus summaries drop samples that fell out of their window.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Where the agent's metrics go, from `-http-addr`/`http_addr`, `statsd_addr` and
/// `statsite_addr`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub http_addr: Option<SocketAddr>,
    pub statsd_addr: Option<String>,
    pub statsite_addr: Option<String>,
}

/// Install the recorder and start serving `/metrics` (and `/v1/members`, once the agent
/// fills the returned slot with its node). Call once, before the node starts, so that the
/// first join is counted. Errors are worded for the agent's `==>` line.
pub async fn start(settings: &Settings) -> Result<NodeSlot, String> {
    let node = NodeSlot::default();
    let mut fanout = FanoutBuilder::default();
    let mut any = false;
    let mut prometheus = None;
    if let Some(addr) = settings.http_addr {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("Error starting HTTP listener: {addr}: {e}"))?;
        prometheus = Some((listener, handle));
        fanout = fanout.add_recorder(recorder);
        any = true;
    }
    if let Some(addr) = &settings.statsd_addr {
        fanout = fanout.add_recorder(sinks::statsd(addr)?);
        any = true;
    }
    if let Some(addr) = &settings.statsite_addr {
        fanout = fanout.add_recorder(sinks::statsite(addr)?);
        any = true;
    }
    if !any {
        return Ok(node);
    }
    metrics::set_global_recorder(fanout.build())
        .map_err(|e| format!("Error setting up telemetry: {e}"))?;
    names::describe();
    // Lifeguard starts healthy and reports only changes.
    metrics::gauge!("memberlist.health.score").set(0.0);
    if let Some((listener, handle)) = prometheus {
        tokio::spawn(upkeep(handle.clone()));
        tokio::spawn(http::serve(listener, handle, node.clone()));
    }
    Ok(node)
}

async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}
