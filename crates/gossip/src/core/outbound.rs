//! How the core's datagrams leave: compressed, then sealed, as [`Output::Send`]s over UDP
//! or, one whole datagram per frame, over the stream transport; to one member, to every
//! active or alive member, or into foca's gossip.

use super::{Core, DisseminateError, Output, Transport, UDP_DATAGRAM_MAX};
use crate::compression;
use crate::membership::MemberStatus;
use crate::swim;
use crate::wire;
use std::net::SocketAddr;

impl Core {
    /// Hand a broadcast to foca, which delivers it here and gossips it; one larger than
    /// `gossip_max` is delivered here the same way, then sent straight to every other
    /// alive member (see `broadcasts`).
    pub(super) fn disseminate(
        &mut self,
        broadcast: &[u8],
        gossip_max: usize,
    ) -> Result<(), DisseminateError> {
        if broadcast.len() <= gossip_max {
            swim::broadcast(&mut self.foca, broadcast, &mut self.runtime)?;
        } else {
            self.gossip.receive_direct(broadcast)?;
            self.send_directly(&wire::direct_broadcast_datagram(broadcast));
        }
        Ok(())
    }

    /// Send a datagram to every other alive member over the stream transport. Receivers
    /// do not pass such messages on: the origin already reached every member it knows,
    /// and re-gossiping a large payload would multiply its bytes by the fan-out.
    fn send_directly(&self, datagram: &[u8]) {
        // Compressed and sealed once: every member gets the same bytes.
        let sealed = self.wire_form(datagram);
        let local = &self.foca.identity().name;
        for member in self.table.records() {
            if member.status == MemberStatus::Alive && member.id.name != *local {
                self.emit(member.id.addr, sealed.clone(), Transport::Stream);
            }
        }
    }

    /// Over UDP when the datagram, compressed and sealed, fits one (memberlist's UDP
    /// buffer), else over the stream transport, which frames the whole sealed datagram
    /// for the receiver to open like any other: for what may be small or large (query
    /// answers, push-pull state), so the small ones skip a TCP connection's handshake.
    pub(super) fn send_fitting(&self, datagram: &[u8], to: SocketAddr) {
        let wire = self.wire_form(datagram);
        let transport = match wire.len() <= UDP_DATAGRAM_MAX {
            true => Transport::Udp,
            false => Transport::Stream,
        };
        self.emit(to, wire, transport);
    }

    /// Leave intents go straight to every member foca knows as active, so each of them
    /// can tell a leave from a failure before foca's own down notice reaches it.
    pub(super) fn tell_active_members(&self, datagram: &[u8]) {
        for member in self.foca.iter_members() {
            self.send(datagram, member.id().addr);
        }
    }

    /// The way datagrams leave over UDP.
    pub(super) fn send(&self, datagram: &[u8], to: SocketAddr) {
        self.send_sealed(self.wire_form(datagram), to);
    }

    pub(super) fn send_sealed(&self, sealed: Vec<u8>, to: SocketAddr) {
        self.emit(to, sealed, Transport::Udp);
    }

    /// What goes on the wire for a datagram: compressed when that makes it smaller, then
    /// sealed with the primary key when encryption is on. In that order, as memberlist:
    /// ciphertext does not compress.
    fn wire_form(&self, datagram: &[u8]) -> Vec<u8> {
        let datagram = match self.settings.enable_compression {
            true => compression::compress(datagram),
            // `-disable-compression`: others still read it, whether they compress or not.
            false => datagram.into(),
        };
        self.settings.keys.seal(&datagram).into_owned()
    }

    fn emit(&self, to: SocketAddr, datagram: Vec<u8>, transport: Transport) {
        self.outputs.push(Output::Send {
            to,
            datagram,
            transport,
        });
    }
}
