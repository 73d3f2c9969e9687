//! etcd's v3 API over the keyspace: KV reads and writes, Txn, Compact and leases.

pub mod auth;
mod error;
mod kv;
mod lease;
mod range;
mod txn;

pub use error::V3Error;
pub use kv::check_put_request;
pub use lease::{Lease, Leases};
pub use range::{in_bounds, key_bounds, key_value, prefix_end};

use musubi_proto::etcdserverpb as pb;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A v3 request that goes through the log. Reads (Range) are served from the state
/// machine directly; a Txn goes through the log even when it only reads, since its
/// compares must be evaluated at one point of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum V3Write {
    Put(pb::PutRequest),
    DeleteRange(pb::DeleteRangeRequest),
    Txn(pb::TxnRequest),
    Compact(pb::CompactionRequest),
    /// `id` is never 0: the member that received the grant chose one.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    /// `expired`: the leader revoked it because its TTL ran out (v2 watchers see
    /// `expire` rather than `delete` for its keys).
    LeaseRevoke {
        id: i64,
        expired: bool,
    },
    /// An alarm raised or cleared (GET is served without the log).
    Alarm(pb::AlarmRequest),
    /// A v3 auth change (users, roles, the switch, tokens): no KV revision.
    Auth(auth::AuthV3Op),
}

/// What a v3 write answers (headers carry only the revision; the server fills the rest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum V3Response {
    Put(pb::PutResponse),
    DeleteRange(pb::DeleteRangeResponse),
    Txn(pb::TxnResponse),
    Compact(pb::CompactionResponse),
    LeaseGrant(pb::LeaseGrantResponse),
    LeaseRevoke(pb::LeaseRevokeResponse),
    Alarm(pb::AlarmResponse),
    /// Every auth change answers a header; Authenticate also a token.
    Auth(pb::AuthenticateResponse),
}

impl V3Response {
    /// Its size as protobuf: what a remembered response costs.
    pub fn encoded_len(&self) -> usize {
        use prost::Message;
        match self {
            V3Response::Put(r) => r.encoded_len(),
            V3Response::DeleteRange(r) => r.encoded_len(),
            V3Response::Txn(r) => r.encoded_len(),
            V3Response::Compact(r) => r.encoded_len(),
            V3Response::LeaseGrant(r) => r.encoded_len(),
            V3Response::LeaseRevoke(r) => r.encoded_len(),
            V3Response::Alarm(r) => r.encoded_len(),
            V3Response::Auth(r) => r.encoded_len(),
        }
    }
}

impl fmt::Display for V3Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        match self {
            V3Write::Put(p) => write!(f, "v3 put {}", key(&p.key)),
            V3Write::DeleteRange(d) => write!(f, "v3 delete {}", key(&d.key)),
            V3Write::Txn(t) => write!(
                f,
                "v3 txn ({} compares, {}/{} ops)",
                t.compare.len(),
                t.success.len(),
                t.failure.len()
            ),
            V3Write::Compact(c) => write!(f, "v3 compact {}", c.revision),
            V3Write::LeaseGrant { id, ttl } => write!(f, "v3 lease grant {id:x} ttl {ttl}"),
            V3Write::LeaseRevoke { id, expired } => {
                write!(
                    f,
                    "v3 lease revoke {id:x}{}",
                    if *expired { " (expired)" } else { "" }
                )
            }
            V3Write::Alarm(a) => write!(
                f,
                "v3 alarm action {} member {:x} type {}",
                a.action, a.member_id, a.alarm
            ),
            V3Write::Auth(op) => write!(f, "v3 auth {}", op.kind()),
        }
    }
}

pub(crate) fn header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        revision,
        ..Default::default()
    })
}
