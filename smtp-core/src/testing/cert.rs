//! A throwaway certificate authority and server certificate, made with rcgen, so that a
//! [`TestServer`](super::TestServer) speaks TLS without files.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::tls::TlsConfig;

/// The server's TLS setup and the PEM of the CA a client must trust.
pub(super) struct SelfSigned {
    pub(super) tls: TlsConfig,
    pub(super) ca_pem: String,
}

/// A CA and a certificate it signed for `localhost` and `127.0.0.1`.
pub(super) fn self_signed() -> Result<SelfSigned, String> {
    let fail = |e: &dyn std::fmt::Display| format!("test certificate: {e}");
    let ca_key = KeyPair::generate().map_err(|e| fail(&e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(&e))?;
    ca.distinguished_name
        .push(DnType::CommonName, "smtp-core TestServer CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca.self_signed(&ca_key).map_err(|e| fail(&e))?;

    let key = KeyPair::generate().map_err(|e| fail(&e))?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| fail(&e))?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf.signed_by(&key, &ca, &ca_key).map_err(|e| fail(&e))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = vec![CertificateDer::from(leaf.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| fail(&e))?;
    Ok(SelfSigned {
        tls: TlsConfig::from_rustls(Arc::new(config)),
        ca_pem: ca.pem(),
    })
}
