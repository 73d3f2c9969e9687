//! The core's traffic with foca: packets handed in, and foca's output drained in order
//! (datagrams out with Lifeguard reading their headers and our coordinate on probe acks,
//! timers through Lifeguard into the schedule, notifications into Lifeguard, the
//! coordinates and the member table); held suspicions handed back when due.

use super::Core;
use crate::identity::NodeId;
use crate::swim;
use crate::wire;
use foca::{Header, Message, OwnedNotification, ProbeNumber};
use std::net::SocketAddr;
use tracing::{debug, info, warn};

impl Core {
    pub(super) fn hand_to_foca(&mut self, packet: &[u8], from: SocketAddr) {
        if self.left {
            debug!("dropped gossip packet from {from}: we left the cluster");
            return;
        }
        if let Err(e) = swim::receive(&mut self.foca, packet, &mut self.runtime, &self.urgent) {
            debug!("dropped gossip packet from {from}: {e}");
        }
    }

    /// Suspicions whose Lifeguard deadline has come go back to foca, which declares the
    /// member down unless it refuted the suspicion meanwhile.
    pub(super) fn declare_due_suspects(&mut self) {
        let now = self.elapsed();
        let due = self
            .lifeguard
            .declare_due_suspects(&mut self.foca, &mut self.runtime, now);
        for declared in due.declared {
            // memberlist's line, at its level
            info!(
                "Marking {} as failed, suspect timeout reached ({} peer confirmations)",
                declared.member.name, declared.confirmations
            );
        }
        for e in due.errors {
            warn!("swim timer: {e}");
        }
    }

    /// Our own probe of `id` failed: Lifeguard takes it as a doubt about ourselves, and
    /// as our confirmation of the suspicion foca raised, which the others must hear.
    fn probe_failed(&mut self, probe: ProbeNumber, id: &NodeId) {
        // memberlist's line, at its level
        info!("Suspect {} has failed, no acks received", id.name);
        let now = self.elapsed();
        if let Err(e) = self
            .lifeguard
            .probe_failed_in(&mut self.foca, probe, id, now)
        {
            warn!("suspicion confirmation: {e}");
        }
    }

    pub(super) fn drain(&mut self) {
        while let Some((to, packet)) = self.runtime.to_send() {
            if let Some(datagram) = self.outgoing(&packet) {
                self.send(&datagram, to.addr);
            }
        }
        let bounds = self
            .settings
            .profile
            .suspicion_bounds(self.table.alive_count());
        while let Some((delay, timer)) = self.runtime.to_schedule() {
            let now = self.elapsed();
            if let Some((delay, timer)) = self.lifeguard.schedule(delay, timer, bounds, now) {
                let schedule = &mut self.schedule;
                schedule.timer_arrivals += 1;
                let key = (self.now + delay, schedule.timer_arrivals);
                schedule.foca_timers.insert(key, timer);
            }
        }
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                // Read from the packets themselves as they leave (`outgoing`).
                OwnedNotification::DataSent(_) => {}
                OwnedNotification::DataReceived(header) => self.on_foca_received(&header),
                OwnedNotification::ProbeFailed(probe, id) => self.probe_failed(probe, &id),
                OwnedNotification::MemberUp(ref id) if self.refuse_name_conflict(id) => {}
                notification => self.apply(notification),
            }
        }
        self.coordinates.packet_done();
    }

    /// A foca packet as it goes on the wire, or None for one not worth sending (see
    /// [`swim::Outgoing`]). Lifeguard reads its header (our pings, our incarnation); a
    /// probe ack carries our coordinate in front, as Serf's acks do.
    fn outgoing(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        let outgoing = match swim::read_outgoing(packet) {
            Ok(outgoing) => outgoing,
            // foca encoded it with this codec a moment ago; sent as it is all the same
            Err(e) => {
                warn!("foca's own packet does not decode: {e}");
                return Some(wire::foca_datagram(packet));
            }
        };
        if outgoing.empty_gossip {
            return None;
        }
        self.lifeguard.sent(&outgoing.header, self.elapsed());
        Some(
            match (&outgoing.header.message, self.coordinates.ack_position()) {
                (Message::Ack(_), Some(position)) => {
                    wire::foca_with_position_datagram(&position, packet)
                }
                _ => wire::foca_datagram(packet),
            },
        )
    }

    /// foca accepted a packet: an ack to our ping is an RTT sample for our coordinate.
    fn on_foca_received(&mut self, header: &Header<NodeId>) {
        if let Some(answer) = self.lifeguard.received(header, self.elapsed()) {
            metrics::histogram!("memberlist.probeNode").record(answer.rtt.as_secs_f64() * 1e3);
            self.coordinates.round_trip(&answer.member.name, answer.rtt);
        }
    }

    fn apply(&mut self, notification: OwnedNotification<NodeId>) {
        match notification {
            OwnedNotification::MemberUp(id) => {
                info!("member {} is alive at {}", id.name, id.addr);
                self.change_member(&id.name.clone(), |table| table.member_up(id));
            }
            OwnedNotification::MemberDown(id) => {
                self.change_member(&id.name, |table| table.member_down(&id));
                if let Some(record) = self.table.get(&id.name) {
                    info!("member {} is {}", id.name, record.status.as_str());
                }
            }
            OwnedNotification::Rename(old, new) => {
                self.change_member(&new.name.clone(), |table| table.member_renamed(&old, new));
            }
            OwnedNotification::Rejoin(renewed) => {
                warn!("we were declared down; rejoined as a newer identity");
                self.change_member(&renewed.name.clone(), |table| table.member_up(renewed));
            }
            OwnedNotification::Active => {
                info!("joined the cluster");
                self.joined = true;
            }
            OwnedNotification::Idle => info!("no other member is active"),
            // Also the expected end of our own leave.
            OwnedNotification::Defunct => info!("this member is down in the cluster's view"),
            // Lifeguard's, taken in `drain`; they change no membership.
            OwnedNotification::DataSent(_)
            | OwnedNotification::DataReceived(_)
            | OwnedNotification::ProbeFailed(..) => return,
        }
        if let Err(e) = self
            .foca
            .set_config(self.settings.profile.swim_config(self.table.alive_count()))
        {
            warn!("resizing the swim config: {e}");
        }
    }
}
