//! TLS as go-livepeer uses it: orchestrators serve a self-signed certificate, transcoders
//! connect without checking it (InsecureSkipVerify) unless told to pin one certificate. Built on
//! rustls with the ring provider; ALPN offers HTTP/2 (gRPC and result uploads) and HTTP/1.1.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate {path}: {problem}")]
    Certificate { path: String, problem: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a client accepts from the server.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Any certificate (go-livepeer's default between transcoder and orchestrator).
    Any,
    /// Exactly this certificate (DER), whatever names it carries.
    Pinned(Vec<u8>),
}

impl Trust {
    /// Reads a PEM file with the certificate to pin.
    pub fn pin_file(path: &str) -> Result<Trust, TlsError> {
        let bad = |problem: String| TlsError::Certificate {
            path: path.to_string(),
            problem,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let cert = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .ok_or_else(|| bad("no PEM certificate in the file".into()))?
            .map_err(|e| bad(e.to_string()))?;
        Ok(Trust::Pinned(cert.to_vec()))
    }
}

#[derive(Debug)]
struct Verifier {
    trust: Trust,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.trust {
            Trust::Any => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(der) if der.as_slice() == end_entity.as_ref() => {
                Ok(ServerCertVerified::assertion())
            }
            Trust::Pinned(_) => Err(rustls::Error::General(
                "the orchestrator's certificate is not the pinned one".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration with `trust`, offering `alpn` protocols.
pub fn client_config(trust: &Trust, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier {
            trust: trust.clone(),
            provider,
        }))
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(c)
}

/// A fresh self-signed certificate for `host` (as go-livepeer's orchestrator makes): the
/// certificate in DER and PEM, and its key.
pub struct SelfSigned {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    key_der: Vec<u8>,
}

pub fn self_signed(host: &str) -> Result<SelfSigned, TlsError> {
    let c = rcgen::generate_simple_self_signed(vec![host.to_string()])
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    Ok(SelfSigned {
        cert_der: c.cert.der().to_vec(),
        cert_pem: c.cert.pem(),
        key_der: c.key_pair.serialize_der(),
    })
}

/// A server configuration for `cert`, offering HTTP/2 and HTTP/1.1.
pub fn server_config(cert: &SelfSigned) -> Result<rustls::ServerConfig, TlsError> {
    let mut c = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
        )
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(c)
}
