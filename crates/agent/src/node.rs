//! The node task: the one owner of foca, the gossip socket and the member table.
//!
//! Each input (a datagram, a timer, a command from the RPC side) is handed to foca, then
//! foca's accumulated output is drained in order: datagrams out, timers to the scheduler,
//! notifications into the member table. Other tasks talk to it through a [`NodeHandle`].

use crate::broadcasts::{self, ClusterGossip};
use crate::event_streams::EventStreams;
use crate::events::{AgentEvent, MemberEventKind};
use crate::identity::NodeId;
use crate::keys::GossipKeys;
use crate::lamport::LamportClock;
use crate::membership::{MemberRecord, MemberStatus, MemberTable};
use crate::query::answers::Answerable;
use crate::query::gossip::QueryGossip;
use crate::query::message::QueryMessage;
use crate::query::origin::OpenQueries;
use crate::query::{InternalQueries, QueryEvent, QueryLimits, QueryParams, QueryRecord};
use crate::tags_file::{self, Tags, TagsFile};
use crate::timers;
use crate::user_events::{UserEvent, UserEventGossip};
use crate::wire::{self, Datagram};
use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PostcardCodec, Timer};
use rand_foca::rngs::StdRng;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

/// The largest datagram we accept; foca sends at most its `max_packet_size` (1400).
const MAX_DATAGRAM: usize = 65_536;
/// How often a join re-announces to a peer that has not shown up yet (UDP may drop it).
const REANNOUNCE_EVERY: Duration = Duration::from_millis(500);

mod queries;

type SwimCore = Foca<NodeId, PostcardCodec, StdRng, ClusterGossip>;

enum Command {
    Members(oneshot::Sender<Vec<MemberRecord>>),
    Announce(Vec<SocketAddr>),
    ForceLeave(String, oneshot::Sender<()>),
    Leave(oneshot::Sender<()>),
    UpdateTags(TagUpdate, oneshot::Sender<Result<(), String>>),
    SendUserEvent(UserEventRequest, oneshot::Sender<Result<(), String>>),
    Query(QueryParams, oneshot::Sender<QueryStart>),
    RespondQuery(QueryEvent, Vec<u8>, oneshot::Sender<Result<(), String>>),
}

/// The records of a query just sent, or Serf's reason for not sending it.
type QueryStart = Result<mpsc::UnboundedReceiver<QueryRecord>, String>;

/// `serf event NAME PAYLOAD`, before the node stamps it with a Lamport time.
pub struct UserEventRequest {
    pub name: String,
    pub payload: Vec<u8>,
    pub coalesce: bool,
}

/// `serf tags`: keys to drop, then keys to set.
pub struct TagUpdate {
    pub set: Tags,
    pub delete: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("the agent is shutting down")]
pub struct NodeStopped;

/// A cheap, cloneable way to ask the node task for something.
#[derive(Clone)]
pub struct NodeHandle {
    commands: mpsc::UnboundedSender<Command>,
    local: watch::Receiver<NodeId>,
    event_streams: EventStreams,
}

impl NodeHandle {
    /// The RPC `stream` subscribers, which the event loop feeds.
    pub fn event_streams(&self) -> &EventStreams {
        &self.event_streams
    }

    /// This node's identity, kept current as its tags change.
    pub fn local_identity(&self) -> watch::Receiver<NodeId> {
        self.local.clone()
    }

    pub async fn members(&self) -> Result<Vec<MemberRecord>, NodeStopped> {
        self.ask(Command::Members).await
    }

    /// Announce to each address and wait up to `patience` for the members there to be
    /// alive. Returns the addresses reached.
    pub async fn join(
        &self,
        peers: &[SocketAddr],
        patience: Duration,
    ) -> Result<Vec<SocketAddr>, NodeStopped> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let members = self.members().await?;
            let (reached, missing): (Vec<SocketAddr>, Vec<SocketAddr>) =
                peers.iter().partition(|peer| {
                    members
                        .iter()
                        .any(|m| m.id.addr == **peer && m.status == MemberStatus::Alive)
                });
            let now = tokio::time::Instant::now();
            if missing.is_empty() || now >= deadline {
                return Ok(reached);
            }
            self.commands
                .send(Command::Announce(missing))
                .map_err(|_| NodeStopped)?;
            tokio::time::sleep(REANNOUNCE_EVERY.min(deadline - now)).await;
        }
    }

    /// Mark a failed member as left everywhere; members that are not failed are untouched
    /// (force-leaving a live member would leave it stuck in `leaving`, serf#359).
    pub async fn force_leave(&self, node: String) -> Result<(), NodeStopped> {
        self.ask(|done| Command::ForceLeave(node, done)).await
    }

    /// Tell every member we are leaving, then leave the SWIM cluster. Returns once the
    /// datagrams are sent; the caller then exits.
    pub async fn leave(&self) -> Result<(), NodeStopped> {
        self.ask(Command::Leave).await
    }

    /// Change this node's tags, persist them to the tags file if there is one, and gossip
    /// them. The error is the tags file's, in Serf's words; the tags are then unchanged.
    pub async fn update_tags(&self, update: TagUpdate) -> Result<Result<(), String>, NodeStopped> {
        self.ask(|done| Command::UpdateTags(update, done)).await
    }

    /// Send a user event to every member, this one included. The error is Serf's (the
    /// size limit); the event is then not sent.
    pub async fn send_user_event(
        &self,
        request: UserEventRequest,
    ) -> Result<Result<(), String>, NodeStopped> {
        self.ask(|done| Command::SendUserEvent(request, done)).await
    }

    /// Send a query to every member (this one included). The records end with `Done` at
    /// the timeout. The error is Serf's (the size limit); the query is then not sent.
    pub async fn query(&self, params: QueryParams) -> QueryStart {
        self.ask(|started| Command::Query(params, started))
            .await
            .map_err(|stopped| stopped.to_string())?
    }

    /// Answer a query delivered here; Serf's error if it was answered already, is past its
    /// deadline, or the answer is over `query_response_size_limit`.
    pub async fn respond_query(
        &self,
        event: QueryEvent,
        payload: Vec<u8>,
    ) -> Result<Result<(), String>, NodeStopped> {
        self.ask(|done| Command::RespondQuery(event, payload, done))
            .await
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeStopped> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| NodeStopped)?;
        answer.await.map_err(|_| NodeStopped)
    }
}

/// How the node answers and sizes queries.
#[derive(Default)]
pub struct QuerySettings {
    pub limits: QueryLimits,
    pub internal: InternalQueries,
}

/// Bind the gossip socket and start the node task. Every event Serf would report goes to
/// `events` once: member changes as the table sees them (starting with our own join),
/// user events sent from here or received, queries for this member (not `_serf_*` ones).
/// Every datagram is sealed and opened with `keys` (as it is, without encryption).
pub async fn start(
    identity: NodeId,
    bind: SocketAddr,
    tags_file: Option<TagsFile>,
    keys: Arc<GossipKeys>,
    events: mpsc::UnboundedSender<AgentEvent>,
    queries: QuerySettings,
) -> std::io::Result<NodeHandle> {
    let socket = Arc::new(UdpSocket::bind(bind).await?);
    let (commands, command_inbox) = mpsc::unbounded_channel();
    let (timer_deliver, timer_inbox) = mpsc::unbounded_channel();
    let (datagram_deliver, datagram_inbox) = mpsc::unbounded_channel();
    tokio::spawn(receive_datagrams(socket.clone(), datagram_deliver));
    let (received_queries, query_inbox) = mpsc::unbounded_channel();
    let (query_deadlines, expired_queries) = mpsc::unbounded_channel();
    let event_clock = Arc::new(LamportClock::default());
    let query_clock = Arc::new(LamportClock::default());
    // As Serf's: time 0 is never stamped, the first event and query are at 1.
    event_clock.increment();
    query_clock.increment();
    let (local, local_view) = watch::channel(identity.clone());
    // The event loop only stops with the process, so this send always lands.
    let _ = events.send(AgentEvent::Member {
        kind: MemberEventKind::Join,
        members: vec![identity.clone()],
    });
    let node = Node {
        foca: Foca::with_custom_broadcast(
            identity.clone(),
            swim_config(1),
            rand_foca::make_rng(),
            PostcardCodec,
            ClusterGossip {
                user_events: UserEventGossip::new(event_clock.clone(), events.clone()),
                queries: QueryGossip::new(query_clock.clone(), received_queries),
            },
        ),
        event_clock,
        query_clock,
        open_queries: OpenQueries::default(),
        answerable: Answerable::default(),
        query_settings: queries,
        query_deadlines,
        rng: rand_foca::make_rng(),
        events,
        local,
        runtime: AccumulatingRuntime::new(),
        table: MemberTable::new(identity),
        socket,
        timers: timers::spawn_scheduler(timer_deliver),
        tags_file,
        keys,
    };
    tokio::spawn(node.run(NodeInputs {
        datagrams: datagram_inbox,
        timers: timer_inbox,
        commands: command_inbox,
        queries: query_inbox,
        expired_queries,
    }));
    Ok(NodeHandle {
        commands,
        local: local_view,
        event_streams: EventStreams::default(),
    })
}

/// memberlist's LAN profile, which foca's `new_lan` follows; its suspicion timeout and
/// retransmissions grow with the cluster, so the config is resized as members come and go.
fn swim_config(alive_members: usize) -> Config {
    let size = u32::try_from(alive_members).unwrap_or(u32::MAX);
    Config::new_lan(NonZeroU32::new(size).unwrap_or(NonZeroU32::MIN))
}

async fn receive_datagrams(
    socket: Arc<UdpSocket>,
    deliver: mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, from)) => {
                if deliver.send((buf[..len].to_vec(), from)).is_err() {
                    return;
                }
            }
            // ICMP port-unreachable from a dead peer surfaces here on some systems
            Err(e) => debug!("gossip receive: {e}"),
        }
    }
}

/// Everything the node task waits on.
struct NodeInputs {
    datagrams: mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>,
    timers: mpsc::UnboundedReceiver<Timer<NodeId>>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Queries foca's broadcast handler saw for the first time.
    queries: mpsc::UnboundedReceiver<QueryMessage>,
    /// The Lamport times of our own queries whose timeout has passed.
    expired_queries: mpsc::UnboundedReceiver<u64>,
}

struct Node {
    foca: SwimCore,
    /// Shared with foca's broadcast handler, which witnesses the times it receives.
    event_clock: Arc<LamportClock>,
    /// Likewise, for queries.
    query_clock: Arc<LamportClock>,
    /// Queries sent from here, collecting answers.
    open_queries: OpenQueries,
    /// Queries delivered here, not answered yet.
    answerable: Answerable,
    query_settings: QuerySettings,
    query_deadlines: mpsc::UnboundedSender<u64>,
    rng: StdRng,
    events: mpsc::UnboundedSender<AgentEvent>,
    local: watch::Sender<NodeId>,
    runtime: AccumulatingRuntime<NodeId>,
    table: MemberTable,
    socket: Arc<UdpSocket>,
    timers: mpsc::UnboundedSender<(Duration, Timer<NodeId>)>,
    tags_file: Option<TagsFile>,
    keys: Arc<GossipKeys>,
}

impl Node {
    async fn run(mut self, mut inputs: NodeInputs) {
        loop {
            tokio::select! {
                Some((data, from)) = inputs.datagrams.recv() => self.on_datagram(&data, from).await,
                Some(timer) = inputs.timers.recv() => {
                    if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                        warn!("swim timer: {e}");
                    }
                }
                command = inputs.commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => return,
                },
                Some(query) = inputs.queries.recv() => self.on_query(query).await,
                Some(ltime) = inputs.expired_queries.recv() => self.open_queries.close(ltime),
            }
            self.drain().await;
        }
    }

    /// The whole datagram is sealed (kind byte included): open it first, answer a sender
    /// behind a key rotation with our key ring, then handle what it carries.
    async fn on_datagram(&mut self, sealed: &[u8], from: SocketAddr) {
        let now = Instant::now();
        let opened = match self.keys.open(sealed, from, now) {
            Ok(opened) => opened,
            Err(e) => {
                // memberlist's line, at its level
                error!("Decrypt packet failed: {e} from={from}");
                return;
            }
        };
        if let Some(answer) = opened.catch_up {
            info!("{from} seals with an old key: sent it our key ring (key catch-up)");
            self.send_sealed(&answer, from).await;
        }
        let Some(data) = opened.plain else {
            return;
        };
        match wire::decode(&data) {
            Ok(Datagram::Foca(packet)) => {
                if let Err(e) = self.foca.handle_data(packet, &mut self.runtime) {
                    debug!("dropped gossip packet from {from}: {e}");
                }
            }
            Ok(Datagram::LeaveIntent(name)) => {
                info!("member {name} is leaving (told by {from})");
                self.change_member(name, |table| table.leave_intent(name));
            }
            Ok(Datagram::QueryReply(body)) => self.on_query_reply(body, from).await,
            Ok(Datagram::KeyCatchUp(ring)) => match self.keys.catch_up(ring, now) {
                Ok(true) => warn!("took the key ring of {from}: we missed a key rotation"),
                Ok(false) => debug!("key catch-up from {from}: our ring reads it already"),
                Err(e) => warn!("dropped key catch-up from {from}: {e}"),
            },
            Err(e) => warn!("dropped datagram from {from}: {e}"),
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Members(reply) => {
                let _ = reply.send(self.table.records().cloned().collect());
            }
            Command::Announce(peers) => {
                for peer in peers {
                    if let Err(e) = self
                        .foca
                        .announce(NodeId::unknown_at(peer), &mut self.runtime)
                    {
                        warn!("announce to {peer}: {e}");
                    }
                }
            }
            Command::ForceLeave(name, done) => {
                if self
                    .table
                    .get(&name)
                    .is_some_and(|m| m.status == MemberStatus::Failed)
                {
                    info!("force-leave: {name} is now left");
                    self.change_member(&name, |table| table.leave_intent(&name));
                    self.tell_active_members(&wire::leave_intent_datagram(&name))
                        .await;
                }
                let _ = done.send(());
            }
            Command::Leave(done) => {
                let name = self.foca.identity().name.clone();
                info!("leaving the cluster");
                self.change_member(&name, |table| table.leave_intent(&name));
                self.tell_active_members(&wire::leave_intent_datagram(&name))
                    .await;
                if let Err(e) = self.foca.leave_cluster(&mut self.runtime) {
                    warn!("leave: {e}");
                }
                self.drain().await;
                let _ = done.send(());
            }
            Command::UpdateTags(update, done) => {
                let _ = done.send(self.update_tags(update));
            }
            Command::SendUserEvent(request, done) => {
                let _ = done.send(self.send_user_event(request));
            }
            Command::Query(params, started) => {
                let _ = started.send(self.send_query(params));
            }
            Command::RespondQuery(event, payload, done) => {
                let _ = done.send(self.respond(&event, payload).await);
            }
        }
    }

    /// Tags travel in the identity, so new tags are a new identity: foca gossips it and
    /// declares the old one down. Each member applies the sender's identity before the
    /// updates it carries, so the newer identity (a later `started_ms`) has already
    /// replaced the old one there and that down notice is ignored: the member stays alive
    /// and only its tags change.
    fn update_tags(&mut self, update: TagUpdate) -> Result<(), String> {
        let current = self.foca.identity().clone();
        let tags = tags_file::updated(&current.tags, &update.set, &update.delete);
        if let Some(file) = &self.tags_file {
            file.write(&tags)?;
        }
        let renewed = NodeId {
            tags,
            started_ms: current.started_ms + 1,
            ..current.clone()
        };
        self.foca
            .change_identity(renewed.clone(), &mut self.runtime)
            .map_err(|e| format!("Failed to update tags: {e}"))?;
        info!("tags are now {:?}", renewed.tags);
        self.local.send_replace(renewed.clone());
        self.change_member(&current.name, |table| {
            table.member_renamed(&current, renewed)
        });
        Ok(())
    }

    /// Apply a change to the member table and report what it means, if anything.
    fn change_member(&mut self, name: &str, change: impl FnOnce(&mut MemberTable)) {
        let before = self.table.get(name).cloned();
        change(&mut self.table);
        if let Some(after) = self.table.get(name)
            && let Some(kind) = MemberEventKind::of_change(before.as_ref(), after)
        {
            // The event loop only stops with the process.
            let _ = self.events.send(AgentEvent::Member {
                kind,
                members: vec![after.id.clone()],
            });
        }
    }

    /// Handing the event to foca delivers it here (foca passes it to our broadcast
    /// handler) and queues it to ride on the next packets to other members.
    fn send_user_event(&mut self, request: UserEventRequest) -> Result<(), String> {
        UserEvent::check_size(&request.name, &request.payload)?;
        let event = UserEvent {
            ltime: self.event_clock.time(),
            name: request.name,
            payload: request.payload,
            coalesce: request.coalesce,
        };
        let encoded = event.encode();
        UserEvent::check_encoded_size(&encoded)?;
        // As Serf: a refused event does not move the clock.
        self.event_clock.increment();
        self.foca
            .add_broadcast(&broadcasts::user_event(&encoded))
            .map_err(|e| format!("Failed to send user event: {e}"))?;
        Ok(())
    }

    /// Leave intents go straight to every member foca knows as active, so each of them
    /// can tell a leave from a failure before foca's own down notice reaches it.
    async fn tell_active_members(&self, datagram: &[u8]) {
        let peers: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for peer in peers {
            self.send(datagram, peer).await;
        }
    }

    async fn drain(&mut self) {
        while let Some((to, packet)) = self.runtime.to_send() {
            self.send(&wire::foca_datagram(&packet), to.addr).await;
        }
        while let Some((delay, timer)) = self.runtime.to_schedule() {
            // The scheduler only stops when the node task does.
            let _ = self.timers.send((delay, timer));
        }
        while let Some(notification) = self.runtime.to_notify() {
            self.apply(notification);
        }
    }

    /// The one way datagrams leave: sealed with the primary key when encryption is on.
    async fn send(&self, datagram: &[u8], to: SocketAddr) {
        self.send_sealed(&self.keys.seal(datagram), to).await;
    }

    async fn send_sealed(&self, datagram: &[u8], to: SocketAddr) {
        if let Err(e) = self.socket.send_to(datagram, to).await {
            debug!("gossip send to {to}: {e}");
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
                self.local.send_replace(renewed.clone());
                self.change_member(&renewed.name.clone(), |table| table.member_up(renewed));
            }
            OwnedNotification::Active => info!("joined the cluster"),
            OwnedNotification::Idle => info!("no other member is active"),
            // Also the expected end of our own leave.
            OwnedNotification::Defunct => info!("this member is down in the cluster's view"),
        }
        if let Err(e) = self.foca.set_config(swim_config(self.table.alive_count())) {
            warn!("resizing the swim config: {e}");
        }
    }
}
