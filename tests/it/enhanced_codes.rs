//! ENHANCEDSTATUSCODES (RFC 2034, RFC 3463) with `Config::enhanced_status_codes`: every 2xx,
//! 4xx and 5xx reply but the greeting and the HELO/EHLO/LHLO reply carries a code.

use crate::support::{Client, auth_config, config, plain, start};
use smtp_core::handlers::Sink;
use smtp_core::{Config, Envelope, Handler, Reply, Session};

fn enhanced() -> Config {
    {
        let mut config = config();
        config.enhanced_status_codes = true;
        config
    }
}

/// Hook replies with and without codes of their own.
struct Hooks;

impl Handler for Hooks {
    async fn handle_rcpt(
        &self,
        _: &mut Session,
        _: &mut Envelope,
        address: &str,
        _: &smtp_core::RcptParams,
    ) -> Reply {
        match address {
            "nobody@example.com" => Reply::from("550 5.1.1 no such user"),
            "spam@example.com" => Reply::from("550 go away"),
            _ => Reply::ok(),
        }
    }
}

#[tokio::test]
async fn every_reply_after_the_greeting_carries_a_code() {
    let server = start(Hooks, enhanced()).await;
    let mut c = Client::connect_raw(server.local_addr()).await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    let ehlo = c.cmd("EHLO client.example", 250).await;
    assert_eq!(ehlo[0], "250-test.example", "EHLO lines have no codes");
    assert!(ehlo.contains(&"250-ENHANCEDSTATUSCODES".to_owned()));
    for (command, reply) in [
        ("NOOP", "250 2.0.0 OK"),
        (
            "VRFY someone@example.com",
            "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
        ),
        ("EXPN list", "502 5.5.1 EXPN not implemented"),
        (
            "RCPT TO:<b@example.com>",
            "503 5.5.1 Error: need MAIL command",
        ),
        (
            "MAIL FROM:<a@example.com> X-NO=1",
            "555 5.5.4 MAIL FROM parameters not recognized or not implemented",
        ),
        (
            "MAIL FROM:<a@example.com> SIZE=999999999999",
            "552 5.3.4 Error: message size exceeds fixed maximum message size",
        ),
        ("MAIL FROM:<broken@>", "553 5.1.3 Error: malformed address"),
        ("MAIL FROM:<a@example.com>", "250 2.1.0 OK"),
        (
            "MAIL FROM:<a@example.com>",
            "503 5.5.1 Error: nested MAIL command",
        ),
        ("RCPT TO:<b@example.com>", "250 2.1.5 OK"),
        ("RCPT TO:<nobody@example.com>", "550 5.1.1 no such user"),
        ("RCPT TO:<spam@example.com>", "550 5.0.0 go away"),
        (
            "RCPT",
            "501 5.5.4 Syntax: RCPT TO: <address> [SP <mail-parameters>]",
        ),
        ("DATA x", "501 5.5.4 Syntax: DATA"),
        ("STARTTLS", "454 4.7.0 TLS not available"),
        (
            "AUTH PLAIN",
            "538 5.7.11 Encryption required for requested authentication mechanism",
        ),
        ("FOO", "500 5.5.2 Error: command \"FOO\" not recognized"),
        ("BDAT x", "501 5.5.4 Syntax: BDAT <chunk-size> [LAST]"),
    ] {
        c.expect(command, reply).await;
    }
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    c.send(b"hi\r\n").await;
    c.expect(".", "250 2.0.0 OK").await;
    c.expect(&"X".repeat(600), "500 5.5.2 Command line too long")
        .await;
    c.expect("RSET", "250 2.0.0 OK").await;
    c.expect("HELO client.example", "250 test.example").await;
    c.expect("QUIT", "221 2.0.0 Bye").await;
    server.shutdown().await;
}

#[tokio::test]
async fn bdat_and_auth_replies_carry_codes() {
    let cfg = {
        let mut config = auth_config();
        config.enhanced_status_codes = true;
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.send(b"BDAT 2\r\nhi").await;
    assert_eq!(c.reply().await, ["503 5.5.1 Error: need RCPT command"]);
    c.expect("AUTH PLAIN", "334 ").await;
    c.expect("*", "501 5.7.0 Auth aborted").await;
    let credentials = format!("AUTH PLAIN {}", plain("", "a", "b"));
    c.expect(&credentials, "535 5.7.8 Authentication credentials invalid")
        .await;
    c.expect("MAIL FROM:<a@example.com>", "250 2.1.0 OK").await;
    c.expect("RCPT TO:<b@example.com>", "250 2.1.5 OK").await;
    c.send(b"BDAT 2\r\nhi").await;
    assert_eq!(c.reply().await, ["250 2.0.0 2 octets received"]);
    c.send(b"BDAT 1 LAST\r\n!").await;
    assert_eq!(c.reply().await, ["250 2.0.0 OK"]);
    server.shutdown().await;
}

#[tokio::test]
async fn lmtp_replies_carry_codes_but_lhlo_does_not() {
    let cfg = {
        let mut config = enhanced();
        config.lmtp = true;
        config
    };
    let server = start(Hooks, cfg).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("EHLO x", "500 Error: command \"EHLO\" not recognized")
        .await;
    let lhlo = c.cmd("LHLO client.example", 250).await;
    assert_eq!(lhlo[0], "250-test.example");
    let reply = c
        .deliver(
            "a@example.com",
            &["b@example.com", "c@example.com"],
            b"x\r\n",
        )
        .await;
    assert_eq!(reply, ["250 2.0.0 OK"]);
    assert_eq!(c.reply().await, ["250 2.0.0 OK"]);
    server.shutdown().await;
}

#[tokio::test]
async fn off_by_default_with_aiosmtpd_texts() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    let ehlo = c.cmd("EHLO client.example", 250).await;
    assert!(!ehlo.contains(&"250-ENHANCEDSTATUSCODES".to_owned()));
    c.expect("NOOP", "250 OK").await;
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    c.expect("QUIT", "221 Bye").await;
    server.shutdown().await;
}
