//! The commands a driver hands the core: join, event catch-up, leave, force-leave, tags,
//! user events (queries are in `queries`), and how each member change is reported.

use super::CommandError;
use super::{Core, Event, MemberEventKind, telemetry};
use crate::broadcasts;
use crate::identity::NodeId;
use crate::membership::{MemberStatus, MemberTable};
use crate::user_events::{GOSSIP_EVENT_MAX, UserEvent};
use crate::wire::{self, LifecycleMessage};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;
use tracing::{info, warn};

impl Core {
    /// Announce this member to each address; the members there answer with theirs. UDP
    /// may drop it: a driver waiting for them to show up announces again.
    pub fn announce(&mut self, peers: &[SocketAddr], now: Instant) {
        self.now = now;
        // A join that began before our leave may still be re-announcing.
        if self.left {
            return;
        }
        for &peer in peers {
            if let Err(e) = self
                .foca
                .announce(NodeId::unknown_at(peer), &mut self.runtime)
            {
                warn!("announce to {peer}: {e}");
            }
        }
        self.settle();
    }

    /// Before joining through `peers`: ask them for their event clock, so that the events
    /// the cluster had before are ignored, or with `replay`, delivered here (Serf's
    /// `join -replay`). [`Event::EventsCaughtUp`] tells when the first answered.
    pub fn request_events(&mut self, peers: &[SocketAddr], replay: bool, now: Instant) {
        self.now = now;
        let request = wire::lifecycle_datagram(&LifecycleMessage::EventsRequest { replay });
        for &peer in peers {
            self.send(&request, peer);
        }
        self.settle();
    }

    /// Mark a failed member as left everywhere; members that are not failed are untouched
    /// (force-leaving a live member would leave it stuck in `leaving`, serf#359). With
    /// `prune`, a failed or left member is also dropped from every member list at once.
    pub fn force_leave(&mut self, node: &str, prune: bool, now: Instant) {
        self.now = now;
        if self
            .table
            .get(node)
            .is_some_and(|m| m.status == MemberStatus::Failed)
        {
            info!("force-leave: {node} is now left");
            self.change_member(node, |table| table.leave_intent(node));
            self.tell_active_members(&wire::leave_intent_datagram(node));
        }
        if prune {
            let message = LifecycleMessage::Prune {
                node: node.to_string(),
            };
            self.tell_active_members(&wire::lifecycle_datagram(&message));
            self.prune(node);
        }
        self.settle();
    }

    /// Tell every member we are leaving, then leave the SWIM cluster. The driver sends
    /// the datagrams and exits.
    pub fn leave(&mut self, now: Instant) {
        self.now = now;
        let name = self.foca.identity().name.clone();
        info!("leaving the cluster");
        self.member_clock.increment();
        self.change_member(&name, |table| table.leave_intent(&name));
        self.tell_active_members(&wire::leave_intent_datagram(&name));
        if let Err(e) = self.foca.leave_cluster(&mut self.runtime) {
            warn!("leave: {e}");
        }
        self.left = true;
        self.settle();
    }

    /// Tags travel in the identity, so new tags are a new identity: foca gossips it and
    /// declares the old one down. Each member applies the sender's identity before the
    /// updates it carries, so the newer identity (a later `started_ms`) has already
    /// replaced the old one there and that down notice is ignored: the member stays alive
    /// and only its tags change.
    pub fn set_tags(
        &mut self,
        tags: BTreeMap<String, String>,
        now: Instant,
    ) -> Result<(), CommandError> {
        self.now = now;
        // A new identity would be gossiped alive: after our leave, that brings us back.
        if self.left {
            return Err(CommandError::TagsAfterLeave);
        }
        let current = self.foca.identity().clone();
        let renewed = NodeId {
            tags,
            started_ms: current.started_ms + 1,
            ..current.clone()
        };
        self.foca
            .change_identity(renewed.clone(), &mut self.runtime)
            .map_err(CommandError::Tags)?;
        info!("tags are now {:?}", renewed.tags);
        self.change_member(&current.name, |table| {
            table.member_renamed(&current, renewed)
        });
        self.settle();
        Ok(())
    }

    /// Send a user event to every member, this one included. Handing the event to foca
    /// delivers it here (foca passes it to our broadcast handler) and queues it to ride on
    /// the next packets to other members. An event too big for that is delivered here and
    /// sent to every alive member over the stream transport; they do not pass it on (see
    /// `broadcasts`).
    pub fn send_user_event(
        &mut self,
        name: String,
        payload: Vec<u8>,
        coalesce: bool,
        now: Instant,
    ) -> Result<(), CommandError> {
        self.now = now;
        let limit = self.settings.user_event_size_limit;
        UserEvent::check_size(&name, &payload, limit)?;
        let event = UserEvent {
            ltime: self.event_clock.time(),
            name,
            payload,
            coalesce,
        };
        let encoded = event.encode();
        UserEvent::check_encoded_size(&encoded, limit)?;
        // As Serf: a refused event does not move the clock.
        self.event_clock.increment();
        let sent = self
            .disseminate(&broadcasts::user_event(&encoded), GOSSIP_EVENT_MAX)
            .map_err(CommandError::UserEvent);
        self.settle();
        sent
    }

    /// Apply a change to the member table and report what it means, if anything.
    pub(super) fn change_member(&mut self, name: &str, change: impl FnOnce(&mut MemberTable)) {
        let before = self.table.get(name).cloned();
        let failed_since = self.reaper.failed_since(name);
        change(&mut self.table);
        self.reaper.observe(name, self.table.get(name), self.now);
        if let Some(after) = self.table.get(name)
            && let Some(kind) = MemberEventKind::of_change(before.as_ref(), after)
        {
            self.member_clock.increment();
            telemetry::member_event(kind, failed_since, self.now);
            let member = after.id.clone();
            self.report(Event::Member { kind, member });
        }
    }
}
