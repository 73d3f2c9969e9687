//! `musubi tags -set k=v -delete k`: change the agent's own tags (and its tags file).

use super::flags::{Flag, Kind};
use super::text::{go_json, say};
use super::{Format, Invocation, Verb, fail, split_tag};
use musubi_serf_rpc::codec::TagsRequest;
use serde_json::json;
use std::collections::BTreeMap;

pub const VERB: Verb = Verb {
    name: "tags",
    about: "Sets or deletes tags of the agent; members see the change by gossip.",
    synopsis: "[options] ...",
    flags: &[
        Flag {
            name: "set",
            kind: Kind::Text,
            value_hint: "key=value",
            help: "Set a tag (repeatable).",
        },
        Flag {
            name: "delete",
            kind: Kind::Text,
            value_hint: "key",
            help: "Delete a tag if present (repeatable).",
        },
    ],
    uses_rpc: true,
};

pub async fn run(invocation: Invocation) -> u8 {
    let flags = &invocation.flags;
    if flags.list("set").is_empty() && flags.list("delete").is_empty() {
        say(&super::usage(invocation.verb));
        return 1;
    }
    if let Err(code) = invocation.check_format() {
        return code;
    }
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let mut set = BTreeMap::new();
    for text in flags.list("set") {
        match split_tag(&text) {
            Ok((key, value)) => set.insert(key, value),
            Err(message) => return fail(&message),
        };
    }
    let request = TagsRequest {
        tags: set,
        delete_tags: flags.list("delete"),
    };
    if let Err(e) = client.call("tags", Some(&request)).await {
        return fail(&format!("Error setting tags: {e}"));
    }
    if invocation.format == Format::Json {
        say(&go_json(
            &json!({ "set": request.tags, "deleted": request.delete_tags }),
        ));
    } else {
        say("Successfully updated agent tags");
    }
    0
}
