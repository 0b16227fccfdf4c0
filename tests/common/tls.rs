//! TLS fixtures: a CA, a server certificate for `localhost`/127.0.0.1 and a client
//! certificate, made with rcgen at test time and written as PEM files; rustls client
//! configurations that trust the CA; and an SMTP client that can switch to TLS mid-dialogue.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use smtp_core::{Config, Handler, Server, ServerHandle, TlsConfig};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::REPLY_TIMEOUT;
use super::{read_line, read_reply};

/// The name the server certificate is issued to, and the SNI the TLS clients send.
pub const SERVER_NAME: &str = "localhost";

/// A directory of PEM files, removed on drop.
pub struct CertDir(pub PathBuf);

impl CertDir {
    fn new() -> CertDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "smtpd-tls-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create certificate dir");
        CertDir(path)
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write PEM file");
        path
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A leaf certificate and its key, as DER and as PEM files.
pub struct Leaf {
    /// The certificate file (PEM).
    pub cert: PathBuf,
    /// The private key file (PEM, PKCS#8).
    pub key: PathBuf,
    /// The certificate, DER.
    pub der: Vec<u8>,
    key_der: Vec<u8>,
}

impl Leaf {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.der.clone())]
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A small PKI: one CA that signs a server and a client certificate.
pub struct Pki {
    /// Where the PEM files are.
    pub dir: CertDir,
    /// The CA certificate file (PEM).
    pub ca: PathBuf,
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
    /// For `localhost` and 127.0.0.1.
    pub server: Leaf,
    /// For client authentication.
    pub client: Leaf,
    issuer: Issuer,
}

struct Issuer {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Issuer {
    fn issue(
        &self,
        dir: &CertDir,
        name: &str,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign leaf");
        Leaf {
            cert: dir.write(&format!("{name}.pem"), cert.pem()),
            key: dir.write(&format!("{name}.key"), key.serialize_pem()),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }
}

impl Pki {
    /// Makes the certificates and writes them to a new temporary directory.
    pub fn new() -> Pki {
        let dir = CertDir::new();
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "smtpd test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca = dir.write("ca.pem", cert.pem());
        let ca_der = cert.der().to_vec();
        let issuer = Issuer { cert, key };
        let server = issuer.issue(
            &dir,
            "server",
            &[SERVER_NAME, "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = issuer.issue(&dir, "client", &[], ExtendedKeyUsagePurpose::ClientAuth);
        Pki {
            dir,
            ca,
            ca_der,
            server,
            client,
            issuer,
        }
    }

    /// Issues another server certificate (new key) into `<name>.pem` and `<name>.key`.
    pub fn server_leaf(&self, name: &str) -> Leaf {
        self.issuer.issue(
            &self.dir,
            name,
            &[SERVER_NAME, "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// The server's TLS setup from the PEM files, without client certificates.
    pub fn server_tls(&self) -> TlsConfig {
        TlsConfig::from_pem_files(&self.server.cert, &self.server.key).expect("server TLS config")
    }

    /// The server's TLS setup, asking clients for a certificate signed by the CA.
    pub fn server_tls_with_client_ca(&self) -> TlsConfig {
        TlsConfig::builder(&self.server.cert, &self.server.key)
            .client_ca(&self.ca)
            .build()
            .expect("server TLS config with client CA")
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca_der.clone()))
            .expect("add CA");
        roots
    }

    fn client_builder(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .expect("client protocol versions")
        .with_root_certificates(self.roots())
    }

    /// A client that trusts the CA and presents no certificate (TLS 1.3 or 1.2).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::new(
            self.client_builder(rustls::ALL_VERSIONS)
                .with_no_client_auth(),
        )
    }

    /// A client that trusts the CA and speaks only TLS 1.2.
    pub fn client_config_tls12(&self) -> Arc<rustls::ClientConfig> {
        Arc::new(
            self.client_builder(&[&rustls::version::TLS12])
                .with_no_client_auth(),
        )
    }

    /// A client that trusts the CA and presents the client certificate.
    pub fn client_config_with_cert(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        Arc::new(
            self.client_builder(versions)
                .with_client_auth_cert(self.client.chain(), self.client.private_key())
                .expect("client certificate"),
        )
    }

    /// A server config from the server leaf made directly with rustls (no files).
    pub fn rustls_server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("server protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.server.chain(), self.server.private_key())
            .expect("server certificate"),
        )
    }
}

/// A test config (see [`super::config`]) with STARTTLS and one user, `user`/`pass`.
pub fn tls_config(pki: &Pki) -> Config {
    Config {
        tls: Some(pki.server_tls()),
        authenticator: Some(Arc::new(smtp_core::StaticUsers::new().user("user", "pass"))),
        ..super::config()
    }
}

/// Starts `handler` with a plain (STARTTLS) listener and an implicit-TLS listener on
/// 127.0.0.1; returns the handle and the two addresses.
pub async fn start_both<H: Handler>(
    handler: H,
    config: Config,
) -> (ServerHandle, SocketAddr, SocketAddr) {
    let handle = Server::new(handler, config)
        .listen("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
        .listen_implicit_tls("127.0.0.1:0")
        .await
        .expect("bind implicit TLS 127.0.0.1:0")
        .start();
    let addrs = handle.local_addrs().to_vec();
    (handle, addrs[0], addrs[1])
}

/// An SMTP client over any byte stream: plain TCP, or TLS.
pub struct Dialog<S> {
    io: BufReader<S>,
}

/// A client still in plaintext.
pub type PlainDialog = Dialog<TcpStream>;
/// A client speaking over TLS.
pub type TlsDialog = Dialog<TlsStream<TcpStream>>;

impl<S: AsyncRead + AsyncWrite + Unpin> Dialog<S> {
    /// Sends raw bytes in one write.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write");
        self.io.flush().await.expect("flush");
    }

    /// Reads one line (CRLF stripped); `None` on EOF.
    pub async fn line(&mut self) -> Option<String> {
        read_line(&mut self.io).await
    }

    /// Reads one whole reply; panics on EOF.
    pub async fn reply(&mut self) -> Vec<String> {
        read_reply(&mut self.io).await
    }

    /// Sends `line` + CRLF and checks the reply code; returns the reply lines.
    pub async fn cmd(&mut self, line: &str, code: u16) -> Vec<String> {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let reply = self.reply().await;
        assert!(
            reply[0].starts_with(&code.to_string()),
            "`{line}` expected {code}, got {reply:?}"
        );
        reply
    }

    /// Sends `line` + CRLF and checks the exact one-line reply.
    pub async fn expect(&mut self, line: &str, reply: &str) {
        self.send(format!("{line}\r\n").as_bytes()).await;
        assert_eq!(
            self.reply().await,
            vec![reply.to_owned()],
            "reply to `{line}`"
        );
    }

    /// What has been received but not read yet.
    pub fn buffered(&self) -> &[u8] {
        self.io.buffer()
    }

    /// Checks that nothing arrives within `wait` (and nothing is buffered).
    pub async fn expect_silence(&mut self, wait: Duration) {
        assert!(
            self.io.buffer().is_empty(),
            "unexpected buffered input: {:?}",
            String::from_utf8_lossy(self.io.buffer())
        );
        let mut byte = [0u8; 1];
        if let Ok(read) = tokio::time::timeout(wait, self.io.read(&mut byte)).await {
            match read {
                Ok(0) => panic!("connection closed instead of staying silent"),
                Ok(_) => {
                    let mut rest = Vec::new();
                    let _ = tokio::time::timeout(wait, self.io.read_until(b'\n', &mut rest)).await;
                    rest.insert(0, byte[0]);
                    panic!("unexpected input: {:?}", String::from_utf8_lossy(&rest));
                }
                Err(e) => panic!("read failed instead of staying silent: {e}"),
            }
        }
    }

    /// Reads until the server closes (EOF, reset, or a TLS close/alert) and returns what came.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        // EOF, a reset and a TLS error all mean the server closed.
        let _ = tokio::time::timeout(REPLY_TIMEOUT, self.io.read_to_end(&mut all))
            .await
            .expect("timed out waiting for the server to close");
        all
    }

    /// EHLO, expecting 250; returns the extension keywords (first line skipped).
    pub async fn ehlo(&mut self, name: &str) -> Vec<String> {
        let reply = self.cmd(&format!("EHLO {name}"), 250).await;
        reply[1..].iter().map(|l| l[4..].to_owned()).collect()
    }

    /// `AUTH PLAIN` with an initial response for `user`/`pass`, expecting 235.
    pub async fn auth_plain(&mut self) {
        use base64::Engine as _;
        let ir = base64::engine::general_purpose::STANDARD.encode(b"\0user\0pass");
        self.expect(
            &format!("AUTH PLAIN {ir}"),
            "235 2.7.0 Authentication successful",
        )
        .await;
    }

    /// MAIL, RCPT, DATA with `body` (dot-stuffed, ending in CRLF), `.`, expecting 250 each.
    pub async fn deliver(&mut self, from: &str, to: &str, body: &str) {
        self.expect(&format!("MAIL FROM:<{from}>"), "250 OK").await;
        self.expect(&format!("RCPT TO:<{to}>"), "250 OK").await;
        self.cmd("DATA", 354).await;
        self.send(body.as_bytes()).await;
        self.expect(".", "250 OK").await;
    }
}

impl PlainDialog {
    /// Connects without reading the greeting.
    pub async fn connect_raw(addr: SocketAddr) -> PlainDialog {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timeout")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Dialog {
            io: BufReader::new(stream),
        }
    }

    /// Connects and checks the greeting.
    pub async fn connect(addr: SocketAddr) -> PlainDialog {
        let mut d = PlainDialog::connect_raw(addr).await;
        assert_eq!(d.reply().await, vec!["220 test.example smtpd test"]);
        d
    }

    /// STARTTLS, `220 Ready to start TLS`, handshake.
    pub async fn starttls(mut self, config: Arc<rustls::ClientConfig>) -> TlsDialog {
        self.expect("STARTTLS", "220 Ready to start TLS").await;
        self.handshake(config).await.expect("TLS handshake")
    }

    /// Runs the TLS handshake now. Nothing may be buffered: bytes after the `220` would
    /// be plaintext sent after the server's last plaintext reply.
    pub async fn handshake(self, config: Arc<rustls::ClientConfig>) -> std::io::Result<TlsDialog> {
        assert!(
            self.io.buffer().is_empty(),
            "plaintext after the 220: {:?}",
            String::from_utf8_lossy(self.io.buffer())
        );
        let stream = self.io.into_inner();
        let name = ServerName::try_from(SERVER_NAME).expect("server name");
        let tls = tokio::time::timeout(
            REPLY_TIMEOUT,
            tokio_rustls::TlsConnector::from(config).connect(name, stream),
        )
        .await
        .expect("TLS handshake timed out")?;
        Ok(Dialog {
            io: BufReader::new(tls),
        })
    }
}

impl TlsDialog {
    /// Connects to an implicit-TLS listener and checks the greeting, which comes over TLS.
    pub async fn connect_implicit(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> TlsDialog {
        let mut d = PlainDialog::connect_raw(addr)
            .await
            .handshake(config)
            .await
            .expect("TLS handshake");
        assert_eq!(d.reply().await, vec!["220 test.example smtpd test"]);
        d
    }

    /// The client side of the TLS connection.
    pub fn tls(&self) -> &rustls::ClientConnection {
        self.io.get_ref().get_ref().1
    }
}
