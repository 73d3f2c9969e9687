//! `musubi agent`'s settings, resolved: Serf's defaults, then the config files
//! (`-config-file`, `-config-dir`, in the order given), then the flags, merged as Serf merges
//! them ([`ConfigLayer::merge`]), then checked. The flags are parsed by Go's rules, as
//! `serf agent` parses them ([`flags`]).

pub mod address;
pub mod file;
pub mod flags;
pub mod layer;
pub mod tags_file;
mod unused;

use crate::config_store;
use address::DEFAULT_GOSSIP_PORT;
use layer::ConfigLayer;
use musubi_gossip::profile::Profile;
use musubi_gossip::query::QueryLimits;
use musubi_gossip::user_events::DEFAULT_USER_EVENT_SIZE_LIMIT;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Serf's floor for `-retry-interval`: shorter is raised to it, with a warning.
const MIN_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// The Serf protocol versions Serf 0.8 speaks; `-protocol` must be one of them.
const PROTOCOL_RANGE: std::ops::RangeInclusive<i64> = 2..=5;
/// Serf's floor for `-broadcast-timeout`.
const MIN_BROADCAST_TIMEOUT: Duration = Duration::from_millis(100);
/// The largest user event, query and query answer size limit: the encoded message must
/// fit one stream frame (`transport::MAX_FRAME`, 1 MiB) and one RPC request (1 MiB) with
/// room to spare. (Serf caps user events at 9 KiB and queries not at all.)
pub const MAX_PAYLOAD_SIZE_LIMIT: usize = 512 * 1024;

#[derive(Debug)]
pub enum ConfigError {
    /// A command line Go's `flag` refuses (or `-help=false`, Go's help request).
    Flag(musubi_gocompat::flag::FlagError),
    /// A file or value Serf would refuse; the message is Serf's.
    Invalid(String),
}

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        ConfigError::Invalid(message)
    }
}

/// Everything the agent runs with. Settings whose features live elsewhere (encryption,
/// snapshots, reconnecting, limits) are carried here so that their keys and flags are
/// known; each is documented in docs/agent-config.md.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: String,
    pub bind: SocketAddr,
    pub advertise: Option<String>,
    /// `-join` / `start_join`: joined at start; the agent exits if none answers.
    pub join: Vec<String>,
    pub retry_join: Vec<String>,
    pub retry_interval: Duration,
    /// Failed retry-join rounds retried after; 0 (or less) retries forever.
    pub retry_max_attempts: i64,
    pub replay_on_join: bool,
    pub rpc_addr: SocketAddr,
    pub rpc_auth: Option<String>,
    /// The node's tags, the deprecated `role` included.
    pub tags: BTreeMap<String, String>,
    pub tags_file: Option<PathBuf>,
    pub event_handlers: Vec<String>,
    /// tracing's name for the level (`error` for Serf's `ERR`).
    pub log_level: String,
    pub profile: Profile,
    pub leave_on_terminate: bool,
    pub skip_leave_on_interrupt: bool,
    pub enable_syslog: bool,
    pub syslog_facility: String,
    pub discover: Option<String>,
    pub interface: Option<String>,
    pub protocol: i64,
    pub enable_compression: bool,
    pub broadcast_timeout: Duration,
    pub encrypt_key: Option<String>,
    pub keyring_file: Option<PathBuf>,
    pub snapshot_path: Option<PathBuf>,
    pub rejoin_after_leave: bool,
    pub reconnect_interval: Option<Duration>,
    pub reconnect_timeout: Option<Duration>,
    pub tombstone_timeout: Option<Duration>,
    pub disable_name_resolution: bool,
    pub disable_coordinates: bool,
    pub query_size_limit: usize,
    pub query_response_size_limit: usize,
    pub user_event_size_limit: usize,
    pub statsite_addr: Option<String>,
    pub statsd_addr: Option<String>,
    /// `-http-addr`: where `/metrics` is served.
    pub http_addr: Option<SocketAddr>,
    /// Warnings naming the settings given that musubi does not use.
    pub unused: Vec<String>,
    /// `-config-store` and its store; none without a prefix.
    pub config_store: Option<config_store::Settings>,
    /// Warnings Serf prints at start (`Warning: 'RetryInterval' is too low...`).
    pub notices: Vec<String>,
}

impl AgentConfig {
    /// Read the flags (without the program or subcommand name) and the config files they
    /// name, and resolve them. Called again on SIGHUP with the same arguments.
    pub fn load(args: &[String]) -> Result<AgentConfig, ConfigError> {
        AgentConfig::load_with(args, ConfigLayer::default())
    }

    /// As [`load`](Self::load), with the store's layer (`-config-store`) between the files
    /// and the flags.
    pub fn load_with(args: &[String], store: ConfigLayer) -> Result<AgentConfig, ConfigError> {
        let flags = flags::parse(args).map_err(|refusal| match refusal {
            flags::Refusal::Syntax(e) => ConfigError::Flag(e),
            flags::Refusal::Value(message) => ConfigError::Invalid(message),
        })?;
        let files = file::read_paths(&flags.config_paths)?;
        Ok(AgentConfig::resolve(files.merge(store).merge(flags.layer))?)
    }

    pub fn node_name(&self) -> String {
        self.node.clone()
    }

    pub fn tag_map(&self) -> BTreeMap<String, String> {
        self.tags.clone()
    }

    pub fn telemetry(&self) -> crate::telemetry::Settings {
        crate::telemetry::Settings {
            http_addr: self.http_addr,
            statsd_addr: self.statsd_addr.clone(),
            statsite_addr: self.statsite_addr.clone(),
        }
    }

    pub fn query_limits(&self) -> QueryLimits {
        QueryLimits {
            query_size: self.query_size_limit,
            response_size: self.query_response_size_limit,
        }
    }

    /// The gossip address others use for us. Serf refuses to advertise "all interfaces".
    pub fn advertise_addr(&self) -> Result<SocketAddr, String> {
        if let Some(text) = &self.advertise {
            return address::parse_ip_port(text, self.bind.port())
                .ok_or_else(|| format!("Invalid advertise address: {text}"));
        }
        if !self.bind.ip().is_unspecified() {
            return Ok(self.bind);
        }
        outbound_ip()
            .map(|ip| SocketAddr::new(ip, self.bind.port()))
            .ok_or_else(|| "no address to advertise; set -advertise".to_string())
    }

    fn resolve(layer: ConfigLayer) -> Result<AgentConfig, String> {
        let unused = unused::warnings(&layer);
        let mut notices = Vec::new();
        let mut tags: BTreeMap<String, String> = layer.tags.into_iter().collect();
        if let Some(role) = layer.role.filter(|r| !r.is_empty()) {
            notices.push("Deprecation warning: 'Role' has been replaced with 'Tags'".to_string());
            tags.insert("role".to_string(), role);
        }
        let mut retry_interval = layer.retry_interval.unwrap_or(Duration::from_secs(30));
        if retry_interval < MIN_RETRY_INTERVAL {
            retry_interval = MIN_RETRY_INTERVAL;
            notices.push("Warning: 'RetryInterval' is too low. Setting to 1s".to_string());
        }
        let mut broadcast_timeout = layer.broadcast_timeout.unwrap_or(Duration::from_secs(5));
        if broadcast_timeout < MIN_BROADCAST_TIMEOUT {
            broadcast_timeout = MIN_BROADCAST_TIMEOUT;
            notices.push("Warning: 'BroadcastTimeout' is too low. Setting to 100ms".to_string());
        }
        let rejoin_after_leave = layer.rejoin_after_leave.unwrap_or(false);
        if rejoin_after_leave && layer.snapshot_path.is_none() {
            notices.push("Warning: 'RejoinAfterLeave' enabled without snapshot file".to_string());
        }
        let bind_text = layer.bind.unwrap_or_else(|| "0.0.0.0".to_string());
        let mut bind = address::parse_ip_port(&bind_text, DEFAULT_GOSSIP_PORT)
            .ok_or_else(|| format!("Invalid bind address: {bind_text}"))?;
        if let Some(name) = &layer.interface {
            let chosen = bind_on_interface(name, bind)?;
            if chosen != bind {
                notices.push(format!(
                    "Using interface '{name}' address '{}'",
                    chosen.ip()
                ));
            }
            bind = chosen;
        }
        let protocol = layer
            .protocol
            .filter(|&p| p > 0)
            .unwrap_or(*PROTOCOL_RANGE.end());
        if !PROTOCOL_RANGE.contains(&protocol) {
            let side = if protocol > *PROTOCOL_RANGE.end() {
                "high"
            } else {
                "low"
            };
            return Err(format!(
                "Failed to start the Serf agent: Error creating Serf: Protocol version '{protocol}' \
                 too {side}. Must be in range: [{}, {}]",
                PROTOCOL_RANGE.start(),
                PROTOCOL_RANGE.end()
            ));
        }
        let rpc_text = layer
            .rpc_addr
            .unwrap_or_else(|| "127.0.0.1:7373".to_string());
        let rpc_addr = rpc_text
            .parse()
            .map_err(|e| format!("Error starting RPC listener: {rpc_text}: {e}"))?;
        let query_defaults = QueryLimits::default();
        let user_event_size_limit = size_limit(
            "user event",
            layer.user_event_size_limit,
            DEFAULT_USER_EVENT_SIZE_LIMIT,
        )?;
        let query_size_limit =
            size_limit("query", layer.query_size_limit, query_defaults.query_size)?;
        let query_response_size_limit = size_limit(
            "query response",
            layer.query_response_size_limit,
            query_defaults.response_size,
        )?;
        Ok(AgentConfig {
            node: layer.node_name.unwrap_or_else(hostname),
            bind,
            advertise: layer.advertise,
            join: layer.start_join,
            retry_join: layer.retry_join,
            retry_interval,
            retry_max_attempts: layer.retry_max_attempts.unwrap_or(0),
            replay_on_join: layer.replay_on_join.unwrap_or(false),
            rpc_addr,
            rpc_auth: layer.rpc_auth,
            tags,
            tags_file: layer.tags_file,
            event_handlers: layer.event_handlers,
            log_level: log_level(layer.log_level.as_deref().unwrap_or("INFO"))?,
            profile: Profile::parse(layer.profile.as_deref().unwrap_or("lan"))
                .map_err(|e| e.to_string())?,
            leave_on_terminate: layer.leave_on_terminate.unwrap_or(false),
            skip_leave_on_interrupt: layer.skip_leave_on_interrupt.unwrap_or(false),
            enable_syslog: layer.enable_syslog.unwrap_or(false),
            syslog_facility: layer
                .syslog_facility
                .unwrap_or_else(|| "LOCAL0".to_string()),
            discover: layer.discover,
            interface: layer.interface,
            protocol,
            // As in Serf, only the flag decides (its merge lets the flag layer's value win).
            enable_compression: !layer.disable_compression.unwrap_or(false),
            broadcast_timeout,
            encrypt_key: layer.encrypt_key,
            keyring_file: layer.keyring_file,
            snapshot_path: layer.snapshot_path,
            rejoin_after_leave,
            reconnect_interval: layer.reconnect_interval,
            reconnect_timeout: layer.reconnect_timeout,
            tombstone_timeout: layer.tombstone_timeout,
            disable_name_resolution: layer.disable_name_resolution.unwrap_or(false),
            disable_coordinates: layer.disable_coordinates.unwrap_or(false),
            query_size_limit,
            query_response_size_limit,
            user_event_size_limit,
            statsite_addr: layer.statsite_addr,
            statsd_addr: layer.statsd_addr,
            http_addr: layer
                .http_addr
                .map(|text| {
                    text.parse()
                        .map_err(|e| format!("Invalid HTTP address: {text}: {e}"))
                })
                .transpose()?,
            unused,
            config_store: config_store::Settings::from_flags(
                layer.store_endpoints,
                layer.config_store,
                layer.config_store_cache,
            ),
            notices,
        })
    }
}

/// Serf's level names mapped onto tracing's.
pub fn log_level(text: &str) -> Result<String, String> {
    let level = match text.to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERR" | "ERROR" => "error",
        other => {
            return Err(format!(
                "Invalid log level: {other}. Valid log levels are: [TRACE DEBUG INFO WARN ERR]"
            ));
        }
    };
    Ok(level.to_string())
}

/// A size limit key: unset or not positive is the default (Serf would refuse every
/// message then); over [`MAX_PAYLOAD_SIZE_LIMIT`] is refused in the words Serf uses for its
/// own user event cap.
fn size_limit(what: &str, value: Option<i64>, default: usize) -> Result<usize, String> {
    let Some(limit) = value
        .and_then(|v| usize::try_from(v).ok())
        .filter(|&v| v > 0)
    else {
        return Ok(default);
    };
    if limit > MAX_PAYLOAD_SIZE_LIMIT {
        return Err(format!(
            "Failed to start the Serf agent: Error creating Serf: {what} size limit exceeds \
             limit of {MAX_PAYLOAD_SIZE_LIMIT} bytes"
        ));
    }
    Ok(limit)
}

/// `-iface`: with a wildcard bind, bind to the interface's first address that is not
/// link-local; otherwise the bind address must be one of the interface's (as Serf checks).
fn bind_on_interface(name: &str, bind: SocketAddr) -> Result<SocketAddr, String> {
    let interfaces =
        if_addrs::get_if_addrs().map_err(|e| format!("Invalid network interface: {e}"))?;
    let addrs: Vec<IpAddr> = interfaces
        .iter()
        .filter(|i| i.name == name)
        .map(|i| i.ip())
        .collect();
    if addrs.is_empty() {
        return Err(format!(
            "Invalid network interface: route ip+net: no such network interface {name}"
        ));
    }
    if !bind.ip().is_unspecified() {
        return if addrs.contains(&bind.ip()) {
            Ok(bind)
        } else {
            Err(format!("Interface '{name}' has no '{}' address", bind.ip()))
        };
    }
    addrs
        .into_iter()
        .find(|ip| !is_link_local(ip))
        .map(|ip| SocketAddr::new(ip, bind.port()))
        .ok_or_else(|| format!("Failed to find usable address for interface '{name}'"))
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

pub(crate) fn hostname() -> String {
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
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        AgentConfig::load(&args).unwrap()
    }

    fn refused(args: &[&str]) -> ConfigError {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        AgentConfig::load(&args).unwrap_err()
    }

    #[test]
    fn serf_defaults() {
        let config = parse(&["-node", "a"]);
        assert_eq!(config.bind, "0.0.0.0:7946".parse().unwrap());
        assert_eq!(config.rpc_addr, "127.0.0.1:7373".parse().unwrap());
        assert_eq!(config.log_level, "info");
        assert_eq!(config.profile, Profile::Lan);
        assert_eq!(config.retry_interval, Duration::from_secs(30));
        assert_eq!(config.retry_max_attempts, 0);
        assert_eq!(config.broadcast_timeout, Duration::from_secs(5));
        assert_eq!(config.syslog_facility, "LOCAL0");
        assert!(config.enable_compression);
        assert_eq!(config.user_event_size_limit, 512);
        assert_eq!(config.query_size_limit, 1024);
        assert_eq!(config.query_response_size_limit, 1024);
        assert!(!config.disable_coordinates);
        assert_eq!(config.reconnect_timeout, None);
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
        for (flag, what) in [
            ("-user-event-size-limit", "user event"),
            ("-query-size-limit", "query"),
        ] {
            match refused(&[flag, "524289"]) {
                ConfigError::Invalid(message) => assert_eq!(
                    message,
                    format!(
                        "Failed to start the Serf agent: Error creating Serf: {what} size limit \
                         exceeds limit of 524288 bytes"
                    )
                ),
                other => panic!("{flag}: {other:?}"),
            }
        }
    }

    #[test]
    fn lifecycle_settings_come_from_config_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lifecycle.json");
        std::fs::write(
            &file,
            r#"{"reconnect_interval":"1s","reconnect_timeout":"2s","tombstone_timeout":"1m",
                "snapshot_path":"/tmp/s","rejoin_after_leave":true,"disable_coordinates":true,
                "query_size_limit":70000,"user_event_size_limit":9000}"#,
        )
        .unwrap();
        let config = parse(&["-config-file", file.to_str().unwrap()]);
        assert_eq!(config.reconnect_interval, Some(Duration::from_secs(1)));
        assert_eq!(config.reconnect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(config.tombstone_timeout, Some(Duration::from_secs(60)));
        assert_eq!(config.snapshot_path, Some(PathBuf::from("/tmp/s")));
        assert!(config.rejoin_after_leave && config.disable_coordinates);
        assert_eq!(config.query_size_limit, 70_000);
        assert_eq!(config.user_event_size_limit, 9000);
        assert!(config.notices.is_empty(), "{:?}", config.notices);
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
            "-replay",
            "-syslog=false",
            "-retry-join",
            "d",
            "-retry-max",
            "3",
            "-retry-interval=500ms",
            "-profile=local",
            "-protocol",
            "4",
            "-disable-compression",
            "-broadcast-timeout",
            "2s",
        ]);
        assert_eq!(config.node_name(), "a");
        assert_eq!(config.join, vec!["b:1", "c"]);
        assert_eq!(config.tag_map()["dc"], "east=1");
        assert_eq!(config.log_level, "error");
        assert!(config.replay_on_join);
        assert!(!config.enable_syslog);
        assert_eq!(config.retry_join, vec!["d"]);
        assert_eq!(config.retry_max_attempts, 3);
        assert_eq!(config.retry_interval, MIN_RETRY_INTERVAL);
        assert_eq!(
            config.notices,
            vec!["Warning: 'RetryInterval' is too low. Setting to 1s"]
        );
        assert_eq!(config.profile, Profile::Local);
        assert_eq!(config.protocol, 4);
        assert!(!config.enable_compression);
        assert_eq!(config.broadcast_timeout, Duration::from_secs(2));
        assert_eq!(
            config.advertise_addr().unwrap(),
            "127.0.0.1:8000".parse().unwrap()
        );
    }

    #[test]
    fn role_becomes_the_role_tag_with_serfs_warning() {
        let config = parse(&["-role", "web", "-tag", "role=db"]);
        assert_eq!(config.tags["role"], "web");
        assert_eq!(
            config.notices,
            vec!["Deprecation warning: 'Role' has been replaced with 'Tags'"]
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
    fn malformed_flags_are_refused_in_serfs_words() {
        assert!(matches!(refused(&["-bogus"]), ConfigError::Flag(_)));
        for (args, message) in [
            (&["-tag", "novalue"][..], "Error: Invalid tag: 'novalue'"),
            (
                &["-retry-interval", "5"],
                "Error: time: missing unit in duration \"5\"",
            ),
            (&["-bind", "nowhere"], "Invalid bind address: nowhere"),
            (
                &["-log-level", "loud"],
                "Invalid log level: LOUD. Valid log levels are: [TRACE DEBUG INFO WARN ERR]",
            ),
            (&["-profile", "fast"], "Unknown profile: fast"),
            (
                &["-protocol", "9"],
                "Failed to start the Serf agent: Error creating Serf: Protocol version '9' too \
                 high. Must be in range: [2, 5]",
            ),
            (
                &["-protocol", "1"],
                "Failed to start the Serf agent: Error creating Serf: Protocol version '1' too \
                 low. Must be in range: [2, 5]",
            ),
        ] {
            match refused(args) {
                ConfigError::Invalid(got) => assert_eq!(got, message),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn flags_win_over_files_and_paths_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.json");
        let confd = dir.path().join("conf.d");
        let last = dir.path().join("last.json");
        std::fs::create_dir(&confd).unwrap();
        std::fs::write(
            &first,
            r#"{"node_name":"first","log_level":"debug","tags":{"a":"1"}}"#,
        )
        .unwrap();
        std::fs::write(
            confd.join("x.json"),
            r#"{"node_name":"dir","rpc_auth":"k"}"#,
        )
        .unwrap();
        std::fs::write(&last, r#"{"node_name":"last","start_join":["f"]}"#).unwrap();
        let config = parse(&[
            "-config-file",
            first.to_str().unwrap(),
            "-config-dir",
            confd.to_str().unwrap(),
            "-config-file",
            last.to_str().unwrap(),
            "-tag",
            "b=2",
            "-join",
            "g",
        ]);
        assert_eq!(config.node, "last");
        assert_eq!(config.log_level, "debug");
        assert_eq!(config.rpc_auth.as_deref(), Some("k"));
        assert_eq!(config.join, vec!["f", "g"]);
        assert_eq!(config.tags.len(), 2);
        let config = parse(&["-config-file", first.to_str().unwrap(), "-node", "flag"]);
        assert_eq!(config.node, "flag");
    }
}
