//! Errors on the v3 wire: gRPC status codes with etcd's exact messages (clients match the
//! text, and Go's client retries only `Unavailable`). Mapped here, once.

use musubi_consensus::ConsensusError;
use musubi_store::v3::V3Error;
use tonic::{Code, Status};

/// A state-machine refusal as etcd reports it.
pub fn from_store(e: V3Error) -> Status {
    let code = match e {
        V3Error::Auth(e) => return super::auth::status::from_auth(e),
        V3Error::EmptyKey
        | V3Error::KeyNotFound
        | V3Error::ValueProvided
        | V3Error::LeaseProvided
        | V3Error::TooManyOps
        | V3Error::DuplicateKey => Code::InvalidArgument,
        V3Error::Compacted | V3Error::FutureRevision | V3Error::LeaseTtlTooLarge => {
            Code::OutOfRange
        }
        V3Error::LeaseNotFound => Code::NotFound,
        V3Error::LeaseExists => Code::FailedPrecondition,
        V3Error::NoSpace => Code::ResourceExhausted,
        V3Error::Corrupt => Code::DataLoss,
    };
    let message = match e {
        V3Error::Compacted | V3Error::FutureRevision | V3Error::NoSpace => {
            format!("etcdserver: mvcc: {e}")
        }
        _ => format!("etcdserver: {e}"),
    };
    Status::new(code, message)
}

/// Consensus failures: all of them leave the client free to retry (`Unavailable`), except
/// a write whose outcome is unknown, which etcd reports as a timeout too.
pub fn from_consensus(e: ConsensusError) -> Status {
    let message = match e {
        ConsensusError::NotLeader { .. } | ConsensusError::NoLeader(_) => "etcdserver: no leader",
        ConsensusError::OutcomeUnknown => {
            "etcdserver: request timed out, possibly due to previous leader failure"
        }
        ConsensusError::Unavailable(_) => "etcdserver: request timed out",
        ConsensusError::Fatal(_) => "etcdserver: server stopped",
        other => return Status::new(Code::Unknown, other.to_string()),
    };
    Status::new(Code::Unavailable, message)
}

pub fn timed_out() -> Status {
    Status::new(Code::Unavailable, "etcdserver: request timed out")
}

pub fn too_large() -> Status {
    Status::new(Code::InvalidArgument, "etcdserver: request is too large")
}
