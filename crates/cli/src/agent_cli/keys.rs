//! `musubi keys -install|-use|-remove KEY | -list`: change or list the cluster's key ring.
//! Exit 1 when any node failed or did not answer (the agent then reports an error).

use super::flags::{Flag, Kind};
use super::text::{columns, go_json, say};
use super::{Format, Invocation, Verb, fail};
use musubi_agent::rpc_client::messages::{KeyRequest, KeyResponse};
use serde_json::json;

pub const VERB: Verb = Verb {
    name: "keys",
    about: "Installs, switches to, removes or lists the gossip encryption keys of every member.",
    synopsis: "[options]...",
    flags: &[
        Flag {
            name: "install",
            kind: Kind::Text,
            value_hint: "<key>",
            help: "Add a key every member can decrypt with.",
        },
        Flag {
            name: "use",
            kind: Kind::Text,
            value_hint: "<key>",
            help: "Make an installed key the one every member encrypts with.",
        },
        Flag {
            name: "remove",
            kind: Kind::Text,
            value_hint: "<key>",
            help: "Remove a key that is not the primary one.",
        },
        Flag {
            name: "list",
            kind: Kind::Bool,
            value_hint: "",
            help: "List every key in the cluster and how many members hold it.",
        },
    ],
    uses_rpc: true,
};

/// What each operation is called on the wire and in its messages.
struct Operation {
    command: &'static str,
    key: Option<String>,
    started: &'static str,
    done: &'static str,
    failed: &'static str,
}

pub async fn run(invocation: Invocation) -> u8 {
    let flags = &invocation.flags;
    let mut chosen = Vec::new();
    if let Some(key) = flags.text("install") {
        chosen.push(Operation {
            command: "install-key",
            key: Some(key.to_string()),
            started: "==> Installing key on all members...",
            done: "==> Successfully installed key!",
            failed: "Error installing key",
        });
    }
    if let Some(key) = flags.text("use") {
        chosen.push(Operation {
            command: "use-key",
            key: Some(key.to_string()),
            started: "==> Changing primary key on all members...",
            done: "==> Successfully changed primary key!",
            failed: "Error changing primary key",
        });
    }
    if let Some(key) = flags.text("remove") {
        chosen.push(Operation {
            command: "remove-key",
            key: Some(key.to_string()),
            started: "==> Removing key on all members...",
            done: "==> Successfully removed key!",
            failed: "Error removing key",
        });
    }
    if flags.bool("list", false) {
        chosen.push(Operation {
            command: "list-keys",
            key: None,
            started: "==> Asking all members for installed keys...",
            done: "==> Keys gathered, listing cluster keys...",
            failed: "Failed to gather member keys",
        });
    }
    let operation = match chosen.len() {
        0 => {
            say(&super::usage(invocation.verb));
            return 1;
        }
        1 => chosen.remove(0),
        _ => return fail("Only one of -install, -use, -remove, or -list allowed"),
    };
    if let Err(code) = invocation.check_format() {
        return code;
    }
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let json = invocation.format == Format::Json;
    if !json {
        say(operation.started);
    }
    let body = operation.key.clone().map(|key| KeyRequest { key });
    let (error, reply) = match client
        .call_with_outcome::<_, KeyResponse>(operation.command, body.as_ref())
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => (e.to_string(), KeyResponse::default()),
    };
    if json {
        say(&go_json(&json_document(&operation, &error, &reply)));
        return u8::from(!error.is_empty());
    }
    if !error.is_empty() {
        let failures: Vec<Vec<String>> = reply
            .messages
            .iter()
            .map(|(node, message)| vec!["failed:".into(), node.clone(), message.clone()])
            .collect();
        if !failures.is_empty() {
            say(&columns(&failures));
        }
        say("");
        return fail(&format!("{}: {error}", operation.failed));
    }
    say(operation.done);
    if operation.command == "list-keys" {
        let rows: Vec<Vec<String>> = reply
            .keys
            .iter()
            .map(|(key, count)| vec![key.clone(), format!("[{count}/{}]", reply.num_nodes)])
            .collect();
        say("");
        say(&columns(&rows));
    }
    0
}

/// `{"error", "num_nodes", "num_responses", "num_errors", "messages"}`, plus `"keys"`
/// (key -> how many members hold it) for `-list`.
fn json_document(operation: &Operation, error: &str, reply: &KeyResponse) -> serde_json::Value {
    let mut document = json!({
        "error": error,
        "num_nodes": reply.num_nodes,
        "num_responses": reply.num_resp,
        "num_errors": reply.num_err,
        "messages": reply.messages,
    });
    if operation.command == "list-keys" {
        document["keys"] = json!(reply.keys);
    }
    document
}
