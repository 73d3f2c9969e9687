//! `musubi join`, `musubi leave` and `musubi force-leave`: changing who is in the cluster.

use super::flags::{Flag, Kind};
use super::text::{go_json, say};
use super::{Format, Invocation, Verb, fail};
use musubi_serf_rpc::codec::{ForceLeaveRequest, JoinRequest, JoinResponse};
use serde_json::json;

pub const JOIN: Verb = Verb {
    name: "join",
    about: "Asks the agent to join a cluster through one or more of its members.",
    synopsis: "[options] address ...",
    flags: &[Flag {
        name: "replay",
        kind: Kind::Bool,
        value_hint: "",
        help: "Replay past user events to this agent.",
    }],
    uses_rpc: true,
};

pub const LEAVE: Verb = Verb {
    name: "leave",
    about: "Makes the agent leave the cluster gracefully and shut down.",
    synopsis: "[options]",
    flags: &[],
    uses_rpc: true,
};

pub const FORCE_LEAVE: Verb = Verb {
    name: "force-leave",
    about: "Marks a member as left; mostly to clear failed members that will not return.",
    synopsis: "[options] name",
    flags: &[Flag {
        name: "prune",
        kind: Kind::Bool,
        value_hint: "",
        help: "Also drop the member from the member list at once.",
    }],
    uses_rpc: true,
};

pub async fn join(invocation: Invocation) -> u8 {
    let existing = invocation.flags.args.clone();
    if existing.is_empty() {
        return invocation.misuse("At least one address to join must be specified.");
    }
    if let Err(code) = invocation.check_format() {
        return code;
    }
    let request = JoinRequest {
        existing,
        replay: invocation.flags.bool("replay", false),
    };
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client
        .call_for::<_, JoinResponse>("join", Some(&request))
        .await
    {
        Ok(reply) if invocation.format == Format::Json => {
            say(&go_json(&json!({ "num_joined": reply.num })));
            0
        }
        Ok(reply) => {
            say(&format!(
                "Successfully joined cluster by contacting {} nodes.",
                reply.num
            ));
            0
        }
        Err(e) => fail(&format!("Error joining the cluster: {e}")),
    }
}

pub async fn leave(invocation: Invocation) -> u8 {
    if let Err(code) = invocation.check_format() {
        return code;
    }
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client.call::<()>("leave", None).await {
        Ok(()) if invocation.format == Format::Json => {
            say(&go_json(&json!({ "left": true })));
            0
        }
        Ok(()) => {
            say("Graceful leave complete");
            0
        }
        Err(e) => fail(&format!("Error leaving: {e}")),
    }
}

pub async fn force_leave(invocation: Invocation) -> u8 {
    let [node] = invocation.flags.args.as_slice() else {
        return invocation.misuse("A node name must be specified to force leave.");
    };
    if let Err(code) = invocation.check_format() {
        return code;
    }
    let request = ForceLeaveRequest {
        node: node.clone(),
        prune: invocation.flags.bool("prune", false),
    };
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client.call("force-leave", Some(&request)).await {
        // Serf prints nothing on success.
        Ok(()) => {
            if invocation.format == Format::Json {
                say(&go_json(
                    &json!({ "node": request.node, "prune": request.prune }),
                ));
            }
            0
        }
        Err(e) => fail(&format!("Error force leaving: {e}")),
    }
}
