//! EXTERNAL (RFC 4422 appendix A) with a TLS client certificate from the test PKI, and
//! ANONYMOUS (RFC 4505) with its RFC example.

use std::sync::{Arc, Mutex};

use crate::support::tls::{Pki, smtpd_tls_command};
use crate::support::*;
use smtp_core::auth::mechanisms::{Anonymous, External};
use smtp_core::{AuthData, AuthResult, Envelope, Handler, Reply, Server, ServerHandle, Session};

const SUCCESS: &str = "235 2.7.0 Authentication successful";
const INVALID: &str = "535 5.7.8 Authentication credentials invalid";

/// The auth data each MAIL saw.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Handler for Recorder {
    async fn handle_mail(
        &self,
        session: &mut Session,
        _: &mut Envelope,
        _: &str,
        _: &smtp_core::MailParams,
    ) -> Reply {
        self.0.lock().unwrap().push(format!(
            "{:?} {:?}",
            session.auth_data(),
            session.login_data()
        ));
        Reply::ok()
    }
}

/// Asks for client certificates; the authenticator accepts a certificate signed by the CA
/// (TLS checked that) with no authorization identity, and counts its calls.
async fn external_server(pki: &Pki) -> (ServerHandle, Recorder, Arc<Mutex<usize>>) {
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let authenticator = move |_: &Session, _: &Envelope, mechanism: &str, data: &AuthData| {
        *counter.lock().unwrap() += 1;
        match data {
            AuthData::External {
                authzid: None,
                certificates,
                ..
            } if mechanism == "EXTERNAL" && certificates.len() == 1 => {
                AuthResult::success_with(data.clone())
            }
            _ => AuthResult::failure(),
        }
    };
    let config = {
        let mut config = config();
        config.tls = Some(pki.server_tls_with_client_ca());
        config.authenticator = Some(authenticator.into());
        config.max_auth_failures = None;
        config
    };
    let recorder = Recorder::default();
    let server = Server::new(recorder.clone(), config)
        .mechanism(External)
        .unwrap()
        .mechanism(Anonymous)
        .unwrap()
        .listen("127.0.0.1:0")
        .await
        .unwrap()
        .start();
    (server, recorder, calls)
}

async fn tls_client(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> TlsClient {
    let mut c = Client::connect_raw(addr).await;
    c.reply().await;
    c.cmd("EHLO client.example", 250).await;
    c.cmd("STARTTLS", 220).await;
    let mut c = c.handshake(config).await.expect("TLS handshake");
    let extensions = c.ehlo("client.example").await;
    assert!(
        extensions.contains(&"AUTH ANONYMOUS EXTERNAL LOGIN PLAIN".to_owned()),
        "{extensions:?}"
    );
    c
}

#[tokio::test]
async fn external_with_a_client_certificate() {
    let pki = Pki::new();
    let (server, recorder, calls) = external_server(&pki).await;
    let with_cert = pki.client_config_with_cert(rustls::ALL_VERSIONS);
    let mut c = tls_client(server.local_addr(), with_cert.clone()).await;
    c.expect(&format!("AUTH EXTERNAL {}", b64("admin")), INVALID)
        .await;
    c.expect("AUTH EXTERNAL =", SUCCESS).await;
    c.expect("MAIL FROM:<client@example.org>", "250 OK").await;
    assert_eq!(
        *recorder.0.lock().unwrap(),
        // The certificate's identity (its CN) is the login when no authzid was asked for.
        [format!(
            "Some(External(authzid=None, identities=[\"client\"], certificates=1)) {:?}",
            Some(b"client".to_vec())
        )]
    );
    // Without an initial response: an empty challenge, an empty answer.
    let mut c = tls_client(server.local_addr(), with_cert).await;
    assert_eq!(c.cmd("AUTH EXTERNAL", 334).await, ["334 "]);
    c.expect("", SUCCESS).await;
    assert_eq!(*calls.lock().unwrap(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn external_without_a_certificate_fails_without_asking() {
    let pki = Pki::new();
    let (server, _, calls) = external_server(&pki).await;
    let mut c = tls_client(server.local_addr(), pki.client_config()).await;
    c.expect("AUTH EXTERNAL =", INVALID).await;
    assert_eq!(*calls.lock().unwrap(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn anonymous_keeps_the_trace() {
    let pki = Pki::new();
    let (server, recorder, calls) = external_server(&pki).await;
    let mut c = tls_client(server.local_addr(), pki.client_config()).await;
    c.expect(&format!("AUTH ANONYMOUS {}", b64("x".repeat(256))), INVALID)
        .await;
    c.expect(&format!("AUTH ANONYMOUS {}", b64("a\r\nb")), INVALID)
        .await;
    // RFC 4505 §5: the trace "sirhc" after an empty challenge.
    assert_eq!(c.cmd("AUTH ANONYMOUS", 334).await, ["334 "]);
    c.expect("c2lyaGM=", SUCCESS).await;
    c.expect("MAIL FROM:<>", "250 OK").await;
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [r#"Some(Anonymous(trace="sirhc")) None"#]
    );
    assert_eq!(*calls.lock().unwrap(), 0);
    server.shutdown().await;
}

/// `smtpd --auth-mechanism EXTERNAL --tls-client-ca CA`: a certificate the CA signed logs in
/// as itself; a client without one, or asking for another identity, does not.
#[tokio::test]
async fn binary_offers_external_with_a_client_ca() {
    let pki = Pki::new();
    let mut command = smtpd_tls_command(&pki);
    command
        .args(["--listen", "127.0.0.1:0"])
        .arg("--tls-client-ca")
        .arg(&pki.ca)
        .args([
            "--auth-mechanism",
            "EXTERNAL",
            "--auth-mechanism",
            "ANONYMOUS",
        ])
        .args(["--auth-failure-delay-ms", "0"]);
    let smtpd = Smtpd::start(command);
    let addr = smtpd.addr();

    let with_cert = pki.client_config_with_cert(rustls::ALL_VERSIONS);
    let mut c = tls_client(addr, with_cert).await;
    c.expect(&format!("AUTH EXTERNAL {}", b64("admin")), INVALID)
        .await;
    c.expect("AUTH EXTERNAL =", SUCCESS).await;
    let mut c = tls_client(addr, pki.client_config()).await;
    c.expect("AUTH EXTERNAL =", INVALID).await;
}
