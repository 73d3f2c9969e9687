//! The v2 reply shapes. Field order and `null`s follow etcd's Go client structs, so that
//! serialising a [`Response`] gives `etcdctl -o json`'s output.

use serde::{Deserialize, Serialize};

/// A key or directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The root directory has no key on the wire; it reads as "".
    #[serde(default)]
    pub key: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dir: bool,
    /// Directories have no value on the wire; they read as "".
    #[serde(default)]
    pub value: String,
    /// `None` (serialised as `null`) unless the server listed children.
    #[serde(default)]
    pub nodes: Option<Vec<Node>>,
    #[serde(default, rename = "createdIndex")]
    pub created_index: u64,
    #[serde(default, rename = "modifiedIndex")]
    pub modified_index: u64,
    /// RFC 3339 as the server sent it, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    /// Remaining seconds; 0 for permanent keys.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ttl: i64,
}

impl Node {
    /// The children, empty when the server sent none.
    pub fn children(&self) -> &[Node] {
        self.nodes.as_deref().unwrap_or_default()
    }
}

/// The headers etcd sends with every keys reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// `X-Etcd-Index`: the store index (for a watch, the index when the watch started).
    pub etcd_index: u64,
    pub raft_index: u64,
    pub raft_term: u64,
    pub cluster_id: Option<String>,
}

/// A successful reply: `{"action":…,"node":{…},"prevNode":{…}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub action: String,
    /// Default (empty) when the server sent none, as with `noValueOnSuccess`.
    #[serde(default)]
    pub node: Node,
    #[serde(default, rename = "prevNode")]
    pub prev_node: Option<Node>,
    #[serde(skip)]
    pub meta: Meta,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_like_etcdctl_json_output() {
        let wire = r#"{"action":"set","node":{"key":"/foo","value":"q2","modifiedIndex":7,"createdIndex":7},"prevNode":{"key":"/d","dir":true,"modifiedIndex":6,"createdIndex":6,"expiration":"2026-11-24T14:52:28.478730649Z","ttl":100}}"#;
        let resp: Response = serde_json::from_str(wire).unwrap();
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"action":"set","node":{"key":"/foo","value":"q2","nodes":null,"createdIndex":7,"modifiedIndex":7},"prevNode":{"key":"/d","dir":true,"value":"","nodes":null,"createdIndex":6,"modifiedIndex":6,"expiration":"2026-11-24T14:52:28.478730649Z","ttl":100}}"#
        );
    }

    #[test]
    fn root_directory_without_key_reads_as_empty_key() {
        let resp: Response =
            serde_json::from_str(r#"{"action":"get","node":{"dir":true}}"#).unwrap();
        assert_eq!(resp.node.key, "");
        assert!(resp.node.children().is_empty());
        assert!(resp.prev_node.is_none());
    }
}
