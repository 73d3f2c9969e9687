//! The discovery service's v2 keys API, rooted at the discovery URL's path as etcd's
//! discovery client roots it: `http://discovery.example/<token>` has its size at
//! `/<token>/_config/size`, and `http://host:2379/v2/keys/discovery/<token>` (a directory on
//! any etcd or musubi) at `/v2/keys/discovery/<token>/_config/size`. Requests go straight
//! to the service, or through the HTTP proxy `--discovery-proxy` names (the request line
//! then carries the absolute URL, as HTTP proxies expect; an `https://` service is reached
//! through a CONNECT tunnel). An `https://` service is verified against the system's CA
//! bundle (`$SSL_CERT_FILE`, else Debian's `/etc/ssl/certs/ca-certificates.crt`), as
//! etcd's discovery client verifies it against Go's system roots.

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use musubi_client::{EtcdError, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

/// Where the system's CA bundle is when `$SSL_CERT_FILE` does not say.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One discovery URL, split for requests.
pub struct Service {
    /// `host:port` of the service.
    authority: String,
    /// The URL's path without a trailing slash: the cluster's directory.
    dir: String,
    /// `host:port` of the proxy, if any.
    proxy: Option<String>,
    /// For an `https://` service: the TLS client and the name its certificate must carry.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// A keys reply: the response and its `X-Etcd-Index`, or the v2 error the service sent.
pub type Reply = Result<(Response, u64), EtcdError>;

impl Service {
    pub fn new(url: &str, proxy: Option<&str>) -> Result<Service, String> {
        let (authority, dir, https) = split(url, "discovery URL")?;
        if dir.is_empty() {
            return Err(format!(
                "discovery URL {url:?} has no path: it must name the cluster's token or directory"
            ));
        }
        let proxy = match proxy {
            Some(p) => match split(p, "--discovery-proxy")? {
                (authority, _, false) => Some(authority),
                (_, _, true) => return Err(format!("--discovery-proxy {p:?} must be http://")),
            },
            None => None,
        };
        let tls = if https {
            let host = authority
                .rsplit_once(':')
                .map_or(authority.as_str(), |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| format!("discovery URL {url:?}: {e}"))?;
            Some((system_tls()?, name))
        } else {
            None
        };
        Ok(Service {
            authority,
            dir,
            proxy,
            tls,
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
        // A proxy is sent the absolute URL of a plain service; a TLS service gets the path,
        // through the proxy's tunnel if there is one.
        let (dial, target) = match (&self.proxy, &self.tls) {
            (Some(proxy), None) => (proxy, format!("http://{}{path}", self.authority)),
            (Some(proxy), Some(_)) => (proxy, path),
            (None, _) => (&self.authority, path),
        };
        let fail = |e: &dyn std::fmt::Display| format!("discovery: {method} {target}: {e}");
        let tcp = tokio::net::TcpStream::connect(dial.as_str())
            .await
            .map_err(|e| fail(&e))?;
        let mut sender = match (&self.tls, &self.proxy) {
            (None, _) => handshake(tcp).await,
            (Some((tls, name)), None) => match tls.connect(name.clone(), tcp).await {
                Ok(stream) => handshake(stream).await,
                Err(e) => Err(e.to_string()),
            },
            (Some((tls, name)), Some(_)) => match tunnel(tcp, &self.authority).await {
                Ok(tunnel) => match tls.connect(name.clone(), tunnel).await {
                    Ok(stream) => handshake(stream).await,
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e),
            },
        }
        .map_err(|e| fail(&e))?;
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

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 connection over `io`, driven by a task of its own.
async fn handshake<IO>(io: IO) -> Result<Sender, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A CONNECT tunnel to `authority` through the proxy at the other end of `tcp`.
async fn tunnel(
    tcp: tokio::net::TcpStream,
    authority: &str,
) -> Result<TokioIo<hyper::upgrade::Upgraded>, String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn.with_upgrades());
    let connect = Request::connect(authority)
        .header(hyper::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(connect)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!(
            "the proxy refused CONNECT {authority}: {}",
            response.status()
        ));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| e.to_string())?;
    Ok(TokioIo::new(upgraded))
}

/// A TLS client that trusts the system's CA bundle.
fn system_tls() -> Result<TlsConnector, String> {
    let path = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| CA_BUNDLE.to_string());
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("discovery: cannot read the CA bundle {path}: {e:?}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("discovery: bad CA bundle {path}: {e:?}"))?;
        // A bundle may hold certificates rustls cannot use; the others still count.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `http[s]://host:port/path` → (`host:port`, `/path`, https?); the port defaults to the
/// scheme's.
fn split(url: &str, what: &str) -> Result<(String, String, bool), String> {
    let (rest, https) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, true)
    } else {
        return Err(format!("{what} {url:?} is not an http:// or https:// URL"));
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if host.is_empty() {
        return Err(format!("{what} {url:?} has no host"));
    }
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()));
    let authority = match (has_port, https) {
        (true, _) => host.to_string(),
        (false, false) => format!("{host}:80"),
        (false, true) => format!("{host}:443"),
    };
    Ok((authority, path.trim_end_matches('/').to_string(), https))
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn discovery_urls_split_into_service_and_directory() {
        let split = |u| split(u, "URL");
        assert_eq!(
            split("http://10.0.0.1:2379/v2/keys/discovery/abc"),
            Ok((
                "10.0.0.1:2379".into(),
                "/v2/keys/discovery/abc".into(),
                false
            ))
        );
        assert_eq!(
            split("http://discovery.example/3f1e/"),
            Ok(("discovery.example:80".into(), "/3f1e".into(), false))
        );
        assert_eq!(
            split("https://discovery.example/3f1e"),
            Ok(("discovery.example:443".into(), "/3f1e".into(), true))
        );
        assert!(split("ftp://x/y").is_err());
        assert!(split("http:///y").is_err());
    }
}
