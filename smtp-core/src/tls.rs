//! TLS with rustls: certificates from PEM files, and what a session learns from the handshake.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, ServerSessionMemoryCache,
    WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;

/// A TLS setup for STARTTLS and implicit-TLS listeners.
///
/// One loaded from files can [`reload`](Self::reload) its certificate and key without a
/// restart; clones share the certificate, so reloading any clone (for example one kept
/// after handing the [`Config`](crate::Config) to the server) affects new handshakes of all.
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) server_config: Arc<rustls::ServerConfig>,
    files: Option<Arc<FileCert>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TlsConfig");
        if let Some(files) = &self.files {
            d.field("cert", &files.cert).field("key", &files.key);
        }
        d.finish_non_exhaustive()
    }
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
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            let e = pem_error(e);
            TlsError(format!("bad certificate in {}: {e}", path.display()))
        })?;
    if certs.is_empty() {
        return Err(TlsError(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

/// A PEM syntax error in words: `pem::Error`'s own `Display` prints the offending line as a
/// list of byte values.
fn pem_error(error: pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { end_marker } => {
            // The marker is the section's label ("CERTIFICATE"), not the whole line.
            let marker = String::from_utf8_lossy(&end_marker);
            let label = marker.trim_matches('-').trim_start_matches("END ");
            format!("no \"-----END {label}-----\" line")
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("illegal section start {:?}", String::from_utf8_lossy(&line))
        }
        pem::Error::Base64Decode(e) => format!("invalid base64: {e}"),
        e => e.to_string(),
    }
}

/// Refuses a leaf certificate older than X.509 version 3, which rustls cannot use, with what
/// to do: `openssl x509 -req` without an extension file makes version 1, and rustls would
/// report it as a key that does not match ("UnsupportedCertVersion").
fn check_version(leaf: &CertificateDer<'_>, path: &Path) -> Result<(), TlsError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(leaf) else {
        // Left to rustls, which names what is wrong.
        return Ok(());
    };
    let version = parsed.version().0 + 1;
    if version >= 3 {
        return Ok(());
    }
    Err(TlsError(format!(
        "{} is an X.509 version {version} certificate; TLS needs version 3, which carries \
         extensions such as subjectAltName: make one with `openssl req -x509 -addext \
         \"subjectAltName=DNS:<host>\" …`, or sign the request with `openssl x509 -req … \
         -extfile <file with subjectAltName=DNS:<host>>`",
        path.display()
    )))
}

/// The certificate chain and key of a [`TlsConfig`] loaded from files: the resolver of every
/// handshake, swapped as a whole by [`TlsConfig::reload`].
#[derive(Debug)]
struct FileCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl FileCert {
    fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
        let chain = certs(cert)?;
        check_version(&chain[0], cert)?;
        let key_pem = read_pem(key)?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            pem::Error::NoItemsFound => TlsError(format!("no private key in {}", key.display())),
            e => {
                let e = pem_error(e);
                TlsError(format!("bad private key in {}: {e}", key.display()))
            }
        })?;
        CertifiedKey::from_der(chain, key_der, provider).map_err(|e| {
            TlsError(format!(
                "{} does not match {}: {e}",
                key.display(),
                cert.display()
            ))
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for FileCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The certificate a handshake is about to use, to tell afterwards which one it used.
pub(crate) struct CertSnapshot(Option<Arc<CertifiedKey>>);

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
            resumption: Resumption::default(),
        }
    }

    /// Uses a rustls configuration made elsewhere. Such a setup cannot
    /// [`reload`](Self::reload), and sessions do not learn the server certificate
    /// ([`TlsInfo::server_certificate`]).
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> TlsConfig {
        TlsConfig {
            server_config: config,
            files: None,
        }
    }

    /// The rustls configuration.
    pub fn rustls_config(&self) -> &Arc<rustls::ServerConfig> {
        &self.server_config
    }

    /// Reads the certificate and key files again; handshakes from now on use them, sessions
    /// already encrypted keep theirs. On error the previous certificate stays in use.
    /// (The client CA file is read only once.)
    pub fn reload(&self) -> Result<(), TlsError> {
        let Some(files) = &self.files else {
            return Err(TlsError(
                "this TLS configuration was not loaded from files".into(),
            ));
        };
        let key = FileCert::load(&files.cert, &files.key, &files.provider)?;
        *files.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// The leaf certificate (DER) that new handshakes present, when known.
    pub fn certificate(&self) -> Option<Vec<u8>> {
        let files = self.files.as_ref()?;
        files.current().end_entity_cert().ok().map(|c| c.to_vec())
    }

    pub(crate) fn snapshot(&self) -> CertSnapshot {
        CertSnapshot(self.files.as_ref().map(|f| f.current()))
    }

    /// The leaf certificate a handshake that started at `before` presented: known unless
    /// a reload happened in between.
    pub(crate) fn presented(&self, before: &CertSnapshot) -> Option<Vec<u8>> {
        let before = before.0.as_ref()?;
        let after = self.files.as_ref()?.current();
        if !Arc::ptr_eq(before, &after) {
            return None;
        }
        after.end_entity_cert().ok().map(|c| c.to_vec())
    }
}

/// Options of a [`TlsConfig`] loaded from files.
#[derive(Debug)]
pub struct TlsConfigBuilder {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    require_client_cert: bool,
    resumption: Resumption,
}

/// How a returning client may resume its TLS session instead of a full handshake (which
/// signs with the certificate's key, and which the client verifies). A resumed handshake
/// still agrees on fresh keys (TLS 1.3 `psk_dhe_ke`): what it skips is the certificate.
///
/// A resumed session keeps what the first handshake learnt (client certificates, SNI), also
/// across [`TlsConfig::reload`]: its [`TlsInfo::server_certificate`] is the one current at
/// the resumption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resumption {
    /// No resumption: every handshake is a full one.
    Off,
    /// Stateless tickets (the default): the server sends one ticket after each handshake, the
    /// session's secrets encrypted (ChaCha20-Poly1305) under a key of the server's, made at
    /// start and rotated every 6 hours; a ticket is good until then. The server keeps no state
    /// per session, so memory is bounded whatever the number of clients. TLS 1.2 clients that
    /// do not take tickets resume from a cache of at most [`DEFAULT_SESSION_CACHE`] sessions.
    #[default]
    Tickets,
    /// Stateful: the ticket is only a key into a cache of at most this many sessions (the
    /// oldest are dropped), each usable once.
    Cache(usize),
}

/// The bound of the server's session cache for [`Resumption::Tickets`] (TLS 1.2 session IDs).
pub const DEFAULT_SESSION_CACHE: usize = 1024;

impl Resumption {
    fn apply(self, config: &mut rustls::ServerConfig) -> Result<(), TlsError> {
        match self {
            Resumption::Off => {
                config.session_storage = Arc::new(NoServerSessionStorage {});
                config.send_tls13_tickets = 0;
            }
            Resumption::Tickets => {
                config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
                    .map_err(|e| TlsError(format!("TLS session tickets: {e}")))?;
                config.session_storage = ServerSessionMemoryCache::new(DEFAULT_SESSION_CACHE);
                config.send_tls13_tickets = 1;
            }
            Resumption::Cache(0) => return Resumption::Off.apply(config),
            Resumption::Cache(sessions) => {
                config.session_storage = ServerSessionMemoryCache::new(sessions);
                config.send_tls13_tickets = 1;
            }
        }
        Ok(())
    }
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

    /// How returning clients resume their sessions; [`Resumption::Tickets`] unless set.
    pub fn resumption(mut self, resumption: Resumption) -> Self {
        self.resumption = resumption;
        self
    }

    /// Reads the files and builds the configuration.
    pub fn build(self) -> Result<TlsConfig, TlsError> {
        let provider = Arc::new(prefer_sha256(rustls::crypto::aws_lc_rs::default_provider()));
        let key = FileCert::load(&self.cert, &self.key, &provider)?;
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
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
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
        let files = Arc::new(FileCert {
            cert: self.cert,
            key: self.key,
            provider,
            current: RwLock::new(Arc::new(key)),
        });
        let mut config = builder.with_cert_resolver(files.clone());
        config.ignore_client_order = true;
        self.resumption.apply(&mut config)?;
        Ok(TlsConfig {
            server_config: Arc::new(config),
            files: Some(files),
        })
    }
}

/// The provider with its cipher suites in the server's order of preference: the AES-128-GCM
/// suites with SHA-256 first. Clients such as rustls list AES-256-GCM with SHA-384 first, whose
/// handshake hashing (SHA-384, no CPU instructions for it) costs more than the SHA-256 that
/// x86 and ARM CPUs compute in hardware, for no security a mail server needs.
fn prefer_sha256(mut provider: CryptoProvider) -> CryptoProvider {
    use rustls::CipherSuite::{
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS13_AES_128_GCM_SHA256,
    };
    let first = [
        TLS13_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    // A stable sort: the rest keep the provider's order.
    provider
        .cipher_suites
        .sort_by_key(|s| !first.contains(&s.suite()));
    provider
}

/// What the TLS handshake negotiated, for hooks and mechanisms (EXTERNAL, channel binding).
///
/// `#[non_exhaustive]`: build one for a unit test of a handler with [`TlsInfo::new`] and set
/// the fields you need.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// `"TLSv1.3"`, `"TLSv1.2"`.
    pub version: String,
    /// The cipher suite, e.g. `"TLS13_AES_128_GCM_SHA256"`.
    pub cipher_suite: String,
    /// The host name the client asked for (SNI).
    pub sni: Option<String>,
    /// The client's certificate chain (DER), leaf first, when it presented one.
    pub peer_certificates: Vec<Vec<u8>>,
    /// Whether the connection started with TLS (implicit TLS) rather than STARTTLS.
    pub implicit: bool,
    /// The server's own leaf certificate (DER) sent in this handshake, for
    /// `tls-server-end-point` channel binding (RFC 5929). `None` for a
    /// [`TlsConfig::from_rustls`] setup, or when a reload raced the handshake.
    pub server_certificate: Option<Vec<u8>>,
}

impl TlsInfo {
    /// A TLS session of `version` (`"TLSv1.3"`) and `cipher_suite`, over STARTTLS, without
    /// certificates: for tests of handlers (`Session::builder(peer).tls(info)`).
    pub fn new(version: impl Into<String>, cipher_suite: impl Into<String>) -> TlsInfo {
        TlsInfo {
            version: version.into(),
            cipher_suite: cipher_suite.into(),
            sni: None,
            peer_certificates: Vec::new(),
            implicit: false,
            server_certificate: None,
        }
    }

    pub(crate) fn from_connection(
        conn: &rustls::ServerConnection,
        implicit: bool,
        server_certificate: Option<Vec<u8>>,
    ) -> TlsInfo {
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
            server_certificate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PEM "certificate" whose DER is not checked by the PEM reader.
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nAAECAw==\n-----END CERTIFICATE-----\n";

    fn file(name: &str, contents: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("smtp-core-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn cert_error(name: &str, contents: &str) -> String {
        let path = file(name, contents);
        let error = certs(&path).unwrap_err().to_string();
        assert!(error.contains(&*path.to_string_lossy()), "{error}");
        std::fs::remove_file(path).unwrap();
        error
    }

    fn key_error(name: &str, contents: &str) -> String {
        let cert = file(&format!("{name}-cert"), CERT);
        let key = file(name, contents);
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let error = FileCert::load(&cert, &key, &provider)
            .unwrap_err()
            .to_string();
        assert!(error.contains(&*key.to_string_lossy()), "{error}");
        std::fs::remove_file(cert).unwrap();
        std::fs::remove_file(key).unwrap();
        error
    }

    #[test]
    fn pem_errors_name_the_file_and_the_fault_in_words() {
        let cases = [
            ("cert-empty.pem", "", "no certificate in "),
            (
                "cert-key-only.pem",
                "-----BEGIN PRIVATE KEY-----\nAAECAw==\n-----END PRIVATE KEY-----\n",
                "no certificate in ",
            ),
            (
                "cert-truncated.pem",
                "-----BEGIN CERTIFICATE-----\nAAECAw==\n",
                "no \"-----END CERTIFICATE-----\" line",
            ),
            (
                "cert-base64.pem",
                "-----BEGIN CERTIFICATE-----\nAA?ECAw==\n-----END CERTIFICATE-----\n",
                "bad certificate in ",
            ),
        ];
        for (name, contents, expected) in cases {
            let error = cert_error(name, contents);
            assert!(error.contains(expected), "{name}: {error}");
            assert!(!error.contains("[45, 45"), "{name}: {error}");
        }
        let cases = [
            ("key-empty.pem", "", "no private key in "),
            ("key-cert-only.pem", CERT, "no private key in "),
            (
                "key-truncated.pem",
                "-----BEGIN PRIVATE KEY-----\nAAECAw==\n",
                "no \"-----END PRIVATE KEY-----\" line",
            ),
        ];
        for (name, contents, expected) in cases {
            let error = key_error(name, contents);
            assert!(error.contains(expected), "{name}: {error}");
        }
    }
}
