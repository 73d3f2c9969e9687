//! `stats`, which `serf info` prints: string maps of strings, keyed as Serf keys them, so
//! scripts reading `serf info -format json` find the same keys with values of the same form.
//!
//! `runtime` describes musubi's process in Go's terms: `os` and `arch` use Go's spellings
//! (`linux`, `amd64`) so tools matching on them keep working; `version` is the Rust
//! compiler that built the agent (`rust1.x.y`, as Go's is `go1.x.y`); `max_procs` is the
//! number of threads running the agent's tasks (the async runtime's workers) and
//! `goroutines` the number of its live tasks; `cpu_count` the CPUs available to it.

use crate::handlers::EventHandler;
use crate::node::NodeStats;
use musubi_gossip::identity::NodeId;
use std::collections::BTreeMap;

pub type StatsReply = BTreeMap<String, BTreeMap<String, String>>;

/// The rustc that built this crate (recorded by build.rs).
const RUSTC_VERSION: &str = env!("MUSUBI_RUSTC_VERSION");

pub fn stats_reply(local: &NodeId, handlers: &[EventHandler], node: &NodeStats) -> StatsReply {
    let section = |entries: Vec<(&str, String)>| -> BTreeMap<String, String> {
        entries
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect()
    };
    let mut reply = StatsReply::new();
    reply.insert("agent".into(), section(vec![("name", local.name.clone())]));
    // Later handlers win a shared key, as in Serf's map.
    let event_handlers = handlers
        .iter()
        .flat_map(EventHandler::info_entries)
        .map(|(key, script)| (key, script.to_string()))
        .collect();
    reply.insert("event_handlers".into(), event_handlers);
    reply.insert("runtime".into(), section(runtime()));
    reply.insert(
        "serf".into(),
        section(vec![
            ("members", node.members.to_string()),
            ("failed", node.failed.to_string()),
            ("left", node.left.to_string()),
            ("health_score", node.health_score.to_string()),
            ("member_time", node.member_time.to_string()),
            ("event_time", node.event_time.to_string()),
            ("query_time", node.query_time.to_string()),
            ("intent_queue", node.intent_queue.to_string()),
            ("event_queue", node.event_queue.to_string()),
            ("query_queue", node.query_queue.to_string()),
            ("encrypted", node.encrypted.to_string()),
            ("coordinate_resets", node.coordinate_resets.to_string()),
        ]),
    );
    reply.insert("tags".into(), local.tags.clone());
    reply
}

fn runtime() -> Vec<(&'static str, String)> {
    let metrics = tokio::runtime::Handle::current().metrics();
    let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    vec![
        ("os", std::env::consts::OS.to_string()),
        ("arch", go_arch(std::env::consts::ARCH).to_string()),
        ("version", format!("rust{RUSTC_VERSION}")),
        ("max_procs", metrics.num_workers().to_string()),
        ("goroutines", metrics.num_alive_tasks().to_string()),
        ("cpu_count", cpu_count.to_string()),
    ]
}

/// Go's GOARCH name for a Rust target architecture, where they differ.
fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sections_and_keys_are_serfs() {
        let local = NodeId {
            name: "n1".into(),
            addr: "127.0.0.1:7946".parse().unwrap(),
            tags: [("role".to_string(), "web".to_string())].into(),
            started_ms: 1,
        };
        let handlers = [
            EventHandler::parse("member-join=first").unwrap(),
            EventHandler::parse("member-join,user:deploy=second").unwrap(),
        ];
        let node = NodeStats {
            members: 3,
            failed: 1,
            left: 0,
            health_score: 0,
            member_time: 4,
            event_time: 1,
            query_time: 1,
            intent_queue: 0,
            event_queue: 0,
            query_queue: 0,
            encrypted: false,
            coordinate_resets: 0,
        };
        let reply = stats_reply(&local, &handlers, &node);
        let keys =
            |section: &str| -> Vec<&str> { reply[section].keys().map(String::as_str).collect() };
        assert_eq!(
            reply.keys().collect::<Vec<_>>(),
            ["agent", "event_handlers", "runtime", "serf", "tags"]
        );
        assert_eq!(keys("agent"), ["name"]);
        assert_eq!(reply["event_handlers"]["member-join:"], "second");
        assert_eq!(reply["event_handlers"]["user:deploy"], "second");
        assert_eq!(
            keys("runtime"),
            [
                "arch",
                "cpu_count",
                "goroutines",
                "max_procs",
                "os",
                "version"
            ]
        );
        assert_eq!(
            keys("serf"),
            [
                "coordinate_resets",
                "encrypted",
                "event_queue",
                "event_time",
                "failed",
                "health_score",
                "intent_queue",
                "left",
                "member_time",
                "members",
                "query_queue",
                "query_time"
            ]
        );
        assert_eq!(reply["serf"]["members"], "3");
        assert_eq!(reply["serf"]["encrypted"], "false");
        assert_eq!(reply["tags"]["role"], "web");
        assert!(reply["runtime"]["version"].starts_with("rust1."));
    }
}
