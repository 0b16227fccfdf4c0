//! `examples/jetstream_consumer` against a real `nats-server -js`: two consumers with one
//! durable name share the messages smtpd published, each stored in the Maildir once; a
//! consumer that cannot store leaves its messages unacknowledged for another; a second
//! delivery of a stored message is recognised; a body from the object store is stored whole.

#[path = "../../examples/jetstream_consumer/consumer.rs"]
mod consumer;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use smtp_core::handlers::jetstream::{JetStream, JetStreamConfig, async_nats, headers};
use tokio::sync::{mpsc, oneshot};

use crate::support::nats::NatsServer;
use crate::support::*;

const SUBJECT: &str = "mail.consumer";

async fn smtpd(nats: &NatsServer, stream: &str) -> smtp_core::ServerHandle {
    let config = JetStreamConfig::new(stream, SUBJECT);
    let handler = JetStream::new(nats.client().await, config)
        .await
        .expect("set up the stream");
    start(handler, crate::support::config()).await
}

fn options(stream: &str, maildir: &Path) -> consumer::Options {
    consumer::Options {
        stream: stream.into(),
        durable: "maildir".into(),
        maildir: maildir.to_owned(),
        ack_wait: Duration::from_secs(2),
        batch: 1,
    }
}

/// A consumer on its own NATS connection; reports `(consumer, outcome)`; stops when the
/// returned sender is dropped or fired.
async fn spawn_consumer(
    nats: &NatsServer,
    options: consumer::Options,
    tag: usize,
    tx: mpsc::UnboundedSender<(usize, consumer::Outcome)>,
) -> oneshot::Sender<()> {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let client = nats.client().await;
    tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        consumer::run(client, options, stop, move |outcome| {
            let _ = tx.send((tag, outcome.clone()));
        })
        .await
        .expect("the consumer runs");
    });
    stop_tx
}

/// Sends `n` messages, returning the ids from the `250 … queued as <id>` replies.
async fn send(server: &smtp_core::ServerHandle, n: usize, tag: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut c = Client::ehloed(server.local_addr()).await;
    for i in 0..n {
        let body = format!("Subject: {tag} {i}\r\n\r\nmessage {i}\r\n");
        let reply = c
            .deliver("a@example.com", &["b@example.org"], body.as_bytes())
            .await;
        let id = reply[0].strip_prefix("250 2.0.0 OK queued as ");
        ids.insert(id.unwrap_or_else(|| panic!("{reply:?}")).to_owned());
    }
    ids
}

/// The ids of the files in `maildir/new` (names are `SECS.ID.jetstream`).
fn stored_ids(maildir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .map(|dir| {
            dir.map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.split('.').nth(1).unwrap().to_owned()
            })
            .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(usize, consumer::Outcome)>,
    n: usize,
) -> Vec<(usize, consumer::Outcome)> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(outcome)) => seen.push(outcome),
            _ => panic!("{} of {n} messages stored within 30 s", seen.len()),
        }
    }
    seen
}

#[tokio::test]
async fn two_consumers_share_the_messages_and_store_each_once() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let server = smtpd(&nats, "SHARE").await;
    let dir = TempDir::new("consumer-share");
    let maildir = dir.0.join("Maildir");
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The stream exists once smtpd started; both consumers bind to one durable consumer.
    let _a = spawn_consumer(&nats, options("SHARE", &maildir), 0, tx.clone()).await;
    let _b = spawn_consumer(&nats, options("SHARE", &maildir), 1, tx).await;

    let sent = send(&server, 40, "share").await;
    let seen = collect(&mut rx, 40).await;

    let per_consumer = [0, 1].map(|tag| seen.iter().filter(|(t, _)| *t == tag).count());
    assert!(
        per_consumer.iter().all(|&n| n > 0),
        "the work is not shared: {per_consumer:?}"
    );
    assert!(
        seen.iter()
            .all(|(_, o)| matches!(o, consumer::Outcome::Stored(_))),
        "{seen:?}"
    );
    let stored = stored_ids(&maildir);
    assert_eq!(stored.len(), 40, "one file per message");
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), sent);
    assert_eq!(std::fs::read_dir(maildir.join("tmp")).unwrap().count(), 0);
    println!(
        "consumer 0 stored {}, consumer 1 stored {}",
        per_consumer[0], per_consumer[1]
    );
}

/// A consumer whose Maildir breaks after it started acknowledges nothing; another consumer
/// with the same durable name stores every message.
#[tokio::test]
async fn a_consumer_that_cannot_store_leaves_the_messages_to_another() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let server = smtpd(&nats, "BROKEN").await;
    let dir = TempDir::new("consumer-broken");
    let broken = dir.0.join("broken");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop_broken = spawn_consumer(&nats, options("BROKEN", &broken), 0, tx.clone()).await;
    // Wait for the consumer to create its Maildir, then put a file where `tmp/` was.
    wait_until("the consumer starts", Duration::from_secs(10), async || {
        broken.join("tmp").is_dir()
    })
    .await;
    std::fs::remove_dir(broken.join("tmp")).unwrap();
    std::fs::write(broken.join("tmp"), b"not a directory").unwrap();

    let sent = send(&server, 5, "broken").await;
    // Every message was delivered to the broken consumer, refused and is due again.
    let js = async_nats::jetstream::new(nats.client().await);
    let durable = js
        .get_stream("BROKEN")
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("maildir")
        .await
        .unwrap();
    wait_until(
        "every message refused and due again",
        Duration::from_secs(20),
        async || durable.get_info().await.unwrap().num_redelivered >= 5,
    )
    .await;
    assert!(rx.try_recv().is_err(), "the broken consumer acknowledged");
    assert!(stored_ids(&broken).is_empty());
    let _ = stop_broken.send(());

    let good = dir.0.join("good");
    let _good = spawn_consumer(&nats, options("BROKEN", &good), 1, tx).await;
    let seen = collect(&mut rx, 5).await;
    assert!(seen.iter().all(|(tag, _)| *tag == 1), "{seen:?}");
    assert_eq!(stored_ids(&good).into_iter().collect::<BTreeSet<_>>(), sent);
}

/// A message delivered again after it was stored (the consumer died before its ack) is not
/// stored twice; a 2 MiB body comes from the object store whole, behind the trace headers.
#[tokio::test]
async fn a_second_delivery_is_recognised_and_large_bodies_come_from_the_object_store() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let server = smtpd(&nats, "AGAIN").await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdef\r\n";
    let body = format!(
        "Subject: big\r\n\r\n{}",
        line.repeat(2 * 1024 * 1024 / line.len())
    );
    let reply = c
        .deliver(
            "a@example.com",
            &["b@example.org", "c@example.org"],
            body.as_bytes(),
        )
        .await;
    assert!(reply[0].starts_with("250 "), "{reply:?}");

    let messages = nats.messages("AGAIN").await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert!(
        message
            .headers
            .as_ref()
            .unwrap()
            .get(headers::OBJECT)
            .is_some()
    );
    let js = async_nats::jetstream::new(nats.client().await);
    let dir = TempDir::new("consumer-again");
    let maildir = dir.0.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let first = consumer::store(&js, message, &maildir).await.unwrap();
    let consumer::Outcome::Stored(path) = first else {
        panic!("{first:?}");
    };
    let again = consumer::store(&js, message, &maildir).await.unwrap();
    assert_eq!(again, consumer::Outcome::AlreadyStored(path.clone()));
    let stored = std::fs::read(&path).unwrap();
    let trace = "Return-Path: <a@example.com>\r\nX-Envelope-To: <b@example.org>\r\n\
                 X-Envelope-To: <c@example.org>\r\n";
    assert!(stored.starts_with(trace.as_bytes()), "{:?}", &stored[..200]);
    assert!(
        stored[trace.len()..] == *body.as_bytes(),
        "the body differs"
    );
    assert_eq!(stored_ids(&maildir).len(), 1);
}
