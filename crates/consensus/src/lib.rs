//! musubi's consensus layer: openraft, wired to our log, our state machine and HTTP peers.
//!
//! We write none of the protocol. This crate supplies openraft's three adapters and a small
//! handle the server drives:
//! - [`LogStore`]: the Raft log over `musubi_raftlog`; an append is reported flushed only
//!   after its batch is fsynced, so group commit reaches clients;
//! - [`StateMachineStore`]: applies entries to the shared `musubi_store::StateMachine`,
//!   calls the [`ApplyHook`] under the write lock, and keeps snapshots on disk;
//! - [`network`]: peers talk JSON over HTTP (`POST {peer_url}/raft/{append,vote,snapshot}`).
//!
//! The driving loop, seen from the server:
//! 1. [`Consensus::open`] restores the latest snapshot, replays the log, and on a fresh data
//!    dir initializes the `--initial-cluster` membership (every member of a new cluster
//!    initializes the identical one); a lone voter then waits until it leads, a member of a
//!    larger cluster returns at once and elects a leader with its peers in the background;
//! 2. every mutation is one [`Consensus::write`], resolved once fsynced and applied; a
//!    follower forwards it to the leader (`POST /raft/propose`, see `forward`);
//! 3. a quorum read first awaits [`Consensus::linearizable_barrier`] (a follower fetches the
//!    leader's ReadIndex and waits to apply that far), then reads the store;
//! 4. [`Consensus::peer_router`] is served on the peer URLs.
//!
//! On disk, under the data dir: `member/wal/*.wal` (log segments) and `member/snap/`
//! (`vote`, `purged`, the `committed` hint, and the latest `*.snap`).

mod cluster;
mod committed;
mod compact_log;
mod config;
mod consensus;
mod error;
mod force;
mod forward;
mod ids;
mod join;
mod leader_call;
mod log_store;
mod member;
mod membership;
pub mod network;
mod observe;
mod payload;
mod propose_batch;
mod read_batch;
mod reconfig;
mod snapshot;
mod state_machine;
#[cfg(test)]
mod test;
mod transfer;

use std::sync::Arc;

pub use config::ConsensusConfig;
pub use consensus::{Applied, Consensus, RaftStatus};
pub use error::ConsensusError;
pub use forward::{
    decode_join, decode_membership, decode_propose, decode_propose_batch, decode_publish,
};
pub use ids::{cluster_id, member_id};
pub use join::{ClusterView, fetch_cluster, join, probe_cluster};
pub use leader_call::leader_route;
pub use log_store::LogStore;
pub use member::{Member, MemberInfo};
pub use membership::{MembershipChange, MembershipError};
pub use payload::Payload;
pub use snapshot::write_restored;
pub use state_machine::StateMachineStore;
pub use transfer::TransferError;

openraft::declare_raft_types!(
    /// musubi's Raft types: one `Request` per entry (kept with its JSON, see `payload`),
    /// members carry their URLs. Leader IDs are standard Raft's, one leader per term
    /// (openraft's default lets several members lead one term in turn), so `X-Raft-Term`
    /// names one leader, as in etcd.
    pub TypeConfig:
        D = std::sync::Arc<Payload>,
        R = musubi_store::Response,
        NodeId = u64,
        Node = Member,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

/// The openraft node, as configured for musubi.
pub type Raft = openraft::Raft<TypeConfig, StateMachineStore>;
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot's data: the store's own snapshot bytes.
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, Vec<u8>>;

pub type SharedStateMachine = Arc<parking_lot::RwLock<musubi_store::StateMachine>>;

/// Called with every applied response, while the state machine write lock is still held,
/// so a watcher that registers under the read lock can never miss an event.
pub type ApplyHook = Arc<dyn Fn(&musubi_store::Response) + Send + Sync>;
