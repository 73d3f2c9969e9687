//! `monitor {LogLevel}` (`serf monitor`): the lines of the agent's log ring at or above the
//! level, the ones kept so far first, then each new one, as `{Log}` records under the
//! request's Seq until the client stops the stream or hangs up.

use super::streams::{OpenStream, RecordSink, StreamTask};
use crate::logs::ring::{LogLine, LogRing, parse_serf_level};
use musubi_serf_rpc::codec::LogRecord;
use tokio::sync::broadcast::error::RecvError;
use tracing::{Level, warn};

/// The stream for `monitor`, or Serf's error for a level it does not know.
pub fn open(logs: &LogRing, level_name: &str) -> Result<OpenStream, String> {
    let Some(min_level) = parse_serf_level(level_name) else {
        return Err(format!(
            "Unknown log level: {}",
            level_name.to_ascii_uppercase()
        ));
    };
    // Subscribed now, before the reply is queued: no line falls between backlog and live.
    let (backlog, mut live) = logs.subscribe();
    Ok(Box::new(move |sink: RecordSink| {
        Box::pin(async move {
            for line in &backlog {
                if !send_if_wanted(&sink, line, min_level) {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(line) => {
                        if !send_if_wanted(&sink, &line, min_level) {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        warn!("monitor fell behind: {missed} log lines dropped");
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }) as StreamTask
    }))
}

/// tracing orders levels by verbosity: ERROR is the "smallest", TRACE the "largest".
fn send_if_wanted(sink: &RecordSink, line: &LogLine, min_level: Level) -> bool {
    line.level > min_level || sink.send(&LogRecord { log: &line.text })
}
