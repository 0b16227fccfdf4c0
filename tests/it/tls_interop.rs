//! Real SMTP clients over STARTTLS and implicit TLS, each authenticating and delivering a
//! message that must arrive byte for byte: lettre, Python's smtplib, swaks and curl.
//!
//! The external programs are run with a timeout. When one is missing the test fails under
//! `CI=true` and is skipped, with a notice, elsewhere.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use crate::support::REPLY_TIMEOUT;
use crate::support::tls::{Pki, SERVER_NAME, start_both, tls_config};
use crate::support::tools::{self, CLIENT_TIMEOUT};
use smtp_core::handlers::{ReceivedMessage, on_message};
use smtp_core::{Envelope, Handler, Reply, Session};

const FROM: &str = "sender@example.org";
const TO: &str = "rcpt@example.net";
/// Dots at line starts (one alone on its line) test the clients' dot-stuffing and ours.
const MESSAGE: &str = "From: Sender <sender@example.org>\r\n\
    To: <rcpt@example.net>\r\n\
    Subject: TLS interop\r\n\
    Message-ID: <tls-interop@example.org>\r\n\
    \r\n\
    First line.\r\n\
    .A line that starts with a dot.\r\n\
    ..Two dots.\r\n\
    .\r\n\
    Tab\there, UTF-8 caf\u{e9}, trailing spaces.   \r\n\
    Last line.\r\n";

/// What to hand to lettre and swaks: both end DATA with `CRLF . CRLF` written after the body
/// (lettre's `send_raw`, swaks' `--data`), so a body that already ends in CRLF would arrive
/// with an extra empty line. Without its last CRLF it arrives as [`MESSAGE`].
fn message_without_final_crlf() -> &'static str {
    MESSAGE.strip_suffix("\r\n").expect("MESSAGE ends in CRLF")
}

type Inbox = Arc<Mutex<Vec<ReceivedMessage>>>;

/// Implicit TLS (`smtps`, RFC 8314) or STARTTLS on a plain listener.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    StartTls,
    Implicit,
}

/// A server with both listeners, a user `user`/`pass`, recording messages.
struct Fixture {
    pki: Pki,
    server: smtp_core::ServerHandle,
    plain: SocketAddr,
    implicit: SocketAddr,
    inbox: Inbox,
    message_file: std::path::PathBuf,
}

impl Fixture {
    async fn start() -> Fixture {
        let pki = Pki::new();
        let inbox = Inbox::default();
        let sink = inbox.clone();
        let handler = on_message(move |message| {
            sink.lock().unwrap().push(message);
            async { Ok(()) }
        });
        let (server, plain, implicit) = start_both(handler, tls_config(&pki)).await;
        let message_file = pki.dir.write("message.eml", MESSAGE);
        Fixture {
            pki,
            server,
            plain,
            implicit,
            inbox,
            message_file,
        }
    }

    fn addr(&self, mode: Mode) -> SocketAddr {
        match mode {
            Mode::StartTls => self.plain,
            Mode::Implicit => self.implicit,
        }
    }

    /// Checks that exactly one message arrived, authenticated, intact.
    async fn assert_delivered(self, client: &str) {
        {
            let inbox = self.inbox.lock().unwrap();
            assert_eq!(inbox.len(), 1, "{client}: messages received: {inbox:?}");
            let message = &inbox[0];
            assert_eq!(message.login.as_deref(), Some(&b"user"[..]), "{client}");
            assert_eq!(message.mail_from, FROM, "{client}");
            assert_eq!(message.rcpt_tos, vec![TO.to_owned()], "{client}");
            assert_eq!(
                String::from_utf8_lossy(&message.content),
                MESSAGE,
                "{client}: content"
            );
        }
        self.server.shutdown().await;
    }
}

/// Runs `command` (see `crate::support::tools::run`) and checks that it succeeded.
async fn run(command: Command) -> Output {
    let shown = format!("{command:?}");
    let output = tools::run(command).await;
    assert!(
        output.status.success(),
        "{shown} failed: {}",
        tools::shown(&output)
    );
    output
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

// ---- lettre ----

async fn lettre(mode: Mode, mechanism: lettre::transport::smtp::authentication::Mechanism) {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::transport::smtp::extension::ClientId;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

    let f = Fixture::start().await;
    let ca = std::fs::read(&f.pki.ca).expect("read CA");
    let parameters = TlsParameters::builder(SERVER_NAME.to_owned())
        .add_root_certificate(Certificate::from_pem(&ca).expect("CA certificate"))
        .build_rustls()
        .expect("TLS parameters");
    let tls = match mode {
        Mode::StartTls => Tls::Required(parameters),
        Mode::Implicit => Tls::Wrapper(parameters),
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(f.addr(mode).port())
        .tls(tls)
        .hello_name(ClientId::Domain("client.example".into()))
        .credentials(Credentials::new("user".into(), "pass".into()))
        .authentication(vec![mechanism])
        .timeout(Some(REPLY_TIMEOUT))
        .build();
    let envelope = lettre::address::Envelope::new(
        Some(FROM.parse().expect("from")),
        vec![TO.parse().expect("to")],
    )
    .expect("envelope");
    let response = tokio::time::timeout(
        CLIENT_TIMEOUT,
        transport.send_raw(&envelope, message_without_final_crlf().as_bytes()),
    )
    .await
    .expect("lettre timed out")
    .expect("lettre send");
    assert!(response.is_positive(), "{response:?}");
    f.assert_delivered(&format!("lettre {mode:?} {mechanism:?}"))
        .await;
}

#[tokio::test]
async fn lettre_starttls_auth_plain() {
    lettre(
        Mode::StartTls,
        lettre::transport::smtp::authentication::Mechanism::Plain,
    )
    .await;
}

#[tokio::test]
async fn lettre_implicit_tls_auth_login() {
    lettre(
        Mode::Implicit,
        lettre::transport::smtp::authentication::Mechanism::Login,
    )
    .await;
}

// ---- Python smtplib ----

const PYTHON: &str = r#"
import smtplib, ssl, sys
mode, port, ca, path, mechanism, sender, rcpt = sys.argv[1:]
context = ssl.create_default_context(cafile=ca)
message = open(path, "rb").read()
if mode == "StartTls":
    s = smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.example", timeout=20)
    s.ehlo()
    assert s.has_extn("starttls"), s.esmtp_features
    assert not s.has_extn("auth"), s.esmtp_features
    code, _ = s.starttls(context=context)
    assert code == 220, code
else:
    s = smtplib.SMTP_SSL("127.0.0.1", int(port), local_hostname="client.example",
                         context=context, timeout=20)
s.ehlo()
assert s.has_extn("auth") and not s.has_extn("starttls"), s.esmtp_features
s.user, s.password = "user", "pass"
code, _ = s.auth(mechanism, getattr(s, "auth_" + mechanism.lower()))
assert code == 235, code
refused = s.sendmail(sender, [rcpt], message)
assert not refused, refused
s.quit()
print("python:", s.sock is None and "closed" or "open", ssl.OPENSSL_VERSION)
"#;

async fn python(mode: Mode, mechanism: &str) {
    if !tools::available("python3") {
        return;
    }
    let f = Fixture::start().await;
    let mut command = Command::new("python3");
    command.args([
        "-c",
        PYTHON,
        &format!("{mode:?}"),
        &f.addr(mode).port().to_string(),
        path(&f.pki.ca),
        path(&f.message_file),
        mechanism,
        FROM,
        TO,
    ]);
    run(command).await;
    f.assert_delivered(&format!("smtplib {mode:?} {mechanism}"))
        .await;
}

#[tokio::test]
async fn python_smtplib_starttls_auth_plain() {
    python(Mode::StartTls, "PLAIN").await;
}

#[tokio::test]
async fn python_smtplib_smtp_ssl_auth_login() {
    python(Mode::Implicit, "LOGIN").await;
}

// ---- swaks ----

async fn swaks(mode: Mode, mechanism: &str) {
    if !tools::available("swaks") {
        return;
    }
    let f = Fixture::start().await;
    let data = f.pki.dir.write("swaks.eml", message_without_final_crlf());
    let mut command = Command::new("swaks");
    command.args([
        "--server",
        "127.0.0.1",
        "--port",
        &f.addr(mode).port().to_string(),
        match mode {
            Mode::StartTls => "--tls",
            Mode::Implicit => "--tlsc",
        },
        "--tls-verify",
        "--tls-ca-path",
        path(&f.pki.ca),
        "--tls-sni",
        SERVER_NAME,
        "--ehlo",
        "client.example",
        "--from",
        FROM,
        "--to",
        TO,
        "--auth",
        mechanism,
        "--auth-user",
        "user",
        "--auth-password",
        "pass",
        "--data",
        &format!("@{}", path(&data)),
        "--timeout",
        "20",
    ]);
    let output = run(command).await;
    let transcript = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "=== TLS started",
        &format!(" ~> AUTH {mechanism}"),
        "<~  235 2.7.0 Authentication successful",
    ] {
        assert!(
            transcript.contains(expected),
            "{expected:?} in:\n{transcript}"
        );
    }
    f.assert_delivered(&format!("swaks {mode:?} {mechanism}"))
        .await;
}

#[tokio::test]
async fn swaks_tls_auth_plain() {
    swaks(Mode::StartTls, "PLAIN").await;
}

#[tokio::test]
async fn swaks_tls_auth_login() {
    swaks(Mode::StartTls, "LOGIN").await;
}

#[tokio::test]
async fn swaks_tlsc_auth_plain() {
    swaks(Mode::Implicit, "PLAIN").await;
}

#[tokio::test]
async fn swaks_tlsc_auth_login() {
    swaks(Mode::Implicit, "LOGIN").await;
}

// ---- curl ----

fn curl_command(f: &Fixture, mode: Mode, mechanism: &str) -> Command {
    let scheme = match mode {
        Mode::StartTls => "smtp",
        Mode::Implicit => "smtps",
    };
    let mut command = Command::new("curl");
    command.args([
        "--verbose",
        "--show-error",
        "--max-time",
        "20",
        "--url",
        &format!(
            "{scheme}://127.0.0.1:{}/client.example",
            f.addr(mode).port()
        ),
        "--cacert",
        path(&f.pki.ca),
        "--user",
        "user:pass",
        "--login-options",
        &format!("AUTH={mechanism}"),
        "--mail-from",
        FROM,
        "--mail-rcpt",
        TO,
        "--upload-file",
        path(&f.message_file),
    ]);
    if mode == Mode::StartTls {
        command.arg("--ssl-reqd");
    }
    command
}

async fn curl(mode: Mode, mechanism: &str) {
    if !tools::available("curl") {
        return;
    }
    let f = Fixture::start().await;
    let output = run(curl_command(&f, mode, mechanism)).await;
    let transcript = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "SSL certificate verify ok.",
        &format!("> AUTH {mechanism}"),
        "< 235 2.7.0 Authentication successful",
    ] {
        assert!(
            transcript.contains(expected),
            "{expected:?} in:\n{transcript}"
        );
    }
    if mode == Mode::StartTls {
        assert!(transcript.contains("> STARTTLS"), "{transcript}");
    }
    f.assert_delivered(&format!("curl {mode:?} {mechanism}"))
        .await;
}

#[tokio::test]
async fn curl_smtp_ssl_reqd_auth_plain() {
    curl(Mode::StartTls, "PLAIN").await;
}

#[tokio::test]
async fn curl_smtps_auth_login() {
    curl(Mode::Implicit, "LOGIN").await;
}

// ---- client certificates from a real client ----

/// Records the client certificate chain of each message's session.
#[derive(Clone, Default)]
struct PeerCerts(Arc<Mutex<Vec<Vec<Vec<u8>>>>>);

impl Handler for PeerCerts {
    async fn handle_data(&self, session: &mut Session, _: &mut Envelope) -> Reply {
        let chain = session
            .tls()
            .map(|t| t.peer_certificates.clone())
            .unwrap_or_default();
        self.0.lock().unwrap().push(chain);
        Reply::ok()
    }
}

#[tokio::test]
async fn curl_client_certificate_reaches_the_handler_over_both_modes() {
    if !tools::available("curl") {
        return;
    }
    let pki = Pki::new();
    let seen = PeerCerts::default();
    let config = {
        let mut config = tls_config(&pki);
        config.tls = Some(pki.server_tls_with_client_ca());
        config
    };
    let (server, plain, implicit) = start_both(seen.clone(), config).await;
    let message_file = pki.dir.write("message.eml", MESSAGE);
    for (scheme, addr) in [("smtp", plain), ("smtps", implicit)] {
        let mut command = Command::new("curl");
        command.args([
            "--verbose",
            "--show-error",
            "--max-time",
            "20",
            "--ssl-reqd",
            "--url",
            &format!("{scheme}://127.0.0.1:{}/client.example", addr.port()),
            "--cacert",
            path(&pki.ca),
            "--cert",
            path(&pki.client.cert),
            "--key",
            path(&pki.client.key),
            "--user",
            "user:pass",
            "--mail-from",
            FROM,
            "--mail-rcpt",
            TO,
            "--upload-file",
            path(&message_file),
        ]);
        run(command).await;
    }
    let chains = seen.0.lock().unwrap().clone();
    assert_eq!(chains.len(), 2);
    for chain in chains {
        // OpenSSL may send the CA behind the leaf.
        assert_eq!(chain.first(), Some(&pki.client.der), "leaf first");
        assert!(
            chain[1..].iter().all(|c| *c == pki.ca_der),
            "only the CA after the leaf"
        );
    }
    server.shutdown().await;
}
