//! The discovery service's v2 keys API, rooted at the discovery URL's path as etcd's
//! discovery client roots it: `http://discovery.example/<token>` has its size at
//! `/<token>/_config/size`, and `http://host:2379/v2/keys/discovery/<token>` (a directory on
//! any etcd or musubi) at `/v2/keys/discovery/<token>/_config/size`. Requests go straight
//! to the service, or through the HTTP proxy `--discovery-proxy` names (the request line
//! then carries the absolute URL, as HTTP proxies expect).

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use musubi_client::{EtcdError, Response};

/// One discovery URL, split for requests.
pub struct Service {
    /// `host:port` of the service.
    authority: String,
    /// The URL's path without a trailing slash: the cluster's directory.
    dir: String,
    /// `host:port` of the proxy, if any.
    proxy: Option<String>,
}

/// A keys reply: the response and its `X-Etcd-Index`, or the v2 error the service sent.
pub type Reply = Result<(Response, u64), EtcdError>;

impl Service {
    pub fn new(url: &str, proxy: Option<&str>) -> Result<Service, String> {
        let (authority, dir) = split(url, "discovery URL")?;
        if dir.is_empty() {
            return Err(format!(
                "discovery URL {url:?} has no path: it must name the cluster's token or directory"
            ));
        }
        let proxy = match proxy {
            Some(p) => Some(split(p, "--discovery-proxy")?.0),
            None => None,
        };
        Ok(Service {
            authority,
            dir,
            proxy,
        })
    }

    /// `GET <dir>/<key>?<query>`.
    pub async fn get(&self, key: &str, query: &str) -> Result<Reply, String> {
        self.send(Method::GET, key, query, None).await
    }

    /// `PUT <dir>/<key>?<query>` with the form `form`.
    pub async fn put(&self, key: &str, query: &str, form: String) -> Result<Reply, String> {
        self.send(Method::PUT, key, query, Some(form)).await
    }

    async fn send(
        &self,
        method: Method,
        key: &str,
        query: &str,
        form: Option<String>,
    ) -> Result<Reply, String> {
        let mut path = self.dir.clone();
        if !key.is_empty() {
            path.push('/');
            path.push_str(key);
        }
        if !query.is_empty() {
            path.push('?');
            path.push_str(query);
        }
        // A proxy is sent the absolute URL; the service itself the path.
        let (dial, target) = match &self.proxy {
            Some(proxy) => (proxy, format!("http://{}{path}", self.authority)),
            None => (&self.authority, path),
        };
        let fail = |e: &dyn std::fmt::Display| format!("discovery: {method} {target}: {e}");
        let tcp = tokio::net::TcpStream::connect(dial.as_str())
            .await
            .map_err(|e| fail(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| fail(&e))?;
        tokio::spawn(conn);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(target.as_str())
            .header(hyper::header::HOST, self.authority.as_str());
        if form.is_some() {
            request = request.header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        let body = Full::new(Bytes::from(form.unwrap_or_default()));
        let request = request.body(body).map_err(|e| fail(&e))?;
        let response = sender.send_request(request).await.map_err(|e| fail(&e))?;
        let status = response.status();
        let index = response
            .headers()
            .get("X-Etcd-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(&e))?
            .to_bytes();
        let unexpected = || {
            fail(&format!(
                "unexpected reply {status}: {}",
                String::from_utf8_lossy(&body).trim_end()
            ))
        };
        if status.is_success() {
            let resp: Response = serde_json::from_slice(&body).map_err(|_| unexpected())?;
            Ok(Ok((resp, index)))
        } else if status == StatusCode::BAD_GATEWAY || status.is_server_error() {
            Err(unexpected())
        } else {
            serde_json::from_slice::<EtcdError>(&body)
                .map(Err)
                .map_err(|_| unexpected())
        }
    }
}

/// `http://host:port/path` → (`host:port`, `/path`); the port defaults to 80.
fn split(url: &str, what: &str) -> Result<(String, String), String> {
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if url.starts_with("https://") {
        return Err(format!(
            "{what} {url:?}: https is not supported by musubi's discovery client; use an http:// URL"
        ));
    } else {
        return Err(format!("{what} {url:?} is not an http:// URL"));
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if host.is_empty() {
        return Err(format!("{what} {url:?} has no host"));
    }
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()));
    let authority = if has_port {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((authority, path.trim_end_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn discovery_urls_split_into_service_and_directory() {
        let split = |u| split(u, "URL");
        assert_eq!(
            split("http://10.0.0.1:2379/v2/keys/discovery/abc"),
            Ok(("10.0.0.1:2379".into(), "/v2/keys/discovery/abc".into()))
        );
        assert_eq!(
            split("http://discovery.example/3f1e/"),
            Ok(("discovery.example:80".into(), "/3f1e".into()))
        );
        assert!(split("ftp://x/y").is_err());
        assert!(split("http:///y").is_err());
    }
}
