//! The node task: the one owner of foca, the gossip socket and the member table.
//!
//! Each input (a datagram, a timer, a command from the RPC side) is handed to foca, then
//! foca's accumulated output is drained in order: datagrams out, timers to the scheduler,
//! notifications into the member table. Other tasks talk to it through a [`NodeHandle`].
//!
//! foca's timers and probe notifications pass through [`Lifeguard`] on their way: it
//! stretches probe timing with our own health and holds suspicions to their dynamic
//! timeouts. Our probe acks carry our network coordinate and each ack to our own ping is
//! an RTT sample ([`musubi_gossip::coordinate`]). Beside foca's work the node receives whole
//! datagrams over the [`transport`] stream listener on the same address, and syncs its
//! whole state with one random member per push-pull interval ([`musubi_gossip::push_pull`]).
//!
//! The parts live in `node/`: `foca_io` (packets into foca, its output drained),
//! `outbound` (how datagrams leave), `queries`, `lifecycle` (prune, name conflicts, event
//! catch-up) and `push_pull`.

use crate::config::tags_file::{self, Tags, TagsFile};
use crate::event_streams::EventStreams;
use crate::events::{AgentEvent, MemberEventKind};
use crate::timers;
use crate::transport;
use foca::{AccumulatingRuntime, Foca, PostcardCodec, Timer};
use musubi_gossip::broadcasts::{self, ClusterGossip, SharedGossip, UrgentNews};
use musubi_gossip::compression;
use musubi_gossip::conflict::ConflictVote;
use musubi_gossip::coordinate::{Coordinate, Coordinates};
use musubi_gossip::deliver::{Deliver, Inbox};
use musubi_gossip::event_history::EventHistory;
use musubi_gossip::identity::NodeId;
use musubi_gossip::keys::GossipKeys;
use musubi_gossip::lamport::{Clocks, LamportClock};
use musubi_gossip::lifeguard::Lifeguard;
use musubi_gossip::lifeguard::gossip::{ConfirmationGossip, SuspicionConfirmation};
use musubi_gossip::membership::{MemberRecord, MemberStatus, MemberTable};
use musubi_gossip::profile::Profile;
use musubi_gossip::query::answers::Answerable;
use musubi_gossip::query::gossip::QueryGossip;
use musubi_gossip::query::message::QueryMessage;
use musubi_gossip::query::origin::OpenQueries;
use musubi_gossip::query::{InternalQueries, QueryEvent, QueryLimits, QueryParams, QueryRecord};
use musubi_gossip::reaper::{ReapTimeouts, Reaper};
use musubi_gossip::swim::Swim;
use musubi_gossip::user_events::{GOSSIP_EVENT_MAX, UserEvent, UserEventGossip};
use musubi_gossip::wire::{self, Datagram, LifecycleMessage};
use rand_foca::rngs::StdRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

/// The largest datagram we accept; foca sends at most its `max_packet_size` (1400).
const MAX_DATAGRAM: usize = 65_536;
/// Datagrams up to this size go over UDP (memberlist's UDP buffer, foca's packet size);
/// larger ones over the stream transport.
const UDP_DATAGRAM_MAX: usize = 1400;
/// Our refusal to change tags once the node has left the cluster.
const TAGS_AFTER_LEAVE: &str = "Failed to update tags: the agent has left the cluster";
/// How often a join re-announces to a peer that has not shown up yet (UDP may drop it).
const REANNOUNCE_EVERY: Duration = Duration::from_millis(500);

mod foca_io;
mod lifecycle;
mod outbound;
mod push_pull;
mod queries;

type SwimCore = Swim<SharedGossip>;

enum Command {
    Members(oneshot::Sender<Vec<MemberRecord>>),
    Announce(Vec<SocketAddr>),
    CatchUp {
        peers: Vec<SocketAddr>,
        replay: bool,
        answered: oneshot::Sender<()>,
    },
    ForceLeave {
        node: String,
        prune: bool,
        done: oneshot::Sender<()>,
    },
    Leave(oneshot::Sender<()>),
    HasLeft(oneshot::Sender<bool>),
    UpdateTags(TagUpdate, oneshot::Sender<Result<(), String>>),
    SendUserEvent(UserEventRequest, oneshot::Sender<Result<(), String>>),
    Query(QueryParams, oneshot::Sender<QueryStart>),
    RespondQuery(QueryEvent, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Stats(oneshot::Sender<NodeStats>),
    GetCoordinate(String, oneshot::Sender<Option<Coordinate>>),
}

/// Settings of the node beyond its identity (Serf config keys of the same names).
pub struct NodeOptions {
    /// The SWIM timings (`-profile`); the suspicion timeout and retransmissions grow with
    /// the cluster, so foca's config is rebuilt from it as members come and go.
    pub profile: Profile,
    pub user_event_size_limit: usize,
    pub disable_coordinates: bool,
    /// A name conflict is only logged: no vote, and neither claimant shuts down.
    pub disable_name_resolution: bool,
    /// Datagrams are compressed when that shrinks them (not with `-disable-compression`).
    pub enable_compression: bool,
    /// The key ring from `encrypt_key` or `keyring_file` (none: gossip in the clear),
    /// shared with the `_serf_*-key` queries that change it.
    pub keys: Arc<GossipKeys>,
}

/// The node's side of `serf info`: counts and clocks as they are now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStats {
    pub members: usize,
    pub failed: usize,
    pub left: usize,
    pub health_score: u32,
    pub member_time: u64,
    pub event_time: u64,
    pub query_time: u64,
    /// Membership updates foca still has to gossip (Serf's join/leave intent queue).
    pub intent_queue: usize,
    /// User events (and queries) foca still has to gossip.
    pub event_queue: usize,
    pub query_queue: usize,
    pub encrypted: bool,
    pub coordinate_resets: u64,
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

/// What the member lifecycle hands the node at start: clocks restored from the snapshot
/// and the reaping timeouts.
#[derive(Debug, Default)]
pub struct Lifecycle {
    pub clocks: Clocks,
    /// User events below this Lamport time were handled before a restart.
    pub event_min_time: u64,
    pub timeouts: ReapTimeouts,
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
    /// Told when the node stops on its own (it lost its name in a conflict).
    shut_down: Arc<Notify>,
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

    /// Before joining through `peers`: learn the event clock of the first to answer,
    /// so that the events the cluster had before are ignored, or with `replay`, have
    /// them delivered (Serf's `join -replay`). Waits up to `patience` for an answer.
    pub async fn catch_up(
        &self,
        peers: Vec<SocketAddr>,
        replay: bool,
        patience: Duration,
    ) -> Result<(), NodeStopped> {
        let answered = self.ask(|answered| Command::CatchUp {
            peers,
            replay,
            answered,
        });
        match tokio::time::timeout(patience, answered).await {
            Ok(result) => result,
            Err(_) => Ok(()),
        }
    }

    /// Mark a failed member as left everywhere; members that are not failed are untouched
    /// (force-leaving a live member would leave it stuck in `leaving`, serf#359). With
    /// `prune`, a failed or left member is also dropped from every member list at once.
    pub async fn force_leave(&self, node: String, prune: bool) -> Result<(), NodeStopped> {
        self.ask(|done| Command::ForceLeave { node, prune, done })
            .await
    }

    /// Resolves when the node has stopped on its own, without a leave: it lost its name
    /// to another member (Serf's agent then exits).
    pub async fn shut_down(&self) {
        self.shut_down.notified().await
    }

    /// Tell every member we are leaving, then leave the SWIM cluster. Returns once the
    /// datagrams are sent; the caller then exits.
    pub async fn leave(&self) -> Result<(), NodeStopped> {
        self.ask(Command::Leave).await
    }

    /// Whether this node has left the cluster (Serf then refuses to join again).
    pub async fn has_left(&self) -> Result<bool, NodeStopped> {
        self.ask(Command::HasLeft).await
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

    pub async fn stats(&self) -> Result<NodeStats, NodeStopped> {
        self.ask(Command::Stats).await
    }

    /// The last known network coordinate of `node` (this one included); None if there is
    /// none (an unknown node, one never measured, or coordinates disabled).
    pub async fn coordinate(&self, node: String) -> Result<Option<Coordinate>, NodeStopped> {
        self.ask(|reply| Command::GetCoordinate(node, reply)).await
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
/// Every datagram, over UDP or the stream transport, is sealed and opened with
/// `options.keys` (and goes as it is without encryption).
pub async fn start(
    identity: NodeId,
    bind: SocketAddr,
    tags_file: Option<TagsFile>,
    events: mpsc::UnboundedSender<AgentEvent>,
    lifecycle: Lifecycle,
    queries: QuerySettings,
    options: NodeOptions,
) -> std::io::Result<NodeHandle> {
    let socket = Arc::new(UdpSocket::bind(bind).await?);
    // The stream listener takes the same port, also when the bind asked for any port.
    let stream_listener = TcpListener::bind(socket.local_addr()?).await?;
    let (commands, command_inbox) = mpsc::unbounded_channel();
    let (timer_deliver, timer_inbox) = mpsc::unbounded_channel();
    let (frame_deliver, frame_inbox) = mpsc::unbounded_channel();
    tokio::spawn(transport::serve(stream_listener, frame_deliver));
    let (query_deadlines, expired_queries) = mpsc::unbounded_channel();
    let first_sightings = FirstSightings::default();
    let urgent = UrgentNews::default();
    let event_clock = lifecycle.clocks.event.clone();
    let query_clock = lifecycle.clocks.query.clone();
    let history = EventHistory::new(lifecycle.event_min_time);
    // Our own join, as Serf stamps its join intent.
    lifecycle.clocks.member.increment();
    let gossip = SharedGossip::new(ClusterGossip {
        user_events: UserEventGossip::new(event_clock.clone(), deliver_user_events(&events))
            .with_history(history.clone()),
        queries: QueryGossip::new(query_clock.clone(), first_sightings.queries.sink()),
        confirmations: ConfirmationGossip::new(first_sightings.confirmations.sink()),
        urgent: urgent.clone(),
    });
    let (local, local_view) = watch::channel(identity.clone());
    let shut_down = Arc::new(Notify::new());
    // The event loop only stops with the process, so this send always lands.
    let _ = events.send(AgentEvent::Member {
        kind: MemberEventKind::Join,
        members: vec![identity.clone()],
    });
    let node = Node {
        foca: Foca::with_custom_broadcast(
            identity.clone(),
            options.profile.swim_config(1),
            rand_foca::make_rng(),
            PostcardCodec,
            gossip.clone(),
        ),
        coordinates: Coordinates::new(
            identity.name.clone(),
            !options.disable_coordinates,
            rand_foca::make_rng(),
        ),
        lifeguard: Lifeguard::default(),
        epoch: Instant::now(),
        urgent,
        event_clock,
        gossip,
        options,
        query_clock,
        open_queries: OpenQueries::default(),
        first_sightings,
        answerable: Answerable::default(),
        query_settings: queries,
        query_deadlines,
        rng: rand_foca::make_rng(),
        history,
        catching_up: Vec::new(),
        member_clock: lifecycle.clocks.member,
        reaper: Reaper::new(lifecycle.timeouts),
        // set to a random point of the first interval as the node starts
        next_push_pull: Instant::now(),
        joined: false,
        left: false,
        conflict: None,
        shut_down: shut_down.clone(),
        events,
        local,
        runtime: AccumulatingRuntime::new(),
        table: MemberTable::new(identity),
        socket,
        timers: timers::spawn_scheduler(timer_deliver),
        tags_file,
    };
    // Serf counts its own member as joining as it starts.
    crate::telemetry::member_event(MemberEventKind::Join, None);
    tokio::spawn(node.run(NodeInputs {
        frames: frame_inbox,
        timers: timer_inbox,
        commands: command_inbox,
        expired_queries,
    }));
    Ok(NodeHandle {
        commands,
        local: local_view,
        event_streams: EventStreams::default(),
        shut_down,
    })
}

/// User events foca's broadcast handler sees first go to the event loop.
fn deliver_user_events(events: &mpsc::UnboundedSender<AgentEvent>) -> Deliver<UserEvent> {
    let events = events.clone();
    Box::new(move |event: UserEvent| {
        crate::telemetry::user_event_received(&event.name);
        // The agent stopping is the only way the receiver goes; nothing is left to tell.
        let _ = events.send(AgentEvent::User(event));
    })
}

/// What foca's broadcast handler saw for the first time, for the node task to act on once
/// foca returns (see `act_on_first_sightings`).
#[derive(Default)]
struct FirstSightings {
    queries: Inbox<QueryMessage>,
    /// Lifeguard's suspicion confirmations.
    confirmations: Inbox<SuspicionConfirmation>,
}

/// Everything the node task waits on.
struct NodeInputs {
    /// Whole datagrams that came as stream transport frames (UDP ones the task reads
    /// itself).
    frames: mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>,
    timers: mpsc::UnboundedReceiver<Timer<NodeId>>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// The Lamport times of our own queries whose timeout has passed.
    expired_queries: mpsc::UnboundedReceiver<u64>,
}

struct Node {
    foca: SwimCore,
    coordinates: Coordinates,
    lifeguard: Lifeguard,
    /// Lifeguard's clock starts here.
    epoch: Instant,
    /// Counted by foca's broadcast handler: user events and queries new here.
    urgent: UrgentNews,
    /// Shared with foca's broadcast handler, which witnesses the times it receives.
    event_clock: Arc<LamportClock>,
    /// foca's broadcast handler, for broadcasts sent or received directly.
    gossip: SharedGossip,
    options: NodeOptions,
    /// Likewise, for queries.
    query_clock: Arc<LamportClock>,
    /// Queries sent from here, collecting answers.
    open_queries: OpenQueries,
    first_sightings: FirstSightings,
    /// Queries delivered here, not answered yet.
    answerable: Answerable,
    query_settings: QuerySettings,
    query_deadlines: mpsc::UnboundedSender<u64>,
    /// Picks query IDs and relays.
    rng: StdRng,
    /// The user events seen lately, shared with foca's broadcast handler.
    history: EventHistory,
    /// Joins waiting for a member's event clock before they announce themselves.
    catching_up: Vec<oneshot::Sender<()>>,
    /// Ticks on our own join and leave and on every member event this node reports
    /// (`serf info`'s member_time); the snapshot records it. foca orders membership by
    /// incarnation, not by a cluster-wide clock, so it is local.
    member_clock: Arc<LamportClock>,
    reaper: Reaper,
    /// When the next push-pull sync is due.
    next_push_pull: Instant,
    /// foca just became active (we joined): one extra sync, once the notifications are in.
    joined: bool,
    /// We left the cluster: foca is undead and the process is about to exit. Gossip that
    /// says we are down must not reach foca any more, or it would rejoin us under a
    /// renewed identity (as it does for a member wrongly declared down), and the cluster
    /// would see us alive and then failed instead of left.
    left: bool,
    /// The round of asking who holds our name, while one runs.
    conflict: Option<ConflictVote>,
    shut_down: Arc<Notify>,
    events: mpsc::UnboundedSender<AgentEvent>,
    local: watch::Sender<NodeId>,
    runtime: AccumulatingRuntime<NodeId>,
    table: MemberTable,
    socket: Arc<UdpSocket>,
    timers: mpsc::UnboundedSender<(Duration, Timer<NodeId>)>,
    tags_file: Option<TagsFile>,
}

impl Node {
    async fn run(mut self, mut inputs: NodeInputs) {
        self.first_push_pull();
        let timeouts = self.reaper.timeouts();
        let mut reap_tick = tokio::time::interval(timeouts.reap_interval);
        let mut reconnect_tick = tokio::time::interval(timeouts.reconnect_interval);
        reap_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        reconnect_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The task reads the socket itself: a datagram reaches foca with no hop between.
        let socket = self.socket.clone();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let vote_ends = self.conflict.as_ref().map(|vote| vote.deadline);
            let suspicion_due = self.lifeguard.next_deadline().map(|due| self.epoch + due);
            tokio::select! {
                received = socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => {
                        metrics::counter!("memberlist.udp.received").increment(len as u64);
                        self.on_datagram(&buf[..len], from).await;
                    }
                    // ICMP port-unreachable from a dead peer surfaces here on some systems
                    Err(e) => debug!("gossip receive: {e}"),
                },
                Some((data, from)) = inputs.frames.recv() => self.on_datagram(&data, from).await,
                _ = reap_tick.tick() => self.reap(),
                _ = reconnect_tick.tick() => self.reconnect(),
                _ = tokio::time::sleep_until(vote_ends.map_or_else(Instant::now, Instant::from_std)),
                    if vote_ends.is_some() =>
                {
                    if !self.count_conflict_votes() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(suspicion_due.unwrap_or_else(Instant::now)),
                    if suspicion_due.is_some() => self.declare_due_suspects(),
                _ = tokio::time::sleep_until(self.next_push_pull) => self.push_pull().await,
                Some(timer) = inputs.timers.recv() => {
                    if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                        warn!("swim timer: {e}");
                    }
                }
                command = inputs.commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => return,
                },
                Some(ltime) = inputs.expired_queries.recv() => self.open_queries.close(ltime),
            }
            self.drain().await;
            self.act_on_first_sightings().await;
            self.sync_if_just_joined().await;
        }
    }

    /// Confirmations go to Lifeguard; queries are filtered, acked and delivered. What that
    /// hands foca (an ack, a relay) is drained, and may bring more.
    async fn act_on_first_sightings(&mut self) {
        loop {
            let confirmations = self.first_sightings.confirmations.take();
            let queries = self.first_sightings.queries.take();
            if confirmations.is_empty() && queries.is_empty() {
                return;
            }
            let now = self.epoch.elapsed();
            for confirmation in confirmations {
                self.lifeguard
                    .confirm(confirmation.suspect, &confirmation.by, now);
            }
            for query in queries {
                self.on_query(query).await;
            }
            self.drain().await;
        }
    }

    /// The whole datagram is sealed (kind byte included), whether it came over UDP or as
    /// one stream transport frame: open it first, answer a sender behind a key rotation
    /// with our key ring, then handle what it carries. (A catch-up answering a stream
    /// frame goes to the connection's ephemeral port and is lost; the sender's next UDP
    /// datagram, foca probes every second, gets one that arrives.)
    async fn on_datagram(&mut self, sealed: &[u8], from: SocketAddr) {
        let now = std::time::Instant::now();
        let opened = match self.options.keys.open(sealed, from, now) {
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
            Ok(Datagram::QueryReply(body)) => self.on_query_reply(body, from).await,
            Ok(Datagram::Lifecycle(message)) => self.on_lifecycle(message, from).await,
            Ok(Datagram::DirectBroadcast(body)) => {
                if let Err(e) = self.gossip.receive_direct(body) {
                    warn!("dropped a direct broadcast from {from}: {e}");
                }
            }
            Ok(Datagram::KeyCatchUp(ring)) => match self.options.keys.catch_up(ring, now) {
                Ok(true) => warn!("took the key ring of {from}: we missed a key rotation"),
                Ok(false) => debug!("key catch-up from {from}: our ring reads it already"),
                Err(e) => warn!("dropped key catch-up from {from}: {e}"),
            },
            Ok(Datagram::PushPull(body)) => self.on_push_pull(body, from).await,
            // Senders compress once; `decompress` hands a nested one back as it is.
            Ok(Datagram::Compressed(_)) => warn!("dropped datagram from {from}: compressed twice"),
            Err(e) => warn!("dropped datagram from {from}: {e}"),
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Members(reply) => {
                let _ = reply.send(self.table.records().cloned().collect());
            }
            // A join that began before our leave may still be re-announcing.
            Command::Announce(_) if self.left => {}
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
            Command::CatchUp {
                peers,
                replay,
                answered,
            } => {
                let request = wire::lifecycle_datagram(&LifecycleMessage::EventsRequest { replay });
                for peer in peers {
                    self.send(&request, peer).await;
                }
                self.catching_up.push(answered);
            }
            Command::ForceLeave { node, prune, done } => {
                if self
                    .table
                    .get(&node)
                    .is_some_and(|m| m.status == MemberStatus::Failed)
                {
                    info!("force-leave: {node} is now left");
                    self.change_member(&node, |table| table.leave_intent(&node));
                    self.tell_active_members(&wire::leave_intent_datagram(&node))
                        .await;
                }
                if prune {
                    let message = LifecycleMessage::Prune { node: node.clone() };
                    self.tell_active_members(&wire::lifecycle_datagram(&message))
                        .await;
                    self.prune(&node);
                }
                let _ = done.send(());
            }
            Command::Leave(done) => {
                let name = self.foca.identity().name.clone();
                info!("leaving the cluster");
                self.member_clock.increment();
                self.change_member(&name, |table| table.leave_intent(&name));
                self.tell_active_members(&wire::leave_intent_datagram(&name))
                    .await;
                if let Err(e) = self.foca.leave_cluster(&mut self.runtime) {
                    warn!("leave: {e}");
                }
                self.left = true;
                self.drain().await;
                let _ = done.send(());
            }
            Command::HasLeft(reply) => {
                let _ = reply.send(self.left);
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
            Command::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
            Command::GetCoordinate(node, reply) => {
                let _ = reply.send(self.coordinates.get(&node).cloned());
            }
        }
    }

    fn stats(&self) -> NodeStats {
        let count = |status| self.table.records().filter(|m| m.status == status).count();
        NodeStats {
            members: self.table.records().count(),
            failed: count(MemberStatus::Failed),
            left: count(MemberStatus::Left),
            health_score: self.lifeguard.health_score(),
            member_time: self.member_clock.time(),
            event_time: self.event_clock.time(),
            query_time: self.query_clock.time(),
            intent_queue: self.foca.updates_backlog(),
            // User events and queries share foca's one custom broadcast queue, which does
            // not say what it holds: its length is reported as the event queue.
            event_queue: self.foca.custom_broadcast_backlog(),
            query_queue: 0,
            encrypted: self.options.keys.is_enabled(),
            coordinate_resets: self.coordinates.resets(),
        }
    }

    /// Tags travel in the identity, so new tags are a new identity: foca gossips it and
    /// declares the old one down. Each member applies the sender's identity before the
    /// updates it carries, so the newer identity (a later `started_ms`) has already
    /// replaced the old one there and that down notice is ignored: the member stays alive
    /// and only its tags change.
    fn update_tags(&mut self, update: TagUpdate) -> Result<(), String> {
        // A new identity would be gossiped alive: after our leave, that brings us back.
        if self.left {
            return Err(TAGS_AFTER_LEAVE.to_string());
        }
        let current = self.foca.identity().clone();
        let tags = tags_file::updated(&current.tags, &update.set, &update.delete);
        tags_file::check_encoded_size(&tags)?;
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
        let failed_since = self.reaper.failed_since(name);
        change(&mut self.table);
        self.reaper
            .observe(name, self.table.get(name), Instant::now().into_std());
        if let Some(after) = self.table.get(name)
            && let Some(kind) = MemberEventKind::of_change(before.as_ref(), after)
        {
            // The event loop only stops with the process.
            self.member_clock.increment();
            crate::telemetry::member_event(kind, failed_since.map(Instant::from_std));
            let _ = self.events.send(AgentEvent::Member {
                kind,
                members: vec![after.id.clone()],
            });
        }
    }

    /// Handing the event to foca delivers it here (foca passes it to our broadcast
    /// handler) and queues it to ride on the next packets to other members. An event too
    /// big for that is delivered here and sent to every alive member over the stream
    /// transport; they do not pass it on (see `broadcasts`).
    fn send_user_event(&mut self, request: UserEventRequest) -> Result<(), String> {
        let limit = self.options.user_event_size_limit;
        UserEvent::check_size(&request.name, &request.payload, limit).map_err(|e| e.to_string())?;
        let event = UserEvent {
            ltime: self.event_clock.time(),
            name: request.name,
            payload: request.payload,
            coalesce: request.coalesce,
        };
        let encoded = event.encode();
        UserEvent::check_encoded_size(&encoded, limit).map_err(|e| e.to_string())?;
        // As Serf: a refused event does not move the clock.
        self.event_clock.increment();
        self.disseminate(&broadcasts::user_event(&encoded), GOSSIP_EVENT_MAX)
            .map_err(|e| format!("Failed to send user event: {e}"))
    }
}
