//! What a reload cannot apply: the settings, by Serf's config key, that differ from the
//! ones the agent started with. Serf's reload applies the log level, the handlers and the
//! tags; every other change waits for a restart, and `info` lists it rather than leaving
//! the operator to guess (`config_store.pending_restart`).

use crate::config::AgentConfig;

pub fn pending_restart(started: &AgentConfig, loaded: &AgentConfig) -> Vec<&'static str> {
    let (a, b) = (started, loaded);
    let differs = [
        ("node_name", a.node != b.node),
        ("bind", a.bind != b.bind),
        ("advertise", a.advertise != b.advertise),
        ("interface", a.interface != b.interface),
        ("start_join", a.join != b.join),
        ("retry_join", a.retry_join != b.retry_join),
        ("retry_interval", a.retry_interval != b.retry_interval),
        (
            "retry_max_attempts",
            a.retry_max_attempts != b.retry_max_attempts,
        ),
        ("replay_on_join", a.replay_on_join != b.replay_on_join),
        ("rpc_addr", a.rpc_addr != b.rpc_addr),
        ("rpc_auth", a.rpc_auth != b.rpc_auth),
        ("tags_file", a.tags_file != b.tags_file),
        ("profile", a.profile != b.profile),
        (
            "leave_on_terminate",
            a.leave_on_terminate != b.leave_on_terminate,
        ),
        (
            "skip_leave_on_interrupt",
            a.skip_leave_on_interrupt != b.skip_leave_on_interrupt,
        ),
        ("enable_syslog", a.enable_syslog != b.enable_syslog),
        ("syslog_facility", a.syslog_facility != b.syslog_facility),
        ("discover", a.discover != b.discover),
        ("protocol", a.protocol != b.protocol),
        (
            "broadcast_timeout",
            a.broadcast_timeout != b.broadcast_timeout,
        ),
        ("encrypt_key", a.encrypt_key != b.encrypt_key),
        ("keyring_file", a.keyring_file != b.keyring_file),
        ("snapshot_path", a.snapshot_path != b.snapshot_path),
        (
            "rejoin_after_leave",
            a.rejoin_after_leave != b.rejoin_after_leave,
        ),
        (
            "reconnect_interval",
            a.reconnect_interval != b.reconnect_interval,
        ),
        (
            "reconnect_timeout",
            a.reconnect_timeout != b.reconnect_timeout,
        ),
        (
            "tombstone_timeout",
            a.tombstone_timeout != b.tombstone_timeout,
        ),
        (
            "disable_name_resolution",
            a.disable_name_resolution != b.disable_name_resolution,
        ),
        (
            "disable_coordinates",
            a.disable_coordinates != b.disable_coordinates,
        ),
        ("query_size_limit", a.query_size_limit != b.query_size_limit),
        (
            "query_response_size_limit",
            a.query_response_size_limit != b.query_response_size_limit,
        ),
        (
            "user_event_size_limit",
            a.user_event_size_limit != b.user_event_size_limit,
        ),
        ("statsite_addr", a.statsite_addr != b.statsite_addr),
        ("statsd_addr", a.statsd_addr != b.statsd_addr),
    ];
    differs
        .into_iter()
        .filter(|(_, differs)| *differs)
        .map(|(key, _)| key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> AgentConfig {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        AgentConfig::load(&args).unwrap()
    }

    #[test]
    fn live_settings_are_not_pending_and_the_others_are() {
        let started = config(&["-node", "a", "-bind", "127.0.0.1:7000"]);
        let live = config(&[
            "-node",
            "a",
            "-bind",
            "127.0.0.1:7000",
            "-log-level",
            "debug",
            "-tag",
            "role=db",
            "-event-handler",
            "x",
        ]);
        assert!(pending_restart(&started, &live).is_empty());
        let moved = config(&["-node", "b", "-bind", "127.0.0.1:7001", "-profile", "wan"]);
        assert_eq!(
            pending_restart(&started, &moved),
            vec!["node_name", "bind", "profile"]
        );
    }
}
