//! Serving one listener: the accept loop and each connection, plaintext or TLS.
//!
//! Every connection speaks HTTP/1.1 or HTTP/2, whichever the client opens with (hyper-util's
//! auto builder reads the first bytes): etcd serves v2, the `/v3/` gateway and gRPC on one
//! port, and gRPC clients (grpc-go, etcdctl v3) connect over cleartext HTTP/2 with prior
//! knowledge, or over TLS after ALPN picked `h2` (see [`crate::tls`]).
//!
//! Each connection runs in its own task, TLS handshake included (with a timeout), so a slow
//! or silent client never holds up the next accept.

use crate::h2_authority::AuthorityFix;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A client that connects and says nothing must not hold its socket forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on every connection `listener` accepts, over TLS when `tls` is set.
pub async fn serve(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, router: Router) {
    let acceptor = tls.map(TlsAcceptor::from);
    let http = Arc::new(builder());
    loop {
        match listener.accept().await {
            Ok((tcp, remote)) => {
                tokio::spawn(connection(
                    tcp,
                    remote,
                    acceptor.clone(),
                    http.clone(),
                    router.clone(),
                ));
            }
            // Out of file descriptors and the like: wait instead of spinning.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // etcd's --max-concurrent-streams default: a client multiplexes all its watches and
    // requests over one connection, and hyper's default of 200 would queue the rest.
    builder.http2().max_concurrent_streams(u32::MAX);
    builder
}

/// One connection: the TLS handshake if any (which refuses clients without an acceptable
/// certificate), then HTTP until the client goes away.
async fn connection(
    tcp: TcpStream,
    remote: SocketAddr,
    tls: Option<TlsAcceptor>,
    http: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
) {
    // Replies are small and latency-bound: send them without Nagle's delay.
    let _ = tcp.set_nodelay(true);
    let Some(acceptor) = tls else {
        return serve_http(&http, tcp, remote, router).await;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => serve_http(&http, stream, remote, router).await,
        // etcd logs these too ("http: TLS handshake error from ..."): a client with the
        // wrong CA or no certificate is the usual cause.
        Ok(Err(e)) => tracing::warn!(%remote, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
    }
}

async fn serve_http<IO>(
    http: &auto::Builder<TokioExecutor>,
    io: IO,
    remote: SocketAddr,
    router: Router,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let served = http
        .serve_connection_with_upgrades(
            TokioIo::new(AuthorityFix::new(io)),
            TowerToHyperService::new(router),
        )
        .await;
    if let Err(e) = served {
        tracing::debug!(%remote, error = %e, "connection ended");
    }
}
