//! The member's log: plain text (the default, as etcd 3.4's capnslog), or one JSON object
//! a line in the shape of etcd's zap logger (`--logger zap`, or `--log-format json`):
//! `{"level":"info","ts":"...","caller":"...","msg":"...", fields...}`, so the log
//! pipelines built for etcd's JSON logs read musubi's. Written to each of
//! `--log-outputs`: `default`/`stderr`, `stdout`, or a file (appended to, created 0600).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogOutput {
    Stderr,
    Stdout,
    File(std::path::PathBuf),
}

impl LogOutput {
    /// One `--log-outputs` item, as etcd 3.4 names them.
    pub fn parse(item: &str) -> Result<LogOutput, String> {
        match item {
            "default" | "stderr" => Ok(LogOutput::Stderr),
            "stdout" => Ok(LogOutput::Stdout),
            "systemd/journal" => Err(
                "systemd/journal is not supported: log to stderr, which systemd's journal takes"
                    .into(),
            ),
            "" => Err("an empty output".into()),
            path => Ok(LogOutput::File(path.into())),
        }
    }
}

/// Installs the process's logger; `level` is `--log-level`, which `MUSUBI_LOG` or
/// `RUST_LOG` (tracing's filter syntax) override.
pub fn init(level: &str, format: LogFormat, outputs: &[LogOutput]) -> io::Result<()> {
    let filter = std::env::var("MUSUBI_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        // openraft warns once per failed heartbeat (ten lines a second while a member is
        // down) and once per failed vote request, naming members by decimal ID; the peer
        // client reports reachability instead, by name and hex ID, once per change and
        // once per interval (consensus/src/network/reachability.rs).
        .unwrap_or_else(|_| {
            format!(
                "{level},openraft=warn,openraft::core::heartbeat=error,openraft::core::raft_core=error"
            )
        });
    let writer = Outputs::open(outputs)?;
    let ansi = format == LogFormat::Text
        && outputs == [LogOutput::Stderr]
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(ansi)
        .with_writer(writer);
    // A logger already installed (a test harness's) wins.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.event_format(ZapJson).try_init(),
    };
    Ok(())
}

/// Every output of `--log-outputs`, each line written to all of them.
#[derive(Clone)]
struct Outputs(Arc<[Output]>);

enum Output {
    Stderr,
    Stdout,
    File(parking_lot::Mutex<File>),
}

impl Outputs {
    fn open(outputs: &[LogOutput]) -> io::Result<Outputs> {
        let opened = outputs
            .iter()
            .map(|o| match o {
                LogOutput::Stderr => Ok(Output::Stderr),
                LogOutput::Stdout => Ok(Output::Stdout),
                LogOutput::File(path) => OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)
                    .map(|f| Output::File(parking_lot::Mutex::new(f)))
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Outputs(opened.into()))
    }
}

/// One formatted line, handed to every output when it is complete.
struct Line {
    outputs: Outputs,
    buf: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        for output in self.outputs.0.iter() {
            // A log line that cannot be written is dropped: there is nowhere to report it.
            let _ = match output {
                Output::Stderr => io::stderr().write_all(&self.buf),
                Output::Stdout => io::stdout().write_all(&self.buf),
                Output::File(file) => file.lock().write_all(&self.buf),
            };
        }
    }
}

impl<'a> MakeWriter<'a> for Outputs {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            outputs: self.clone(),
            buf: Vec::with_capacity(256),
        }
    }
}

/// etcd's zap encoder's keys: `level`, `ts` (RFC 3339, UTC, ms), `caller`, `msg`, then the
/// event's own fields.
struct ZapJson;

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = serde_json::Map::new();
        line.insert(
            "level".into(),
            meta.level().as_str().to_ascii_lowercase().into(),
        );
        line.insert("ts".into(), timestamp().into());
        let caller = match (meta.file(), meta.line()) {
            (Some(file), Some(n)) => format!("{file}:{n}"),
            _ => meta.target().to_string(),
        };
        line.insert("caller".into(), caller.into());
        let mut fields = JsonFields(serde_json::Map::new());
        event.record(&mut fields);
        let msg = fields.0.remove("message").unwrap_or_default();
        line.insert("msg".into(), msg);
        line.extend(fields.0);
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// RFC 3339 in UTC with milliseconds, as zap's ISO 8601 time encoder writes it.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&format).unwrap_or_default()
}

/// An event's fields as JSON values: numbers and booleans as such, the rest as text.
struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
