//! [`Message`]: hands each message to a closure, parsed by `mail-parser`.

use std::future::Future;

use mail_parser::MessageParser;

use crate::envelope::Envelope;
use crate::handler::Handler;
use crate::proto::Reply;
use crate::session::{Peer, Session};

/// A received message, parsed, for [`Message`].
#[derive(Debug, Clone)]
pub struct ParsedMessage {
    /// The client (the proxied client behind a PROXY protocol listener).
    pub peer: Peer,
    /// MAIL FROM, `"<>"` for the null sender.
    pub mail_from: String,
    /// RCPT TO, in order.
    pub rcpt_tos: Vec<String>,
    /// The message with `X-Peer`, `X-MailFrom` and `X-RcptTo` (comma-joined) added as its
    /// first headers, as aiosmtpd's `Message` handler adds them. `message.raw_message()` is
    /// the bytes received, with those headers in front.
    pub message: mail_parser::Message<'static>,
}

/// Hands each message to `f`, parsed (RFC 5322 and MIME, with `mail-parser`): `Ok(())`
/// answers `250 OK`, `Err(reply)` answers with that reply. aiosmtpd's `Message` and
/// `AsyncMessage` in one: the closure is async.
///
/// ```
/// use smtp_core::{Reply, handlers::{Message, ParsedMessage}};
/// let handler = Message::new(|msg: ParsedMessage| async move {
///     match msg.message.subject() {
///         Some(subject) => { println!("{subject}"); Ok(()) }
///         None => Err(Reply::from("550 5.6.0 A subject, please")),
///     }
/// });
/// # let _ = handler;
/// ```
pub struct Message<F>(F);

impl<F> Message<F> {
    /// A handler calling `f` for every message.
    pub fn new<Fut>(f: F) -> Message<F>
    where
        F: Fn(ParsedMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Reply>> + Send,
    {
        Message(f)
    }
}

impl<F, Fut> Handler for Message<F>
where
    F: Fn(ParsedMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Reply>> + Send,
{
    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        let mail_from = envelope.mail_from.clone().unwrap_or_default();
        let mut raw = trace_headers(
            session.peer(),
            &mail_from,
            &envelope.rcpt_tos().collect::<Vec<_>>(),
        );
        raw.extend_from_slice(&envelope.content);
        // Never `None` here: the trace headers make the input non-empty.
        let Some(message) = MessageParser::default().parse(raw.as_slice()) else {
            return Reply::from("554 5.6.0 Error: cannot parse the message");
        };
        let parsed = ParsedMessage {
            peer: session.peer().clone(),
            mail_from,
            rcpt_tos: envelope.rcpt_tos().map(str::to_owned).collect(),
            message: message.into_owned(),
        };
        match (self.0)(parsed).await {
            Ok(()) => Reply::ok(),
            Err(reply) => reply,
        }
    }
}

/// `X-Peer`, `X-MailFrom` and `X-RcptTo` header lines, as aiosmtpd's `Message` adds them.
pub(crate) fn trace_headers(peer: &Peer, mail_from: &str, rcpt_tos: &[&str]) -> Vec<u8> {
    format!(
        "X-Peer: {}\r\nX-MailFrom: {}\r\nX-RcptTo: {}\r\n",
        peer_ip(peer),
        mail_from,
        rcpt_tos.join(", ")
    )
    .into_bytes()
}

/// The client's IP address alone (aiosmtpd's `X-Peer: <ip>`), or the peer as shown in logs.
fn peer_ip(peer: &Peer) -> String {
    match peer.addr() {
        Some(addr) => addr.ip().to_string(),
        None => peer.to_string(),
    }
}
