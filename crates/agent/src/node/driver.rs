//! The node task's loop: inputs into the [`Core`] with the time, its outputs out in order.

use super::{Command, QueryStart, TagUpdate};
use crate::config::tags_file::{self, TagsFile};
use crate::events::AgentEvent;
use crate::transport;
use musubi_gossip::core::{CommandError, Core, Event, Output, Transport};
use musubi_gossip::identity::NodeId;
use musubi_gossip::query::QueryRecord;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{debug, warn};

/// The largest datagram we accept; foca sends at most its `max_packet_size` (1400).
const MAX_DATAGRAM: usize = 65_536;

pub(super) struct Driver {
    pub(super) core: Core,
    pub(super) socket: UdpSocket,
    pub(super) events: mpsc::UnboundedSender<AgentEvent>,
    pub(super) local: watch::Sender<NodeId>,
    pub(super) tags_file: Option<TagsFile>,
    /// Told when the node stops on its own (it lost its name in a conflict).
    pub(super) shut_down: Arc<Notify>,
    /// Joins waiting for a member's event clock before they announce themselves.
    pub(super) catching_up: Vec<oneshot::Sender<()>>,
    /// Where the records of our open queries go, by the query's Lamport time.
    pub(super) queries: HashMap<u64, mpsc::UnboundedSender<QueryRecord>>,
}

impl Driver {
    /// Until the handles are gone or the member lost its name.
    pub(super) async fn run(
        mut self,
        mut frames: mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        // Our own join, reported as the core starts.
        if !self.flush().await {
            return;
        }
        loop {
            let deadline = tokio::time::Instant::from_std(self.core.next_deadline());
            tokio::select! {
                // The task reads the socket itself: a datagram reaches the core with no hop
                // between.
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => {
                        metrics::counter!("memberlist.udp.received").increment(len as u64);
                        self.core.handle_datagram(&buf[..len], from, Instant::now());
                    }
                    // ICMP port-unreachable from a dead peer surfaces here on some systems
                    Err(e) => debug!("gossip receive: {e}"),
                },
                Some((data, from)) = frames.recv() => {
                    self.core.handle_datagram(&data, from, Instant::now());
                }
                _ = tokio::time::sleep_until(deadline) => self.core.tick(Instant::now()),
                command = commands.recv() => match command {
                    Some(command) => {
                        if !self.on_command(command).await {
                            return;
                        }
                        continue;
                    }
                    None => return,
                },
            }
            if !self.flush().await {
                return;
            }
        }
    }

    /// A command into the core; its reply goes once the core's outputs are out (a leave's
    /// datagrams are sent before the caller exits). False when the node stopped.
    async fn on_command(&mut self, command: Command) -> bool {
        let now = Instant::now();
        let core = &mut self.core;
        match command {
            Command::Members(reply) => {
                let _ = reply.send(core.members().cloned().collect());
            }
            Command::Announce(peers) => core.announce(&peers, now),
            Command::CatchUp {
                peers,
                replay,
                answered,
            } => {
                core.request_events(&peers, replay, now);
                self.catching_up.push(answered);
            }
            Command::ForceLeave { node, prune, done } => {
                core.force_leave(&node, prune, now);
                return self.flush_then(done, ()).await;
            }
            Command::Leave(done) => {
                core.leave(now);
                return self.flush_then(done, ()).await;
            }
            Command::HasLeft(reply) => {
                let _ = reply.send(core.has_left());
            }
            Command::UpdateTags(update, done) => {
                let updated = self.update_tags(update, now);
                return self.flush_then(done, updated).await;
            }
            Command::SendUserEvent(request, done) => {
                let sent = core
                    .send_user_event(request.name, request.payload, request.coalesce, now)
                    .map_err(|e| e.to_string());
                return self.flush_then(done, sent).await;
            }
            Command::Query(params, started) => {
                let start: QueryStart = match core.send_query(params, now) {
                    Ok(ltime) => {
                        let (records, receiver) = mpsc::unbounded_channel();
                        self.queries.insert(ltime, records);
                        Ok(receiver)
                    }
                    Err(e) => Err(e.to_string()),
                };
                return self.flush_then(started, start).await;
            }
            Command::RespondQuery(event, payload, done) => {
                let answered = core
                    .respond(&event, payload, now)
                    .map_err(|e| e.to_string());
                return self.flush_then(done, answered).await;
            }
            Command::Stats(reply) => {
                let _ = reply.send(core.stats());
            }
            Command::GetCoordinate(node, reply) => {
                let _ = reply.send(core.coordinate(&node).cloned());
            }
        }
        self.flush().await
    }

    /// The new tags go to the tags file first (its error, in Serf's words, leaves them
    /// unchanged), then to the core, which gossips them.
    fn update_tags(&mut self, update: TagUpdate, now: Instant) -> Result<(), String> {
        if self.core.has_left() {
            return Err(CommandError::TagsAfterLeave.to_string());
        }
        let current = &self.core.identity().tags;
        let tags = tags_file::updated(current, &update.set, &update.delete);
        tags_file::check_encoded_size(&tags)?;
        if let Some(file) = &self.tags_file {
            file.write(&tags)?;
        }
        self.core.set_tags(tags, now).map_err(|e| e.to_string())
    }

    async fn flush_then<T>(&mut self, reply: oneshot::Sender<T>, value: T) -> bool {
        let running = self.flush().await;
        // The asker may have gone (an RPC client hung up).
        let _ = reply.send(value);
        running
    }

    /// The core's outputs, in order. False when the member lost its name: as Serf's, the
    /// node stops without a leave and the agent exits.
    async fn flush(&mut self) -> bool {
        for output in self.core.take_outputs() {
            match output {
                Output::Send {
                    to,
                    datagram,
                    transport: Transport::Udp,
                } => self.send_udp(&datagram, to).await,
                Output::Send { to, datagram, .. } => send_stream(datagram, to),
                Output::Event(event) => {
                    if !self.on_event(event) {
                        return false;
                    }
                }
            }
        }
        self.local.send_if_modified(|local| {
            let current = self.core.identity();
            let changed = local != current;
            if changed {
                *local = current.clone();
            }
            changed
        });
        true
    }

    fn on_event(&mut self, event: Event) -> bool {
        // The event loop only stops with the process, so these sends always land.
        match event {
            Event::Member { kind, member } => {
                let members = vec![member];
                let _ = self.events.send(AgentEvent::Member { kind, members });
            }
            Event::User(event) => {
                let _ = self.events.send(AgentEvent::User(event));
            }
            Event::Query(event) => {
                let _ = self.events.send(AgentEvent::Query(event));
            }
            Event::QueryRecord { ltime, record } => {
                let records = match record {
                    QueryRecord::Done => self.queries.remove(&ltime),
                    _ => self.queries.get(&ltime).cloned(),
                };
                // The asker may have gone (an RPC client hung up); the query runs out anyway.
                if let Some(records) = records {
                    let _ = records.send(record);
                }
            }
            Event::EventsCaughtUp => {
                for answered in self.catching_up.drain(..) {
                    let _ = answered.send(());
                }
            }
            Event::NameLost => {
                self.shut_down.notify_one();
                return false;
            }
        }
        true
    }

    async fn send_udp(&self, datagram: &[u8], to: SocketAddr) {
        match self.socket.send_to(datagram, to).await {
            Ok(sent) => metrics::counter!("memberlist.udp.sent").increment(sent as u64),
            Err(e) => debug!("gossip send to {to}: {e}"),
        }
    }
}

/// A sealed datagram onto the stream transport, in a task of its own so a slow peer holds
/// up neither the node nor other sends.
fn send_stream(datagram: Vec<u8>, to: SocketAddr) {
    tokio::spawn(async move {
        if let Err(e) = transport::send_reliable(to, &datagram).await {
            warn!("stream send to {to}: {e}");
        }
    });
}
