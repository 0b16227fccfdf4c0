//! TLS session resumption: on by default (stateless tickets), stateful with a bounded cache,
//! or off; and what a resumed session tells the handler.

use rustls::HandshakeKind;
use smtp_core::TlsConfig;
use smtp_core::handlers::Sink;
use smtp_core::tls::Resumption;

use crate::support::tls::{Pki, smtpd_tls_command, tls_config};
use crate::support::{Client, Smtpd, start};

/// Two STARTTLS sessions of one client (one rustls configuration, so one session store): how
/// each handshake went.
async fn two_sessions(pki: &Pki, tls: TlsConfig) -> Vec<HandshakeKind> {
    let mut config = tls_config(pki);
    config.tls = Some(tls);
    let server = start(Sink, config).await;
    handshakes(pki, server.local_addr()).await
}

/// How two STARTTLS handshakes of one client with the server at `addr` went.
async fn handshakes(pki: &Pki, addr: std::net::SocketAddr) -> Vec<HandshakeKind> {
    let client = pki.client_config();
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let mut c = Client::connect(addr).await;
        c.ehlo("client.example").await;
        let mut c = c.starttls(client.clone()).await;
        // The reply comes after the server's ticket, which the client takes on the way.
        c.ehlo("client.example").await;
        kinds.push(c.tls().handshake_kind().expect("handshake finished"));
        c.expect("QUIT", "221 Bye").await;
    }
    kinds
}

fn with(pki: &Pki, resumption: Resumption) -> TlsConfig {
    TlsConfig::builder(&pki.server.cert, &pki.server.key)
        .resumption(resumption)
        .build()
        .expect("server TLS config")
}

#[tokio::test]
async fn a_returning_client_resumes_by_default() {
    let pki = Pki::new();
    let kinds = two_sessions(&pki, pki.server_tls()).await;
    assert_eq!(kinds, [HandshakeKind::Full, HandshakeKind::Resumed]);
}

#[tokio::test]
async fn a_returning_client_resumes_from_a_bounded_cache() {
    let pki = Pki::new();
    let kinds = two_sessions(&pki, with(&pki, Resumption::Cache(16))).await;
    assert_eq!(kinds, [HandshakeKind::Full, HandshakeKind::Resumed]);
}

#[tokio::test]
async fn resumption_off_means_full_handshakes() {
    let pki = Pki::new();
    for off in [Resumption::Off, Resumption::Cache(0)] {
        let kinds = two_sessions(&pki, with(&pki, off)).await;
        assert_eq!(kinds, [HandshakeKind::Full, HandshakeKind::Full], "{off:?}");
    }
}

/// The binary resumes by default; `--tls-no-resumption` makes every handshake a full one.
#[tokio::test]
async fn the_binary_resumes_unless_told_not_to() {
    let pki = Pki::new();
    for (flag, second) in [
        (None, HandshakeKind::Resumed),
        (Some("--tls-no-resumption"), HandshakeKind::Full),
    ] {
        let mut command = smtpd_tls_command(&pki);
        command.args(["--listen", "127.0.0.1:0"]).args(flag);
        let smtpd = Smtpd::start(command);
        let kinds = handshakes(&pki, smtpd.addr()).await;
        assert_eq!(kinds, [HandshakeKind::Full, second], "{flag:?}");
    }
}
