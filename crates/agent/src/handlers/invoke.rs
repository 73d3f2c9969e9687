//! Runs the `-event-handler` scripts: one event at a time, in the order they happened
//! (Serf runs handlers serially too, so a slow one delays the rest), each matching script
//! as `/bin/sh -c SCRIPT` with Serf's environment and stdin (agent/invoke.go). A query
//! handler's output (its last 8 KiB, stdout and stderr together) is the query's answer
//! when it exits 0.

use super::EventHandler;
use crate::events::AgentEvent;
use crate::node::NodeHandle;
use musubi_gossip::identity::NodeId;
use std::collections::VecDeque;
use std::io::Read;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Serf keeps the last 8 KiB of a script's output (stdout and stderr together).
const OUTPUT_BUFFER: usize = 8 * 1024;

/// Log every event, pass it to the RPC event streams, and run the handlers that want it,
/// until the node stops. A query handler that exits 0 with output answers the query.
/// `handlers` may change while the agent runs (SIGHUP): each event goes to the handlers
/// of the moment it is taken up.
pub async fn run_event_loop(
    mut events: mpsc::UnboundedReceiver<AgentEvent>,
    handlers: watch::Receiver<Vec<EventHandler>>,
    node: NodeHandle,
) {
    let local = node.local_identity();
    while let Some(event) = events.recv().await {
        info!("Received event: {event}");
        node.event_streams().publish(&event);
        let current = handlers.borrow().clone();
        for handler in current.iter().filter(|handler| handler.wants(&event)) {
            // This node as it is now: its tags may change while the agent runs.
            let local = local.borrow().clone();
            match invoke(&handler.script, &event, &local).await {
                Ok(Some(answer)) => {
                    if let AgentEvent::Query(query) = &event {
                        respond(&node, query, answer, &event).await;
                    }
                }
                Ok(None) => {}
                Err(e) => warn!("event handler {:?} for {event}: {e}", handler.script),
            }
        }
    }
}

async fn respond(
    node: &NodeHandle,
    query: &musubi_gossip::query::QueryEvent,
    answer: Vec<u8>,
    event: &AgentEvent,
) {
    match node.respond_query(query.clone(), answer).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("Failed to respond to query '{event}': {e}"),
        Err(stopped) => debug!("query '{event}' not answered: {stopped}"),
    }
}

/// Run one script; its output if it exited 0 having written any (a query's answer).
async fn invoke(
    script: &str,
    event: &AgentEvent,
    local: &NodeId,
) -> std::io::Result<Option<Vec<u8>>> {
    // One pipe for stdout and stderr, as Serf gives both the same buffer: the output
    // keeps the order the script wrote it in.
    let (output, output_end) = std::io::pipe()?;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .envs(environment(event, local))
        .stdin(Stdio::piped())
        .stdout(output_end.try_clone()?)
        .stderr(output_end)
        .spawn()?;
    // The builder, and with it our copies of the pipe's write end, is gone: the read
    // below ends when the script (and anything it started) closes its output.
    let collecting = tokio::task::spawn_blocking(move || OutputTail::read(output));
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let input = stdin_for(event);
    // Written alongside the wait so a script that prints a lot before reading cannot
    // deadlock us; a script that never reads its stdin closes the pipe, which is fine.
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let status = child.wait().await?;
    let _ = feed.await;
    let output = collecting.await.map_err(std::io::Error::other)??;
    debug!(
        "Event '{}' script output: {}",
        event.type_name(),
        String::from_utf8_lossy(output.kept.as_slices().0)
            + String::from_utf8_lossy(output.kept.as_slices().1)
    );
    if output.total > OUTPUT_BUFFER {
        warn!(
            "Script '{script}' generated {} bytes of output, truncated to {OUTPUT_BUFFER}",
            output.total
        );
    }
    if !status.success() {
        warn!("event handler {script:?} exited with {status}");
        return Ok(None);
    }
    Ok((output.total > 0).then(|| output.kept.into()))
}

/// The last [`OUTPUT_BUFFER`] bytes a script wrote, and how many it wrote in all.
struct OutputTail {
    kept: VecDeque<u8>,
    total: usize,
}

impl OutputTail {
    fn read(mut output: impl Read) -> std::io::Result<Self> {
        let mut tail = OutputTail {
            kept: VecDeque::with_capacity(OUTPUT_BUFFER),
            total: 0,
        };
        let mut chunk = [0u8; 4096];
        loop {
            let read = match output.read(&mut chunk) {
                Ok(0) => return Ok(tail),
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            tail.total += read;
            tail.kept.extend(&chunk[..read]);
            let excess = tail.kept.len().saturating_sub(OUTPUT_BUFFER);
            tail.kept.drain(..excess);
        }
    }
}

/// Added to the agent's own environment: the event, this node, its tags as
/// `SERF_TAG_<NAME>` (upper-cased, anything outside `[A-Z0-9_]` turned into `_`), and for
/// user events and queries their name and Lamport time.
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
    match event {
        AgentEvent::User(user) => {
            env.push(("SERF_USER_EVENT".to_string(), user.name.clone()));
            env.push(("SERF_USER_LTIME".to_string(), user.ltime.to_string()));
        }
        AgentEvent::Query(query) => {
            env.push(("SERF_QUERY_NAME".to_string(), query.name.clone()));
            env.push(("SERF_QUERY_LTIME".to_string(), query.ltime.to_string()));
        }
        AgentEvent::Member { .. } => {}
    }
    env
}

/// Member events: a line `name\taddr\trole\ttags` per member, tags as `k=v,k=v`, the
/// address without its port. User events and queries: the payload, ending in a newline if
/// not empty.
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
        AgentEvent::User(musubi_gossip::user_events::UserEvent { payload, .. })
        | AgentEvent::Query(musubi_gossip::query::QueryEvent { payload, .. }) => {
            let mut payload = payload.clone();
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
    use musubi_gossip::user_events::UserEvent;

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

    #[test]
    fn queries_pass_their_name_time_and_payload() {
        let query = AgentEvent::Query(musubi_gossip::query::QueryEvent {
            ltime: 12,
            payload: b"p".to_vec(),
            ..musubi_gossip::query::testing::event("uptime")
        });
        assert_eq!(stdin_for(&query), b"p\n");
        let env = environment(&query, &node("me", &[]));
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("SERF_EVENT"), Some("query"));
        assert_eq!(get("SERF_QUERY_NAME"), Some("uptime"));
        assert_eq!(get("SERF_QUERY_LTIME"), Some("12"));
        assert_eq!(get("SERF_USER_EVENT"), None);
    }

    #[test]
    fn the_output_keeps_its_last_8_kib_and_counts_everything() {
        let written: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let tail = OutputTail::read(&written[..]).unwrap();
        assert_eq!(tail.total, 20_000);
        assert_eq!(Vec::from(tail.kept), written[20_000 - OUTPUT_BUFFER..]);
        let short = OutputTail::read(&b"hi\n"[..]).unwrap();
        assert_eq!((short.total, Vec::from(short.kept)), (3, b"hi\n".to_vec()));
    }

    #[tokio::test]
    async fn a_script_answers_with_stdout_and_stderr_in_order_when_it_exits_0() {
        let query = AgentEvent::Query(musubi_gossip::query::QueryEvent {
            payload: b"in".to_vec(),
            ..musubi_gossip::query::testing::event("q")
        });
        let me = node("me", &[]);
        let answer = invoke("read x; echo out $x; echo err >&2", &query, &me).await;
        assert_eq!(answer.unwrap(), Some(b"out in\nerr\n".to_vec()));
        assert_eq!(invoke("echo no; exit 3", &query, &me).await.unwrap(), None);
        assert_eq!(invoke("true", &query, &me).await.unwrap(), None);
    }
}
