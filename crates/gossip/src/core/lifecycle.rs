//! The core's part of the member lifecycle: reaping and reconnecting failed and left
//! members, `force-leave -prune`, name-conflict votes, and the event catch-up of a join
//! (the lifecycle datagrams, kind 6). The bookkeeping lives in `reaper`, `conflict` and
//! `event_history`; this is where it meets foca and the member table.

use super::{Core, Event, MemberEventKind, telemetry};
use crate::conflict::{self, ConflictVote, Verdict};
use crate::identity::NodeId;
use crate::membership::MemberStatus;
use crate::user_events::UserEvent;
use crate::wire::{self, LifecycleMessage};
use std::net::SocketAddr;
use tracing::{debug, error, info, warn};

impl Core {
    /// Drop a member from the list and report it (Serf's `member-reap`).
    fn remove_member(&mut self, name: &str) {
        let Some(record) = self.table.remove(name) else {
            return;
        };
        self.reaper.observe(name, None, self.now);
        info!("EventMemberReap: {name} {}", record.id.addr);
        self.report(Event::Member {
            kind: MemberEventKind::Reap,
            member: record.id,
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
        for name in self.reaper.due(self.now) {
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

    pub(super) fn on_lifecycle(&mut self, message: LifecycleMessage, from: SocketAddr) {
        match message {
            LifecycleMessage::Prune { node } => self.prune(&node),
            LifecycleMessage::WhoHolds { id, name } => {
                // As Serf: the claimants do not vote on their own name.
                if name == self.foca.identity().name {
                    return;
                }
                let addr = self.table.get(&name).map(|record| record.id.addr);
                let answer = LifecycleMessage::Holder { id, name, addr };
                self.send(&wire::lifecycle_datagram(&answer), from);
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
                    self.send(&wire::lifecycle_datagram(&reply), from);
                }
            }
            LifecycleMessage::EventsReply {
                replay,
                event_clock,
                events,
            } => {
                self.catch_up_events(replay, event_clock, events);
                self.report(Event::EventsCaughtUp);
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
            telemetry::user_event_received(&event.name);
            self.report(Event::User(event));
        }
    }

    /// `claimant` says it is a member we already list alive under its name, at another
    /// address. The first holder keeps the name in our list; when the name is ours, we
    /// ask everyone who they list. True when `claimant` was refused.
    pub(super) fn refuse_name_conflict(&mut self, claimant: &NodeId) -> bool {
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
        let resolve = !self.settings.disable_name_resolution;
        error!(
            "Node name conflicts with another node at {}. Names must be unique! (Resolution enabled: {resolve})",
            claimant.addr
        );
        if resolve && self.conflict.is_none() {
            let members: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
            let id = self.random();
            let deadline = self.now + conflict::answer_window(members.len() + 1);
            self.conflict = Some(ConflictVote::new(id, local.addr, deadline));
            let question = wire::lifecycle_datagram(&LifecycleMessage::WhoHolds {
                id,
                name: local.name,
            });
            for member in members {
                self.send(&question, member);
            }
        }
        true
    }

    /// The answers are in. When we lost our name the member stops: as Serf, it shuts down
    /// without a leave ([`Event::NameLost`]) and the driver exits.
    pub(super) fn count_conflict_votes(&mut self) {
        let Some(vote) = self.conflict.take() else {
            return;
        };
        match vote.verdict() {
            Verdict::Majority {
                matching,
                responses,
            } => {
                info!("majority in name conflict resolution [{matching} / {responses}]");
            }
            Verdict::Minority {
                matching,
                responses,
            } => {
                warn!("minority in name conflict resolution, quitting [{matching} / {responses}]");
                warn!("Shutdown without a Leave");
                self.report(Event::NameLost);
            }
        }
    }
}
