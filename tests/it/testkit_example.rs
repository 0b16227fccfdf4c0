//! `examples/password_reset`: an application's lettre mailer tested with
//! `smtp_core::testing::TestServer`, as the README shows. Success, a full mailbox (`452` on
//! RCPT), a server that drops the connection during DATA, and a server that requires
//! STARTTLS.

#[path = "../../examples/password_reset/mailer.rs"]
mod mailer;

use std::time::Duration;

use mailer::{ResetMailError, SmtpSettings, send_password_reset};
use smtp_core::testing::TestServer;
use smtp_core::{Config, Reply};

const LINK: &str = "https://app.example/reset/7f3a";
const WAIT: Duration = Duration::from_secs(5);

fn settings(server: &TestServer) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port: server.addr().port(),
        starttls_ca: None,
        credentials: None,
    }
}

fn status(error: &ResetMailError) -> Option<String> {
    match error {
        ResetMailError::Smtp(e) => e.status().map(|code| code.to_string()),
        ResetMailError::BadAddress(_) => None,
    }
}

#[tokio::test]
async fn the_reset_mail_reaches_the_user() {
    let server = TestServer::start().await;
    send_password_reset(&settings(&server), "ann@example.com", LINK)
        .await
        .expect("sent");
    let messages = server.wait_for(1, WAIT).await.expect("one message");
    let message = &messages[0];
    assert_eq!(message.mail_from, "no-reply@app.example");
    assert_eq!(message.rcpt_tos(), ["ann@example.com"]);
    assert_eq!(message.subject().as_deref(), Some("Reset your password"));
    assert!(message.text().expect("a text body").contains(LINK));
    assert!(server.transcripts()[0].sent("QUIT"));
}

#[tokio::test]
async fn a_full_mailbox_is_reported() {
    let server = TestServer::start().await;
    server
        .faults()
        .on_rcpt(1, Reply::new(452, "4.2.2 Mailbox full"));
    let error = send_password_reset(&settings(&server), "ann@example.com", LINK)
        .await
        .expect_err("refused");
    assert_eq!(status(&error).as_deref(), Some("452"), "{error}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_connection_dropped_during_data_is_an_error() {
    let server = TestServer::start().await;
    server.faults().drop_in_data(1);
    let error = send_password_reset(&settings(&server), "ann@example.com", LINK)
        .await
        .expect_err("the connection was dropped");
    assert_eq!(status(&error), None, "no reply, a lost connection: {error}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn the_mailer_uses_starttls_when_the_server_requires_it() {
    let mut config = Config::default();
    config.require_starttls = true;
    let server = TestServer::builder()
        .config(config)
        .tls_self_signed()
        .start()
        .await;
    // Without TLS the server refuses the mail.
    let error = send_password_reset(&settings(&server), "ann@example.com", LINK)
        .await
        .expect_err("STARTTLS first");
    assert_eq!(status(&error).as_deref(), Some("530"), "{error}");

    let settings = SmtpSettings {
        starttls_ca: server.ca_pem().map(|pem| pem.as_bytes().to_vec()),
        ..settings(&server)
    };
    send_password_reset(&settings, "ann@example.com", LINK)
        .await
        .expect("sent over TLS");
    let messages = server.wait_for(1, WAIT).await.expect("one message");
    assert!(messages[0].tls.is_some(), "received over TLS");
}
