//! One JSON POST to a peer, shared by the Raft RPC client and the follower-to-leader
//! forwarder: both must tell "could not connect" (nothing was delivered) apart from every
//! other failure (it may have been delivered).

use crate::Member;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use std::time::Duration;

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A POST that got no decodable 2xx reply.
pub(crate) enum PostFailure {
    /// Could not connect: the request never reached the peer.
    Unreachable(String),
    /// Anything later: timeouts, resets, non-2xx statuses, bad replies.
    Failed(String),
}

/// A pooled client; peer messages are small and latency-bound, hence `TCP_NODELAY`.
pub(crate) fn http_client(connect_timeout: Option<Duration>) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(connect_timeout);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The member's first peer URL without a trailing `/`, or "" when it has none.
pub(crate) fn peer_base(member: &Member) -> &str {
    member
        .peer_urls
        .first()
        .map_or("", |u| u.trim_end_matches('/'))
}

/// POSTs `body` as JSON to `url` and decodes the JSON reply, all within `ttl`.
pub(crate) async fn post_json<T: DeserializeOwned>(
    http: &HttpClient,
    url: &str,
    body: Bytes,
    ttl: Duration,
) -> Result<T, PostFailure> {
    let request = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| PostFailure::Unreachable(format!("bad peer URL {url:?}: {e}")))?;
    let exchange = async {
        let response = http.request(request).await.map_err(|e| {
            let msg = format!("{url}: {e}");
            if e.is_connect() {
                PostFailure::Unreachable(msg)
            } else {
                PostFailure::Failed(msg)
            }
        })?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| PostFailure::Failed(format!("{url}: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(PostFailure::Failed(format!(
                "{url}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
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
