//! The node's own tags in the store: `/serf/nodes/<node>/tags/<key>`, one key per tag, so
//! an operator sets one with `musubi kv set` and a dead node's tags can still be changed.

use super::NODES_ROOT;
use super::read::KEY_NOT_FOUND;
use musubi_client::{Client, DeleteOptions, Error, SetOptions};
use std::collections::BTreeMap;

pub(super) fn dir(node: &str) -> String {
    format!("{NODES_ROOT}/{node}/tags")
}

/// Deletions first, then the new values, as `serf tags` applies them. Each key is one
/// write: a tag is one key, so there is nothing to keep consistent across keys, and a
/// tag set is an overwrite whatever the value was (no compare-and-swap to lose).
pub(super) async fn write(
    client: &Client,
    node: &str,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Result<(), String> {
    let dir = dir(node);
    for key in set
        .keys()
        .map(String::as_str)
        .chain(delete.iter().map(String::as_str))
    {
        if key.is_empty() || key.contains('/') || key.starts_with('_') {
            return Err(format!(
                "Failed to update tags: '{key}' cannot be a key below {dir}"
            ));
        }
    }
    let failed = |e: Error| {
        format!(
            "Failed to update tags in the store: {}",
            e.to_string().trim_end()
        )
    };
    for key in delete {
        match client
            .delete(&format!("{dir}/{key}"), &DeleteOptions::default())
            .await
        {
            Ok(_) => {}
            Err(Error::Etcd(e)) if e.code == KEY_NOT_FOUND => {}
            Err(e) => return Err(failed(e)),
        }
    }
    for (key, value) in set {
        client
            .set(&format!("{dir}/{key}"), value, &SetOptions::default())
            .await
            .map_err(failed)?;
    }
    Ok(())
}
