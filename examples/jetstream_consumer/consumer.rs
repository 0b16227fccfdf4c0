//! The work of the consumer, apart from its command line: pull messages that
//! `handlers::JetStream` published, store each in a Maildir, and acknowledge it only once the
//! file and its directory are on disk. A crash between the two makes JetStream deliver the
//! message again; the file name is the message's `Smtp-Id`, so the second delivery finds the
//! file and only acknowledges. Consumers sharing one durable name share the work.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use smtp_core::handlers::jetstream::{async_nats, headers};
use tokio::io::AsyncWriteExt as _;

use async_nats::jetstream::{self, consumer::pull};

/// Where to read from and where to store.
#[derive(Clone, Debug)]
pub struct Options {
    /// The stream `smtpd --handler jetstream` publishes to (`--nats-stream`).
    pub stream: String,
    /// The durable consumer; every process using the same name shares the messages.
    pub durable: String,
    /// The Maildir messages are stored in (created if missing).
    pub maildir: PathBuf,
    /// How long JetStream waits for an acknowledgement before delivering the message again
    /// (to this consumer or another one).
    pub ack_wait: Duration,
    /// How many unacknowledged messages one consumer may hold at a time. Small batches share
    /// the work more evenly between consumers; large ones cost fewer round trips.
    pub batch: usize,
}

/// What a consumer did with one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written to `new/` and acknowledged.
    Stored(PathBuf),
    /// Already in `new/` (an earlier delivery was stored but not acknowledged); acknowledged.
    AlreadyStored(PathBuf),
}

/// An error of one message: it stays unacknowledged and JetStream delivers it again.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The durable pull consumer, created if missing.
pub async fn consumer(
    js: &jetstream::Context,
    options: &Options,
) -> Result<jetstream::consumer::Consumer<pull::Config>, Error> {
    let stream = js.get_stream(&options.stream).await?;
    let config = pull::Config {
        durable_name: Some(options.durable.clone()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: options.ack_wait,
        ..Default::default()
    };
    Ok(stream
        .get_or_create_consumer(&options.durable, config)
        .await?)
}

/// Pulls and stores messages until `stop` completes; calls `on_outcome` after each
/// acknowledgement. A message that cannot be stored is negatively acknowledged with a delay,
/// so it is delivered again (possibly to another consumer) instead of being lost.
pub async fn run(
    client: async_nats::Client,
    options: Options,
    stop: impl std::future::Future<Output = ()>,
    mut on_outcome: impl FnMut(&Outcome),
) -> Result<(), Error> {
    for sub in ["cur", "new", "tmp"] {
        tokio::fs::create_dir_all(options.maildir.join(sub)).await?;
    }
    let js = jetstream::new(client);
    let consumer = consumer(&js, &options).await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(options.batch)
        .messages()
        .await?;
    tokio::pin!(stop);
    loop {
        let message = tokio::select! {
            _ = &mut stop => return Ok(()),
            next = messages.next() => match next {
                Some(message) => message?,
                None => return Ok(()),
            },
        };
        match store(&js, &message, &options.maildir).await {
            Ok(outcome) => {
                // The double ack waits for JetStream to confirm: only then is the message
                // gone from the stream's pending set.
                message.double_ack().await?;
                on_outcome(&outcome);
            }
            Err(e) => {
                eprintln!("jetstream_consumer: not stored, delivered again later: {e}");
                let redeliver = jetstream::AckKind::Nak(Some(Duration::from_secs(1)));
                message.ack_with(redeliver).await?;
            }
        }
    }
}

/// Stores one stream message in the Maildir: the body (from the payload, or from the object
/// store when `Smtp-Object` names it) behind a `Return-Path` and one `X-Envelope-To` per
/// recipient, written to `tmp/`, synced, moved to `new/`, and the directory synced.
pub async fn store(
    js: &jetstream::Context,
    message: &async_nats::Message,
    maildir: &Path,
) -> Result<Outcome, Error> {
    let headers = message
        .headers
        .as_ref()
        .ok_or("not a message of smtpd: no headers")?;
    let id = headers
        .get(headers::ID)
        .map(|v| v.as_str())
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("no valid Smtp-Id header")?;
    let received_ms: u64 = headers
        .get(headers::RECEIVED_AT)
        .and_then(|v| v.as_str().parse().ok())
        .unwrap_or(0);
    let name = format!("{}.{id}.jetstream", received_ms / 1000);
    let new = maildir.join("new").join(&name);
    if tokio::fs::try_exists(&new).await? {
        return Ok(Outcome::AlreadyStored(new));
    }
    static TMP: AtomicU64 = AtomicU64::new(0);
    let tmp = maildir.join("tmp").join(format!(
        "{name}.{}.{}",
        std::process::id(),
        TMP.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write(js, message, headers, &tmp).await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, &new).await?;
    tokio::fs::File::open(maildir.join("new"))
        .await?
        .sync_all()
        .await?;
    Ok(Outcome::Stored(new))
}

async fn write(
    js: &jetstream::Context,
    message: &async_nats::Message,
    headers: &async_nats::HeaderMap,
    tmp: &Path,
) -> Result<(), Error> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .await?;
    let from = headers.get(headers::MAIL_FROM).map_or("", |v| v.as_str());
    let mut trace = format!("Return-Path: <{}>\r\n", from.trim_matches(['<', '>']));
    for rcpt in headers.get_all(headers::RCPT_TO) {
        // The value is the address, then its DSN parameters: keep the address.
        let address = rcpt.as_str().split(' ').next().unwrap_or("");
        trace.push_str(&format!("X-Envelope-To: <{address}>\r\n"));
    }
    file.write_all(trace.as_bytes()).await?;
    match headers.get(headers::OBJECT) {
        Some(object) => {
            let (bucket, name) = object
                .as_str()
                .split_once('/')
                .ok_or("Smtp-Object is not BUCKET/NAME")?;
            let mut body = js.get_object_store(bucket).await?.get(name).await?;
            tokio::io::copy(&mut body, &mut file).await?;
        }
        None => file.write_all(&message.payload).await?,
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok(())
}
