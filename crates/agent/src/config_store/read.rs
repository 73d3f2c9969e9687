//! Reading the store: each prefix in one recursive quorum GET (one tree at one index), and
//! the node's own tags. A prefix that does not exist yet reads as an empty tree, so agents
//! may start before their role's keys are written.

use super::render;
use super::tags;
use super::{Check, Rendered, Snapshot};
use musubi_client::{Client, Error, GetOptions, Node as StoreNode};
use std::collections::BTreeMap;

/// v2's "Key not found".
pub(super) const KEY_NOT_FOUND: u32 = 100;

/// Why the store could not give a snapshot.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// No answer, or not etcd's: nothing was learnt.
    #[error("the store cannot be read: {0}")]
    Store(String),
    /// The store answered with a tree the agent cannot take; the keys read and the index
    /// each was read at, to watch for a fix from.
    #[error("{0}")]
    Invalid(String, Vec<(String, u64)>),
}

/// How the node whose tags are read is named.
pub(super) enum Node<'a> {
    /// The running agent's name.
    Known(&'a str),
    /// At start: the name the configuration read so far gives.
    Resolve(&'a Check),
}

/// `/serf/web/` → `/serf/web`: the key as the store names it.
pub(super) fn key_path(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    format!("/{trimmed}")
}

pub(super) async fn snapshot(
    client: &Client,
    prefixes: &[String],
    node: Node<'_>,
) -> Result<Snapshot, ReadError> {
    let mut trees = Vec::with_capacity(prefixes.len());
    for prefix in prefixes {
        trees.push((prefix.as_str(), tree(client, prefix).await?));
    }
    let mut positions: Vec<(String, u64)> = trees
        .iter()
        .map(|(prefix, (_, index))| (prefix.to_string(), *index))
        .collect();
    let invalid =
        |why: String, positions: &[(String, u64)]| ReadError::Invalid(why, positions.to_vec());
    // The running agent's tags are read before rendering, so that a refused tree still
    // leaves every key's index to watch from.
    let known_tags = match &node {
        Node::Known(name) => {
            let tags = node_tags(client, name).await?;
            positions.push((tags::dir(name), tags.1));
            Some(tags)
        }
        Node::Resolve(_) => None,
    };
    let mut documents = Vec::with_capacity(trees.len());
    for (prefix, (root, index)) in &trees {
        let document = match root {
            Some(root) => render::document(prefix, root).map_err(|e| invalid(e, &positions))?,
            None => serde_json::json!({}),
        };
        documents.push(Rendered {
            prefix: prefix.to_string(),
            index: *index,
            document,
        });
    }
    let (node, (node_tags, node_tags_index)) = match (node, known_tags) {
        (Node::Known(name), Some(tags)) => (name.to_string(), tags),
        (Node::Known(name), None) => (name.to_string(), node_tags(client, name).await?),
        (Node::Resolve(check), _) => {
            let partial = Snapshot {
                documents: documents.clone(),
                node: String::new(),
                node_tags: BTreeMap::new(),
                node_tags_index: 0,
            };
            let layer = partial.layer().map_err(|e| invalid(e, &positions))?;
            let name = check(layer).map_err(|e| invalid(e, &positions))?;
            let tags = node_tags(client, &name).await?;
            (name, tags)
        }
    };
    Ok(Snapshot {
        documents,
        node,
        node_tags,
        node_tags_index,
    })
}

/// The node's tags: the values right below its tags directory (deeper keys are not tags).
async fn node_tags(
    client: &Client,
    node: &str,
) -> Result<(BTreeMap<String, String>, u64), ReadError> {
    let dir = tags::dir(node);
    let (root, index) = tree(client, &dir).await?;
    let tags = root
        .map(|root| {
            root.children()
                .iter()
                .filter(|child| !child.dir)
                .map(|child| (render::name_below(&dir, &child.key), child.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    Ok((tags, index))
}

/// The tree at `key` and the index of the read; none (at the index the error names) when
/// the key does not exist.
async fn tree(client: &Client, key: &str) -> Result<(Option<StoreNode>, u64), ReadError> {
    let options = GetOptions {
        recursive: true,
        sorted: false,
        quorum: true,
    };
    match client.get(key, &options).await {
        Ok(response) if !response.node.dir => Err(ReadError::Invalid(
            format!("'{key}' is a value, not a directory"),
            vec![(key.to_string(), response.meta.etcd_index)],
        )),
        Ok(response) => Ok((Some(response.node), response.meta.etcd_index)),
        Err(Error::Etcd(e)) if e.code == KEY_NOT_FOUND => Ok((None, e.index)),
        Err(e) => Err(ReadError::Store(e.to_string().trim_end().to_string())),
    }
}
