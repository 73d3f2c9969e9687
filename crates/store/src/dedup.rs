//! At-most-once application of retried requests.
//!
//! A member that forwards a client's write to the leader, or proposes it itself, cannot
//! always tell whether it was committed: the leader's reply may be lost, or the leader may
//! lose its leadership after appending the entry, which a later leader may still commit.
//! Retrying such a write blindly could apply it twice (two compare-and-swaps, two
//! in-order keys). So every proposal carries a [`RequestId`] chosen by the member that
//! received it, and the state machine remembers the responses of recent IDs: applying an
//! ID again changes nothing and returns the first response, so a retry is safe and the
//! client gets the answer it would have got the first time.
//!
//! The memory is bounded, deterministically (every member evicts the same IDs at the same
//! point of the log): at most [`MAX_IDS`] IDs and about [`MAX_BYTES`] of responses, oldest
//! first. A response is kept as the JSON a snapshot writes of it, not as a `Response`: a
//! retry is rare, and the decoded form (an enum as large as its largest variant, v2 events
//! included) cost several times as much per ID, 60 MB of a full window.
//!
//! A retry is only safe while its first attempt's ID is remembered, and no rate of writes
//! or length of delay may be assumed. So the window keeps a fence: the highest log index
//! at which an ID it has forgotten had been applied. A proposal says above which index
//! every entry carrying it lands (`Proposal::lands_above`, the proposer's applied index
//! when it made it); if the fence is above that, its first attempt may have been applied
//! and forgotten ([`Deduplicator::may_have_forgotten`]), and the state machine refuses it
//! rather than apply it a second time. The proposer then tells its client that the
//! outcome is unknown, as it would have without IDs. Only IDs whose proposals said where
//! they land are indexed and move the fence, so entries written before the fence existed
//! are treated alike by every member, whichever way it came by them (docs/safety.md,
//! "Request IDs").
//!
//! The window and its fence travel in snapshots, so a member restored from one
//! de-duplicates and refuses as the others do.
//!
//! Every write asks whether its ID was seen, and almost none was: that question is a plain
//! hash map's (one probe), beside the persistent window a snapshot copies in O(1). The map
//! is not in the copy; a member restored from a snapshot rebuilds it.

use crate::Response;
use foldhash::HashMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;

/// IDs remembered at most.
pub const MAX_IDS: usize = 100_000;
/// Approximate bytes of remembered responses at most (each counted by its JSON's length
/// plus a fixed overhead).
pub const MAX_BYTES: usize = 64 << 20;
/// What one remembered response costs besides its JSON: the ID in the window and the
/// index, the pointer and the allocation's header.
const OVERHEAD: usize = 64;

/// Names one client request, whichever log entries carry it: the member that received it
/// and a number that member drew at random (64 bits: a clash within the window is as
/// likely as never).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub member: u64,
    pub nonce: u64,
}

/// One remembered ID: its first response as JSON, and the log index it was applied at if
/// its proposal said where it lands (only those move the fence).
#[derive(Clone, Debug)]
struct Remembered {
    id: RequestId,
    response: Arc<RawValue>,
    index: Option<u64>,
}

/// Written `[id, response]`, or `[id, response, index]` when indexed: the pairs are the
/// form snapshots had before the fence, and still read the same.
impl Serialize for Remembered {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let response: &RawValue = &self.response;
        match self.index {
            Some(index) => (self.id, response, index).serialize(serializer),
            None => (self.id, response).serialize(serializer),
        }
    }
}

/// Read as it is written; the response is taken as the JSON it is, not decoded.
impl<'de> Deserialize<'de> for Remembered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Remembered;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[request id, response] or [request id, response, log index]")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Remembered, A::Error> {
                let missing = |n| serde::de::Error::invalid_length(n, &self);
                let id = seq.next_element()?.ok_or_else(|| missing(0))?;
                let response: Box<RawValue> = seq.next_element()?.ok_or_else(|| missing(1))?;
                let index = seq.next_element()?;
                Ok(Remembered {
                    id,
                    response: response.into(),
                    index,
                })
            }
        }
        deserializer.deserialize_seq(Fields)
    }
}

/// The remembered IDs and their responses, oldest first: what a snapshot holds.
///
/// Persistent (`imbl`): the copy a snapshot takes under the state machine's lock is O(1)
/// however many IDs are remembered, and writes go on while the copy is serialised.
/// Responses sit behind an `Arc`, so the node copies a write makes copy pointers, not
/// responses, and a snapshot writes their JSON as it is. Written as a JSON list of
/// [`Remembered`] (JSON maps cannot have structured keys).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Window(imbl::Vector<Remembered>);

/// The responses of the most recent IDs, in the order they were first applied.
#[derive(Debug, Default)]
pub struct Deduplicator {
    window: Window,
    /// Where each remembered ID sits in the window, counted from the first ID this
    /// deduplicator ever remembered: `window[position - forgotten]`.
    index: HashMap<RequestId, u64>,
    /// How many IDs have left the front of the window.
    forgotten: u64,
    bytes: usize,
    /// The highest log index at which a forgotten ID had been applied (indexed IDs only):
    /// a proposal that may have landed at or below it may have been forgotten.
    fence: u64,
}

impl Deduplicator {
    /// Remembers a snapshot's window and fence again, in its order and within the bounds.
    pub fn restore(window: Window, fence: u64) -> Self {
        let mut d = Deduplicator::default();
        for remembered in window.0 {
            d.insert(remembered);
        }
        d.fence = d.fence.max(fence);
        d
    }

    /// The window as a snapshot holds it: a copy in O(1).
    pub fn window(&self) -> Window {
        self.window.clone()
    }

    /// The fence as a snapshot holds it.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// The response `id` got when it was first applied, if it is remembered.
    pub fn seen(&self, id: &RequestId) -> Option<Response> {
        let remembered = &self.window.0[self.slot(id)?];
        Some(
            serde_json::from_str(remembered.response.get())
                .expect("a remembered response is JSON written from a Response"),
        )
    }

    /// Whether a proposal whose ID is not remembered may have been applied and forgotten:
    /// every entry carrying it lands above `lands_above`, and an ID applied above that was
    /// forgotten, which may have been its first attempt. A proposal that does not say
    /// where it lands (written before the fence) is taken as new, as it always was.
    pub fn may_have_forgotten(&self, lands_above: Option<u64>) -> bool {
        lands_above.is_some_and(|floor| self.fence > floor)
    }

    /// Remembers `response` as `id`'s, applied at log index `index` (`None` for a proposal
    /// that did not say where it lands), forgetting the oldest IDs past the bounds. What a
    /// retry needs is the client's answer: it publishes nothing, so the events a v3 write
    /// sent v2 watchers (each with the key's value) are left out, for the moment it takes
    /// to encode the rest.
    pub fn remember(&mut self, id: RequestId, index: Option<u64>, response: &mut Response) {
        let published = response.v2_events_mut().map(std::mem::take);
        // Every snapshot writes responses as JSON: one that could not be would fail there.
        let json =
            serde_json::value::to_raw_value(response).expect("a response serialises to JSON");
        if let (Some(events), Some(slot)) = (published, response.v2_events_mut()) {
            *slot = events;
        }
        self.insert(Remembered {
            id,
            response: json.into(),
            index,
        });
    }

    /// Where `id` sits in the window, if it is remembered.
    fn slot(&self, id: &RequestId) -> Option<usize> {
        let position = self.index.get(id)?;
        Some((position - self.forgotten) as usize)
    }

    /// Remembers one ID's response, forgetting the oldest IDs past the bounds and moving
    /// the fence past each indexed one forgotten.
    fn insert(&mut self, remembered: Remembered) {
        self.bytes += cost(&remembered.response);
        if let Some(slot) = self.slot(&remembered.id) {
            let replaced = self.window.0.set(slot, remembered);
            self.bytes -= cost(&replaced.response);
        } else {
            let position = self.forgotten + self.window.0.len() as u64;
            self.index.insert(remembered.id, position);
            self.window.0.push_back(remembered);
        }
        while self.len() > MAX_IDS || (self.bytes > MAX_BYTES && self.len() > 1) {
            let Some(oldest) = self.window.0.pop_front() else {
                break;
            };
            self.forgotten += 1;
            self.index.remove(&oldest.id);
            self.bytes -= cost(&oldest.response);
            if let Some(index) = oldest.index {
                self.fence = self.fence.max(index);
            }
        }
    }

    /// How many IDs are remembered.
    pub fn len(&self) -> usize {
        self.window.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.window.0.is_empty()
    }
}

/// What remembering one response costs, as the bounds count it.
fn cost(json: &RawValue) -> usize {
    OVERHEAD + json.get().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Proposal, Request};

    fn id(nonce: u64) -> RequestId {
        RequestId { member: 1, nonce }
    }

    #[test]
    fn the_oldest_ids_are_forgotten_first() {
        let mut d = Deduplicator::default();
        let mut response = Response::Expired(Vec::new());
        for n in 0..(MAX_IDS as u64 + 10) {
            d.remember(id(n), None, &mut response);
        }
        assert_eq!(d.len(), MAX_IDS);
        assert!(d.seen(&id(9)).is_none());
        assert!(d.seen(&id(10)).is_some());
        assert!(d.seen(&id(MAX_IDS as u64 + 9)).is_some());
    }

    #[test]
    fn a_retry_is_answered_without_the_events_v2_watchers_were_sent() {
        use crate::v3::V3Write;
        use crate::{Outcome, StateMachine};
        use musubi_proto::etcdserverpb::PutRequest;
        let write = V3Write::Put(PutRequest {
            key: b"/k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        });
        let proposal = Proposal {
            id: Some(id(1)),
            lands_above: Some(0),
            request: Request::V3 { write, now_ms: 0 },
        };
        let mut sm = StateMachine::new();
        let Outcome::Applied(Response::V3 { result, v2_events }) = sm.apply_proposal(&proposal, 1)
        else {
            panic!("a first attempt is applied");
        };
        assert_eq!(v2_events.len(), 1, "a v3 put of a v2 path is a v2 event");
        let Outcome::Repeated(Response::V3 {
            result: again,
            v2_events,
        }) = sm.apply_proposal(&proposal, 2)
        else {
            panic!("a retry is not applied");
        };
        assert_eq!(again, result);
        assert!(v2_events.is_empty());
    }

    #[test]
    fn the_window_survives_a_snapshot_in_order() {
        let mut d = Deduplicator::default();
        for n in 0..5 {
            let index = (n % 2 == 0).then_some(n + 100);
            d.remember(id(n), index, &mut Response::Expired(Vec::new()));
        }
        let written = serde_json::to_vec(&d.window()).unwrap();
        let restored = Deduplicator::restore(serde_json::from_slice(&written).unwrap(), 7);
        assert_eq!(serde_json::to_vec(&restored.window()).unwrap(), written);
        assert_eq!(restored.bytes, d.bytes);
        assert_eq!(restored.fence(), 7);
        assert!(restored.seen(&id(4)).is_some());
        // Pairs are IDs from before the fence, as every snapshot before it wrote them.
        let text = String::from_utf8(written).unwrap();
        assert!(text.starts_with(r#"[[{"member":1,"nonce":0},{"Expired":[]},100],[{"member":1,"nonce":1},{"Expired":[]}],"#), "{text}");
    }

    /// Every ID applied at 1, 2, ...: the fence is the index of the newest one forgotten,
    /// and only a proposal landing above it is known not to have been.
    #[test]
    fn the_fence_is_the_newest_forgotten_index() {
        let mut d = Deduplicator::default();
        let mut response = Response::Expired(Vec::new());
        for n in 1..=(MAX_IDS as u64 + 10) {
            d.remember(id(n), Some(n), &mut response);
        }
        assert_eq!(d.fence(), 10);
        assert!(d.may_have_forgotten(Some(9)));
        assert!(!d.may_have_forgotten(Some(10)));
        assert!(
            !d.may_have_forgotten(None),
            "an entry from before the fence"
        );
        // IDs from before the fence move it not at all when they go.
        let mut legacy = Deduplicator::default();
        for n in 1..=(MAX_IDS as u64 + 10) {
            legacy.remember(id(n), None, &mut response);
        }
        assert_eq!(legacy.fence(), 0);
    }

    /// A put whose reply was lost, a later put of the same key, a window's worth of other
    /// writes, then the retry: its first attempt is forgotten, so it is refused, and the
    /// later put stands. A member restored from a snapshot refuses it too.
    #[test]
    fn a_retry_whose_first_attempt_was_forgotten_is_refused() {
        use crate::v3::V3Write;
        use crate::{Outcome, StateMachine};
        use musubi_proto::etcdserverpb::PutRequest;
        let put = |nonce, value: &str, lands_above| Proposal {
            id: Some(id(nonce)),
            lands_above: Some(lands_above),
            request: Request::V3 {
                write: V3Write::Put(PutRequest {
                    key: b"k".to_vec(),
                    value: value.into(),
                    ..Default::default()
                }),
                now_ms: 0,
            },
        };
        let mut sm = StateMachine::new();
        let first = put(0, "first", 0);
        assert!(matches!(sm.apply_proposal(&first, 1), Outcome::Applied(_)));
        assert!(matches!(
            sm.apply_proposal(&put(1, "later", 1), 2),
            Outcome::Applied(_)
        ));
        let mut index = 2;
        for n in 2..=(MAX_IDS as u64 + 1) {
            index += 1;
            let other = Proposal {
                id: Some(id(n)),
                lands_above: Some(index - 1),
                request: Request::Expire { now_ms: 0 },
            };
            assert!(matches!(
                sm.apply_proposal(&other, index),
                Outcome::Applied(_)
            ));
        }
        let revision = sm.revision();
        let restored = StateMachine::from_snapshot(&sm.to_snapshot()).unwrap();
        for mut member in [sm, restored] {
            assert_eq!(member.apply_proposal(&first, index + 1), Outcome::Refused);
            assert_eq!(member.revision(), revision, "a refusal changes nothing");
            let kv = member.keyspace().get(b"k").unwrap();
            assert_eq!(kv.value(), Some(&b"later"[..]));
        }
    }

    /// Snapshots from before the fence (format 2: pairs only, no fence) still restore.
    #[test]
    fn a_snapshot_from_before_the_fence_restores() {
        let mut sm = crate::StateMachine::new();
        sm.apply_proposal(
            &Proposal {
                id: Some(id(1)),
                lands_above: None,
                request: Request::Expire { now_ms: 0 },
            },
            1,
        );
        let now = String::from_utf8(sm.to_snapshot()).unwrap();
        let before = now
            .replace(r#""format":4"#, r#""format":2"#)
            .replace(r#","request_fence":0"#, "");
        assert_ne!(before, now);
        let restored = crate::StateMachine::from_snapshot(before.as_bytes()).unwrap();
        assert_eq!(restored.to_snapshot(), now.as_bytes());
        let later = now.replace(r#""format":4"#, r#""format":5"#);
        assert!(crate::StateMachine::from_snapshot(later.as_bytes()).is_err());
    }
}
