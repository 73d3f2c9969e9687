//! The IDs of members removed from the cluster, remembered for good as etcd's membership
//! store remembers them: removing a member a second time is "permanently removed" (v2's
//! 410 Gone, which clients treat as done), not "no such member", and a removed ID is never
//! mistaken for one that never existed.
//!
//! Membership itself lives in the Raft log's membership entries; every member applies the
//! same entries in the same order and records the same removals, so this is replicated
//! state like the keyspace, and it rides in the snapshot (a member fed a snapshot learns
//! the removals it never saw as entries).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedMembers {
    ids: BTreeSet<u64>,
}

impl RemovedMembers {
    pub fn contains(&self, id: u64) -> bool {
        self.ids.contains(&id)
    }

    /// Records the members in `before` that are not in `after`: one membership entry's
    /// removals. Member IDs are never reused (each add salts its ID), so a removal is final.
    pub(crate) fn record(&mut self, before: impl IntoIterator<Item = u64>, after: &BTreeSet<u64>) {
        self.ids
            .extend(before.into_iter().filter(|id| !after.contains(id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_members_that_left_are_recorded() {
        let mut removed = RemovedMembers::default();
        removed.record([1, 2, 3], &BTreeSet::from([1, 3, 4]));
        assert!(removed.contains(2));
        assert!(!removed.contains(1) && !removed.contains(4));
        removed.record([1, 3, 4], &BTreeSet::from([1, 3, 4]));
        assert!(
            removed.contains(2),
            "a later entry does not forget a removal"
        );
    }

    #[test]
    fn snapshots_without_removals_load() {
        #[derive(Deserialize)]
        struct Old {
            #[serde(default)]
            removed: RemovedMembers,
        }
        let old: Old = serde_json::from_str("{}").unwrap();
        assert_eq!(old.removed, RemovedMembers::default());
    }
}
