//! TLS towards https endpoints (`--cacert`, `--cert`/`--key`, `--insecure-skip-tls-verify`),
//! on rustls with ring, done by our own connector so that tonic needs no TLS feature.

use super::failure::Failure;
use hyper_util::rt::TokioIo;
use musubi_tls::AnyServerCert;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Clone)]
pub struct Config(Arc<ClientConfig>);

pub struct Flags<'a> {
    pub cacert: Option<&'a Path>,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
    pub skip_verify: bool,
}

impl Config {
    /// The TLS the flags ask for, or None when they ask for none (etcdctl too turns TLS on
    /// as soon as any of them is given).
    pub fn from_flags(flags: Flags) -> Result<Option<Config>, Failure> {
        if flags.cacert.is_none()
            && flags.cert.is_none()
            && flags.key.is_none()
            && !flags.skip_verify
        {
            return Ok(None);
        }
        let mut roots = RootCertStore::empty();
        if let Some(path) = flags.cacert {
            for cert in certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| Failure::other(format!("{}: {e}", path.display())))?;
            }
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Failure::other(e.to_string()))?;
        let builder = if flags.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCert::new(
                    &ring::default_provider(),
                )))
        } else {
            builder.with_root_certificates(roots)
        };
        let mut config = match (flags.cert, flags.key) {
            (Some(cert), Some(key)) => {
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| Failure::other(format!("{}: {e:?}", key.display())))?;
                builder
                    .with_client_auth_cert(certs(cert)?, key)
                    .map_err(|e| Failure::other(e.to_string()))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(Failure::other(
                    "--cert and --key must be given together".to_string(),
                ));
            }
        };
        // gRPC is HTTP/2 only.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Config(Arc::new(config))))
    }

    /// An https endpoint given without any TLS flag: verified against no roots, as Go's
    /// client would against a private CA it was not told about.
    pub fn default_for_https() -> Config {
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Config(Arc::new(config))
    }

    /// A connector for tonic: TCP to `authority`, then a TLS handshake naming its host.
    pub fn connector(
        &self,
        authority: &str,
    ) -> impl tower::Service<
        tonic::codegen::http::Uri,
        Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
        Error = std::io::Error,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        let connector = TlsConnector::from(self.0.clone());
        let authority = authority.to_string();
        tower::service_fn(move |_uri| {
            let connector = connector.clone();
            let authority = authority.clone();
            async move {
                let host = musubi_tls::authority_host(&authority).to_string();
                let name = ServerName::try_from(host)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let tcp = TcpStream::connect(&authority).await?;
                Ok(TokioIo::new(connector.connect(name, tcp).await?))
            }
        })
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let bad =
        |e: rustls::pki_types::pem::Error| Failure::other(format!("{}: {e:?}", path.display()));
    CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)
}
