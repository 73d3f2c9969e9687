//! The few store operations a share needs, on v3 where the server speaks it and on v2
//! otherwise: read a key, write an immutable one, list a directory, delete a key only if
//! it is unchanged, publish a revision by one compare-and-swap of `HEAD`, and wait for
//! `HEAD` to move.
//!
//! | operation | v3 | v2 |
//! |---|---|---|
//! | publish | one Txn: `If mod_revision(HEAD)=M Then Put HEAD, Put history/<rev>` | `prevIndex=M` (`prevExist=false` at first) on `HEAD`, then `history/<rev>` |
//! | list | prefix Range (keys only unless values are wanted) | directory GET (values always come) |
//! | delete if unchanged | Txn on `mod_revision` | `prevIndex` |
//! | wait for HEAD | Watch from `M+1` | `wait=true&waitIndex=M+1`; 401 "cleared": re-read |

use super::layout::{Head, Keys, Kind};
use crate::toolkit::{Store, ToolError};
use musubi_client::{DeleteOptions, Error as V2Error, GetOptions, SetOptions, WatchOptions};
use musubi_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use musubi_proto::etcdserverpb::request_op::Request as Op;
use musubi_proto::etcdserverpb::watch_client::WatchClient;
use musubi_proto::etcdserverpb::watch_request::RequestUnion;
use musubi_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    WatchCreateRequest, WatchRequest,
};
use musubi_proto::prefix_end;
use tonic::codegen::tokio_stream::{self, StreamExt};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// etcd v2's error codes this module tells apart.
const KEY_NOT_FOUND: u32 = 100;
const TEST_FAILED: u32 = 101;
const NODE_EXIST: u32 = 105;
const EVENT_INDEX_CLEARED: u32 = 401;

/// A value with the revision (v3 `mod_revision`, v2 `modifiedIndex`) it was last written at.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// One key of a listed directory: its last path component, version and (when asked for
/// on v3, always on v2) value.
#[derive(Clone, Debug)]
pub struct Listed {
    pub name: String,
    pub version: u64,
    pub value: Option<Vec<u8>>,
}

pub struct Remote {
    store: Store,
    pub keys: Keys,
}

impl Remote {
    pub fn new(store: Store, keys: Keys) -> Remote {
        Remote { store, keys }
    }

    pub fn api(&self) -> &'static str {
        if self.store.v3().is_some() { "3" } else { "2" }
    }

    /// The published revision, `None` for a share never pushed to.
    pub async fn head(&self) -> Result<Option<Versioned<Head>>, ToolError> {
        Ok(self.head_at().await?.0)
    }

    /// The published revision and the store's revision (index) it was read at, after
    /// which a watch for the next one starts.
    pub async fn head_at(&self) -> Result<(Option<Versioned<Head>>, u64), ToolError> {
        let (read, index) = self.get_at(&self.keys.head()).await?;
        let Some(read) = read else {
            return Ok((None, index));
        };
        let text =
            String::from_utf8(read.value).map_err(|_| ToolError::data("HEAD is not text"))?;
        let head = Versioned {
            value: Head::parse(&text)?,
            version: read.version,
        };
        Ok((Some(head), index))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Versioned<Vec<u8>>>, ToolError> {
        Ok(self.get_at(key).await?.0)
    }

    /// A key (`None`: absent) and the store's revision (index) of the read.
    async fn get_at(&self, key: &str) -> Result<(Option<Versioned<Vec<u8>>>, u64), ToolError> {
        if self.store.v3().is_some() {
            let request = RangeRequest {
                key: key.as_bytes().to_vec(),
                serializable: self.store.stale,
                ..Default::default()
            };
            let reply = self.store.range(self.store.call(), request).await?;
            let index = reply.header.map_or(0, |h| h.revision as u64);
            let found = reply.kvs.into_iter().next().map(|kv| Versioned {
                value: kv.value,
                version: kv.mod_revision as u64,
            });
            return Ok((found, index));
        }
        match self.store.v2.get(key, &self.v2_read()).await {
            Ok(reply) => {
                let found = Versioned {
                    value: reply.node.value.into_bytes(),
                    version: reply.node.modified_index,
                };
                Ok((Some(found), reply.meta.etcd_index))
            }
            Err(V2Error::Etcd(e)) if e.code == KEY_NOT_FOUND => Ok((None, e.index)),
            Err(e) => Err(e.into()),
        }
    }

    /// Write a content-addressed key. Writing it again is harmless (same bytes) and moves
    /// its version past any `gc` sweep that started before this push read `HEAD`.
    pub async fn put(&self, key: &str, value: String) -> Result<(), ToolError> {
        if self.store.v3().is_some() {
            let request = PutRequest {
                key: key.as_bytes().to_vec(),
                value: value.into_bytes(),
                ..Default::default()
            };
            self.store.put(self.store.call(), request).await?;
            return Ok(());
        }
        self.store
            .v2
            .set(key, &value, &SetOptions::default())
            .await?;
        Ok(())
    }

    /// Publish `head` if `HEAD` is still at `expected` (`None`: absent). `Ok(false)`: someone
    /// else published first and nothing of ours is visible.
    pub async fn publish(&self, head: &Head, expected: Option<u64>) -> Result<bool, ToolError> {
        let head_key = self.keys.head();
        let history_key = self.keys.key(Kind::History, &head.rev.to_string());
        let value = head.to_json();
        if self.store.v3().is_some() {
            let put = |key: &str| RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: value.clone().into_bytes(),
                    ..Default::default()
                })),
            };
            let request = TxnRequest {
                compare: vec![mod_revision_is(&head_key, expected.unwrap_or(0))],
                success: vec![put(&head_key), put(&history_key)],
                failure: vec![],
            };
            // Sent once: a repeat of a Txn that was applied before its answer was lost
            // would fail its compare and report our own push as beaten.
            let reply = self.store.txn(self.store.call_once(), request).await;
            return match reply.map_err(ToolError::from) {
                Ok(reply) => Ok(reply.succeeded),
                // Ours is the head if it names our root at our revision.
                Err(e) if e.exit == super::ToolExit::Unreachable => self.is_head(head).await,
                Err(e) => Err(e),
            };
        }
        let options = match expected {
            None => SetOptions::create(None),
            Some(index) => SetOptions {
                prev_index: Some(index),
                ..Default::default()
            },
        };
        match self.store.v2.set(&head_key, &value, &options).await {
            Ok(_) => {}
            Err(e) if matches!(v2_code(&e), Some(TEST_FAILED | NODE_EXIST | KEY_NOT_FOUND)) => {
                return Ok(false);
            }
            Err(V2Error::Cluster(_)) if self.is_head(head).await? => {}
            Err(e) => return Err(e.into()),
        }
        // v2 has no multi-key write: history follows HEAD. A pusher killed in between
        // leaves that revision out of `log`, never a history entry that was not published.
        self.store
            .v2
            .set(&history_key, &value, &SetOptions::default())
            .await?;
        Ok(true)
    }

    async fn is_head(&self, head: &Head) -> Result<bool, ToolError> {
        Ok(self.head().await?.is_some_and(|h| h.value == *head))
    }

    /// The keys of one directory of the share.
    pub async fn list(&self, kind: Kind, values: bool) -> Result<Vec<Listed>, ToolError> {
        let dir = format!("{}/", self.keys.dir(kind));
        if self.store.v3().is_some() {
            let request = RangeRequest {
                key: dir.as_bytes().to_vec(),
                range_end: prefix_end(dir.as_bytes()),
                keys_only: !values,
                serializable: self.store.stale,
                ..Default::default()
            };
            let reply = self.store.range(self.store.call(), request).await?;
            return Ok(reply
                .kvs
                .into_iter()
                .map(|kv| Listed {
                    name: String::from_utf8_lossy(&kv.key[dir.len()..]).into_owned(),
                    version: kv.mod_revision as u64,
                    value: values.then_some(kv.value),
                })
                .collect());
        }
        let reply = match self
            .store
            .v2
            .get(dir.trim_end_matches('/'), &self.v2_read())
            .await
        {
            Ok(reply) => reply,
            Err(e) if v2_code(&e) == Some(KEY_NOT_FOUND) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(reply
            .node
            .children()
            .iter()
            .filter(|n| !n.dir)
            .map(|n| Listed {
                name: n.key.rsplit('/').next().unwrap_or_default().to_string(),
                version: n.modified_index,
                value: Some(n.value.clone().into_bytes()),
            })
            .collect())
    }

    /// Delete `key` if it is still at `version`; `Ok(false)` if it changed or is gone.
    pub async fn delete_if(&self, key: &str, version: u64) -> Result<bool, ToolError> {
        if self.store.v3().is_some() {
            let request = TxnRequest {
                compare: vec![mod_revision_is(key, version)],
                success: vec![RequestOp {
                    request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                        key: key.as_bytes().to_vec(),
                        ..Default::default()
                    })),
                }],
                failure: vec![],
            };
            let reply = self.store.txn(self.store.call(), request).await?;
            return Ok(reply.succeeded);
        }
        let options = DeleteOptions {
            prev_index: Some(version),
            ..Default::default()
        };
        match self.store.v2.delete(key, &options).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(v2_code(&e), Some(TEST_FAILED | KEY_NOT_FOUND)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Return once `HEAD` may have changed after the store's revision (index) `version`
    /// (or the store forgot the events since then): the caller reads `HEAD` again, so
    /// intermediate revisions are skipped.
    pub async fn wait_head(&self, version: u64) -> Result<(), ToolError> {
        let key = self.keys.head();
        if let Some(channel) = self.store.v3() {
            return self.wait_head_v3(channel, key, version).await;
        }
        let options = WatchOptions {
            after_index: version,
            recursive: false,
        };
        match self.store.v2.watcher(&key, options).next().await {
            Ok(_) => Ok(()),
            Err(e) if v2_code(&e) == Some(EVENT_INDEX_CLEARED) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn wait_head_v3(&self, ch: Channel, key: String, version: u64) -> Result<(), ToolError> {
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: key.into_bytes(),
                start_revision: version as i64 + 1,
                ..Default::default()
            })),
        };
        // The request stream stays open: closing it would end the watch.
        let requests = tokio_stream::iter([create]).chain(tokio_stream::pending());
        let mut call = tonic::Request::new(requests);
        // As etcd's client: no watch through a member that has no leader.
        call.metadata_mut()
            .insert("hasleader", MetadataValue::from_static("true"));
        let opened =
            tokio::time::timeout(self.store.timeout, WatchClient::new(ch).watch(call)).await;
        let mut replies = match opened {
            Ok(Ok(replies)) => replies.into_inner(),
            Ok(Err(status)) => {
                self.store.v3_failover();
                return Err(status.into());
            }
            Err(_) => {
                self.store.v3_failover();
                return Err(ToolError::unreachable("timed out opening a watch on HEAD"));
            }
        };
        loop {
            match replies.message().await {
                // A compacted start revision cancels the watch: read HEAD again.
                Ok(Some(reply)) if !reply.events.is_empty() || reply.canceled => return Ok(()),
                Ok(Some(_)) => continue,
                Ok(None) => {
                    self.store.v3_failover();
                    return Err(ToolError::unreachable("the watch on HEAD ended"));
                }
                Err(status) => {
                    self.store.v3_failover();
                    return Err(status.into());
                }
            }
        }
    }

    fn v2_read(&self) -> GetOptions {
        GetOptions {
            quorum: !self.store.stale,
            ..Default::default()
        }
    }
}

fn v2_code(error: &V2Error) -> Option<u32> {
    match error {
        V2Error::Etcd(e) => Some(e.code),
        _ => None,
    }
}

fn mod_revision_is(key: &str, revision: u64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(TargetUnion::ModRevision(revision as i64)),
        range_end: Vec::new(),
    }
}
