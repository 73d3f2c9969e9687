//! `musubi rtt A [B]`: the round trip between two members that their network coordinates
//! predict; B defaults to the agent itself.

use super::text::{go_json, say};
use super::{Format, Invocation, Verb, fail};
use musubi_serf_rpc::client::RpcClient;
use musubi_serf_rpc::client::messages::{Coordinate, CoordinateResponse, Stats};
use musubi_serf_rpc::codec::CoordinateRequest;
use serde_json::json;

pub const VERB: Verb = Verb {
    name: "rtt",
    about: "Estimates the round trip time between two members from their network coordinates.",
    synopsis: "[options] node1 [node2]",
    flags: &[],
    uses_rpc: true,
};

pub async fn run(invocation: Invocation) -> u8 {
    let names = invocation.flags.args.clone();
    if names.is_empty() || names.len() > 2 {
        return invocation.misuse("One or two node names must be specified");
    }
    if let Err(code) = invocation.check_format() {
        return code;
    }
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let second = match names.get(1) {
        Some(name) => name.clone(),
        None => match local_name(&mut client).await {
            Ok(name) => name,
            Err(message) => return fail(&message),
        },
    };
    let first = names[0].clone();
    let a = match coordinate(&mut client, &first).await {
        Ok(coord) => coord,
        Err(message) => return fail(&message),
    };
    let b = match coordinate(&mut client, &second).await {
        Ok(coord) => coord,
        Err(message) => return fail(&message),
    };
    let seconds = match a.rtt_seconds(&b) {
        Ok(seconds) => seconds,
        Err(message) => return fail(&format!("Error computing the round trip: {message}")),
    };
    // Serf keeps the distance as whole nanoseconds before printing milliseconds.
    let millis = (seconds * 1e9).trunc() / 1e6;
    if invocation.format == Format::Json {
        say(&go_json(
            &json!({ "node1": first, "node2": second, "rtt_ms": millis }),
        ));
    } else {
        say(&format!(
            "Estimated {first} <-> {second} rtt: {millis:.3} ms"
        ));
    }
    0
}

async fn local_name(client: &mut RpcClient) -> Result<String, String> {
    let stats: Stats = client
        .call_for::<(), _>("stats", None)
        .await
        .map_err(|e| format!("Error querying agent: {e}"))?;
    stats
        .get("agent")
        .and_then(|agent| agent.get("name"))
        .cloned()
        .ok_or_else(|| "Error querying agent: no agent name in its stats".to_string())
}

async fn coordinate(client: &mut RpcClient, node: &str) -> Result<Coordinate, String> {
    let request = CoordinateRequest {
        node: node.to_string(),
    };
    let reply: CoordinateResponse = client
        .call_for("get-coordinate", Some(&request))
        .await
        .map_err(|e| format!("Error getting coordinates: {e}"))?;
    if reply.ok {
        Ok(reply.coord)
    } else {
        Err(format!("Could not find a coordinate for node {node:?}"))
    }
}
