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
        snap_dir(&self.data_dir)
    }

    /// openraft's configuration.
    ///
    /// Election timing: etcd's follower campaigns once it has heard nothing from the leader
    /// for a randomised `[election, 2*election)`. openraft's follower waits out the leader's
    /// lease (which openraft sets to `election_timeout_max`) *plus* a randomised
    /// `[election_timeout_min, election_timeout_max)`, so handing it etcd's numbers directly
    /// campaigns after 3-4 election timeouts' worth of silence. With `max = 0.6 E` and
    /// `min = 0.4 E` a follower campaigns after `[E, 1.2 E)` of silence: the first campaign
    /// after a leader crash comes as early as etcd's earliest, and the 0.2 E spread (200 ms
    /// with etcd's defaults) is hundreds of round trips, enough to keep votes from splitting.
    /// Entries already in a snapshot are kept for lagging followers, as etcd's
    /// `--snapshot-catchup-entries` does.
    pub fn raft_config(&self) -> openraft::Config {
        let heartbeat = self.heartbeat_ms.max(1);
        let election = self.election_ms.max(2 * heartbeat);
        let election_timeout_min = (election * 2 / 5).max(heartbeat + 1);
        openraft::Config {
            cluster_name: "musubi".into(),
            heartbeat_interval: heartbeat,
            election_timeout_min,
            election_timeout_max: (election * 3 / 5).max(election_timeout_min + 1),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_count.max(1)),
            max_in_snapshot_log_to_keep: self.snapshot_count.clamp(1, 5000),
            install_snapshot_timeout: 10 * election,
            // A member back from a partition asks before it campaigns, so a healthy leader
            // is not deposed by the term it ran up while cut off (etcd's --pre-vote).
            enable_pre_vote: Some(true),
            // A member that led before a restart must win an election again before it serves.
            // Restored at once, it would answer ReadIndex reads from a state machine that has
            // replayed only its snapshot: the committed index is not persisted, and a restored
            // leader appends no blank entry of its own to learn it (the stale quorum reads after
            // a restart). An election costs one round trip to a quorum, and the new term's
            // blank entry is what every read index waits for.
            enable_leader_restore: Some(false),
            ..Default::default()
        }
    }
}

/// [`ConsensusConfig::snap_dir`] of a data dir.
pub(crate) fn snap_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("member").join("snap")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(heartbeat_ms: u64, election_ms: u64) -> ConsensusConfig {
        ConsensusConfig {
            node_id: 1,
            node_name: "n1".into(),
            cluster_id: 1,
            join_existing: false,
            force_new_cluster: false,
            data_dir: PathBuf::new(),
            peer_url: "http://127.0.0.1:2380".into(),
            client_urls: Vec::new(),
            snapshot_count: 10_000,
            heartbeat_ms,
            election_ms,
            initial_members: BTreeMap::new(),
            peer_tls: None,
        }
    }

    /// openraft's follower campaigns after `lease + random[min, max)` of silence, its lease
    /// being `election_timeout_max`: that window must be etcd's earliest, `[E, 1.2 E)`.
    #[test]
    fn a_follower_campaigns_after_one_to_one_point_two_election_timeouts() {
        for (heartbeat, election) in [(100, 1000), (50, 500), (10, 100), (50, 150), (100, 5000)] {
            let c = config(heartbeat, election)
                .raft_config()
                .validate()
                .unwrap();
            let lease = c.election_timeout_max;
            let e = election.max(2 * heartbeat);
            assert_eq!(lease + c.election_timeout_min, e, "{heartbeat}/{election}");
            assert!(
                lease + c.election_timeout_max <= e * 6 / 5 + 1,
                "{heartbeat}/{election}"
            );
            assert_eq!(c.enable_leader_restore, Some(false));
        }
    }
}
