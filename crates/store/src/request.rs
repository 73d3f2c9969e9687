//! The commands that go through the Raft log. One `Request` is one log entry.
//!
//! Every field a member needs to apply a request deterministically travels inside it: the
//! proposer computes absolute expiry times from its clock; nothing reads a clock at apply.

use crate::AuthOp;
use crate::v3::V3Write;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One replicated command. Later APIs (v3 KV, leases, auth) add variants here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// A v2 keys-API mutation, with the proposer's clock (Unix ms) for the `ttl` that the
    /// resulting event reports: etcd freezes an event's remaining TTL when it happens.
    V2 { op: V2Op, now_ms: u64 },
    /// Expire every TTL key whose expiry is at or before `now_ms` (etcd's SYNC entry).
    Expire { now_ms: u64 },
    /// A v2 auth-API mutation (users, roles, enable/disable).
    Auth(AuthOp),
    /// A v3 write, with the proposer's clock for the `ttl` v2 watchers see in its events.
    V3 { write: V3Write, now_ms: u64 },
    /// A v3 write whose caller's rights were checked against v3 auth revision
    /// `auth_revision`: refused as etcd refuses it (`revision of auth store is old`) if
    /// auth is on and has changed since.
    V3As {
        write: V3Write,
        now_ms: u64,
        auth_revision: u64,
    },
}

/// What a key's expiry becomes after a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiry {
    /// No TTL: the node is (or becomes again) permanent.
    Permanent,
    /// Expires at this Unix time in milliseconds.
    At(u64),
}

/// A compare condition for compareAndSwap / compareAndDelete.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub prev_value: Option<String>,
    /// `Some(0)` is treated like `None`: etcd lets `prevIndex=0` always pass.
    pub prev_index: Option<u64>,
}

/// The v2 store operations, named after etcd's actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum V2Op {
    /// PUT without conditions. `value == None` makes a directory.
    Set {
        key: String,
        value: Option<String>,
        expiry: Expiry,
        refresh: bool,
    },
    /// PUT prevExist=false, or POST (`in_order`: create `<key>/<index padded to 20>`).
    Create {
        key: String,
        value: Option<String>,
        expiry: Expiry,
        in_order: bool,
    },
    /// PUT prevExist=true. `value == None` updates a directory (only its TTL).
    Update {
        key: String,
        value: Option<String>,
        expiry: Expiry,
        refresh: bool,
    },
    /// PUT with prevValue and/or prevIndex.
    CompareAndSwap {
        key: String,
        value: String,
        expiry: Expiry,
        refresh: bool,
        compare: Compare,
    },
    /// DELETE. `recursive` implies `dir`.
    Delete {
        key: String,
        dir: bool,
        recursive: bool,
    },
    /// DELETE with prevValue and/or prevIndex.
    CompareAndDelete { key: String, compare: Compare },
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::V2 { op, .. } => write!(f, "v2 {} {}", op.action_name(), op.key()),
            Request::Expire { now_ms } => write!(f, "expire at {now_ms}"),
            // Not `{op:?}`: that would log password hashes.
            Request::Auth(op) => write!(f, "auth {}", op.kind()),
            Request::V3 { write, .. } | Request::V3As { write, .. } => write!(f, "{write}"),
        }
    }
}

impl V2Op {
    /// The key the operation names, as given, made canonical ([`clean_key`]).
    pub fn with_clean_key(&self) -> std::borrow::Cow<'_, V2Op> {
        let key = self.key();
        let clean = clean_key(key);
        if clean == key {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut op = self.clone();
        match &mut op {
            V2Op::Set { key, .. }
            | V2Op::Create { key, .. }
            | V2Op::Update { key, .. }
            | V2Op::CompareAndSwap { key, .. }
            | V2Op::Delete { key, .. }
            | V2Op::CompareAndDelete { key, .. } => *key = clean,
        }
        std::borrow::Cow::Owned(op)
    }

    /// The key the operation names (for POST, the directory).
    pub fn key(&self) -> &str {
        match self {
            V2Op::Set { key, .. }
            | V2Op::Create { key, .. }
            | V2Op::Update { key, .. }
            | V2Op::CompareAndSwap { key, .. }
            | V2Op::Delete { key, .. }
            | V2Op::CompareAndDelete { key, .. } => key,
        }
    }

    /// The etcd action name this operation reports on success.
    pub fn action_name(&self) -> &'static str {
        match self {
            V2Op::Set { .. } => "set",
            V2Op::Create { .. } => "create",
            V2Op::Update { .. } => "update",
            V2Op::CompareAndSwap { .. } => "compareAndSwap",
            V2Op::Delete { .. } => "delete",
            V2Op::CompareAndDelete { .. } => "compareAndDelete",
        }
    }
}

/// A key in canonical form, as etcd's store makes every key it is given (Go's
/// `path.Clean("/" + key)`): one leading `/`, no empty, `.` or `..` segments, no trailing
/// `/`. The API cleans keys before it proposes them; the state machine cleans them again,
/// since a proposal can also arrive from the peer port, and a key such as `//x` would
/// otherwise make an entry named `/` inside the root.
pub fn clean_key(key: &str) -> String {
    musubi_gocompat::path::clean_rooted(key)
}
