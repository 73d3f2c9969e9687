//! `musubi reachability`: ping every member through the gossip layer (the internal
//! `_serf_ping` query, acks only) and compare who answered with who is alive.
//! Exit 1 when the acks do not match the live members.

use super::flags::{Flag, Kind};
use super::query::{QueryEnd, collect_records, start_query};
use super::text::{go_json, say};
use super::{Format, Invocation, Verb, fail};
use musubi_serf_rpc::codec::MembersResponse;
use musubi_serf_rpc::codec::QueryRequest;
use serde_json::json;
use std::time::Instant;

pub const VERB: Verb = Verb {
    name: "reachability",
    about: "Checks that every live member answers a ping sent through the cluster.",
    synopsis: "[options]",
    flags: &[Flag {
        name: "verbose",
        kind: Kind::Bool,
        value_hint: "",
        help: "Show each ack and the timings.",
    }],
    uses_rpc: true,
};

/// Printed under a mismatch: where to look.
const ADVICE: &str = "Packets between members are probably being lost.

What to check:
* the bind address and port are reachable (UDP and TCP) from every other member
* an advertise address, if set, leads to the bind address
* no member sits behind a NAT
* firewalls and iptables rules let the gossip port through
* the network equipment between members works";

pub async fn run(invocation: Invocation) -> u8 {
    if let Err(code) = invocation.check_format() {
        return code;
    }
    let json = invocation.format == Format::Json;
    let verbose = invocation.flags.bool("verbose", false);
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let members: MembersResponse = match client.call_for::<(), _>("members", None).await {
        Ok(members) => members,
        Err(e) => return fail(&format!("Error getting members: {e}")),
    };
    let live: Vec<String> = members
        .members
        .iter()
        .filter(|m| m.status == "alive")
        .map(|m| m.name.clone())
        .collect();
    if !json {
        say(&format!(
            "Total members: {}, live members: {}",
            members.members.len(),
            live.len()
        ));
        say("Starting reachability test...");
    }
    let request = QueryRequest {
        request_ack: true,
        name: "_serf_ping".into(),
        // The agent answers `_serf_ping` only with no payload at all.
        payload: None,
        ..Default::default()
    };
    let start = Instant::now();
    let mut last_ack = start;
    let mut acks: Vec<String> = Vec::new();
    let seq = match start_query(&mut client, &request).await {
        Ok(seq) => seq,
        Err(e) => return fail(&format!("Error sending query: {e}")),
    };
    let outcome = collect_records(&mut client, seq, |record| {
        if record.kind == "ack" {
            if verbose && !json {
                say(&format!("\tAck from '{}'", record.from));
            }
            last_ack = Instant::now();
            // A relayed or retransmitted ack counts once: the test is about who answered.
            if !acks.contains(&record.from) {
                acks.push(record.from.clone());
            }
        }
    })
    .await;
    match outcome {
        Ok(QueryEnd::Done) => {}
        Ok(QueryEnd::Interrupted) => return fail("Test interrupted"),
        Err(e) => return fail(&format!("Error reading the acks: {e}")),
    }
    let query_time = start.elapsed().as_secs_f64();
    let last_response = (last_ack - start).as_secs_f64();
    let missing: Vec<&String> = live.iter().filter(|n| !acks.contains(n)).collect();
    let unexpected: Vec<&String> = acks.iter().filter(|n| !live.contains(n)).collect();
    let healthy = acks.len() == live.len();
    if json {
        say(&go_json(&json!({
            "members": members.members.len(),
            "live_members": live.len(),
            "acks": acks,
            "missing": missing,
            "unexpected": unexpected,
            "query_seconds": query_time,
            "last_response_seconds": last_response,
            "ok": healthy,
        })));
        return u8::from(!healthy);
    }
    if verbose {
        say(&format!(
            "Query time: {query_time:.2} sec, time to last response: {last_response:.2} sec"
        ));
    }
    if acks.len() < live.len() {
        say("Received less acks than live nodes! Missing acks from:");
        missing.iter().for_each(|n| say(&format!("\t{n}")));
    } else if acks.len() > live.len() {
        say("Received more acks than live nodes! Acks from non-live nodes:");
        unexpected.iter().for_each(|n| say(&format!("\t{n}")));
    } else {
        say("Successfully contacted all live nodes");
        return 0;
    }
    say(ADVICE);
    1
}
