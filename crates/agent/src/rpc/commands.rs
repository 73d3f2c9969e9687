//! One handler per Serf RPC command: read the body the command takes, ask the node, and
//! answer with the reply shape Serf's Go client decodes.

use super::AgentState;
use super::members::{MemberMatcher, member_wire};
use super::monitor;
use super::queries::{PendingQueries, event_stream, query_params, query_stream};
use super::stats::stats_reply;
use super::streams::{ConnectionWriter, OpenStream, Outgoing, Streams};
use crate::handlers::EventFilters;
use crate::joins;
use crate::key_queries;
use crate::node::{NodeHandle, NodeStopped, TagUpdate, UserEventRequest};
use musubi_gossip::key_queries::KeyOperation;
use musubi_serf_rpc::codec::{
    AuthRequest, CoordinateRequest, CoordinateResponse, CoordinateWire, DecodeError, EventRequest,
    ForceLeaveRequest, HandshakeRequest, HeaderFields, JoinRequest, JoinResponse, KeyringRequest,
    MembersFilter, MembersResponse, MonitorRequest, QueryRequest, RequestHeader, RequestReader,
    RespondRequest, StopRequest, StreamRequest, TagsRequest, encode_response,
};
use tokio::io::AsyncRead;
use tracing::warn;

/// The only IPC version Serf has ever spoken.
const IPC_VERSION: i32 = 1;

// Serf's error strings (cmd/serf/command/agent/ipc.go); clients match on them.
const HANDSHAKE_REQUIRED: &str = "Handshake required";
const UNSUPPORTED_VERSION: &str = "Unsupported IPC version";
const DUPLICATE_HANDSHAKE: &str = "Handshake already performed";
const UNSUPPORTED_COMMAND: &str = "Unsupported command";
const AUTH_REQUIRED: &str = "Authentication required";
const INVALID_AUTH_TOKEN: &str = "Invalid authentication token";
const INVALID_FILTER: &str = "Invalid event filter";
const STREAM_EXISTS: &str = "Stream with given sequence exists";
const INVALID_QUERY_ID: &str = "No pending queries matching ID";
const MONITOR_EXISTS: &str = "Monitor already exists";

/// What the connection does once the reply (if any) is written.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    Close,
    /// The agent left the cluster: close and stop the process.
    Shutdown,
}

pub struct Reply {
    pub bytes: Option<Vec<u8>>,
    pub after: After,
    /// A stream the command opens once its reply is queued.
    pub stream: Option<OpenStream>,
}

impl Reply {
    fn ok(seq: u64) -> Self {
        Reply::with_body::<()>(seq, "", None)
    }

    fn error(seq: u64, error: &str, after: After) -> Self {
        Reply {
            bytes: Some(encode_response::<()>(seq, error, None)),
            after,
            stream: None,
        }
    }

    fn with_body<B: serde::Serialize>(seq: u64, error: &str, body: Option<&B>) -> Self {
        Reply {
            bytes: Some(encode_response(seq, error, body)),
            after: After::Continue,
            stream: None,
        }
    }

    /// Serf drops the connection without a word (a bad filter regexp).
    fn hang_up() -> Self {
        Reply {
            bytes: None,
            after: After::Close,
            stream: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("the request ended before its body")]
    MissingBody,
    #[error(transparent)]
    Stopped(#[from] NodeStopped),
}

/// One client connection: its requests, its writer, its open streams, whether it has
/// shaken hands yet and, when the agent has an `rpc_auth` key, whether it has given it.
pub struct Session<'a, R> {
    node: &'a NodeHandle,
    agent: &'a AgentState,
    /// The Seq of this connection's `monitor`, if it opened one (Serf allows one).
    monitor: Option<u64>,
    requests: RequestReader<R>,
    writer: ConnectionWriter,
    streams: Streams,
    /// Queries this connection's event streams showed, by the ID they were shown with.
    pending_queries: PendingQueries,
    handshake_done: bool,
    authenticated: bool,
    previous_header: RequestHeader,
}

impl<'a, R: AsyncRead + Unpin> Session<'a, R> {
    pub fn new(
        node: &'a NodeHandle,
        agent: &'a AgentState,
        reader: R,
        writer: ConnectionWriter,
    ) -> Self {
        Session {
            node,
            agent,
            monitor: None,
            requests: RequestReader::new(reader),
            streams: Streams::new(writer.clone()),
            writer,
            pending_queries: PendingQueries::default(),
            handshake_done: false,
            authenticated: false,
            previous_header: RequestHeader::default(),
        }
    }

    /// Handle one request: queue its reply, then start the stream it opens, if any.
    pub async fn serve(&mut self, header: RequestHeader) -> Result<After, CommandError> {
        let seq = header.seq;
        let reply = self.handle(header).await?;
        if let Some(bytes) = reply.bytes {
            // The writer only goes away with the connection; then nothing is left to do.
            let _ = self.writer.send(Outgoing::Bytes(bytes));
        }
        if let Some(stream) = reply.stream {
            self.streams.open(seq, stream);
        }
        Ok(reply.after)
    }

    /// The next request's header, or `None` when the client closed the connection.
    pub async fn next_header(&mut self) -> Result<Option<RequestHeader>, DecodeError> {
        let Some(fields) = self.requests.next::<HeaderFields>().await? else {
            return Ok(None);
        };
        self.previous_header = fields.over(&self.previous_header);
        Ok(Some(self.previous_header.clone()))
    }

    async fn handle(&mut self, header: RequestHeader) -> Result<Reply, CommandError> {
        let seq = header.seq;
        if !self.handshake_done && header.command != "handshake" {
            return Ok(Reply::error(seq, HANDSHAKE_REQUIRED, After::Close));
        }
        // As Serf, the refused command's body is left unread: the client's next read is
        // out of step, and the body is then taken for a header repeating the command.
        // Every command but these two needs it: `stream`, `monitor`, `query` and `stop`
        // included, so no stream opens before the key is given.
        if self.agent.rpc_auth.is_some()
            && !self.authenticated
            && !matches!(header.command.as_str(), "handshake" | "auth")
        {
            warn!("rpc: client sent {:?} before auth", header.command);
            return Ok(Reply::error(seq, AUTH_REQUIRED, After::Continue));
        }
        match header.command.as_str() {
            "handshake" => self.handshake(seq).await,
            "auth" => {
                let request: AuthRequest = self.body().await?;
                // With no key set, only an empty token matches, as in Serf.
                if request.auth_key == self.agent.rpc_auth.as_deref().unwrap_or_default() {
                    self.authenticated = true;
                    Ok(Reply::ok(seq))
                } else {
                    Ok(Reply::error(seq, INVALID_AUTH_TOKEN, After::Continue))
                }
            }
            "members" => self.members(seq, MembersFilter::default()).await,
            "members-filtered" => {
                let filter = self.body().await?;
                self.members(seq, filter).await
            }
            "join" => self.join(seq).await,
            "leave" => {
                self.node.leave().await?;
                Ok(Reply {
                    after: After::Shutdown,
                    ..Reply::ok(seq)
                })
            }
            "force-leave" => {
                let request: ForceLeaveRequest = self.body().await?;
                self.node.force_leave(request.node, request.prune).await?;
                Ok(Reply::ok(seq))
            }
            "tags" => {
                let request: TagsRequest = self.body().await?;
                if let Some(store) = &self.agent.config_store
                    && let Err(e) = store.write_tags(&request.tags, &request.delete_tags).await
                {
                    return Ok(Reply::error(seq, &e, After::Continue));
                }
                let update = TagUpdate {
                    set: request.tags,
                    delete: request.delete_tags,
                };
                let error = self.node.update_tags(update).await?.err();
                Ok(Reply::error(
                    seq,
                    &error.unwrap_or_default(),
                    After::Continue,
                ))
            }
            "event" => {
                let request: EventRequest = self.body().await?;
                let event = UserEventRequest {
                    name: request.name,
                    payload: request.payload.into_vec(),
                    coalesce: request.coalesce,
                };
                let error = self.node.send_user_event(event).await?.err();
                Ok(Reply::error(
                    seq,
                    &error.unwrap_or_default(),
                    After::Continue,
                ))
            }
            "query" => self.query(seq).await,
            "stream" => self.stream(seq).await,
            "respond" => self.respond(seq).await,
            "stats" => {
                let local = self.node.local_identity().borrow().clone();
                let stats = self.node.stats().await?;
                let mut reply = stats_reply(&local, &self.agent.event_handlers.borrow(), &stats);
                if let Some(store) = &self.agent.config_store {
                    reply.insert("config_store".into(), store.info_section());
                }
                Ok(Reply::with_body(seq, "", Some(&reply)))
            }
            "get-coordinate" => {
                let request: CoordinateRequest = self.body().await?;
                let coordinate = self.node.coordinate(request.node).await?;
                let reply = CoordinateResponse::from(coordinate.map(|c| CoordinateWire {
                    adjustment: c.adjustment,
                    error: c.error,
                    height: c.height,
                    vec: Some(c.vec),
                }));
                Ok(Reply::with_body(seq, "", Some(&reply)))
            }
            "monitor" => {
                let request: MonitorRequest = self.body().await?;
                if self.monitor.is_some_and(|open| self.streams.is_open(open)) {
                    return Ok(Reply::error(seq, MONITOR_EXISTS, After::Continue));
                }
                match monitor::open(&self.agent.logs, &request.log_level) {
                    Ok(stream) => {
                        self.monitor = Some(seq);
                        Ok(Reply {
                            stream: Some(stream),
                            ..Reply::ok(seq)
                        })
                    }
                    Err(error) => Ok(Reply::error(seq, &error, After::Continue)),
                }
            }
            "stop" => {
                let request: StopRequest = self.body().await?;
                self.streams.stop(request.stop);
                Ok(Reply::ok(seq))
            }
            other => match KeyOperation::of_command(other) {
                Some(op) => self.keys(seq, op).await,
                None => Ok(Reply::error(seq, UNSUPPORTED_COMMAND, After::Close)),
            },
        }
    }

    /// `serf keys`: the operation runs on every alive member; the reply tallies them.
    async fn keys(&mut self, seq: u64, op: KeyOperation) -> Result<Reply, CommandError> {
        let key = match op {
            KeyOperation::List => String::new(),
            _ => self.body::<KeyringRequest>().await?.key,
        };
        let (error, tally) = key_queries::run(self.node, op, &key).await?;
        Ok(Reply::with_body(seq, &error, Some(&tally)))
    }

    async fn body<B: serde::de::DeserializeOwned>(&mut self) -> Result<B, CommandError> {
        self.requests.next().await?.ok_or(CommandError::MissingBody)
    }

    async fn query(&mut self, seq: u64) -> Result<Reply, CommandError> {
        let request: QueryRequest = self.body().await?;
        let started = match query_params(request) {
            Ok(params) => self.node.query(params).await,
            Err(refused) => Err(refused),
        };
        Ok(match started {
            Ok(records) => Reply {
                stream: Some(query_stream(records)),
                ..Reply::ok(seq)
            },
            Err(error) => Reply::error(seq, &error, After::Continue),
        })
    }

    async fn stream(&mut self, seq: u64) -> Result<Reply, CommandError> {
        let request: StreamRequest = self.body().await?;
        let Ok(filters) = EventFilters::parse(&request.filter) else {
            return Ok(Reply::error(seq, INVALID_FILTER, After::Continue));
        };
        if self.streams.is_open(seq) {
            return Ok(Reply::error(seq, STREAM_EXISTS, After::Continue));
        }
        // Subscribed now, so no event after the reply is missed.
        let events = self.node.event_streams().subscribe();
        Ok(Reply {
            stream: Some(event_stream(filters, events, self.pending_queries.clone())),
            ..Reply::ok(seq)
        })
    }

    async fn respond(&mut self, seq: u64) -> Result<Reply, CommandError> {
        let request: RespondRequest = self.body().await?;
        let error = match self.pending_queries.get(request.id) {
            Some(query) => self
                .node
                .respond_query(query, request.payload.into_vec())
                .await?
                .err(),
            None => Some(INVALID_QUERY_ID.to_string()),
        };
        Ok(Reply::error(
            seq,
            &error.unwrap_or_default(),
            After::Continue,
        ))
    }

    async fn handshake(&mut self, seq: u64) -> Result<Reply, CommandError> {
        let request: HandshakeRequest = self.body().await?;
        let error = if request.version != IPC_VERSION {
            UNSUPPORTED_VERSION
        } else if self.handshake_done {
            DUPLICATE_HANDSHAKE
        } else {
            self.handshake_done = true;
            ""
        };
        Ok(Reply::error(seq, error, After::Continue))
    }

    async fn members(&mut self, seq: u64, filter: MembersFilter) -> Result<Reply, CommandError> {
        let Ok(filter) = MemberMatcher::new(&filter) else {
            return Ok(Reply::hang_up());
        };
        let members = self
            .node
            .members()
            .await?
            .iter()
            .filter(|record| filter.matches(record))
            .map(member_wire)
            .collect();
        Ok(Reply::with_body(
            seq,
            "",
            Some(&MembersResponse { members }),
        ))
    }

    async fn join(&mut self, seq: u64) -> Result<Reply, CommandError> {
        let request: JoinRequest = self.body().await?;
        let outcome = joins::join(self.node, &request.existing, request.replay).await?;
        let error = outcome.error().unwrap_or_default();
        let num = i32::try_from(outcome.reached).unwrap_or(i32::MAX);
        Ok(Reply::with_body(seq, &error, Some(&JoinResponse { num })))
    }
}
