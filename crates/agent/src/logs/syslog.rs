//! `-syslog` / `enable_syslog`: every log line also goes to the local syslog daemon, as an
//! RFC 3164 datagram on its unix socket (`/dev/log`), the way glibc's syslog(3) and Go's
//! log/syslog write locally: `<PRI>Mmm dd hh:mm:ss musubi[PID]: message`.
//!
//! Written here rather than through a crate so that the socket path can be overridden
//! (`MUSUBI_SYSLOG_SOCKET`), which lets tests read what would reach the daemon.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use time::OffsetDateTime;
use time::macros::format_description;
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// Where syslog daemons listen; Serf's go-syslog tries the same three.
const SOCKET_PATHS: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];
/// Overrides [`SOCKET_PATHS`] (musubi only; Serf has no such setting).
pub const SOCKET_ENV: &str = "MUSUBI_SYSLOG_SOCKET";
const TAG: &str = "musubi";

/// A connected syslog socket with the facility chosen by `syslog_facility`.
#[derive(Clone)]
pub struct Syslog {
    socket: Arc<UnixDatagram>,
    facility: u8,
}

impl Syslog {
    /// Connect to the local daemon. Errors are worded as Serf's (`Syslog setup failed: ...`
    /// is added by the caller).
    pub fn connect(facility: &str) -> Result<Syslog, String> {
        let facility = facility_code(facility)?;
        let paths: Vec<PathBuf> = match std::env::var_os(SOCKET_ENV) {
            Some(path) => vec![path.into()],
            None => SOCKET_PATHS.iter().map(PathBuf::from).collect(),
        };
        for path in &paths {
            let socket = UnixDatagram::unbound().map_err(|e| e.to_string())?;
            if socket.connect(path).is_ok() {
                return Ok(Syslog {
                    socket: Arc::new(socket),
                    facility,
                });
            }
        }
        Err("Unix syslog delivery error".to_string())
    }

    /// Serf's mapping of its log levels onto syslog severities (one step less severe
    /// than the names suggest: Serf's INFO is syslog's NOTICE).
    fn severity(level: &Level) -> u8 {
        match *level {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 5,
            Level::DEBUG => 6,
            Level::TRACE => 7,
        }
    }

    fn send(&self, level: &Level, message: &[u8]) -> io::Result<()> {
        let message = String::from_utf8_lossy(message);
        let message = message.trim_end_matches('\n');
        let pri = u16::from(self.facility) * 8 + u16::from(Self::severity(level));
        let stamp = OffsetDateTime::now_utc()
            .format(format_description!(
                "[month repr:short] [day padding:space] [hour]:[minute]:[second]"
            ))
            .map_err(io::Error::other)?;
        let datagram = format!("<{pri}>{stamp} {TAG}[{}]: {message}", std::process::id());
        self.socket.send(datagram.as_bytes()).map(|_| ())
    }
}

/// Serf's facility names (go-syslog's), case-insensitive.
fn facility_code(name: &str) -> Result<u8, String> {
    let code = match name.to_ascii_uppercase().as_str() {
        "KERN" => 0,
        "USER" => 1,
        "MAIL" => 2,
        "DAEMON" => 3,
        "AUTH" => 4,
        "SYSLOG" => 5,
        "LPR" => 6,
        "NEWS" => 7,
        "UUCP" => 8,
        "CRON" => 9,
        "AUTHPRIV" => 10,
        "FTP" => 11,
        local => match local
            .strip_prefix("LOCAL")
            .and_then(|n| n.parse::<u8>().ok())
        {
            Some(n @ 0..=7) => 16 + n,
            _ => return Err(format!("invalid syslog facility: {name}")),
        },
    };
    Ok(code)
}

/// One formatted log line per write, sent as one datagram at the line's level.
pub struct SyslogLine {
    syslog: Syslog,
    level: Level,
}

impl io::Write for SyslogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A daemon that went away must not take the agent down: the line is lost.
        let _ = self.syslog.send(&self.level, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;

    /// Only used by writers that do not say the level; fmt asks `make_writer_for`.
    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine {
            syslog: self.clone(),
            level: Level::INFO,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogLine {
        SyslogLine {
            syslog: self.clone(),
            level: *meta.level(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities_as_serf_names_them() {
        assert_eq!(facility_code("LOCAL0"), Ok(16));
        assert_eq!(facility_code("local7"), Ok(23));
        assert_eq!(facility_code("daemon"), Ok(3));
        assert!(facility_code("LOCAL8").is_err());
        assert!(facility_code("nope").is_err());
    }

    #[test]
    fn a_line_is_one_rfc3164_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let daemon = UnixDatagram::bind(&path).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        client.connect(&path).unwrap();
        let syslog = Syslog {
            socket: Arc::new(client),
            facility: 16,
        };
        syslog.send(&Level::WARN, b"agent: hello\n").unwrap();
        let mut buf = [0u8; 512];
        let len = daemon.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(text.starts_with("<132>"), "{text}");
        assert!(
            text.ends_with(&format!(" musubi[{}]: agent: hello", std::process::id())),
            "{text}"
        );
    }
}
