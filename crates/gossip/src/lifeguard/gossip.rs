//! The suspicion confirmations members gossip to one another (see [`super::suspicion`]):
//! a member whose own probe of a suspect failed says so once, through foca's custom
//! broadcasts, and every member passes each distinct confirmation on once.

use super::suspicion::SuspectKey;
use crate::deliver::Deliver;
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};

/// Confirmations remembered to pass each on once; a failure draws one per member that
/// probes the suspect, so this covers many failures at once in large clusters.
const REMEMBERED: usize = 4096;

/// "My own probe of this member failed": one independent confirmation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SuspicionConfirmation {
    pub suspect: SuspectKey,
    pub by: String,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed suspicion confirmation: {0}")]
pub struct MalformedConfirmation(#[from] rmp_serde::decode::Error);

impl SuspicionConfirmation {
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("a confirmation always encodes")
    }

    pub fn decode(body: &[u8]) -> Result<Self, MalformedConfirmation> {
        Ok(rmp_serde::from_slice(body)?)
    }
}

/// The confirmation half of foca's custom broadcasts (see [`crate::broadcasts`]).
pub struct ConfirmationGossip {
    /// The last `REMEMBERED` confirmations as a set, to tell a repeat (a crash in a large
    /// cluster brings thousands, and a scan of them for each one that arrived cost more
    /// than the rest of the gossip), and in arrival order, to forget the oldest.
    seen: HashSet<SuspicionConfirmation>,
    arrival: VecDeque<SuspicionConfirmation>,
    deliver: Deliver<SuspicionConfirmation>,
}

impl ConfirmationGossip {
    pub fn new(deliver: Deliver<SuspicionConfirmation>) -> Self {
        ConfirmationGossip {
            seen: HashSet::new(),
            arrival: VecDeque::new(),
            deliver,
        }
    }

    /// A confirmation foca handed us (sent from here or received): deliver it to the node
    /// and pass it on the first time; `None` for a repeat.
    pub fn receive_item(
        &mut self,
        data: &[u8],
    ) -> Result<Option<SuspicionConfirmation>, MalformedConfirmation> {
        let confirmation = SuspicionConfirmation::decode(data)?;
        if !self.seen.insert(confirmation.clone()) {
            return Ok(None);
        }
        self.arrival.push_back(confirmation.clone());
        if self.arrival.len() > REMEMBERED
            && let Some(oldest) = self.arrival.pop_front()
        {
            self.seen.remove(&oldest);
        }
        (self.deliver)(confirmation.clone());
        Ok(Some(confirmation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suspect(name: &str) -> SuspectKey {
        SuspectKey {
            name: name.into(),
            started_ms: 7,
            incarnation: 3,
        }
    }

    #[test]
    fn confirmations_survive_encoding() {
        let suspect = suspect("b");
        let confirmation = SuspicionConfirmation {
            suspect,
            by: "a".into(),
        };
        let encoded = confirmation.encode();
        assert!(encoded.len() < 32, "{} bytes", encoded.len());
        assert_eq!(
            SuspicionConfirmation::decode(&encoded).unwrap(),
            confirmation
        );
        assert!(SuspicionConfirmation::decode(b"\xc1").is_err());
    }

    #[test]
    fn each_confirmation_is_delivered_and_passed_on_once() {
        let delivered = crate::deliver::Inbox::default();
        let mut gossip = ConfirmationGossip::new(delivered.sink());
        let confirmation = SuspicionConfirmation {
            suspect: suspect("b"),
            by: "a".into(),
        };
        let encoded = confirmation.encode();
        assert_eq!(
            gossip.receive_item(&encoded).unwrap(),
            Some(confirmation.clone())
        );
        assert_eq!(gossip.receive_item(&encoded).unwrap(), None);
        assert_eq!(delivered.pop().unwrap(), confirmation);
        assert!(delivered.pop().is_none());
        assert!(gossip.receive_item(b"\x01").is_err());
    }

    #[test]
    fn the_oldest_confirmation_is_forgotten_past_the_window() {
        let mut gossip = ConfirmationGossip::new(crate::deliver::Inbox::default().sink());
        let by = |i: usize| SuspicionConfirmation {
            suspect: suspect("b"),
            by: format!("m{i}"),
        };
        for i in 0..=REMEMBERED {
            assert!(gossip.receive_item(&by(i).encode()).unwrap().is_some());
        }
        // the window moved past m0 only: m1 is still a repeat, m0 news again
        assert_eq!(gossip.receive_item(&by(1).encode()).unwrap(), None);
        assert_eq!(gossip.receive_item(&by(0).encode()).unwrap(), Some(by(0)));
        assert_eq!(gossip.seen.len(), REMEMBERED);
    }
}
