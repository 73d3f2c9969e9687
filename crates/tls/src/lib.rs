//! What the server (`--peer-auto-tls` peers) and the CLI (`--insecure-skip-tls-verify`)
//! both need from TLS: a verifier that takes any certificate, and the host of an endpoint.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Takes any server certificate, for peers or servers nobody can verify (self-signed, as
/// etcd's auto TLS makes them). The handshake signatures are still checked, so the other
/// side holds the key of the certificate it shows.
#[derive(Debug)]
pub struct AnyServerCert(WebPkiSupportedAlgorithms);

impl AnyServerCert {
    /// Checks handshake signatures with `provider`'s algorithms.
    pub fn new(provider: &CryptoProvider) -> AnyServerCert {
        AnyServerCert(provider.signature_verification_algorithms)
    }
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The host of `host:port` or `[v6]:port` (or of a bare host), without IPv6 brackets.
pub fn authority_host(authority: &str) -> &str {
    let host = match authority.rsplit_once(':') {
        Some((h, _)) if !h.is_empty() => h,
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_port_and_brackets() {
        assert_eq!(authority_host("127.0.0.1:2379"), "127.0.0.1");
        assert_eq!(authority_host("[::1]:2379"), "::1");
        assert_eq!(authority_host("example.com"), "example.com");
    }
}
