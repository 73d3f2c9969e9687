//! TLS as etcd 3.4 sets it up, with rustls on ring.
//!
//! - An `https://` listen URL serves TLS with `--cert-file`/`--key-file` (or, for the peer
//!   URLs, `--peer-cert-file`/`--peer-key-file`); `--auto-tls`/`--peer-auto-tls` generate
//!   a self-signed certificate for the listen hosts instead.
//! - `--client-cert-auth` (or just `--trusted-ca-file`, as in etcd) refuses at the
//!   handshake every client without a certificate signed by `--trusted-ca-file`; the peer
//!   flags do the same on the peer URLs.
//! - Peers are dialed with the peer certificate as client certificate and verified against
//!   `--peer-trusted-ca-file`; with `--peer-auto-tls` and no CA they are not verified at all
//!   (etcd's `InsecureSkipVerify` for self-signed peers).
//!
//! A certificate or key that cannot be loaded stops the server with the flag and the file
//! named. Certificates are checked by webpki, which, like Go since 1.18, refuses SHA-1
//! signatures.
//!
//! The client listeners offer ALPN `h2` and `http/1.1`: gRPC clients (grpc-go) insist on
//! `h2`, curl and the v2 clients take either. Connections are served by [`crate::conn`].

use crate::config::TlsInfo;
use musubi_tls::AnyServerCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {flag} {path}: {reason}")]
    File {
        flag: &'static str,
        path: String,
        reason: String,
    },
    #[error("{0}")]
    Setup(String),
}

/// The flag names of one side, for error messages.
struct Flags {
    cert: &'static str,
    key: &'static str,
    ca: &'static str,
    cert_auth: &'static str,
}

const CLIENT: Flags = Flags {
    cert: "--cert-file",
    key: "--key-file",
    ca: "--trusted-ca-file",
    cert_auth: "--client-cert-auth",
};

const PEER: Flags = Flags {
    cert: "--peer-cert-file",
    key: "--peer-key-file",
    ca: "--peer-trusted-ca-file",
    cert_auth: "--peer-client-cert-auth",
};

/// A certificate chain and its private key.
struct CertAndKey {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// The TLS config of the client listeners, or `None` when no certificate is configured.
/// `listen_urls` name the hosts an `--auto-tls` certificate is made for.
pub fn client_server_config(
    info: &TlsInfo,
    listen_urls: &[String],
) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let Some(identity) = identity(&CLIENT, info, listen_urls)? else {
        return Ok(None);
    };
    let mut config = server_config(&CLIENT, info, identity)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// TLS on the peer side; each part is `None` when no peer TLS flag asks for it.
pub struct PeerTls {
    /// For the peer listeners.
    pub server: Option<Arc<ServerConfig>>,
    /// For dialing other members.
    pub dialer: Option<Arc<ClientConfig>>,
}

pub fn peer_configs(info: &TlsInfo, listen_urls: &[String]) -> Result<PeerTls, TlsError> {
    let identity = identity(&PEER, info, listen_urls)?;
    let dialer = match (&identity, &info.trusted_ca_file, info.auto_tls) {
        (None, None, false) => None,
        _ => Some(peer_client_config(info, identity.as_ref())?),
    };
    let server = identity
        .map(|id| server_config(&PEER, info, id).map(Arc::new))
        .transpose()?;
    Ok(PeerTls { server, dialer })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate this side presents: from the files, generated (auto TLS), or none.
fn identity(
    flags: &Flags,
    info: &TlsInfo,
    listen_urls: &[String],
) -> Result<Option<CertAndKey>, TlsError> {
    match (&info.cert_file, &info.key_file) {
        (Some(cert), Some(key)) => Ok(Some(CertAndKey {
            chain: load_certs(flags.cert, cert)?,
            key: load_key(flags.key, key)?,
        })),
        (Some(_), None) => Err(TlsError::Setup(format!(
            "{} is given without {}",
            flags.cert, flags.key
        ))),
        (None, Some(_)) => Err(TlsError::Setup(format!(
            "{} is given without {}",
            flags.key, flags.cert
        ))),
        (None, None) if info.auto_tls => self_signed(listen_urls).map(Some),
        (None, None) => Ok(None),
    }
}

fn server_config(
    flags: &Flags,
    info: &TlsInfo,
    identity: CertAndKey,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    // etcd requires and verifies client certificates as soon as a trusted CA is given.
    let builder = match (&info.trusted_ca_file, info.client_cert_auth) {
        (Some(ca), _) => {
            let roots = Arc::new(load_roots(flags.ca, ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError::Setup(format!("{} {}: {e}", flags.ca, ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        (None, true) => {
            return Err(TlsError::Setup(format!(
                "{} needs {} (the CA that signs the certificates to accept)",
                flags.cert_auth, flags.ca
            )));
        }
        (None, false) => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(identity.chain, identity.key)
        .map_err(|e| {
            TlsError::Setup(format!(
                "{} and {} do not make a usable certificate: {e}",
                flags.cert, flags.key
            ))
        })?;
    Ok(config)
}

fn peer_client_config(
    info: &TlsInfo,
    identity: Option<&CertAndKey>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match &info.trusted_ca_file {
        Some(ca) => builder.with_root_certificates(load_roots(PEER.ca, ca)?),
        None if info.auto_tls => builder
            .dangerous()
            // --peer-auto-tls peers show self-signed certificates nobody can verify
            // (etcd skips verification too).
            .with_custom_certificate_verifier(Arc::new(AnyServerCert::new(&provider()))),
        // No CA to verify peers against: https peers will be refused as unknown issuers.
        None => builder.with_root_certificates(RootCertStore::empty()),
    };
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| TlsError::Setup(format!("peer client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn load_certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::File {
        flag,
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(pem_reason(e)))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

fn load_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        flag,
        path: path.display().to_string(),
        reason: pem_reason(e),
    })
}

fn load_roots(flag: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(flag, path)? {
        roots.add(cert).map_err(|e| TlsError::File {
            flag,
            path: path.display().to_string(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key in it".into(),
        other => format!("bad PEM: {other:?}"),
    }
}

/// A self-signed certificate for the hosts of `listen_urls` (IP addresses become IP SANs).
fn self_signed(listen_urls: &[String]) -> Result<CertAndKey, TlsError> {
    let mut hosts: Vec<String> = listen_urls.iter().filter_map(|u| url_host(u)).collect();
    hosts.push("localhost".into());
    hosts.sort();
    hosts.dedup();
    let generated = rcgen::generate_simple_self_signed(hosts)
        .map_err(|e| TlsError::Setup(format!("cannot generate a self-signed certificate: {e}")))?;
    Ok(CertAndKey {
        chain: vec![generated.cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into()),
    })
}

/// `host` of `scheme://host:port/...`, without IPv6 brackets.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    Some(musubi_tls::authority_host(authority).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_drop_scheme_port_and_brackets() {
        assert_eq!(
            url_host("https://127.0.0.1:2379").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(url_host("https://[::1]:2379/").as_deref(), Some("::1"));
        assert_eq!(
            url_host("https://example.com").as_deref(),
            Some("example.com")
        );
    }

    #[test]
    fn a_missing_cert_file_is_named() {
        let info = TlsInfo {
            cert_file: Some("/nonexistent/server.crt".into()),
            key_file: Some("/nonexistent/server.key".into()),
            ..TlsInfo::default()
        };
        let err = client_server_config(&info, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read --cert-file /nonexistent/server.crt: "),
            "{err}"
        );
    }

    #[test]
    fn client_cert_auth_without_a_ca_is_refused() {
        let info = TlsInfo {
            auto_tls: true,
            client_cert_auth: true,
            ..TlsInfo::default()
        };
        let err = client_server_config(&info, &[]).unwrap_err().to_string();
        assert!(
            err.contains("--client-cert-auth needs --trusted-ca-file"),
            "{err}"
        );
    }

    #[test]
    fn auto_tls_makes_both_peer_configs() {
        let info = TlsInfo {
            auto_tls: true,
            ..TlsInfo::default()
        };
        let peer = peer_configs(&info, &["https://127.0.0.1:2380".into()]).unwrap();
        assert!(peer.server.is_some() && peer.dialer.is_some());
        let peer = peer_configs(&TlsInfo::default(), &[]).unwrap();
        assert!(peer.server.is_none() && peer.dialer.is_none());
    }
}
