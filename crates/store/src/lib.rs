//! musubi's state machine: one keyspace, applied from the Raft log.
//!
//! Promises: `apply` is deterministic (no clock, no I/O, no randomness: the same log gives
//! the same state and the same responses on every member), never panics on any request,
//! and every successful key mutation (each event) advances the store index by exactly one;
//! auth changes advance it as etcd's do, since etcd keeps auth data in its v2 store. The
//! store index is the revision counter that v2 reports as `modifiedIndex` and v3 will
//! report as `revision`.

mod auth;
mod dedup;
mod error;
mod event;
mod history;
mod request;
mod state_machine;
mod tree;

pub use auth::{
    AuthError, AuthOp, AuthOutcome, AuthState, GUEST, PasswordHash, Permissions, ROOT, Role, User,
    unauthorized,
};
pub use dedup::{Deduplicator, MAX_BYTES, MAX_IDS, Proposal, RequestId};
pub use error::{ErrorCode, V2Error};
pub use event::{Action, Event, NodeView, remaining_seconds};
pub use history::{EventHistory, is_descendant, is_hidden_from, watch_matches};
pub use request::{Compare, Expiry, Request, V2Op, clean_key};
pub use state_machine::{Outcome, Response, SnapshotError, StateMachine};
