//! `--force-new-cluster`: after a majority is lost for good, the surviving member restarts
//! as the only voter of its cluster, keeping its log, data and cluster ID (etcd's flag of
//! the same name). Other members are added back afterwards with fresh data dirs.
//!
//! Done before Raft starts, in the log itself: one membership entry naming only this member,
//! at a term above anything seen, and a vote for that term. openraft takes the last
//! membership in the log as effective, so Raft starts as a one-voter cluster and commits
//! the entry with its first election.

use crate::{Entry, LogId, LogStore, Member, TypeConfig, Vote};
use openraft::Membership;
use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::LeaderIdOf;
use openraft::vote::{RaftLeaderId, RaftLeaderIdExt};
use std::collections::{BTreeMap, BTreeSet};
use std::io;

/// Rewrites the membership in `log` to `id` alone. A log with no entries has no cluster to
/// leave: nothing is done.
pub(crate) async fn make_sole_voter(log: &mut LogStore, id: u64, me: Member) -> io::Result<()> {
    let Some(last) = log.get_log_state().await?.last_log_id else {
        return Ok(());
    };
    let voted_term = log.read_vote().await?.map_or(0, |v| v.leader_id().term());
    let term = voted_term.max(last.leader_id.term) + 1;
    let membership = Membership::new(vec![BTreeSet::from([id])], BTreeMap::from([(id, me)]))
        .map_err(io::Error::other)?;
    let leader = <LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(term, id);
    let entry = Entry::new_membership(LogId::new(leader, last.index + 1), membership);
    log.append_durably(entry)?;
    log.save_vote(&Vote::new_committed(term, id)).await?;
    tracing::warn!(
        member = %format!("{id:x}"),
        term,
        index = last.index + 1,
        "--force-new-cluster: this member is now the only voter; add the others back with fresh data dirs"
    );
    Ok(())
}
