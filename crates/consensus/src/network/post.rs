//! One JSON POST to a peer, shared by the Raft RPC client and the follower-to-leader
//! forwarder: both must tell "could not connect" (nothing was delivered) apart from every
//! other failure (it may have been delivered).

use super::cluster_stamp;
use crate::Member;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A POST that got no decodable 2xx reply.
pub(crate) enum PostFailure {
    /// Could not connect: the request never reached the peer.
    Unreachable(String),
    /// The peer has no such route (HTTP 404, an older version): nothing ran.
    NoRoute(String),
    /// Anything later: timeouts, resets, other non-2xx statuses, bad replies.
    Failed(String),
}

/// A pooled client; peer messages are small and latency-bound, hence `TCP_NODELAY`.
/// `http://` peer URLs are dialed in the clear and `https://` ones with `tls` (the
/// server's `--peer-*` TLS flags); without `tls` an https peer cannot be verified, so
/// dialing it fails with the certificate error.
pub(crate) fn http_client(
    connect_timeout: Option<Duration>,
    tls: Option<Arc<ClientConfig>>,
) -> HttpClient {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(connect_timeout);
    // The TLS layer wraps the TCP connector, which must then let https URLs through.
    tcp.enforce_http(false);
    let tls = tls.map_or_else(untrusting_config, |c| (*c).clone());
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A client config that trusts no CA, for a member given no peer TLS flags.
fn untrusting_config() -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// The member's first peer URL without a trailing `/`, or "" when it has none.
pub(crate) fn peer_base(member: &Member) -> &str {
    member
        .peer_urls
        .first()
        .map_or("", |u| u.trim_end_matches('/'))
}

/// POSTs `body` as JSON to `url` and decodes the JSON reply, all within `ttl`. With
/// `cluster`, the request names it and a reply from any other cluster (or from something
/// that names none) counts as unreachable: nothing reached a member of ours
/// (see [`cluster_stamp`]). Without it (a member that does not know its cluster yet), the
/// reply is taken as it comes.
pub(crate) async fn post_json<T: DeserializeOwned>(
    http: &HttpClient,
    cluster: Option<u64>,
    url: &str,
    body: Bytes,
    ttl: Duration,
) -> Result<T, PostFailure> {
    let mut request = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| PostFailure::Unreachable(format!("bad peer URL {url:?}: {e}")))?;
    if let Some(cluster) = cluster {
        request
            .headers_mut()
            .insert(cluster_stamp::HEADER, cluster_stamp::value(cluster));
    }
    let exchange = async {
        let response = http.request(request).await.map_err(|e| {
            let msg = format!("{url}: {e}");
            if e.is_connect() {
                PostFailure::Unreachable(msg)
            } else {
                PostFailure::Failed(msg)
            }
        })?;
        if let Some(foreign) =
            cluster.and_then(|c| cluster_stamp::foreign_reply(url, c, response.headers()))
        {
            return Err(PostFailure::Unreachable(foreign));
        }
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| PostFailure::Failed(format!("{url}: {e}")))?
            .to_bytes();
        if !status.is_success() {
            let msg = format!("{url}: HTTP {status}: {}", String::from_utf8_lossy(&bytes));
            return Err(if status == hyper::StatusCode::NOT_FOUND {
                PostFailure::NoRoute(msg)
            } else {
                PostFailure::Failed(msg)
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| PostFailure::Failed(format!("{url}: undecodable reply: {e}")))
    };
    tokio::time::timeout(ttl, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(PostFailure::Failed(format!(
                "{url}: no reply within {ttl:?}"
            )))
        })
}
