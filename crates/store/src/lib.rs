//! musubi's state machine: one keyspace, applied from the Raft log.
//!
//! Promises: `apply` is deterministic (no clock, no I/O, no randomness: the same log gives
//! the same state and the same responses on every member), never panics on any request,
//! and every successful v2 key mutation (each event) and every v3 write that changes a
//! key advances the revision by exactly one; v2 auth changes advance it as etcd's do,
//! since etcd keeps v2 auth data in its v2 store. One revision counter serves both APIs:
//! v2 reports it as `modifiedIndex`, v3 as `revision` (docs/keyspace.md).

mod alarm;
mod auth;
pub mod backup;
mod by_key;
mod bytes;
mod dedup;
mod entry;
mod error;
mod event;
mod hash;
mod history;
mod keyspace;
mod proposal;
mod removed;
mod request;
mod state_machine;
mod tree;
mod v2_apply;
pub mod v3;

pub use alarm::{Alarms, describe as describe_alarm};
pub use auth::{
    AuthError, AuthOp, AuthOutcome, AuthState, GUEST, PasswordHash, Permissions, ROOT, Role, User,
    unauthorized,
};
pub use bytes::Bytes;
pub use dedup::{Deduplicator, MAX_BYTES, MAX_IDS, RequestId};
pub use entry::{Entry, Meta, Revision};
pub use error::{ErrorCode, V2Error};
pub use event::{Action, Event, NodeView, remaining_seconds};
pub use hash::KvHash;
pub use history::{EventHistory, is_descendant, is_hidden_from, watch_matches};
pub use keyspace::{Change, Keyspace};
pub use proposal::Proposal;
pub use removed::RemovedMembers;
pub use request::{Compare, Expiry, Request, V2Op, clean_key};
pub use state_machine::{Frozen, Outcome, Response, SnapshotError, StateMachine};
pub use tree::is_v2_path;
