//! Serving one listener: the accept loop and each connection, plaintext or TLS.
//!
//! Every connection speaks HTTP/1.1 or HTTP/2, whichever the client opens with (hyper-util's
//! auto builder reads the first bytes): etcd serves v2, the `/v3/` gateway and gRPC on one
//! port, and gRPC clients (grpc-go, etcdctl v3) connect over cleartext HTTP/2 with prior
//! knowledge, or over TLS after ALPN picked `h2` (see [`crate::tls`]).
//!
//! Each connection runs in its own task, TLS handshake included (with a timeout), so a slow
//! or silent client never holds up the next accept.
//!
//! A listener bound for both `http://` and `https://` on one address (etcd serves both on
//! one port) tells them apart by each connection's first byte: a TLS connection opens with
//! a handshake record (0x16), which no HTTP/1 method and no HTTP/2 preface starts with.

use crate::h2_authority::AuthorityFix;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// What a listener serves: an axum Router, or a plain function where routing would only
/// cost time (the client port, `crate::grpc::mount`).
pub type HttpService = BoxCloneSyncService<Request, Response, Infallible>;

/// A client that connects and says nothing must not hold its socket forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// What a listener accepts on.
pub enum Socket {
    Tcp(TcpListener),
    /// `unix://` and `unixs://` URLs.
    Unix(UnixListener),
}

/// Whether a listener's connections speak TLS.
#[derive(Clone)]
pub enum Security {
    Plain,
    Tls(Arc<rustls::ServerConfig>),
    /// `http://` and `https://` on one address: each connection's first byte decides.
    Either(Arc<rustls::ServerConfig>),
}

#[derive(Clone)]
enum Accepting {
    Plain,
    Tls(TlsAcceptor),
    Either(TlsAcceptor),
}

/// Serves `service` on every connection `socket` accepts.
pub async fn serve(socket: Socket, security: Security, service: HttpService) {
    let accepting = match security {
        Security::Plain => Accepting::Plain,
        Security::Tls(config) => Accepting::Tls(TlsAcceptor::from(config)),
        Security::Either(config) => Accepting::Either(TlsAcceptor::from(config)),
    };
    let http = Arc::new(builder());
    loop {
        let (http, service) = (http.clone(), service.clone());
        let accepted = match &socket {
            Socket::Tcp(listener) => listener.accept().await.map(|(tcp, remote)| {
                tokio::spawn(tcp_connection(
                    tcp,
                    remote.to_string(),
                    accepting.clone(),
                    http,
                    service,
                ));
            }),
            Socket::Unix(listener) => listener.accept().await.map(|(unix, _)| {
                tokio::spawn(connection(
                    unix,
                    "unix socket".into(),
                    accepting.clone(),
                    http,
                    service,
                ));
            }),
        };
        match accepted {
            Ok(()) => {}
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

async fn tcp_connection(
    tcp: TcpStream,
    remote: String,
    accepting: Accepting,
    http: Arc<auto::Builder<TokioExecutor>>,
    service: HttpService,
) {
    // Replies are small and latency-bound: send them without Nagle's delay.
    let _ = tcp.set_nodelay(true);
    let accepting = match accepting {
        Accepting::Either(acceptor) => {
            let mut first = [0u8; 1];
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
                Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => Accepting::Tls(acceptor),
                Ok(Ok(1)) => Accepting::Plain,
                // Closed, failed or silent before its first byte: nothing to serve.
                _ => return,
            }
        }
        other => other,
    };
    connection(tcp, remote, accepting, http, service).await
}

/// One connection: the TLS handshake if any (which refuses clients without an acceptable
/// certificate), then HTTP until the client goes away.
async fn connection<IO>(
    io: IO,
    remote: String,
    accepting: Accepting,
    http: Arc<auto::Builder<TokioExecutor>>,
    service: HttpService,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let acceptor = match accepting {
        Accepting::Plain => return serve_http(&http, io, remote, service).await,
        Accepting::Tls(acceptor) | Accepting::Either(acceptor) => acceptor,
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
        Ok(Ok(stream)) => serve_http(&http, stream, remote, service).await,
        // etcd logs these too ("http: TLS handshake error from ..."): a client with the
        // wrong CA or no certificate is the usual cause.
        Ok(Err(e)) => tracing::warn!(%remote, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
    }
}

async fn serve_http<IO>(
    http: &auto::Builder<TokioExecutor>,
    io: IO,
    remote: String,
    service: HttpService,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let served = http
        .serve_connection_with_upgrades(
            TokioIo::new(AuthorityFix::new(io)),
            TowerToHyperService::new(service.map_request(|req: Request<_>| req.map(Body::new))),
        )
        .await;
    if let Err(e) = served {
        tracing::debug!(%remote, error = %e, "connection ended");
    }
}
