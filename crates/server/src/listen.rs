//! Binding the listen URLs as etcd 3.4 binds them:
//! - `http://` and `https://` URLs on one address share one listener, whose connections
//!   are told apart by their first byte (see [`conn`]): etcd serves both on one port;
//! - `unix://path` and `unixs://path` listen on a Unix socket at `path` (the URL's host and
//!   path, so `unix://localhost:2379` is the file `localhost:2379`), replacing a stale
//!   socket file as etcd does;
//! - any number of URLs of each kind, each served alike.

use crate::ServeError;
use crate::conn::{self, Security, Socket};
use std::sync::Arc;

/// One bound address and the URLs it serves.
pub struct Bound {
    /// The URLs served here, comma-separated (for logs).
    pub url: String,
    socket: Socket,
    security: Security,
}

impl Bound {
    pub async fn serve(self, service: conn::HttpService) {
        conn::serve(self.socket, self.security, service).await
    }
}

/// Where a URL listens, and whether it wants TLS.
struct Wanted {
    addr: String,
    unix: bool,
    tls: bool,
    urls: Vec<String>,
    /// Both schemes were asked for on this address.
    both: bool,
}

/// Binds every URL; `https://` and `unixs://` ones need `tls` (`cert_flag` names what
/// provides it).
pub async fn bind_all(
    urls: &[String],
    tls: Option<Arc<rustls::ServerConfig>>,
    cert_flag: &str,
) -> Result<Vec<Bound>, ServeError> {
    let mut wanted: Vec<Wanted> = Vec::new();
    for url in urls {
        let (addr, unix, secure) = parse(url)?;
        match wanted.iter_mut().find(|w| w.addr == addr && w.unix == unix) {
            Some(w) => {
                w.both |= w.tls != secure;
                w.tls |= secure;
                w.urls.push(url.clone());
            }
            None => wanted.push(Wanted {
                addr,
                unix,
                tls: secure,
                urls: vec![url.clone()],
                both: false,
            }),
        }
    }
    let mut out = Vec::new();
    for w in wanted {
        let url = w.urls.join(",");
        let listen_err = |reason: String| ServeError::Listen {
            url: url.clone(),
            reason,
        };
        let security = match (&tls, w.tls, w.both) {
            (_, false, _) => Security::Plain,
            (None, true, _) => {
                return Err(listen_err(format!(
                    "https:// needs {cert_flag} and its key file (or auto TLS)"
                )));
            }
            (Some(config), true, false) => Security::Tls(config.clone()),
            (Some(_), true, true) if w.unix => {
                return Err(listen_err(
                    "unix:// and unixs:// cannot share one socket".into(),
                ));
            }
            (Some(config), true, true) => Security::Either(config.clone()),
        };
        let socket = if w.unix {
            match std::fs::remove_file(&w.addr) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(listen_err(e.to_string()));
                }
                _ => {}
            }
            Socket::Unix(
                tokio::net::UnixListener::bind(&w.addr).map_err(|e| listen_err(e.to_string()))?,
            )
        } else {
            Socket::Tcp(
                tokio::net::TcpListener::bind(&w.addr)
                    .await
                    .map_err(|e| listen_err(e.to_string()))?,
            )
        };
        out.push(Bound {
            url,
            socket,
            security,
        });
    }
    Ok(out)
}

/// `url` → (address, Unix socket?, TLS?).
fn parse(url: &str) -> Result<(String, bool, bool), ServeError> {
    let schemes = [
        ("http://", false, false),
        ("https://", false, true),
        ("unix://", true, false),
        ("unixs://", true, true),
    ];
    let Some((rest, unix, tls)) = schemes
        .iter()
        .find_map(|(s, unix, tls)| url.strip_prefix(s).map(|rest| (rest, *unix, *tls)))
    else {
        return Err(ServeError::Listen {
            url: url.to_string(),
            reason: "only http://, https://, unix:// and unixs:// URLs are supported".into(),
        });
    };
    let addr = if unix {
        rest.to_string()
    } else {
        rest.trim_end_matches('/').to_string()
    };
    Ok((addr, unix, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_an_address_a_socket_kind_and_tls() {
        let p = |u| parse(u).unwrap();
        assert_eq!(
            p("http://127.0.0.1:2379/"),
            ("127.0.0.1:2379".into(), false, false)
        );
        assert_eq!(
            p("https://127.0.0.1:2379"),
            ("127.0.0.1:2379".into(), false, true)
        );
        assert_eq!(
            p("unix://localhost:2379"),
            ("localhost:2379".into(), true, false)
        );
        assert_eq!(
            p("unixs:///run/etcd.sock"),
            ("/run/etcd.sock".into(), true, true)
        );
        assert!(parse("ftp://x:1").is_err());
    }

    #[tokio::test]
    async fn http_and_https_on_one_port_share_a_listener() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let urls = [
            format!("http://127.0.0.1:{port}"),
            format!("https://127.0.0.1:{port}"),
        ];
        // Without a certificate the https:// URL is refused, by both its URLs' names.
        let err = bind_all(&urls, None, "--cert-file").await.err().unwrap();
        assert!(err.to_string().contains(&urls.join(",")), "{err}");
    }
}
