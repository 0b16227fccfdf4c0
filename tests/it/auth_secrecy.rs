//! Passwords never reach the logs, nor `Debug` or `Display` output.
//!
//! Every test captures all `tracing` output at TRACE level: the subscriber is the thread's
//! default and the runtime is current-thread, so the server's tasks log into it too. Each
//! test also checks that the capture saw the exchange, so it cannot pass on an empty log.
//! aiosmtpd's `assert_nopassleak` checks the password and its base64 form; here also the
//! base64 of the whole PLAIN message.

use std::sync::{Arc, Mutex};

use crate::support::*;
use smtp_core::{
    AuthData, AuthRequest, AuthResult, Config, Envelope, Handler, LoginPassword, Peer, Reply,
    Secret, Session, StaticUsers,
};

const LOGIN: &str = "alice";
const PASSWORD: &str = "Tr0ub4dor&3-zebra";
const WRONG: &str = "c0rrect-h0rse-b4ttery";
const LOGIN_PROMPT: &str = "334 VXNlciBOYW1lAA==";
const PASSWORD_PROMPT: &str = "334 UGFzc3dvcmQA";
const SUCCESS: &str = "235 2.7.0 Authentication successful";
const INVALID: &str = "535 5.7.8 Authentication credentials invalid";
const NOT_B64: &str = "501 5.5.2 Can't decode base64";

/// Keeps `format!("{session:?}")` at MAIL, after AUTH.
#[derive(Clone, Default)]
struct SessionDebug(Arc<Mutex<Option<String>>>);

impl Handler for SessionDebug {
    async fn handle_mail(
        &self,
        session: &mut Session,
        _: &mut Envelope,
        _: &str,
        _: &smtp_core::MailParams,
    ) -> Reply {
        *self.0.lock().unwrap() = Some(format!("{session:?}"));
        Reply::ok()
    }
}

fn users() -> Config {
    {
        let mut config = auth_config();
        config.authenticator = Some(StaticUsers::new().user(LOGIN, PASSWORD).into());
        config
    }
}

/// What must never be logged for `password`.
fn secrets(password: &str) -> Vec<String> {
    vec![
        password.to_owned(),
        b64(password),
        plain("", LOGIN, password),
        plain(LOGIN, LOGIN, password),
    ]
}

fn assert_no_leak(log: &str, passwords: &[&str]) {
    for password in passwords {
        for secret in secrets(password) {
            if let Some(line) = log.lines().find(|line| line.contains(&secret)) {
                panic!("`{secret}` logged: {line}");
            }
        }
    }
}

/// Runs each dialogue (lines sent and the exact replies) on its own connection to a server
/// with the user table, capturing everything logged; returns the log.
async fn logged(dialogues: &[&[(&str, &str)]]) -> String {
    let logs = SharedBuf::default();
    let _default = tracing::subscriber::set_default(logs.subscriber());
    let server = start(SessionDebug::default(), users()).await;
    for dialogue in dialogues {
        let mut c = Client::ehloed(server.local_addr()).await;
        for (line, reply) in *dialogue {
            c.expect(line, reply).await;
        }
        c.expect("QUIT", "221 Bye").await;
        c.expect_closed().await;
    }
    server.shutdown().await;
    let log = logs.text();
    // The capture saw the server's side of the exchange.
    assert!(log.contains("AUTH"), "{log}");
    assert!(log.contains("221 Bye"), "{log}");
    log
}

/// Each flow with the right password, then with a wrong one.
async fn success_and_failure(flow: impl Fn(&str) -> Vec<(String, &'static str)>) -> String {
    let good = flow(PASSWORD);
    let bad = flow(WRONG);
    let good: Vec<(&str, &str)> = good.iter().map(|(l, r)| (l.as_str(), *r)).collect();
    let bad: Vec<(&str, &str)> = bad.iter().map(|(l, r)| (l.as_str(), *r)).collect();
    let log = logged(&[&good, &bad]).await;
    assert!(log.contains("AUTH succeeded"), "{log}");
    assert!(log.contains("AUTH failed"), "{log}");
    assert_no_leak(&log, &[PASSWORD, WRONG]);
    log
}

/// `reply` for the right password, 535 for any other.
fn outcome(password: &str) -> &'static str {
    if password == PASSWORD {
        SUCCESS
    } else {
        INVALID
    }
}

#[tokio::test(flavor = "current_thread")]
async fn plain_with_initial_response() {
    let log = success_and_failure(|password| {
        vec![(
            format!("AUTH PLAIN {}", plain("", LOGIN, password)),
            outcome(password),
        )]
    })
    .await;
    // aiosmtpd's `test_plain1_goodcreds_sanitized_log`: the AUTH line is logged masked.
    assert!(log.contains(">> AUTH PLAIN ********"), "{log}");
}

#[tokio::test(flavor = "current_thread")]
async fn plain_with_initial_response_and_authzid() {
    success_and_failure(|password| {
        vec![(
            format!("AUTH PLAIN {}", plain(LOGIN, LOGIN, password)),
            outcome(password),
        )]
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn plain_without_initial_response() {
    success_and_failure(|password| {
        vec![
            ("AUTH PLAIN".to_owned(), "334 "),
            (plain("", LOGIN, password), outcome(password)),
        ]
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn login_with_initial_response() {
    success_and_failure(|password| {
        vec![
            (format!("AUTH LOGIN {}", b64(LOGIN)), PASSWORD_PROMPT),
            (b64(password), outcome(password)),
        ]
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn login_without_initial_response() {
    success_and_failure(|password| {
        vec![
            ("AUTH LOGIN".to_owned(), LOGIN_PROMPT),
            (b64(LOGIN), PASSWORD_PROMPT),
            (b64(password), outcome(password)),
        ]
    })
    .await;
}

/// aiosmtpd logs an undecodable answer raw (`%r can't decode base64: %s`), which leaks a
/// password a client sent without base64. Here neither answers nor initial responses are.
#[tokio::test(flavor = "current_thread")]
async fn undecodable_responses_are_not_logged() {
    let login_answer = [("AUTH LOGIN", LOGIN_PROMPT), (LOGIN, NOT_B64)];
    let password_answer = [
        ("AUTH LOGIN", LOGIN_PROMPT),
        ("YWxpY2U=", PASSWORD_PROMPT),
        (PASSWORD, NOT_B64),
    ];
    let plain_answer = [("AUTH PLAIN", "334 "), (PASSWORD, NOT_B64)];
    let plain_initial = format!("AUTH PLAIN {PASSWORD}");
    let login_initial = format!("AUTH LOGIN {PASSWORD}");
    let initial = [
        (plain_initial.as_str(), NOT_B64),
        (login_initial.as_str(), NOT_B64),
    ];
    let log = logged(&[&login_answer, &password_answer, &plain_answer, &initial]).await;
    assert!(log.contains(NOT_B64), "{log}");
    assert_no_leak(&log, &[PASSWORD]);
}

/// A client that ignores a refused AUTH (here `538`, TLS required) and sends its base64
/// credentials anyway: those lines reach the parser as unknown commands. Neither the line nor
/// the `500` reply that echoes it is logged.
#[tokio::test(flavor = "current_thread")]
async fn credentials_sent_after_a_refused_auth_are_not_logged() {
    let logs = SharedBuf::default();
    let _default = tracing::subscriber::set_default(logs.subscriber());
    let server = start(SessionDebug::default(), {
        let mut config = users();
        config.auth_require_tls = true;
        config
    })
    .await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        "AUTH LOGIN",
        "538 5.7.11 Encryption required for requested authentication mechanism",
    )
    .await;
    c.cmd(&b64(LOGIN), 500).await;
    c.cmd(&b64(PASSWORD), 500).await;
    c.expect("QUIT", "221 Bye").await;
    c.expect_closed().await;
    server.shutdown().await;
    let log = logs.text();
    assert!(log.contains("unrecognized command"), "{log}");
    assert_no_leak(&log, &[PASSWORD]);
    let upper = b64(PASSWORD).to_ascii_uppercase();
    assert!(
        !log.contains(&upper),
        "the 500 reply's echo was logged: {log}"
    );
}

/// Answers pipelined behind the AUTH line, and over-long ones, are not logged either.
#[tokio::test(flavor = "current_thread")]
async fn pipelined_and_overlong_responses_are_not_logged() {
    let logs = SharedBuf::default();
    let _default = tracing::subscriber::set_default(logs.subscriber());
    let server = start(SessionDebug::default(), users()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.send(format!("AUTH PLAIN\r\n{}\r\n", plain("", LOGIN, WRONG)).as_bytes())
        .await;
    assert_eq!(c.reply().await, ["334 "]);
    assert_eq!(c.reply().await, [INVALID]);
    let long_password = format!("{PASSWORD}{}", "x".repeat(13_000));
    c.send(format!("AUTH PLAIN {}\r\n", plain("", LOGIN, &long_password)).as_bytes())
        .await;
    assert_eq!(
        c.reply().await,
        ["500 5.5.6 Authentication Exchange line is too long"]
    );
    c.expect("AUTH LOGIN", LOGIN_PROMPT).await;
    c.expect(&b64(LOGIN), PASSWORD_PROMPT).await;
    c.send(format!("{}\r\n", b64(&long_password)).as_bytes())
        .await;
    assert_eq!(
        c.reply().await,
        ["500 5.5.6 Authentication Exchange line is too long"]
    );
    c.expect(
        &format!("AUTH PLAIN {}", plain("", LOGIN, PASSWORD)),
        SUCCESS,
    )
    .await;
    server.shutdown().await;
    let log = logs.text();
    assert!(log.contains("AUTH succeeded"), "{log}");
    assert_no_leak(&log, &[PASSWORD, WRONG]);
    // The beginnings of the long responses' base64, which encode the password.
    for prefix in [
        plain("", LOGIN, &long_password)[..24].to_owned(),
        b64(&long_password)[..20].to_owned(),
    ] {
        assert!(!log.contains(&prefix), "`{prefix}` logged");
    }
}

// ---- Debug and Display ---------------------------------------------------------------------

/// aiosmtpd's `TestSanitize.test_loginpassword`.
#[test]
fn login_password_debug_and_display() {
    let lp = LoginPassword::new("user", "pass");
    assert_eq!(
        format!("{lp:?}"),
        "LoginPassword(login='user', password=...)"
    );
    assert_eq!(format!("{lp}"), "LoginPassword(login='user', password=...)");
    assert_eq!(
        format!("{lp:#?}"),
        "LoginPassword(login='user', password=...)"
    );
    let lp = LoginPassword {
        authzid: Some(b"admin".to_vec()),
        ..LoginPassword::new("user", PASSWORD)
    };
    assert_eq!(
        format!("{lp:?}"),
        "LoginPassword(login='user', password=..., authzid='admin')"
    );
    assert_eq!(format!("{lp}"), format!("{lp:?}"));
    assert_eq!(format!("{:?}", lp.password), "...");
    assert_eq!(format!("{}", lp.password), "...");
    assert_eq!(format!("{:?}", Secret::new(PASSWORD)), "...");
}

/// aiosmtpd's `TestSanitize.test_authresult` (Rust spells the booleans in lower case).
#[test]
fn auth_result_and_auth_data_debug() {
    let data = AuthData::LoginPassword(LoginPassword::new("user", PASSWORD));
    assert_eq!(
        format!("{data:?}"),
        "LoginPassword(login='user', password=...)"
    );
    let result = AuthResult::success_with(data.clone());
    assert_eq!(
        format!("{result:?}"),
        "AuthResult(success=true, handled=true, message=None, auth_data=...)"
    );
    assert_eq!(
        format!(
            "{:#?}",
            AuthResult::success_with(AuthData::custom(PASSWORD))
        ),
        "AuthResult(success=true, handled=true, message=None, auth_data=...)"
    );
    assert_eq!(format!("{:?}", AuthData::custom(PASSWORD)), "AuthData(...)");
    // The message is the reply to the client, shown as it is.
    assert_eq!(
        format!("{:?}", AuthResult::failure_with("454 4.7.0 Try later")),
        "AuthResult(success=false, handled=false, message=Some(\"454 4.7.0 Try later\"), auth_data=None)"
    );
    let request = AuthRequest {
        peer: Peer::Local,
        tls: false,
        mechanism: "PLAIN".into(),
        auth_data: data,
    };
    let text = format!("{request:?} {request:#?}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains("password=..."), "{text}");
}

#[test]
fn config_debug() {
    let config = users();
    let text = format!("{config:?} {config:#?}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains("authenticator: Some(\"...\")"), "{text}");
    let table = StaticUsers::new().user(LOGIN, PASSWORD);
    assert_eq!(
        format!("{table:?}"),
        "StaticUsers { users: 1, client_certificates: false }"
    );
}

/// The session keeps the `LoginPassword` after AUTH; its `Debug` masks it.
#[tokio::test(flavor = "current_thread")]
async fn session_debug_after_auth() {
    let handler = SessionDebug::default();
    let seen = handler.0.clone();
    let server = start(handler, users()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("", LOGIN, PASSWORD)),
        SUCCESS,
    )
    .await;
    c.expect("MAIL FROM:<alice@example.com>", "250 OK").await;
    server.shutdown().await;
    let text = seen.lock().unwrap().clone().expect("MAIL seen");
    assert!(
        text.contains("LoginPassword(login='alice', password=...)"),
        "{text}"
    );
    for secret in secrets(PASSWORD) {
        assert!(!text.contains(&secret), "{text}");
    }
}

/// The failure log line carries a fingerprint of the user by default, and the user itself with
/// `log_auth_usernames` (issue 6: fail2ban-friendly, username when known) — never the password.
#[tokio::test(flavor = "current_thread")]
async fn failure_log_names_the_user_only_when_asked() {
    for named in [false, true] {
        let logs = SharedBuf::default();
        let _default = tracing::subscriber::set_default(logs.subscriber());
        let config = {
            let mut config = users();
            config.log_auth_usernames = named;
            config
        };
        let server = start(SessionDebug::default(), config).await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(&format!("AUTH PLAIN {}", plain("", LOGIN, WRONG)), INVALID)
            .await;
        c.expect("QUIT", "221 Bye").await;
        server.shutdown().await;
        let log = logs.text();
        let line = log
            .lines()
            .find(|l| l.contains("AUTH failed"))
            .unwrap_or_else(|| panic!("{log}"));
        assert!(
            line.contains("peer_ip=127.0.0.1") && line.contains("mechanism=PLAIN"),
            "{line}"
        );
        assert_eq!(line.contains(&format!("user={LOGIN}")), named, "{line}");
        assert_eq!(line.contains("user=#"), !named, "{line}");
        assert_no_leak(&log, &[WRONG, PASSWORD]);
    }
}
