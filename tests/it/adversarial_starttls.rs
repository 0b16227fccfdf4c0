//! STARTTLS command injection beyond what `tls.rs` covers (a NOOP or EHLO+MAIL in the same
//! write, a NOOP in a second segment): a whole transaction or an AUTH injected behind
//! STARTTLS, the STARTTLS line itself cut across segments, and commands sent in plaintext
//! after the `220` instead of a ClientHello.

use std::time::Duration;

use crate::support::Client;
use crate::support::tls::{Pki, tls_config};
use crate::support::{collector, start};

const SILENCE: Duration = Duration::from_millis(300);
const INJECTED: &[u8] = b"EHLO evil.example\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: injected\r\n\r\nevil\r\n.\r\n";

/// CVE-2011-0411 / aiosmtpd CVE-2024-34083: a whole transaction injected behind STARTTLS in
/// the same write is never run: no reply before the handshake, none after, no message.
#[tokio::test]
async fn a_transaction_injected_behind_starttls_delivers_nothing() {
    let pki = Pki::new();
    let (handler, messages) = collector();
    let server = start(handler, tls_config(&pki)).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.send(&[&b"EHLO client.example\r\nSTARTTLS\r\n"[..], INJECTED].concat())
        .await;
    assert_eq!(c.reply().await[0], "250-test.example");
    assert_eq!(c.reply().await, ["220 Ready to start TLS"]);
    c.expect_silence(SILENCE).await;
    let mut c = c.handshake(pki.client_config()).await.expect("handshake");
    c.expect_silence(SILENCE).await;
    c.expect("MAIL FROM:<a@example.com>", "503 Error: send HELO first")
        .await;
    assert!(
        messages.lock().unwrap().is_empty(),
        "the injected message was delivered"
    );
    server.shutdown().await;
}

/// CVE-2011-0411: the STARTTLS line cut in two segments, the injection riding in the second
/// one with the end of the command, is still discarded.
#[tokio::test]
async fn injection_in_the_segment_that_ends_starttls_is_discarded() {
    let pki = Pki::new();
    let (handler, messages) = collector();
    let server = start(handler, tls_config(&pki)).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("EHLO client.example", 250).await;
    c.send(b"STARTT").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(&[&b"LS\r\n"[..], INJECTED].concat()).await;
    assert_eq!(c.reply().await, ["220 Ready to start TLS"]);
    c.expect_silence(SILENCE).await;
    let mut c = c.handshake(pki.client_config()).await.expect("handshake");
    c.expect_silence(SILENCE).await;
    c.cmd("EHLO client.example", 250).await;
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    assert!(messages.lock().unwrap().is_empty());
    server.shutdown().await;
}

/// CVE-2011-0411: an AUTH injected behind STARTTLS must not leave the TLS session logged in
/// with the attacker's credentials.
#[tokio::test]
async fn an_auth_injected_behind_starttls_does_not_log_the_session_in() {
    let pki = Pki::new();
    let config = {
        let mut config = tls_config(&pki);
        config.auth_required = true;
        config.auth_require_tls = false;
        config
    };
    let server = start(smtp_core::handlers::Sink, config).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("EHLO client.example", 250).await;
    // `\0user\0pass`, which the test configuration accepts.
    c.send(b"STARTTLS\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n").await;
    assert_eq!(c.reply().await, ["220 Ready to start TLS"]);
    c.expect_silence(SILENCE).await;
    let mut c = c.handshake(pki.client_config()).await.expect("handshake");
    c.expect_silence(SILENCE).await;
    c.cmd("EHLO client.example", 250).await;
    c.expect(
        "MAIL FROM:<a@example.com>",
        "530 5.7.0 Authentication required",
    )
    .await;
    // The same credentials sent over TLS work: the injected AUTH was simply never run.
    c.auth_plain().await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    server.shutdown().await;
}

/// aiosmtpd CVE-2024-34083 (pipelined after the 220): a client that reads the `220` and then
/// sends plaintext commands instead of a ClientHello gets a failed handshake and a closed
/// connection; none of the commands runs, and the server serves the next client.
#[tokio::test]
async fn plaintext_commands_after_the_220_fail_the_handshake() {
    let pki = Pki::new();
    let (handler, messages) = collector();
    let server = start(handler, tls_config(&pki)).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("EHLO client.example", 250).await;
    c.cmd("STARTTLS", 220).await;
    c.send(INJECTED).await;
    let rest = c.read_to_close().await;
    // At most a TLS alert record (content type 21), never an SMTP reply.
    assert!(
        rest.is_empty() || rest[0] == 0x15,
        "plaintext answer after STARTTLS: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(messages.lock().unwrap().is_empty());
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}
