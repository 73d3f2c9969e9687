//! A log entry's payload: a proposal and its JSON, encoded at most once on each member.
//!
//! Every entry is JSON in the log and in the AppendEntries sent to each follower. Encoded
//! where needed, an entry in a cluster of three was encoded five times (the leader's log,
//! each follower's request, each follower's own log) and decoded twice: a profile of three
//! members under `put` had that encoding at 5% of their CPU. Here the first encoding is
//! kept beside the proposal and written wherever the entry goes next, and a payload decoded
//! from JSON (a follower's AppendEntries, a write forwarded to the leader, the log read
//! back) keeps the bytes it was decoded from: a follower's log holds what the leader sent,
//! and the leader's log what the follower forwarded.
//!
//! Only JSON is ever used for entries; [`RawValue`] writes itself verbatim to serde_json's
//! serializer alone.

use musubi_store::Proposal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

/// A log entry's proposal and, once made or as received, its JSON. Reads as the proposal.
pub struct Payload {
    proposal: Proposal,
    /// `proposal` as JSON, once it has been encoded or if it was decoded.
    json: OnceLock<Box<RawValue>>,
}

impl Payload {
    pub fn new(proposal: Proposal) -> Self {
        Self {
            proposal,
            json: OnceLock::new(),
        }
    }

    /// What the payload holds in memory, about: its JSON, once made, and the decoded
    /// proposal, no larger than that JSON (values are base64 in it).
    pub(crate) fn held_bytes(&self) -> usize {
        self.json.get().map_or(0, |json| 2 * json.get().len())
    }

    /// The proposal's JSON, encoded on first use.
    fn json(&self) -> serde_json::Result<&RawValue> {
        if let Some(json) = self.json.get() {
            return Ok(json);
        }
        // Two threads may both encode; they make the same bytes, and one is kept.
        let encoded = serde_json::value::to_raw_value(&self.proposal)?;
        Ok(self.json.get_or_init(|| encoded))
    }
}

impl Deref for Payload {
    type Target = Proposal;
    fn deref(&self) -> &Proposal {
        &self.proposal
    }
}

impl From<Proposal> for Payload {
    fn from(proposal: Proposal) -> Self {
        Self::new(proposal)
    }
}

/// Equal when the proposals are: the same proposal may be spelled in more than one way.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.proposal == other.proposal
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.proposal.fmt(f)
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.proposal.fmt(f)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        let proposal = serde_json::from_str(json.get()).map_err(serde::de::Error::custom)?;
        Ok(Self {
            proposal,
            json: OnceLock::from(json),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, LogId, TypeConfig};
    use musubi_store::{Request, RequestId};
    use openraft::EntryPayload;
    use openraft::type_config::alias::LeaderIdOf;
    use openraft::vote::RaftLeaderIdExt;
    use std::sync::Arc;

    fn proposal() -> Proposal {
        Proposal {
            id: Some(RequestId {
                member: 7,
                nonce: 9,
            }),
            lands_above: Some(3),
            request: Request::Expire { now_ms: 1234 },
        }
    }

    #[test]
    fn a_payload_is_encoded_once_as_its_proposal_is() {
        let payload = Payload::new(proposal());
        let first = serde_json::to_string(&payload).unwrap();
        assert_eq!(first, serde_json::to_string(&proposal()).unwrap());
        let kept: *const RawValue = payload.json.get().unwrap().as_ref();
        assert_eq!(serde_json::to_string(&payload).unwrap(), first);
        assert!(std::ptr::eq(kept, payload.json.get().unwrap().as_ref()));
    }

    #[test]
    fn a_decoded_payload_is_written_as_it_came() {
        let spelled =
            r#"{ "lands_above" : 3, "id": {"member":7,"nonce":9}, "Expire": {"now_ms":1234} }"#;
        let payload: Payload = serde_json::from_str(spelled).unwrap();
        assert_eq!(*payload, proposal());
        assert_eq!(serde_json::to_string(&payload).unwrap(), spelled);
    }

    #[test]
    fn an_entry_keeps_its_payload_bytes_through_a_round_trip() {
        let leader = <LeaderIdOf<TypeConfig> as RaftLeaderIdExt>::new_committed(2, 1);
        let entry = Entry {
            log_id: LogId::new(leader, 5),
            payload: EntryPayload::Normal(Arc::new(Payload::new(proposal()))),
        };
        let sent = serde_json::to_string(&entry).unwrap();
        let received: Entry = serde_json::from_str(&sent).unwrap();
        assert_eq!(serde_json::to_string(&received).unwrap(), sent);
        let EntryPayload::Normal(payload) = received.payload else {
            panic!("not a normal entry: {sent}");
        };
        assert_eq!(**payload, proposal());
    }

    #[test]
    fn an_undecodable_proposal_is_refused_with_the_reason() {
        let err = serde_json::from_str::<Payload>(r#"{"Expire":{"now_ms":"soon"}}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        let err = serde_json::from_str::<Payload>(r#"{"id":null}"#).unwrap_err();
        assert!(err.to_string().contains("without a request"), "{err}");
    }
}
