//! The node's part of the member lifecycle: reaping and reconnecting failed and left
//! members, `force-leave -prune`, name-conflict votes, and the event catch-up of a join
//! (the lifecycle datagrams, kind 6). The bookkeeping lives in `reaper`, `conflict` and
//! `event_history`; this is where it meets foca, the member table and the socket.

use super::Node;
use crate::events::{AgentEvent, MemberEventKind};
use musubi_gossip::conflict::{self, ConflictVote, Verdict};
use musubi_gossip::identity::NodeId;
use musubi_gossip::membership::MemberStatus;
use musubi_gossip::user_events::UserEvent;
use musubi_gossip::wire::{self, LifecycleMessage};
use rand_foca::RngExt;
use rand_foca::rngs::StdRng;
use std::net::SocketAddr;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

impl Node {
    /// Drop a member from the list and report it (Serf's `member-reap`).
    fn remove_member(&mut self, name: &str) {
        let Some(record) = self.table.remove(name) else {
            return;
        };
        self.reaper.observe(name, None, Instant::now().into_std());
        info!("EventMemberReap: {name} {}", record.id.addr);
        // The event loop only stops with the process.
        let _ = self.events.send(AgentEvent::Member {
            kind: MemberEventKind::Reap,
            members: vec![record.id],
        });
    }

    /// `force-leave -prune`: a failed or left member goes at once; a live one stays
    /// (it would only come back).
    pub(super) fn prune(&mut self, name: &str) {
        if let Some(record) = self.table.get(name)
            && matches!(record.status, MemberStatus::Failed | MemberStatus::Left)
        {
            info!("EventMemberReap (forced): {name}");
            self.remove_member(name);
        }
    }

    /// The reap tick: drop members failed or left for longer than their timeout.
    pub(super) fn reap(&mut self) {
        for name in self.reaper.due(Instant::now().into_std()) {
            self.remove_member(&name);
        }
    }

    /// The reconnect tick: announce ourselves to a failed member, in case it is back
    /// (a partition healed); a member that answers becomes alive again.
    pub(super) fn reconnect(&mut self) {
        if self.left {
            return;
        }
        let Some((name, addr)) = self
            .reaper
            .reconnect_candidate(self.table.alive_count(), &mut self.rng)
        else {
            return;
        };
        info!("attempting reconnect to {name} {addr}");
        if let Err(e) = self
            .foca
            .announce(NodeId::unknown_at(addr), &mut self.runtime)
        {
            debug!("reconnect to {addr}: {e}");
        }
    }

    pub(super) async fn on_lifecycle(&mut self, message: LifecycleMessage, from: SocketAddr) {
        match message {
            LifecycleMessage::Prune { node } => self.prune(&node),
            LifecycleMessage::WhoHolds { id, name } => {
                // As Serf: the claimants do not vote on their own name.
                if name == self.foca.identity().name {
                    return;
                }
                let addr = self.table.get(&name).map(|record| record.id.addr);
                let answer = LifecycleMessage::Holder { id, name, addr };
                self.send(&wire::lifecycle_datagram(&answer), from).await;
            }
            LifecycleMessage::Holder { id, addr, .. } => {
                if let Some(vote) = &mut self.conflict {
                    vote.answer(id, addr);
                }
            }
            LifecycleMessage::EventsRequest { replay } => {
                let events = if replay {
                    self.history.recent()
                } else {
                    Vec::new()
                };
                for reply in
                    LifecycleMessage::event_replies(replay, self.event_clock.time(), events)
                {
                    self.send(&wire::lifecycle_datagram(&reply), from).await;
                }
            }
            LifecycleMessage::EventsReply {
                replay,
                event_clock,
                events,
            } => {
                self.catch_up_events(replay, event_clock, events);
                for answered in self.catching_up.drain(..) {
                    let _ = answered.send(());
                }
            }
        }
    }

    /// The member we join through told us its event clock and, for a replay, its
    /// recent events. Without replay, everything before its clock is the past we ignore.
    fn catch_up_events(&mut self, replay: bool, event_clock: u64, events: Vec<UserEvent>) {
        if !replay {
            self.event_clock.witness(event_clock.saturating_sub(1));
            debug!("joined without replay: ignoring user events before time {event_clock}");
            self.history.raise_min_time(event_clock);
            return;
        }
        self.deliver_remote_events(event_clock, events);
    }

    /// Events another member sent whole (a replay, a push-pull sync): the ones not seen
    /// before, and not below our minimum time, are delivered here.
    pub(super) fn deliver_remote_events(&mut self, event_clock: u64, events: Vec<UserEvent>) {
        for event in self
            .history
            .record_remote(event_clock, events, &self.event_clock)
        {
            crate::telemetry::user_event_received(&event.name);
            // The event loop only stops with the process.
            let _ = self.events.send(AgentEvent::User(event));
        }
    }

    /// `claimant` says it is a member we already list alive under its name, at another
    /// address. The first holder keeps the name in our list; when the name is ours, we
    /// ask everyone who they list. True when `claimant` was refused.
    pub(super) async fn refuse_name_conflict(&mut self, claimant: &NodeId) -> bool {
        let Some(holder) = self.table.get(&claimant.name) else {
            return false;
        };
        let live = matches!(holder.status, MemberStatus::Alive | MemberStatus::Leaving);
        if !live || holder.id.addr == claimant.addr {
            return false;
        }
        let local = self.foca.identity().clone();
        if claimant.name != local.name {
            warn!(
                "Name conflict for '{}' both {} and {} are claiming",
                claimant.name, holder.id.addr, claimant.addr
            );
            return true;
        }
        let resolve = !self.options.disable_name_resolution;
        error!(
            "Node name conflicts with another node at {}. Names must be unique! (Resolution enabled: {resolve})",
            claimant.addr
        );
        if resolve && self.conflict.is_none() {
            let members: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
            let id = rand_foca::make_rng::<StdRng>().random();
            let deadline = Instant::now().into_std() + conflict::answer_window(members.len() + 1);
            self.conflict = Some(ConflictVote::new(id, local.addr, deadline));
            let question = wire::lifecycle_datagram(&LifecycleMessage::WhoHolds {
                id,
                name: local.name,
            });
            for member in members {
                self.send(&question, member).await;
            }
        }
        true
    }

    /// The answers are in. False when we lost our name and the node stops: as Serf, it
    /// shuts down without a leave and the agent exits.
    pub(super) fn count_conflict_votes(&mut self) -> bool {
        let Some(vote) = self.conflict.take() else {
            return true;
        };
        match vote.verdict() {
            Verdict::Majority {
                matching,
                responses,
            } => {
                info!("majority in name conflict resolution [{matching} / {responses}]");
                true
            }
            Verdict::Minority {
                matching,
                responses,
            } => {
                warn!("minority in name conflict resolution, quitting [{matching} / {responses}]");
                warn!("Shutdown without a Leave");
                self.shut_down.notify_one();
                false
            }
        }
    }
}
