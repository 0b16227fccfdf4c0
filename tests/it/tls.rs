//! STARTTLS (RFC 3207) and implicit TLS (RFC 8314) end to end, spoken byte by byte with a
//! rustls client: the replies, the plaintext-injection defence, handshake failures and
//! timeouts, `require_starttls`, what a handler learns about the TLS session, keying material
//! for channel binding, certificate files and their reload.

use smtp_core::AuthArgs;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::tls::{Pki, SERVER_NAME, smtpd_tls_command, start_both, tls_config};
use crate::support::{Client, TlsClient};
use crate::support::{Smtpd, config, run_smtpd, start, start_in_memory};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use smtp_core::handlers::Sink;
use smtp_core::{
    AuthAbort, AuthMechanism, AuthResult, AuthServer, Config, Envelope, Handler, Reply, Server,
    Session, TlsConfig, TlsInfo,
};
use tokio::io::{AsyncRead, AsyncWrite};

const FROM: &str = "sender@example.org";
const TO: &str = "rcpt@example.net";
const BODY: &str = "Subject: over TLS\r\n\r\nHello.\r\n..a stuffed dot\r\n";
const SILENCE: Duration = Duration::from_millis(300);

/// What a hook saw.
#[derive(Debug, Clone)]
struct Seen {
    hook: &'static str,
    tls: Option<TlsInfo>,
    login: Option<Vec<u8>>,
    content: Vec<u8>,
}

/// Records the session's TLS view in `handle_mail` and `handle_data`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    fn record(&self, hook: &'static str, session: &Session, content: &[u8]) {
        self.0.lock().unwrap().push(Seen {
            hook,
            tls: session.tls().cloned(),
            login: session.login_data().map(<[u8]>::to_vec),
            content: content.to_vec(),
        });
    }
}

impl Handler for Recorder {
    async fn handle_mail(
        &self,
        session: &mut Session,
        _: &mut Envelope,
        _: &str,
        _: &smtp_core::MailParams,
    ) -> Reply {
        self.record("mail", session, b"");
        Reply::ok()
    }

    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        self.record("data", session, &envelope.content);
        Reply::ok()
    }
}

fn has(extensions: &[String], keyword: &str) -> bool {
    extensions.iter().any(|e| e == keyword)
}

fn offers_auth(extensions: &[String]) -> bool {
    extensions.iter().any(|e| e.starts_with("AUTH"))
}

#[tokio::test]
async fn starttls_then_ehlo_then_auth_plain_delivers() {
    let pki = Pki::new();
    let recorder = Recorder::default();
    let server = start(recorder.clone(), tls_config(&pki)).await;
    let mut c = Client::connect(server.local_addr()).await;

    let before = c.ehlo("client.example").await;
    assert!(has(&before, "STARTTLS"), "{before:?}");
    assert!(
        !offers_auth(&before),
        "AUTH advertised before TLS: {before:?}"
    );
    let refused = "538 5.7.11 Encryption required for requested authentication mechanism";
    c.expect("AUTH PLAIN", refused).await;
    c.expect("AUTH PLAIN AHVzZXIAcGFzcw==", refused).await;
    c.expect("AUTH LOGIN", refused).await;

    let mut c = c.starttls(pki.client_config()).await;
    // The plaintext EHLO is forgotten: the session starts over.
    c.expect(
        "MAIL FROM:<sender@example.org>",
        "503 Error: send HELO first",
    )
    .await;
    let after = c.ehlo("client.example").await;
    assert!(has(&after, "AUTH LOGIN PLAIN"), "{after:?}");
    assert!(
        !has(&after, "STARTTLS"),
        "STARTTLS advertised inside TLS: {after:?}"
    );
    c.auth_plain().await;
    c.send_message(FROM, &[TO], BODY).await;
    c.expect("QUIT", "221 Bye").await;

    let data: Vec<Seen> = recorder
        .seen()
        .into_iter()
        .filter(|s| s.hook == "data")
        .collect();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].content, BODY.replace("\r\n..", "\r\n.").as_bytes());
    assert_eq!(data[0].login.as_deref(), Some(&b"user"[..]));
    let tls = data[0].tls.as_ref().expect("session.tls() after STARTTLS");
    assert!(!tls.implicit);
    server.shutdown().await;
}

/// With AUTH allowed in plaintext, STARTTLS must still forget the login and the envelope:
/// both were negotiated over a channel an attacker could have written to.
#[tokio::test]
async fn starttls_forgets_plaintext_auth_and_envelope() {
    let pki = Pki::new();
    let config = {
        let mut config = tls_config(&pki);
        config.auth_require_tls = false;
        config
    };
    let server = start(Sink, config).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("EHLO client.example", 250).await;
    c.auth_plain().await;
    c.expect("MAIL FROM:<sender@example.org>", "250 OK").await;
    let mut c = c.starttls(pki.client_config()).await;
    c.cmd("EHLO client.example", 250).await;
    c.expect("RCPT TO:<rcpt@example.net>", "503 Error: need MAIL command")
        .await;
    // Not "503 Already authenticated".
    c.auth_plain().await;
    server.shutdown().await;
}

#[tokio::test]
async fn starttls_without_tls_config_is_454() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    let extensions = c.ehlo("client.example").await;
    assert!(!has(&extensions, "STARTTLS"), "{extensions:?}");
    c.expect("STARTTLS", "454 TLS not available").await;
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}

#[tokio::test]
async fn starttls_with_an_argument_is_501() {
    let pki = Pki::new();
    let server = start(Sink, tls_config(&pki)).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("STARTTLS x", "501 Syntax: STARTTLS").await;
    // Still plaintext, and STARTTLS still works.
    let mut c = c.starttls(pki.client_config()).await;
    c.cmd("EHLO client.example", 250).await;
    server.shutdown().await;
}

#[tokio::test]
async fn second_starttls_inside_tls_is_503_and_the_session_goes_on() {
    let pki = Pki::new();
    let (server, plain, implicit) = start_both(Sink, tls_config(&pki)).await;

    let mut c = Client::connect(plain)
        .await
        .starttls(pki.client_config())
        .await;
    c.cmd("EHLO client.example", 250).await;
    c.expect("STARTTLS", "503 5.5.1 Error: TLS already active")
        .await;
    c.expect("NOOP", "250 OK").await;
    c.auth_plain().await;
    c.send_message(FROM, &[TO], BODY).await;

    let mut c = Client::connect_implicit(implicit, pki.client_config()).await;
    c.expect("STARTTLS", "503 5.5.1 Error: TLS already active")
        .await;
    c.cmd("EHLO client.example", 250).await;
    c.send_message(FROM, &[TO], BODY).await;
    server.shutdown().await;
}

/// CVE-2011-0411 / aiosmtpd CVE-2024-34083: a command pipelined behind STARTTLS was sent in
/// plaintext, so a man in the middle could have added it; it must never run, neither before
/// the handshake (a second plaintext reply) nor after it (a reply nobody asked for over TLS).
#[tokio::test]
async fn noop_injected_behind_starttls_in_one_write_gets_no_reply() {
    let pki = Pki::new();
    let server = start(Sink, tls_config(&pki)).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.send(b"STARTTLS\r\nNOOP\r\n").await;
    assert_eq!(c.reply().await, vec!["220 Ready to start TLS"]);
    c.expect_silence(SILENCE).await;

    let mut c = c.handshake(pki.client_config()).await.expect("handshake");
    c.expect_silence(SILENCE).await;
    // The first reply over TLS answers the first command sent over TLS.
    c.send(b"EHLO client.example\r\n").await;
    let reply = c.reply().await;
    assert_eq!(reply[0], "250-test.example", "{reply:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn commands_injected_behind_starttls_do_not_reach_the_tls_session() {
    let pki = Pki::new();
    let recorder = Recorder::default();
    let server = start(recorder.clone(), tls_config(&pki)).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.send(
        b"EHLO client.example\r\nSTARTTLS\r\nEHLO evil.example\r\nMAIL FROM:<evil@example.org>\r\n",
    )
    .await;
    assert_eq!(c.reply().await[0], "250-test.example");
    assert_eq!(c.reply().await, vec!["220 Ready to start TLS"]);
    c.expect_silence(SILENCE).await;

    let mut c = c.handshake(pki.client_config()).await.expect("handshake");
    c.expect_silence(SILENCE).await;
    // Had the injected EHLO run, MAIL would be accepted; had the injected MAIL run, RCPT would be.
    c.expect(
        "MAIL FROM:<sender@example.org>",
        "503 Error: send HELO first",
    )
    .await;
    c.cmd("EHLO client.example", 250).await;
    c.expect("RCPT TO:<rcpt@example.net>", "503 Error: need MAIL command")
        .await;
    assert!(recorder.seen().is_empty(), "{:?}", recorder.seen());
    server.shutdown().await;
}

/// The NOOP leaves in its own segment right behind STARTTLS, before the client reads the 220.
/// If the server read both at once it discards the NOOP; if the NOOP arrives after the server
/// answered, the server takes it for the start of the handshake and refuses it. Either way
/// the NOOP never gets a 250.
#[tokio::test]
async fn noop_injected_behind_starttls_in_a_second_write_gets_no_reply() {
    let pki = Pki::new();
    let server = start(Sink, tls_config(&pki)).await;
    for pause in [Duration::ZERO, Duration::from_millis(100)] {
        let mut c = Client::connect(server.local_addr()).await;
        c.send(b"STARTTLS\r\n").await;
        tokio::time::sleep(pause).await;
        c.send(b"NOOP\r\n").await;
        assert_eq!(c.reply().await, vec!["220 Ready to start TLS"]);
        if !c.buffered().is_empty() {
            assert_eq!(
                c.buffered()[0],
                0x15,
                "expected a TLS alert: {:?}",
                c.buffered()
            );
            c.read_to_close().await;
            continue;
        }
        // Otherwise the handshake met "NOOP\r\n" instead of a ClientHello.
        if let Ok(mut c) = c.handshake(pki.client_config()).await {
            c.expect_silence(SILENCE).await;
            c.send(b"EHLO client.example\r\n").await;
            assert_eq!(c.reply().await[0], "250-test.example");
        }
    }
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}

#[tokio::test]
async fn injection_after_an_earlier_pipelined_ehlo_is_discarded_too() {
    let pki = Pki::new();
    let server = start(Sink, tls_config(&pki)).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.send(b"EHLO client.example\r\nSTARTTLS\r\nNOOP\r\nNOOP\r\n")
        .await;
    assert_eq!(c.reply().await[0], "250-test.example");
    assert_eq!(c.reply().await, vec!["220 Ready to start TLS"]);
    c.expect_silence(SILENCE).await;
    let mut c = c.handshake(pki.client_config()).await.expect("handshake");
    c.expect_silence(SILENCE).await;
    c.expect("RSET", "250 OK").await;
    server.shutdown().await;
}

fn is_alert_or_nothing(bytes: &[u8]) -> bool {
    bytes.is_empty() || (bytes[0] == 0x15 && bytes.get(1) == Some(&0x03))
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_closes_that_connection_only() {
    let pki = Pki::new();
    let (server, plain, implicit) = start_both(Sink, tls_config(&pki)).await;
    let mut bystander = Client::connect(plain)
        .await
        .starttls(pki.client_config())
        .await;
    bystander.cmd("EHLO client.example", 250).await;

    let mut c = Client::connect(plain).await;
    c.expect("STARTTLS", "220 Ready to start TLS").await;
    c.send(b"this is not a TLS ClientHello\r\n\r\n").await;
    let rest = c.read_to_close().await;
    assert!(is_alert_or_nothing(&rest), "after garbage: {rest:?}");

    // On the implicit-TLS listener plaintext SMTP is garbage too, and gets no greeting.
    let mut c = Client::connect_raw(implicit).await;
    c.send(b"EHLO client.example\r\n").await;
    let rest = c.read_to_close().await;
    assert!(
        is_alert_or_nothing(&rest),
        "plaintext on implicit TLS: {rest:?}"
    );

    bystander.expect("NOOP", "250 OK").await;
    Client::connect(plain)
        .await
        .starttls(pki.client_config())
        .await
        .expect("NOOP", "250 OK")
        .await;
    Client::connect_implicit(implicit, pki.client_config())
        .await
        .expect("NOOP", "250 OK")
        .await;
    server.shutdown().await;
}

fn stalled_handshake_config(pki: &Pki) -> Config {
    {
        let mut config = tls_config(pki);
        config.tls_handshake_timeout = Duration::from_secs(1);
        config
    }
}

/// Reads until the server closes, and checks that it closed without a word after the
/// handshake timeout (1 s).
async fn closed_after_the_handshake_timeout<S: AsyncRead + AsyncWrite + Unpin>(c: &mut Client<S>) {
    let started = tokio::time::Instant::now();
    let rest = c.read_to_close().await;
    let took = started.elapsed();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[tokio::test]
async fn a_stalled_handshake_is_cut_off_by_tls_handshake_timeout() {
    let pki = Pki::new();
    let server = start(Sink, stalled_handshake_config(&pki)).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("STARTTLS", "220 Ready to start TLS").await;
    closed_after_the_handshake_timeout(&mut c).await;
    server.shutdown().await;
}

/// The same on an implicit-TLS connection, on a paused clock.
#[tokio::test(start_paused = true)]
async fn a_stalled_implicit_tls_handshake_is_cut_off_by_tls_handshake_timeout() {
    let pki = Pki::new();
    let server = start_in_memory(Sink, stalled_handshake_config(&pki));
    let mut c = Client::in_memory_implicit_tls(&server);
    closed_after_the_handshake_timeout(&mut c).await;
}

#[tokio::test]
async fn implicit_tls_greets_over_tls_and_allows_auth() {
    let pki = Pki::new();
    let recorder = Recorder::default();
    let (server, _, implicit) = start_both(recorder.clone(), tls_config(&pki)).await;
    let mut c = Client::connect_implicit(implicit, pki.client_config()).await;
    let extensions = c.ehlo("client.example").await;
    assert!(has(&extensions, "AUTH LOGIN PLAIN"), "{extensions:?}");
    assert!(!has(&extensions, "STARTTLS"), "{extensions:?}");
    c.auth_plain().await;
    c.send_message(FROM, &[TO], BODY).await;
    c.expect("QUIT", "221 Bye").await;

    let seen = recorder.seen();
    let data = seen.iter().find(|s| s.hook == "data").expect("a message");
    assert_eq!(data.login.as_deref(), Some(&b"user"[..]));
    let tls = data.tls.as_ref().expect("session.tls()");
    assert!(tls.implicit, "{tls:?}");
    assert_eq!(tls.version, "TLSv1.3");
    server.shutdown().await;
}

#[tokio::test]
async fn require_starttls_refuses_all_but_noop_ehlo_starttls_quit_before_tls() {
    let pki = Pki::new();
    let config = {
        let mut config = tls_config(&pki);
        config.require_starttls = true;
        config
    };
    let server = start(Sink, config).await;
    let gated = [
        "HELO client.example",
        "MAIL FROM:<sender@example.org>",
        "RCPT TO:<rcpt@example.net>",
        "DATA",
        "RSET",
        "VRFY someone",
        "EXPN list",
        "HELP",
        "AUTH PLAIN AHVzZXIAcGFzcw==",
        "LHLO client.example",
        "XYZZY",
        "XYZZY",
        "XYZZY",
        "XYZZY",
        "XYZZY",
        "XYZZY",
    ];
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("NOOP", "250 OK").await;
    for line in gated {
        c.expect(line, "530 Must issue a STARTTLS command first")
            .await;
    }
    let extensions = c.ehlo("client.example").await;
    assert!(has(&extensions, "STARTTLS"));
    for line in gated {
        c.expect(line, "530 Must issue a STARTTLS command first")
            .await;
    }

    let mut c = c.starttls(pki.client_config()).await;
    c.expect("HELO client.example", "250 test.example").await;
    c.expect("RSET", "250 OK").await;
    c.cmd("HELP", 250).await;
    c.cmd("VRFY someone", 252).await;
    c.cmd("EHLO client.example", 250).await;
    c.auth_plain().await;
    c.send_message(FROM, &[TO], BODY).await;
    c.expect("QUIT", "221 Bye").await;

    let mut c = Client::connect(server.local_addr()).await;
    c.expect("QUIT", "221 Bye").await;
    server.shutdown().await;
}

#[tokio::test]
async fn client_certificate_version_cipher_and_sni_reach_the_handler() {
    let pki = Pki::new();
    let recorder = Recorder::default();
    let config = {
        let mut config = tls_config(&pki);
        config.tls = Some(pki.server_tls_with_client_ca());
        config
    };
    let server = start(recorder.clone(), config).await;
    let cases = [
        (
            pki.client_config_with_cert(rustls::ALL_VERSIONS),
            "TLSv1.3",
            true,
        ),
        (
            pki.client_config_with_cert(&[&rustls::version::TLS12]),
            "TLSv1.2",
            true,
        ),
        (pki.client_config(), "TLSv1.3", false),
    ];
    for (client, version, presents) in cases {
        let mut c = Client::connect(server.local_addr())
            .await
            .starttls(client)
            .await;
        let suite = format!(
            "{:?}",
            c.tls()
                .negotiated_cipher_suite()
                .expect("cipher suite")
                .suite()
        );
        c.cmd("EHLO client.example", 250).await;
        c.expect("MAIL FROM:<sender@example.org>", "250 OK").await;
        c.expect("QUIT", "221 Bye").await;

        let seen = recorder.0.lock().unwrap().pop().expect("handle_mail ran");
        let tls = seen.tls.expect("session.tls()");
        assert_eq!(tls.version, version);
        assert_eq!(tls.cipher_suite, suite);
        assert_eq!(tls.sni.as_deref(), Some(SERVER_NAME));
        assert!(!tls.implicit);
        assert_eq!(tls.server_certificate.as_deref(), Some(&pki.server.der[..]));
        if presents {
            assert_eq!(tls.peer_certificates, vec![pki.client.der.clone()]);
        } else {
            assert!(tls.peer_certificates.is_empty());
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn require_client_cert_refuses_a_client_without_one() {
    let pki = Pki::new();
    let tls = TlsConfig::builder(&pki.server.cert, &pki.server.key)
        .client_ca(&pki.ca)
        .require_client_cert(true)
        .build()
        .expect("TLS config");
    let config = {
        let mut config = tls_config(&pki);
        config.tls = Some(tls);
        config
    };
    let server = start(Sink, config).await;

    let mut c = Client::connect(server.local_addr()).await;
    c.expect("STARTTLS", "220 Ready to start TLS").await;
    // TLS 1.3 clients finish their side first and learn of the refusal on the next read.
    match c.handshake(pki.client_config()).await {
        Err(_) => {}
        Ok(mut c) => {
            c.send(b"NOOP\r\n").await;
            let rest = c.read_to_close().await;
            assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
        }
    }

    let mut c = Client::connect(server.local_addr())
        .await
        .starttls(pki.client_config_with_cert(rustls::ALL_VERSIONS))
        .await;
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}

const EXPORTER_LABEL: &[u8] = b"EXPERIMENTAL-smtpd-test";
const EXPORTER_CONTEXT: &[u8] = b"context";

/// What the `X-EXPORTER` mechanism saw.
#[derive(Debug, Default, Clone)]
struct ExporterSeen {
    exporter: Option<Vec<u8>>,
    channel_binding: Option<Vec<u8>>,
    server_certificate: Option<Vec<u8>>,
    has_connection: bool,
}

/// Sends the exporter value as its challenge; succeeds when the client answers with the
/// same `tls-exporter` channel binding (or `none` when there is none).
struct Exporter(Arc<Mutex<Option<ExporterSeen>>>);

impl AuthMechanism for Exporter {
    fn name(&self) -> &str {
        "X-EXPORTER"
    }

    async fn run(&self, server: &mut AuthServer<'_>, _: AuthArgs) -> Result<AuthResult, AuthAbort> {
        let seen = ExporterSeen {
            exporter: server.tls_exporter(EXPORTER_LABEL, Some(EXPORTER_CONTEXT), 32),
            channel_binding: server.tls_exporter_channel_binding(),
            server_certificate: server.tls_server_certificate().map(<[u8]>::to_vec),
            has_connection: server.tls_connection().is_some(),
        };
        *self.0.lock().unwrap() = Some(seen.clone());
        let answer = server
            .challenge_auth(seen.exporter.unwrap_or_default(), true)
            .await?;
        let expected = seen.channel_binding.unwrap_or_else(|| b"none".to_vec());
        Ok(if answer == expected {
            AuthResult::success()
        } else {
            AuthResult::failure()
        })
    }
}

fn client_export(c: &TlsClient, label: &[u8], context: Option<&[u8]>) -> Vec<u8> {
    c.tls()
        .export_keying_material(vec![0; 32], label, context)
        .expect("client exporter")
}

/// A channel-binding mechanism (SCRAM-*-PLUS, RFC 9266) needs the same exporter value on both
/// sides: the one an `AuthServer` exports must match what the client derives.
#[tokio::test]
async fn auth_mechanisms_get_tls_exporter_keying_material_matching_the_client() {
    let pki = Pki::new();
    let seen = Arc::new(Mutex::new(None));
    let server = Server::new(Sink, tls_config(&pki))
        .mechanism(Exporter(seen.clone()))
        .expect("mechanism name")
        .listen("127.0.0.1:0")
        .await
        .expect("bind")
        .start();

    for (client, version) in [
        (pki.client_config(), "TLSv1.3"),
        (pki.client_config_tls12(), "TLSv1.2"),
    ] {
        let mut c = Client::connect(server.local_addr())
            .await
            .starttls(client)
            .await;
        assert_eq!(
            format!("{:?}", c.tls().protocol_version().expect("version")),
            version.replace("TLSv1.", "TLSv1_")
        );
        let extensions = c.ehlo("client.example").await;
        assert!(
            has(&extensions, "AUTH LOGIN PLAIN X-EXPORTER"),
            "{extensions:?}"
        );
        let challenge = c.cmd("AUTH X-EXPORTER", 334).await;
        let from_server = BASE64.decode(&challenge[0][4..]).expect("base64 challenge");
        let mine = client_export(&c, EXPORTER_LABEL, Some(EXPORTER_CONTEXT));
        assert_eq!(from_server, mine, "exporter over {version}");
        let answer = if version == "TLSv1.3" {
            client_export(&c, b"EXPORTER-Channel-Binding", Some(b""))
        } else {
            b"none".to_vec()
        };
        c.expect(
            &BASE64.encode(answer),
            "235 2.7.0 Authentication successful",
        )
        .await;
        let seen = seen.lock().unwrap().take().expect("mechanism ran");
        assert!(seen.has_connection);
        assert_eq!(seen.channel_binding.is_some(), version == "TLSv1.3");
        assert_eq!(
            seen.server_certificate.as_deref(),
            Some(&pki.server.der[..])
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn without_tls_there_is_no_keying_material() {
    let seen = Arc::new(Mutex::new(None));
    let config = {
        let mut config = config();
        config.auth_require_tls = false;
        config
    };
    let server = Server::new(Sink, config)
        .mechanism(Exporter(seen.clone()))
        .expect("mechanism name")
        .listen("127.0.0.1:0")
        .await
        .expect("bind")
        .start();
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("EHLO client.example", 250).await;
    c.cmd("AUTH X-EXPORTER", 334).await;
    c.expect(
        &BASE64.encode("none"),
        "235 2.7.0 Authentication successful",
    )
    .await;
    let seen = seen.lock().unwrap().take().expect("mechanism ran");
    assert_eq!(seen.exporter, None);
    assert_eq!(seen.channel_binding, None);
    assert_eq!(seen.server_certificate, None);
    assert!(!seen.has_connection);
    server.shutdown().await;
}

#[test]
fn unusable_certificate_files_give_errors_naming_the_file() {
    let pki = Pki::new();
    let missing = pki.dir.0.join("missing.pem");
    let error = |result: Result<TlsConfig, smtp_core::tls::TlsError>| match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };

    let e = error(TlsConfig::from_pem_files(&missing, &pki.server.key));
    assert!(e.contains(&*missing.to_string_lossy()), "{e}");
    let e = error(TlsConfig::from_pem_files(&pki.server.cert, &missing));
    assert!(e.contains(&*missing.to_string_lossy()), "{e}");

    let empty = pki.dir.write("empty.pem", "");
    let e = error(TlsConfig::from_pem_files(&empty, &pki.server.key));
    assert!(
        e.contains("no certificate") && e.contains(&*empty.to_string_lossy()),
        "{e}"
    );
    let e = error(TlsConfig::from_pem_files(&pki.server.cert, &empty));
    assert!(
        e.contains("no private key") && e.contains(&*empty.to_string_lossy()),
        "{e}"
    );

    // The client's key does not belong to the server's certificate.
    let e = error(TlsConfig::from_pem_files(&pki.server.cert, &pki.client.key));
    assert!(e.contains(&*pki.client.key.to_string_lossy()), "{e}");
    assert!(e.contains(&*pki.server.cert.to_string_lossy()), "{e}");

    let e = error(
        TlsConfig::builder(&pki.server.cert, &pki.server.key)
            .client_ca(&missing)
            .build(),
    );
    assert!(e.contains(&*missing.to_string_lossy()), "{e}");
}

#[tokio::test]
async fn smtpd_binary_names_the_unreadable_tls_file_and_exits_2() {
    let pki = Pki::new();
    let missing_key = pki.dir.0.join("missing.key");
    let missing_key = missing_key.to_string_lossy();
    let cert = pki.server.cert.to_string_lossy();
    let key = pki.server.key.to_string_lossy();
    let cases: [(Vec<&str>, &str); 3] = [
        (
            vec!["--tls-cert", "/nonexistent", "--tls-key", "x"],
            "/nonexistent",
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &missing_key],
            &missing_key,
        ),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-client-ca",
                "/nonexistent/ca.pem",
            ],
            "/nonexistent/ca.pem",
        ),
    ];
    for (tls_args, named) in cases {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend(tls_args);
        let out = run_smtpd(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.contains(named), "{args:?}: {stderr:?}");
        assert!(stderr.ends_with('\n'), "{stderr:?}");
    }
}

/// Runs `smtpd` with the TLS flags; answers like the library on both listeners.
#[tokio::test]
async fn smtpd_binary_serves_starttls_and_implicit_tls_with_its_flags() {
    let pki = Pki::new();
    let mut command = smtpd_tls_command(&pki);
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--implicit-tls-listen",
            "127.0.0.1:0",
        ])
        .args(["--auth-user", "user:pass", "--require-starttls"])
        .arg("--tls-client-ca")
        .arg(&pki.ca)
        .env("RUST_LOG", "warn");
    let smtpd = Smtpd::start(command);
    let addrs = smtpd.addrs();

    let mut c = Client::connect(addrs[0]).await;
    c.cmd("EHLO client.example", 250).await;
    c.expect(
        "MAIL FROM:<sender@example.org>",
        "530 Must issue a STARTTLS command first",
    )
    .await;
    let mut c = c
        .starttls(pki.client_config_with_cert(rustls::ALL_VERSIONS))
        .await;
    assert!(has(&c.ehlo("client.example").await, "AUTH LOGIN PLAIN"));
    c.auth_plain().await;
    c.send_message(FROM, &[TO], BODY).await;

    let mut c = Client::connect_implicit(addrs[1], pki.client_config()).await;
    assert!(has(&c.ehlo("client.example").await, "AUTH LOGIN PLAIN"));
    c.auth_plain().await;
    c.send_message(FROM, &[TO], BODY).await;
    c.expect("QUIT", "221 Bye").await;

    drop(smtpd);
}

async fn server_certificate_of(addr: std::net::SocketAddr, pki: &Pki) -> (Vec<u8>, TlsClient) {
    let c = Client::connect(addr)
        .await
        .starttls(pki.client_config())
        .await;
    let der = c.tls().peer_certificates().expect("server certificate")[0].to_vec();
    (der, c)
}

#[tokio::test]
async fn reload_swaps_the_certificate_for_new_handshakes_only() {
    let pki = Pki::new();
    let tls = pki.server_tls();
    let kept = tls.clone();
    assert_eq!(kept.certificate().as_deref(), Some(&pki.server.der[..]));
    let recorder = Recorder::default();
    let config = {
        let mut config = tls_config(&pki);
        config.tls = Some(tls);
        config
    };
    let server = start(recorder.clone(), config).await;

    let (der, mut old) = server_certificate_of(server.local_addr(), &pki).await;
    assert_eq!(der, pki.server.der);

    let next = pki.server_leaf("next");
    std::fs::copy(&next.cert, &pki.server.cert).expect("replace certificate");
    std::fs::copy(&next.key, &pki.server.key).expect("replace key");
    kept.reload().expect("reload");
    assert_eq!(kept.certificate().as_deref(), Some(&next.der[..]));

    let (der, mut new) = server_certificate_of(server.local_addr(), &pki).await;
    assert_eq!(der, next.der);
    new.cmd("EHLO client.example", 250).await;
    new.expect("MAIL FROM:<sender@example.org>", "250 OK").await;
    let seen = recorder.seen().pop().expect("handle_mail ran");
    let tls = seen.tls.expect("session.tls()");
    assert_eq!(tls.server_certificate.as_deref(), Some(&next.der[..]));
    old.expect("NOOP", "250 OK").await;

    // A broken file is reported, naming it, and the certificate in use stays.
    std::fs::write(&pki.server.key, "not a key").expect("break key");
    let error = kept.reload().expect_err("reload of a broken key");
    assert!(
        error
            .to_string()
            .contains(&*pki.server.key.to_string_lossy()),
        "{error}"
    );
    let (der, _) = server_certificate_of(server.local_addr(), &pki).await;
    assert_eq!(der, next.der);
    server.shutdown().await;
}

#[tokio::test]
async fn a_rustls_config_made_elsewhere_works_but_cannot_reload() {
    let pki = Pki::new();
    let tls = TlsConfig::from_rustls(pki.rustls_server_config());
    assert!(tls.reload().is_err());
    assert_eq!(tls.certificate(), None);
    let recorder = Recorder::default();
    let config = {
        let mut config = tls_config(&pki);
        config.tls = Some(tls);
        config
    };
    let server = start(recorder.clone(), config).await;
    let mut c = Client::connect(server.local_addr())
        .await
        .starttls(pki.client_config())
        .await;
    c.cmd("EHLO client.example", 250).await;
    c.auth_plain().await;
    c.expect("MAIL FROM:<sender@example.org>", "250 OK").await;
    let tls = recorder
        .seen()
        .pop()
        .and_then(|s| s.tls)
        .expect("session.tls()");
    assert_eq!(tls.server_certificate, None);
    assert_eq!(tls.version, "TLSv1.3");
    server.shutdown().await;
}

/// `smtpd` re-reads its certificate on SIGHUP: new handshakes get the renewed one.
#[tokio::test]
async fn smtpd_binary_reloads_its_certificate_on_sighup() {
    let pki = Pki::new();
    let mut command = smtpd_tls_command(&pki);
    command
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info");
    let smtpd = Smtpd::start(command);
    let addr = smtpd.addr();
    let (der, _) = server_certificate_of(addr, &pki).await;
    assert_eq!(der, pki.server.der);

    let next = pki.server_leaf("renewed");
    std::fs::copy(&next.cert, &pki.server.cert).expect("replace certificate");
    std::fs::copy(&next.key, &pki.server.key).expect("replace key");
    smtpd.signal("HUP");
    smtpd.stderr_until("TLS certificate reloaded");
    let (der, _) = server_certificate_of(addr, &pki).await;
    assert_eq!(
        der, next.der,
        "a new handshake gets the renewed certificate"
    );
    drop(smtpd);
}
