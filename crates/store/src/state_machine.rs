//! The state machine: requests applied to the keyspace in log order, snapshots of it,
//! and the reads served from it.

use crate::Proposal;
use crate::alarm::Alarms;
use crate::dedup::{Deduplicator, Window};
use crate::entry::Entry;
use crate::keyspace::Keyspace;
use crate::removed::RemovedMembers;
use crate::tree;
use crate::v3::auth::AuthV3;
use crate::v3::{Leases, V3Error, V3Response};
use crate::{Action, AuthError, AuthOutcome, AuthState, Event, Request, V2Error, V2Op};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// What applying one request produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    V2(Result<Event, V2Error>),
    /// The expire events of one SYNC, in index order.
    Expired(Vec<Event>),
    Auth(Result<AuthOutcome, AuthError>),
    /// A v3 write's response, and the events v2 watchers see of it.
    V3 {
        result: Result<V3Response, V3Error>,
        v2_events: Vec<Event>,
    },
    /// Not applied: its first attempt may have been applied and forgotten (`dedup`'s
    /// fence), so nothing changed and the outcome is the first attempt's, unknown.
    Refused,
}

impl Response {
    /// The events a v3 write sends v2 watchers; `None` for every other response.
    pub(crate) fn v2_events_mut(&mut self) -> Option<&mut Vec<Event>> {
        match self {
            Response::V3 { v2_events, .. } => Some(v2_events),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("snapshot is unreadable: {0}")]
pub struct SnapshotError(#[from] serde_json::Error);

/// etcd's `/v2/stats/store` counters. Write counters are replicated state (every member
/// counts the same); read counters are this member's own.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StoreStats {
    pub gets_success: AtomicU64,
    pub gets_fail: AtomicU64,
    pub sets_success: u64,
    pub sets_fail: u64,
    pub delete_success: u64,
    pub delete_fail: u64,
    pub update_success: u64,
    pub update_fail: u64,
    pub create_success: u64,
    pub create_fail: u64,
    pub compare_and_swap_success: u64,
    pub compare_and_swap_fail: u64,
    pub compare_and_delete_success: u64,
    pub compare_and_delete_fail: u64,
    pub expire_count: u64,
}

impl Clone for StoreStats {
    fn clone(&self) -> Self {
        let load = |a: &AtomicU64| AtomicU64::new(a.load(Ordering::Relaxed));
        StoreStats {
            gets_success: load(&self.gets_success),
            gets_fail: load(&self.gets_fail),
            ..*self
        }
    }
}

#[derive(Debug, Default)]
pub struct StateMachine {
    pub(crate) keyspace: Keyspace,
    pub(crate) leases: Leases,
    pub(crate) alarms: Alarms,
    /// The clock of the request being applied (the proposer's), which fixes the `ttl`
    /// its events report. Not state: every request sets it before it is used.
    pub(crate) now_ms: u64,
    stats: StoreStats,
    auth: AuthState,
    /// v3 auth: apart from v2's, as in etcd 3.4 (`v3::auth`).
    pub(crate) auth_v3: AuthV3,
    /// The responses of recently applied request IDs (`dedup`).
    requests: Deduplicator,
    /// Members removed from the cluster (`removed`).
    removed: RemovedMembers,
}

/// Whether applying a proposal changed anything.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// First seen: applied, and this is its response.
    Applied(Response),
    /// Its ID was applied before: nothing changed, and this is the first response.
    Repeated(Response),
    /// Its ID may have been applied before and forgotten: nothing changed.
    Refused,
}

impl Outcome {
    pub fn into_response(self) -> Response {
        match self {
            Outcome::Applied(r) | Outcome::Repeated(r) => r,
            Outcome::Refused => Response::Refused,
        }
    }
}

/// The whole replicated state, as a snapshot holds it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Frozen {
    /// Bumped when the layout changes, so an older snapshot is refused, not misread.
    format: u32,
    keyspace: Keyspace,
    leases: Leases,
    stats: StoreStats,
    auth: AuthState,
    /// Absent from snapshots taken before v3 auth: off, no users.
    #[serde(default)]
    auth_v3: AuthV3,
    requests: Window,
    /// The request window's fence (`dedup`); format 2 predates it: none.
    #[serde(default)]
    request_fence: u64,
    /// Absent from snapshots taken before alarms: none active.
    #[serde(default)]
    alarms: Alarms,
    /// Absent from snapshots taken before removals were kept: none known.
    #[serde(default)]
    removed: RemovedMembers,
}

/// The snapshot layout: 4 leaves out a history entry the reader has already (`keyspace`'s
/// `Slot`), 3 adds the request window's fence and indexed IDs, 2 is the MVCC keyspace (1,
/// never marked, was the v2 tree). 2 and 3 still read as they were (2: no fence, no indexed
/// IDs); a binary from before 3 refuses a 3 rather than restore a window without its fence
/// and apply what the others refuse, and one from before 4 refuses a 4 rather than read a
/// left-out entry as none.
const SNAPSHOT_FORMAT: u32 = 4;
/// The oldest layout this binary restores.
const OLDEST_SNAPSHOT_FORMAT: u32 = 2;

impl Frozen {
    /// Serialises the state (off the state machine's lock: this is a copy).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out)
            .expect("the state always serializes into memory");
        out
    }

    /// Serialises the state into `out` as it goes (a snapshot file, so that the snapshot is
    /// never whole in memory; a backup file after its header). Fails only as `out` does.
    pub fn write_to(&self, out: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(out, self).map_err(std::io::Error::from)
    }

    pub(crate) fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    pub(crate) fn leases(&self) -> &Leases {
        &self.leases
    }

    pub(crate) fn alarms(&self) -> &Alarms {
        &self.alarms
    }
}

impl StateMachine {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current revision, which v2 reports as its index.
    pub fn index(&self) -> u64 {
        self.keyspace.revision() as u64
    }

    pub fn revision(&self) -> i64 {
        self.keyspace.revision()
    }

    /// Reads and watches below this revision are refused (0: never compacted).
    pub fn compacted(&self) -> i64 {
        self.keyspace.compacted()
    }

    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The active alarms (etcd's alarm store).
    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    /// Members removed from the cluster, ever.
    pub fn removed_members(&self) -> &RemovedMembers {
        &self.removed
    }

    /// Applies a membership entry's removals: the members in `before` not in `after`.
    /// Deterministic like `apply`: every member applies the same membership entries.
    pub fn record_membership(
        &mut self,
        before: impl IntoIterator<Item = u64>,
        after: &std::collections::BTreeSet<u64>,
    ) {
        self.removed.record(before, after);
    }

    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Number of keys and directories held.
    pub fn len(&self) -> usize {
        self.keyspace.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keyspace.len() == 0
    }

    /// When the earliest v2 TTL runs out (Unix ms), so the leader knows when to propose SYNC.
    pub fn next_expiry(&self) -> Option<u64> {
        self.keyspace.next_expiry()
    }

    /// A copy of the replicated state: O(1) for the keyspace and leases (persistent
    /// maps), so the caller can serialise it after releasing the lock.
    pub fn freeze(&self) -> Frozen {
        Frozen {
            format: SNAPSHOT_FORMAT,
            keyspace: self.keyspace.clone(),
            leases: self.leases.clone(),
            stats: self.stats.clone(),
            auth: self.auth.clone(),
            auth_v3: self.auth_v3.clone(),
            requests: self.requests.window(),
            request_fence: self.requests.fence(),
            alarms: self.alarms.clone(),
            removed: self.removed.clone(),
        }
    }

    pub fn to_snapshot(&self) -> Vec<u8> {
        self.freeze().to_bytes()
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let data: Frozen = serde_json::from_slice(bytes)?;
        let refuse = |why: String| Err(SnapshotError(serde::de::Error::custom(why)));
        if !(OLDEST_SNAPSHOT_FORMAT..=SNAPSHOT_FORMAT).contains(&data.format) {
            return refuse(format!(
                "snapshot format {} is not {OLDEST_SNAPSHOT_FORMAT} to {SNAPSHOT_FORMAT}",
                data.format
            ));
        }
        if !data.keyspace.is_consistent() {
            return refuse("the keyspace's history is out of order".into());
        }
        // The root is implicit, and v2 created every directory and file under a canonical
        // path. A snapshot from the peer port is as untrusted as a proposal.
        if let Some(key) = data
            .keyspace
            .iter()
            .find(|e| (e.dir() || e.key().is_empty()) && !tree::is_v2_path(e.key()))
            .map(Entry::key)
        {
            return refuse(format!(
                "the keyspace holds a directory that is not a canonical path: {key:?}"
            ));
        }
        Ok(StateMachine {
            keyspace: data.keyspace.restored(),
            leases: data.leases,
            alarms: data.alarms,
            now_ms: 0,
            stats: data.stats,
            auth: data.auth,
            auth_v3: data.auth_v3,
            requests: Deduplicator::restore(data.requests, data.request_fence),
            removed: data.removed,
        })
    }

    /// A v2 GET at `now_ms`: the node, and for a directory its visible children.
    pub fn get(&self, key: &str, recursive: bool, now_ms: u64) -> Result<Event, V2Error> {
        let ks = &self.keyspace;
        let result = tree::lookup(ks, key, self.index()).map(|entry| {
            let mut node = tree::view(ks, key, entry, false, now_ms);
            if entry.dir() {
                node.nodes = tree::child_views(ks, key, recursive, now_ms);
            }
            Event {
                action: Action::Get,
                node,
                prev_node: None,
                etcd_index: self.index(),
                refresh: false,
            }
        });
        let counter = if result.is_ok() {
            &self.stats.gets_success
        } else {
            &self.stats.gets_fail
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Applies `proposal`, the entry at log index `index`, once per request ID: an ID
    /// applied before (a retried write whose first attempt was committed after all)
    /// changes nothing and gets its first response, and one that may have been applied
    /// and forgotten since is refused (`dedup`).
    pub fn apply_proposal(&mut self, proposal: &Proposal, index: u64) -> Outcome {
        let Some(id) = proposal.id else {
            return Outcome::Applied(self.apply(&proposal.request));
        };
        if let Some(first) = self.requests.seen(&id) {
            return Outcome::Repeated(first);
        }
        if self.requests.may_have_forgotten(proposal.lands_above) {
            return Outcome::Refused;
        }
        let mut response = self.apply(&proposal.request);
        // Indexed only if the proposal says where it lands: an entry from before the
        // fence is treated alike whether a member replayed it or restored it.
        let indexed = proposal.lands_above.map(|_| index);
        self.requests.remember(id, indexed, &mut response);
        Outcome::Applied(response)
    }

    pub fn apply(&mut self, request: &Request) -> Response {
        match request {
            Request::V2 { op, now_ms } => {
                self.now_ms = *now_ms;
                let op = op.with_clean_key();
                let result = self.apply_v2(&op);
                self.count(&op, result.is_ok());
                Response::V2(result)
            }
            Request::Expire { now_ms } => {
                self.now_ms = *now_ms;
                Response::Expired(self.expire(*now_ms))
            }
            Request::Auth(op) => Response::Auth(self.auth.apply(op).map(|(outcome, writes)| {
                // etcd stores auth data in its v2 store: its writes move the index too.
                let revision = self.keyspace.revision() + writes as i64;
                self.keyspace.advance_to(revision);
                outcome
            })),
            Request::V3 { write, now_ms } => {
                self.now_ms = *now_ms;
                let (result, v2_events) = self.apply_v3(write);
                Response::V3 { result, v2_events }
            }
            Request::V3As {
                write,
                now_ms,
                auth_revision,
            } => {
                self.now_ms = *now_ms;
                if let Err(e) = self.auth_v3.check_revision(*auth_revision) {
                    let result = Err(e.into());
                    return Response::V3 {
                        result,
                        v2_events: Vec::new(),
                    };
                }
                let (result, v2_events) = self.apply_v3(write);
                Response::V3 { result, v2_events }
            }
        }
    }

    /// Users, roles and whether auth is on, for the server's checks and reads.
    pub fn auth(&self) -> &AuthState {
        &self.auth
    }

    fn expire(&mut self, now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(key) = self.keyspace.first_expired(now_ms) {
            let existing = self
                .keyspace
                .get(&key)
                .cloned()
                .expect("expiry queue only holds live keys");
            let path = key.to_text();
            events.push(self.remove(Action::Expire, &path, &existing));
            self.stats.expire_count += 1;
        }
        events
    }

    fn count(&mut self, op: &V2Op, ok: bool) {
        let s = &mut self.stats;
        let (success, fail) = match op {
            V2Op::Set { .. } => (&mut s.sets_success, &mut s.sets_fail),
            V2Op::Create { .. } => (&mut s.create_success, &mut s.create_fail),
            V2Op::Update { .. } => (&mut s.update_success, &mut s.update_fail),
            V2Op::CompareAndSwap { .. } => (
                &mut s.compare_and_swap_success,
                &mut s.compare_and_swap_fail,
            ),
            V2Op::Delete { .. } => (&mut s.delete_success, &mut s.delete_fail),
            V2Op::CompareAndDelete { .. } => (
                &mut s.compare_and_delete_success,
                &mut s.compare_and_delete_fail,
            ),
        };
        *(if ok { success } else { fail }) += 1;
    }
}
