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
//! included) cost several times as much per ID, 60 MB of a full window. A retry is only
//! safe while its ID is remembered; the proposer retries for three election timeouts at
//! most, inside the window up to about 33,000 writes a second, which one member nears at
//! its peak (docs/safety.md, "Request IDs", says how to close that gap).
//! The window travels in snapshots, so a member restored from one de-duplicates too.
//!
//! Every write asks whether its ID was seen, and almost none was: that question is a plain
//! hash map's (one probe), beside the persistent window a snapshot copies in O(1). The map
//! is not in the copy; a member restored from a snapshot rebuilds it.

use crate::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
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

/// The remembered IDs and their responses, oldest first: what a snapshot holds.
///
/// Persistent (`imbl`): the copy a snapshot takes under the state machine's lock is O(1)
/// however many IDs are remembered, and writes go on while the copy is serialised.
/// Responses sit behind an `Arc`, so the node copies a write makes copy pointers, not
/// responses, and a snapshot writes their JSON as it is. Written as a JSON list of
/// `[id, response]` pairs (JSON maps cannot have structured keys).
#[derive(Clone, Debug, Default)]
pub struct Window(imbl::Vector<(RequestId, Arc<RawValue>)>);

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(id, response)| (id, &**response)))
    }
}

/// Read as it is written; the responses are taken as the JSON they are, not decoded.
impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(RequestId, Box<RawValue>)>::deserialize(deserializer)?;
        Ok(Window(
            pairs
                .into_iter()
                .map(|(id, json)| (id, json.into()))
                .collect(),
        ))
    }
}

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
}

impl From<Window> for Deduplicator {
    /// Remembers a snapshot's window again, in its order and within the bounds.
    fn from(window: Window) -> Self {
        let mut d = Deduplicator::default();
        for (id, json) in window.0 {
            d.remember_json(id, json);
        }
        d
    }
}

impl Deduplicator {
    /// The window as a snapshot holds it: a copy in O(1).
    pub fn window(&self) -> Window {
        self.window.clone()
    }

    /// The response `id` got when it was first applied, if it is remembered.
    pub fn seen(&self, id: &RequestId) -> Option<Response> {
        let (_, json) = &self.window.0[self.slot(id)?];
        Some(
            serde_json::from_str(json.get())
                .expect("a remembered response is JSON written from a Response"),
        )
    }

    /// Remembers `response` as `id`'s, forgetting the oldest IDs past the bounds. What a
    /// retry needs is the client's answer: it publishes nothing, so the events a v3 write
    /// sent v2 watchers (each with the key's value) are left out, for the moment it takes
    /// to encode the rest.
    pub fn remember(&mut self, id: RequestId, response: &mut Response) {
        let published = response.v2_events_mut().map(std::mem::take);
        // Every snapshot writes responses as JSON: one that could not be would fail there.
        let json =
            serde_json::value::to_raw_value(response).expect("a response serialises to JSON");
        if let (Some(events), Some(slot)) = (published, response.v2_events_mut()) {
            *slot = events;
        }
        self.remember_json(id, json.into());
    }

    /// Where `id` sits in the window, if it is remembered.
    fn slot(&self, id: &RequestId) -> Option<usize> {
        let position = self.index.get(id)?;
        Some((position - self.forgotten) as usize)
    }

    /// Remembers `json`, a response as JSON, as `id`'s, forgetting the oldest IDs past the
    /// bounds.
    fn remember_json(&mut self, id: RequestId, json: Arc<RawValue>) {
        self.bytes += cost(&json);
        if let Some(slot) = self.slot(&id) {
            let (_, replaced) = self.window.0.set(slot, (id, json));
            self.bytes -= cost(&replaced);
        } else {
            let position = self.forgotten + self.window.0.len() as u64;
            self.index.insert(id, position);
            self.window.0.push_back((id, json));
        }
        while self.len() > MAX_IDS || (self.bytes > MAX_BYTES && self.len() > 1) {
            let Some((oldest, json)) = self.window.0.pop_front() else {
                break;
            };
            self.forgotten += 1;
            self.index.remove(&oldest);
            self.bytes -= cost(&json);
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
            d.remember(id(n), &mut response);
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
            request: Request::V3 { write, now_ms: 0 },
        };
        let mut sm = StateMachine::new();
        let Outcome::Applied(Response::V3 { result, v2_events }) = sm.apply_proposal(&proposal)
        else {
            panic!("a first attempt is applied");
        };
        assert_eq!(v2_events.len(), 1, "a v3 put of a v2 path is a v2 event");
        let Outcome::Repeated(Response::V3 {
            result: again,
            v2_events,
        }) = sm.apply_proposal(&proposal)
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
            d.remember(id(n), &mut Response::Expired(Vec::new()));
        }
        let written = serde_json::to_vec(&d.window()).unwrap();
        let restored = Deduplicator::from(serde_json::from_slice::<Window>(&written).unwrap());
        assert_eq!(serde_json::to_vec(&restored.window()).unwrap(), written);
        assert_eq!(restored.bytes, d.bytes);
        assert!(restored.seen(&id(4)).is_some());
    }
}
