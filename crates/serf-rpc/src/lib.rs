//! Serf's RPC protocol, both ends of it: what the `serf` CLI and its client libraries say to
//! an agent on port 7373, and what the agent answers.
//!
//! Promises: every request and reply shape is a msgpack map keyed by Go field names, in the
//! order Serf's own agent writes them (checked byte for byte against Serf 0.9.4 in the
//! tests); the client holds the conversation Serf's Go client holds, so it talks to a
//! musubi agent and to a Serf agent alike.
//!
//! How a call runs:
//! 1. [`client::RpcClient::connect`] shakes hands (`handshake`, version 1) and, given a key,
//!    authenticates (`auth`).
//! 2. Each request is a [`codec::RequestHeader`] (`Command`, `Seq`) and, for most commands,
//!    a body from [`codec`]; the agent's server reads them with [`codec::RequestReader`].
//! 3. The agent answers with a header (`Error`, `Seq`) and a body
//!    ([`codec::encode_response`]); a streaming command (`monitor`, `stream`, `query`)
//!    keeps sending records under the `Seq` that opened it ([`client::messages`]) until
//!    `stop`.
//! 4. [`members`] prints a `members` reply as Serf's CLI does.
//!
//! ```no_run
//! # async fn run() -> Result<(), musubi_serf_rpc::client::ClientError> {
//! use musubi_serf_rpc::client::RpcClient;
//! use musubi_serf_rpc::codec::MembersResponse;
//! let mut client = RpcClient::connect("127.0.0.1:7373", "").await?;
//! let reply: MembersResponse = client.call_for("members", None::<&()>).await?;
//! println!("{}", musubi_serf_rpc::members::json_document(&reply.members));
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod codec;
pub mod members;
