//! The descriptions of Serf's metrics (Prometheus's `# HELP` lines); the core
//! (`musubi_gossip::core`) and the node record them.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

pub(super) fn describe() {
    for (name, help) in [
        ("serf.member.join", "Members seen joining (or rejoining)."),
        ("serf.member.left", "Members seen leaving gracefully."),
        ("serf.member.failed", "Members seen failing."),
        ("serf.member.update", "Members seen changing their tags."),
        (
            "serf.member.flap",
            "Joins of members that failed less than 60 s before.",
        ),
        ("serf.events", "User events received (each once)."),
        ("serf.queries", "Queries received (each once)."),
        ("serf.query_acks", "Acks received for this node's queries."),
        (
            "serf.query_responses",
            "Responses received for this node's queries.",
        ),
        (
            "serf.coordinate.rejected",
            "Round trips the Vivaldi client refused.",
        ),
        ("memberlist.udp.sent", "Bytes sent over UDP."),
        ("memberlist.udp.received", "Bytes received over UDP."),
        ("memberlist.tcp.connect", "Stream connections opened."),
        ("memberlist.tcp.accept", "Stream connections accepted."),
        ("memberlist.tcp.sent", "Bytes sent over stream connections."),
    ] {
        describe_counter!(name, help);
        // Present from the first scrape, so that a rate over it starts at the start.
        metrics::counter!(name).absolute(0);
    }
    describe_gauge!(
        "memberlist.health.score",
        "Lifeguard's local health score: 0 is healthy, higher is more doubt about ourselves."
    );
    describe_histogram!(
        "memberlist.probeNode",
        Unit::Milliseconds,
        "Round trip of this node's answered probes, in milliseconds."
    );
    describe_histogram!(
        "serf.coordinate.adjustment-ms",
        Unit::Milliseconds,
        "How far each round trip moved this node's coordinate, in milliseconds."
    );
}
