//! One client port serves HTTP/1.1 (`/version`) and gRPC (h2c with prior knowledge, or
//! HTTP/2 after ALPN `h2` over TLS), as etcd's does: a real member, started in-process.

use hyper_util::rt::TokioIo;
use musubi_proto::etcdserverpb::{RangeRequest, RangeResponse, kv_client::KvClient};
use musubi_server::config::{self, Invocation};
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a one-member cluster in this runtime; returns its client address.
fn start_member(data_dir: &Path, scheme: &str, tls_flags: &[String]) -> String {
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("{scheme}://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut args: Vec<String> = [
        "--name",
        "grpc-port",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
    ]
    .map(String::from)
    .to_vec();
    args.extend_from_slice(tls_flags);
    let Ok(Invocation::Serve(config)) = config::parse(&args) else {
        panic!("flags parse: {args:?}");
    };
    tokio::spawn(musubi_server::run(*config));
    format!("127.0.0.1:{client}")
}

/// `GET /version` over HTTP/1.1 on `io`; returns the whole reply.
async fn get_version(mut io: impl AsyncRead + AsyncWrite + Unpin) -> String {
    io.write_all(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    io.read_to_string(&mut reply).await.unwrap();
    reply
}

/// Connects until the member listens (it binds before opening its log, but give it time).
async fn connect(addr: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return tcp,
            Err(e) if Instant::now() > deadline => panic!("{addr} never listened: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn health_check(channel: Channel) -> ServingStatus {
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check answers");
    reply.into_inner().status()
}

fn assert_version_reply(reply: &str) {
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"etcdserver\""), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_port_serves_http1_and_h2c_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let addr = start_member(dir.path(), "http", &[]);

    assert_version_reply(&get_version(connect(&addr).await).await);

    // tonic's channel speaks HTTP/2 with prior knowledge, as grpc-go does without TLS.
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(health_check(channel.clone()).await, ServingStatus::Serving);

    // gRPC errors come back as gRPC statuses with etcd's messages.
    let status = KvClient::new(channel.clone())
        .range(RangeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "etcdserver: key is not provided");

    // A service etcd does not have answers as gRPC, not with the HTTP handlers' 404 page.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<RangeRequest, RangeResponse>::default();
    let path = PathAndQuery::from_static("/etcdserverpb.NoSuchService/Call");
    let status = grpc
        .unary(tonic::Request::new(RangeRequest::default()), path, codec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);

    // HTTP/2 without the gRPC content type is the HTTP API.
    let (mut h2c, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(connect(&addr).await),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://{addr}/version"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = h2c.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body.to_bytes()).contains("\"etcdserver\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_port_offers_h2_and_http1_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let tls_flags = [
        "--cert-file".to_string(),
        cert_file.display().to_string(),
        "--key-file".to_string(),
        key_file.display().to_string(),
    ];
    let addr = start_member(&dir.path().join("data"), "https", &tls_flags);

    let trusting = |alpn: &[u8]| {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(cert.cert.der().to_vec()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(config))
    };
    let server_name = ServerName::try_from("127.0.0.1").unwrap();

    let http1 = trusting(b"http/1.1")
        .connect(server_name.clone(), connect(&addr).await)
        .await
        .unwrap();
    assert_eq!(http1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_version_reply(&get_version(http1).await);

    // grpc-go refuses a TLS server that does not pick `h2` by ALPN: dial as it does.
    let h2 = trusting(b"h2");
    let connector = tower::service_fn(move |_| {
        let (h2, server_name, addr) = (h2.clone(), server_name.clone(), addr.clone());
        async move {
            let tls = h2.connect(server_name, connect(&addr).await).await?;
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    let channel = Endpoint::from_static("http://127.0.0.1")
        .connect_with_connector(connector)
        .await
        .unwrap();
    assert_eq!(health_check(channel).await, ServingStatus::Serving);
}
