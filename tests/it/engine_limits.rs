//! Limits: command line length (and its growth after EHLO), message size at `MAIL SIZE=` and
//! during DATA, DATA line length, recipients per message, command call budgets.

use crate::support::*;
use smtp_core::CallLimit;
use smtp_core::handlers::Sink;

/// `MAIL FROM:<@xxx…x.example:a@example.com>` padded to exactly `len` bytes with a source
/// route, which the server ignores (an address itself may have at most 320 octets).
fn mail_line(len: usize) -> String {
    let fixed = "MAIL FROM:<@.example:a@example.com>".len();
    assert!(len > fixed);
    format!(
        "MAIL FROM:<@{}.example:a@example.com>",
        "x".repeat(len - fixed)
    )
}

/// `NOOP xxx…` of exactly `len` bytes.
fn noop_line(len: usize) -> String {
    format!("NOOP {}", "x".repeat(len - 5))
}

#[tokio::test]
async fn command_lines_of_512_octets_pass_and_513_do_not() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect(&noop_line(512), "250 OK").await;
    c.expect(&noop_line(513), "500 Command line too long").await;
    c.cmd("HELO client.example", 250).await;
    c.expect(&mail_line(512), "250 OK").await;
    c.expect("RSET", "250 OK").await;
    // After HELO (not EHLO) MAIL gets no extra room.
    c.expect(&mail_line(513), "500 Command line too long").await;
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
}

#[tokio::test]
async fn mail_gets_26_more_octets_after_ehlo_with_size() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(&mail_line(538), "250 OK").await;
    c.expect("RSET", "250 OK").await;
    c.expect(&mail_line(539), "500 Command line too long").await;
    // Only MAIL grows.
    c.expect(&noop_line(513), "500 Command line too long").await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    let rcpt = format!("RCPT TO:<@{}.example:b@example.com>", "y".repeat(513 - 33));
    assert_eq!(rcpt.len(), 513);
    c.expect(&rcpt, "500 Command line too long").await;
}

#[tokio::test]
async fn mail_gets_10_more_octets_with_smtputf8() {
    let cfg = {
        let mut config = config();
        config.smtputf8 = true;
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(&mail_line(548), "250 OK").await;
    c.expect("RSET", "250 OK").await;
    c.expect(&mail_line(549), "500 Command line too long").await;
    let cfg = {
        let mut config = config();
        config.smtputf8 = true;
        config.max_message_size = None;
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(&mail_line(522), "250 OK").await;
    c.expect("RSET", "250 OK").await;
    c.expect(&mail_line(523), "500 Command line too long").await;
}

#[tokio::test]
async fn mail_gets_no_more_octets_without_extensions() {
    let cfg = {
        let mut config = config();
        config.max_message_size = None;
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(&mail_line(512), "250 OK").await;
    c.expect("RSET", "250 OK").await;
    c.expect(&mail_line(513), "500 Command line too long").await;
}

/// Deliberate difference: aiosmtpd adds the extra room again on every EHLO (and shares it
/// between connections); here it is computed per connection.
#[tokio::test]
async fn repeated_ehlo_does_not_grow_the_mail_limit() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    for _ in 0..3 {
        c.cmd("EHLO client.example", 250).await;
    }
    c.expect(&mail_line(539), "500 Command line too long").await;
    let mut other = Client::ehloed(server.local_addr()).await;
    other
        .expect(&mail_line(539), "500 Command line too long")
        .await;
    other.expect(&mail_line(538), "250 OK").await;
}

#[tokio::test]
async fn a_huge_command_line_gets_one_reply_and_the_session_goes_on() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let mut line = vec![b'X'; 1024 * 1024];
    line.extend_from_slice(b"\r\nNOOP\r\n");
    c.send(&line).await;
    assert_eq!(c.reply().await, ["500 Command line too long"]);
    assert_eq!(c.reply().await, ["250 OK"]);
    // The over-long line was not counted as an unknown verb (it never was a command).
    for _ in 0..4 {
        c.send(&line).await;
        assert_eq!(c.reply().await, ["500 Command line too long"]);
        assert_eq!(c.reply().await, ["250 OK"]);
    }
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
}

#[tokio::test]
async fn mail_size_parameter_is_checked_against_the_limit() {
    let cfg = {
        let mut config = config();
        config.max_message_size = Some(1000);
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM:<a@example.com> SIZE=1000", "250 OK")
        .await;
    c.expect("RSET", "250 OK").await;
    c.expect(
        "MAIL FROM:<a@example.com> SIZE=1001",
        "552 Error: message size exceeds fixed maximum message size",
    )
    .await;
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    c.expect("MAIL FROM:<a@example.com> SIZE=0", "250 OK").await;
}

#[tokio::test]
async fn without_a_size_limit_any_size_is_accepted() {
    let cfg = {
        let mut config = config();
        config.max_message_size = None;
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM:<a@example.com> SIZE=99999999999999", "250 OK")
        .await;
}

/// `n` bytes of message: lines of 78 characters plus CRLF, padded at the end.
fn body_of(n: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(n);
    while n - body.len() >= 80 {
        body.extend_from_slice(&[b'a'; 78]);
        body.extend_from_slice(b"\r\n");
    }
    let rest = n - body.len();
    if rest >= 2 {
        body.extend(std::iter::repeat_n(b'b', rest - 2));
        body.extend_from_slice(b"\r\n");
    }
    assert_eq!(body.len(), n);
    body
}

#[tokio::test]
async fn data_over_the_size_limit_gets_552_and_the_connection_stays_usable() {
    let (handler, messages) = collector();
    let cfg = {
        let mut config = config();
        config.max_message_size = Some(1000);
        config
    };
    let server = start(handler, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    // The limit counts every byte sent (CRLFs included, final `.CRLF` excluded).
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], &body_of(1000))
            .await,
        ["250 OK"]
    );
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], &body_of(1001))
            .await,
        ["552 Error: Too much mail data"]
    );
    // The transaction is over.
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    // Far too much: still one reply, and the session goes on.
    assert_eq!(
        c.deliver(
            "a@example.com",
            &["b@example.com"],
            &body_of(4 * 1024 * 1024)
        )
        .await,
        ["552 Error: Too much mail data"]
    );
    assert_eq!(
        c.deliver("c@example.com", &["d@example.com"], b"small\r\n")
            .await,
        ["250 OK"]
    );
    c.expect("QUIT", "221 Bye").await;
    let messages = messages.lock().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].content, body_of(1000));
    assert_eq!(messages[1].mail_from, "c@example.com");
    assert_eq!(messages[1].content, b"small\r\n");
}

#[tokio::test]
async fn dot_stuffing_counts_towards_the_size() {
    let (handler, messages) = collector();
    let cfg = {
        let mut config = config();
        config.max_message_size = Some(10);
        config
    };
    let server = start(handler, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    // 10 bytes on the wire, 9 after unstuffing.
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], b"..abcdef\r\n")
            .await,
        ["250 OK"]
    );
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], b"..abcdefg\r\n")
            .await,
        ["552 Error: Too much mail data"]
    );
    assert_eq!(messages.lock().unwrap()[0].content, b".abcdef\r\n");
}

#[tokio::test]
async fn data_lines_longer_than_1000_octets_are_refused() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let mut ok = vec![b'x'; 999];
    ok.extend_from_slice(b"\r\n");
    let mut long = vec![b'y'; 1000];
    long.extend_from_slice(b"\r\n");
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], &ok).await,
        ["250 OK"]
    );
    let mut body = b"Subject: long\r\n\r\n".to_vec();
    body.extend_from_slice(&long);
    body.extend_from_slice(b"after\r\n");
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], &body).await,
        ["500 Line too long (see RFC5321 4.5.3.1.6)"]
    );
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    // A line without end is refused too, once the end marker comes.
    let mut endless = vec![b'z'; 100_000];
    endless.extend_from_slice(b"\r\n");
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], &endless)
            .await,
        ["500 Line too long (see RFC5321 4.5.3.1.6)"]
    );
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], b"fine\r\n")
            .await,
        ["250 OK"]
    );
    let messages = messages.lock().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].content, ok);
    assert_eq!(messages[1].content, b"fine\r\n");
}

#[tokio::test]
async fn the_first_data_error_wins() {
    let cfg = {
        let mut config = config();
        config.max_message_size = Some(2000);
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let mut long_then_big = vec![b'y'; 1500];
    long_then_big.extend_from_slice(b"\r\n");
    long_then_big.extend_from_slice(&body_of(4000));
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], &long_then_big)
            .await,
        ["500 Line too long (see RFC5321 4.5.3.1.6)"]
    );
    let mut big_then_long = body_of(2500);
    big_then_long.extend_from_slice(&[b'y'; 1500]);
    big_then_long.extend_from_slice(b"\r\n");
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], &big_then_long)
            .await,
        ["552 Error: Too much mail data"]
    );
}

#[tokio::test]
async fn the_data_line_limit_is_configurable() {
    let cfg = {
        let mut config = config();
        config.max_data_line = 12;
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], b"0123456789\r\n")
            .await,
        ["250 OK"]
    );
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], b"0123456789A\r\n")
            .await,
        ["500 Line too long (see RFC5321 4.5.3.1.6)"]
    );
}

#[tokio::test]
async fn too_many_recipients_get_452() {
    let (handler, messages) = collector();
    let cfg = {
        let mut config = config();
        config.max_recipients = 3;
        config
    };
    let server = start(handler, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    for i in 0..3 {
        c.expect(&format!("RCPT TO:<r{i}@example.com>"), "250 OK")
            .await;
    }
    c.expect("RCPT TO:<r3@example.com>", "452 4.5.3 Too many recipients")
        .await;
    c.expect("RCPT TO:<r4@example.com>", "452 4.5.3 Too many recipients")
        .await;
    c.cmd("DATA", 354).await;
    c.send(b"hi\r\n").await;
    c.expect(".", "250 OK").await;
    // The count starts over with the next transaction.
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    for i in 0..3 {
        c.expect(&format!("RCPT TO:<s{i}@example.com>"), "250 OK")
            .await;
    }
    c.expect("RCPT TO:<s3@example.com>", "452 4.5.3 Too many recipients")
        .await;
    let messages = messages.lock().unwrap();
    assert_eq!(
        messages[0].rcpt_tos,
        ["r0@example.com", "r1@example.com", "r2@example.com"]
    );
}

#[tokio::test]
async fn the_default_recipient_limit_is_1000() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let mut batch = String::from("MAIL FROM:<a@example.com>\r\n");
    for i in 0..1001 {
        batch.push_str(&format!("RCPT TO:<r{i}@example.com>\r\n"));
    }
    c.send(batch.as_bytes()).await;
    for _ in 0..1001 {
        assert_eq!(c.reply().await, ["250 OK"]);
    }
    assert_eq!(c.reply().await, ["452 4.5.3 Too many recipients"]);
}

#[tokio::test]
async fn command_call_limit_closes_with_421() {
    let cfg = {
        let mut config = config();
        config.max_command_calls = Some(CallLimit::all(3));
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::connect(server.local_addr()).await;
    for _ in 0..3 {
        c.expect("NOOP", "250 OK").await;
    }
    c.expect("noop", "421 4.7.0 NOOP sent too many times").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn command_call_limit_per_verb() {
    let mut limits = CallLimit::all(20);
    limits.per_verb.insert("EHLO".into(), 2);
    limits.per_verb.insert("MAIL".into(), 1);
    let cfg = {
        let mut config = config();
        config.max_command_calls = Some(limits);
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("EHLO client.example", 250).await;
    c.cmd("ehlo client.example", 250).await;
    // A budget counts calls, not successes.
    c.expect(
        "MAIL",
        "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
    )
    .await;
    for _ in 0..5 {
        c.expect("NOOP", "250 OK").await;
    }
    c.expect(
        "Mail FROM:<a@example.com>",
        "421 4.7.0 MAIL sent too many times",
    )
    .await;
    c.expect_closed().await;
    // Budgets are per connection.
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("EHLO client.example", 250).await;
    c.cmd("EHLO client.example", 250).await;
    c.expect("EHLO client.example", "421 4.7.0 EHLO sent too many times")
        .await;
    c.expect_closed().await;
}

#[tokio::test]
async fn command_call_limit_applies_to_unknown_verbs_before_the_bogus_limit() {
    let cfg = {
        let mut config = config();
        config.max_command_calls = Some(CallLimit::all(2));
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("FOO", "500 Error: command \"FOO\" not recognized")
        .await;
    c.expect("FOO", "500 Error: command \"FOO\" not recognized")
        .await;
    c.expect("FOO", "421 4.7.0 FOO sent too many times").await;
    c.expect_closed().await;
}
