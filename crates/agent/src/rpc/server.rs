//! Accepts RPC clients and runs each connection: decode a header, let the session handle
//! it, write the reply. Anything a Serf client would not send closes that connection only.

use super::commands::{After, Session};
use crate::node::NodeHandle;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Serve until the process ends; `leave_done` is notified when a client's `leave` has
/// completed and the agent should exit.
/// With `auth_key` (config `rpc_auth`), clients must `auth` with it before any command.
pub async fn serve(
    listener: TcpListener,
    node: NodeHandle,
    leave_done: Arc<Notify>,
    auth_key: Option<String>,
) {
    let auth_key: Option<Arc<str>> = auth_key.filter(|k| !k.is_empty()).map(Arc::from);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let node = node.clone();
                let leave_done = leave_done.clone();
                let auth_key = auth_key.clone();
                tokio::spawn(async move {
                    serve_connection(stream, &node, &leave_done, auth_key.as_deref()).await;
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
    leave_done: &Notify,
    auth_key: Option<&str>,
) {
    let (reader, mut writer) = stream.into_split();
    let mut session = Session::new(node, reader, auth_key);
    loop {
        let header = match session.next_header().await {
            Ok(Some(header)) => header,
            Ok(None) => return,
            Err(e) => {
                warn!("rpc: closing connection: {e}");
                return;
            }
        };
        let reply = match session.handle(header).await {
            Ok(reply) => reply,
            Err(e) => {
                warn!("rpc: closing connection: {e}");
                return;
            }
        };
        if let Some(bytes) = reply.bytes
            && let Err(e) = writer.write_all(&bytes).await
        {
            debug!("rpc write: {e}");
            return;
        }
        match reply.after {
            After::Continue => {}
            After::Close => return,
            After::Shutdown => {
                // Exiting with unread bytes on the connection would reset it, and the client
                // would lose the reply: hang up our side, let the client read and close.
                let _ = writer.shutdown().await;
                let client_closed =
                    async { while let Ok(Some(_)) = session.next_header().await {} };
                let _ = tokio::time::timeout(LINGER, client_closed).await;
                leave_done.notify_one();
                return;
            }
        }
    }
}
