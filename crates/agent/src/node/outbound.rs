//! How the node's datagrams leave: compressed, then sealed, over UDP or, one whole datagram
//! per frame, over the stream transport; to one member, to every active or alive member,
//! or into foca's gossip.

use super::{Node, UDP_DATAGRAM_MAX};
use crate::transport;
use musubi_gossip::broadcasts;
use musubi_gossip::compression;
use musubi_gossip::membership::MemberStatus;
use musubi_gossip::swim;
use musubi_gossip::wire;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::{debug, warn};

impl Node {
    /// Hand a broadcast to foca, which delivers it here and gossips it; one larger than
    /// `gossip_max` is delivered here the same way, then sent straight to every other
    /// alive member (see `broadcasts`).
    pub(super) fn disseminate(
        &mut self,
        broadcast: &[u8],
        gossip_max: usize,
    ) -> Result<(), String> {
        if broadcast.len() <= gossip_max {
            swim::broadcast(&mut self.foca, broadcast, &mut self.runtime).map_err(|e| e.to_string())
        } else {
            self.broadcast_directly(broadcast)
                .map_err(|e| e.to_string())
        }
    }

    pub(super) fn broadcast_directly(
        &self,
        broadcast: &[u8],
    ) -> Result<(), broadcasts::MalformedBroadcast> {
        self.gossip.receive_direct(broadcast)?;
        self.send_directly(&wire::direct_broadcast_datagram(broadcast));
        Ok(())
    }

    /// Send a datagram to every other alive member over the stream transport. Receivers
    /// do not pass such messages on: the origin already reached every member it knows,
    /// and re-gossiping a large payload would multiply its bytes by the fan-out.
    pub(super) fn send_directly(&self, datagram: &[u8]) {
        // Compressed and sealed once: every member gets the same frame.
        let sealed: Arc<[u8]> = self.wire_form(datagram).into();
        let local = &self.foca.identity().name;
        for member in self.table.records() {
            if member.status == MemberStatus::Alive && member.id.name != *local {
                self.stream_sealed(sealed.clone(), member.id.addr);
            }
        }
    }

    /// Over UDP when the datagram, compressed and sealed, fits one (memberlist's UDP
    /// buffer), else over the stream transport, which frames the whole sealed datagram
    /// for the receiver to open like any other: for what may be small or large (query
    /// answers, push-pull state), so the small ones skip a TCP connection's handshake.
    pub(super) async fn send_fitting(&self, datagram: &[u8], to: SocketAddr) {
        let wire = self.wire_form(datagram);
        if wire.len() <= UDP_DATAGRAM_MAX {
            self.send_sealed(&wire, to).await;
        } else {
            self.stream_sealed(wire.into(), to);
        }
    }

    /// A sealed datagram onto the stream transport, in a task of its own so a slow peer
    /// holds up neither the node nor other sends.
    pub(super) fn stream_sealed(&self, sealed: Arc<[u8]>, to: SocketAddr) {
        tokio::spawn(async move {
            if let Err(e) = transport::send_reliable(to, &sealed).await {
                warn!("stream send to {to}: {e}");
            }
        });
    }

    /// Leave intents go straight to every member foca knows as active, so each of them
    /// can tell a leave from a failure before foca's own down notice reaches it.
    pub(super) async fn tell_active_members(&self, datagram: &[u8]) {
        let peers: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for peer in peers {
            self.send(datagram, peer).await;
        }
    }

    /// The way datagrams leave over UDP (`send_fitting` and `send_directly` prepare them
    /// the same way for the stream transport).
    pub(super) async fn send(&self, datagram: &[u8], to: SocketAddr) {
        self.send_sealed(&self.wire_form(datagram), to).await;
    }

    /// What goes on the wire for a datagram: compressed when that makes it smaller, then
    /// sealed with the primary key when encryption is on. In that order, as memberlist:
    /// ciphertext does not compress.
    pub(super) fn wire_form(&self, datagram: &[u8]) -> Vec<u8> {
        let datagram = match self.options.enable_compression {
            true => compression::compress(datagram),
            // `-disable-compression`: others still read it, whether they compress or not.
            false => datagram.into(),
        };
        self.options.keys.seal(&datagram).into_owned()
    }

    pub(super) async fn send_sealed(&self, datagram: &[u8], to: SocketAddr) {
        match self.socket.send_to(datagram, to).await {
            Ok(sent) => metrics::counter!("memberlist.udp.sent").increment(sent as u64),
            Err(e) => debug!("gossip send to {to}: {e}"),
        }
    }
}
