//! Resource exhaustion: endless command lines and AUTH answers streamed in many writes,
//! oversized and endless messages, recipient floods. Each ends in one exact reply and a
//! session that still works, never in unbounded buffering or a lost connection.
//!
//! `engine_limits.rs` covers the exact limits (512, 1001, 1000 recipients, SIZE) with one
//! line each, and `auth_better.rs` the AUTH line limit; here the input is megabytes.

use crate::support::*;

/// A chunk of input without any line ending.
fn junk(len: usize) -> Vec<u8> {
    b"0123456789abcdef"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// Issue 8 (peers that grow without bound on a long line): 8 MiB without a line ending, in
/// 64 KiB writes, gets one `500` when the line finally ends, and the session goes on.
#[tokio::test]
async fn an_endless_command_line_gets_one_reply() {
    let server = start(smtp_core::handlers::Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.send(b"NOOP ").await;
    let chunk = junk(64 * 1024);
    for _ in 0..128 {
        c.send(&chunk).await;
    }
    c.send(b"\r\nNOOP\r\n").await;
    assert_eq!(c.reply().await, ["500 Command line too long"]);
    assert_eq!(c.reply().await, ["250 OK"]);
    server.shutdown().await;
}

/// RFC 4954 §4 and issue 8: an endless answer to an AUTH challenge (2 MiB, far past the
/// 12288-octet limit) ends the exchange with one `500 5.5.6` and is never run as commands.
#[tokio::test]
async fn an_endless_auth_answer_gets_one_reply() {
    let server = start(smtp_core::handlers::Sink, auth_config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH LOGIN", "334 VXNlciBOYW1lAA==").await;
    let chunk = junk(64 * 1024);
    for _ in 0..32 {
        c.send(&chunk).await;
    }
    c.send(b"\r\nNOOP\r\n").await;
    assert_eq!(
        c.reply().await,
        ["500 5.5.6 Authentication Exchange line is too long"]
    );
    assert_eq!(c.reply().await, ["250 OK"]);
    server.shutdown().await;
}

/// Issue 8 (oversized messages): a message three times the size limit gets
/// `552 Error: Too much mail data` only at its end, reaches no handler, and the next message
/// on the same connection is delivered.
#[tokio::test]
async fn an_oversized_message_is_refused_at_its_end() {
    let (handler, messages) = collector();
    let server = start(handler, {
        let mut config = config();
        config.max_message_size = Some(64 * 1024);
        config
    })
    .await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.begin_data("a@example.com", &["b@example.com"]).await;
    let line = [&junk(78)[..], b"\r\n"].concat();
    for _ in 0..(3 * 64 * 1024 / line.len()) {
        c.send(&line).await;
    }
    c.expect(".", "552 Error: Too much mail data").await;
    let reply = c
        .deliver("a@example.com", &["b@example.com"], b"small\r\n")
        .await;
    assert_eq!(reply, ["250 OK"]);
    {
        let messages = messages.lock().unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].content, b"small\r\n");
    }
    server.shutdown().await;
}

/// Issue 8: one endless DATA line (4 MiB, no line ending) is content the server must not
/// keep: at its end the client gets one reply for the first limit broken, the line limit.
#[tokio::test]
async fn an_endless_data_line_is_refused_with_the_line_limit() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.begin_data("a@example.com", &["b@example.com"]).await;
    let chunk = junk(64 * 1024);
    for _ in 0..64 {
        c.send(&chunk).await;
    }
    c.send(b"\r\n").await;
    c.expect(".", "500 Line too long (see RFC5321 4.5.3.1.6)")
        .await;
    c.expect("NOOP", "250 OK").await;
    assert!(messages.lock().unwrap().is_empty());
    server.shutdown().await;
}

/// Issue 8 (recipient floods): 5000 pipelined RCPTs in one write against a limit of 100 get
/// 100 `250`s then `452 4.5.3 Too many recipients`, in order, and the message goes to the
/// first 100 only.
#[tokio::test]
async fn a_pipelined_recipient_flood_is_capped() {
    let (handler, messages) = collector();
    let server = start(handler, {
        let mut config = config();
        config.max_recipients = 100;
        config
    })
    .await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    let mut flood = String::new();
    for i in 0..5000 {
        flood.push_str(&format!("RCPT TO:<r{i}@example.com>\r\n"));
    }
    c.send(flood.as_bytes()).await;
    for i in 0..5000 {
        let expected = if i < 100 {
            "250 OK"
        } else {
            "452 4.5.3 Too many recipients"
        };
        assert_eq!(c.reply().await, [expected], "RCPT {i}");
    }
    c.cmd("DATA", 354).await;
    c.send(b"flood\r\n").await;
    c.expect(".", "250 OK").await;
    {
        let messages = messages.lock().unwrap();
        assert_eq!(messages[0].rcpt_tos.len(), 100);
        assert_eq!(messages[0].rcpt_tos[99], "r99@example.com");
    }
    server.shutdown().await;
}

/// Issue 8: a flood of oversized AUTH initial responses, each refused on its own line, costs
/// the client its failure budget rather than the server its memory.
#[tokio::test]
async fn oversized_initial_responses_are_refused_one_by_one() {
    let server = start(smtp_core::handlers::Sink, auth_config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let line = format!("AUTH PLAIN {}\r\n", "A".repeat(12289));
    c.send(line.repeat(20).as_bytes()).await;
    for i in 0..20 {
        assert_eq!(
            c.reply().await,
            ["500 5.5.6 Authentication Exchange line is too long"],
            "line {i}"
        );
    }
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}
