//! etcd's strict reconfiguration checks (`--strict-reconfig-check`, on by default in etcd
//! 3.4): a membership change that would leave the cluster without a quorum of started,
//! reachable voters is refused before it is proposed, with etcd's errors.
//!
//! The checks count members as etcd does. A *voting* member is one that was not added as a
//! learner: musubi keeps a member added to vote as a Raft learner until it has caught up
//! (`membership`), but etcd counts it as a voter from the moment it is added, and so do
//! these checks (so adding a second member while the first has not started is refused, as
//! in etcd). A member is *started* once it has published its name. *Up* is answering the
//! peer ping now (etcd: a peer stream active for the last 5 s).

use crate::cluster::PING_TTL;
use crate::{Consensus, Member, MembershipError};
use std::collections::BTreeSet;

/// etcd 3.4 allows one learner at a time (`maxLearners`).
const MAX_LEARNERS: usize = 1;

/// One member as the checks see it.
#[derive(Clone, Debug)]
pub(crate) struct Seat {
    pub id: u64,
    /// etcd's voting member: not added as a learner (see the module).
    pub votes: bool,
    pub started: bool,
}

impl Seat {
    pub fn of(id: u64, m: &Member) -> Seat {
        Seat {
            id,
            votes: !m.is_learner,
            started: !m.name.is_empty(),
        }
    }
}

/// Adding a member: a new voter must leave a quorum of started voters (a lone started
/// member may take a second, to restore a cluster), and every voter must be up.
pub(crate) fn may_add(
    seats: &[Seat],
    as_learner: bool,
    up: &BTreeSet<u64>,
) -> Result<(), MembershipError> {
    let voters = || seats.iter().filter(|s| s.votes);
    if !as_learner {
        let members = 1 + voters().count();
        let started = voters().filter(|s| s.started).count();
        let restoring = started == 1 && members == 2;
        if !restoring && started < members / 2 + 1 {
            return Err(MembershipError::NotEnoughStarted);
        }
    }
    if voters().any(|s| !up.contains(&s.id)) {
        return Err(MembershipError::Unhealthy);
    }
    Ok(())
}

/// A learner may be added only while there is none.
pub(crate) fn room_for_learner(seats: &[Seat]) -> Result<(), MembershipError> {
    if seats.iter().filter(|s| !s.votes).count() >= MAX_LEARNERS {
        return Err(MembershipError::TooManyLearners);
    }
    Ok(())
}

/// Removing `id`: a learner always goes. A voter's removal must leave a quorum of started
/// voters; a voter that is down may go (it is not part of the working quorum), but
/// removing one that is up must leave a quorum of the voters up.
pub(crate) fn may_remove(
    seats: &[Seat],
    id: u64,
    me: u64,
    up: &BTreeSet<u64>,
) -> Result<(), MembershipError> {
    if seats.iter().any(|s| s.id == id && !s.votes) {
        return Ok(());
    }
    let voters: Vec<&Seat> = seats.iter().filter(|s| s.votes).collect();
    let rest = voters.iter().filter(|s| s.id != id);
    let started = rest.clone().filter(|s| s.started).count();
    if started < rest.count() / 2 + 1 {
        return Err(MembershipError::NotEnoughStarted);
    }
    if id != me && !up.contains(&id) {
        return Ok(());
    }
    let active = voters.iter().filter(|s| up.contains(&s.id)).count();
    if active.saturating_sub(1) < 1 + voters.len().saturating_sub(1) / 2 {
        return Err(MembershipError::Unhealthy);
    }
    Ok(())
}

/// Promoting a learner: counted as a started voter, it must leave a quorum started.
pub(crate) fn may_promote(seats: &[Seat]) -> Result<(), MembershipError> {
    let voters = seats.iter().filter(|s| s.votes);
    let members = 1 + voters.clone().count();
    let started = 1 + voters.filter(|s| s.started).count();
    if started < members / 2 + 1 {
        return Err(MembershipError::NotEnoughStarted);
    }
    Ok(())
}

impl Consensus {
    /// This member and the voting members that answer a ping now.
    pub(crate) async fn voters_up(&self, members: &[(u64, Member)]) -> BTreeSet<u64> {
        let others: Vec<&(u64, Member)> = members
            .iter()
            .filter(|(id, m)| *id != self.node_id && !m.is_learner)
            .collect();
        let probes = others.iter().map(|(_, m)| self.forwarder.ping(m, PING_TTL));
        let answers = futures::future::join_all(probes).await;
        others
            .iter()
            .zip(answers)
            .filter(|(_, up)| *up)
            .map(|((id, _), _)| *id)
            .chain([self.node_id])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(id: u64, votes: bool, started: bool) -> Seat {
        Seat { id, votes, started }
    }

    fn all(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_lone_member_may_add_one_voter_but_not_two_before_it_starts() {
        let one = [seat(1, true, true)];
        assert_eq!(may_add(&one, false, &all(&[1])), Ok(()));
        let two = [seat(1, true, true), seat(2, true, false)];
        assert_eq!(
            may_add(&two, false, &all(&[1])),
            Err(MembershipError::NotEnoughStarted)
        );
    }

    #[test]
    fn adding_needs_every_voter_up_even_for_a_learner() {
        let three = [
            seat(1, true, true),
            seat(2, true, true),
            seat(3, true, true),
        ];
        assert_eq!(may_add(&three, true, &all(&[1, 2, 3])), Ok(()));
        assert_eq!(
            may_add(&three, true, &all(&[1, 2])),
            Err(MembershipError::Unhealthy)
        );
        assert_eq!(
            may_add(&three, false, &all(&[1, 3])),
            Err(MembershipError::Unhealthy)
        );
    }

    #[test]
    fn one_learner_at_a_time() {
        let seats = [seat(1, true, true), seat(2, false, false)];
        assert_eq!(
            room_for_learner(&seats),
            Err(MembershipError::TooManyLearners)
        );
        assert_eq!(room_for_learner(&seats[..1]), Ok(()));
    }

    #[test]
    fn the_last_voter_cannot_be_removed() {
        let one = [seat(1, true, true)];
        assert_eq!(
            may_remove(&one, 1, 1, &all(&[1])),
            Err(MembershipError::NotEnoughStarted)
        );
    }

    #[test]
    fn a_down_voter_may_go_but_removing_an_up_one_must_leave_a_quorum_up() {
        let three = [
            seat(1, true, true),
            seat(2, true, true),
            seat(3, true, true),
        ];
        assert_eq!(may_remove(&three, 3, 1, &all(&[1, 2])), Ok(()));
        assert_eq!(
            may_remove(&three, 2, 1, &all(&[1, 2])),
            Err(MembershipError::Unhealthy)
        );
        assert_eq!(may_remove(&three, 1, 1, &all(&[1, 2, 3])), Ok(()));
    }

    #[test]
    fn learners_always_go() {
        let seats = [seat(1, true, true), seat(2, false, false)];
        assert_eq!(may_remove(&seats, 2, 1, &all(&[1])), Ok(()));
    }

    #[test]
    fn promoting_counts_the_learner_as_a_started_voter() {
        let seats = [
            seat(1, true, true),
            seat(2, true, false),
            seat(3, false, true),
        ];
        assert_eq!(may_promote(&seats), Ok(()));
        let seats = [
            seat(1, true, true),
            seat(2, true, false),
            seat(3, true, false),
            seat(4, false, true),
        ];
        assert_eq!(may_promote(&seats), Err(MembershipError::NotEnoughStarted));
    }
}
