//! The agent's recent log, for `serf monitor`: a tracing layer formats every event as a
//! Serf log line (`2026/11/24 20:14:11 [INFO] agent.node: member b is alive at ...`),
//! keeps the last [`RING_LINES`] and hands each new one to the monitors listening.
//!
//! Like Serf's log writer, the ring takes every level, whatever `-log-level` lets through
//! to stderr, so `serf monitor -log-level=debug` shows debug lines from an agent logging
//! at info. Times are UTC (Serf writes local time; agents usually run in UTC).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Serf's log writer keeps as many, and `monitor` replays them first.
pub const RING_LINES: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub text: String,
}

pub struct LogRing {
    state: Mutex<RingState>,
}

struct RingState {
    lines: VecDeque<LogLine>,
    /// Monitors that fall more than the ring's length behind miss lines, as Serf's do.
    live: broadcast::Sender<LogLine>,
}

impl LogRing {
    pub fn new() -> Arc<Self> {
        Arc::new(LogRing {
            state: Mutex::new(RingState {
                lines: VecDeque::with_capacity(RING_LINES),
                live: broadcast::channel(RING_LINES).0,
            }),
        })
    }

    /// The tracing layer that fills this ring.
    pub fn layer(self: &Arc<Self>) -> RingLayer {
        RingLayer { ring: self.clone() }
    }

    /// The lines kept so far and a receiver for every later one, with none lost or
    /// repeated between the two.
    pub fn subscribe(&self) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let state = self.lock();
        (
            state.lines.iter().cloned().collect(),
            state.live.subscribe(),
        )
    }

    fn push(&self, line: LogLine) {
        let mut state = self.lock();
        if state.lines.len() == RING_LINES {
            state.lines.pop_front();
        }
        state.lines.push_back(line.clone());
        // No monitor listening is the usual case, not an error.
        let _ = state.live.send(line);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RingState> {
        // Poisoning would need a panic while pushing a line; keep logging regardless.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct RingLayer {
    ring: Arc<LogRing>,
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut text = String::with_capacity(128);
        let _ = write!(
            text,
            "{} [{}] {}: ",
            serf_timestamp(SystemTime::now()),
            serf_level_name(*metadata.level()),
            subsystem(metadata.target())
        );
        event.record(&mut LineWriter(&mut text));
        self.ring.push(LogLine {
            level: *metadata.level(),
            text,
        });
    }
}

/// Writes the message, then any other fields as ` key=value`.
struct LineWriter<'a>(&'a mut String);

impl Visit for LineWriter<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = match field.name() {
            "message" => write!(self.0, "{value:?}"),
            name => write!(self.0, " {name}={value:?}"),
        };
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = match field.name() {
            "message" => write!(self.0, "{value}"),
            name => write!(self.0, " {name}={value}"),
        };
    }
}

/// Serf's level names, which `monitor`'s LogLevel also uses.
pub fn serf_level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERR",
    }
}

/// `monitor`'s LogLevel, case-insensitive as Serf takes it; None for a name Serf refuses.
pub fn parse_serf_level(name: &str) -> Option<Level> {
    match name.to_ascii_uppercase().as_str() {
        "TRACE" => Some(Level::TRACE),
        "DEBUG" => Some(Level::DEBUG),
        "INFO" => Some(Level::INFO),
        "WARN" => Some(Level::WARN),
        "ERR" => Some(Level::ERROR),
        _ => None,
    }
}

/// `musubi_agent::rpc::server` becomes `agent.rpc.server`, in the manner of Serf's
/// `agent.ipc`; other crates keep their names.
fn subsystem(target: &str) -> String {
    let dotted = target.replace("::", ".");
    match dotted.strip_prefix("musubi_agent") {
        Some(rest) => format!("agent{rest}"),
        None => dotted,
    }
}

/// Go's log timestamp, `2006/01/02 15:04:05`, in UTC.
fn serf_timestamp(now: SystemTime) -> String {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn timestamps_are_gos_log_format() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_896_851); // 2026-11-28 20:14:11
        assert_eq!(serf_timestamp(at), "2026/11/28 20:14:11");
        assert_eq!(serf_timestamp(UNIX_EPOCH), "1970/01/01 00:00:00");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(serf_timestamp(leap_day), "2000/02/29 00:00:00");
    }

    #[test]
    fn levels_use_serfs_names() {
        assert_eq!(parse_serf_level("debug"), Some(Level::DEBUG));
        assert_eq!(parse_serf_level("ERR"), Some(Level::ERROR));
        assert_eq!(parse_serf_level("error"), None);
        assert_eq!(serf_level_name(Level::ERROR), "ERR");
    }

    #[test]
    fn the_ring_keeps_the_last_lines_and_fans_out_new_ones() {
        let ring = LogRing::new();
        let subscriber = tracing_subscriber::registry().with(ring.layer());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..RING_LINES + 3 {
                tracing::debug!(target: "musubi_agent::node", "line {i}");
            }
            let (backlog, mut live) = ring.subscribe();
            assert_eq!(backlog.len(), RING_LINES);
            assert!(backlog[0].text.ends_with("[DEBUG] agent.node: line 3"));
            tracing::warn!(target: "foca", peer = 7, "late");
            let line = live.try_recv().unwrap();
            assert_eq!(line.level, Level::WARN);
            assert!(
                line.text.ends_with("[WARN] foca: late peer=7"),
                "{}",
                line.text
            );
        });
    }
}
