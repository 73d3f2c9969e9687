//! Accepts RPC clients and runs each connection: decode a header, let the session handle
//! it, write the reply. Anything a Serf client would not send closes that connection only.

use super::AgentState;
use super::commands::{After, Session};
use super::streams::{Outgoing, write_queued};
use crate::node::NodeHandle;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

/// Serve until the process ends; `leave_done` is notified when a client's `leave` has
/// completed and the agent should exit. `agent` is what the RPC side knows of the agent
/// beyond the node (its handlers, its log).
pub async fn serve(
    listener: TcpListener,
    node: NodeHandle,
    agent: Arc<AgentState>,
    leave_done: Arc<Notify>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let node = node.clone();
                let agent = agent.clone();
                let leave_done = leave_done.clone();
                tokio::spawn(async move {
                    serve_connection(stream, &node, &agent, &leave_done).await;
                    debug!("rpc client {peer} disconnected");
                });
            }
            Err(e) => warn!("rpc accept: {e}"),
        }
    }
}

/// How long a connection that asked the agent to leave may stay open for its reply.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

async fn serve_connection(
    stream: TcpStream,
    node: &NodeHandle,
    agent: &AgentState,
    leave_done: &Notify,
) {
    let (reader, writer) = stream.into_split();
    let (outgoing, queue) = mpsc::unbounded_channel();
    let mut writing = tokio::spawn(write_queued(writer, queue));
    let mut session = Session::new(node, agent, reader, outgoing.clone());
    loop {
        let header = match session.next_header().await {
            Ok(Some(header)) => header,
            Ok(None) => return,
            Err(e) => {
                warn!("rpc: closing connection: {e}");
                return;
            }
        };
        match session.serve(header).await {
            Ok(After::Continue) => {}
            Ok(After::Close) => {
                // Let the writer send what is queued (Serf's last error reply) first.
                let _ = outgoing.send(Outgoing::Close);
                let _ = tokio::time::timeout(LINGER, &mut writing).await;
                return;
            }
            Ok(After::Shutdown) => {
                // Exiting with unread bytes on the connection would reset it, and the client
                // would lose the reply: let the client read and close first. Our side stays
                // open meanwhile: the Go client, seeing our end of stream with the reply,
                // picks one of the two at random and may report `client closed`.
                let client_closed =
                    async { while let Ok(Some(_)) = session.next_header().await {} };
                let _ = tokio::time::timeout(LINGER, client_closed).await;
                leave_done.notify_one();
                return;
            }
            Err(e) => {
                warn!("rpc: closing connection: {e}");
                return;
            }
        }
    }
}
