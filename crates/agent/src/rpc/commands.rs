//! One handler per Serf RPC command: read the body the command takes, ask the node, and
//! answer with the reply shape Serf's Go client decodes.

use super::codec::{
    AuthRequest, DecodeError, EventRequest, ForceLeaveRequest, HandshakeRequest, HeaderFields,
    JoinRequest, JoinResponse, MembersFilter, MembersResponse, RequestHeader, RequestReader,
    StopRequest, TagsRequest, encode_response,
};
use super::members::{MemberMatcher, member_wire};
use crate::join;
use crate::node::{NodeHandle, NodeStopped, TagUpdate, UserEventRequest};
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
}

impl Reply {
    fn ok(seq: u64) -> Self {
        Reply::with_body::<()>(seq, "", None)
    }

    fn error(seq: u64, error: &str, after: After) -> Self {
        Reply {
            bytes: Some(encode_response::<()>(seq, error, None)),
            after,
        }
    }

    fn with_body<B: serde::Serialize>(seq: u64, error: &str, body: Option<&B>) -> Self {
        Reply {
            bytes: Some(encode_response(seq, error, body)),
            after: After::Continue,
        }
    }

    /// Serf drops the connection without a word (a bad filter regexp).
    fn hang_up() -> Self {
        Reply {
            bytes: None,
            after: After::Close,
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

/// One client connection: its requests, whether it has shaken hands yet and, when the
/// agent has an `rpc_auth` key, whether it has given it.
pub struct Session<'a, R> {
    node: &'a NodeHandle,
    requests: RequestReader<R>,
    handshake_done: bool,
    auth_key: Option<&'a str>,
    authenticated: bool,
    previous_header: RequestHeader,
}

impl<'a, R: AsyncRead + Unpin> Session<'a, R> {
    pub fn new(node: &'a NodeHandle, reader: R, auth_key: Option<&'a str>) -> Self {
        Session {
            node,
            requests: RequestReader::new(reader),
            handshake_done: false,
            auth_key,
            authenticated: false,
            previous_header: RequestHeader::default(),
        }
    }

    /// The next request's header, or `None` when the client closed the connection.
    pub async fn next_header(&mut self) -> Result<Option<RequestHeader>, DecodeError> {
        let Some(fields) = self.requests.next::<HeaderFields>().await? else {
            return Ok(None);
        };
        self.previous_header = fields.over(&self.previous_header);
        Ok(Some(self.previous_header.clone()))
    }

    pub async fn handle(&mut self, header: RequestHeader) -> Result<Reply, CommandError> {
        let seq = header.seq;
        if !self.handshake_done && header.command != "handshake" {
            return Ok(Reply::error(seq, HANDSHAKE_REQUIRED, After::Close));
        }
        // As Serf, the refused command's body is left unread: the client's next read is
        // out of step, and the body is then taken for a header repeating the command.
        if self.auth_key.is_some()
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
                if request.auth_key == self.auth_key.unwrap_or_default() {
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
                self.node.force_leave(request.node).await?;
                Ok(Reply::ok(seq))
            }
            "tags" => {
                let request: TagsRequest = self.body().await?;
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
            "stop" => {
                // No command opens a stream yet, so there is never one to stop.
                let _: StopRequest = self.body().await?;
                Ok(Reply::ok(seq))
            }
            _ => Ok(Reply::error(seq, UNSUPPORTED_COMMAND, After::Close)),
        }
    }

    async fn body<B: serde::de::DeserializeOwned>(&mut self) -> Result<B, CommandError> {
        self.requests.next().await?.ok_or(CommandError::MissingBody)
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
        let outcome = join::join(self.node, &request.existing, request.replay).await?;
        let error = outcome.error().unwrap_or_default();
        let num = i32::try_from(outcome.reached).unwrap_or(i32::MAX);
        Ok(Reply::with_body(seq, &error, Some(&JoinResponse { num })))
    }
}
