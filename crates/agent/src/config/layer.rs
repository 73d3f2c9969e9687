//! One layer of `musubi agent`'s settings: what the flags say, or what one JSON config file
//! says. One struct serves both (the flag table in `flags` fills it, serde reads the files)
//! so that each JSON key fills the very field its flag fills; [`ConfigLayer::merge`] then lays one layer over
//! another as Serf does (files in order, then the flags).

use crate::go_duration;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The Go type of a config key's value in Serf's `agent.Config`, which decides what a file
/// may put there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Text,
    Bool,
    Int,
    TextList,
    TextMap,
    /// A Go duration string (`"30s"`).
    Duration,
}

/// Every JSON key Serf's agent accepts (Serf 0.8's `agent.Config`) and its type; any other
/// key is an error. `ConfigLayer`'s serde field names are exactly these (a test holds them
/// together).
pub const CONFIG_KEYS: &[(&str, KeyType)] = &[
    ("node_name", KeyType::Text),
    ("role", KeyType::Text),
    ("tags", KeyType::TextMap),
    ("tags_file", KeyType::Text),
    ("bind", KeyType::Text),
    ("advertise", KeyType::Text),
    ("encrypt_key", KeyType::Text),
    ("keyring_file", KeyType::Text),
    ("log_level", KeyType::Text),
    ("rpc_addr", KeyType::Text),
    ("rpc_auth", KeyType::Text),
    ("protocol", KeyType::Int),
    ("replay_on_join", KeyType::Bool),
    ("query_size_limit", KeyType::Int),
    ("query_response_size_limit", KeyType::Int),
    ("user_event_size_limit", KeyType::Int),
    ("start_join", KeyType::TextList),
    ("retry_join", KeyType::TextList),
    ("retry_max_attempts", KeyType::Int),
    ("retry_interval", KeyType::Duration),
    ("rejoin_after_leave", KeyType::Bool),
    ("event_handlers", KeyType::TextList),
    ("profile", KeyType::Text),
    ("snapshot_path", KeyType::Text),
    ("leave_on_terminate", KeyType::Bool),
    ("skip_leave_on_interrupt", KeyType::Bool),
    ("discover", KeyType::Text),
    ("interface", KeyType::Text),
    ("reconnect_interval", KeyType::Duration),
    ("reconnect_timeout", KeyType::Duration),
    ("tombstone_timeout", KeyType::Duration),
    ("disable_name_resolution", KeyType::Bool),
    ("disable_coordinates", KeyType::Bool),
    ("enable_syslog", KeyType::Bool),
    ("syslog_facility", KeyType::Text),
    ("enable_compression", KeyType::Bool),
    ("statsite_addr", KeyType::Text),
    ("statsd_addr", KeyType::Text),
    // musubi's own: where `/metrics` is served (docs/operations.md, Agent telemetry).
    ("http_addr", KeyType::Text),
    ("broadcast_timeout", KeyType::Duration),
];

/// Settings from one source. `None`, `false`, `0` and empty lists mean "not said here", as
/// Go's zero values do in Serf's merge. Flags without a key are `serde(skip)`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    /// Name of this node; must be unique in the cluster (default: the hostname).
    #[serde(default)]
    pub node_name: Option<String>,
    /// Deprecated: the tag `role`.
    #[serde(default)]
    pub role: Option<String>,
    /// A tag `key=value` for this node (repeatable).
    #[serde(default, deserialize_with = "tag_map")]
    pub tags: Vec<(String, String)>,
    /// A JSON file holding this node's tags: read at start, rewritten when they change.
    #[serde(default)]
    pub tags_file: Option<PathBuf>,
    /// Address to bind the gossip listener to, `ip[:port]` (default 0.0.0.0:7946).
    #[serde(default)]
    pub bind: Option<String>,
    /// Address other members reach this one at, `ip[:port]`.
    #[serde(default)]
    pub advertise: Option<String>,
    /// Network interface to bind to (its address replaces a 0.0.0.0 bind).
    #[serde(default)]
    pub interface: Option<String>,
    /// Base64 key encrypting gossip.
    #[serde(default)]
    pub encrypt_key: Option<String>,
    /// JSON file of base64 keys, the first one in use.
    #[serde(default)]
    pub keyring_file: Option<PathBuf>,
    /// trace, debug, info, warn or err (default info).
    #[serde(default)]
    pub log_level: Option<String>,
    /// Address of the RPC listener the `serf` CLI talks to (default 127.0.0.1:7373).
    #[serde(default)]
    pub rpc_addr: Option<String>,
    #[serde(default)]
    pub rpc_auth: Option<String>,
    /// Serf protocol version to speak.
    #[serde(default)]
    pub protocol: Option<i64>,
    /// Replay past user events on the joins made at start.
    #[serde(default)]
    pub replay_on_join: Option<bool>,
    /// musubi's flag for `query_size_limit`: the largest encoded query, in bytes (default
    /// 1024, up to 512 KiB; past one datagram it goes over the stream transport).
    #[serde(default)]
    pub query_size_limit: Option<i64>,
    /// musubi's flag for `query_response_size_limit`: the largest encoded answer, in bytes
    /// (default 1024, up to 512 KiB).
    #[serde(default)]
    pub query_response_size_limit: Option<i64>,
    /// musubi's flag for `user_event_size_limit`: the largest user event (name plus
    /// payload), in bytes (default 512, up to 512 KiB; Serf stops at 9 KiB).
    #[serde(default)]
    pub user_event_size_limit: Option<i64>,
    /// An agent to join at start (repeatable); the agent exits if none can be reached.
    #[serde(default)]
    pub start_join: Vec<String>,
    /// An agent to join in the background, retried until one answers (repeatable).
    #[serde(default)]
    pub retry_join: Vec<String>,
    /// How many failed retry-join rounds to retry after; 0 retries forever.
    #[serde(default)]
    pub retry_max_attempts: Option<i64>,
    /// Time between retry-join rounds (default 30s, at least 1s).
    #[serde(default, deserialize_with = "duration")]
    pub retry_interval: Option<Duration>,
    /// Ignore a previous leave recorded in the snapshot and rejoin.
    #[serde(default)]
    pub rejoin_after_leave: Option<bool>,
    /// `[filter=]script` run on events, e.g. `member-join,user:deploy=./on-event.sh`
    /// (repeatable).
    #[serde(default)]
    pub event_handlers: Vec<String>,
    /// Timing profile: lan (default), wan or local.
    #[serde(default)]
    pub profile: Option<String>,
    /// File recording members and clocks, for restarts.
    #[serde(default)]
    pub snapshot_path: Option<PathBuf>,
    #[serde(default)]
    pub leave_on_terminate: Option<bool>,
    #[serde(default)]
    pub skip_leave_on_interrupt: Option<bool>,
    /// Cluster name to find and join peers by over mDNS.
    #[serde(default)]
    pub discover: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    pub reconnect_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub reconnect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub tombstone_timeout: Option<Duration>,
    #[serde(default)]
    pub disable_name_resolution: Option<bool>,
    /// musubi's flag for `disable_coordinates`: compute no network coordinate, share none.
    #[serde(default)]
    pub disable_coordinates: Option<bool>,
    /// Also send logs to the local syslog.
    #[serde(default)]
    pub enable_syslog: Option<bool>,
    #[serde(default)]
    pub syslog_facility: Option<String>,
    /// Accepted for Serf's files; Serf itself lets only `-disable-compression` decide.
    #[serde(default)]
    pub enable_compression: Option<bool>,
    /// Do not compress broadcasts.
    #[serde(skip)]
    pub disable_compression: Option<bool>,
    #[serde(default)]
    pub statsite_addr: Option<String>,
    #[serde(default)]
    pub statsd_addr: Option<String>,
    /// Serve the agent's metrics in Prometheus's text format at http://ADDR/metrics.
    #[serde(default)]
    pub http_addr: Option<String>,
    /// Longest wait for a leave or force-leave broadcast (default 5s, at least 100ms).
    #[serde(default, deserialize_with = "duration")]
    pub broadcast_timeout: Option<Duration>,
    /// The store holding `-config-store` trees (etcd v2 API), comma-separated URLs
    /// (default http://127.0.0.1:2379).
    #[serde(skip)]
    pub store_endpoints: Vec<String>,
    /// A key prefix whose tree is read as a config file over the files and under the flags,
    /// and watched for changes (repeatable, later wins; docs/conf.md).
    #[serde(skip)]
    pub config_store: Vec<String>,
    /// A file keeping the last configuration read from the store, to start from when the
    /// store is down.
    #[serde(skip)]
    pub config_store_cache: Option<PathBuf>,
}

impl ConfigLayer {
    /// `later` laid over `self`, as Serf's MergeConfig: a setting in `later` wins when it is
    /// set (non-empty, true, non-zero); tags are merged key by key; lists are concatenated.
    pub fn merge(self, later: ConfigLayer) -> ConfigLayer {
        let mut tags: BTreeMap<String, String> = self.tags.into_iter().collect();
        tags.extend(later.tags);
        ConfigLayer {
            node_name: text(self.node_name, later.node_name),
            role: text(self.role, later.role),
            tags: tags.into_iter().collect(),
            tags_file: path(self.tags_file, later.tags_file),
            bind: text(self.bind, later.bind),
            advertise: text(self.advertise, later.advertise),
            interface: text(self.interface, later.interface),
            encrypt_key: text(self.encrypt_key, later.encrypt_key),
            keyring_file: path(self.keyring_file, later.keyring_file),
            log_level: text(self.log_level, later.log_level),
            rpc_addr: text(self.rpc_addr, later.rpc_addr),
            rpc_auth: text(self.rpc_auth, later.rpc_auth),
            protocol: later.protocol.filter(|&p| p > 0).or(self.protocol),
            replay_on_join: flag(self.replay_on_join, later.replay_on_join),
            query_size_limit: number(self.query_size_limit, later.query_size_limit),
            query_response_size_limit: number(
                self.query_response_size_limit,
                later.query_response_size_limit,
            ),
            user_event_size_limit: number(self.user_event_size_limit, later.user_event_size_limit),
            start_join: [self.start_join, later.start_join].concat(),
            retry_join: [self.retry_join, later.retry_join].concat(),
            retry_max_attempts: number(self.retry_max_attempts, later.retry_max_attempts),
            retry_interval: duration_of(self.retry_interval, later.retry_interval),
            rejoin_after_leave: flag(self.rejoin_after_leave, later.rejoin_after_leave),
            event_handlers: [self.event_handlers, later.event_handlers].concat(),
            profile: text(self.profile, later.profile),
            snapshot_path: path(self.snapshot_path, later.snapshot_path),
            leave_on_terminate: flag(self.leave_on_terminate, later.leave_on_terminate),
            skip_leave_on_interrupt: flag(
                self.skip_leave_on_interrupt,
                later.skip_leave_on_interrupt,
            ),
            discover: text(self.discover, later.discover),
            reconnect_interval: duration_of(self.reconnect_interval, later.reconnect_interval),
            reconnect_timeout: duration_of(self.reconnect_timeout, later.reconnect_timeout),
            tombstone_timeout: duration_of(self.tombstone_timeout, later.tombstone_timeout),
            disable_name_resolution: flag(
                self.disable_name_resolution,
                later.disable_name_resolution,
            ),
            disable_coordinates: flag(self.disable_coordinates, later.disable_coordinates),
            enable_syslog: flag(self.enable_syslog, later.enable_syslog),
            syslog_facility: text(self.syslog_facility, later.syslog_facility),
            enable_compression: later.enable_compression.or(self.enable_compression),
            disable_compression: flag(self.disable_compression, later.disable_compression),
            statsite_addr: text(self.statsite_addr, later.statsite_addr),
            statsd_addr: text(self.statsd_addr, later.statsd_addr),
            http_addr: text(self.http_addr, later.http_addr),
            broadcast_timeout: duration_of(self.broadcast_timeout, later.broadcast_timeout),
            store_endpoints: [self.store_endpoints, later.store_endpoints].concat(),
            config_store: [self.config_store, later.config_store].concat(),
            config_store_cache: path(self.config_store_cache, later.config_store_cache),
        }
    }
}

fn text(earlier: Option<String>, later: Option<String>) -> Option<String> {
    later.filter(|s| !s.is_empty()).or(earlier)
}

fn path(earlier: Option<PathBuf>, later: Option<PathBuf>) -> Option<PathBuf> {
    later.filter(|p| !p.as_os_str().is_empty()).or(earlier)
}

/// Serf's booleans can only be switched on by a later layer.
fn flag(earlier: Option<bool>, later: Option<bool>) -> Option<bool> {
    match (earlier, later) {
        (_, Some(true)) => Some(true),
        (earlier, _) => earlier,
    }
}

fn number(earlier: Option<i64>, later: Option<i64>) -> Option<i64> {
    later.filter(|&n| n != 0).or(earlier)
}

fn duration_of(earlier: Option<Duration>, later: Option<Duration>) -> Option<Duration> {
    later.filter(|d| !d.is_zero()).or(earlier)
}

/// `-tag key=value`, split at the first `=`.
pub(super) fn tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("Invalid tag: '{text}'")),
    }
}

fn tag_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<(String, String)>, D::Error> {
    let tags = BTreeMap::<String, String>::deserialize(deserializer)?;
    Ok(tags.into_iter().collect())
}

/// Serf's duration keys are Go duration strings (`"30s"`).
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    go_duration::parse(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_serf_key_is_a_field_and_nothing_else_is() {
        for (key, kind) in CONFIG_KEYS {
            let value = match kind {
                KeyType::Text => serde_json::json!("x"),
                KeyType::Bool => serde_json::json!(true),
                KeyType::Int => serde_json::json!(1),
                KeyType::TextList => serde_json::json!(["x"]),
                KeyType::TextMap => serde_json::json!({"k": "v"}),
                KeyType::Duration => serde_json::json!("1s"),
            };
            let file = serde_json::json!({ *key: value });
            let decoded: Result<ConfigLayer, _> = serde_json::from_value(file);
            assert!(decoded.is_ok(), "{key}: {decoded:?}");
        }
        let flag_only = serde_json::json!({"config_file": ["x"]});
        assert!(serde_json::from_value::<ConfigLayer>(flag_only).is_err());
    }

    fn layer(json: serde_json::Value) -> ConfigLayer {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_later_layer_wins_only_where_it_says_something() {
        let merged = layer(serde_json::json!({
            "node_name": "a", "log_level": "debug", "leave_on_terminate": true,
            "retry_max_attempts": 3, "retry_interval": "10s"
        }))
        .merge(layer(serde_json::json!({
            "node_name": "b", "log_level": "", "leave_on_terminate": false,
            "retry_max_attempts": 0
        })));
        assert_eq!(merged.node_name.as_deref(), Some("b"));
        assert_eq!(merged.log_level.as_deref(), Some("debug"));
        assert_eq!(merged.leave_on_terminate, Some(true));
        assert_eq!(merged.retry_max_attempts, Some(3));
        assert_eq!(merged.retry_interval, Some(Duration::from_secs(10)));
    }

    #[test]
    fn tags_merge_by_key_and_lists_concatenate() {
        let merged = layer(serde_json::json!({
            "tags": {"a": "1", "b": "1"}, "retry_join": ["x"], "event_handlers": ["h1"],
            "start_join": ["s1"]
        }))
        .merge(layer(serde_json::json!({
            "tags": {"b": "2"}, "retry_join": ["y"], "event_handlers": ["h2"]
        })));
        assert_eq!(
            merged.tags,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(merged.retry_join, vec!["x", "y"]);
        assert_eq!(merged.event_handlers, vec!["h1", "h2"]);
        assert_eq!(merged.start_join, vec!["s1"]);
    }
}
