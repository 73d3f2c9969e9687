//! The core's side of push-pull anti-entropy ([`crate::push_pull`]): a sync with one
//! random alive member per push-pull interval, and merging (then answering) the state
//! another member sends.

use super::Core;
use crate::push_pull::{self, LeftMember, StateMessage};
use rand_foca::RngExt;
use std::net::SocketAddr;
use std::time::Duration;
use tracing::{debug, info, warn};

impl Core {
    /// Due at a random point of the first interval, so that members started together do
    /// not all sync at once.
    pub(super) fn first_push_pull(&mut self) {
        let stagger = self.push_pull_interval().mul_f64(self.rng.random::<f64>());
        self.schedule.push_pull = self.now + stagger;
    }

    /// Just joined (or back after every member was lost): a sync at once, beside the
    /// periodic ones, with the member joined through, as memberlist's join is a push-pull.
    pub(super) fn sync_if_just_joined(&mut self) {
        if std::mem::take(&mut self.joined) {
            self.sync_with_random_member();
        }
    }

    /// The profile's interval for the current cluster size.
    fn push_pull_interval(&self) -> Duration {
        self.settings
            .profile
            .push_pull_interval(self.table.alive_count())
    }

    /// The periodic sync; the next is one interval later.
    pub(super) fn push_pull(&mut self) {
        self.schedule.push_pull = self.now + self.push_pull_interval();
        self.sync_with_random_member();
    }

    /// Send our state to a random alive member; it answers with its own.
    fn sync_with_random_member(&mut self) {
        if self.left {
            return;
        }
        let local = self.foca.identity().name.clone();
        let Some(partner) = push_pull::partner(&self.table, &local, &mut self.rng) else {
            return;
        };
        debug!("push-pull sync with {partner}");
        self.send_state(partner, false);
    }

    /// Over UDP while the state, compressed, fits a datagram (a few dozen members), which
    /// spares two TCP handshakes a sync; past that over the stream transport, as memberlist
    /// always does. A lost datagram costs one sync: the next comes an interval later.
    fn send_state(&self, to: SocketAddr, reply: bool) {
        let (state, overflow) = StateMessage::build(
            self.foca.identity().addr,
            reply,
            self.foca.iter_membership_state(),
            LeftMember::all_in(&self.table),
            self.event_clock.time(),
            self.history.recent(),
        );
        if overflow != Default::default() {
            warn!(
                "push-pull state over {} bytes: left out {} members and {} events",
                crate::wire::MAX_FRAME,
                overflow.members,
                overflow.events
            );
        }
        self.send_fitting(&state.encode(), to);
    }

    /// Another member's state: its members go to foca as a sync, the leaves we missed are
    /// taken as leave intents, its events are handled as a replay's (each once, none below
    /// our minimum time); a sync is answered once.
    pub(super) fn on_push_pull(&mut self, body: &[u8], from: SocketAddr) {
        if self.left {
            debug!("dropped push-pull state from {from}: we left the cluster");
            return;
        }
        let mut state = match StateMessage::decode(body) {
            Ok(state) => state,
            Err(e) => {
                warn!("dropped push-pull state from {from}: {e}");
                return;
            }
        };
        debug!(
            "push-pull state from {}: {} members, {} events",
            state.sender,
            state.members.len(),
            state.events.len()
        );
        if let Err(e) = state.merge_members(&mut self.foca, &mut self.runtime) {
            warn!("push-pull state from {}: {e}", state.sender);
        }
        for left in std::mem::take(&mut state.left) {
            if !left.missed_by(&self.table) {
                continue;
            }
            info!("member {} left (learnt by push-pull)", left.name);
            self.change_member(&left.name, |table| table.leave_intent(&left.name));
        }
        self.deliver_remote_events(state.event_clock, state.events);
        if !state.reply {
            self.send_state(state.sender, true);
        }
    }
}
