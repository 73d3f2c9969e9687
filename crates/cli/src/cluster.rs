//! `musubi cluster`: etcdctl v2's `member list|add|remove|update` and `cluster-health`,
//! with their output, plus `promote` for learners (etcdctl v3's `member promote`).
//!
//! Exit codes as etcdctl's: 0 on success, 1 when a member command fails, 2 when no
//! endpoint can be reached, 5 when `health` finds the cluster degraded or unavailable.
//!
//! `-o json` prints one JSON document per command instead of etcdctl's lines (etcdctl v2
//! has none for these commands): the members as `/v2/members` lists them (with `isLeader`),
//! the added member with the environment to start it with, or each member's health.
//! Errors stay text on stderr, and the exit codes are the same.

use crate::kv::{self, Ctx, GlobalArgs};
use clap::{Args, Subcommand};
use musubi_client::{Client, Error, Member};
use serde_json::{Value, json};
use std::process::ExitCode;

const EXIT_FAILED: u8 = 1;
const EXIT_NOT_HEALTHY: u8 = 5;

#[derive(Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// List the members: ID, name, peer and client URLs, who leads, who is a learner.
    List,
    /// Add a member; start it with the printed environment (`--initial-cluster-state existing`).
    Add {
        name: String,
        /// Its peer URLs, comma-separated.
        peer_urls: String,
        /// Keep it a non-voting learner until `promote` (otherwise it is promoted by the
        /// leader as soon as it has caught up).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member by its hex ID (the leader too).
    Remove { id: String },
    /// Change a member's peer URLs.
    Update {
        id: String,
        /// The new peer URLs, comma-separated.
        peer_urls: String,
    },
    /// Make a caught-up learner a voter.
    Promote { id: String },
    /// Check every member's /health, as `etcdctl cluster-health`.
    Health,
}

pub fn run(args: ClusterArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    let code = runtime.block_on(async {
        let ctx = match kv::connect(&args.global).await {
            Ok(ctx) => ctx,
            Err(failure) => {
                failure.report();
                return failure.exit_code();
            }
        };
        match execute(&ctx, &args.verb).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{e}");
                EXIT_FAILED
            }
        }
    });
    ExitCode::from(code)
}

async fn execute(ctx: &Ctx, verb: &Verb) -> Result<u8, String> {
    let client = &ctx.client;
    let (lines, doc) = match verb {
        Verb::List => {
            let members = text(client.members().await)?;
            let leader = client.leader().await.ok().map(|l| l.id);
            let is_leader = |m: &Member| leader.as_deref() == Some(m.id.as_str());
            let lines = members.iter().map(|m| list_line(m, is_leader(m))).collect();
            let listed = members.iter().map(|m| {
                let mut v = json!(m);
                v["isLeader"] = json!(is_leader(m));
                v
            });
            (lines, json!({ "members": listed.collect::<Vec<_>>() }))
        }
        Verb::Add {
            name,
            peer_urls,
            learner,
        } => {
            let urls = split(peer_urls);
            let added = text(client.add_member(&urls, *learner).await)?;
            let members = text(client.members().await)?;
            let env = [
                ("ETCD_NAME", name.clone()),
                (
                    "ETCD_INITIAL_CLUSTER",
                    initial_cluster(&members, &added.id, name),
                ),
                ("ETCD_INITIAL_CLUSTER_STATE", "existing".to_string()),
            ];
            let mut lines = vec![format!(
                "Added member named {name} with ID {} to cluster\n",
                added.id
            )];
            lines.extend(env.iter().map(|(k, v)| format!("{k}=\"{v}\"")));
            let env: serde_json::Map<String, Value> =
                env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
            (lines, json!({ "member": added, "env": env }))
        }
        Verb::Remove { id } => {
            // 410 Gone: removed before, which etcd's client counts as done.
            match text(client.remove_member(id).await) {
                Err(e) if !e.starts_with("Member permanently removed") => {
                    return Err(not_found(e, id));
                }
                _ => {}
            }
            let line = format!("Removed member {id} from cluster");
            (vec![line], json!({ "removed": id }))
        }
        Verb::Update { id, peer_urls } => {
            let urls = split(peer_urls);
            text(client.update_member(id, &urls).await).map_err(|e| not_found(e, id))?;
            let line = format!("Updated member with ID {id} in cluster");
            (vec![line], json!({ "updated": id, "peerURLs": urls }))
        }
        Verb::Promote { id } => {
            let member = text(client.promote_member(id).await).map_err(|e| not_found(e, id))?;
            let line = format!("Member {id} promoted in cluster");
            (vec![line], json!({ "promoted": member }))
        }
        Verb::Health => {
            let (code, lines, doc) = health(client).await?;
            print(ctx, &lines, &doc);
            return Ok(code);
        }
    };
    print(ctx, &lines, &doc);
    Ok(0)
}

/// The text lines, or with `-o json` the document.
fn print(ctx: &Ctx, lines: &[String], doc: &Value) {
    if ctx.json() {
        println!("{doc}");
    } else {
        for line in lines {
            println!("{line}");
        }
    }
}

fn text<T>(result: Result<T, Error>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

/// etcdctl's wording for an unknown member.
fn not_found(e: String, id: &str) -> String {
    if e.starts_with("No such member") || e == "etcdserver: member not found" {
        format!("Couldn't find a member in the cluster with an ID of {id}.")
    } else {
        e
    }
}

fn split(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// `id: name=… peerURLs=… clientURLs=… isLeader=…`, or `id[unstarted]: peerURLs=…`.
fn list_line(m: &Member, is_leader: bool) -> String {
    let learner = if m.is_learner { " isLearner=true" } else { "" };
    if m.name.is_empty() {
        return format!(
            "{}[unstarted]: peerURLs={}{learner}",
            m.id,
            m.peer_urls.join(",")
        );
    }
    format!(
        "{}: name={} peerURLs={} clientURLs={} isLeader={is_leader}{learner}",
        m.id,
        m.name,
        m.peer_urls.join(","),
        m.client_urls.join(",")
    )
}

/// Every member's `name=peerURL`, the new one under the name it was given.
fn initial_cluster(members: &[Member], new_id: &str, new_name: &str) -> String {
    members
        .iter()
        .flat_map(|m| {
            let name = if m.id == new_id { new_name } else { &m.name };
            m.peer_urls.iter().map(move |u| format!("{name}={u}"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Asks each member's client URLs for `/health`; exit 0 if all are healthy, 5 otherwise,
/// with etcdctl's lines and the JSON document.
async fn health(client: &Client) -> Result<(u8, Vec<String>, Value), String> {
    let members = client.members().await.map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let mut checked = Vec::new();
    let mut healthy = 0;
    for m in &members {
        let (state, url, line) = member_health(m).await;
        healthy += usize::from(state == "healthy");
        lines.push(line);
        checked.push(json!({ "id": m.id, "name": m.name, "health": state, "url": url }));
    }
    let (code, state) = if healthy == members.len() {
        (0, "healthy")
    } else if healthy > 0 {
        (EXIT_NOT_HEALTHY, "degraded")
    } else {
        (EXIT_NOT_HEALTHY, "unavailable")
    };
    lines.push(format!("cluster is {state}"));
    Ok((code, lines, json!({ "members": checked, "cluster": state })))
}

/// One member's health ("healthy", "unhealthy" or "unreachable"), the URL that answered,
/// and etcdctl's line for it.
async fn member_health(m: &Member) -> (&'static str, Option<String>, String) {
    if m.client_urls.is_empty() {
        let line = format!(
            "member {} is unreachable: no available published client urls",
            m.id
        );
        return ("unreachable", None, line);
    }
    for url in &m.client_urls {
        let Ok(one) = Client::new(vec![url.clone()]) else {
            continue;
        };
        let (state, line) = match one.health().await {
            Ok(true) => (
                "healthy",
                format!("member {} is healthy: got healthy result from {url}", m.id),
            ),
            Ok(false) => (
                "unhealthy",
                format!(
                    "member {} is unhealthy: got unhealthy result from {url}",
                    m.id
                ),
            ),
            Err(_) => continue,
        };
        return (state, Some(url.clone()), line);
    }
    let line = format!(
        "member {} is unreachable: {:?} are all unreachable",
        m.id, m.client_urls
    );
    ("unreachable", None, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, name: &str) -> Member {
        Member {
            id: id.into(),
            name: name.into(),
            peer_urls: vec![format!("http://{id}:2380")],
            client_urls: vec![format!("http://{id}:2379")],
            is_learner: false,
        }
    }

    #[test]
    fn lines_read_as_etcdctl_prints_them() {
        assert_eq!(
            list_line(&member("a1", "e1"), true),
            "a1: name=e1 peerURLs=http://a1:2380 clientURLs=http://a1:2379 isLeader=true"
        );
        assert_eq!(
            list_line(&member("b2", ""), false),
            "b2[unstarted]: peerURLs=http://b2:2380"
        );
        let members = [member("b2", ""), member("a1", "e1")];
        assert_eq!(
            initial_cluster(&members, "b2", "e2"),
            "e2=http://b2:2380,e1=http://a1:2380"
        );
    }
}
