//! `musubi agent`'s flags, spelled as Serf spells them (`-node`, `-bind`, ...). Go's flag
//! package takes `-flag value`, `-flag=value` and the `--` forms alike; so do we.

use crate::address::{self, DEFAULT_GOSSIP_PORT};
use crate::query::QueryLimits;
use crate::user_events::DEFAULT_USER_EVENT_SIZE_LIMIT;
use clap::Parser;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "musubi agent",
    about = "A gossip agent that Serf's CLI and RPC clients can drive."
)]
pub struct AgentConfig {
    /// Name of this node; must be unique in the cluster (default: the hostname).
    #[arg(long)]
    pub node: Option<String>,
    /// Address to bind the gossip listener to, `ip[:port]`.
    #[arg(long, default_value = "0.0.0.0:7946", value_parser = gossip_addr)]
    pub bind: SocketAddr,
    /// Address other members reach this one at, `ip[:port]` (default: the bind address,
    /// or this host's outbound address when binding to all interfaces).
    #[arg(long)]
    pub advertise: Option<String>,
    /// An agent to join at start (repeatable); the agent exits if none can be reached.
    #[arg(long = "join")]
    pub join: Vec<String>,
    /// Address of the RPC listener the `serf` CLI talks to.
    #[arg(long = "rpc-addr", default_value = "127.0.0.1:7373")]
    pub rpc_addr: SocketAddr,
    /// A tag `key=value` for this node (repeatable).
    #[arg(long = "tag", value_parser = tag)]
    pub tags: Vec<(String, String)>,
    /// A JSON file holding this node's tags: read at start, rewritten when they change.
    #[arg(long = "tags-file")]
    pub tags_file: Option<PathBuf>,
    /// `[filter=]script` run on events, e.g. `member-join,user:deploy=./on-event.sh`
    /// (repeatable).
    #[arg(long = "event-handler")]
    pub event_handlers: Vec<String>,
    /// Base64 key (16, 24 or 32 bytes: AES-128, -192 or -256) that encrypts all gossip.
    #[arg(long = "encrypt")]
    pub encrypt_key: Option<String>,
    /// A JSON array of base64 keys, the primary first: read at start (it must exist),
    /// rewritten when `serf keys` changes the ring. Not together with -encrypt.
    #[arg(long = "keyring-file")]
    pub keyring_file: Option<PathBuf>,
    /// trace, debug, info, warn or err.
    #[arg(long = "log-level", default_value = "info", value_parser = log_level)]
    pub log_level: String,
    /// Largest user event (name plus payload) `serf event` may send, in bytes. Serf's
    /// `user_event_size_limit`: 512 by default; musubi allows up to 512 KiB (Serf: 9 KiB),
    /// sending events too big for gossip over the stream transport.
    #[arg(long = "user-event-size-limit", default_value_t = DEFAULT_USER_EVENT_SIZE_LIMIT,
          value_parser = payload_size_limit)]
    pub user_event_size_limit: usize,
    /// Serf's `disable_coordinates`: compute no network coordinate and share none.
    #[arg(long = "disable-coordinates")]
    pub disable_coordinates: bool,
    /// Serf's `query_size_limit`: the largest encoded query, in bytes. 1024 by default;
    /// musubi allows up to 512 KiB, sending queries too big for gossip over the stream
    /// transport.
    #[arg(long = "query-size-limit", default_value_t = QueryLimits::default().query_size,
          value_parser = payload_size_limit)]
    pub query_size_limit: usize,
    /// Serf's `query_response_size_limit`: the largest encoded answer, in bytes. 1024 by
    /// default; musubi allows up to 512 KiB, sending answers past one datagram over the
    /// stream transport.
    #[arg(long = "query-response-size-limit",
          default_value_t = QueryLimits::default().response_size,
          value_parser = payload_size_limit)]
    pub query_response_size_limit: usize,
    /// `-snapshot` / `snapshot_path`: where membership and clocks are recorded, to
    /// rejoin and restore the clocks after a restart.
    #[arg(long = "snapshot")]
    pub snapshot_path: Option<PathBuf>,
    /// `-rejoin` / `rejoin_after_leave`: rejoin from the snapshot even after a leave.
    #[arg(long = "rejoin")]
    pub rejoin_after_leave: bool,
    /// `-replay` / `replay_on_join`: `-join` replays past user events.
    #[arg(long = "replay")]
    pub replay_on_join: bool,
    // Serf sets these three only in config files; until musubi reads config files they
    // are hidden flags taking Go durations (docs/agent-lifecycle.md).
    /// `reconnect_interval`: how often a failed member is tried again (30s).
    #[arg(long = "reconnect-interval", hide = true, value_parser = crate::go_duration::parse)]
    pub reconnect_interval: Option<Duration>,
    /// `reconnect_timeout`: a failed member is reaped after this long (24h).
    #[arg(long = "reconnect-timeout", hide = true, value_parser = crate::go_duration::parse)]
    pub reconnect_timeout: Option<Duration>,
    /// `tombstone_timeout`: a left member is reaped after this long (24h).
    #[arg(long = "tombstone-timeout", hide = true, value_parser = crate::go_duration::parse)]
    pub tombstone_timeout: Option<Duration>,
}

/// The largest user event, query and query answer size limit: the encoded message must
/// fit one stream frame (`transport::MAX_FRAME`, 1 MiB) and one RPC request (1 MiB) with
/// room to spare.
pub const MAX_PAYLOAD_SIZE_LIMIT: usize = 512 * 1024;

impl AgentConfig {
    /// Parse Serf-style arguments (without the program or subcommand name).
    pub fn parse_serf_args(args: Vec<String>) -> Result<Self, clap::Error> {
        let normalized = args.into_iter().map(|arg| double_dash(&arg));
        AgentConfig::try_parse_from(std::iter::once("musubi agent".to_string()).chain(normalized))
    }

    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(hostname)
    }

    pub fn query_limits(&self) -> QueryLimits {
        QueryLimits {
            query_size: self.query_size_limit,
            response_size: self.query_response_size_limit,
        }
    }

    pub fn tag_map(&self) -> BTreeMap<String, String> {
        self.tags.iter().cloned().collect()
    }

    /// The gossip address others use for us. Serf refuses to advertise "all interfaces".
    pub fn advertise_addr(&self) -> Result<SocketAddr, String> {
        if let Some(text) = &self.advertise {
            return address::parse_ip_port(text, self.bind.port())
                .ok_or_else(|| format!("invalid -advertise address {text:?}"));
        }
        if !self.bind.ip().is_unspecified() {
            return Ok(self.bind);
        }
        outbound_ip()
            .map(|ip| SocketAddr::new(ip, self.bind.port()))
            .ok_or_else(|| "no address to advertise; set -advertise".to_string())
    }
}

/// `-flag` becomes `--flag`; `--flag`, `-` and values are left alone.
fn double_dash(arg: &str) -> String {
    match arg.strip_prefix('-') {
        Some(rest)
            if rest.len() > 1
                && !rest.starts_with('-')
                && !rest.starts_with(|c: char| c.is_ascii_digit()) =>
        {
            format!("--{rest}")
        }
        _ => arg.to_string(),
    }
}

fn gossip_addr(text: &str) -> Result<SocketAddr, String> {
    address::parse_ip_port(text, DEFAULT_GOSSIP_PORT)
        .ok_or_else(|| format!("not an ip[:port]: {text}"))
}

fn tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("tag must be key=value: {text}")),
    }
}

/// Serf's level names mapped onto tracing's.
fn log_level(text: &str) -> Result<String, String> {
    let level = match text.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" => "warn",
        "err" | "error" => "error",
        _ => {
            return Err(format!(
                "log level must be trace, debug, info, warn or err: {text}"
            ));
        }
    };
    Ok(level.to_string())
}

fn payload_size_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(limit) if limit <= MAX_PAYLOAD_SIZE_LIMIT => Ok(limit),
        _ => Err(format!(
            "a size limit is a number of bytes up to {MAX_PAYLOAD_SIZE_LIMIT}: {text}"
        )),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The source address this host would use to reach the outside; connecting a UDP
/// socket picks a route without sending anything.
fn outbound_ip() -> Option<IpAddr> {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    probe.connect("192.0.2.1:7946").ok()?;
    probe.local_addr().ok().map(|addr| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> AgentConfig {
        AgentConfig::parse_serf_args(args.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn serf_defaults() {
        let config = parse(&["-node", "a"]);
        assert_eq!(config.bind, "0.0.0.0:7946".parse().unwrap());
        assert_eq!(config.rpc_addr, "127.0.0.1:7373".parse().unwrap());
        assert_eq!(config.log_level, "info");
        assert_eq!(config.user_event_size_limit, 512);
        assert!(!config.disable_coordinates);
    }

    #[test]
    fn payload_limits_can_be_raised_to_512_kib() {
        let config = parse(&[
            "-user-event-size-limit=65600",
            "-query-size-limit=70000",
            "-query-response-size-limit",
            "524288",
            "-disable-coordinates",
        ]);
        assert_eq!(config.user_event_size_limit, 65_600);
        assert_eq!(config.query_limits().query_size, 70_000);
        assert_eq!(config.query_limits().response_size, 524_288);
        assert!(config.disable_coordinates);
        for flag in ["-user-event-size-limit", "-query-size-limit"] {
            let too_big = vec![flag.to_string(), "524289".to_string()];
            assert!(AgentConfig::parse_serf_args(too_big).is_err());
        }
    }

    #[test]
    fn single_and_double_dash_forms_mix() {
        let config = parse(&[
            "-node=a",
            "--bind",
            "127.0.0.1:8000",
            "-join",
            "b:1",
            "-join=c",
            "-tag",
            "role=web",
            "-tag=dc=east=1",
            "-log-level=ERR",
            "-encrypt=kdBhiHF8f0PdghUnk62pFz1Nw3ph0l3O9n+TPkiHgsA=",
            "-keyring-file",
            "/k.json",
        ]);
        assert_eq!(
            config.encrypt_key.as_deref(),
            Some("kdBhiHF8f0PdghUnk62pFz1Nw3ph0l3O9n+TPkiHgsA=")
        );
        assert_eq!(config.keyring_file, Some(PathBuf::from("/k.json")));
        assert_eq!(config.node_name(), "a");
        assert_eq!(config.join, vec!["b:1", "c"]);
        assert_eq!(config.tag_map()["dc"], "east=1");
        assert_eq!(config.log_level, "error");
        assert_eq!(
            config.advertise_addr().unwrap(),
            "127.0.0.1:8000".parse().unwrap()
        );
    }

    #[test]
    fn advertise_takes_the_bind_port_by_default() {
        let config = parse(&["-bind", "0.0.0.0:8000", "-advertise", "10.1.2.3"]);
        assert_eq!(
            config.advertise_addr().unwrap(),
            "10.1.2.3:8000".parse().unwrap()
        );
    }

    #[test]
    fn malformed_flags_are_usage_errors() {
        for args in [
            &["-tag", "novalue"][..],
            &["-bind", "nowhere"],
            &["-log-level", "loud"],
        ] {
            let args = args.iter().map(|s| s.to_string()).collect();
            assert!(AgentConfig::parse_serf_args(args).is_err());
        }
    }
}
