//! TLS fixtures: a CA, a server certificate for `localhost`/127.0.0.1 and a client
//! certificate, made with rcgen at test time and written as PEM files, and rustls client
//! configurations that trust the CA.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use smtp_core::{Config, Handler, Server, ServerHandle, TlsConfig};

use super::TempDir;

/// The name the server certificate is issued to, and the SNI the TLS clients send.
pub const SERVER_NAME: &str = "localhost";

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
    pub dir: TempDir,
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
        dir: &TempDir,
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
        let dir = TempDir::new("tls");
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
            rustls::crypto::aws_lc_rs::default_provider(),
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
                rustls::crypto::aws_lc_rs::default_provider(),
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
    {
        let mut config = super::config();
        config.tls = Some(pki.server_tls());
        config.authenticator = Some(smtp_core::StaticUsers::new().user("user", "pass").into());
        config
    }
}

/// `smtpd` (see [`super::Smtpd`]) with the host name and ident of [`super::config`], the
/// `sink` handler and the server certificate; the caller adds the listeners.
pub fn smtpd_tls_command(pki: &Pki) -> std::process::Command {
    let mut command = super::smtpd_command();
    command
        .args(["--hostname", "test.example", "--ident", "smtpd test"])
        .args(["--handler", "sink"])
        .arg("--tls-cert")
        .arg(&pki.server.cert)
        .arg("--tls-key")
        .arg(&pki.server.key);
    command
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
