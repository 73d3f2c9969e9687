//! The agent's logs: to stderr, and to syslog with `-syslog`, filtered by `-log-level`,
//! which SIGHUP may change while the agent runs; and every line, whatever the level, into
//! the [`LogRing`] that `serf monitor` reads (Serf's log writer takes every level too, so
//! `serf monitor -log-level=debug` shows debug lines from an agent logging at info).

pub mod ring;
pub mod syslog;

use ring::LogRing;
use std::sync::Arc;
use syslog::Syslog;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, fmt, reload};

/// Changes the level of the logging set up by [`init`].
pub struct LogLevelControl {
    handle: reload::Handle<LevelFilter, Registry>,
}

impl LogLevelControl {
    /// `level` is tracing's name (see `config::log_level`).
    pub fn set(&self, level: &str) -> Result<(), String> {
        let filter = parse(level);
        self.handle
            .modify(|current| *current = filter)
            .map_err(|e| e.to_string())
    }
}

fn parse(level: &str) -> LevelFilter {
    level.parse().unwrap_or(LevelFilter::INFO)
}

/// What [`init`] hands back: the level to change on reload, the ring for `monitor`.
pub struct Logging {
    pub level: LogLevelControl,
    pub ring: Arc<LogRing>,
}

/// Install the process's logger. With `syslog`, every line that passes the level also goes
/// there, without the time and level that the syslog header already carries.
pub fn init(level: &str, syslog: Option<Syslog>) -> Logging {
    let (filter, handle) = reload::Layer::new(parse(level));
    let stderr = fmt::layer().with_writer(std::io::stderr).with_ansi(false);
    let syslog = syslog.map(|syslog| {
        fmt::layer()
            .with_writer(syslog)
            .with_ansi(false)
            .without_time()
            .with_level(false)
    });
    let ring = LogRing::new();
    // The level filters only the outputs it is for: the ring sees every line.
    tracing_subscriber::registry()
        .with(stderr.and_then(syslog).with_filter(filter))
        .with(ring.layer())
        .init();
    Logging {
        level: LogLevelControl { handle },
        ring,
    }
}
