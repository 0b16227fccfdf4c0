//! One mail transaction ([`Envelope`]) and its recipients ([`Recipient`]).
//!
//! Who writes it: the engine records each accepted command's effect *before* the hook runs
//! (the sender on MAIL, the recipient on RCPT), so a hook sees the envelope as it will be and
//! may amend it; a negative reply from the hook undoes the engine's record.

use std::fmt;

pub use crate::proto::BodyType;
use crate::proto::{MailDsn, RcptDsn};

/// One accepted recipient: its address, its parameters as sent, and their DSN meaning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recipient {
    /// The forward-path, without angle brackets.
    pub address: String,
    /// The RCPT parameters, upper-cased (`"NOTIFY=SUCCESS"`).
    pub params: Vec<String>,
    /// The DSN parameters (`NOTIFY`, `ORCPT`, RFC 3461).
    pub dsn: RcptDsn,
}

impl Recipient {
    /// A recipient without parameters.
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            ..Recipient::default()
        }
    }
}

/// One mail transaction: the sender, the recipients and the message.
///
/// Reset (as aiosmtpd does) on HELO/EHLO, RSET, after the message has been handled, and after
/// STARTTLS.
#[derive(Default)]
#[non_exhaustive]
pub struct Envelope {
    /// The reverse-path of MAIL FROM, without angle brackets; `"<>"` for the null sender.
    pub mail_from: Option<String>,
    /// The MAIL parameters, upper-cased (`"SIZE=1024"`, `"BODY=8BITMIME"`).
    pub mail_options: Vec<String>,
    /// Whether MAIL FROM carried the SMTPUTF8 parameter.
    pub smtp_utf8: bool,
    /// The accepted recipients, in order.
    pub recipients: Vec<Recipient>,
    /// The message as received, dot-unstuffed, lines ending in CRLF. Empty until DATA ends,
    /// and empty when `handle_body` chose to stream or discard it.
    pub content: Vec<u8>,
    /// MAIL's `BODY=` parameter (RFC 6152, RFC 3030); `None` when absent.
    pub body_type: Option<BodyType>,
    /// MAIL's DSN parameters (RFC 3461): `RET`, `ENVID`.
    pub dsn: MailDsn,
    /// The original client a trusted MTA forwarded with XFORWARD before MAIL (Postfix's
    /// `XFORWARD_README`); `None` when none came. Like the rest, it holds for one transaction.
    pub xforward: Option<Box<crate::proto::xforward::XForward>>,
}

impl Envelope {
    /// Whether a MAIL command has started a transaction.
    pub fn in_transaction(&self) -> bool {
        self.mail_from.is_some()
    }

    /// The recipients' addresses, in order (aiosmtpd's `rcpt_tos`).
    pub fn rcpt_tos(&self) -> impl ExactSizeIterator<Item = &str> {
        self.recipients.iter().map(|r| r.address.as_str())
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("mail_from", &self.mail_from)
            .field("mail_options", &self.mail_options)
            .field("smtp_utf8", &self.smtp_utf8)
            .field("recipients", &self.recipients)
            .field("content_len", &self.content.len())
            .field("body_type", &self.body_type)
            .field("dsn", &self.dsn)
            .field("xforward", &self.xforward)
            .finish()
    }
}
