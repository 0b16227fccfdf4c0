//! Connection governance: messages and bytes per session, and the minimum DATA rate
//! (Postfix's `smtpd_min_data_rate`).

use std::time::Duration;

use crate::support::{Client, Messages, collector, start_in_memory};
use smtp_core::{Config, MinDataRate};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// The reply to a message accepted by the default `handle_data`, with or without
/// ENHANCEDSTATUSCODES.
fn accepted(reply: Vec<String>) {
    assert!(
        reply == ["250 OK"] || reply == ["250 2.0.0 OK"],
        "{reply:?}"
    );
}

fn config(f: impl FnOnce(&mut Config)) -> Config {
    let mut config = crate::support::config();
    f(&mut config);
    config
}

#[tokio::test]
async fn the_message_cap_closes_after_the_reply_to_the_last_message() {
    let (handler, messages) = collector();
    let server =
        crate::support::start(handler, config(|c| c.max_messages_per_connection = Some(2))).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    accepted(
        c.deliver("a@example.com", &["b@example.com"], b"one\r\n")
            .await,
    );
    accepted(
        c.deliver("a@example.com", &["b@example.com"], b"two\r\n")
            .await,
    );
    assert_eq!(
        c.reply().await,
        ["421 4.7.0 test.example Error: too many messages in one session"]
    );
    c.expect_closed().await;
    assert_eq!(
        messages.lock().unwrap().len(),
        2,
        "both messages were delivered"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_byte_cap_closes_after_the_message_that_crossed_it() {
    let (handler, messages) = collector();
    let server =
        crate::support::start(handler, config(|c| c.max_bytes_per_connection = Some(100))).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let small = vec![b'x'; 40];
    let mut body = small.clone();
    body.extend_from_slice(b"\r\n");
    accepted(c.deliver("a@example.com", &["b@example.com"], &body).await);
    c.cmd("NOOP", 250).await;
    accepted(c.deliver("a@example.com", &["b@example.com"], &body).await);
    c.cmd("NOOP", 250).await;
    // 3 × 42 bytes: the third message crosses 100.
    accepted(c.deliver("a@example.com", &["b@example.com"], &body).await);
    assert_eq!(
        c.reply().await,
        ["421 4.7.0 test.example Error: too much data in one session"]
    );
    c.expect_closed().await;
    assert_eq!(messages.lock().unwrap().len(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn without_caps_a_session_goes_on() {
    let (handler, _) = collector();
    let server = crate::support::start(handler, crate::support::config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    for _ in 0..20 {
        accepted(
            c.deliver("a@example.com", &["b@example.com"], b"hi\r\n")
                .await,
        );
    }
    c.cmd("QUIT", 221).await;
    server.shutdown().await;
}

fn slow_config() -> Config {
    config(|c| {
        c.min_data_rate = Some(MinDataRate {
            bytes_per_second: 1000,
            grace: Duration::from_millis(300),
        })
    })
}

/// Starts a transaction, sends `start` (a line that opens the message transfer), then trickles
/// the message in too slowly, and checks that the server cuts the client off after the grace.
async fn trickle_is_cut_off<S: AsyncRead + AsyncWrite + Unpin>(
    mut c: Client<S>,
    messages: Messages,
    start: &str,
    reply_to_start: Option<u16>,
) {
    c.cmd("EHLO client.example", 250).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    match reply_to_start {
        Some(code) => drop(c.cmd(start, code).await),
        None => c.send(format!("{start}\r\n").as_bytes()).await,
    }
    let started = Instant::now();
    // 100 bytes earn 0.1 s at 1000 B/s, so the 0.3 s grace decides; a trickle of 10 bytes
    // every 100 ms (100 B/s) keeps the idle timer happy but not the rate.
    let cut = loop {
        c.send(b"123456789\n").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(3) {
            break c.reply().await;
        }
        if let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(1), c.line()).await {
            break vec![line];
        }
    };
    assert_eq!(cut, ["421 4.4.2 test.example Error: too slow"]);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "cut off after {waited:?}, before the grace"
    );
    assert!(
        waited < Duration::from_secs(2),
        "cut off only after {waited:?}"
    );
    c.expect_closed().await;
    assert!(messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_sender_slower_than_the_minimum_rate_is_cut_off() {
    let (handler, messages) = collector();
    let server = crate::support::start(handler, slow_config()).await;
    let c = Client::connect(server.local_addr()).await;
    trickle_is_cut_off(c, messages, "DATA", Some(354)).await;
    server.shutdown().await;
}

/// A BDAT chunk trickled in below the minimum rate is cut off like a DATA transfer (on a
/// paused clock: the rate is measured as over TCP in the test above).
#[tokio::test(start_paused = true)]
async fn a_bdat_chunk_slower_than_the_minimum_rate_is_cut_off() {
    let (handler, messages) = collector();
    let server = start_in_memory(handler, slow_config());
    let c = Client::in_memory(&server).greeted().await;
    trickle_is_cut_off(c, messages, "BDAT 100000 LAST", None).await;
}

#[tokio::test(start_paused = true)]
async fn a_sender_above_the_minimum_rate_is_not_cut_off() {
    let (handler, messages) = collector();
    let server = start_in_memory(handler, slow_config());
    let mut c = Client::in_memory(&server).greeted().await;
    c.cmd("EHLO client.example", 250).await;
    c.begin_data("a@example.com", &["b@example.com"]).await;
    // 2000 bytes at once earn 2 s; the end comes after 0.6 s, past the grace.
    let line = [b'x'; 98];
    for _ in 0..20 {
        c.send(&line).await;
        c.send(b"\r\n").await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.send(b".\r\n").await;
    accepted(c.reply().await);
    // The rate is per transfer: idling between messages is the idle timeout's business.
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.cmd("NOOP", 250).await;
    assert_eq!(messages.lock().unwrap().len(), 1);
    server.shutdown().await;
}
