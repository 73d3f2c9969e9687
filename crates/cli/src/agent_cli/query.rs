//! `musubi query NAME [PAYLOAD]`: ask members a question; print acks and responses as they
//! arrive, then the totals (or, with `-format json`, Serf's `{"Acks", "Responses"}`).

use super::flags::{Flag, Kind};
use super::text::{go_json, say};
use super::{Format, Invocation, Verb, fail, split_tag};
use musubi_serf_rpc::client::messages::QueryRecord;
use musubi_serf_rpc::client::{ClientError, RpcClient};
use musubi_serf_rpc::codec::QueryRequest;
use serde_json::json;
use std::collections::BTreeMap;

pub const VERB: Verb = Verb {
    name: "query",
    about: "Sends a query to the cluster and prints the acks and responses.",
    synopsis: "[options] name [payload]",
    flags: &[
        Flag {
            name: "node",
            kind: Kind::Text,
            value_hint: "NAME",
            help: "Ask only this node (repeatable).",
        },
        Flag {
            name: "tag",
            kind: Kind::Text,
            value_hint: "key=regexp",
            help: "Ask only nodes whose tag wholly matches (repeatable).",
        },
        Flag {
            name: "timeout",
            kind: Kind::Duration,
            value_hint: "15s",
            help: "How long to wait for responses (default: the agent's).",
        },
        Flag {
            name: "no-ack",
            kind: Kind::Bool,
            value_hint: "",
            help: "Do not ask nodes to acknowledge the query.",
        },
        Flag {
            name: "relay-factor",
            kind: Kind::Int,
            value_hint: "0",
            help: "Relay each response through this many other nodes (0-255).",
        },
    ],
    uses_rpc: true,
};

/// Send a query; returns the Seq its records will carry once the agent accepted it.
pub async fn start_query(
    client: &mut RpcClient,
    request: &QueryRequest,
) -> Result<u64, ClientError> {
    client.open_stream("query", Some(request)).await
}

/// How reading a query's records ended.
#[derive(Debug, PartialEq, Eq)]
pub enum QueryEnd {
    /// The agent sent `done`: the timeout passed.
    Done,
    /// Ctrl-C: Serf's commands stop and exit 1.
    Interrupted,
}

/// Read a started query's records to its `done` (or to Ctrl-C), calling `on_record` for
/// each ack and response.
pub async fn collect_records(
    client: &mut RpcClient,
    seq: u64,
    mut on_record: impl FnMut(&QueryRecord),
) -> Result<QueryEnd, ClientError> {
    let records = async {
        loop {
            let header = client.next_header().await?;
            if header.seq != seq {
                continue;
            }
            let record: QueryRecord = client.body().await?;
            if record.kind == "done" {
                return Ok(QueryEnd::Done);
            }
            // Serf's agent can stream a zero-valued ack or response (no sender) when the
            // query's channels close at its deadline just before its own `done`: no node sent
            // it, so it is neither shown nor counted.
            if !record.from.is_empty() {
                on_record(&record);
            }
        }
    };
    tokio::select! {
        end = records => end,
        _ = tokio::signal::ctrl_c() => Ok(QueryEnd::Interrupted),
    }
}

pub async fn run(invocation: Invocation) -> u8 {
    let flags = &invocation.flags;
    let (name, payload) = match flags.args.as_slice() {
        [] => return invocation.misuse("A query name must be specified."),
        [name] => (name.clone(), None),
        [name, payload, ..] => (name.clone(), Some(payload.clone().into_bytes().into())),
    };
    let mut filter_tags = BTreeMap::new();
    for text in flags.list("tag") {
        match split_tag(&text) {
            Ok((key, pattern)) => filter_tags.insert(key, pattern),
            Err(message) => return fail(&message),
        };
    }
    let relay_factor = match u8::try_from(flags.int("relay-factor").unwrap_or(0)) {
        Ok(factor) => factor,
        Err(_) => return fail("Relay factor must be between 0 and 255"),
    };
    let timeout = flags.duration("timeout").unwrap_or_default();
    let request = QueryRequest {
        filter_nodes: flags.list("node"),
        filter_tags,
        request_ack: !flags.bool("no-ack", false),
        relay_factor,
        timeout: i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX),
        name: name.clone(),
        payload,
    };
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let json = match &invocation.format {
        Format::Text => false,
        Format::Json => true,
        Format::Unknown(other) => return fail(&format!("Invalid format: {other}")),
    };
    let seq = match start_query(&mut client, &request).await {
        Ok(seq) => seq,
        Err(e) => return fail(&format!("Error sending query: {e}")),
    };
    if !json {
        say(&format!("Query '{name}' dispatched"));
    }
    let mut acks: Vec<String> = Vec::new();
    let mut responses: BTreeMap<String, String> = BTreeMap::new();
    let outcome = collect_records(&mut client, seq, |record| {
        let payload = String::from_utf8_lossy(&record.payload).into_owned();
        if record.kind == "ack" {
            if !json {
                say(&format!("Ack from '{}'", record.from));
            }
            acks.push(record.from.clone());
        } else if record.kind == "response" {
            if !json {
                // One trailing newline is the line's own; more are shown.
                let shown = payload.strip_suffix('\n').unwrap_or(&payload);
                say(&format!("Response from '{}': {shown}", record.from));
            }
            responses.insert(record.from.clone(), payload);
        }
    })
    .await;
    match outcome {
        Ok(QueryEnd::Done) => {}
        Ok(QueryEnd::Interrupted) => return 1,
        Err(e) => return fail(&format!("Error reading the query's responses: {e}")),
    }
    if json {
        let acks = if acks.is_empty() {
            serde_json::Value::Null
        } else {
            json!(acks)
        };
        say(&go_json(&json!({ "Acks": acks, "Responses": responses })));
    } else {
        if request.request_ack {
            say(&format!("Total Acks: {}", acks.len()));
        }
        say(&format!("Total Responses: {}", responses.len()));
    }
    0
}
