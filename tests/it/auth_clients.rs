//! Real clients authenticate with PLAIN and LOGIN and deliver: lettre, Python's smtplib,
//! swaks, and the `smtpd` binary's own AUTH options driven by a raw client.
//!
//! External tools (python3, swaks) are required under CI (`CI=true`): a missing one fails the
//! test. Elsewhere the test is skipped with a notice on stderr.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use smtp_core::{AuthData, AuthResult, Envelope, ServerHandle, Session};

const USER: &str = "alice";
const PASSWORD: &str = "wonder-land 42";

/// The mechanisms the authenticator was asked about, in order.
type Asked = Arc<Mutex<Vec<String>>>;

/// A server that takes alice's password, records the mechanisms used, and collects messages.
async fn server(exclude: &[&str]) -> (ServerHandle, Messages, Asked) {
    let asked = Asked::default();
    let log = asked.clone();
    let authenticator = move |_: &Session, _: &Envelope, mechanism: &str, data: &AuthData| {
        log.lock().unwrap().push(mechanism.to_owned());
        match data.login_password() {
            Some(lp) if lp.login == USER.as_bytes() && lp.password.ct_eq(PASSWORD.as_bytes()) => {
                AuthResult::success_with(data.clone())
            }
            _ => AuthResult::failure(),
        }
    };
    let (handler, messages) = collector();
    let config = {
        let mut config = auth_config();
        config.authenticator = Some(authenticator.into());
        config.auth_exclude_mechanism = exclude.iter().map(|m| m.to_string()).collect();
        config.auth_required = true;
        config
    };
    (start(handler, config).await, messages, asked)
}

/// Checks the one message collected: from alice, authenticated as alice, with `text`.
async fn delivered(messages: &Messages, text: &str) {
    wait_for_messages(messages, 1).await;
    let messages = messages.lock().unwrap();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.login.as_deref(), Some(USER.as_bytes()));
    assert_eq!(message.mail_from, "alice@example.com");
    assert_eq!(message.rcpt_tos, ["bob@example.com"]);
    let content = String::from_utf8_lossy(&message.content);
    assert!(content.contains(text), "{content}");
}

/// Runs `program` with `args` (see `crate::support::tools::run`); returns (success, stdout, stderr).
async fn run(program: &str, args: Vec<String>) -> (bool, String, String) {
    let mut command = Command::new(program);
    command.args(&args);
    let output = tools::run(command).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// ---- lettre ----------------------------------------------------------------------------------

async fn lettre_send(
    addr: SocketAddr,
    mechanism: Mechanism,
    password: &str,
) -> Result<(), lettre::transport::smtp::Error> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .hello_name(ClientId::Domain("client.example".into()))
        .credentials(Credentials::new(USER.into(), password.into()))
        .authentication(vec![mechanism])
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let email = Message::builder()
        .from("Alice <alice@example.com>".parse().unwrap())
        .to("Bob <bob@example.com>".parse().unwrap())
        .subject(format!("lettre {mechanism}"))
        .body(format!("Hello from lettre with {mechanism}"))
        .unwrap();
    transport.send(email).await.map(|_| ())
}

#[tokio::test]
async fn lettre_plain() {
    let (server, messages, asked) = server(&[]).await;
    lettre_send(server.local_addr(), Mechanism::Plain, PASSWORD)
        .await
        .expect("lettre sends");
    delivered(&messages, "Hello from lettre with PLAIN").await;
    assert_eq!(*asked.lock().unwrap(), ["PLAIN"]);
    server.shutdown().await;
}

#[tokio::test]
async fn lettre_login() {
    let (server, messages, asked) = server(&[]).await;
    lettre_send(server.local_addr(), Mechanism::Login, PASSWORD)
        .await
        .expect("lettre sends");
    delivered(&messages, "Hello from lettre with LOGIN").await;
    assert_eq!(*asked.lock().unwrap(), ["LOGIN"]);
    server.shutdown().await;
}

#[tokio::test]
async fn lettre_wrong_password_and_excluded_mechanism() {
    let (server, messages, _) = server(&["LOGIN"]).await;
    let error = lettre_send(server.local_addr(), Mechanism::Plain, "wrong")
        .await
        .expect_err("wrong password");
    assert_eq!(
        error.status().map(|code| code.to_string()).as_deref(),
        Some("535"),
        "{error}"
    );
    // LOGIN is not advertised, so lettre finds nothing it may use.
    let error = lettre_send(server.local_addr(), Mechanism::Login, PASSWORD)
        .await
        .expect_err("LOGIN excluded");
    assert!(
        error
            .to_string()
            .contains("No compatible authentication mechanism was found"),
        "{error}"
    );
    assert!(messages.lock().unwrap().is_empty());
    server.shutdown().await;
}

// ---- Python smtplib --------------------------------------------------------------------------

const SMTPLIB: &str = r#"
import smtplib, sys
host, port, mode, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with smtplib.SMTP(host, port, local_hostname="client.example", timeout=10) as s:
    s.ehlo()
    if mode == "login()":
        s.login("alice", password)
    else:
        s.user, s.password = "alice", password
        if mode == "PLAIN":
            s.auth("PLAIN", s.auth_plain)
        elif mode == "LOGIN":
            s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        elif mode == "LOGIN-IR":
            s.auth("LOGIN", s.auth_login)
        else:
            sys.exit("unknown mode " + mode)
    s.sendmail("alice@example.com", ["bob@example.com"],
               "Subject: smtplib\r\n\r\nHello from smtplib " + mode + "\r\n")
"#;

async fn smtplib(addr: SocketAddr, mode: &str, password: &str) -> (bool, String, String) {
    let args = [
        "-c",
        SMTPLIB,
        &addr.ip().to_string(),
        &addr.port().to_string(),
        mode,
        password,
    ];
    run("python3", args.iter().map(|a| a.to_string()).collect()).await
}

/// `login()` picks a mechanism itself: PLAIN when offered, else LOGIN. Forced PLAIN sends an
/// initial response; forced LOGIN answers both prompts, or sends the user name as initial
/// response.
#[tokio::test]
async fn smtplib_login() {
    if !tools::available("python3") {
        return;
    }
    let cases: [(&[&str], &str, &str); 5] = [
        (&[], "login()", "PLAIN"),
        (&["PLAIN"], "login()", "LOGIN"),
        (&[], "PLAIN", "PLAIN"),
        (&[], "LOGIN", "LOGIN"),
        (&[], "LOGIN-IR", "LOGIN"),
    ];
    for (exclude, mode, mechanism) in cases {
        let (server, messages, asked) = server(exclude).await;
        let (ok, stdout, stderr) = smtplib(server.local_addr(), mode, PASSWORD).await;
        assert!(ok, "smtplib {mode}: {stdout}{stderr}");
        delivered(&messages, &format!("Hello from smtplib {mode}")).await;
        assert_eq!(*asked.lock().unwrap(), [mechanism], "smtplib {mode}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn smtplib_wrong_password() {
    if !tools::available("python3") {
        return;
    }
    let (server, messages, _) = server(&[]).await;
    for mode in ["login()", "PLAIN", "LOGIN"] {
        let (ok, _, stderr) = smtplib(server.local_addr(), mode, "wrong").await;
        assert!(!ok, "smtplib {mode} logged in with a wrong password");
        assert!(
            stderr.contains(
                "SMTPAuthenticationError: (535, b'5.7.8 Authentication credentials invalid')"
            ),
            "{stderr}"
        );
    }
    assert!(messages.lock().unwrap().is_empty());
    server.shutdown().await;
}

// ---- swaks -----------------------------------------------------------------------------------

async fn swaks(addr: SocketAddr, mechanism: &str, password: &str) -> (bool, String, String) {
    let mut command = tools::swaks_auth(addr, mechanism, USER, password);
    command
        .args(["--header", "Subject: swaks"])
        .args(["--body", &format!("Hello from swaks {mechanism}")]);
    let output = tools::run(command).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn swaks_plain_and_login() {
    if !tools::available("swaks") {
        return;
    }
    for mechanism in ["PLAIN", "LOGIN"] {
        let (server, messages, asked) = server(&[]).await;
        let (ok, stdout, stderr) = swaks(server.local_addr(), mechanism, PASSWORD).await;
        assert!(ok, "swaks {mechanism}: {stdout}{stderr}");
        assert!(
            stdout.contains("<-  235 2.7.0 Authentication successful"),
            "{stdout}"
        );
        delivered(&messages, &format!("Hello from swaks {mechanism}")).await;
        assert_eq!(*asked.lock().unwrap(), [mechanism]);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn swaks_wrong_password() {
    if !tools::available("swaks") {
        return;
    }
    let (server, messages, _) = server(&[]).await;
    for mechanism in ["PLAIN", "LOGIN"] {
        let (ok, stdout, stderr) = swaks(server.local_addr(), mechanism, "wrong").await;
        assert!(!ok, "swaks {mechanism} logged in with a wrong password");
        assert!(
            stdout.contains("<** 535 5.7.8 Authentication credentials invalid"),
            "{stdout}{stderr}"
        );
    }
    assert!(messages.lock().unwrap().is_empty());
    server.shutdown().await;
}

// ---- The smtpd binary ------------------------------------------------------------------------

/// `--auth-user` (twice), `--no-auth-require-tls`, `--auth-required`, `--auth-exclude LOGIN`.
#[tokio::test]
async fn smtpd_binary_auth_options() {
    let smtpd = Smtpd::tcp(&[
        "--handler",
        "sink",
        "--hostname",
        "smtpd.test",
        "--auth-user",
        "user:pass",
        "--auth-user",
        "bob:colon:in:password",
        "--no-auth-require-tls",
        "--auth-required",
        "--auth-exclude",
        "LOGIN",
    ]);
    assert!(
        smtpd
            .started
            .iter()
            .any(|l| l.contains("auth_required is set but auth_require_tls is not")),
        "no startup warning: {:?}",
        smtpd.started
    );
    let mut c = Client::connect(smtpd.addr()).await;
    c.send(b"EHLO client.example\r\n").await;
    let ehlo = c.reply().await;
    assert!(ehlo.contains(&"250-AUTH PLAIN".to_owned()), "{ehlo:?}");
    c.expect(
        "MAIL FROM:<user@example.com>",
        "530 5.7.0 Authentication required",
    )
    .await;
    c.expect("AUTH LOGIN", "504 5.5.4 Unrecognized authentication type")
        .await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("", "user", "wrong")),
        "535 5.7.8 Authentication credentials invalid",
    )
    .await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("", "user", "pass")),
        "235 2.7.0 Authentication successful",
    )
    .await;
    let reply = c
        .deliver(
            "user@example.com",
            &["bob@example.com"],
            b"Subject: hi\r\n\r\nHello\r\n",
        )
        .await;
    assert_eq!(reply, ["250 OK"]);
    c.expect("QUIT", "221 Bye").await;

    // The second user, whose password has colons: only the first one separates.
    let mut c = Client::ehloed(smtpd.addr()).await;
    c.expect("AUTH PLAIN", "334 ").await;
    c.expect(
        &plain("", "bob", "colon:in:password"),
        "235 2.7.0 Authentication successful",
    )
    .await;
    c.expect("MAIL FROM:<bob@example.com>", "250 OK").await;
}
