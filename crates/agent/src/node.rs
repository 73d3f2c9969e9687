//! The node task: the driver of this member's [`Core`], which holds the whole protocol.
//!
//! The task owns the gossip socket and the clock: a datagram (over UDP, or a frame from
//! the [`transport`] stream listener), the clock reaching `core.next_deadline()`, or a
//! command from the RPC side (through a [`NodeHandle`]) is handed to the core with the
//! time; then the core's outputs go out in order (`driver`): datagrams to the socket or
//! the stream transport, events to the agent's event loop, query answers to whoever
//! asked. The tags file is written here, before the core takes new tags.

use crate::config::tags_file::{Tags, TagsFile};
use crate::event_streams::EventStreams;
use crate::events::AgentEvent;
use crate::transport;
use musubi_gossip::coordinate::Coordinate;
use musubi_gossip::core::{Core, Settings};
use musubi_gossip::identity::NodeId;
use musubi_gossip::membership::{MemberRecord, MemberStatus};
use musubi_gossip::query::{QueryEvent, QueryParams, QueryRecord};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// How often a join re-announces to a peer that has not shown up yet (UDP may drop it).
const REANNOUNCE_EVERY: Duration = Duration::from_millis(500);

mod driver;

pub use musubi_gossip::core::Stats as NodeStats;

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

/// Bind the gossip socket and start the node task. Every event Serf would report goes to
/// `events` once: member changes as the table sees them (starting with our own join),
/// user events sent from here or received, queries for this member (not `_serf_*` ones).
/// Every datagram, over UDP or the stream transport, is sealed and opened with
/// `settings.keys` (and goes as it is without encryption).
pub async fn start(
    settings: Settings,
    bind: SocketAddr,
    tags_file: Option<TagsFile>,
    events: mpsc::UnboundedSender<AgentEvent>,
) -> std::io::Result<NodeHandle> {
    let socket = UdpSocket::bind(bind).await?;
    // The stream listener takes the same port, also when the bind asked for any port.
    let stream_listener = TcpListener::bind(socket.local_addr()?).await?;
    let (commands, command_inbox) = mpsc::unbounded_channel();
    let (frame_deliver, frame_inbox) = mpsc::unbounded_channel();
    tokio::spawn(transport::serve(stream_listener, frame_deliver));
    let (local, local_view) = watch::channel(settings.identity.clone());
    let shut_down = Arc::new(Notify::new());
    let core = Core::new(settings, rand_foca::make_rng(), Instant::now());
    let driver = driver::Driver {
        core,
        socket,
        events,
        local,
        tags_file,
        shut_down: shut_down.clone(),
        catching_up: Vec::new(),
        queries: Default::default(),
    };
    tokio::spawn(driver.run(frame_inbox, command_inbox));
    Ok(NodeHandle {
        commands,
        local: local_view,
        event_streams: EventStreams::default(),
        shut_down,
    })
}
