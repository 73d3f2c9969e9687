//! `musubi agent`'s flags: Serf's agent flags (and musubi's own), each with its Go type,
//! its usage line and the [`ConfigLayer`] field it fills. Parsed by Go's rules
//! (`musubi_gocompat::flag`), as `serf agent` parses them.

use super::layer::{self, ConfigLayer};
use musubi_gocompat::flag::{self, FlagError, Kind};
use musubi_gocompat::strconv::{parse_bool, parse_int};
use std::path::PathBuf;

/// The flag layer and the config paths in command-line order (`-config-file` and
/// `-config-dir` fill one list in Serf, so their interleaving matters).
#[derive(Default)]
pub struct Flags {
    pub layer: ConfigLayer,
    pub config_paths: Vec<PathBuf>,
}

/// Why the flags were refused: Go's `flag` refused the command line, or a value Serf checks
/// after parsing (`-tag`, `-retry-interval`) is wrong (Serf's message).
#[derive(Debug)]
pub enum Refusal {
    Syntax(FlagError),
    Value(String),
}

struct AgentFlag {
    name: &'static str,
    /// The flag's Go type in Serf (the durations are strings there, parsed afterwards).
    kind: Kind,
    /// Shown as `-name=hint` in the usage; empty for booleans.
    hint: &'static str,
    help: &'static str,
    /// Store one value (already checked against `kind`).
    set: fn(&mut Flags, &str) -> Result<(), String>,
}

const fn agent_flag(
    name: &'static str,
    kind: Kind,
    hint: &'static str,
    help: &'static str,
    set: fn(&mut Flags, &str) -> Result<(), String>,
) -> AgentFlag {
    AgentFlag {
        name,
        kind,
        hint,
        help,
        set,
    }
}

use Kind::{Bool, Int, Text};

const FLAGS: &[AgentFlag] = &[
    agent_flag(
        "bind",
        Text,
        "0.0.0.0:7946",
        "Address to bind the gossip listener to, ip[:port].",
        |f, v| set(&mut f.layer.bind, v),
    ),
    agent_flag(
        "iface",
        Text,
        "eth0",
        "Network interface to bind to (its address replaces a 0.0.0.0 bind).",
        |f, v| set(&mut f.layer.interface, v),
    ),
    agent_flag(
        "advertise",
        Text,
        "ip[:port]",
        "Address other members reach this one at.",
        |f, v| set(&mut f.layer.advertise, v),
    ),
    agent_flag(
        "config-file",
        Text,
        "foo",
        "A JSON config file to read (repeatable).",
        |f, v| push(&mut f.config_paths, v),
    ),
    agent_flag(
        "config-dir",
        Text,
        "foo",
        "A directory whose *.json files are read in name order (repeatable).",
        |f, v| push(&mut f.config_paths, v),
    ),
    agent_flag(
        "discover",
        Text,
        "cluster",
        "Cluster name to find and join peers by over mDNS.",
        |f, v| set(&mut f.layer.discover, v),
    ),
    agent_flag(
        "encrypt",
        Text,
        "key",
        "Base64 key encrypting gossip.",
        |f, v| set(&mut f.layer.encrypt_key, v),
    ),
    agent_flag(
        "keyring-file",
        Text,
        "path",
        "JSON file of base64 keys, the first one in use.",
        |f, v| set(&mut f.layer.keyring_file, v),
    ),
    agent_flag(
        "event-handler",
        Text,
        "foo",
        "[filter=]script run on events, e.g. member-join,user:deploy=./on-event.sh (repeatable).",
        |f, v| push(&mut f.layer.event_handlers, v),
    ),
    agent_flag(
        "join",
        Text,
        "addr",
        "An agent to join at start (repeatable); the agent exits if none can be reached.",
        |f, v| push(&mut f.layer.start_join, v),
    ),
    agent_flag(
        "log-level",
        Text,
        "info",
        "trace, debug, info, warn or err.",
        |f, v| set(&mut f.layer.log_level, v),
    ),
    agent_flag(
        "node",
        Text,
        "hostname",
        "Name of this node; must be unique in the cluster.",
        |f, v| set(&mut f.layer.node_name, v),
    ),
    agent_flag(
        "profile",
        Text,
        "[lan|wan|local]",
        "Timing profile (default lan).",
        |f, v| set(&mut f.layer.profile, v),
    ),
    agent_flag(
        "protocol",
        Int,
        "n",
        "Serf protocol version to speak (default: the latest).",
        |f, v| int(&mut f.layer.protocol, v),
    ),
    agent_flag(
        "rejoin",
        Bool,
        "",
        "Ignore a previous leave recorded in the snapshot and rejoin.",
        |f, v| boolean(&mut f.layer.rejoin_after_leave, v),
    ),
    agent_flag(
        "replay",
        Bool,
        "",
        "Replay past user events on the joins made at start.",
        |f, v| boolean(&mut f.layer.replay_on_join, v),
    ),
    agent_flag(
        "retry-join",
        Text,
        "addr",
        "An agent to join in the background, retried until one answers (repeatable).",
        |f, v| push(&mut f.layer.retry_join, v),
    ),
    agent_flag(
        "retry-interval",
        Text,
        "30s",
        "Time between retry-join rounds (at least 1s).",
        |f, v| {
            f.layer.retry_interval = Some(go_duration(v)?);
            Ok(())
        },
    ),
    agent_flag(
        "retry-max",
        Int,
        "0",
        "Failed retry-join rounds to retry after; 0 retries forever.",
        |f, v| int(&mut f.layer.retry_max_attempts, v),
    ),
    agent_flag(
        "disable-compression",
        Bool,
        "",
        "Do not compress broadcasts.",
        |f, v| boolean(&mut f.layer.disable_compression, v),
    ),
    agent_flag("role", Text, "foo", "Deprecated: the tag role.", |f, v| {
        set(&mut f.layer.role, v)
    }),
    agent_flag(
        "rpc-addr",
        Text,
        "127.0.0.1:7373",
        "Address of the RPC listener the serf CLI talks to.",
        |f, v| set(&mut f.layer.rpc_addr, v),
    ),
    agent_flag(
        "snapshot",
        Text,
        "path/to/file",
        "File recording members and clocks, for restarts.",
        |f, v| set(&mut f.layer.snapshot_path, v),
    ),
    agent_flag(
        "tag",
        Text,
        "key=value",
        "A tag for this node (repeatable).",
        |f, v| {
            f.layer
                .tags
                .push(layer::tag(v).map_err(|e| format!("Error: {e}"))?);
            Ok(())
        },
    ),
    agent_flag(
        "tags-file",
        Text,
        "/path/to/file",
        "A JSON file holding this node's tags: read at start, rewritten when they change.",
        |f, v| set(&mut f.layer.tags_file, v),
    ),
    agent_flag(
        "syslog",
        Bool,
        "",
        "Also send logs to the local syslog.",
        |f, v| boolean(&mut f.layer.enable_syslog, v),
    ),
    agent_flag(
        "broadcast-timeout",
        Text,
        "5s",
        "Longest wait for a leave or force-leave broadcast (at least 100ms).",
        |f, v| {
            f.layer.broadcast_timeout = Some(go_duration(v)?);
            Ok(())
        },
    ),
    // musubi's own
    agent_flag(
        "query-size-limit",
        Int,
        "1024",
        "Largest encoded query in bytes (up to 512 KiB).",
        |f, v| int(&mut f.layer.query_size_limit, v),
    ),
    agent_flag(
        "query-response-size-limit",
        Int,
        "1024",
        "Largest encoded query answer in bytes (up to 512 KiB).",
        |f, v| int(&mut f.layer.query_response_size_limit, v),
    ),
    agent_flag(
        "user-event-size-limit",
        Int,
        "512",
        "Largest user event (name plus payload) in bytes (up to 512 KiB).",
        |f, v| int(&mut f.layer.user_event_size_limit, v),
    ),
    agent_flag(
        "disable-coordinates",
        Bool,
        "",
        "Compute no network coordinate, share none.",
        |f, v| boolean(&mut f.layer.disable_coordinates, v),
    ),
    agent_flag(
        "http-addr",
        Text,
        "addr",
        "Serve the agent's metrics in Prometheus's text format at http://ADDR/metrics.",
        |f, v| set(&mut f.layer.http_addr, v),
    ),
    agent_flag(
        "store-endpoints",
        Text,
        "urls",
        "The store holding -config-store trees, comma-separated URLs (default http://127.0.0.1:2379).",
        |f, v| {
            f.layer
                .store_endpoints
                .extend(v.split(',').map(str::to_string));
            Ok(())
        },
    ),
    agent_flag(
        "config-store",
        Text,
        "prefix",
        "A key prefix whose tree is read as a config file over the files and under the flags, and watched (repeatable).",
        |f, v| push(&mut f.layer.config_store, v),
    ),
    agent_flag(
        "config-store-cache",
        Text,
        "file",
        "A file keeping the last configuration read from the store, to start from when it is down.",
        |f, v| set(&mut f.layer.config_store_cache, v),
    ),
];

// Storing one checked value in its field.

fn set<T: for<'a> From<&'a str>>(field: &mut Option<T>, value: &str) -> Result<(), String> {
    *field = Some(value.into());
    Ok(())
}

fn push<T: for<'a> From<&'a str>>(list: &mut Vec<T>, value: &str) -> Result<(), String> {
    list.push(value.into());
    Ok(())
}

fn boolean(field: &mut Option<bool>, value: &str) -> Result<(), String> {
    *field = parse_bool(value);
    Ok(())
}

fn int(field: &mut Option<i64>, value: &str) -> Result<(), String> {
    *field = parse_int(value).ok();
    Ok(())
}

/// Serf reads its duration flags as strings and parses them after: `Error: time: ...`.
fn go_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::go_duration::parse(text).map_err(|e| format!("Error: {e}"))
}

/// The flags of `musubi agent ARGS`. Arguments after the first that is not a flag are
/// ignored, as `serf agent` ignores them.
pub fn parse(args: &[String]) -> Result<Flags, Refusal> {
    let lookup = |name: &str| FLAGS.iter().find(|f| f.name == name).map(|f| (f, f.kind));
    let parsed = flag::parse(args, lookup).map_err(Refusal::Syntax)?;
    let mut flags = Flags::default();
    for (flag, value) in &parsed.values {
        (flag.set)(&mut flags, value).map_err(Refusal::Value)?;
    }
    Ok(flags)
}

/// `musubi agent`'s usage, laid out as `serf agent`'s.
pub fn usage() -> String {
    let mut text = String::from(
        "Usage: musubi agent [options]\n\n  Starts a gossip agent that Serf's CLI and RPC clients can drive, and runs\n  until an interrupt is received.\n\nOptions:\n",
    );
    for flag in FLAGS {
        let spelled = match flag.kind {
            Bool => format!("-{}", flag.name),
            _ => format!("-{}={}", flag.name, flag.hint),
        };
        text.push_str(&format!("\n  {spelled:<26} {}", flag.help));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(list: &[&str]) -> String {
        let args: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        match parse(&args) {
            Err(Refusal::Syntax(e)) => e.to_string(),
            Err(Refusal::Value(message)) => message,
            Ok(_) => panic!("{list:?} was accepted"),
        }
    }

    #[test]
    fn bad_flags_are_refused_as_serf_agent_refuses_them() {
        // serf 0.9.4's first line for each.
        assert_eq!(
            refused(&["-bogus"]),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(refused(&["-node"]), "flag needs an argument: -node");
        assert_eq!(refused(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(
            refused(&["-rejoin=maybe"]),
            "invalid boolean value \"maybe\" for -rejoin: parse error"
        );
        assert_eq!(
            refused(&["-protocol=abc"]),
            "invalid value \"abc\" for flag -protocol: parse error"
        );
        assert_eq!(
            refused(&["-retry-interval=5"]),
            "Error: time: missing unit in duration \"5\""
        );
        assert_eq!(
            refused(&["-tag", "novalue"]),
            "Error: Invalid tag: 'novalue'"
        );
    }

    #[test]
    fn flags_stop_at_the_first_argument_that_is_not_one() {
        let args: Vec<String> = ["-replay", "false", "-node", "x"]
            .map(String::from)
            .to_vec();
        let flags = parse(&args).ok().unwrap();
        assert_eq!(flags.layer.replay_on_join, Some(true));
        assert_eq!(flags.layer.node_name, None);
    }

    #[test]
    fn every_flag_is_in_the_usage() {
        let usage = usage();
        for flag in FLAGS {
            assert!(
                usage.contains(&format!("  -{}", flag.name)),
                "{}",
                flag.name
            );
        }
    }
}
