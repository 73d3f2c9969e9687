//! `musubi serve` configuration: one struct filled from flags, then `MUSUBI_*` and etcd's
//! `ETCD_*` environment variables, then etcd's YAML `--config-file`, then defaults. etcd
//! 3.4's flag names work with one or two dashes, and so do the etcd 0.x flags the seed
//! articles use (`-addr -peer-addr -peers`). etcd 3.4's flags that musubi does not honour
//! are taken at their default, warned about or refused by name (`etcd_only_flags`), from
//! any of the three sources alike.

use crate::{advertise, etcd_only_flags};
use musubi_gocompat::flag::{self, FlagError};
use musubi_gocompat::strconv::{parse_bool, parse_int, parse_uint};
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer_urls: Vec<String>,
    /// `--listen-metrics-urls`: extra listeners serving only `/metrics` and `/health`.
    pub listen_metrics_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster: String,
    /// `--initial-cluster` was given (rather than derived from this member alone).
    pub initial_cluster_given: bool,
    pub initial_cluster_state: String,
    pub initial_cluster_token: String,
    /// 0.x `-peers`: peer URLs of a running cluster to join.
    pub peers: Vec<String>,
    /// `--discovery`: a v2 keys directory URL holding `_config/size`.
    pub discovery: Option<String>,
    /// `--discovery-fallback`: `exit` or `proxy` (etcd's default), when discovery is full.
    pub discovery_fallback: String,
    /// `--discovery-proxy`: the HTTP proxy to reach the discovery service through.
    pub discovery_proxy: Option<String>,
    /// `--force-new-cluster`: restart as the sole voter, keeping the data.
    pub force_new_cluster: bool,
    pub snapshot_count: u64,
    pub max_request_bytes: u64,
    /// `--max-txn-ops`: the most compares, or ops in a branch, of one v3 Txn.
    pub max_txn_ops: usize,
    /// `--quota-backend-bytes`: the keyspace's space quota (0: 2 GiB, negative: none).
    pub quota_backend_bytes: i64,
    /// `--auth-token-ttl`: seconds a v3 auth token lives after its last refresh.
    pub auth_token_ttl: u64,
    /// `--auto-compaction-mode` and `--auto-compaction-retention`.
    pub auto_compaction: crate::compaction::AutoCompaction,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    pub v2_watch_history: usize,
    pub log_level: String,
    /// `--log-format`, or etcd's `--logger` (`zap` is JSON).
    pub log_format: crate::logging::LogFormat,
    /// `--log-outputs`.
    pub log_outputs: Vec<crate::logging::LogOutput>,
    /// TLS on the client URLs (`--cert-file`, `--key-file`, ...).
    pub client_tls: TlsInfo,
    /// TLS on the peer URLs and for dialing peers (`--peer-cert-file`, ...).
    pub peer_tls: TlsInfo,
    /// What was given but has no effect (an etcd flag musubi lacks, an unknown `ETCD_*`
    /// variable): logged once the logger runs.
    pub warnings: Vec<String>,
}

/// One side's TLS flags, as etcd's `transport.TLSInfo`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsInfo {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    /// Require a certificate signed by `trusted_ca_file` from whoever connects. etcd also
    /// requires one whenever `trusted_ca_file` is set, and so does musubi.
    pub client_cert_auth: bool,
    /// Serve a self-signed certificate generated at start-up when no cert/key is given.
    pub auto_tls: bool,
}

/// What the command line asked for.
#[derive(Debug, PartialEq)]
pub enum Invocation {
    Serve(Box<Config>),
    Version,
    Help,
}

pub use musubi_gocompat::flag::Kind;

/// (name, kind, help), parsed by Go's rules (`musubi_gocompat::flag`) as etcd's are; the
/// numbers' kinds are their Go types in etcd, so that a bad one is refused in etcd's words.
const FLAGS: &[(&str, Kind, &str)] = &[
    (
        "config-file",
        Kind::Text,
        "etcd's YAML config file: flag names as keys; flags and the environment win over it",
    ),
    (
        "debug",
        Kind::Bool,
        "etcd 3.4's older switch for --log-level debug",
    ),
    (
        "name",
        Kind::Text,
        "human-readable name of this member (default \"default\")",
    ),
    (
        "data-dir",
        Kind::Text,
        "directory for the log and snapshots (default \"<name>.musubi\")",
    ),
    (
        "listen-client-urls",
        Kind::Text,
        "URLs to serve clients on (default http://127.0.0.1:2379,http://127.0.0.1:4001)",
    ),
    (
        "advertise-client-urls",
        Kind::Text,
        "client URLs to tell the cluster (default: the listen URLs)",
    ),
    (
        "listen-peer-urls",
        Kind::Text,
        "URLs to serve peers on (default http://127.0.0.1:2380)",
    ),
    (
        "listen-metrics-urls",
        Kind::Text,
        "extra URLs serving only /metrics and /health (default: none)",
    ),
    (
        "initial-advertise-peer-urls",
        Kind::Text,
        "peer URLs to tell the cluster (default: the listen peer URLs)",
    ),
    (
        "initial-cluster",
        Kind::Text,
        "name=peerURL,... of the first members (default: this member alone)",
    ),
    (
        "initial-cluster-state",
        Kind::Text,
        "new or existing (default new)",
    ),
    (
        "initial-cluster-token",
        Kind::Text,
        "token that makes cluster IDs unique (default etcd-cluster)",
    ),
    (
        "discovery",
        Kind::Text,
        "URL of a v2 keys directory on a running etcd or musubi, holding _config/size: bootstraps a new cluster of that size",
    ),
    (
        "discovery-fallback",
        Kind::Text,
        "exit or proxy (default): what a member does when discovery is full; musubi exits either way, as it has no proxy mode",
    ),
    (
        "discovery-proxy",
        Kind::Text,
        "HTTP proxy to reach the discovery service through",
    ),
    (
        "force-new-cluster",
        Kind::Bool,
        "restart this member as the only voter of its cluster, keeping its data (recovery from a lost majority)",
    ),
    (
        "snapshot-count",
        Kind::Uint,
        "applied entries between snapshots (default 100000)",
    ),
    (
        "max-request-bytes",
        Kind::Uint,
        "largest client request in bytes (default 1572864)",
    ),
    (
        "max-txn-ops",
        Kind::Uint,
        "most operations in one v3 Txn (default 128)",
    ),
    (
        "auth-token",
        Kind::Text,
        "kind of v3 auth token: simple (etcd's default; jwt is not served)",
    ),
    (
        "auth-token-ttl",
        Kind::Uint,
        "seconds a v3 auth token lives after its last use (default 300)",
    ),
    (
        "quota-backend-bytes",
        Kind::Int,
        "space quota of the keyspace in bytes; NOSPACE is raised past it (default 0: 2 GiB, negative: none)",
    ),
    (
        "auto-compaction-mode",
        Kind::Text,
        "periodic (retention is a duration) or revision (a count of revisions)",
    ),
    (
        "auto-compaction-retention",
        Kind::Text,
        "v3 history kept by auto-compaction (default 0: off, see docs/keyspace.md)",
    ),
    (
        "heartbeat-interval",
        Kind::Uint,
        "leader heartbeat in ms (default 100)",
    ),
    (
        "election-timeout",
        Kind::Uint,
        "election timeout in ms (default 1000)",
    ),
    (
        "v2-watch-history",
        Kind::Uint,
        "v2 events kept for waitIndex watches (default 1000, etcd's window)",
    ),
    (
        "log-level",
        Kind::Text,
        "debug, info, warn or error (default info)",
    ),
    (
        "log-format",
        Kind::Text,
        "text, or json: one object a line in etcd's zap shape (default text)",
    ),
    (
        "logger",
        Kind::Text,
        "etcd's choice of logger: capnslog (text) or zap (json)",
    ),
    (
        "log-outputs",
        Kind::Text,
        "where logs go, comma-separated: default (stderr), stderr, stdout or a file path",
    ),
    (
        "cert-file",
        Kind::Text,
        "TLS certificate (PEM) served on https:// client URLs",
    ),
    ("key-file", Kind::Text, "private key (PEM) of --cert-file"),
    (
        "client-cert-auth",
        Kind::Bool,
        "refuse clients without a certificate signed by --trusted-ca-file",
    ),
    (
        "trusted-ca-file",
        Kind::Text,
        "CA (PEM) that signs client certificates; setting it requires them, as in etcd",
    ),
    (
        "auto-tls",
        Kind::Bool,
        "serve https:// client URLs with a generated self-signed certificate",
    ),
    (
        "peer-cert-file",
        Kind::Text,
        "TLS certificate (PEM) served on https:// peer URLs and shown to peers",
    ),
    (
        "peer-key-file",
        Kind::Text,
        "private key (PEM) of --peer-cert-file",
    ),
    (
        "peer-client-cert-auth",
        Kind::Bool,
        "refuse peers without a certificate signed by --peer-trusted-ca-file",
    ),
    (
        "peer-trusted-ca-file",
        Kind::Text,
        "CA (PEM) that signs peer certificates, for both directions",
    ),
    (
        "peer-auto-tls",
        Kind::Bool,
        "https:// peer URLs with a generated self-signed certificate; peers are not verified",
    ),
    (
        "ca-file",
        Kind::Text,
        "etcd 2.x: --trusted-ca-file plus --client-cert-auth",
    ),
    (
        "peer-ca-file",
        Kind::Text,
        "etcd 2.x: --peer-trusted-ca-file plus --peer-client-cert-auth",
    ),
    (
        "enable-v2",
        Kind::Bool,
        "accepted for etcd compatibility; the v2 API is always on",
    ),
    // etcd 0.x
    (
        "addr",
        Kind::Text,
        "0.x: client host:port to listen on and advertise",
    ),
    (
        "bind-addr",
        Kind::Text,
        "0.x: client host[:port] to listen on",
    ),
    (
        "peer-addr",
        Kind::Text,
        "0.x: peer host:port to listen on and advertise",
    ),
    (
        "peer-bind-addr",
        Kind::Text,
        "0.x: peer host[:port] to listen on",
    ),
    (
        "peers",
        Kind::Text,
        "0.x: host:port,... peer addresses of a running cluster; a fresh member asks them to add it",
    ),
    (
        "peers-file",
        Kind::Text,
        "0.x: file holding the -peers list",
    ),
    (
        "force",
        Kind::Bool,
        "0.x: accepted; a restarted member always takes its URLs from its flags",
    ),
    (
        "peer-heartbeat-interval",
        Kind::Uint,
        "0.x: heartbeat-interval",
    ),
    ("peer-election-timeout", Kind::Uint, "0.x: election-timeout"),
    (
        "cors",
        Kind::Text,
        "accepted for compatibility; CORS always allows every origin",
    ),
    (
        "snapshot",
        Kind::Bool,
        "0.x: accepted; snapshots are always on",
    ),
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// A command line Go's `flag` refuses, in its words.
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error("invalid value {value:?} for {flag}: {reason}")]
    BadValue {
        flag: String,
        value: String,
        reason: String,
    },
    /// An argument after the flags, in etcd's words (`See 'etcd --help'` names musubi's).
    #[error("error verifying flags, '{0}' is not a valid flag. See 'musubi serve --help'.")]
    Positional(String),
    #[error("--{flag}={value}: not supported by musubi: {reason}")]
    Unsupported {
        flag: String,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    File(#[from] crate::config_file::FileError),
    #[error("config file {path}: unknown key {key:?} (keys are etcd's flag names)")]
    UnknownFileKey { path: String, key: String },
}

/// The values given, by canonical flag name: on the command line (last one wins), in the
/// environment, in the config file, looked up in that order.
#[derive(Default)]
struct Given {
    flags: Vec<(&'static str, String)>,
    file: Vec<(&'static str, String)>,
}

impl Given {
    fn get(&self, name: &str) -> Option<String> {
        let last = |values: &[(&str, String)]| {
            values
                .iter()
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        last(&self.flags)
            .or_else(|| {
                ENV_PREFIXES
                    .iter()
                    .find_map(|prefix| std::env::var(env_name(prefix, name)).ok())
            })
            .or_else(|| last(&self.file))
    }

    /// `--config-file`'s values, each key checked to be a flag musubi knows or an etcd flag
    /// it judges (so a typo in the file stops the member as a mistyped flag would).
    fn read_config_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.get("config-file").filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        for (key, value) in crate::config_file::load(&path)? {
            let (name, _) = known_flag(&key).ok_or_else(|| ConfigError::UnknownFileKey {
                path: path.clone(),
                key: key.clone(),
            })?;
            self.file.push((name, value));
        }
        Ok(())
    }

    /// The etcd flags musubi lacks, wherever they were given: warnings to log, or the first
    /// refusal.
    fn judge_etcd_only_flags(&self) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        for flag in etcd_only_flags::ETCD_ONLY_FLAGS {
            let Some(value) = self.get(flag.name) else {
                continue;
            };
            match flag.judge(&value) {
                Ok(warning) => warnings.extend(warning),
                Err(reason) => {
                    return Err(ConfigError::Unsupported {
                        flag: flag.name.into(),
                        value,
                        reason,
                    });
                }
            }
        }
        Ok(warnings)
    }
}

/// A flag musubi serves, or an etcd 3.4 flag it judges: its canonical name and kind.
fn known_flag(name: &str) -> Option<(&'static str, Kind)> {
    FLAGS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(n, kind, _)| (n, kind))
        .or_else(|| etcd_only_flags::find(name).map(|flag| (flag.name, flag.kind)))
}

/// etcd warns about `ETCD_*` variables that name no flag (a typo, or a flag of another
/// version); so does musubi.
fn unrecognized_etcd_variables() -> Vec<String> {
    std::env::vars()
        .filter_map(|(name, _)| {
            let flag = name
                .strip_prefix("ETCD_")?
                .to_ascii_lowercase()
                .replace('_', "-");
            known_flag(&flag)
                .is_none()
                .then(|| format!("unrecognized environment variable {name}"))
        })
        .collect()
}

/// Where a flag not on the command line is looked up: `MUSUBI_<FLAG>`, then etcd's own
/// `ETCD_<FLAG>`, so the lines `musubi cluster add` and `etcdctl member add` print (and
/// an etcd unit's environment file) start a member as they start etcd.
const ENV_PREFIXES: [&str; 2] = ["MUSUBI", "ETCD"];

fn env_name(prefix: &str, flag: &str) -> String {
    format!("{prefix}_{}", flag.replace('-', "_").to_ascii_uppercase())
}

pub fn parse(args: &[String]) -> Result<Invocation, ConfigError> {
    let lookup = |name: &str| match name {
        "version" => Some(("version", Kind::Bool)),
        _ => known_flag(name),
    };
    let parsed = match flag::parse(args, lookup) {
        Err(FlagError::Help) => return Ok(Invocation::Help),
        parsed => parsed?,
    };
    if parsed.last("version").and_then(parse_bool) == Some(true) {
        return Ok(Invocation::Version);
    }
    if let Some(first) = parsed.args.first() {
        return Err(ConfigError::Positional(first.clone()));
    }
    let mut given = Given {
        flags: parsed.values,
        ..Given::default()
    };
    given.read_config_file()?;
    let mut config = build(&given)?;
    config.warnings = given.judge_etcd_only_flags()?;
    config.warnings.extend(unrecognized_etcd_variables());
    Ok(Invocation::Serve(Box::new(config)))
}

/// The first of `names` given, read as Go reads the integer flags (`0x10`, `1_000`).
fn number<T: TryFrom<i128>>(given: &Given, names: &[&str], default: T) -> Result<T, ConfigError> {
    for name in names {
        if let Some(v) = given.get(name) {
            let integer = parse_int(&v)
                .map(i128::from)
                .or_else(|_| parse_uint(&v).map(i128::from));
            return integer
                .ok()
                .and_then(|n| T::try_from(n).ok())
                .ok_or_else(|| bad_value(name, &v, "not a number"));
        }
    }
    Ok(default)
}

/// A boolean from any source, read by Go's `strconv.ParseBool` as etcd's flags are; empty
/// is not given (etcd skips an empty `ETCD_*` variable).
fn boolean(given: &Given, name: &str) -> Result<bool, ConfigError> {
    match given.get(name).filter(|v| !v.is_empty()) {
        None => Ok(false),
        Some(v) => parse_bool(&v).ok_or_else(|| bad_value(name, &v, "not true or false")),
    }
}

/// The TLS flags of one side: `prefix` is "" for clients and "peer-" for peers. The etcd
/// 2.x `--ca-file` means a trusted CA and client certificate authentication together.
fn tls_info(given: &Given, prefix: &str) -> Result<TlsInfo, ConfigError> {
    let path = |name: &str| given.get(&format!("{prefix}{name}")).map(PathBuf::from);
    let legacy_ca = path("ca-file");
    Ok(TlsInfo {
        cert_file: path("cert-file"),
        key_file: path("key-file"),
        client_cert_auth: boolean(given, &format!("{prefix}client-cert-auth"))?
            || legacy_ca.is_some(),
        trusted_ca_file: path("trusted-ca-file").or(legacy_ca),
        auto_tls: boolean(given, &format!("{prefix}auto-tls"))?,
    })
}

fn url_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// A 0.x `host:port` (or a bare host with the 0.x default port) as an http URL; a full URL
/// is taken as it is.
fn addr_url(addr: &str, default_port: u16) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else if addr.contains(':') {
        format!("http://{addr}")
    } else {
        format!("http://{addr}:{default_port}")
    }
}

/// `-peers a:7001,b:7001` or the same list in `-peers-file`, as peer URLs.
fn peers(given: &Given) -> Result<Vec<String>, ConfigError> {
    let list = match (given.get("peers"), given.get("peers-file")) {
        (Some(list), _) => list,
        (None, Some(file)) => {
            std::fs::read_to_string(&file).map_err(|e| ConfigError::BadValue {
                flag: "peers-file".into(),
                value: file.clone(),
                reason: e.to_string(),
            })?
        }
        (None, None) => return Ok(Vec::new()),
    };
    Ok(url_list(&list.replace('\n', ","))
        .iter()
        .map(|p| addr_url(p, 7001))
        .collect())
}

/// Advertised URLs given as such must be reachable addresses (see `advertise`).
fn explicitly_advertised(urls: Vec<String>, flag: &str) -> Result<Vec<String>, ConfigError> {
    match urls.iter().find(|u| advertise::wildcard_host(u).is_some()) {
        Some(url) => Err(ConfigError::BadValue {
            flag: flag.into(),
            value: url.clone(),
            reason:
                "other machines cannot connect to a wildcard address: advertise one they can reach"
                    .into(),
        }),
        None => Ok(urls),
    }
}

/// URLs advertised because they are listened on: a wildcard host becomes this machine's
/// routable address, as other machines must reach it.
fn derived_advertised(urls: Vec<String>, flag: &str) -> Result<Vec<String>, ConfigError> {
    if !urls.iter().any(|u| advertise::wildcard_host(u).is_some()) {
        return Ok(urls);
    }
    let ip = advertise::routable_ip().ok_or_else(|| ConfigError::BadValue {
        flag: flag.into(),
        value: urls.join(","),
        reason: "listens on a wildcard address, and this machine has no route to advertise instead: give an address other machines can reach".into(),
    })?;
    Ok(urls.iter().map(|u| advertise::with_host(u, ip)).collect())
}

fn build(given: &Given) -> Result<Config, ConfigError> {
    if let Some(kind) = given.get("auth-token").filter(|k| k != "simple") {
        return Err(ConfigError::BadValue {
            flag: "auth-token".into(),
            value: kind,
            reason: "musubi serves simple tokens only (docs/v3-api.md, \"Auth\")".into(),
        });
    }
    let name = given.get("name").unwrap_or_else(|| "default".into());
    let data_dir = PathBuf::from(
        given
            .get("data-dir")
            .unwrap_or_else(|| format!("{name}.musubi")),
    );

    let addr = given.get("addr").map(|a| addr_url(&a, 4001));
    let listen_client_urls = match (
        given.get("listen-client-urls"),
        given.get("bind-addr"),
        &addr,
    ) {
        (Some(urls), _, _) => url_list(&urls),
        (None, Some(bind), _) => vec![addr_url(&bind, 4001)],
        (None, None, Some(addr)) => vec![addr.clone()],
        (None, None, None) => vec![
            "http://127.0.0.1:2379".into(),
            "http://127.0.0.1:4001".into(),
        ],
    };
    let advertise_client_urls = match (given.get("advertise-client-urls"), &addr) {
        (Some(urls), _) => explicitly_advertised(url_list(&urls), "advertise-client-urls")?,
        (None, Some(addr)) => derived_advertised(vec![addr.clone()], "addr")?,
        (None, None) => derived_advertised(
            listen_client_urls.iter().take(1).cloned().collect(),
            "listen-client-urls",
        )?,
    };

    let peer_addr = given.get("peer-addr").map(|a| addr_url(&a, 7001));
    let listen_peer_urls = match (
        given.get("listen-peer-urls"),
        given.get("peer-bind-addr"),
        &peer_addr,
    ) {
        (Some(urls), _, _) => url_list(&urls),
        (None, Some(bind), _) => vec![addr_url(&bind, 7001)],
        (None, None, Some(addr)) => vec![addr.clone()],
        (None, None, None) => vec!["http://127.0.0.1:2380".into()],
    };
    let initial_advertise_peer_urls = match (given.get("initial-advertise-peer-urls"), &peer_addr) {
        (Some(urls), _) => explicitly_advertised(url_list(&urls), "initial-advertise-peer-urls")?,
        (None, Some(addr)) => derived_advertised(vec![addr.clone()], "peer-addr")?,
        (None, None) => derived_advertised(listen_peer_urls.clone(), "listen-peer-urls")?,
    };
    let initial_cluster_given = given.get("initial-cluster").is_some();
    let initial_cluster = given.get("initial-cluster").unwrap_or_else(|| {
        initial_advertise_peer_urls
            .iter()
            .map(|u| format!("{name}={u}"))
            .collect::<Vec<_>>()
            .join(",")
    });

    let initial_cluster_state = given
        .get("initial-cluster-state")
        .unwrap_or_else(|| "new".into());
    if initial_cluster_state != "new" && initial_cluster_state != "existing" {
        return Err(ConfigError::BadValue {
            flag: "initial-cluster-state".into(),
            value: initial_cluster_state,
            reason: "must be new or existing".into(),
        });
    }
    Ok(Config {
        name,
        data_dir,
        listen_client_urls,
        advertise_client_urls,
        listen_peer_urls,
        listen_metrics_urls: given
            .get("listen-metrics-urls")
            .map(|urls| url_list(&urls))
            .unwrap_or_default(),
        initial_advertise_peer_urls,
        initial_cluster,
        initial_cluster_given,
        initial_cluster_state,
        initial_cluster_token: given
            .get("initial-cluster-token")
            .unwrap_or_else(|| "etcd-cluster".into()),
        peers: peers(given)?,
        discovery: given.get("discovery").filter(|d| !d.is_empty()),
        discovery_fallback: crate::discovery::fallback(given.get("discovery-fallback"))?,
        discovery_proxy: given.get("discovery-proxy").filter(|p| !p.is_empty()),
        force_new_cluster: boolean(given, "force-new-cluster")?,
        snapshot_count: number(given, &["snapshot-count"], 100_000)?,
        max_request_bytes: number(given, &["max-request-bytes"], 1_572_864)?,
        max_txn_ops: number(given, &["max-txn-ops"], 128)?,
        quota_backend_bytes: number(given, &["quota-backend-bytes"], 0)?,
        auth_token_ttl: number(given, &["auth-token-ttl"], 300)?,
        auto_compaction: crate::compaction::AutoCompaction::parse(
            given.get("auto-compaction-mode").as_deref(),
            given.get("auto-compaction-retention").as_deref(),
        )
        .map_err(|(flag, value, reason)| ConfigError::BadValue {
            flag: flag.into(),
            value,
            reason,
        })?,
        heartbeat_interval_ms: number(
            given,
            &["heartbeat-interval", "peer-heartbeat-interval"],
            100,
        )?,
        election_timeout_ms: number(given, &["election-timeout", "peer-election-timeout"], 1000)?,
        v2_watch_history: number(given, &["v2-watch-history"], 1000)?,
        log_level: match given.get("log-level") {
            Some(level) => level,
            None if boolean(given, "debug")? => "debug".into(),
            None => "info".into(),
        },
        log_format: log_format(given)?,
        log_outputs: match given.get("log-outputs") {
            None => vec![crate::logging::LogOutput::Stderr],
            Some(list) => list
                .split(',')
                .map(|item| {
                    crate::logging::LogOutput::parse(item.trim())
                        .map_err(|reason| bad_value("log-outputs", &list, &reason))
                })
                .collect::<Result<_, _>>()?,
        },
        client_tls: tls_info(given, "")?,
        peer_tls: tls_info(given, "peer-")?,
        warnings: Vec::new(),
    })
}

/// `--log-format` if given, else what etcd's `--logger` names.
fn log_format(given: &Given) -> Result<crate::logging::LogFormat, ConfigError> {
    use crate::logging::LogFormat;
    if let Some(format) = given.get("log-format") {
        return match format.as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(bad_value("log-format", &format, "must be text or json")),
        };
    }
    match given.get("logger").as_deref() {
        None | Some("capnslog") => Ok(LogFormat::Text),
        Some("zap") => Ok(LogFormat::Json),
        Some(other) => Err(bad_value("logger", other, "must be capnslog or zap")),
    }
}

fn bad_value(flag: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::BadValue {
        flag: flag.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// The flag reference printed by `musubi serve --help`.
pub fn usage() -> String {
    let mut out = String::from(
        "usage: musubi serve [flags]\n\nFlags take one or two dashes; each also reads MUSUBI_<FLAG>, then etcd's ETCD_<FLAG>, from the environment.\n\n",
    );
    for (name, kind, help) in FLAGS {
        let arg = if *kind == Kind::Bool { "" } else { " VALUE" };
        out.push_str(&format!("  --{name}{arg}\n        {help}\n"));
    }
    out.push_str("\netcd 3.4 flags that musubi does not honour (docs/flags.md): a value other than\nthe one shown is warned about (w) or refused (r).\n\n");
    for flag in etcd_only_flags::ETCD_ONLY_FLAGS {
        let (mark, reason) = match flag.otherwise {
            etcd_only_flags::Otherwise::Warn(reason) => ('w', reason),
            etcd_only_flags::Otherwise::Refuse(reason) => ('r', reason),
        };
        let taken = flag.harmless.map(|v| format!("={v:?}")).unwrap_or_default();
        out.push_str(&format!(
            "  --{}{taken} ({mark})\n        {reason}\n",
            flag.name
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Config {
        match parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap() {
            Invocation::Serve(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_flags_make_a_single_default_node() {
        let c = serve(&[]);
        assert_eq!(
            c.listen_client_urls,
            ["http://127.0.0.1:2379", "http://127.0.0.1:4001"]
        );
        assert_eq!(c.initial_cluster, "default=http://127.0.0.1:2380");
        assert_eq!(c.data_dir, PathBuf::from("default.musubi"));
    }

    fn parse_strs(args: &[&str]) -> Result<Invocation, ConfigError> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// A config file in a temporary directory, and the `--config-file` flag naming it.
    fn config_file(yaml: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.conf.yml");
        std::fs::write(&path, yaml).unwrap();
        (dir, format!("--config-file={}", path.display()))
    }

    /// Every flag `etcd --help` lists in 3.4.23 (Debian's etcd-server).
    const ETCD_34_FLAGS: &[&str] = &[
        "name",
        "data-dir",
        "wal-dir",
        "snapshot-count",
        "heartbeat-interval",
        "election-timeout",
        "initial-election-tick-advance",
        "listen-peer-urls",
        "listen-client-urls",
        "max-snapshots",
        "max-wals",
        "quota-backend-bytes",
        "backend-batch-interval",
        "backend-batch-limit",
        "max-txn-ops",
        "max-request-bytes",
        "max-concurrent-streams",
        "grpc-keepalive-min-time",
        "grpc-keepalive-interval",
        "grpc-keepalive-timeout",
        "initial-advertise-peer-urls",
        "initial-cluster",
        "initial-cluster-state",
        "initial-cluster-token",
        "advertise-client-urls",
        "discovery",
        "discovery-fallback",
        "discovery-proxy",
        "discovery-srv",
        "discovery-srv-name",
        "strict-reconfig-check",
        "pre-vote",
        "auto-compaction-retention",
        "auto-compaction-mode",
        "enable-v2",
        "cert-file",
        "key-file",
        "client-cert-auth",
        "client-crl-file",
        "client-cert-allowed-hostname",
        "trusted-ca-file",
        "auto-tls",
        "peer-cert-file",
        "peer-key-file",
        "peer-client-cert-auth",
        "peer-trusted-ca-file",
        "peer-cert-allowed-cn",
        "peer-cert-allowed-hostname",
        "peer-auto-tls",
        "peer-crl-file",
        "cipher-suites",
        "cors",
        "host-whitelist",
        "auth-token",
        "bcrypt-cost",
        "auth-token-ttl",
        "enable-pprof",
        "metrics",
        "listen-metrics-urls",
        "logger",
        "log-outputs",
        "log-level",
        "proxy",
        "proxy-failure-wait",
        "proxy-refresh-interval",
        "proxy-dial-timeout",
        "proxy-write-timeout",
        "proxy-read-timeout",
        "experimental-initial-corrupt-check",
        "experimental-corrupt-check-time",
        "experimental-enable-v2v3",
        "experimental-backend-bbolt-freelist-type",
        "experimental-enable-lease-checkpoint",
        "experimental-compaction-batch-limit",
        "experimental-peer-skip-client-san-verification",
        "experimental-watch-progress-notify-interval",
        "experimental-warning-apply-duration",
        "force-new-cluster",
        "debug",
        "log-package-levels",
        "config-file",
    ];

    #[test]
    fn every_etcd_34_flag_is_served_or_judged_by_name() {
        let unknown: Vec<_> = ETCD_34_FLAGS
            .iter()
            .filter(|flag| known_flag(flag).is_none())
            .collect();
        assert!(
            unknown.is_empty(),
            "etcd flags musubi does not know: {unknown:?}"
        );
    }

    #[test]
    fn a_config_file_is_the_same_as_its_flags() {
        let (_dir, file) = config_file(
            "name: n1\ndata-dir: /tmp/n1\nlisten-client-urls: http://127.0.0.1:12379\n\
             initial-cluster: n1=http://127.0.0.1:12380\nlisten-peer-urls: http://127.0.0.1:12380\n\
             snapshot-count: 500\nlog-outputs: [stderr]\nlogger: zap\n\
             client-transport-security:\n  auto-tls: true\n",
        );
        let from_file = serve(&[&file]);
        let from_flags = serve(&[
            "--name=n1",
            "--data-dir=/tmp/n1",
            "--listen-client-urls=http://127.0.0.1:12379",
            "--initial-cluster=n1=http://127.0.0.1:12380",
            "--listen-peer-urls=http://127.0.0.1:12380",
            "--snapshot-count=500",
            "--log-outputs=stderr",
            "--logger=zap",
            "--auto-tls",
        ]);
        assert_eq!(from_file, from_flags);
    }

    #[test]
    fn a_flag_beats_the_config_file() {
        let (_dir, file) = config_file("name: from-file\nsnapshot-count: 500\n");
        let config = serve(&[&file, "--name", "from-flag"]);
        assert_eq!(config.name, "from-flag");
        assert_eq!(config.snapshot_count, 500);
    }

    #[test]
    fn an_unknown_key_in_the_config_file_is_refused_by_name() {
        let (_dir, file) = config_file("name: n1\nsnapshot-cuont: 5\n");
        assert!(matches!(
            parse_strs(&[&file]),
            Err(ConfigError::UnknownFileKey { key, .. }) if key == "snapshot-cuont"
        ));
    }

    #[test]
    fn etcd_flags_musubi_lacks_are_taken_at_their_default_warned_about_or_refused() {
        assert!(
            serve(&["--proxy=off", "--strict-reconfig-check"])
                .warnings
                .is_empty()
        );
        let warned = serve(&["--max-wals", "3"]);
        assert_eq!(
            warned.warnings,
            ["--max-wals=3 has no effect: musubi purges its log once a snapshot covers it"]
        );
        assert!(matches!(
            parse_strs(&["--proxy", "on"]),
            Err(ConfigError::Unsupported { flag, .. }) if flag == "proxy"
        ));
        let (_dir, file) = config_file("client-transport-security:\n  crl-file: revoked.pem\n");
        assert!(matches!(
            parse_strs(&[&file]),
            Err(ConfigError::Unsupported { flag, .. }) if flag == "client-crl-file"
        ));
    }

    #[test]
    fn debug_is_log_level_debug_unless_a_level_is_given() {
        assert_eq!(serve(&["--debug"]).log_level, "debug");
        assert_eq!(serve(&["--debug", "--log-level", "warn"]).log_level, "warn");
    }

    #[test]
    fn the_seed_0x_command_line_works_as_written() {
        let c = serve(&[
            "-data-dir",
            "/tmp/etcd1.data",
            "-name",
            "machine1",
            "-addr",
            "127.0.0.1:4001",
            "-peer-addr",
            "127.0.0.1:7001",
        ]);
        assert_eq!(c.name, "machine1");
        assert_eq!(c.listen_client_urls, ["http://127.0.0.1:4001"]);
        assert_eq!(c.advertise_client_urls, ["http://127.0.0.1:4001"]);
        assert_eq!(c.initial_cluster, "machine1=http://127.0.0.1:7001");
    }

    #[test]
    fn etcd_flags_take_one_or_two_dashes_and_inline_values() {
        let c = serve(&[
            "--name=n1",
            "-listen-client-urls",
            "http://127.0.0.1:6001",
            "--enable-v2",
            "--snapshot-count=5",
        ]);
        assert_eq!((c.name.as_str(), c.snapshot_count), ("n1", 5));
        assert_eq!(c.advertise_client_urls, ["http://127.0.0.1:6001"]);
    }

    #[test]
    fn a_wildcard_listen_address_is_advertised_as_a_reachable_one() {
        if advertise::routable_ip().is_none() {
            return; // no route on this machine: nothing to advertise instead
        }
        let c = serve(&["-addr", "0.0.0.0:4001", "-peer-addr", "0.0.0.0:7001"]);
        assert_eq!(c.listen_peer_urls, ["http://0.0.0.0:7001"]);
        let peer = &c.initial_advertise_peer_urls[0];
        assert!(
            advertise::wildcard_host(peer).is_none() && peer.ends_with(":7001"),
            "{peer}"
        );
        assert!(advertise::wildcard_host(&c.advertise_client_urls[0]).is_none());
        assert_eq!(c.initial_cluster, format!("default={peer}"));
    }

    #[test]
    fn an_advertised_wildcard_is_refused() {
        let args = ["--initial-advertise-peer-urls", "http://0.0.0.0:2380"].map(String::from);
        assert!(matches!(
            parse(&args),
            Err(ConfigError::BadValue { flag, .. }) if flag == "initial-advertise-peer-urls"
        ));
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let args = |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let refused = |a: &[&str]| args(a).unwrap_err().to_string();
        // What etcd 3.4.23 prints first for each.
        assert_eq!(
            refused(&["--bogus"]),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(refused(&["--name"]), "flag needs an argument: -name");
        assert_eq!(refused(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(
            refused(&["--snapshot-count", "x"]),
            "invalid value \"x\" for flag -snapshot-count: parse error"
        );
        assert_eq!(
            refused(&["--client-cert-auth=maybe"]),
            "invalid boolean value \"maybe\" for -client-cert-auth: parse error"
        );
        assert_eq!(
            refused(&["--name", "a", "extra"]),
            "error verifying flags, 'extra' is not a valid flag. See 'musubi serve --help'."
        );
        // A boolean takes no separate value: `false` ends the flags, as in etcd.
        assert_eq!(
            refused(&["--client-cert-auth", "false"]),
            "error verifying flags, 'false' is not a valid flag. See 'musubi serve --help'."
        );
        assert_eq!(args(&["--version"]).unwrap(), Invocation::Version);
        assert_eq!(args(&["-h"]).unwrap(), Invocation::Help);
        assert_eq!(args(&["--help=false"]).unwrap(), Invocation::Help);
        assert_eq!(serve(&["--snapshot-count=0x10"]).snapshot_count, 16);
    }

    #[test]
    fn tls_flags_fill_each_side() {
        let c = serve(&[
            "--cert-file=s.crt",
            "--key-file",
            "s.key",
            "--client-cert-auth",
            "--trusted-ca-file=ca.crt",
            "--peer-auto-tls",
            "--peer-client-cert-auth=false",
        ]);
        assert_eq!(
            c.client_tls,
            TlsInfo {
                cert_file: Some("s.crt".into()),
                key_file: Some("s.key".into()),
                trusted_ca_file: Some("ca.crt".into()),
                client_cert_auth: true,
                auto_tls: false,
            }
        );
        assert!(c.peer_tls.auto_tls && !c.peer_tls.client_cert_auth);
    }

    #[test]
    fn the_etcd2_ca_file_flag_means_trusted_ca_and_client_cert_auth() {
        // python-etcd's TLS tests start etcd with -cert-file -key-file -ca-file.
        let c = serve(&["-ca-file=ca.crt", "-peer-ca-file", "pca.crt"]);
        assert_eq!(c.client_tls.trusted_ca_file, Some("ca.crt".into()));
        assert!(c.client_tls.client_cert_auth);
        assert_eq!(c.peer_tls.trusted_ca_file, Some("pca.crt".into()));
        assert!(c.peer_tls.client_cert_auth);
    }
}
