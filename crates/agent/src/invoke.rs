//! Runs the `-event-handler` scripts: one event at a time, in the order they happened
//! (Serf runs handlers serially too, so a slow one delays the rest), each matching script
//! as `/bin/sh -c SCRIPT` with Serf's environment and stdin (agent/invoke.go).

use crate::event_handlers::EventHandler;
use crate::events::AgentEvent;
use crate::identity::NodeId;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Log every event and run the handlers that want it, until the node stops. `local` is
/// this node as it is now: its tags may change while the agent runs; so may `handlers`
/// (SIGHUP), each event going to the handlers of the moment it is taken up.
pub async fn run_event_loop(
    mut events: mpsc::UnboundedReceiver<AgentEvent>,
    handlers: watch::Receiver<Vec<EventHandler>>,
    local: watch::Receiver<NodeId>,
) {
    while let Some(event) = events.recv().await {
        info!("Received event: {event}");
        let current = handlers.borrow().clone();
        for handler in current.iter().filter(|handler| handler.wants(&event)) {
            let local = local.borrow().clone();
            if let Err(e) = invoke(&handler.script, &event, &local).await {
                warn!("event handler {:?} for {event}: {e}", handler.script);
            }
        }
    }
}

async fn invoke(script: &str, event: &AgentEvent, local: &NodeId) -> std::io::Result<()> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .envs(environment(event, local))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let input = stdin_for(event);
    // Written alongside the wait so a script that prints a lot before reading cannot
    // deadlock us; a script that never reads its stdin closes the pipe, which is fine.
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let output = child.wait_with_output().await?;
    let _ = feed.await;
    debug!(
        "event '{}' script output: {}",
        event.type_name(),
        String::from_utf8_lossy(&[output.stdout, output.stderr].concat())
    );
    if !output.status.success() {
        warn!("event handler {script:?} exited with {}", output.status);
    }
    Ok(())
}

/// Added to the agent's own environment: the event, this node, its tags as
/// `SERF_TAG_<NAME>` (upper-cased, anything outside `[A-Z0-9_]` turned into `_`), and for
/// user events their name and Lamport time.
fn environment(event: &AgentEvent, local: &NodeId) -> Vec<(String, String)> {
    let mut env = vec![
        ("SERF_EVENT".to_string(), event.type_name().to_string()),
        ("SERF_SELF_NAME".to_string(), local.name.clone()),
        ("SERF_SELF_ROLE".to_string(), role(local)),
    ];
    env.extend(local.tags.iter().map(|(name, value)| {
        let name: String = name
            .to_ascii_uppercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        (format!("SERF_TAG_{name}"), value.clone())
    }));
    if let AgentEvent::User(user) = event {
        env.push(("SERF_USER_EVENT".to_string(), user.name.clone()));
        env.push(("SERF_USER_LTIME".to_string(), user.ltime.to_string()));
    }
    env
}

/// Member events: a line `name\taddr\trole\ttags` per member, tags as `k=v,k=v`, the
/// address without its port. User events: the payload, ending in a newline if not empty.
fn stdin_for(event: &AgentEvent) -> Vec<u8> {
    match event {
        AgentEvent::Member { members, .. } => members
            .iter()
            .map(|member| {
                let tags: Vec<String> = member
                    .tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!(
                    "{}\t{}\t{}\t{}\n",
                    escaped(&member.name),
                    member.addr.ip(),
                    escaped(&role(member)),
                    escaped(&tags.join(","))
                )
            })
            .collect::<String>()
            .into_bytes(),
        AgentEvent::User(user) => {
            let mut payload = user.payload.clone();
            if !payload.is_empty() && !payload.ends_with(b"\n") {
                payload.push(b'\n');
            }
            payload
        }
    }
}

fn role(member: &NodeId) -> String {
    member.tags.get("role").cloned().unwrap_or_default()
}

/// Tabs and newlines inside a field would break the line format; Serf escapes them.
fn escaped(field: &str) -> String {
    field.replace('\t', "\\t").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::MemberEventKind;
    use crate::user_events::UserEvent;

    fn node(name: &str, tags: &[(&str, &str)]) -> NodeId {
        NodeId {
            name: name.into(),
            addr: "10.0.0.2:7946".parse().unwrap(),
            tags: tags.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
            started_ms: 1,
        }
    }

    #[test]
    fn member_events_list_one_member_a_line() {
        let event = AgentEvent::Member {
            kind: MemberEventKind::Join,
            members: vec![
                node("web\t1", &[("role", "web"), ("dc", "east")]),
                node("b", &[]),
            ],
        };
        assert_eq!(
            String::from_utf8(stdin_for(&event)).unwrap(),
            "web\\t1\t10.0.0.2\tweb\tdc=east,role=web\nb\t10.0.0.2\t\t\n"
        );
    }

    #[test]
    fn user_events_pass_the_payload_with_a_final_newline() {
        let user = |payload: &[u8]| {
            AgentEvent::User(UserEvent {
                ltime: 7,
                name: "deploy".into(),
                payload: payload.to_vec(),
                coalesce: true,
            })
        };
        assert_eq!(stdin_for(&user(b"v1")), b"v1\n");
        assert_eq!(stdin_for(&user(b"v1\n")), b"v1\n");
        assert_eq!(stdin_for(&user(b"")), b"");
        let env = environment(&user(b""), &node("me", &[("role", "db"), ("dc-zone", "x")]));
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("SERF_EVENT"), Some("user"));
        assert_eq!(get("SERF_SELF_NAME"), Some("me"));
        assert_eq!(get("SERF_SELF_ROLE"), Some("db"));
        assert_eq!(get("SERF_TAG_DC_ZONE"), Some("x"));
        assert_eq!(get("SERF_TAG_ROLE"), Some("db"));
        assert_eq!(get("SERF_USER_EVENT"), Some("deploy"));
        assert_eq!(get("SERF_USER_LTIME"), Some("7"));
    }
}
