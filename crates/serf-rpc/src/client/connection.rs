//! One RPC connection: shake hands, authenticate, then send requests and read what the
//! agent answers. Request and record bodies are the shapes of [`crate::codec`] and [`super::messages`].

use crate::codec::{
    AuthRequest, DecodeError, HandshakeRequest, RequestHeader, RequestReader, StopRequest,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The only RPC version Serf agents speak.
const IPC_VERSION: i32 = 1;

/// A response or stream record header, as the agent writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReplyHeader {
    pub error: String,
    pub seq: u64,
}

/// Why a call failed. The texts are the ones Serf's CLI prints after its own prefix
/// ("Error connecting to Serf agent: ...").
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Go's wording, `dial tcp ADDR: connect: connection refused`, for scripts that grep it.
    #[error("{0}")]
    Dial(String),
    /// The agent answered with an error string.
    #[error("{0}")]
    Remote(String),
    /// The agent hung up without answering (Serf does so for a bad filter regexp).
    #[error("client closed")]
    Closed,
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("reply for request {got} while waiting for {want}")]
    OutOfOrder { got: u64, want: u64 },
}

pub struct RpcClient {
    replies: RequestReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_seq: u64,
}

impl RpcClient {
    /// Connect, shake hands and, when `auth_key` is not empty, authenticate.
    pub async fn connect(addr: &str, auth_key: &str) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| dial_error(addr, &e))?;
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let mut client = RpcClient {
            replies: RequestReader::new(reader),
            writer,
            // Serf's Go client numbers its requests from 1; so do we, so agent logs read alike.
            next_seq: 1,
        };
        let handshake = HandshakeRequest {
            version: IPC_VERSION,
        };
        client.call("handshake", Some(&handshake)).await?;
        if !auth_key.is_empty() {
            client
                .call(
                    "auth",
                    Some(&AuthRequest {
                        auth_key: auth_key.to_string(),
                    }),
                )
                .await?;
        }
        Ok(client)
    }

    /// A command whose reply is a header alone.
    pub async fn call<B: Serialize>(
        &mut self,
        command: &str,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        let seq = self.send(command, body).await?;
        let header = self.reply_header(seq).await?;
        remote_error(header)
    }

    /// A command whose reply carries a body; an error header comes without one we need.
    pub async fn call_for<B: Serialize, R: DeserializeOwned>(
        &mut self,
        command: &str,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let seq = self.send(command, body).await?;
        let header = self.reply_header(seq).await?;
        remote_error(header)?;
        self.body().await
    }

    /// A command whose body matters even when the header reports an error (the key
    /// commands: which nodes failed and why). `Err` only when no body came at all.
    pub async fn call_with_outcome<B: Serialize, R: DeserializeOwned>(
        &mut self,
        command: &str,
        body: Option<&B>,
    ) -> Result<(String, R), ClientError> {
        let seq = self.send(command, body).await?;
        let header = self.reply_header(seq).await?;
        if header.error.is_empty() {
            return Ok((header.error, self.body().await?));
        }
        // Protocol errors (auth required, unsupported command) carry no body: the agent
        // writes header and body together, so a body that has not come promptly is none.
        match tokio::time::timeout(BODY_GRACE, self.replies.next::<R>()).await {
            Ok(Ok(Some(body))) => Ok((header.error, body)),
            _ => Err(ClientError::Remote(header.error)),
        }
    }

    /// Open a stream (`stream`, `monitor`, `query`): returns its Seq once the agent accepted
    /// it; its records then come through [`RpcClient::next_header`] and [`RpcClient::body`].
    pub async fn open_stream<B: Serialize>(
        &mut self,
        command: &str,
        body: Option<&B>,
    ) -> Result<u64, ClientError> {
        let seq = self.send(command, body).await?;
        let header = self.reply_header(seq).await?;
        remote_error(header)?;
        Ok(seq)
    }

    /// Ask the agent to end the stream `seq`. Its reply header arrives among the records;
    /// the caller skips headers with the returned Seq.
    pub async fn stop(&mut self, stream_seq: u64) -> Result<u64, ClientError> {
        self.send("stop", Some(&StopRequest { stop: stream_seq }))
            .await
    }

    /// The next header on the connection; `Closed` when the agent hung up.
    pub async fn next_header(&mut self) -> Result<ReplyHeader, ClientError> {
        self.replies.next().await?.ok_or(ClientError::Closed)
    }

    /// The body following the header just read.
    pub async fn body<R: DeserializeOwned>(&mut self) -> Result<R, ClientError> {
        self.replies.next().await?.ok_or(ClientError::Closed)
    }

    async fn send<B: Serialize>(
        &mut self,
        command: &str,
        body: Option<&B>,
    ) -> Result<u64, ClientError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let header = RequestHeader {
            command: command.to_string(),
            seq,
        };
        let mut bytes = encode(&header);
        if let Some(body) = body {
            bytes.extend(encode(body));
        }
        self.writer.write_all(&bytes).await?;
        Ok(seq)
    }

    async fn reply_header(&mut self, seq: u64) -> Result<ReplyHeader, ClientError> {
        let header = self.next_header().await?;
        if header.seq != seq {
            return Err(ClientError::OutOfOrder {
                got: header.seq,
                want: seq,
            });
        }
        Ok(header)
    }
}

/// How long an error reply's optional body may lag its header.
const BODY_GRACE: Duration = Duration::from_millis(500);

fn remote_error(header: ReplyHeader) -> Result<(), ClientError> {
    if header.error.is_empty() {
        Ok(())
    } else {
        Err(ClientError::Remote(header.error))
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("request bodies always encode")
}

/// Go's `net.Dial` wording: `dial tcp ADDR: connect: connection refused`, the OS text
/// lower-cased at its first letter as Go's errno strings are.
fn dial_error(addr: &str, e: &std::io::Error) -> ClientError {
    if e.raw_os_error().is_none() && !has_port(addr) {
        return ClientError::Dial(format!("dial tcp: address {addr}: missing port in address"));
    }
    let os_text = e.to_string();
    let text = os_text.split(" (os error").next().unwrap_or(&os_text);
    let mut chars = text.chars();
    let lowered: String = chars
        .next()
        .map(|first| first.to_lowercase().chain(chars).collect())
        .unwrap_or_default();
    let step = if e.raw_os_error().is_some() {
        "connect: "
    } else {
        ""
    };
    ClientError::Dial(format!("dial tcp {addr}: {step}{lowered}"))
}

fn has_port(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty() && (!host.contains(':') || host.ends_with(']'))
    })
}
