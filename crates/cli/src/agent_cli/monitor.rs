//! `musubi monitor`: the agent's recent and live log lines at a level, and its events,
//! until interrupted (exit 0) or until the agent ends the stream (exit 1).

use super::flags::{Flag, Kind};
use super::go_syntax::event_info;
use super::text::say;
use super::{Format, Invocation, Verb, fail};
use musubi_serf_rpc::client::messages::{EventRecord, LogRecord};
use musubi_serf_rpc::client::{ClientError, RpcClient};
use musubi_serf_rpc::codec::{MonitorRequest, StreamRequest};
use musubi_serf_rpc::members::address;
use serde_json::json;

pub const VERB: Verb = Verb {
    name: "monitor",
    about: "Streams the agent's log lines, recent ones first, at any level, and its events.",
    synopsis: "[options]",
    flags: &[Flag {
        name: "log-level",
        kind: Kind::Text,
        value_hint: "info",
        help: "Lowest level to show: trace, debug, info, warn or err.",
    }],
    uses_rpc: true,
};

pub async fn run(invocation: Invocation) -> u8 {
    if let Err(code) = invocation.check_format() {
        return code;
    }
    let json = invocation.format == Format::Json;
    let level = invocation
        .flags
        .text("log-level")
        .unwrap_or("info")
        .to_uppercase();
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let events = match client
        .open_stream("stream", Some(&StreamRequest { filter: "*".into() }))
        .await
    {
        Ok(seq) => seq,
        Err(e) => return fail(&format!("Error starting stream: {e}")),
    };
    let logs = match client
        .open_stream("monitor", Some(&MonitorRequest { log_level: level }))
        .await
    {
        Ok(seq) => seq,
        Err(e) => return fail(&format!("Error starting monitor: {e}")),
    };
    tokio::select! {
        // However the stream ended (closed, garbled), Serf's message says the same.
        _ = print_records(&mut client, events, logs, json) => {
            say("Remote side ended the monitor! This usually means that the");
            say("remote side has exited or crashed.");
            1
        }
        _ = tokio::signal::ctrl_c() => {
            // Best effort: the agent also ends both streams when the connection closes.
            let _ = client.stop(logs).await;
            let _ = client.stop(events).await;
            0
        }
    }
}

/// Log and event records until the connection ends.
async fn print_records(
    client: &mut RpcClient,
    events: u64,
    logs: u64,
    json: bool,
) -> Result<(), ClientError> {
    loop {
        let header = client.next_header().await?;
        if header.seq == logs {
            let record: LogRecord = client.body().await?;
            let line = record.log.trim_end_matches('\n');
            if json {
                say(&serde_json::to_string(&json!({ "log": line })).expect("encodes"));
            } else {
                say(line);
            }
        } else if header.seq == events {
            let record: EventRecord = client.body().await?;
            if json {
                say(
                    &serde_json::to_string(&json!({ "event": event_json(&record) }))
                        .expect("encodes"),
                );
            } else {
                say(&event_info(&record));
            }
        }
    }
}

/// The record's fields under their RPC names; payloads as text, members as `members -format
/// json` shows them (name, addr, status, tags).
fn event_json(record: &EventRecord) -> serde_json::Value {
    let mut value = json!({ "Event": record.event });
    if let Some(id) = record.id {
        value["ID"] = json!(id);
    }
    if let Some(ltime) = record.ltime {
        value["LTime"] = json!(ltime);
    }
    if let Some(name) = &record.name {
        value["Name"] = json!(name);
    }
    if let Some(payload) = &record.payload {
        value["Payload"] = json!(payload.as_ref().map(|p| String::from_utf8_lossy(p)));
    }
    if let Some(coalesce) = record.coalesce {
        value["Coalesce"] = json!(coalesce);
    }
    if let Some(members) = &record.members {
        let list: Vec<serde_json::Value> = members
            .iter()
            .map(
                |m| json!({"name": m.name, "addr": address(m), "status": m.status, "tags": m.tags}),
            )
            .collect();
        value["Members"] = json!(list);
    }
    value
}
