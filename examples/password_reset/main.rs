//! A password-reset mailer written with lettre, and how to test it with
//! `smtp_core::testing::TestServer`. The tests are in `tests/it/testkit_example.rs`, which
//! includes `mailer.rs`; `cargo test` runs them.
//!
//! `cargo run --example password_reset` sends one mail to a TestServer and prints what it
//! received.

mod mailer;

use std::time::Duration;

use smtp_core::testing::TestServer;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let server = TestServer::start().await;
    let settings = mailer::SmtpSettings {
        host: "127.0.0.1".into(),
        port: server.addr().port(),
        starttls_ca: None,
        credentials: None,
    };
    mailer::send_password_reset(&settings, "ann@example.com", "https://app.example/r/123")
        .await
        .expect("sent");
    let messages = server
        .wait_for(1, Duration::from_secs(5))
        .await
        .expect("received");
    let message = &messages[0];
    println!("from {} to {:?}", message.mail_from, message.rcpt_tos());
    println!("subject: {}", message.subject().unwrap_or_default());
    println!("{}", server.transcripts()[0]);
}
