//! The peer transport: Raft RPCs as JSON over HTTP on the peer URL.
//!
//! | RPC | route | body |
//! |---|---|---|
//! | append entries | `POST /raft/append` | `AppendEntriesRequest` as JSON, each entry's payload as first encoded (`Payload`) |
//! | vote | `POST /raft/vote` | `VoteRequest` as JSON |
//! | pre-vote | `POST /raft/pre-vote` | `VoteRequest` as JSON |
//! | leadership hand-over (a removed leader picks its successor) | `POST /raft/transfer-leader` | `TransferLeaderRequest` as JSON |
//! | full snapshot | `POST /raft/snapshot` | 4-byte big-endian length, JSON `{vote, meta}`, then the raw snapshot bytes |
//!
//! Every request names the sender's cluster and every reply the answerer's
//! (`X-Etcd-Cluster-ID`, see `cluster_stamp`); a member refuses another cluster's requests
//! with `412`, and a reply from another cluster counts as no reply. Every other reply is `200` with a JSON `Result<_, RaftError>`: a Raft-level error travels in the
//! body, so HTTP errors only ever mean transport trouble. The client ([`PeerNetwork`]) maps
//! a failed connect to `Unreachable` (openraft backs off) and every other failure to
//! `Network`; [`router`] is the server side, mounted by the server on its peer listeners.

mod client;
pub(crate) mod cluster_stamp;
pub(crate) mod post;
mod reachability;
mod server;
mod stats;

pub use client::{Failure, PeerClient, PeerNetwork};
pub(crate) use server::peer_body_limit;
pub use server::{decode_rpc, decode_snapshot, router};
pub use stats::{FollowerStats, PeerStats, Totals};

use crate::{SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};

pub(crate) const APPEND: &str = "/raft/append";
pub(crate) const VOTE: &str = "/raft/vote";
pub(crate) const PRE_VOTE: &str = "/raft/pre-vote";
pub(crate) const SNAPSHOT: &str = "/raft/snapshot";
pub(crate) const TRANSFER_LEADER: &str = "/raft/transfer-leader";
/// Bytes of the length prefix in front of the snapshot head.
pub(crate) const SNAPSHOT_HEAD_LEN: usize = 4;

/// What precedes the snapshot bytes in a `/raft/snapshot` body.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapshotHead {
    pub(crate) vote: Vote,
    pub(crate) meta: SnapshotMeta,
}
