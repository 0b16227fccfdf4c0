//! Runs the authenticated relay example end to end: a client logs in (argon2 hash in SQLite),
//! sends a message, and it arrives at an upstream server.

#[path = "../../examples/authenticated_relay/relay.rs"]
#[allow(dead_code)]
mod relay;

use crate::support::*;
use smtp_core::handlers::{ReceivedMessage, on_message};
use tokio::sync::mpsc;

#[tokio::test]
async fn relays_authenticated_mail_upstream() {
    let (tx, mut rx) = mpsc::unbounded_channel::<ReceivedMessage>();
    let upstream = start(
        on_message(move |m| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(m);
                Ok(())
            }
        }),
        config(),
    )
    .await;
    let dir = std::env::temp_dir().join(format!("smtpd-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = relay::UserDb::open(&dir.join("users.sqlite")).unwrap();
    db.add_user("alice", "correct horse").unwrap();
    let mut cfg = config();
    cfg.auth_require_tls = false;
    let up = upstream.local_addr();
    let relay = relay::start(db, "127.0.0.1:0", ("127.0.0.1", up.port()), cfg)
        .await
        .unwrap();

    let mut c = Client::ehloed(relay.local_addr()).await;
    c.expect(
        "MAIL FROM:<alice@example.com>",
        "530 5.7.0 Authentication required",
    )
    .await;
    // PLAIN with a wrong password, then the right one.
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    c.expect(
        &format!("AUTH PLAIN {}", b64("\0alice\0wrong")),
        "535 5.7.8 Authentication credentials invalid",
    )
    .await;
    c.expect(
        &format!("AUTH PLAIN {}", b64("\0alice\0correct horse")),
        "235 2.7.0 Authentication successful",
    )
    .await;
    c.send_message(
        "alice@example.com",
        &["bob@example.org"],
        "Subject: relayed\r\n\r\nHello Bob\r\n",
    )
    .await;
    c.cmd("QUIT", 221).await;

    let got = tokio::time::timeout(REPLY_TIMEOUT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.mail_from, "alice@example.com");
    assert_eq!(got.rcpt_tos, vec!["bob@example.org"]);
    let text = String::from_utf8(got.content).unwrap();
    assert!(
        text.starts_with("X-Authenticated-User: alice\r\n"),
        "{text:?}"
    );
    assert!(
        text.ends_with("Subject: relayed\r\n\r\nHello Bob\r\n"),
        "{text:?}"
    );

    relay.shutdown().await;
    upstream.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reports_upstream_failure_as_temporary() {
    // An upstream port with nothing listening: the relay answers 451, not 250.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = std::env::temp_dir().join(format!("smtpd-relay-down-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = relay::UserDb::open(&dir.join("users.sqlite")).unwrap();
    db.add_user("alice", "pw").unwrap();
    let mut cfg = config();
    cfg.auth_require_tls = false;
    let relay = relay::start(db, "127.0.0.1:0", ("127.0.0.1", port), cfg)
        .await
        .unwrap();
    let mut c = Client::ehloed(relay.local_addr()).await;
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD.encode("\0alice\0pw");
    c.cmd(&format!("AUTH PLAIN {blob}"), 235).await;
    c.begin_data("alice@example.com", &["bob@example.org"])
        .await;
    c.send(b"Subject: x\r\n\r\nbody\r\n").await;
    let reply = c.cmd(".", 451).await;
    assert!(
        reply[0].starts_with("451 4.4.0 upstream unavailable"),
        "{reply:?}"
    );
    relay.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
