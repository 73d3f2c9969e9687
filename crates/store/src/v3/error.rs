//! What a v3 request can fail with inside the state machine. The wire mapping (gRPC code
//! and etcd's exact message) is the server's, at its edge.

use crate::keyspace::RevisionError;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum V3Error {
    #[error("key is not provided")]
    EmptyKey,
    #[error("key not found")]
    KeyNotFound,
    #[error("value is provided")]
    ValueProvided,
    #[error("lease is provided")]
    LeaseProvided,
    #[error("too many operations in txn request")]
    TooManyOps,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    #[error("required revision has been compacted")]
    Compacted,
    #[error("required revision is a future revision")]
    FutureRevision,
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    /// A NOSPACE alarm is active and the write adds data.
    #[error("database space exceeded")]
    NoSpace,
    /// A CORRUPT alarm is active.
    #[error("corrupt cluster")]
    Corrupt,
    #[error(transparent)]
    Auth(#[from] super::auth::AuthV3Error),
}

impl From<RevisionError> for V3Error {
    fn from(e: RevisionError) -> Self {
        match e {
            RevisionError::Compacted => V3Error::Compacted,
            RevisionError::Future => V3Error::FutureRevision,
        }
    }
}
