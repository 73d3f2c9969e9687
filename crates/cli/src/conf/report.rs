//! What `conf watch --report` tells the others: one key per watcher,
//! `/_musubi/conf/consumers/<host>/<file>` = `{"prefix","index","sha256","ok","time"}`,
//! living by a TTL (v2) or a lease (v3) that the watcher renews, so a dead watcher's report
//! goes away on its own. `_musubi` is hidden from v2 listings and ancestor watches.

use crate::toolkit::{Store, ToolError};
use musubi_client::SetOptions;
use musubi_proto::etcdserverpb::kv_client::KvClient;
use musubi_proto::etcdserverpb::lease_client::LeaseClient;
use musubi_proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest, PutRequest};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where reports live.
pub const ROOT: &str = "/_musubi/conf/consumers";
/// A report lives this long unless renewed (every third of it).
pub const TTL: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub prefix: String,
    /// The index (revision) the installed file was rendered at.
    pub index: u64,
    pub sha256: String,
    /// The last render was installed (false: a later one broke the schema or failed its
    /// check or reload, so the file is still the one rendered at `index`).
    pub ok: bool,
    /// Unix seconds of the report.
    pub time: u64,
}

pub struct Reporter {
    key: String,
    /// The v3 lease the key lives by.
    lease: Option<i64>,
}

impl Reporter {
    /// The reporter of the watcher writing `file` (or `exec` for `--exec` without a file).
    pub fn new(file: &str) -> Reporter {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        Reporter {
            key: format!("{ROOT}/{}/{}", escape(&host), escape(file)),
            lease: None,
        }
    }

    pub async fn report(&mut self, store: &Store, report: &Report) -> Result<(), ToolError> {
        let value = serde_json::to_string(report).expect("reports serialise");
        if store.v3().is_none() {
            store
                .v2
                .set(
                    &self.key,
                    &value,
                    &SetOptions::with_ttl(Some(TTL.as_secs())),
                )
                .await?;
            return Ok(());
        }
        // Each report takes a fresh lease and then revokes the one before: the key moved to
        // the new lease with the put, so nothing else goes with the old one. Sent again
        // after a timeout: a lease granted by a lost attempt expires with its TTL.
        let (key, value) = (self.key.as_bytes().to_vec(), value.into_bytes());
        let granted = store
            .v3_call(store.call(), |channel| {
                let put = PutRequest {
                    key: key.clone(),
                    value: value.clone(),
                    ..Default::default()
                };
                async move {
                    let ttl = TTL.as_secs() as i64;
                    let granted = LeaseClient::new(channel.clone())
                        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
                        .await?
                        .into_inner();
                    let lease = granted.id;
                    KvClient::new(channel)
                        .put(PutRequest { lease, ..put })
                        .await?;
                    Ok(lease)
                }
            })
            .await?;
        if let Some(old) = self.lease.replace(granted) {
            let revoke = |channel| async move {
                LeaseClient::new(channel)
                    .lease_revoke(LeaseRevokeRequest { id: old })
                    .await
            };
            // Best effort: the old lease expires with its TTL anyway.
            let _ = store.v3_call(store.call(), revoke).await;
        }
        Ok(())
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A host name or file path as one key segment: `%` and `/` percent-escaped.
pub fn escape(text: &str) -> String {
    text.replace('%', "%25").replace('/', "%2F")
}

pub fn unescape(text: &str) -> String {
    text.replace("%2F", "/").replace("%25", "%")
}
