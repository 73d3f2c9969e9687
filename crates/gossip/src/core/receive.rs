//! A datagram as it came off the wire, over UDP or as one stream transport frame: opened,
//! decompressed, and handed to what its kind is for.

use super::Core;
use crate::compression;
use crate::wire::{self, Datagram};
use std::net::SocketAddr;
use std::time::Instant;
use tracing::{debug, error, info, warn};

impl Core {
    /// The whole datagram is sealed (kind byte included): open it first, answer a sender
    /// behind a key rotation with our key ring, then handle what it carries. (A catch-up
    /// answering a stream frame goes to the connection's ephemeral port and is lost; the
    /// sender's next UDP datagram, foca probes every second, gets one that arrives.)
    pub fn handle_datagram(&mut self, sealed: &[u8], from: SocketAddr, now: Instant) {
        self.now = now;
        self.receive(sealed, from);
        self.settle();
    }

    fn receive(&mut self, sealed: &[u8], from: SocketAddr) {
        let now = self.now;
        let opened = match self.settings.keys.open(sealed, from, now) {
            Ok(opened) => opened,
            Err(e) => {
                // memberlist's line, at its level
                error!("Decrypt packet failed: {e} from={from}");
                return;
            }
        };
        if let Some(answer) = opened.catch_up {
            info!("{from} seals with an old key: sent it our key ring (key catch-up)");
            self.send_sealed(answer, from);
        }
        let Some(data) = opened.plain else {
            return;
        };
        let data = match compression::decompress(&data) {
            Ok(data) => data,
            Err(e) => {
                warn!("dropped datagram from {from}: {e}");
                return;
            }
        };
        match wire::decode(&data) {
            Ok(Datagram::Foca(packet)) => self.hand_to_foca(packet, from),
            Ok(Datagram::FocaWithPosition { position, packet }) => {
                if !self.coordinates.carried(position) {
                    debug!("dropped an invalid coordinate from {from}");
                }
                self.hand_to_foca(packet, from);
            }
            Ok(Datagram::LeaveIntent(name)) => {
                info!("member {name} is leaving (told by {from})");
                self.change_member(name, |table| table.leave_intent(name));
            }
            Ok(Datagram::QueryReply(body)) => self.on_query_reply(body, from),
            Ok(Datagram::Lifecycle(message)) => self.on_lifecycle(message, from),
            Ok(Datagram::DirectBroadcast(body)) => {
                if let Err(e) = self.gossip.receive_direct(body) {
                    warn!("dropped a direct broadcast from {from}: {e}");
                }
            }
            Ok(Datagram::KeyCatchUp(ring)) => match self.settings.keys.catch_up(ring, now) {
                Ok(true) => warn!("took the key ring of {from}: we missed a key rotation"),
                Ok(false) => debug!("key catch-up from {from}: our ring reads it already"),
                Err(e) => warn!("dropped key catch-up from {from}: {e}"),
            },
            Ok(Datagram::PushPull(body)) => self.on_push_pull(body, from),
            // Senders compress once; `decompress` hands a nested one back as it is.
            Ok(Datagram::Compressed(_)) => warn!("dropped datagram from {from}: compressed twice"),
            Err(e) => warn!("dropped datagram from {from}: {e}"),
        }
    }
}
