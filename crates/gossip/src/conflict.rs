//! Name conflicts: a second agent started with a name already in use, at another
//! address. As in Serf, each of the two that notices asks every member which address it
//! lists the name at (a `WhoHolds` lifecycle datagram; the two claimants do not answer
//! about their own name); when the time is up, the one that most answers do not name
//! shuts down without a leave. Members list whoever held the name first: a member that
//! already lists a live holder refuses the newcomer (membership.rs is told nothing).

use std::net::SocketAddr;
use std::time::Duration;
use std::time::Instant;

/// memberlist's LAN gossip interval; Serf's default query timeout is a multiple of it.
const GOSSIP_INTERVAL: Duration = Duration::from_millis(200);
const QUERY_TIMEOUT_MULT: u32 = 16;

/// Serf's default query timeout: gossip interval × 16 × ceil(log10(N + 1)).
pub fn answer_window(members: usize) -> Duration {
    let scale = ((members + 1) as f64).log10().ceil().max(1.0) as u32;
    GOSSIP_INTERVAL * QUERY_TIMEOUT_MULT * scale
}

/// One round of asking who holds our name.
#[derive(Debug)]
pub struct ConflictVote {
    pub id: u64,
    local: SocketAddr,
    pub deadline: Instant,
    responses: usize,
    matching: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Most answers list us: we keep the name.
    Majority { matching: usize, responses: usize },
    /// We lost the name: shut down.
    Minority { matching: usize, responses: usize },
}

impl ConflictVote {
    pub fn new(id: u64, local: SocketAddr, deadline: Instant) -> Self {
        ConflictVote {
            id,
            local,
            deadline,
            responses: 0,
            matching: 0,
        }
    }

    /// An answer to this round: where the answering member lists our name, if anywhere.
    pub fn answer(&mut self, id: u64, holder: Option<SocketAddr>) {
        if id != self.id {
            return;
        }
        self.responses += 1;
        if holder == Some(self.local) {
            self.matching += 1;
        }
    }

    /// Serf's rule: we stay when at least a strict majority of the answers list us, so
    /// with no answers at all we lose too.
    pub fn verdict(&self) -> Verdict {
        let (matching, responses) = (self.matching, self.responses);
        if matching > responses / 2 {
            Verdict::Majority {
                matching,
                responses,
            }
        } else {
            Verdict::Minority {
                matching,
                responses,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn the_holder_most_members_list_keeps_the_name() {
        let mut vote = ConflictVote::new(3, addr(1).unwrap(), Instant::now());
        vote.answer(3, addr(1));
        vote.answer(3, addr(2));
        vote.answer(9, addr(2)); // another round's answer
        vote.answer(3, addr(1));
        assert_eq!(
            vote.verdict(),
            Verdict::Majority {
                matching: 2,
                responses: 3
            }
        );
        let mut newcomer = ConflictVote::new(4, addr(2).unwrap(), Instant::now());
        newcomer.answer(4, addr(1));
        newcomer.answer(4, None);
        assert_eq!(
            newcomer.verdict(),
            Verdict::Minority {
                matching: 0,
                responses: 2
            }
        );
    }

    #[test]
    fn a_tie_or_silence_loses() {
        let mut vote = ConflictVote::new(1, addr(1).unwrap(), Instant::now());
        assert!(matches!(vote.verdict(), Verdict::Minority { .. }));
        vote.answer(1, addr(1));
        vote.answer(1, addr(2));
        assert!(matches!(vote.verdict(), Verdict::Minority { .. }));
    }

    #[test]
    fn answers_are_awaited_as_long_as_serfs_query_timeout() {
        assert_eq!(answer_window(2), Duration::from_millis(3200));
        assert_eq!(answer_window(20), Duration::from_millis(6400));
    }
}
