//! Serf's counters for what the core sees, under Serf's metric names, through the
//! `metrics` facade (no-ops until the binary installs a recorder).

use super::MemberEventKind;
use std::time::{Duration, Instant};

/// Serf's `FlapTimeout`: a member failed for less than this that joins again flapped.
const FLAP_TIMEOUT: Duration = Duration::from_secs(60);

/// A member event this member reports: `serf.member.join|left|failed|update`, and
/// `serf.member.flap` too for a join of a member failed since less than Serf's flap
/// timeout.
pub(super) fn member_event(kind: MemberEventKind, failed_since: Option<Instant>, now: Instant) {
    let name = match kind {
        MemberEventKind::Join => "serf.member.join",
        MemberEventKind::Leave => "serf.member.left",
        MemberEventKind::Failed => "serf.member.failed",
        MemberEventKind::Update => "serf.member.update",
        // Serf counts no reaping.
        MemberEventKind::Reap => return,
    };
    metrics::counter!(name).increment(1);
    let flapped = failed_since.is_some_and(|since| now.duration_since(since) < FLAP_TIMEOUT);
    if kind == MemberEventKind::Join && flapped {
        metrics::counter!("serf.member.flap").increment(1);
    }
}

/// A user event seen here for the first time: `serf.events` and `serf.events.<name>`.
pub(super) fn user_event_received(name: &str) {
    metrics::counter!("serf.events").increment(1);
    metrics::counter!(format!("serf.events.{name}")).increment(1);
}

/// A query seen here for the first time: `serf.queries` and `serf.queries.<name>`.
pub(super) fn query_received(name: &str) {
    metrics::counter!("serf.queries").increment(1);
    metrics::counter!(format!("serf.queries.{name}")).increment(1);
}
