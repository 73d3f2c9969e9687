//! The reconciler's keys in the store and the reads and fenced writes on them, on the v3
//! path (one Txn per write, compared on the leader key's create revision) and on the v2 path
//! (a `prevExist=false` or `prevIndex` write after a separate quorum read of the leader key,
//! which is weaker: a leader that loses its key between the two can still write once).
//!
//! Layout: `/_musubi/reconcile/NAME/actions/<id>` (one JSON record per action, the ID with
//! `%` and `/` escaped), `views/<instance>` (each instance's view of the actual state),
//! `status` (the leader's last pass).

use super::core::{Entry, Record, Stored, Tree};
use crate::toolkit::{Store, ToolError};
use crate::v3::kv::prefix_end;
use musubi_client::{Error as V2Error, GetOptions, PrevExist, SetOptions};
use musubi_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use musubi_proto::etcdserverpb::request_op::Request;
use musubi_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use std::collections::BTreeMap;

/// Where one reconciler's own keys live.
#[derive(Clone, Debug)]
pub struct Layout {
    base: String,
}

impl Layout {
    pub fn new(name: &str) -> Layout {
        Layout {
            base: format!("/_musubi/reconcile/{name}"),
        }
    }

    /// The election's name: candidates' keys are under it.
    pub fn leader(&self) -> String {
        format!("{}/leader", self.base)
    }

    pub fn actions(&self) -> String {
        format!("{}/actions/", self.base)
    }

    pub fn action(&self, id: &str) -> String {
        format!(
            "{}{}",
            self.actions(),
            id.replace('%', "%25").replace('/', "%2F")
        )
    }

    pub fn views(&self) -> String {
        format!("{}/views/", self.base)
    }

    pub fn view(&self, instance: &str) -> String {
        format!("{}{instance}", self.views())
    }

    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }
}

/// The leadership a write is conditioned on: the leader key and its create revision (v3) or
/// createdIndex (v2), the fencing token.
#[derive(Clone, Debug)]
pub struct Fence {
    pub key: String,
    pub token: i64,
}

/// How a fenced write ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Written; the record's new modification revision (v3) or modifiedIndex (v2).
    Ok(i64),
    /// The record was not as expected: it exists (create) or changed (update).
    Lost,
    /// The leader key is not ours any more: the token is stale.
    Stale,
}

/// A tree read at one revision: its entries by name under the prefix, and that revision.
pub struct Snapshot {
    pub entries: Tree,
    pub revision: i64,
}

/// Read every key under `prefix` (a directory; the trailing `/` is added) at one revision.
pub async fn read_tree(store: &Store, prefix: &str) -> Result<Snapshot, ToolError> {
    let dir = format!("{}/", prefix.trim_end_matches('/'));
    if store.v3().is_some() {
        let request = RangeRequest {
            key: dir.clone().into_bytes(),
            range_end: prefix_end(dir.as_bytes()),
            serializable: store.stale,
            ..Default::default()
        };
        let reply = store.range(store.call(), request).await?;
        let revision = reply.header.map(|h| h.revision).unwrap_or_default();
        let entries = reply
            .kvs
            .into_iter()
            .map(|kv| {
                let name = String::from_utf8_lossy(&kv.key[dir.len()..]).into_owned();
                let value = String::from_utf8_lossy(&kv.value).into_owned();
                (
                    name,
                    Entry {
                        value,
                        mod_rev: kv.mod_revision,
                    },
                )
            })
            .collect();
        return Ok(Snapshot { entries, revision });
    }
    let options = GetOptions {
        recursive: true,
        sorted: true,
        quorum: !store.stale,
    };
    match store.v2.get(&dir, &options).await {
        Ok(reply) => {
            let mut entries = BTreeMap::new();
            flatten(&reply.node, &dir, &mut entries);
            Ok(Snapshot {
                entries,
                revision: reply.meta.etcd_index as i64,
            })
        }
        Err(V2Error::Etcd(e)) if e.code == 100 => Ok(Snapshot {
            entries: BTreeMap::new(),
            revision: e.index as i64,
        }),
        Err(e) => Err(e.into()),
    }
}

fn flatten(node: &musubi_client::Node, dir: &str, out: &mut Tree) {
    for child in node.children() {
        if child.dir {
            flatten(child, dir, out);
        } else if let Some(name) = child.key.strip_prefix(dir) {
            out.insert(
                name.to_string(),
                Entry {
                    value: child.value.clone(),
                    mod_rev: child.modified_index as i64,
                },
            );
        }
    }
}

/// Every action record; one that does not parse is skipped with a warning (it is not ours
/// to delete, and `actions` shows the key).
pub async fn read_records(store: &Store, layout: &Layout) -> Result<Vec<Stored>, ToolError> {
    let tree = read_tree(store, &layout.actions()).await?;
    Ok(tree
        .entries
        .into_iter()
        .filter_map(
            |(key, entry)| match serde_json::from_str::<Record>(&entry.value) {
                Ok(record) => Some(Stored {
                    record,
                    mod_rev: entry.mod_rev,
                }),
                Err(e) => {
                    eprintln!("reconcile: skipping action record {key}: {e}");
                    None
                }
            },
        )
        .collect())
}

/// Write `record` under the fence: created if `mod_rev` is None (it must not exist), else
/// replaced if it is still at `mod_rev`.
pub async fn write_record(
    store: &Store,
    layout: &Layout,
    record: &Record,
    mod_rev: Option<i64>,
    fence: &Fence,
) -> Result<Written, ToolError> {
    let key = layout.action(&record.id);
    let value = serde_json::to_string(record).expect("a record serialises");
    if store.v3().is_some() {
        let record_compare = match mod_rev {
            None => compare(&key, CompareTarget::Create, TargetUnion::CreateRevision(0)),
            Some(rev) => compare(&key, CompareTarget::Mod, TargetUnion::ModRevision(rev)),
        };
        let leader_compare = compare(
            &fence.key,
            CompareTarget::Create,
            TargetUnion::CreateRevision(fence.token),
        );
        let request = TxnRequest {
            compare: vec![leader_compare, record_compare],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: key.into_bytes(),
                    value: value.into_bytes(),
                    ..Default::default()
                })),
            }],
            // On failure, read the leader key back, to tell a stale token from a lost record.
            failure: vec![RequestOp {
                request: Some(Request::RequestRange(RangeRequest {
                    key: fence.key.clone().into_bytes(),
                    ..Default::default()
                })),
            }],
        };
        // Sent once: a repeat of an applied Txn would fail its compare and read as lost.
        let reply = store.txn(store.call_once(), request).await?;
        if reply.succeeded {
            return Ok(Written::Ok(
                reply.header.map(|h| h.revision).unwrap_or_default(),
            ));
        }
        let leader_rev = reply.responses.first().and_then(|op| match &op.response {
            Some(musubi_proto::etcdserverpb::response_op::Response::ResponseRange(r)) => {
                r.kvs.first().map(|kv| kv.create_revision)
            }
            _ => None,
        });
        return Ok(if leader_rev == Some(fence.token) {
            Written::Lost
        } else {
            Written::Stale
        });
    }
    // v2: no multi-key compare. Check the leader key with a quorum read, then write the record
    // with its own condition; the gap between the two is the weaker guarantee.
    if !v2_still_leader(store, fence).await? {
        return Ok(Written::Stale);
    }
    let options = SetOptions {
        prev_exist: if mod_rev.is_none() {
            PrevExist::NoExist
        } else {
            PrevExist::Ignore
        },
        prev_index: mod_rev.map(|rev| rev as u64),
        ..Default::default()
    };
    match store.v2.set(&key, &value, &options).await {
        Ok(reply) => Ok(Written::Ok(reply.node.modified_index as i64)),
        // 101 compare failed, 105 key exists.
        Err(V2Error::Etcd(e)) if e.code == 101 || e.code == 105 || e.code == 100 => {
            Ok(Written::Lost)
        }
        Err(e) => Err(e.into()),
    }
}

/// Replace a record still at `mod_rev`, with no fence (an operator's `retry`); false if it
/// changed meanwhile.
pub async fn replace_record(
    store: &Store,
    layout: &Layout,
    record: &Record,
    mod_rev: i64,
) -> Result<bool, ToolError> {
    let key = layout.action(&record.id);
    let value = serde_json::to_string(record).expect("a record serialises");
    if store.v3().is_some() {
        let request = TxnRequest {
            compare: vec![compare(
                &key,
                CompareTarget::Mod,
                TargetUnion::ModRevision(mod_rev),
            )],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: key.into_bytes(),
                    value: value.into_bytes(),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        };
        // Sent once: a repeat of an applied Txn would fail its compare and read as lost.
        let reply = store.txn(store.call_once(), request).await?;
        return Ok(reply.succeeded);
    }
    let options = SetOptions {
        prev_index: Some(mod_rev as u64),
        ..Default::default()
    };
    match store.v2.set(&key, &value, &options).await {
        Ok(_) => Ok(true),
        Err(V2Error::Etcd(e)) if e.code == 101 || e.code == 100 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn v2_still_leader(store: &Store, fence: &Fence) -> Result<bool, ToolError> {
    let options = GetOptions {
        quorum: true,
        ..Default::default()
    };
    match store.v2.get(&fence.key, &options).await {
        Ok(reply) => Ok(reply.node.created_index as i64 == fence.token),
        Err(V2Error::Etcd(e)) if e.code == 100 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Put a key unconditionally (views, status).
pub async fn put(store: &Store, key: &str, value: &str) -> Result<(), ToolError> {
    if store.v3().is_some() {
        let request = PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        };
        store.put(store.call(), request).await?;
        return Ok(());
    }
    store.v2.set(key, value, &SetOptions::default()).await?;
    Ok(())
}

/// Read one key's value, if it exists.
pub async fn get(store: &Store, key: &str) -> Result<Option<String>, ToolError> {
    if store.v3().is_some() {
        let request = RangeRequest {
            key: key.as_bytes().to_vec(),
            serializable: store.stale,
            ..Default::default()
        };
        let reply = store.range(store.call(), request).await?;
        return Ok(reply
            .kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()));
    }
    let options = GetOptions {
        quorum: !store.stale,
        ..Default::default()
    };
    match store.v2.get(key, &options).await {
        Ok(reply) => Ok(Some(reply.node.value)),
        Err(V2Error::Etcd(e)) if e.code == 100 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn compare(key: &str, target: CompareTarget, value: TargetUnion) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: target as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(value),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_keys_escape_slashes() {
        let layout = Layout::new("web");
        assert_eq!(
            layout.action("create:roles/web%x:desired@5"),
            "/_musubi/reconcile/web/actions/create:roles%2Fweb%25x:desired@5"
        );
    }
}
