//! Ready-made handlers: [`Sink`], [`Debugging`], [`Mailbox`], and [`on_message`] for a closure.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::handler::Handler;
use crate::proto::Reply;
use crate::session::{Envelope, Peer, Session};

/// Accepts every message and drops it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sink;

impl Handler for Sink {}

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
            session.peer,
            envelope.mail_from.as_deref().unwrap_or(""),
            envelope.rcpt_tos.join(", ")
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

/// Delivers every message into a Maildir (created if missing).
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

impl Handler for Mailbox {
    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        let mut message = format!(
            "X-Peer: {}\r\nX-MailFrom: {}\r\nX-RcptTo: {}\r\n",
            session.peer,
            envelope.mail_from.as_deref().unwrap_or(""),
            envelope.rcpt_tos.join(", ")
        )
        .into_bytes();
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
            peer: session.peer.clone(),
            login: session.login_data.clone(),
            mail_from: envelope.mail_from.clone().unwrap_or_default(),
            rcpt_tos: envelope.rcpt_tos.clone(),
            content: std::mem::take(&mut envelope.content),
        };
        match (self.0)(message).await {
            Ok(()) => Reply::ok(),
            Err(reply) => reply,
        }
    }
}
