//! Where the actual state comes from: a key tree that reporters keep (with TTLs, so a dead
//! reporter's entries go), or the local gossip agent's live members and their tags, read over
//! Serf's RPC. Each source also says since when it has been readable without a break, which
//! the freshness gate (`--fresh-after`) measures.

use super::records::read_tree;
use crate::toolkit::{Store, ToolError};
use musubi_serf_rpc::client::RpcClient;
use musubi_serf_rpc::codec::MembersResponse;
use std::collections::BTreeMap;
use std::time::Instant;

pub enum Source {
    Tree {
        prefix: String,
    },
    Agent {
        addr: String,
        auth: String,
        client: Option<RpcClient>,
    },
}

/// One reading of the actual state: target name → value (agent: the tags as a JSON object).
pub type Actual = BTreeMap<String, String>;

pub struct Reader {
    source: Source,
    /// Since when every read succeeded; `None` after a failure.
    pub readable_since: Option<Instant>,
}

impl Reader {
    pub fn new(actual: &str, rpc_addr: &str, rpc_auth: &str) -> Reader {
        let source = if actual == "agent" {
            Source::Agent {
                addr: rpc_addr.to_string(),
                auth: rpc_auth.to_string(),
                client: None,
            }
        } else {
            Source::Tree {
                prefix: actual.to_string(),
            }
        };
        Reader {
            source,
            readable_since: None,
        }
    }

    pub fn is_agent(&self) -> bool {
        matches!(self.source, Source::Agent { .. })
    }

    pub async fn read(&mut self, store: &Store) -> Result<Actual, ToolError> {
        let result = match &mut self.source {
            Source::Tree { prefix } => read_tree(store, prefix).await.map(|tree| {
                tree.entries
                    .into_iter()
                    .map(|(k, e)| (k, e.value))
                    .collect()
            }),
            Source::Agent { addr, auth, client } => read_agent(addr, auth, client).await,
        };
        match &result {
            Ok(_) => {
                self.readable_since.get_or_insert_with(Instant::now);
            }
            Err(_) => self.readable_since = None,
        }
        result
    }
}

/// The agent's alive members, each with its tags as a JSON object (sorted keys, so equal
/// tags are equal strings). Failed, leaving and left members are absent: not running.
async fn read_agent(
    addr: &str,
    auth: &str,
    client: &mut Option<RpcClient>,
) -> Result<Actual, ToolError> {
    if client.is_none() {
        let connected = RpcClient::connect(addr, auth)
            .await
            .map_err(|e| ToolError::unreachable(format!("agent at {addr}: {e}")))?;
        *client = Some(connected);
    }
    let rpc = client.as_mut().expect("connected above");
    let reply: Result<MembersResponse, _> = rpc.call_for("members", None::<&()>).await;
    match reply {
        Ok(reply) => Ok(reply
            .members
            .into_iter()
            .filter(|member| member.status == "alive")
            .map(|member| {
                let tags = serde_json::to_string(&member.tags).expect("tags serialise");
                (member.name, tags)
            })
            .collect()),
        Err(e) => {
            *client = None;
            Err(ToolError::unreachable(format!("agent at {addr}: {e}")))
        }
    }
}
