//! The endpoint list, failover and the HTTP exchange.

use crate::error::{ClusterError, EndpointError, Error, EtcdError};
use crate::request::{DeleteOptions, GetOptions, KeysRequest, SetOptions, WatchOptions};
use crate::types::{Meta, Response};
use crate::watch::Watcher;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderMap};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use musubi_gocompat::strconv::quote;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// An etcd v2 client over a list of endpoints. Cloning is cheap and clones share connections
/// and the endpoint list.
#[derive(Clone)]
pub struct Client {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    endpoints: Arc<RwLock<Vec<String>>>,
    /// The endpoint that answered last; requests start there.
    pinned: Arc<AtomicUsize>,
    debug: bool,
    timeout: Option<Duration>,
}

/// A raw reply, before it is decoded.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Client {
    /// A client for `endpoints` (`http://host:port`; a bare `host:port` means http). Fails if
    /// the list is empty or an endpoint is not plain http.
    pub fn new(endpoints: Vec<String>) -> Result<Self, Error> {
        let endpoints = endpoints
            .iter()
            .map(|e| normalize_endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(Error::InvalidEndpoint("no endpoints given".to_string()));
        }
        Ok(Client {
            http: http_client(None),
            endpoints: Arc::new(RwLock::new(endpoints)),
            pinned: Arc::new(AtomicUsize::new(0)),
            debug: false,
            timeout: None,
        })
    }

    /// Print every request to stderr as the equivalent curl command, as `etcdctl --debug`.
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// Bound connecting and waiting for response headers, per endpoint. Watches are not cut
    /// short: servers send a watch's headers at once and the event later.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = http_client(Some(timeout));
        self.timeout = Some(timeout);
        self
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.read().expect("endpoint lock").clone()
    }

    /// Replace the endpoints with the client URLs the cluster advertises in `/v2/members`.
    /// An empty member list keeps the current endpoints.
    pub async fn sync(&self) -> Result<(), Error> {
        let mut urls: Vec<String> = Vec::new();
        for url in self
            .members()
            .await?
            .into_iter()
            .flat_map(|m| m.client_urls)
        {
            let url = normalize_endpoint(&url)?;
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        if !urls.is_empty() {
            *self.endpoints.write().expect("endpoint lock") = urls;
            self.pinned.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    pub async fn get(&self, key: &str, opts: &GetOptions) -> Result<Response, Error> {
        self.keys(&KeysRequest::get(key, opts)).await
    }

    /// Set, create, update, compare-and-swap or make a directory, depending on `opts`.
    pub async fn set(&self, key: &str, value: &str, opts: &SetOptions) -> Result<Response, Error> {
        self.keys(&KeysRequest::set(key, value, opts)).await
    }

    /// Create `dir/<next index>` (etcd's in-order keys, by POST).
    pub async fn create_in_order(
        &self,
        dir: &str,
        value: &str,
        ttl: Option<u64>,
    ) -> Result<Response, Error> {
        self.keys(&KeysRequest::create_in_order(dir, value, ttl))
            .await
    }

    /// Delete or compare-and-delete, depending on `opts`.
    pub async fn delete(&self, key: &str, opts: &DeleteOptions) -> Result<Response, Error> {
        self.keys(&KeysRequest::delete(key, opts)).await
    }

    /// A watcher on `key`; each [`Watcher::next`] is one long poll.
    pub fn watcher(&self, key: &str, opts: WatchOptions) -> Watcher {
        Watcher::new(self.clone(), key, opts)
    }

    async fn keys(&self, req: &KeysRequest) -> Result<Response, Error> {
        decode(self.send(req).await?)?
            .ok_or_else(|| Error::Decode("empty response body".to_string()))
    }

    /// Send `req` to each endpoint in turn, starting with the pinned one, until one answers
    /// with something other than a 5xx. Like etcd's Go client, a 500 or 503 counts as "that
    /// member has no leader" and moves on.
    pub(crate) async fn send(&self, req: &KeysRequest) -> Result<Reply, Error> {
        self.send_until_answered(req, true).await
    }

    /// As [`Client::send`], but any reply is the answer, a 5xx included: for `/health`,
    /// whose 503 `{"health":"false"}` (no leader) is that member's answer, as etcdctl reads
    /// it, not a reason to ask the next.
    pub(crate) async fn send_answered(&self, req: &KeysRequest) -> Result<Reply, Error> {
        self.send_until_answered(req, false).await
    }

    async fn send_until_answered(
        &self,
        req: &KeysRequest,
        skip_server_errors: bool,
    ) -> Result<Reply, Error> {
        let endpoints = self.endpoints();
        let start = self.pinned.load(Ordering::Relaxed);
        let mut failures = ClusterError::default();
        for i in 0..endpoints.len() {
            let k = (start + i) % endpoints.len();
            let endpoint = &endpoints[k];
            let url = format!("{endpoint}{}", req.path_and_query);
            if self.debug {
                eprintln!("cURL Command: {}", curl_command(req, &url));
            }
            match self.send_once(req, endpoint, &url).await {
                Ok(reply) if skip_server_errors && reply.status.is_server_error() => {
                    failures.errors.push(EndpointError {
                        unreachable: false,
                        message: match reply.status {
                            StatusCode::INTERNAL_SERVER_ERROR | StatusCode::SERVICE_UNAVAILABLE => {
                                format!("client: etcd member {endpoint} has no leader")
                            }
                            s => format!(
                                "client: etcd member {endpoint} returns server error [{}]",
                                s.canonical_reason().unwrap_or("")
                            ),
                        },
                    })
                }
                Ok(reply) => {
                    self.pinned.store(k, Ordering::Relaxed);
                    return Ok(reply);
                }
                Err(e) => failures.errors.push(e),
            }
        }
        Err(Error::Cluster(failures))
    }

    async fn send_once(
        &self,
        req: &KeysRequest,
        endpoint: &str,
        url: &str,
    ) -> Result<Reply, EndpointError> {
        let mut builder = Request::builder().method(req.method.clone()).uri(url);
        if req.body.is_some() {
            builder = builder.header(CONTENT_TYPE, req.body_type);
        }
        let body = Full::new(Bytes::from(req.body.clone().unwrap_or_default()));
        let request = builder.body(body).map_err(|e| EndpointError {
            unreachable: false,
            message: e.to_string(),
        })?;
        let pending = self.http.request(request);
        let response = match self.timeout {
            Some(t) => tokio::time::timeout(t, pending)
                .await
                .map_err(|_| EndpointError {
                    unreachable: false,
                    message: format!("client: endpoint {endpoint} exceeded header timeout"),
                })?,
            None => pending.await,
        }
        .map_err(|e| transport_error(endpoint, &e))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| EndpointError {
                unreachable: false,
                message: format!("{endpoint}: reading reply: {e}"),
            })?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

fn http_client(connect_timeout: Option<Duration>) -> HttpClient<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(connect_timeout);
    connector.set_nodelay(true);
    HttpClient::builder(TokioExecutor::new()).build(connector)
}

fn normalize_endpoint(endpoint: &str) -> Result<String, Error> {
    let endpoint = endpoint.trim();
    if endpoint.starts_with("https://") {
        return Err(Error::InvalidEndpoint(format!(
            "{endpoint}: https endpoints are not supported"
        )));
    }
    let authority = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let url = format!("http://{authority}");
    match url.parse::<hyper::Uri>() {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(url),
        _ => Err(Error::InvalidEndpoint(format!(
            "{endpoint}: not a valid endpoint URL"
        ))),
    }
}

/// Go's wording, e.g. `dial tcp 127.0.0.1:1: connect: connection refused`.
fn transport_error(endpoint: &str, e: &hyper_util::client::legacy::Error) -> EndpointError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut io = None;
    while let Some(s) = source {
        if let Some(found) = s.downcast_ref::<std::io::Error>() {
            io = Some(found);
        }
        source = s.source();
    }
    let addr = endpoint.trim_start_matches("http://");
    if e.is_connect() {
        let why = match io.map(|io| io.kind()) {
            Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
            Some(std::io::ErrorKind::TimedOut) | None => "i/o timeout".to_string(),
            Some(_) => io.map(|io| io.to_string()).unwrap_or_default(),
        };
        return EndpointError {
            unreachable: true,
            message: format!("dial tcp {addr}: connect: {why}"),
        };
    }
    let why = io.map(|io| io.to_string()).unwrap_or_else(|| e.to_string());
    EndpointError {
        unreachable: false,
        message: format!("{endpoint}: {why}"),
    }
}

fn curl_command(req: &KeysRequest, url: &str) -> String {
    match &req.body {
        Some(body) => format!("curl -X {} {url} -d {}", req.method, quote(body)),
        None => format!("curl -X {} {url}", req.method),
    }
}

/// A 2xx reply as a [`Response`] (`None` for an empty body, which a watch gets when the
/// server gives up on it), anything else as the etcd error it carries.
pub(crate) fn decode(reply: Reply) -> Result<Option<Response>, Error> {
    if !reply.status.is_success() {
        return Err(decode_error(&reply));
    }
    if reply.body.is_empty() {
        return Ok(None);
    }
    let mut resp: Response = serde_json::from_slice(&reply.body)
        .map_err(|e| Error::Decode(format!("{e}: {}", String::from_utf8_lossy(&reply.body))))?;
    resp.meta = meta(&reply.headers);
    Ok(Some(resp))
}

fn decode_error(reply: &Reply) -> Error {
    match serde_json::from_slice::<EtcdError>(&reply.body) {
        Ok(e) => Error::Etcd(e),
        Err(_) => Error::Decode(format!(
            "unexpected reply {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body).trim_end()
        )),
    }
}

fn meta(headers: &HeaderMap) -> Meta {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let number = |name: &str| text(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    Meta {
        etcd_index: number("x-etcd-index"),
        raft_index: number("x-raft-index"),
        raft_term: number("x-raft-term"),
        cluster_id: text("x-etcd-cluster-id").map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Method;

    #[test]
    fn endpoints_are_normalised_and_https_refused() {
        assert_eq!(
            normalize_endpoint("127.0.0.1:2379/").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert!(normalize_endpoint("https://a:1").is_err());
        assert!(normalize_endpoint("http://").is_err());
    }

    #[test]
    fn curl_line_matches_etcdctl_debug() {
        let req = KeysRequest::set("/dbg", "a b&c=d", &SetOptions::default());
        assert_eq!(
            curl_command(&req, "http://h:1/v2/keys/dbg"),
            r#"curl -X PUT http://h:1/v2/keys/dbg -d "value=a+b%26c%3Dd""#
        );
        let get = KeysRequest {
            method: Method::GET,
            path_and_query: String::new(),
            body: None,
            body_type: "",
        };
        assert_eq!(
            curl_command(&get, "http://h:1/x"),
            "curl -X GET http://h:1/x"
        );
    }

    #[test]
    fn error_reply_decodes_to_etcd_error_with_go_display() {
        let reply = Reply {
            status: StatusCode::NOT_FOUND,
            headers: HeaderMap::new(),
            body: Bytes::from_static(
                br#"{"errorCode":100,"message":"Key not found","cause":"/nope","index":17}"#,
            ),
        };
        let err = decode(reply).unwrap_err();
        assert_eq!(err.to_string(), "100: Key not found (/nope) [17]");
    }
}
