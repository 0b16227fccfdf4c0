//! TLS with rustls: certificates from PEM files, and what a session learns from the handshake.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// A TLS setup for STARTTLS and implicit-TLS listeners.
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) server_config: Arc<rustls::ServerConfig>,
}

/// A TLS file that could not be used; its message names the file.
#[derive(Debug)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("cannot read {}: {e}", path.display())))
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("bad certificate in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

impl TlsConfig {
    /// Loads a certificate chain and its private key from PEM files.
    pub fn from_pem_files(
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsError> {
        TlsConfigBuilder::new(cert.as_ref(), key.as_ref()).build()
    }

    /// Starts a setup with more options (client certificates).
    pub fn builder(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsConfigBuilder {
        TlsConfigBuilder {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            require_client_cert: false,
        }
    }

    /// Uses a rustls configuration made elsewhere.
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> TlsConfig {
        TlsConfig {
            server_config: config,
        }
    }

    /// The rustls configuration.
    pub fn rustls_config(&self) -> &Arc<rustls::ServerConfig> {
        &self.server_config
    }
}

/// Options of a [`TlsConfig`] loaded from files.
#[derive(Debug)]
pub struct TlsConfigBuilder {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    require_client_cert: bool,
}

impl TlsConfigBuilder {
    fn new(cert: &Path, key: &Path) -> TlsConfigBuilder {
        TlsConfig::builder(cert, key)
    }

    /// Asks clients for a certificate and verifies it against the CAs in this PEM file.
    /// Clients without a certificate are still served unless [`require_client_cert`](Self::require_client_cert).
    pub fn client_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(path.into());
        self
    }

    /// Refuses clients without a valid certificate.
    pub fn require_client_cert(mut self, required: bool) -> Self {
        self.require_client_cert = required;
        self
    }

    /// Reads the files and builds the configuration.
    pub fn build(self) -> Result<TlsConfig, TlsError> {
        let chain = certs(&self.cert)?;
        let key_pem = read_pem(&self.key)?;
        let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|e| TlsError(format!("bad private key in {}: {e}", self.key.display())))?
            .ok_or_else(|| TlsError(format!("no private key in {}", self.key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS setup: {e}")))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs(ca)? {
                    roots.add(cert).map_err(|e| {
                        TlsError(format!("bad CA certificate in {}: {e}", ca.display()))
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.require_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError(format!("client CA {}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, key).map_err(|e| {
            TlsError(format!(
                "{} does not match {}: {e}",
                self.key.display(),
                self.cert.display()
            ))
        })?;
        Ok(TlsConfig {
            server_config: Arc::new(config),
        })
    }
}

/// What the TLS handshake negotiated, for hooks and mechanisms (EXTERNAL, channel binding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// `"TLSv1.3"`, `"TLSv1.2"`.
    pub version: String,
    /// The cipher suite, e.g. `"TLS13_AES_256_GCM_SHA384"`.
    pub cipher_suite: String,
    /// The host name the client asked for (SNI).
    pub sni: Option<String>,
    /// The client's certificate chain (DER), leaf first, when it presented one.
    pub peer_certificates: Vec<Vec<u8>>,
    /// Whether the connection started with TLS (implicit TLS) rather than STARTTLS.
    pub implicit: bool,
}

impl TlsInfo {
    pub(crate) fn from_connection(conn: &rustls::ServerConnection, implicit: bool) -> TlsInfo {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let cipher_suite = conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        TlsInfo {
            version,
            cipher_suite,
            sni: conn.server_name().map(str::to_owned),
            peer_certificates: conn
                .peer_certificates()
                .unwrap_or_default()
                .iter()
                .map(|c| c.to_vec())
                .collect(),
            implicit,
        }
    }
}
