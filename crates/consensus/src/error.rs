//! The one error type of the consensus layer. Each variant says whether state changed.

use openraft::errors::{ClientWriteError, Fatal, LinearizableReadError, RaftError};
use std::io;
use std::sync::Arc;

use crate::TypeConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// This member does not lead; nothing was proposed. Retry on the leader.
    #[error("etcdserver: not leader{}", leader.map(|l| format!(" (the leader is member {l:x})")).unwrap_or_default())]
    NotLeader { leader: Option<u64> },
    /// The leader changed while the write was in flight: it may or may not be applied.
    #[error(
        "etcdserver: leader changed while the request was in flight; it may or may not have been applied"
    )]
    OutcomeUnknown,
    /// The state machine refused the write at log index `at`, as one whose first attempt
    /// may have been applied and forgotten (`musubi_store::Deduplicator`): this attempt
    /// changed nothing. Whoever knows that no earlier attempt can have been applied may
    /// propose it again as landing above `at`; anyone else must say the outcome is unknown.
    #[error("etcdserver: the write was refused as one that may have been applied before")]
    Refused { at: u64 },
    /// No leader is known or reachable; nothing was proposed. Names who cannot be reached.
    #[error("etcdserver: no leader: {0}")]
    NoLeader(String),
    /// No quorum could be reached; nothing was done.
    #[error("etcdserver: no quorum of members is reachable: {0}")]
    Unavailable(String),
    /// Raft refused the proposal (a membership change or precondition failed); nothing changed.
    #[error("raft refused the proposal: {0}")]
    Rejected(String),
    /// A membership change was refused; nothing changed.
    #[error(transparent)]
    Membership(#[from] crate::MembershipError),
    /// Reading or writing the data dir failed.
    #[error("storage: {context}: {source}")]
    Storage { context: String, source: io::Error },
    /// The configuration was refused before anything started.
    #[error("invalid raft configuration: {0}")]
    Config(String),
    /// Raft has stopped (shut down, or a storage failure it cannot survive). Restart the member.
    #[error("raft has stopped: {0}")]
    Fatal(String),
}

impl ConsensusError {
    /// The error a reader of a shared ReadIndex (`read_batch`) gets: the one itself when
    /// this reader is the last to hold it, else a copy.
    pub(crate) fn from_shared(shared: Arc<ConsensusError>) -> ConsensusError {
        Arc::try_unwrap(shared).unwrap_or_else(|shared| shared.copy())
    }

    fn copy(&self) -> ConsensusError {
        match self {
            Self::NotLeader { leader } => Self::NotLeader { leader: *leader },
            Self::OutcomeUnknown => Self::OutcomeUnknown,
            Self::Refused { at } => Self::Refused { at: *at },
            Self::NoLeader(m) => Self::NoLeader(m.clone()),
            Self::Unavailable(m) => Self::Unavailable(m.clone()),
            Self::Rejected(m) => Self::Rejected(m.clone()),
            Self::Membership(e) => Self::Membership(e.clone()),
            Self::Storage { context, source } => Self::Storage {
                context: context.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Self::Config(m) => Self::Config(m.clone()),
            Self::Fatal(m) => Self::Fatal(m.clone()),
        }
    }

    pub(crate) fn storage(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| Self::Storage { context, source }
    }
}

impl From<Fatal<TypeConfig>> for ConsensusError {
    fn from(e: Fatal<TypeConfig>) -> Self {
        Self::Fatal(e.to_string())
    }
}

impl From<RaftError<TypeConfig, ClientWriteError<TypeConfig>>> for ConsensusError {
    fn from(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Self {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Self::NotLeader {
                leader: f.leader_id,
            },
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => Self::OutcomeUnknown,
            RaftError::APIError(other) => Self::Rejected(other.to_string()),
            RaftError::Fatal(f) => f.into(),
        }
    }
}

impl From<RaftError<TypeConfig, LinearizableReadError<TypeConfig>>> for ConsensusError {
    fn from(e: RaftError<TypeConfig, LinearizableReadError<TypeConfig>>) -> Self {
        match e {
            RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => Self::NotLeader {
                leader: f.leader_id,
            },
            RaftError::APIError(LinearizableReadError::QuorumNotEnough(q)) => {
                Self::Unavailable(q.to_string())
            }
            RaftError::Fatal(f) => f.into(),
        }
    }
}
