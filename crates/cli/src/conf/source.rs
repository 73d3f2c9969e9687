//! The store side of `conf`: one consistent read of a prefix at one index, and waiting for
//! the first change after an index, on v3 (Range at one revision, Watch from R+1) where the
//! server speaks it and on v2 otherwise (one recursive quorum GET at one `X-Etcd-Index`,
//! `waitIndex=I+1`). A v2 401 "event index cleared" or a v3 compaction means the changes
//! after the index are gone from history: the caller reads the whole tree again.

use crate::toolkit::{Store, ToolError};
use musubi_client::{Error as V2Error, GetOptions, Node, WatchOptions};
use musubi_conf::{Entry, Tree};
use musubi_proto::etcdserverpb::watch_client::WatchClient;
use musubi_proto::etcdserverpb::watch_request::RequestUnion;
use musubi_proto::etcdserverpb::{RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use musubi_proto::prefix_end;
use std::time::Duration;
use tonic::Streaming;
use tonic::codegen::tokio_stream::{self, StreamExt};
use tonic::metadata::MetadataValue;

/// v2's "The event in requested index is outdated and cleared".
const EVENT_INDEX_CLEARED: u32 = 401;
/// v2's "Key not found".
const KEY_NOT_FOUND: u32 = 100;

/// The prefix as read at one index.
pub struct Snapshot {
    /// v2 `X-Etcd-Index` / v3 header revision: every change up to it is in `tree`.
    pub index: u64,
    /// `None`: nothing at the prefix.
    pub tree: Option<Tree>,
}

/// What waiting for a change found.
pub enum Change {
    /// A change at this index (the first after the one waited from).
    At(u64),
    /// Nothing within the time given.
    Quiet,
    /// The history after the index is gone (v2 401, v3 compacted): read everything again.
    Reread,
}

pub struct Source<'a> {
    store: &'a Store,
    /// The prefix without a trailing `/` (`/` for the whole keyspace).
    pub prefix: String,
    /// The open v3 watch and the revision it has reported up to.
    watch: Option<(Streaming<WatchResponse>, u64)>,
}

impl<'a> Source<'a> {
    pub fn new(store: &'a Store, prefix: String) -> Source<'a> {
        Source {
            store,
            prefix,
            watch: None,
        }
    }

    /// `PREFIX/`: what every key below the prefix starts with.
    fn below(&self) -> String {
        if self.prefix == "/" {
            "/".to_string()
        } else {
            format!("{}/", self.prefix)
        }
    }

    pub async fn read(&self) -> Result<Snapshot, ToolError> {
        if self.store.v3().is_some() {
            self.read_v3().await
        } else {
            self.read_v2().await
        }
    }

    async fn read_v2(&self) -> Result<Snapshot, ToolError> {
        let options = GetOptions {
            recursive: true,
            sorted: false,
            quorum: !self.store.stale,
        };
        match self.store.v2.get(&self.prefix, &options).await {
            Ok(reply) => {
                if !reply.node.dir {
                    return Err(ToolError::data(format!(
                        "{} is a key, not a directory",
                        self.prefix
                    )));
                }
                let mut entries = Vec::new();
                let below = self.below();
                flatten_v2(&reply.node, &below, &mut entries);
                let tree = Tree::from_entries(entries).map_err(super::data_error)?;
                Ok(Snapshot {
                    index: reply.meta.etcd_index,
                    tree: Some(tree),
                })
            }
            Err(V2Error::Etcd(e)) if e.code == KEY_NOT_FOUND => Ok(Snapshot {
                index: e.index,
                tree: None,
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_v3(&self) -> Result<Snapshot, ToolError> {
        let below = self.below();
        let request = RangeRequest {
            key: below.as_bytes().to_vec(),
            range_end: prefix_end(below.as_bytes()),
            serializable: self.store.stale,
            ..Default::default()
        };
        let reply = self.store.range(self.store.call(), request).await?;
        let index = reply.header.map(|h| h.revision as u64).unwrap_or_default();
        if reply.kvs.is_empty() {
            return Ok(Snapshot { index, tree: None });
        }
        let mut entries = Vec::with_capacity(reply.kvs.len());
        for kv in reply.kvs {
            let key = String::from_utf8(kv.key)
                .map_err(|e| ToolError::data(format!("a key is not UTF-8: {e}")))?;
            let value = String::from_utf8(kv.value)
                .map_err(|_| ToolError::data(format!("key '{key}': the value is not UTF-8")))?;
            entries.push(Entry {
                path: key[below.len()..].to_string(),
                value: Some(value),
                created: kv.create_revision as u64,
                modified: kv.mod_revision as u64,
            });
        }
        let tree = Tree::from_entries(entries).map_err(super::data_error)?;
        Ok(Snapshot {
            index,
            tree: Some(tree),
        })
    }

    /// Wait up to `within` for the first change below the prefix after `after`.
    pub async fn wait(&mut self, after: u64, within: Duration) -> Result<Change, ToolError> {
        match self.store.v3() {
            Some(channel) => self.wait_v3(channel, after, within).await,
            None => self.wait_v2(after, within).await,
        }
    }

    async fn wait_v2(&self, after: u64, within: Duration) -> Result<Change, ToolError> {
        let mut watcher = self.store.v2.watcher(
            &self.prefix,
            WatchOptions {
                after_index: after,
                recursive: true,
            },
        );
        match tokio::time::timeout(within, watcher.next()).await {
            Err(_) => Ok(Change::Quiet),
            Ok(Ok(event)) => Ok(Change::At(event.node.modified_index.max(after + 1))),
            Ok(Err(V2Error::Etcd(e))) if e.code == EVENT_INDEX_CLEARED => Ok(Change::Reread),
            Ok(Err(e)) => Err(e.into()),
        }
    }

    async fn wait_v3(
        &mut self,
        channel: tonic::transport::Channel,
        after: u64,
        within: Duration,
    ) -> Result<Change, ToolError> {
        let deadline = tokio::time::Instant::now() + within;
        // A stream opened at a later revision than `after` could have missed what lies
        // between: only one opened at or before it may be reused.
        if self.watch.as_ref().is_some_and(|(_, seen)| *seen > after) {
            self.watch = None;
        }
        if self.watch.is_none() {
            let replies = tokio::time::timeout_at(deadline, self.open_v3(channel, after))
                .await
                .map_err(|_| ToolError::unreachable("context deadline exceeded"))??;
            self.watch = Some((replies, after));
        }
        let (replies, seen) = self.watch.as_mut().expect("opened above");
        loop {
            let reply = match tokio::time::timeout_at(deadline, replies.message()).await {
                Err(_) => return Ok(Change::Quiet),
                Ok(Ok(Some(reply))) => reply,
                Ok(Ok(None)) | Ok(Err(_)) => {
                    self.watch = None;
                    self.store.v3_failover();
                    return Err(ToolError::unreachable("the watch stream broke"));
                }
            };
            if reply.compact_revision != 0 || reply.canceled {
                self.watch = None;
                return Ok(Change::Reread);
            }
            let newest = reply
                .events
                .iter()
                .filter_map(|e| e.kv.as_ref())
                .map(|kv| kv.mod_revision as u64)
                .max();
            if let Some(revision) = newest {
                *seen = (*seen).max(revision);
                if revision > after {
                    return Ok(Change::At(revision));
                }
            }
        }
    }

    async fn open_v3(
        &self,
        channel: tonic::transport::Channel,
        after: u64,
    ) -> Result<Streaming<WatchResponse>, ToolError> {
        let below = self.below();
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: below.as_bytes().to_vec(),
                range_end: prefix_end(below.as_bytes()),
                start_revision: after as i64 + 1,
                ..Default::default()
            })),
        };
        // The request stream stays open: closing it would end the watch.
        let mut call =
            tonic::Request::new(tokio_stream::iter([create]).chain(tokio_stream::pending()));
        // As etcd's client: a member without a leader refuses the watch instead of holding it.
        call.metadata_mut()
            .insert("hasleader", MetadataValue::from_static("true"));
        match WatchClient::new(channel).watch(call).await {
            Ok(replies) => Ok(replies.into_inner()),
            Err(status) => {
                self.store.v3_failover();
                Err(status.into())
            }
        }
    }
}

/// The keys and directories below `node`, named by their path after `below`.
fn flatten_v2(node: &Node, below: &str, out: &mut Vec<Entry>) {
    for child in node.children() {
        let Some(path) = child.key.strip_prefix(below) else {
            continue;
        };
        out.push(Entry {
            path: path.to_string(),
            value: (!child.dir).then(|| child.value.clone()),
            created: child.created_index,
            modified: child.modified_index,
        });
        if child.dir {
            flatten_v2(child, below, out);
        }
    }
}
