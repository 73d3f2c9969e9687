//! `musubi keys -install|-use|-remove KEY | -list`: change or list the cluster's key ring.
//! Exit 1 when any node failed or did not answer (the agent then reports an error).

use super::flags::{Flag, Kind};
use super::text::{columns, go_json, say};
use super::{Format, Invocation, Verb, fail};
use musubi_serf_rpc::client::messages::KeyResponse;
use musubi_serf_rpc::codec::KeyringRequest;
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

/// One of the four operations: the flag that asks for it, its RPC command and its messages.
struct Operation {
    flag: &'static str,
    command: &'static str,
    started: &'static str,
    done: &'static str,
    failed: &'static str,
}

const OPERATIONS: [Operation; 4] = [
    Operation {
        flag: "install",
        command: "install-key",
        started: "==> Installing key on all members...",
        done: "==> Successfully installed key!",
        failed: "Error installing key",
    },
    Operation {
        flag: "use",
        command: "use-key",
        started: "==> Changing primary key on all members...",
        done: "==> Successfully changed primary key!",
        failed: "Error changing primary key",
    },
    Operation {
        flag: "remove",
        command: "remove-key",
        started: "==> Removing key on all members...",
        done: "==> Successfully removed key!",
        failed: "Error removing key",
    },
    Operation {
        flag: "list",
        command: "list-keys",
        started: "==> Asking all members for installed keys...",
        done: "==> Keys gathered, listing cluster keys...",
        failed: "Failed to gather member keys",
    },
];

const LIST: &str = "list";

pub async fn run(invocation: Invocation) -> u8 {
    let flags = &invocation.flags;
    let chosen: Vec<&Operation> = OPERATIONS
        .iter()
        .filter(|op| {
            if op.flag == LIST {
                flags.bool(LIST, false)
            } else {
                flags.text(op.flag).is_some()
            }
        })
        .collect();
    let operation = match chosen.as_slice() {
        [] => {
            say(&super::usage(invocation.verb));
            return 1;
        }
        [one] => *one,
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
    let body = flags
        .text(operation.flag)
        .filter(|_| operation.flag != LIST)
        .map(|key| KeyringRequest {
            key: key.to_string(),
        });
    let (error, reply) = match client
        .call_with_outcome::<_, KeyResponse>(operation.command, body.as_ref())
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => (e.to_string(), KeyResponse::default()),
    };
    if json {
        say(&go_json(&json_document(operation, &error, &reply)));
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
    if operation.flag == LIST {
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
    if operation.flag == LIST {
        document["keys"] = json!(reply.keys);
    }
    document
}
