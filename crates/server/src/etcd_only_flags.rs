//! The etcd 3.4 flags that musubi does not honour, each with what happens instead: a value
//! that changes nothing musubi does (the flag's default, `--proxy off`) is taken silently;
//! any other value either starts the member with a warning that says why it has no effect
//! (tuning of parts musubi does not have), or is refused with the reason (anything whose
//! absence would change behaviour a user relies on: security checks, proxy mode, DNS
//! discovery). No etcd flag is ever silently ignored; docs/flags.md has the same table.

use musubi_gocompat::flag::Kind;

/// What giving a value other than the default does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Otherwise {
    /// Start, and log this reason once as a warning.
    Warn(&'static str),
    /// Refuse to start, with this reason.
    Refuse(&'static str),
}

pub struct EtcdOnlyFlag {
    pub name: &'static str,
    pub kind: Kind,
    /// The value that asks for what musubi does anyway (etcd's default, usually).
    pub harmless: Option<&'static str>,
    pub otherwise: Otherwise,
}

const fn flag(
    name: &'static str,
    kind: Kind,
    harmless: Option<&'static str>,
    otherwise: Otherwise,
) -> EtcdOnlyFlag {
    EtcdOnlyFlag {
        name,
        kind,
        harmless,
        otherwise,
    }
}

use Kind::{Bool, Text};
use Otherwise::{Refuse, Warn};

const NO_BBOLT: &str = "musubi has no bbolt backend: each write is fsynced with its log entry";
const NO_PROXY: &str = "musubi does not run etcd's proxy mode";
const NOT_CHECKED: &str = "musubi cannot check this, and will not accept every certificate instead";
const EXPERIMENTAL: &str = "etcd's experimental features are not in musubi";

pub const ETCD_ONLY_FLAGS: &[EtcdOnlyFlag] = &[
    flag(
        "wal-dir",
        Text,
        None,
        Refuse("musubi keeps its log in --data-dir"),
    ),
    flag(
        "max-snapshots",
        Text,
        None,
        Warn("musubi keeps only its newest snapshot"),
    ),
    flag(
        "max-wals",
        Text,
        None,
        Warn("musubi purges its log once a snapshot covers it"),
    ),
    flag("backend-batch-interval", Text, None, Warn(NO_BBOLT)),
    flag("backend-batch-limit", Text, None, Warn(NO_BBOLT)),
    flag(
        "initial-election-tick-advance",
        Bool,
        Some("true"),
        Warn("a restarted member always waits a full election timeout before campaigning"),
    ),
    flag(
        "max-concurrent-streams",
        Text,
        None,
        Warn("gRPC streams per connection are not limited by musubi"),
    ),
    flag(
        "grpc-keepalive-min-time",
        Text,
        None,
        Warn("musubi answers every client ping"),
    ),
    flag(
        "grpc-keepalive-interval",
        Text,
        None,
        Warn("musubi does not ping clients; clients ping it"),
    ),
    flag(
        "grpc-keepalive-timeout",
        Text,
        None,
        Warn("musubi does not ping clients; clients ping it"),
    ),
    flag(
        "discovery-srv",
        Text,
        Some(""),
        Refuse("DNS SRV discovery is not supported: use --initial-cluster or --discovery"),
    ),
    flag(
        "discovery-srv-name",
        Text,
        Some(""),
        Refuse("DNS SRV discovery is not supported: use --initial-cluster or --discovery"),
    ),
    flag(
        "strict-reconfig-check",
        Bool,
        Some("true"),
        Refuse("musubi always refuses a reconfiguration that would lose the quorum"),
    ),
    flag(
        "pre-vote",
        Bool,
        None,
        Warn(
            "always on in effect: a member refuses to vote while it hears from a leader (openraft's leader lease)",
        ),
    ),
    flag("client-crl-file", Text, Some(""), Refuse(NOT_CHECKED)),
    flag("peer-crl-file", Text, Some(""), Refuse(NOT_CHECKED)),
    flag(
        "client-cert-allowed-hostname",
        Text,
        Some(""),
        Refuse(NOT_CHECKED),
    ),
    flag("peer-cert-allowed-cn", Text, Some(""), Refuse(NOT_CHECKED)),
    flag(
        "peer-cert-allowed-hostname",
        Text,
        Some(""),
        Refuse(NOT_CHECKED),
    ),
    flag(
        "cipher-suites",
        Text,
        Some(""),
        Refuse("musubi offers rustls's default TLS 1.2 and 1.3 suites only"),
    ),
    flag(
        "host-whitelist",
        Text,
        Some("*"),
        Refuse("musubi does not check Host headers"),
    ),
    flag(
        "bcrypt-cost",
        Text,
        Some("10"),
        Refuse("v3 passwords are hashed at bcrypt cost 10"),
    ),
    flag(
        "enable-pprof",
        Bool,
        Some("false"),
        Refuse("musubi is not a Go program: there is no pprof"),
    ),
    flag(
        "enable-grpc-gateway",
        Bool,
        Some("true"),
        Refuse("the JSON gateway is always served"),
    ),
    flag(
        "metrics",
        Text,
        Some("basic"),
        Warn("musubi exports one set of metrics, about etcd's basic set"),
    ),
    flag(
        "log-package-levels",
        Text,
        Some(""),
        Refuse("use --log-level, or MUSUBI_LOG with a tracing filter"),
    ),
    flag("proxy", Text, Some("off"), Refuse(NO_PROXY)),
    flag("proxy-failure-wait", Text, None, Warn(NO_PROXY)),
    flag("proxy-refresh-interval", Text, None, Warn(NO_PROXY)),
    flag("proxy-dial-timeout", Text, None, Warn(NO_PROXY)),
    flag("proxy-write-timeout", Text, None, Warn(NO_PROXY)),
    flag("proxy-read-timeout", Text, None, Warn(NO_PROXY)),
    flag(
        "experimental-initial-corrupt-check",
        Bool,
        Some("false"),
        Refuse(EXPERIMENTAL),
    ),
    flag(
        "experimental-corrupt-check-time",
        Text,
        Some("0s"),
        Refuse(EXPERIMENTAL),
    ),
    flag(
        "experimental-enable-v2v3",
        Text,
        Some(""),
        Refuse(EXPERIMENTAL),
    ),
    flag(
        "experimental-backend-bbolt-freelist-type",
        Text,
        None,
        Warn(NO_BBOLT),
    ),
    flag(
        "experimental-enable-lease-checkpoint",
        Bool,
        Some("false"),
        Refuse(EXPERIMENTAL),
    ),
    flag(
        "experimental-compaction-batch-limit",
        Text,
        None,
        Warn("musubi compacts its in-memory history at once"),
    ),
    flag(
        "experimental-peer-skip-client-san-verification",
        Bool,
        Some("false"),
        Refuse(EXPERIMENTAL),
    ),
    flag(
        "experimental-watch-progress-notify-interval",
        Text,
        None,
        Warn("musubi sends progress notifications only when a client asks"),
    ),
    flag(
        "experimental-warning-apply-duration",
        Text,
        None,
        Warn("musubi does not time individual applies"),
    ),
];

pub fn find(name: &str) -> Option<&'static EtcdOnlyFlag> {
    ETCD_ONLY_FLAGS.iter().find(|flag| flag.name == name)
}

impl EtcdOnlyFlag {
    /// What `value` given for this flag does: nothing (`Ok(None)`), a warning to log, or a
    /// refusal (the reason).
    pub fn judge(&self, value: &str) -> Result<Option<String>, String> {
        if self.harmless == Some(value) {
            return Ok(None);
        }
        match self.otherwise {
            Warn(reason) => Ok(Some(format!(
                "--{}={value} has no effect: {reason}",
                self.name
            ))),
            Refuse(reason) => Err(reason.to_string()),
        }
    }
}
