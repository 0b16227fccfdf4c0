//! `handlers::JetStream` against a real `nats-server -js` (Debian package `nats-server`,
//! required under `CI=true`): the envelope in the headers, `250` only after the stream has
//! the message, one copy of a retried transaction, a 3 MiB body through the object store,
//! and `451 4.3.0` when NATS is gone.

use std::time::{Duration, Instant};

use smtp_core::handlers::jetstream::{JetStream, JetStreamConfig, async_nats, headers};
use tokio::io::AsyncReadExt as _;

use crate::support::nats::NatsServer;
use crate::support::*;

const STREAM: &str = "MAILTEST";
const SUBJECT: &str = "mail.test";

async fn handler(nats: &NatsServer, timeout: Duration) -> JetStream {
    let mut config = JetStreamConfig::new(STREAM, SUBJECT);
    config.publish_timeout = timeout;
    JetStream::new(nats.client().await, config)
        .await
        .expect("set up the stream")
}

async fn stream(nats: &NatsServer) -> async_nats::jetstream::stream::Stream {
    let js = async_nats::jetstream::new(nats.client().await);
    js.get_stream(STREAM).await.expect("the stream exists")
}

fn header<'a>(message: &'a async_nats::Message, name: &str) -> &'a str {
    message
        .headers
        .as_ref()
        .expect("headers")
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .as_str()
}

#[tokio::test]
async fn message_is_in_the_stream_with_its_envelope_before_250() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let server = start(handler(&nats, Duration::from_secs(5)).await, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com> RET=HDRS ENVID=e1", 250)
        .await;
    c.cmd(
        "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2B1@example.org",
        250,
    )
    .await;
    c.cmd("RCPT TO:<c@example.org>", 250).await;
    c.cmd("DATA", 354).await;
    c.send(b"Subject: one\r\n\r\nhello\r\n.\r\n").await;
    let reply = c.reply().await;
    assert!(reply[0].starts_with("250 2.0.0 OK queued as "), "{reply:?}");
    let id = reply[0].rsplit(' ').next().unwrap().to_owned();

    // The reply came after the acknowledgement: the message is there now.
    let messages = nats.messages(STREAM).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(&message.payload[..], b"Subject: one\r\n\r\nhello\r\n");
    assert_eq!(header(message, "Nats-Msg-Id"), id);
    assert_eq!(header(message, headers::ID), id);
    assert_eq!(header(message, headers::MAIL_FROM), "a@example.com");
    assert_eq!(header(message, headers::MAIL_PARAMS), "RET=HDRS ENVID=E1");
    assert_eq!(header(message, headers::DSN_RET), "HDRS");
    assert_eq!(header(message, headers::DSN_ENVID), "e1");
    let headers_of = message.headers.as_ref().unwrap();
    let rcpts: Vec<&str> = headers_of
        .get_all(headers::RCPT_TO)
        .map(|v| v.as_str())
        .collect();
    assert_eq!(
        rcpts,
        [
            "b@example.org NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+1@example.org",
            "c@example.org"
        ]
    );
    assert_eq!(header(message, headers::HELO), "client.example");
    assert_eq!(header(message, headers::CLIENT), c.local_addr().to_string());
    assert_eq!(header(message, headers::SERVER), "test.example");
    assert_eq!(header(message, headers::SIZE), "23");
    assert!(headers_of.get(headers::AUTH).is_none());
    assert!(headers_of.get(headers::TLS).is_none());
    let at: u128 = header(message, headers::RECEIVED_AT).parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(at <= now && now - at < 60_000, "{at} vs {now}");
    server.shutdown().await;
}

/// A client that retries a transaction (after a 451, or after losing the connection before
/// the reply) gets the same id, and the stream keeps one copy.
#[tokio::test]
async fn a_retried_transaction_is_stored_once() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let server = start(handler(&nats, Duration::from_secs(5)).await, config()).await;
    let body = b"Message-ID: <r1@example.com>\r\n\r\nsame\r\n";
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut c = Client::ehloed(server.local_addr()).await;
        let reply = c.deliver("a@example.com", &["b@example.org"], body).await;
        assert!(reply[0].starts_with("250 2.0.0 OK queued as "), "{reply:?}");
        ids.push(reply[0].clone());
    }
    assert_eq!(ids[0], ids[1]);
    // Another recipient is another transaction.
    let mut c = Client::ehloed(server.local_addr()).await;
    let reply = c.deliver("a@example.com", &["z@example.org"], body).await;
    assert_ne!(reply[0], ids[0]);
    let mut stream = stream(&nats).await;
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    server.shutdown().await;
}

/// 3 MiB (over the 1 MiB payload limit) goes to the object store while it arrives; the stream
/// message has an empty payload and names the object, which holds the body.
#[tokio::test]
async fn a_large_body_goes_to_the_object_store() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let server = start(handler(&nats, Duration::from_secs(10)).await, config()).await;
    let mut body = Vec::new();
    for i in 0..3 * 1024 * 16 {
        body.extend_from_slice(format!("{i:062}\r\n").as_bytes());
    }
    assert_eq!(body.len(), 3 * 1024 * 1024);
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.org>", 250).await;
    c.send(format!("BDAT {} LAST\r\n", body.len()).as_bytes())
        .await;
    c.send(&body).await;
    let reply = c.reply().await;
    assert!(reply[0].starts_with("250 2.0.0 OK queued as "), "{reply:?}");

    let messages = nats.messages(STREAM).await;
    let message = &messages[0];
    assert!(message.payload.is_empty());
    assert_eq!(header(message, headers::SIZE), body.len().to_string());
    let object = header(message, headers::OBJECT);
    let (bucket, name) = object.split_once('/').unwrap();
    assert_eq!(bucket, "MAILTEST_bodies");
    let js = async_nats::jetstream::new(nats.client().await);
    let store = js.get_object_store(bucket).await.unwrap();
    let mut stored = Vec::new();
    store
        .get(name)
        .await
        .unwrap()
        .read_to_end(&mut stored)
        .await
        .unwrap();
    assert!(stored == body, "the object differs from the body");
    server.shutdown().await;
}

/// With NATS gone, the client gets `451 4.3.0` once the publish timeout has passed, and a
/// `250` again once NATS is back.
#[tokio::test]
async fn nats_down_gives_451_and_back_gives_250() {
    let Some(mut nats) = NatsServer::start().await else {
        return;
    };
    let server = start(handler(&nats, Duration::from_secs(1)).await, config()).await;
    nats.stop();
    let mut c = Client::ehloed(server.local_addr()).await;
    let started = Instant::now();
    let reply = c
        .deliver("a@example.com", &["b@example.org"], b"down\r\n")
        .await;
    assert_eq!(
        reply,
        ["451 4.3.0 Error: queue unavailable, try again later"]
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    nats.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = c
            .deliver("a@example.com", &["b@example.org"], b"down\r\n")
            .await;
        if reply[0].starts_with("250") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 250 after NATS came back: {reply:?}"
        );
    }
    let mut stream = stream(&nats).await;
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    server.shutdown().await;
}
