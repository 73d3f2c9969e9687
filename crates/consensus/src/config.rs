//! What the server tells the consensus layer about this member.

use crate::Member;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Identity, storage location and timing of this member.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    pub node_id: u64,
    pub node_name: String,
    /// The cluster this member serves in; told to members that join.
    pub cluster_id: u64,
    /// This member was added to a running cluster (`--initial-cluster-state existing`, or
    /// 0.x `-peers`): a fresh data dir waits for the leader instead of initializing.
    pub join_existing: bool,
    /// `--force-new-cluster`: make this member the only voter, keeping its log and data.
    pub force_new_cluster: bool,
    /// The Raft log and snapshots live under `data_dir/member`.
    pub data_dir: PathBuf,
    /// Where peers reach this member (`http://host:port`).
    pub peer_url: String,
    /// Where clients reach this member; reported in the member list.
    pub client_urls: Vec<String>,
    /// Applied entries between two snapshots (etcd's `--snapshot-count`).
    pub snapshot_count: u64,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    /// The members of `--initial-cluster`, this one included. Empty means this member
    /// alone (as `node_name`, `peer_url`, `client_urls`).
    pub initial_members: BTreeMap<u64, Member>,
    /// How to dial `https://` peer URLs: the CA to trust and the certificate to present
    /// (etcd's `--peer-*` TLS flags). `None` dials only `http://` peers.
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
}

impl ConsensusConfig {
    /// This member as the cluster records it.
    pub(crate) fn me(&self) -> Member {
        Member {
            name: self.node_name.clone(),
            peer_urls: vec![self.peer_url.clone()],
            client_urls: self.client_urls.clone(),
            is_learner: false,
        }
    }

    /// The membership a fresh data dir is initialized with. Every member of a new cluster
    /// must compute the identical map (openraft accepts identical `initialize` calls on all
    /// members, and only those), so nobody's client URLs are in it: each member publishes
    /// its own once a leader exists (see `publish`). A lone member knows them all already.
    pub fn initial_membership(&self) -> BTreeMap<u64, Member> {
        if self.initial_members.len() <= 1 {
            return BTreeMap::from([(self.node_id, self.me())]);
        }
        self.initial_members
            .iter()
            .map(|(id, m)| {
                let m = Member {
                    client_urls: Vec::new(),
                    ..m.clone()
                };
                (*id, m)
            })
            .collect()
    }

    /// Where the Raft log segments live: `data_dir/member/wal`.
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir.join("member").join("wal")
    }

    /// Where the vote, the purge point and the snapshot live: `data_dir/member/snap`.
    pub fn snap_dir(&self) -> PathBuf {
        self.data_dir.join("member").join("snap")
    }

    /// openraft's configuration. Election timeouts are randomised in `[election, 2*election)`
    /// like etcd's; entries already in a snapshot are kept for lagging followers, as etcd's
    /// `--snapshot-catchup-entries` does.
    pub fn raft_config(&self) -> openraft::Config {
        let election = self.election_ms.max(2 * self.heartbeat_ms.max(1));
        openraft::Config {
            cluster_name: "musubi".into(),
            heartbeat_interval: self.heartbeat_ms.max(1),
            election_timeout_min: election,
            election_timeout_max: 2 * election,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_count.max(1)),
            max_in_snapshot_log_to_keep: self.snapshot_count.clamp(1, 5000),
            install_snapshot_timeout: 10 * election,
            // A member back from a partition asks before it campaigns, so a healthy leader
            // is not deposed by the term it ran up while cut off (etcd's --pre-vote).
            enable_pre_vote: Some(true),
            ..Default::default()
        }
    }
}
