//! Credentials never reach the log at TRACE level, whatever the mechanism and however the
//! client misbehaves. The server registers every mechanism smtp-core has, and the tests
//! walk the list it advertises in EHLO.
//!
//! `auth_secrecy.rs` walks PLAIN and LOGIN through their exact dialogues; here every
//! advertised mechanism gets the same hostile client, which puts the password into every
//! form a mechanism might parse: the initial response, each challenge answer, raw and in
//! base64, as PLAIN, XOAUTH2, OAUTHBEARER and SCRAM messages.

use crate::support::*;
use smtp_core::auth::mechanisms::{Anonymous, CramMd5, External, OAuthBearer, Scram, XOAuth2};
use smtp_core::{Config, Server, ServerHandle, StaticUsers};

const LOGIN: &str = "mallory";
const PASSWORD: &str = "Sw0rdf1sh-Tr4ce-Secret";

/// The blobs the client sends, each carrying the password.
fn blobs() -> Vec<Vec<u8>> {
    vec![
        format!("\0{LOGIN}\0{PASSWORD}").into_bytes(),
        format!("{LOGIN}\0{LOGIN}\0{PASSWORD}").into_bytes(),
        PASSWORD.as_bytes().to_vec(),
        format!("{LOGIN} {PASSWORD}").into_bytes(),
        format!("user={LOGIN}\x01auth=Bearer {PASSWORD}\x01\x01").into_bytes(),
        format!("n,a={LOGIN},\x01auth=Bearer {PASSWORD}\x01\x01").into_bytes(),
        format!("n,,n={LOGIN},r={PASSWORD}").into_bytes(),
        format!("c=biws,r={PASSWORD},p={PASSWORD}").into_bytes(),
    ]
}

/// What must never appear in the log.
fn secrets() -> Vec<String> {
    let mut secrets = vec![PASSWORD.to_owned(), b64(PASSWORD)];
    secrets.extend(blobs().iter().map(b64));
    secrets
}

fn config() -> Config {
    let mut config = auth_config();
    config.authenticator = Some(StaticUsers::new().user(LOGIN, PASSWORD).into());
    config.max_auth_failures = None;
    // The password sent as a command is an unknown command, once per mechanism.
    config.max_unknown_commands = 100;
    config
}

/// A server with every mechanism smtp-core has: the built-in PLAIN and LOGIN and all of
/// `auth::mechanisms`.
async fn start_all() -> ServerHandle {
    let users = StaticUsers::new().user(LOGIN, PASSWORD);
    Server::new(smtp_core::handlers::Sink, config())
        .mechanism(Scram::sha256(users.clone()))
        .and_then(|s| s.mechanism(Scram::sha256_plus(users.clone())))
        .and_then(|s| s.mechanism(Scram::sha1(users.clone())))
        .and_then(|s| s.mechanism(CramMd5::new(users)))
        .and_then(|s| s.mechanism(XOAuth2::new()))
        .and_then(|s| s.mechanism(OAuthBearer::new()))
        .and_then(|s| s.mechanism(External))
        .and_then(|s| s.mechanism(Anonymous))
        .expect("valid names")
        .listen("127.0.0.1:0")
        .await
        .expect("bind")
        .start()
}

/// The mechanisms in the EHLO reply's `AUTH` line, but ANONYMOUS: its trace string is public
/// by definition and logged on purpose (RFC 4505 §2, §6: clients must not put secrets there).
fn advertised(ehlo: &[String]) -> Vec<String> {
    ehlo.iter()
        .find_map(|line| line[4..].strip_prefix("AUTH "))
        .expect("AUTH is advertised")
        .split(' ')
        .filter(|name| *name != "ANONYMOUS")
        .map(str::to_owned)
        .collect()
}

/// Runs one AUTH exchange: `first` is the AUTH line, then every `334` is answered with the
/// next of `answers` (then `*`); returns the final reply's code.
async fn exchange(c: &mut Client, first: &str, answers: &[String]) -> String {
    c.send(format!("{first}\r\n").as_bytes()).await;
    let mut answers = answers.iter();
    loop {
        let reply = c.reply().await;
        let last = reply.last().unwrap().clone();
        if !last.starts_with("334") {
            return last[..3].to_owned();
        }
        let answer = answers.next().map_or("*", String::as_str);
        c.send(format!("{answer}\r\n").as_bytes()).await;
    }
}

/// Issue 8 (secrets in logs; aiosmtpd's `assert_nopassleak`): for every advertised
/// mechanism, with and without an initial response, answers in base64 and raw, cancelled or
/// not, nothing of the password reaches a TRACE-level log.
#[tokio::test(flavor = "current_thread")]
async fn no_mechanism_logs_the_password() {
    let logs = SharedBuf::default();
    let _default = tracing::subscriber::set_default(logs.subscriber());
    let server = start_all().await;
    let mut c = Client::connect(server.local_addr()).await;
    let mechanisms = advertised(&c.cmd("EHLO client.example", 250).await);
    assert_eq!(mechanisms.len(), 9, "{mechanisms:?}");
    let encoded: Vec<String> = blobs().iter().map(b64).collect();
    let raw: Vec<String> = vec![PASSWORD.to_owned(); 4];
    let mut exchanges = 0;
    for mechanism in &mechanisms {
        for blob in &encoded {
            let rotated: Vec<String> = encoded
                .iter()
                .cycle()
                .skip(exchanges % 8)
                .take(4)
                .cloned()
                .collect();
            for first in [
                format!("AUTH {mechanism} {blob}"),
                format!("AUTH {mechanism}"),
            ] {
                let code = exchange(&mut c, &first, &rotated).await;
                exchanges += 1;
                if code == "235" {
                    // Logged in: start over on a fresh connection.
                    c.expect("QUIT", "221 Bye").await;
                    c = Client::ehloed(server.local_addr()).await;
                }
            }
        }
        let code = exchange(&mut c, &format!("AUTH {mechanism}"), &raw).await;
        assert_ne!(code, "235", "{mechanism} accepted a raw password");
        // The password sent as a command after the exchange, and as the argument of one.
        c.send(format!("{PASSWORD}\r\n").as_bytes()).await;
        c.reply().await;
        c.expect("RSET", "250 OK").await;
    }
    c.expect("QUIT", "221 Bye").await;
    server.shutdown().await;
    let log = logs.text();
    // The capture saw the exchanges.
    assert!(log.contains("AUTH succeeded"), "{log}");
    assert!(log.contains("AUTH failed"), "{log}");
    for secret in secrets() {
        if let Some(line) = log.lines().find(|line| line.contains(&secret)) {
            panic!("`{secret}` logged: {line}");
        }
    }
    assert!(exchanges >= 2 * 8 * mechanisms.len());
}

/// Issue 8 (secrets in logs): the password pipelined with the AUTH command and the commands
/// after it — every line in one write — stays out of the log for every mechanism.
#[tokio::test(flavor = "current_thread")]
async fn pipelined_credentials_are_not_logged() {
    let logs = SharedBuf::default();
    let _default = tracing::subscriber::set_default(logs.subscriber());
    let server = start_all().await;
    let mut c = Client::connect(server.local_addr()).await;
    let mechanisms = advertised(&c.cmd("EHLO client.example", 250).await);
    for mechanism in &mechanisms {
        let mut c = Client::ehloed(server.local_addr()).await;
        let burst = format!(
            "AUTH {mechanism}\r\n{}\r\n{PASSWORD}\r\n{}\r\nQUIT\r\n",
            b64(PASSWORD),
            b64(format!("\0{LOGIN}\0{PASSWORD}"))
        );
        c.send(burst.as_bytes()).await;
        while c.line().await.is_some() {}
    }
    c.expect("QUIT", "221 Bye").await;
    server.shutdown().await;
    let log = logs.text();
    assert!(log.contains("AUTH"), "{log}");
    for secret in secrets() {
        if let Some(line) = log.lines().find(|line| line.contains(&secret)) {
            panic!("`{secret}` logged: {line}");
        }
    }
}
