//! [`Message`]: an accepted message, as the kit recorded it.

use std::time::SystemTime;

use crate::envelope::Recipient;
use crate::proto::MailDsn;
use crate::session::Peer;
use crate::tls::TlsInfo;

/// An accepted message, as a [`TestServer`](super::TestServer) recorded it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Message {
    /// Its number in its [`MessageStore`](super::MessageStore), from 1, in the order
    /// messages were accepted.
    pub id: u64,
    /// The reverse-path of MAIL FROM; `"<>"` for the null sender.
    pub mail_from: String,
    /// The MAIL parameters, upper-cased (`"SIZE=1024"`).
    pub mail_options: Vec<String>,
    /// MAIL's DSN parameters (`RET`, `ENVID`).
    pub dsn: MailDsn,
    /// The accepted recipients with their parameters and DSN requests.
    pub recipients: Vec<Recipient>,
    /// The message as received (RFC 5322, dot-unstuffed). Empty when the handler streamed or
    /// discarded the body (`Handler::handle_body`).
    pub raw: Vec<u8>,
    /// Where the client connected from.
    pub peer: Peer,
    /// The HELO/EHLO name.
    pub helo: Option<String>,
    /// What TLS the session negotiated, if any.
    pub tls: Option<TlsInfo>,
    /// The AUTH mechanism, when the client authenticated.
    pub auth_mechanism: Option<String>,
    /// The authenticated login, when the mechanism names one.
    pub auth_login: Option<String>,
    /// When the message was accepted.
    pub received: SystemTime,
}

impl Message {
    /// The recipients' addresses.
    pub fn rcpt_tos(&self) -> Vec<&str> {
        self.recipients.iter().map(|r| r.address.as_str()).collect()
    }

    /// The message parsed with mail-parser (`None` when it is not parsable, or empty).
    pub fn parsed(&self) -> Option<mail_parser::Message<'_>> {
        mail_parser::MessageParser::default().parse(&self.raw)
    }

    /// The `Subject:` header, decoded.
    pub fn subject(&self) -> Option<String> {
        self.parsed()?.subject().map(str::to_owned)
    }

    /// The first text part (or the HTML part as text), decoded.
    pub fn text(&self) -> Option<String> {
        self.parsed()?.body_text(0).map(|t| t.into_owned())
    }

    /// A message with only a body and a peer, for the store's tests.
    #[cfg(test)]
    pub(super) fn for_store(raw: Vec<u8>, peer: Peer) -> Message {
        Message {
            id: 0,
            mail_from: String::new(),
            mail_options: Vec::new(),
            dsn: MailDsn::default(),
            recipients: Vec::new(),
            raw,
            peer,
            helo: None,
            tls: None,
            auth_mechanism: None,
            auth_login: None,
            received: SystemTime::now(),
        }
    }
}
