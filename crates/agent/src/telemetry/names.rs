//! Serf's metric names for the agent's events, and their descriptions (Prometheus's
//! `# HELP` lines).

use crate::events::MemberEventKind;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use std::time::Duration;
use tokio::time::Instant;

/// Serf's `FlapTimeout`: a member failed for less than this that joins again flapped.
const FLAP_TIMEOUT: Duration = Duration::from_secs(60);

/// A member event this node reports: `serf.member.join|left|failed|update`, and
/// `serf.member.flap` too for a join of a member failed since less than Serf's flap
/// timeout.
pub fn member_event(kind: MemberEventKind, failed_since: Option<Instant>) {
    let name = match kind {
        MemberEventKind::Join => "serf.member.join",
        MemberEventKind::Leave => "serf.member.left",
        MemberEventKind::Failed => "serf.member.failed",
        MemberEventKind::Update => "serf.member.update",
        // Serf counts no reaping.
        MemberEventKind::Reap => return,
    };
    metrics::counter!(name).increment(1);
    let flapped = failed_since.is_some_and(|since| since.elapsed() < FLAP_TIMEOUT);
    if kind == MemberEventKind::Join && flapped {
        metrics::counter!("serf.member.flap").increment(1);
    }
}

/// A user event seen here for the first time: `serf.events` and `serf.events.<name>`.
pub fn user_event_received(name: &str) {
    metrics::counter!("serf.events").increment(1);
    metrics::counter!(format!("serf.events.{name}")).increment(1);
}

/// A query seen here for the first time: `serf.queries` and `serf.queries.<name>`.
pub fn query_received(name: &str) {
    metrics::counter!("serf.queries").increment(1);
    metrics::counter!(format!("serf.queries.{name}")).increment(1);
}

pub(super) fn describe() {
    for (name, help) in [
        ("serf.member.join", "Members seen joining (or rejoining)."),
        ("serf.member.left", "Members seen leaving gracefully."),
        ("serf.member.failed", "Members seen failing."),
        ("serf.member.update", "Members seen changing their tags."),
        (
            "serf.member.flap",
            "Joins of members that failed less than 60 s before.",
        ),
        ("serf.events", "User events received (each once)."),
        ("serf.queries", "Queries received (each once)."),
        ("serf.query_acks", "Acks received for this node's queries."),
        (
            "serf.query_responses",
            "Responses received for this node's queries.",
        ),
        (
            "serf.coordinate.rejected",
            "Round trips the Vivaldi client refused.",
        ),
        ("memberlist.udp.sent", "Bytes sent over UDP."),
        ("memberlist.udp.received", "Bytes received over UDP."),
        ("memberlist.tcp.connect", "Stream connections opened."),
        ("memberlist.tcp.accept", "Stream connections accepted."),
        ("memberlist.tcp.sent", "Bytes sent over stream connections."),
    ] {
        describe_counter!(name, help);
        // Present from the first scrape, so that a rate over it starts at the start.
        metrics::counter!(name).absolute(0);
    }
    describe_gauge!(
        "memberlist.health.score",
        "Lifeguard's local health score: 0 is healthy, higher is more doubt about ourselves."
    );
    describe_histogram!(
        "memberlist.probeNode",
        Unit::Milliseconds,
        "Round trip of this node's answered probes, in milliseconds."
    );
    describe_histogram!(
        "serf.coordinate.adjustment-ms",
        Unit::Milliseconds,
        "How far each round trip moved this node's coordinate, in milliseconds."
    );
}
