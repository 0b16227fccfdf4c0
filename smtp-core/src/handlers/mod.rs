//! Ready-made handlers: [`Sink`], [`Debugging`], [`Mailbox`], [`on_message`] for a closure,
//! [`Message`] for a closure that wants the message parsed, and [`Proxy`] (feature `proxy`)
//! to relay to another server, and `JetStream` (feature `nats`) to hand messages to a NATS
//! JetStream stream.
#![cfg_attr(
    feature = "nats",
    doc = "\n\nWith `nats` on: [`JetStream`], and its stream headers in [`jetstream::headers`]."
)]

#[cfg(feature = "nats")]
pub mod jetstream;
mod message;
#[cfg(feature = "proxy")]
mod proxy;

#[cfg(feature = "nats")]
pub use jetstream::{JetStream, JetStreamConfig};
pub use message::{Message, ParsedMessage};
#[cfg(feature = "proxy")]
pub use proxy::Proxy;

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use tokio::io::AsyncWriteExt as _;

use crate::body::{BodyMode, BodySink};
use crate::envelope::Envelope;
use crate::handler::Handler;
use crate::proto::Reply;
use crate::session::{Peer, Session};

/// Accepts every message and drops it as it arrives (nothing is buffered).
#[derive(Debug, Default, Clone, Copy)]
pub struct Sink;

impl Handler for Sink {
    async fn handle_body(&self, _: &mut Session, _: &mut Envelope) -> BodyMode {
        BodyMode::Discard
    }
}

/// Prints every message, with its envelope, to standard output (or any writer), as
/// aiosmtpd's `Debugging` handler does.
pub struct Debugging {
    out: Mutex<Box<dyn Write + Send>>,
}

impl Debugging {
    /// Prints to standard output.
    pub fn stdout() -> Debugging {
        Debugging::to_writer(std::io::stdout())
    }

    /// Prints to `out`.
    pub fn to_writer(out: impl Write + Send + 'static) -> Debugging {
        Debugging {
            out: Mutex::new(Box::new(out)),
        }
    }

    /// The text printed for one message.
    pub fn render(session: &Session, envelope: &Envelope) -> Vec<u8> {
        let mut text = Vec::with_capacity(envelope.content.len() + 256);
        text.extend_from_slice(b"---------- MESSAGE FOLLOWS ----------\n");
        if !envelope.mail_options.is_empty() {
            text.extend_from_slice(
                format!("mail options: {:?}\n", envelope.mail_options).as_bytes(),
            );
        }
        let content = &envelope.content;
        let split = find_header_end(content);
        text.extend_from_slice(&content[..split.unwrap_or(0)]);
        let trace = format!(
            "X-Peer: {}\nX-MailFrom: {}\nX-RcptTo: {}\n",
            session.peer(),
            envelope.mail_from.as_deref().unwrap_or(""),
            envelope.rcpt_tos().collect::<Vec<_>>().join(", ")
        );
        text.extend_from_slice(trace.as_bytes());
        match split {
            Some(at) => text.extend_from_slice(&content[at..]),
            None => {
                text.push(b'\n');
                text.extend_from_slice(content);
            }
        }
        // Content ends in CRLF; a newline of our own would print a blank line aiosmtpd lacks.
        if !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(b"------------ END MESSAGE ------------\n");
        // Terminals and log collectors want plain newlines.
        let mut out = Vec::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            if text[i] == b'\r' && text.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            out.push(text[i]);
            i += 1;
        }
        out
    }
}

/// The offset just past the headers (before the blank line), if the message has a header block.
fn find_header_end(content: &[u8]) -> Option<usize> {
    memchr::memmem::find(content, b"\r\n\r\n").map(|i| i + 2)
}

impl Handler for Debugging {
    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        let text = Debugging::render(session, envelope);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(&text).and_then(|_| out.flush());
        Reply::ok()
    }
}

/// Delivers every message into a Maildir (created if missing), streaming it to a file in
/// `tmp/` as it arrives and moving it to `new/` when it is complete, so memory does not grow
/// with the message size.
#[derive(Debug, Clone)]
pub struct Mailbox {
    dir: PathBuf,
}

impl Mailbox {
    /// Delivers into the Maildir at `dir`, creating `cur`, `new` and `tmp` as needed.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Mailbox> {
        let dir = dir.into();
        maildir::Maildir::from(dir.clone()).create_dirs()?;
        Ok(Mailbox { dir })
    }
}

impl Mailbox {
    fn trace_headers(session: &Session, envelope: &Envelope) -> Vec<u8> {
        format!(
            "X-Peer: {}\r\nX-MailFrom: {}\r\nX-RcptTo: {}\r\n",
            session.peer(),
            envelope.mail_from.as_deref().unwrap_or(""),
            envelope.rcpt_tos().collect::<Vec<_>>().join(", ")
        )
        .into_bytes()
    }
}

impl Handler for Mailbox {
    async fn handle_body(&self, session: &mut Session, envelope: &mut Envelope) -> BodyMode {
        let headers = Mailbox::trace_headers(session, envelope);
        match MaildirFile::create(&self.dir, session.server_hostname(), &headers).await {
            Ok(file) => BodyMode::stream(file),
            Err(e) => {
                tracing::error!(error = %e, "Maildir delivery failed");
                BodyMode::stream(Failed)
            }
        }
    }

    /// The streamed message is already in `new/`. A message in `envelope.content` (from a
    /// wrapper that buffers instead of forwarding `handle_body`) is stored here.
    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        if envelope.content.is_empty() {
            return Reply::ok();
        }
        let mut message = Mailbox::trace_headers(session, envelope);
        message.extend_from_slice(&envelope.content);
        let dir = self.dir.clone();
        let stored =
            tokio::task::spawn_blocking(move || maildir::Maildir::from(dir).store_new(&message))
                .await;
        match stored {
            Ok(Ok(id)) => {
                tracing::info!(%id, "delivered to Maildir");
                Reply::ok()
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "Maildir delivery failed");
                Reply::from("451 4.3.0 Error: cannot store the message")
            }
            Err(_) => Reply::from("451 4.3.0 Error: cannot store the message"),
        }
    }
}

/// A sink that refuses the body: the client gets `451 4.3.0`.
struct Failed;

impl BodySink for Failed {
    async fn write(&mut self, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::Error::other("no Maildir file"))
    }

    async fn finish(&mut self) -> std::io::Result<()> {
        Err(std::io::Error::other("no Maildir file"))
    }
}

/// A message being written to `tmp/`; moved to `new/` by `finish`, removed if dropped before.
struct MaildirFile {
    file: tokio::fs::File,
    tmp: PathBuf,
    new: PathBuf,
    delivered: bool,
}

impl MaildirFile {
    async fn create(dir: &std::path::Path, host: &str, headers: &[u8]) -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static DELIVERIES: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // Maildir names: `time.unique.host`, with `/` and `:` in the host escaped
        // (https://cr.yp.to/proto/maildir.html).
        let host = host.replace('/', "\\057").replace(':', "\\072");
        let name = format!(
            "{}.M{}P{}Q{}.{host}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            DELIVERIES.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = dir.join("tmp").join(&name);
        let new = dir.join("new").join(&name);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await?;
        // From here on, dropping `this` removes the file.
        let mut this = MaildirFile {
            file,
            tmp,
            new,
            delivered: false,
        };
        this.file.write_all(headers).await?;
        Ok(this)
    }
}

impl BodySink for MaildirFile {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file.write_all(chunk).await
    }

    async fn finish(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        tokio::fs::rename(&self.tmp, &self.new).await?;
        self.delivered = true;
        // The rename lives in the directory: until `new/` is synced, a crash can lose the
        // message after the client saw `250`.
        if let Some(dir) = self.new.parent() {
            tokio::fs::File::open(dir).await?.sync_all().await?;
        }
        tracing::info!(file = %self.new.display(), "delivered to Maildir");
        Ok(())
    }
}

impl Drop for MaildirFile {
    fn drop(&mut self) {
        if !self.delivered {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A received message, owned, for [`on_message`].
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// The client.
    pub peer: Peer,
    /// The authenticated login, if the client used AUTH.
    pub login: Option<Vec<u8>>,
    /// MAIL FROM.
    pub mail_from: String,
    /// RCPT TO, in order.
    pub rcpt_tos: Vec<String>,
    /// The message, lines ending in CRLF.
    pub content: Vec<u8>,
}

/// A handler that hands each message to `f`: `Ok(())` answers `250 OK`, `Err(reply)` answers
/// with that reply.
pub fn on_message<F, Fut>(f: F) -> OnMessage<F>
where
    F: Fn(ReceivedMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Reply>> + Send,
{
    OnMessage(f)
}

/// See [`on_message`].
pub struct OnMessage<F>(F);

impl<F, Fut> Handler for OnMessage<F>
where
    F: Fn(ReceivedMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Reply>> + Send,
{
    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        let message = ReceivedMessage {
            peer: session.peer().clone(),
            login: session.login_data().map(<[u8]>::to_vec),
            mail_from: envelope.mail_from.clone().unwrap_or_default(),
            rcpt_tos: envelope.rcpt_tos().map(str::to_owned).collect(),
            content: std::mem::take(&mut envelope.content),
        };
        match (self.0)(message).await {
            Ok(()) => Reply::ok(),
            Err(reply) => reply,
        }
    }
}
