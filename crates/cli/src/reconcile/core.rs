//! The reconciler's decisions, with no I/O: from the desired tree, the actual state, the
//! action records and the time, which differences there are, which action each one gets
//! (with its deterministic ID), and what a leader must do about each record: start it, re-run
//! it, park it, or mark it resolved. Everything the rim needs to decide is passed in, so the
//! same inputs always give the same plan (and the unit tests below can say so).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One entry of a tree, by its name under the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    /// The key's modification revision (v3) or modifiedIndex (v2): a new desired value is a
    /// new action, never a repeat of the old one.
    pub mod_rev: i64,
}

pub type Tree = BTreeMap<String, Entry>;

/// How a desired value is matched against the actual one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Matching {
    /// Key trees: the values must be equal.
    Exact,
    /// Agent members: the actual value is the live member's tags as a JSON object; the
    /// desired value (a JSON object, or empty) names the tags it must have.
    Tags,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// Desired, not there.
    Create,
    /// Desired and there, but different.
    Update,
    /// There, not desired.
    Delete,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
        }
    }
}

/// What identifies a difference across passes and leaders: the same verb on the same target
/// for the same desired revision is the same difference (0: nothing desired, a delete).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiffKey {
    pub verb: Verb,
    pub target: String,
    pub desired_rev: i64,
}

impl DiffKey {
    /// `<verb>:<target>:desired@<rev>`, then `:<seq>` when the same difference came back
    /// after it had been resolved, and `:a<attempt>` for a retry.
    pub fn action_id(&self, seq: u32, attempt: u32) -> String {
        let rev = if self.desired_rev > 0 {
            self.desired_rev.to_string()
        } else {
            "none".to_string()
        };
        let mut id = format!("{}:{}:desired@{}", self.verb.as_str(), self.target, rev);
        if seq > 1 {
            id.push_str(&format!(":{seq}"));
        }
        if attempt > 1 {
            id.push_str(&format!(":a{attempt}"));
        }
        id
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub key: DiffKey,
    pub desired: Option<String>,
    pub actual: Option<String>,
}

/// The differences between the desired tree and the actual state, in target order.
pub fn differences(
    desired: &Tree,
    actual: &BTreeMap<String, String>,
    matching: Matching,
) -> Vec<Difference> {
    let mut out = Vec::new();
    for (target, want) in desired {
        let have = actual.get(target);
        let verb = match have {
            None => Verb::Create,
            Some(have) if !matches(&want.value, have, matching) => Verb::Update,
            Some(_) => continue,
        };
        out.push(Difference {
            key: DiffKey {
                verb,
                target: target.clone(),
                desired_rev: want.mod_rev,
            },
            desired: Some(want.value.clone()),
            actual: have.cloned(),
        });
    }
    for (target, have) in actual {
        if !desired.contains_key(target) {
            out.push(Difference {
                key: DiffKey {
                    verb: Verb::Delete,
                    target: target.clone(),
                    desired_rev: 0,
                },
                desired: None,
                actual: Some(have.clone()),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

fn matches(desired: &str, actual: &str, matching: Matching) -> bool {
    match matching {
        Matching::Exact => desired == actual,
        Matching::Tags => {
            let want = parse_tags(desired);
            let have = parse_tags(actual);
            want.iter().all(|(k, v)| have.get(k) == Some(v))
        }
    }
}

/// Tags as a JSON object of strings; an empty value wants no particular tag. A value that
/// is not such an object matches nothing but itself, so a typo is a difference, not a pass.
fn parse_tags(value: &str) -> BTreeMap<String, String> {
    if value.trim().is_empty() {
        return BTreeMap::new();
    }
    serde_json::from_str(value)
        .unwrap_or_else(|_| BTreeMap::from([(String::new(), value.to_string())]))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Created before its handler ran; the handler may be running, or may have run.
    Started,
    /// The handler exited 0.
    Done,
    /// The handler exited 75 (EX_TEMPFAIL): another attempt after `retry_at`.
    Retry,
    /// The handler failed; another attempt only with `--idempotent`.
    Failed,
    /// Left started by a leader that is gone, its difference still there: whether it ran is
    /// unknown, so it is parked for an operator (`reconcile retry|forget`).
    Unknown,
    /// Its difference went away.
    Resolved,
}

/// An action record, as stored (JSON) under `actions/<id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub verb: Verb,
    pub target: String,
    pub desired_rev: i64,
    pub desired: Option<String>,
    pub actual: Option<String>,
    pub seq: u32,
    pub attempt: u32,
    pub state: State,
    /// The leader's fencing token when the record was last written.
    pub token: i64,
    /// The instance that wrote it last.
    pub instance: String,
    /// Milliseconds since the epoch: when it was last written.
    pub time_ms: u64,
    /// When a `retry` may be attempted again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_at_ms: u64,
    /// The handler's exit code, once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// Why the record is in its state, for `actions`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Record {
    pub fn key(&self) -> DiffKey {
        DiffKey {
            verb: self.verb,
            target: self.target.clone(),
            desired_rev: self.desired_rev,
        }
    }

    /// Parked: waiting for an operator, never re-run by itself.
    pub fn parked(&self, policy: &Policy) -> bool {
        match self.state {
            State::Unknown => true,
            State::Failed => !policy.idempotent || self.attempt >= policy.max_attempts,
            State::Retry => self.attempt >= policy.max_attempts,
            _ => false,
        }
    }
}

/// A stored record with the revision it was read at, for the compare-and-swap that changes it.
#[derive(Clone, Debug)]
pub struct Stored {
    pub record: Record,
    pub mod_rev: i64,
}

/// The run's settings that shape decisions.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Re-run an action whose outcome is unknown (same ID), and retry a failed one.
    pub idempotent: bool,
    pub max_attempts: u32,
    /// How long a difference must last before it is acted on.
    pub grace_ms: u64,
    /// Backoff after a handler's 75, doubled for each attempt.
    pub retry_backoff_ms: u64,
}

/// What the gates know this pass.
#[derive(Clone, Debug)]
pub struct Gates {
    /// The actual state's source has been watched long enough (`--fresh-after`) to trust its
    /// absences; until then nothing new starts.
    pub fresh: bool,
    /// Other instances' fresh views of the actual state (agent mode; empty otherwise). A
    /// difference counts only when most of them see the same actual value for its target.
    pub views: Vec<BTreeMap<String, String>>,
}

/// When each difference was first seen, by this leader: its grace clock.
#[derive(Clone, Debug, Default)]
pub struct Sightings {
    first_seen: HashMap<DiffKey, u64>,
}

impl Sightings {
    /// Record this pass's differences (forgetting those gone, so a flap restarts the clock)
    /// and return how long each has lasted.
    pub fn observe(&mut self, diffs: &[Difference], now_ms: u64) -> HashMap<DiffKey, u64> {
        let mut seen = HashMap::new();
        for diff in diffs {
            let first = *self.first_seen.get(&diff.key).unwrap_or(&now_ms);
            seen.insert(diff.key.clone(), first);
        }
        self.first_seen = seen;
        self.first_seen
            .iter()
            .map(|(key, first)| (key.clone(), now_ms.saturating_sub(*first)))
            .collect()
    }
}

/// One thing the leader does this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create this record (it must not exist) under the leader's token, then run the handler.
    Start(Record),
    /// Take over a record a gone leader left started (`--idempotent`): rewrite it under our
    /// token, same ID, then run the handler again.
    Rerun { record: Record, mod_rev: i64 },
    /// Rewrite the record in this state (compare-and-swap on `mod_rev`).
    Mark { record: Record, mod_rev: i64 },
}

/// The leader's plan for one pass. `token` and `instance` are the leader's; `ran` holds the
/// actions whose handler this leader started (a record it wrote `started` but never ran, as
/// when the write's reply was lost, is run now under the same ID: it cannot have run).
#[allow(clippy::too_many_arguments)]
pub fn plan(
    diffs: &[Difference],
    records: &[Stored],
    ran: &HashSet<String>,
    lasted_ms: &HashMap<DiffKey, u64>,
    gates: &Gates,
    policy: &Policy,
    leader: (&str, i64),
    now_ms: u64,
) -> Vec<Step> {
    let (instance, token) = leader;
    let latest = latest_by_key(records);
    let stamp = |mut record: Record, state: State, note: &str| {
        record.state = state;
        record.token = token;
        record.instance = instance.to_string();
        record.time_ms = now_ms;
        record.note = note.to_string();
        record
    };
    let mut steps = Vec::new();
    for diff in diffs {
        let fresh_start = |seq: u32, attempt: u32| {
            let record = Record {
                id: diff.key.action_id(seq, attempt),
                verb: diff.key.verb,
                target: diff.key.target.clone(),
                desired_rev: diff.key.desired_rev,
                desired: diff.desired.clone(),
                actual: diff.actual.clone(),
                seq,
                attempt,
                state: State::Started,
                token,
                instance: instance.to_string(),
                time_ms: now_ms,
                retry_at_ms: 0,
                exit: None,
                note: String::new(),
            };
            Step::Start(record)
        };
        let gated = !gates.fresh
            || lasted_ms.get(&diff.key).copied().unwrap_or(0) < policy.grace_ms
            || !views_agree(&gates.views, &diff.key.target, diff.actual.as_deref());
        match latest.get(&diff.key) {
            None if !gated => steps.push(fresh_start(1, 1)),
            Some(stored) => {
                let r = &stored.record;
                let mod_rev = stored.mod_rev;
                match r.state {
                    State::Started if r.token == token && ran.contains(&r.id) => {}
                    State::Started if r.token == token => steps.push(Step::Rerun {
                        record: stamp(r.clone(), State::Started, ""),
                        mod_rev,
                    }),
                    State::Started if !gates.fresh => {}
                    State::Started if policy.idempotent => steps.push(Step::Rerun {
                        record: stamp(r.clone(), State::Started, "re-run after a leader change"),
                        mod_rev,
                    }),
                    State::Started => steps.push(Step::Mark {
                        record: stamp(r.clone(), State::Unknown, "left started by a gone leader"),
                        mod_rev,
                    }),
                    State::Resolved if !gated => steps.push(fresh_start(r.seq + 1, 1)),
                    State::Retry if !r.parked(policy) && now_ms >= r.retry_at_ms && gates.fresh => {
                        steps.push(fresh_start(r.seq, r.attempt + 1))
                    }
                    State::Failed if !r.parked(policy) && !gated => {
                        steps.push(fresh_start(r.seq, r.attempt + 1))
                    }
                    _ => {}
                }
            }
            None => {}
        }
    }
    // Records whose difference is gone: resolved, so that if it comes back it is a new
    // action (`:<seq>`) rather than one refused as already done.
    let present: std::collections::HashSet<&DiffKey> = diffs.iter().map(|d| &d.key).collect();
    for (key, stored) in &latest {
        let r = &stored.record;
        let settled =
            r.state == State::Resolved || (r.state == State::Started && ran.contains(&r.id));
        if !present.contains(key) && !settled && gates.fresh {
            steps.push(Step::Mark {
                record: stamp(r.clone(), State::Resolved, "difference gone"),
                mod_rev: stored.mod_rev,
            });
        }
    }
    steps
}

/// The record that decides each difference: its latest sequence, then its latest attempt.
pub fn latest_by_key(records: &[Stored]) -> BTreeMap<DiffKey, &Stored> {
    let mut latest: BTreeMap<DiffKey, &Stored> = BTreeMap::new();
    for stored in records {
        let r = &stored.record;
        let entry = latest.entry(r.key()).or_insert(stored);
        if (r.seq, r.attempt) > (entry.record.seq, entry.record.attempt) {
            *entry = stored;
        }
    }
    latest
}

/// Most of the fresh views see the target as we do (no views: key-tree mode, nothing to
/// compare). A member that only we cannot reach is a partition, not a failure.
fn views_agree(views: &[BTreeMap<String, String>], target: &str, actual: Option<&str>) -> bool {
    if views.is_empty() {
        return true;
    }
    let agree = views
        .iter()
        .filter(|view| view.get(target).map(String::as_str) == actual)
        .count();
    agree * 2 > views.len()
}

/// The outcome of a handler run, as the record's next state.
pub fn finish(mut record: Record, exit: i32, policy: &Policy, now_ms: u64) -> Record {
    record.exit = Some(exit);
    record.time_ms = now_ms;
    record.state = match exit {
        0 => State::Done,
        75 => {
            let doubling = 1u64 << record.attempt.saturating_sub(1).min(16);
            record.retry_at_ms = now_ms + policy.retry_backoff_ms.saturating_mul(doubling);
            State::Retry
        }
        _ => State::Failed,
    };
    record.note = match exit {
        0 => String::new(),
        75 => "handler asked for a retry (75)".to_string(),
        n => format!("handler exited {n}"),
    };
    record
}

/// The counts `status` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Differences with no action under way (gated, waiting, or about to start).
    pub pending: usize,
    pub started: usize,
    /// Parked: unknown outcome, or failed for good.
    pub parked: usize,
    /// Done, but the actual state does not show it yet.
    pub done_unconverged: usize,
}

pub fn summarize(diffs: &[Difference], records: &[Stored], policy: &Policy) -> Summary {
    let latest = latest_by_key(records);
    let mut summary = Summary::default();
    for diff in diffs {
        match latest.get(&diff.key).map(|s| &s.record) {
            Some(r) if r.parked(policy) => summary.parked += 1,
            Some(r) if r.state == State::Started => summary.started += 1,
            Some(r) if r.state == State::Done => summary.done_unconverged += 1,
            _ => summary.pending += 1,
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, &str, i64)]) -> Tree {
        entries
            .iter()
            .map(|(k, v, r)| {
                (
                    k.to_string(),
                    Entry {
                        value: v.to_string(),
                        mod_rev: *r,
                    },
                )
            })
            .collect()
    }

    fn actual(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn none() -> HashSet<String> {
        HashSet::new()
    }

    fn policy() -> Policy {
        Policy {
            idempotent: false,
            max_attempts: 3,
            grace_ms: 1000,
            retry_backoff_ms: 500,
        }
    }

    fn open() -> Gates {
        Gates {
            fresh: true,
            views: Vec::new(),
        }
    }

    fn lasted(diffs: &[Difference], ms: u64) -> HashMap<DiffKey, u64> {
        diffs.iter().map(|d| (d.key.clone(), ms)).collect()
    }

    /// A first plan, every difference past its grace, where only `gates` can hold it back.
    fn gated_plan(diffs: &[Difference], gates: &Gates) -> Vec<Step> {
        plan(
            diffs,
            &[],
            &none(),
            &lasted(diffs, 60_000),
            gates,
            &policy(),
            ("i", 1),
            0,
        )
    }

    fn started(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Start(r) => Some(r.id.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn differences_and_their_ids() {
        let desired = tree(&[("a", "1", 5), ("b", "2", 6), ("c", "3", 7)]);
        let have = actual(&[("a", "1"), ("b", "x"), ("d", "4")]);
        let diffs = differences(&desired, &have, Matching::Exact);
        let ids: Vec<String> = diffs.iter().map(|d| d.key.action_id(1, 1)).collect();
        assert_eq!(
            ids,
            [
                "create:c:desired@7",
                "update:b:desired@6",
                "delete:d:desired@none"
            ]
        );
        assert_eq!(diffs[0].key.action_id(2, 3), "create:c:desired@7:2:a3");
    }

    #[test]
    fn tags_match_as_a_subset() {
        let desired = tree(&[
            ("n1", r#"{"role":"web"}"#, 3),
            ("n2", "", 4),
            ("n3", "{}", 5),
        ]);
        let have = actual(&[("n1", r#"{"dc":"x","role":"web"}"#), ("n2", "{}")]);
        let diffs = differences(&desired, &have, Matching::Tags);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].key.verb, Verb::Create);
        assert_eq!(diffs[0].key.target, "n3");
    }

    #[test]
    fn grace_holds_back_a_new_difference_and_a_flap_restarts_its_clock() {
        let desired = tree(&[("a", "1", 5)]);
        let diffs = differences(&desired, &BTreeMap::new(), Matching::Exact);
        let mut sightings = Sightings::default();
        let seen = sightings.observe(&diffs, 10_000);
        assert!(
            plan(
                &diffs,
                &[],
                &none(),
                &seen,
                &open(),
                &policy(),
                ("i1", 9),
                10_000
            )
            .is_empty()
        );
        sightings.observe(&[], 10_500);
        let seen = sightings.observe(&diffs, 10_900);
        assert!(
            plan(
                &diffs,
                &[],
                &none(),
                &seen,
                &open(),
                &policy(),
                ("i1", 9),
                10_900
            )
            .is_empty()
        );
        let seen = sightings.observe(&diffs, 11_900);
        let steps = plan(
            &diffs,
            &[],
            &none(),
            &seen,
            &open(),
            &policy(),
            ("i1", 9),
            11_900,
        );
        assert_eq!(started(&steps), ["create:a:desired@5"]);
    }

    #[test]
    fn not_fresh_starts_nothing() {
        let diffs = differences(&tree(&[("a", "1", 5)]), &BTreeMap::new(), Matching::Exact);
        let gates = Gates {
            fresh: false,
            views: Vec::new(),
        };
        assert!(gated_plan(&diffs, &gates).is_empty());
    }

    #[test]
    fn views_that_disagree_start_nothing() {
        let diffs = differences(&tree(&[("n1", "", 5)]), &BTreeMap::new(), Matching::Tags);
        let alive = actual(&[("n1", "{}")]);
        let gates = Gates {
            fresh: true,
            views: vec![BTreeMap::new(), alive.clone(), alive],
        };
        assert!(gated_plan(&diffs, &gates).is_empty());
        let gates = Gates {
            fresh: true,
            views: vec![BTreeMap::new(), BTreeMap::new(), actual(&[("n1", "{}")])],
        };
        let steps = gated_plan(&diffs, &gates);
        assert_eq!(started(&steps), ["create:n1:desired@5"]);
    }

    fn stored_from(step: &Step, state: State, mod_rev: i64) -> Stored {
        let mut record = match step {
            Step::Start(r) => r.clone(),
            Step::Rerun { record, .. } | Step::Mark { record, .. } => record.clone(),
        };
        record.state = state;
        Stored { record, mod_rev }
    }

    #[test]
    fn a_takeover_parks_or_reruns_the_same_id_and_resolves_what_is_gone() {
        let diffs = differences(
            &tree(&[("a", "1", 5), ("b", "2", 6)]),
            &BTreeMap::new(),
            Matching::Exact,
        );
        let long = lasted(&diffs, 60_000);
        let first = plan(
            &diffs,
            &[],
            &none(),
            &long,
            &open(),
            &policy(),
            ("old", 7),
            0,
        );
        assert_eq!(first.len(), 2);
        let records: Vec<Stored> = first
            .iter()
            .map(|s| stored_from(s, State::Started, 20))
            .collect();
        // Same leader: in flight, nothing to do; written but never run (a lost reply): run.
        let ran: HashSet<String> = records.iter().map(|s| s.record.id.clone()).collect();
        assert!(
            plan(
                &diffs,
                &records,
                &ran,
                &long,
                &open(),
                &policy(),
                ("old", 7),
                0
            )
            .is_empty()
        );
        let steps = plan(
            &diffs,
            &records,
            &none(),
            &long,
            &open(),
            &policy(),
            ("old", 7),
            0,
        );
        assert!(
            matches!(&steps[0], Step::Rerun { record, .. } if record.id == "create:a:desired@5")
        );
        // New leader, "a" still differs, "b" converged meanwhile.
        let now_diffs = vec![diffs[0].clone()];
        let steps = plan(
            &now_diffs,
            &records,
            &none(),
            &long,
            &open(),
            &policy(),
            ("new", 9),
            0,
        );
        assert_eq!(steps.len(), 2);
        match &steps[0] {
            Step::Mark { record, mod_rev } => {
                assert_eq!(record.state, State::Unknown);
                assert_eq!(record.id, "create:a:desired@5");
                assert_eq!(*mod_rev, 20);
            }
            other => panic!("{other:?}"),
        }
        match &steps[1] {
            Step::Mark { record, .. } => assert_eq!(
                (record.id.as_str(), record.state),
                ("create:b:desired@6", State::Resolved)
            ),
            other => panic!("{other:?}"),
        }
        let idempotent = Policy {
            idempotent: true,
            ..policy()
        };
        let steps = plan(
            &now_diffs,
            &records,
            &none(),
            &long,
            &open(),
            &idempotent,
            ("new", 9),
            0,
        );
        match &steps[0] {
            Step::Rerun { record, .. } => {
                assert_eq!(
                    (record.id.as_str(), record.token),
                    ("create:a:desired@5", 9)
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parked_stays_parked_and_a_resolved_difference_that_returns_is_a_new_action() {
        let diffs = differences(&tree(&[("a", "1", 5)]), &BTreeMap::new(), Matching::Exact);
        let long = lasted(&diffs, 60_000);
        let first = plan(&diffs, &[], &none(), &long, &open(), &policy(), ("i", 7), 0);
        let unknown = vec![stored_from(&first[0], State::Unknown, 3)];
        assert!(
            plan(
                &diffs,
                &unknown,
                &none(),
                &long,
                &open(),
                &policy(),
                ("i", 7),
                0
            )
            .is_empty()
        );
        assert_eq!(summarize(&diffs, &unknown, &policy()).parked, 1);
        let resolved = vec![stored_from(&first[0], State::Resolved, 3)];
        let steps = plan(
            &diffs,
            &resolved,
            &none(),
            &long,
            &open(),
            &policy(),
            ("i", 7),
            0,
        );
        assert_eq!(started(&steps), ["create:a:desired@5:2"]);
    }

    #[test]
    fn retries_take_the_next_attempt_id_after_the_backoff() {
        let diffs = differences(&tree(&[("a", "1", 5)]), &BTreeMap::new(), Matching::Exact);
        let long = lasted(&diffs, 60_000);
        let first = plan(&diffs, &[], &none(), &long, &open(), &policy(), ("i", 7), 0);
        let Step::Start(record) = &first[0] else {
            panic!()
        };
        let retry = finish(record.clone(), 75, &policy(), 1_000);
        assert_eq!((retry.state, retry.retry_at_ms), (State::Retry, 1_500));
        let records = vec![Stored {
            record: retry,
            mod_rev: 4,
        }];
        assert!(
            plan(
                &diffs,
                &records,
                &none(),
                &long,
                &open(),
                &policy(),
                ("i", 7),
                1_200
            )
            .is_empty()
        );
        let steps = plan(
            &diffs,
            &records,
            &none(),
            &long,
            &open(),
            &policy(),
            ("i", 7),
            1_500,
        );
        assert_eq!(started(&steps), ["create:a:desired@5:a2"]);
        let failed = vec![Stored {
            record: finish(record.clone(), 1, &policy(), 0),
            mod_rev: 4,
        }];
        assert!(
            plan(
                &diffs,
                &failed,
                &none(),
                &long,
                &open(),
                &policy(),
                ("i", 7),
                0
            )
            .is_empty()
        );
        let idempotent = Policy {
            idempotent: true,
            ..policy()
        };
        let steps = plan(
            &diffs,
            &failed,
            &none(),
            &long,
            &open(),
            &idempotent,
            ("i", 7),
            0,
        );
        assert_eq!(started(&steps), ["create:a:desired@5:a2"]);
    }
}
