//! The member list as Serf reports it: foca says who is up and down, leave intents say
//! who chose to go. Pure state, fed by the node task; no IO, no clock.
//!
//! Serf's states: a member that announces its leave is `leaving` until the cluster sees it
//! gone, then `left`; one that vanishes without a word is `failed`. A leave intent for a
//! failed member (force-leave) makes it `left`.

use crate::identity::NodeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberStatus {
    Alive,
    Leaving,
    Left,
    Failed,
}

impl MemberStatus {
    /// The string Serf puts in member records and matches `-status` filters against.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Alive => "alive",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Left => "left",
            MemberStatus::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub id: NodeId,
    pub status: MemberStatus,
}

/// Every member ever seen, by node name (Serf's key), the local one included.
#[derive(Debug)]
pub struct MemberTable {
    members: BTreeMap<String, MemberRecord>,
    /// The alive records, kept as they change: the core reads the count on every input
    /// (foca's config and the suspicion bounds follow it), and counting a 1,000-member
    /// table each time made a round of gossip cost O(n²).
    alive: usize,
}

impl MemberTable {
    pub fn new(local: NodeId) -> Self {
        let mut table = MemberTable {
            members: BTreeMap::new(),
            alive: 0,
        };
        table.member_up(local);
        table
    }

    pub fn member_up(&mut self, id: NodeId) {
        let name = id.name.clone();
        self.counting(&[&name], |members| {
            let record = MemberRecord {
                id,
                status: MemberStatus::Alive,
            };
            members.insert(name.clone(), record);
        });
    }

    /// foca declared `id` down: it left if it said it would, otherwise it failed.
    /// A notice about an identity the member has since replaced is stale and ignored.
    pub fn member_down(&mut self, id: &NodeId) {
        self.counting(&[&id.name], |members| {
            if let Some(record) = members.get_mut(&id.name)
                && record.id == *id
            {
                record.status = match record.status {
                    MemberStatus::Leaving | MemberStatus::Left => MemberStatus::Left,
                    MemberStatus::Alive | MemberStatus::Failed => MemberStatus::Failed,
                };
            }
        });
    }

    /// foca replaced `old` by `new` (same address: a restart or a renewal). The liveness
    /// carries over; foca follows up with `MemberUp` when it changed.
    pub fn member_renamed(&mut self, old: &NodeId, new: NodeId) {
        let status = match self.members.get(&old.name) {
            Some(record) if record.id == *old => record.status,
            _ => return,
        };
        let new_name = new.name.clone();
        self.counting(&[&old.name, &new_name], |members| {
            if old.name != new.name {
                members.remove(&old.name);
            }
            members.insert(new.name.clone(), MemberRecord { id: new, status });
        });
    }

    /// A member announced it is leaving, or an operator force-left a failed one.
    pub fn leave_intent(&mut self, name: &str) {
        self.counting(&[name], |members| {
            if let Some(record) = members.get_mut(name) {
                record.status = match record.status {
                    MemberStatus::Alive => MemberStatus::Leaving,
                    MemberStatus::Failed => MemberStatus::Left,
                    unchanged => unchanged,
                };
            }
        });
    }

    /// Drop a member from the list (reaped or pruned).
    pub fn remove(&mut self, name: &str) -> Option<MemberRecord> {
        let mut removed = None;
        self.counting(&[name], |members| removed = members.remove(name));
        removed
    }

    /// Applies `change`, which touches only the records named `names`, keeping the alive
    /// count.
    fn counting(
        &mut self,
        names: &[&str],
        change: impl FnOnce(&mut BTreeMap<String, MemberRecord>),
    ) {
        let alive_among = |members: &BTreeMap<String, MemberRecord>| {
            let mut distinct = names.to_vec();
            distinct.sort_unstable();
            distinct.dedup();
            distinct
                .iter()
                .filter(|name| {
                    members
                        .get(**name)
                        .is_some_and(|r| r.status == MemberStatus::Alive)
                })
                .count()
        };
        let before = alive_among(&self.members);
        change(&mut self.members);
        self.alive = self.alive + alive_among(&self.members) - before;
    }

    pub fn get(&self, name: &str) -> Option<&MemberRecord> {
        self.members.get(name)
    }

    pub fn records(&self) -> impl Iterator<Item = &MemberRecord> {
        self.members.values()
    }

    pub fn is_alive_at(&self, addr: SocketAddr) -> bool {
        self.members
            .values()
            .any(|r| r.id.addr == addr && r.status == MemberStatus::Alive)
    }

    pub fn alive_count(&self) -> usize {
        self.alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, port: u16, started_ms: u64) -> NodeId {
        NodeId {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tags: Default::default(),
            started_ms,
        }
    }

    fn status(table: &MemberTable, name: &str) -> MemberStatus {
        table.get(name).unwrap().status
    }

    #[test]
    fn the_kept_alive_count_follows_every_change() {
        let recount = |table: &MemberTable| {
            table
                .records()
                .filter(|r| r.status == MemberStatus::Alive)
                .count()
        };
        let mut table = MemberTable::new(node("local", 1, 1));
        let changes: [&dyn Fn(&mut MemberTable); 8] = [
            &|t| t.member_up(node("b", 2, 1)),
            &|t| t.member_up(node("c", 3, 1)),
            &|t| t.member_up(node("b", 2, 1)),
            &|t| t.member_down(&node("b", 2, 1)),
            &|t| t.member_renamed(&node("c", 3, 1), node("c", 3, 2)),
            &|t| t.member_renamed(&node("c", 3, 2), node("d", 3, 3)),
            &|t| t.leave_intent("d"),
            &|t| drop(t.remove("b")),
        ];
        for change in changes {
            change(&mut table);
            assert_eq!(table.alive_count(), recount(&table));
        }
        assert_eq!(table.alive_count(), 1);
    }

    #[test]
    fn a_member_that_goes_down_without_a_word_has_failed() {
        let mut table = MemberTable::new(node("local", 1, 1));
        table.member_up(node("b", 2, 1));
        table.member_down(&node("b", 2, 1));
        assert_eq!(status(&table, "b"), MemberStatus::Failed);
    }

    #[test]
    fn a_member_that_announced_its_leave_is_leaving_then_left() {
        let mut table = MemberTable::new(node("local", 1, 1));
        table.member_up(node("b", 2, 1));
        table.leave_intent("b");
        assert_eq!(status(&table, "b"), MemberStatus::Leaving);
        table.member_down(&node("b", 2, 1));
        assert_eq!(status(&table, "b"), MemberStatus::Left);
    }

    #[test]
    fn force_leave_turns_a_failed_member_into_left() {
        let mut table = MemberTable::new(node("local", 1, 1));
        table.member_up(node("b", 2, 1));
        table.member_down(&node("b", 2, 1));
        table.leave_intent("b");
        assert_eq!(status(&table, "b"), MemberStatus::Left);
    }

    #[test]
    fn a_down_notice_for_a_replaced_identity_is_ignored() {
        let mut table = MemberTable::new(node("local", 1, 1));
        table.member_up(node("b", 2, 1));
        table.member_renamed(&node("b", 2, 1), node("b", 2, 2));
        table.member_down(&node("b", 2, 1));
        assert_eq!(status(&table, "b"), MemberStatus::Alive);
        assert_eq!(table.get("b").unwrap().id.started_ms, 2);
    }

    #[test]
    fn a_restarted_member_is_alive_again() {
        let mut table = MemberTable::new(node("local", 1, 1));
        table.member_up(node("b", 2, 1));
        table.member_down(&node("b", 2, 1));
        table.member_renamed(&node("b", 2, 1), node("b", 2, 5));
        table.member_up(node("b", 2, 5));
        assert_eq!(status(&table, "b"), MemberStatus::Alive);
        assert!(table.is_alive_at(SocketAddr::from(([127, 0, 0, 1], 2))));
        assert_eq!(table.alive_count(), 2);
    }
}
