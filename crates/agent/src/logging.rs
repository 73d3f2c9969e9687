//! The agent's logs: to stderr, and to syslog with `-syslog`, filtered by `-log-level`,
//! which SIGHUP may change while the agent runs.

use crate::syslog::Syslog;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
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

/// Install the process's logger. With `syslog`, every line that passes the level also goes
/// there, without the time and level that the syslog header already carries.
pub fn init(level: &str, syslog: Option<Syslog>) -> LogLevelControl {
    let (filter, handle) = reload::Layer::new(parse(level));
    let stderr = fmt::layer().with_writer(std::io::stderr).with_ansi(false);
    let syslog = syslog.map(|syslog| {
        fmt::layer()
            .with_writer(syslog)
            .with_ansi(false)
            .without_time()
            .with_level(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(syslog)
        .init();
    LogLevelControl { handle }
}
