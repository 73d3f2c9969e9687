//! `musubi event NAME [PAYLOAD]`: send a user event to the whole cluster.

use super::flags::{Flag, Kind};
use super::text::{go_json, say};
use super::{Format, Invocation, Verb, fail};
use musubi_serf_rpc::codec::EventRequest;
use serde_json::json;

pub const VERB: Verb = Verb {
    name: "event",
    about: "Sends a user event, with an optional payload, to every member.",
    synopsis: "[options] name [payload]",
    flags: &[Flag {
        name: "coalesce",
        kind: Kind::Bool,
        value_hint: "",
        help: "Let members keep only the newest of close events of this name (default true).",
    }],
    uses_rpc: true,
};

pub async fn run(invocation: Invocation) -> u8 {
    let (name, payload) = match invocation.flags.args.as_slice() {
        [] => return invocation.misuse("An event name must be specified."),
        [name] => (name.clone(), Vec::new()),
        [name, payload] => (name.clone(), payload.clone().into_bytes()),
        _ => {
            return invocation.misuse(
                "Too many command line arguments. Only a name and payload must be specified.",
            );
        }
    };
    if let Err(code) = invocation.check_format() {
        return code;
    }
    let coalesce = invocation.flags.bool("coalesce", true);
    let request = EventRequest {
        name,
        payload: payload.into(),
        coalesce,
    };
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    if let Err(e) = client.call("event", Some(&request)).await {
        return fail(&format!("Error sending event: {e}"));
    }
    if invocation.format == Format::Json {
        say(&go_json(
            &json!({ "name": request.name, "coalesce": coalesce }),
        ));
    } else {
        say(&format!(
            "Event '{}' dispatched! Coalescing enabled: {coalesce}",
            request.name
        ));
    }
    0
}
