//! `musubi members`: the agent's member list, filtered by the agent (`members-filtered`,
//! anchored regexps), as aligned columns or Serf's JSON document.

use super::flags::{Flag, Kind};
use super::text::{columns, go_json, say};
use super::{Format, Invocation, Verb, fail, split_tag};
use musubi_serf_rpc::codec::{MemberWire, MembersFilter, MembersResponse};
use musubi_serf_rpc::members::{address, json_document};
use std::collections::BTreeMap;

pub const VERB: Verb = Verb {
    name: "members",
    about: "Lists the members the agent knows, with their address, status and tags.",
    synopsis: "[options]",
    flags: &[
        Flag {
            name: "detailed",
            kind: Kind::Bool,
            value_hint: "",
            help: "Also show each member's protocol versions (text output only).",
        },
        Flag {
            name: "name",
            kind: Kind::Text,
            value_hint: "<regexp>",
            help: "Only members whose whole name matches the regexp.",
        },
        Flag {
            name: "role",
            kind: Kind::Text,
            value_hint: "<regexp>",
            help: "Old spelling of -tag role=<regexp>.",
        },
        Flag {
            name: "status",
            kind: Kind::Text,
            value_hint: "<regexp>",
            help: "Only members whose whole status matches (alive|leaving|left|failed).",
        },
        Flag {
            name: "tag",
            kind: Kind::Text,
            value_hint: "<key>=<regexp>",
            help: "Only members with tag <key> wholly matching the regexp; repeatable.",
        },
    ],
    uses_rpc: true,
};

pub async fn run(invocation: Invocation) -> u8 {
    let flags = &invocation.flags;
    let mut tags = BTreeMap::new();
    for text in flags.list("tag") {
        match split_tag(&text) {
            Ok((key, pattern)) => tags.insert(key, pattern),
            Err(message) => return fail(&message),
        };
    }
    if let Some(role) = flags.text("role") {
        say("Deprecation warning: 'Role' has been replaced with 'Tags'");
        tags.insert("role".to_string(), role.to_string());
    }
    let filter = MembersFilter {
        tags,
        status: flags.text("status").unwrap_or_default().to_string(),
        name: flags.text("name").unwrap_or_default().to_string(),
    };
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let reply: MembersResponse = match client.call_for("members-filtered", Some(&filter)).await {
        Ok(reply) => reply,
        Err(e) => return fail(&format!("Error retrieving members: {e}")),
    };
    match &invocation.format {
        Format::Text => {
            let detailed = flags.bool("detailed", false);
            let rows: Vec<Vec<String>> = reply
                .members
                .iter()
                .map(|m| text_row(m, detailed))
                .collect();
            say(&columns(&rows));
        }
        Format::Json => say(&go_json(&json_document(&reply.members))),
        Format::Unknown(other) => {
            return fail(&format!("Encoding error: Invalid output format {other:?}"));
        }
    }
    0
}

fn text_row(member: &MemberWire, detailed: bool) -> Vec<String> {
    let tags: Vec<String> = member
        .tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut row = vec![
        member.name.clone(),
        address(member),
        member.status.clone(),
        tags.join(","),
    ];
    if detailed {
        row.push(format!("Protocol Version: {}", member.delegate_cur));
        row.push(format!(
            "Available Protocol Range: [{}, {}]",
            member.delegate_min, member.delegate_max
        ));
    }
    row
}
