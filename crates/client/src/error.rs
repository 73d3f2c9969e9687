//! Errors of the v2 client. Their `Display` is etcd's Go client's, because `musubi kv` prints
//! them the way `etcdctl` does.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request with an etcd error body (`errorCode` …). The store did
    /// not change.
    #[error("{0}")]
    Etcd(EtcdError),
    /// No endpoint gave an answer: each one could not be reached, timed out or had no leader.
    /// A write may or may not have been applied.
    #[error("{0}")]
    Cluster(ClusterError),
    /// A members request was refused (`{"message": …}`); nothing changed.
    #[error("{message}")]
    Refused { status: u16, message: String },
    /// An endpoint answered something that is not etcd's JSON. The store may have changed.
    #[error("{0}")]
    Decode(String),
    /// An endpoint URL cannot be used; nothing was sent.
    #[error("{0}")]
    InvalidEndpoint(String),
}

/// An etcd v2 error reply: `{"errorCode":100,"message":"Key not found","cause":"/a","index":7}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdError {
    #[serde(rename = "errorCode")]
    pub code: u32,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub cause: String,
    #[serde(default)]
    pub index: u64,
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}) [{}]",
            self.code, self.message, self.cause, self.index
        )
    }
}

/// Why each endpoint failed, in the order they were tried.
#[derive(Debug, Clone, Default)]
pub struct ClusterError {
    pub errors: Vec<EndpointError>,
}

/// One endpoint's failure.
#[derive(Debug, Clone)]
pub struct EndpointError {
    /// The TCP connection could not be opened, so the request was never sent.
    pub unreachable: bool,
    pub message: String,
}

impl ClusterError {
    /// True when no endpoint could even be connected to (etcdctl exits 2 for this during sync).
    pub fn all_unreachable(&self) -> bool {
        self.errors.iter().all(|e| e.unreachable)
    }

    /// The per-endpoint lines etcdctl prints after the error itself.
    pub fn detail(&self) -> String {
        self.errors
            .iter()
            .enumerate()
            .map(|(i, e)| format!("error #{i}: {}\n", e.message))
            .collect()
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("client: etcd cluster is unavailable or misconfigured")?;
        for (i, e) in self.errors.iter().enumerate() {
            writeln!(f, "; error #{i}: {}", e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ClusterError {}
impl std::error::Error for EtcdError {}
