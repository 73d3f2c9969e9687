//! Writes and quorum reads from any member: the leader runs them, a follower forwards them
//! to the leader (`forward`), and with no leader in reach the caller learns at once which
//! members cannot be reached instead of waiting out its timeout.

use crate::forward::{self, SendError};
use crate::{Applied, Consensus, ConsensusError, Member, Payload};
use musubi_store::{Proposal, RequestId};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::{ChangeMembers, ReadPolicy};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long a probe waits for a peer to answer before it counts as unreachable.
pub(crate) const PING_TTL: Duration = Duration::from_millis(500);
/// How often a request waiting for a leader looks again.
const RETRY: Duration = Duration::from_millis(50);

/// What a forwarded request whose reply was lost means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfLost {
    /// Nothing changed (a read): ask again.
    Retry,
    /// A write with a request ID: the state machine applies an ID once, so asking again is
    /// safe, and the client gets the first answer.
    RetryDeduplicated,
    /// It may have been applied: tell the caller.
    Unknown,
}

/// How many times a write refused for proposing from too far behind is sent again, each
/// time as landing above the index it was refused at, before its caller hears that the
/// outcome is unknown.
const MAX_REFUSALS: u32 = 3;

/// Where a request must run.
enum Route {
    Here,
    Leader(Member),
}

impl Consensus {
    /// Proposes one request on the leader, wherever it is; resolves when it is committed
    /// (fsynced on a quorum) and applied on the leader and on this member, so a client that
    /// reads from the member it wrote to sees its write, as with etcd.
    ///
    /// The request gets an ID here, the member that received it, and keeps it across
    /// retries: a reply lost on the way back from the leader, or a leader that steps down
    /// after appending the entry, no longer leaves the outcome unknown; the write is sent
    /// again and the state machine applies it at most once (`musubi_store::Deduplicator`).
    /// It also says above which log index it lands, this member's applied index: should
    /// the state machine have forgotten an ID applied above that by the time a retry
    /// arrives, the retry is refused, and the outcome is unknown after all.
    pub async fn write(&self, req: musubi_store::Request) -> Result<Applied, ConsensusError> {
        // Shared, not copied, by every retry and by openraft's log and apply.
        let mut proposal = Arc::new(Payload::new(Proposal {
            id: Some(RequestId {
                member: self.node_id,
                nonce: rand::random(),
            }),
            lands_above: Some(self.state_machine.applied_index().unwrap_or(0)),
            request: req,
        }));
        let pending = &self.write_metrics.pending;
        pending.increment(1);
        let mut refusals = 0;
        let applied = loop {
            // Encoded only if it must travel to a leader elsewhere.
            let body = || encode(&*proposal);
            let attempt = self
                .on_leader(forward::PROPOSE, body, IfLost::RetryDeduplicated, || {
                    self.write_here(proposal.clone())
                })
                .await;
            match attempt {
                // Refused with no earlier attempt that could have been applied (else
                // `on_leader` says the outcome is unknown): this member proposed from too
                // far behind. Nothing was applied; it lands above `at` when sent again.
                Err(ConsensusError::Refused { at }) if refusals < MAX_REFUSALS => {
                    refusals += 1;
                    proposal = Arc::new(Payload::new(Proposal {
                        lands_above: Some(at),
                        ..Proposal::clone(&proposal)
                    }));
                }
                // Writes go by faster than it can be sent: say that it may have been
                // applied, which is never wrong.
                Err(ConsensusError::Refused { .. }) => break Err(ConsensusError::OutcomeUnknown),
                attempt => break attempt,
            }
        };
        pending.decrement(1);
        let applied = applied.inspect_err(|_| self.write_metrics.failed.increment(1))?;
        self.applied_locally(applied.log_index).await?;
        Ok(applied)
    }

    /// Linearizable read barrier (ReadIndex): resolves when the local state machine has
    /// applied everything committed before the call. A follower asks the leader for its
    /// read index, then waits until it has applied that far itself. Reads that arrive
    /// together share one read index (`read_batch`).
    pub async fn linearizable_barrier(&self) -> Result<(), ConsensusError> {
        let this = self.clone();
        let fetch = move || {
            let this = this.clone();
            async move {
                // A read changes nothing, so a lost reply is just "try again".
                this.on_leader(
                    forward::READ_INDEX,
                    || Ok(Vec::new()),
                    IfLost::Retry,
                    || this.read_index_here(),
                )
                .await
            }
        };
        let index = self.read_batch.index(fetch).await?;
        self.applied_locally(index).await
    }

    /// Runs `here` if this member leads, else sends `body()` to `path` on the leader, looking
    /// for a new leader for as long as asking again cannot apply anything twice.
    pub(crate) async fn on_leader<T, B, F, Fut>(
        &self,
        path: &str,
        body: B,
        if_lost: IfLost,
        here: F,
    ) -> Result<T, ConsensusError>
    where
        T: DeserializeOwned,
        B: Fn() -> Result<Vec<u8>, ConsensusError>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ConsensusError>>,
    {
        let deadline = tokio::time::Instant::now() + self.leader_wait;
        // A healthy leader answers in milliseconds; one cut off without a reset (dropped
        // packets) or frozen would hold the request until the client gives up. Where asking
        // again is safe, ask the next leader after an election timeout.
        let attempt_ttl = match if_lost {
            IfLost::Retry | IfLost::RetryDeduplicated => self.election,
            IfLost::Unknown => self.leader_wait,
        };
        // The last leader that took a write without answering: past the deadline, the
        // caller must hear that the write may have been applied, and who is out of reach.
        let mut lost_at: Option<Member> = None;
        let mut maybe_applied = false;
        loop {
            let result = match self.route(deadline).await {
                Err(e) if lost_at.is_some() => {
                    tracing::debug!(error = %e, "no leader to retry a write with");
                    Err(ConsensusError::OutcomeUnknown)
                }
                Err(e) => return Err(e),
                Ok(Route::Here) => here().await,
                Ok(Route::Leader(leader)) => {
                    let body = body()?;
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    let ttl = attempt_ttl.min(left.max(RETRY));
                    // Boxed, as the other large futures on a write's way: see `write_here`.
                    match Box::pin(self.forwarder.call::<T>(&leader, path, body, ttl)).await {
                        Ok(reply) => reply.map_err(ConsensusError::from),
                        // Not sent: as if the leader were gone; look again.
                        Err(SendError::Unreachable(m)) => {
                            tracing::debug!(error = %m, "the leader is unreachable");
                            Err(ConsensusError::NotLeader { leader: None })
                        }
                        Err(SendError::Lost(m)) => match if_lost {
                            IfLost::Retry => Err(ConsensusError::NotLeader { leader: None }),
                            IfLost::RetryDeduplicated => {
                                tracing::debug!(error = %m, "a write forwarded to the leader lost its reply; sending it again");
                                lost_at = Some(leader);
                                Err(ConsensusError::OutcomeUnknown)
                            }
                            IfLost::Unknown => {
                                tracing::warn!(error = %m, "a request forwarded to the leader lost its reply");
                                Err(self.lost_at(&leader).await)
                            }
                        },
                    }
                }
            };
            let retry = match &result {
                // Nothing was proposed: safe to try the next leader.
                Err(ConsensusError::NotLeader { .. }) => true,
                // This attempt changed nothing, but an earlier one may have.
                Err(ConsensusError::Refused { .. }) if maybe_applied => {
                    return Err(ConsensusError::OutcomeUnknown);
                }
                // Proposed, perhaps applied: safe to send again only with a request ID.
                Err(ConsensusError::OutcomeUnknown) => {
                    maybe_applied = true;
                    if_lost == IfLost::RetryDeduplicated
                }
                _ => false,
            };
            if !retry {
                return result;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(match &lost_at {
                    Some(leader) => self.lost_at(leader).await,
                    None if maybe_applied => ConsensusError::OutcomeUnknown,
                    None => self.no_leader().await,
                });
            }
            tokio::time::sleep(RETRY).await
        }
    }

    /// Resolves once this member's state machine has applied `index`. On the leader, which
    /// answers only after applying, that is already so: ask the state machine before
    /// subscribing to openraft's metrics, which learn of the apply only later (a wait there
    /// cost every write a second wake-up).
    async fn applied_locally(&self, index: u64) -> Result<(), ConsensusError> {
        if self.state_machine.applied_index() >= Some(index) {
            return Ok(());
        }
        // Boxed: see `write_here`.
        Box::pin(
            self.raft
                .wait(None)
                .applied_index_at_least(Some(index), "entry applied locally"),
        )
        .await
        .map_err(|e| ConsensusError::Fatal(e.to_string()))?;
        Ok(())
    }

    /// Runs a proposal on this member, which must lead. A leader that has lost its quorum
    /// would accept the entry and never commit it; refuse instead, naming who is missing.
    pub(crate) async fn write_here(
        &self,
        proposal: Arc<Payload>,
    ) -> Result<Applied, ConsensusError> {
        self.check_quorum().await?;
        // On the heap, not inline: a future holds the futures it awaits, and every caller
        // up to the connection's task grows by their size, openraft's 1.5 KiB here. Each
        // level copies its whole future when it is made, and copies of 4-7 KiB futures
        // were an eighth of a v2 put's CPU (docs/benchmarks.md).
        let mut write = Box::pin(self.raft.client_write(proposal));
        // The quorum may go away after the check: look again every few election timeouts
        // rather than hang until the client gives up.
        let written = loop {
            match tokio::time::timeout(self.leader_wait, &mut write).await {
                Ok(written) => break written?,
                Err(_) => {
                    if let Err(ConsensusError::Unavailable(m)) = self.check_quorum().await {
                        return Err(ConsensusError::Unavailable(format!(
                            "{m}; the write is not committed, and may still be if they return"
                        )));
                    }
                }
            }
        };
        let log_index = written.log_id.index;
        if matches!(written.data, musubi_store::Response::Refused) {
            return Err(ConsensusError::Refused { at: log_index });
        }
        Ok(Applied {
            response: written.data,
            log_index,
            term: written.log_id.leader_id.term,
        })
    }

    /// The leader's ReadIndex: the index a reader must have applied to be linearizable.
    pub(crate) async fn read_index_here(&self) -> Result<u64, ConsensusError> {
        self.check_quorum().await?;
        let read = self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await?;
        Ok(read.index())
    }

    /// Records `member`'s URLs in the membership: a replicated, persisted membership entry
    /// that changes no voter, so every member reports the same URLs.
    pub(crate) async fn publish_here(&self, id: u64, member: Member) -> Result<(), ConsensusError> {
        self.raft
            .change_membership(
                ChangeMembers::SetNodes(BTreeMap::from([(id, member)])),
                true,
            )
            .await?;
        Ok(())
    }

    /// Publishes this member's name and client URLs until the membership shows them.
    /// `initialize` could not carry them (every member must initialize identically), and a
    /// replicated record is what a restarted or lagging member reads back.
    pub(crate) async fn publish(self, name: String, client_urls: Vec<String>) {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if self.raft.metrics().borrow_watched().running_state.is_err() {
                return;
            }
            // A member that joined learns its own record with the leader's first entries.
            let Some(recorded) = self.member(self.node_id) else {
                continue;
            };
            if recorded.name == name && recorded.client_urls == client_urls {
                tracing::info!(?client_urls, "published this member's client URLs");
                return;
            }
            let me = Member {
                name: name.clone(),
                client_urls: client_urls.clone(),
                ..recorded
            };
            let body = || encode(&(self.node_id, &me));
            let result = self
                .on_leader(forward::PUBLISH, body, IfLost::Retry, || {
                    self.publish_here(self.node_id, me.clone())
                })
                .await;
            if let Err(e) = result {
                tracing::debug!(error = %e, "publishing client URLs; will retry");
            }
        }
    }

    /// Where to run a request: here if this member leads, else at the leader. Waits until
    /// `deadline` for a leader to be known.
    async fn route(&self, deadline: tokio::time::Instant) -> Result<Route, ConsensusError> {
        loop {
            let leader = self.raft.metrics().borrow_watched().current_leader;
            match leader {
                Some(id) if id == self.node_id => return Ok(Route::Here),
                Some(id) => {
                    if let Some(m) = self.member(id) {
                        return Ok(Route::Leader(m));
                    }
                }
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.no_leader().await);
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    pub(crate) fn member(&self, id: u64) -> Option<Member> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .nodes()
            .find(|(i, _)| **i == id)
            .map(|(_, n)| n.clone())
    }

    /// The other voters, probed in parallel; those that do not answer.
    async fn unreachable(&self) -> Vec<(u64, Member)> {
        let others: Vec<(u64, Member)> = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            let voters: Vec<u64> = m.membership_config.voter_ids().collect();
            m.membership_config
                .nodes()
                .filter(|(id, _)| **id != self.node_id && voters.contains(id))
                .map(|(id, n)| (*id, n.clone()))
                .collect()
        };
        let probes = others.iter().map(|(_, m)| self.forwarder.ping(m, PING_TTL));
        let answers = futures::future::join_all(probes).await;
        others
            .into_iter()
            .zip(answers)
            .filter(|(_, up)| !up)
            .map(|(m, _)| m)
            .collect()
    }

    /// A leader whose quorum has not acknowledged it within an election timeout probes
    /// its peers; if too few answer, the request fails now rather than hanging.
    async fn check_quorum(&self) -> Result<(), ConsensusError> {
        let (voters, fresh) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            // A leader never acknowledged since its election is probed here all the same.
            let acked = m.last_quorum_acked.is_some() && self.quorum_acked(&m);
            (m.membership_config.voter_ids().count(), acked)
        };
        if voters <= 1 || fresh {
            return Ok(());
        }
        let down = self.unreachable().await;
        if voters - down.len() > voters / 2 {
            return Ok(());
        }
        Err(ConsensusError::Unavailable(format!(
            "cannot reach members {}",
            describe(&down)
        )))
    }

    /// The error for a request the leader took but never answered: if the leader no longer
    /// answers at all, say so and name everyone out of reach.
    async fn lost_at(&self, leader: &Member) -> ConsensusError {
        if self.forwarder.ping(leader, PING_TTL).await {
            return ConsensusError::OutcomeUnknown;
        }
        let down = self.unreachable().await;
        let others = if down.is_empty() {
            String::new()
        } else {
            format!("; cannot reach members {}", describe(&down))
        };
        ConsensusError::Unavailable(format!(
            "the leader ({leader}) stopped answering{others}; the request may still be applied"
        ))
    }

    /// The error for "no leader in reach", naming the members that do not answer.
    async fn no_leader(&self) -> ConsensusError {
        let down = self.unreachable().await;
        if down.is_empty() {
            ConsensusError::NoLeader("an election is under way; try again".into())
        } else {
            ConsensusError::NoLeader(format!("cannot reach members {}", describe(&down)))
        }
    }
}

/// `n2 (http://127.0.0.1:2380), n3 (...)`
fn describe(members: &[(u64, Member)]) -> String {
    members
        .iter()
        .map(|(id, m)| {
            let name = if m.name.is_empty() {
                format!("{id:x}")
            } else {
                m.name.clone()
            };
            format!("{name} ({})", m.peer_urls.join(","))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A request as it travels to the leader.
pub(crate) fn encode(value: &impl serde::Serialize) -> Result<Vec<u8>, ConsensusError> {
    serde_json::to_vec(value)
        .map_err(|e| ConsensusError::Rejected(format!("cannot encode the request: {e}")))
}
