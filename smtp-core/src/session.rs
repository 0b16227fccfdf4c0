//! What the server knows about a connection ([`Session`]) and a mail transaction ([`Envelope`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::AuthData;
use crate::proto::{MailDsn, RcptDsn};
use crate::tls::TlsInfo;

/// Where a connection comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peer {
    /// A TCP client.
    Tcp(SocketAddr),
    /// A transport without an address.
    Local,
    /// A client of a Unix-domain socket listener; the path is the listener's socket.
    Unix(std::path::PathBuf),
}

impl Peer {
    /// The client's socket address, when it has one.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Peer::Tcp(addr) => Some(*addr),
            Peer::Local | Peer::Unix(_) => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Local => f.write_str("local"),
            Peer::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// State that lives as long as the connection, or until STARTTLS starts it over.
///
/// As in aiosmtpd, a new `Session` is made on connect and again after a successful STARTTLS
/// handshake, so nothing said in plaintext (greeting, authentication) survives into TLS.
#[derive(Debug)]
pub struct Session {
    /// The client's address: behind the PROXY protocol, the client named in the header
    /// (the proxy's own address is only logged).
    pub peer: Peer,
    /// The name the client gave in HELO/EHLO/LHLO; `None` until then.
    pub host_name: Option<String>,
    /// Whether the last greeting was EHLO or LHLO (not HELO).
    pub extended_smtp: bool,
    /// The negotiated TLS parameters, once TLS is active.
    pub tls: Option<TlsInfo>,
    /// Whether an AUTH exchange succeeded on this session.
    pub authenticated: bool,
    /// What the successful AUTH mechanism recorded (`AuthResult::auth_data`).
    pub auth_data: Option<AuthData>,
    /// The login of `auth_data`, when it has one (aiosmtpd's `login_data`).
    pub login_data: Option<Vec<u8>>,
    /// The PROXY protocol header's data, when the listener requires one.
    pub proxy_data: Option<ProxyData>,
    server_hostname: Arc<str>,
}

impl Session {
    pub(crate) fn new(peer: Peer, server_hostname: Arc<str>) -> Session {
        Session {
            peer,
            host_name: None,
            extended_smtp: false,
            tls: None,
            authenticated: false,
            auth_data: None,
            login_data: None,
            proxy_data: None,
            server_hostname,
        }
    }

    /// The server's own host name, as used in the greeting and the HELO/EHLO replies.
    pub fn server_hostname(&self) -> &str {
        &self.server_hostname
    }

    /// Whether the connection is encrypted (STARTTLS done, or an implicit-TLS listener).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// What a PROXY protocol header (version 1 or 2) announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyData {
    /// The original client address; `None` for `UNKNOWN`, `LOCAL`, and the UNSPEC and UNIX
    /// families. When present it is also the session's [`Peer`].
    pub source: Option<SocketAddr>,
    /// The address the client connected to, on the proxy.
    pub destination: Option<SocketAddr>,
    /// The protocol version: 1 (text) or 2 (binary).
    pub version: u8,
    /// `PROXY` for a relayed client; `LOCAL` for the proxy's own connections (health checks).
    pub command: ProxyCommand,
    /// Version 2 TLVs as raw `(type, value)` pairs, in order (e.g. `0x01` ALPN,
    /// `0x05` UNIQUE_ID, `0x20` SSL).
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

impl ProxyData {
    pub(crate) fn unknown(version: u8, command: ProxyCommand) -> ProxyData {
        ProxyData {
            source: None,
            destination: None,
            version,
            command,
            tlvs: Vec::new(),
        }
    }
}

/// The command of a PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyCommand {
    /// The connection relays a client (v1 always; v2 command 1).
    Proxy,
    /// The proxy speaks for itself (v2 command 0); the addresses are ignored.
    Local,
}

/// One mail transaction: the sender, the recipients and the message.
///
/// Reset (as aiosmtpd does) on HELO/EHLO, RSET, after the message has been handled, and after
/// STARTTLS.
#[derive(Default)]
pub struct Envelope {
    /// The reverse-path of MAIL FROM, without angle brackets; `"<>"` for the null sender.
    pub mail_from: Option<String>,
    /// The MAIL parameters, upper-cased (`"SIZE=1024"`, `"BODY=8BITMIME"`).
    pub mail_options: Vec<String>,
    /// Whether MAIL FROM carried the SMTPUTF8 parameter.
    pub smtp_utf8: bool,
    /// The forward-paths of the accepted RCPT TO commands.
    pub rcpt_tos: Vec<String>,
    /// The RCPT parameters, upper-cased, for each RCPT command in order.
    pub rcpt_options: Vec<Vec<String>>,
    /// The message as received, dot-unstuffed, lines ending in CRLF. Empty until DATA ends,
    /// and empty when `handle_body` chose to stream or discard it.
    pub content: Vec<u8>,
    /// MAIL's `BODY=` parameter (RFC 6152, RFC 3030); `None` when absent.
    pub body_type: Option<BodyType>,
    /// MAIL's DSN parameters (RFC 3461): `RET`, `ENVID`.
    pub dsn: MailDsn,
    /// The DSN parameters (`NOTIFY`, `ORCPT`) of each accepted recipient, in the order of
    /// `rcpt_tos`.
    pub rcpt_dsn: Vec<RcptDsn>,
}

/// MAIL's `BODY=` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME` (RFC 6152).
    EightBitMime,
    /// `BODY=BINARYMIME` (RFC 3030): the message can only come with BDAT.
    BinaryMime,
}

impl Envelope {
    /// Whether a MAIL command has started a transaction.
    pub fn in_transaction(&self) -> bool {
        self.mail_from.is_some()
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("mail_from", &self.mail_from)
            .field("mail_options", &self.mail_options)
            .field("smtp_utf8", &self.smtp_utf8)
            .field("rcpt_tos", &self.rcpt_tos)
            .field("rcpt_options", &self.rcpt_options)
            .field("content_len", &self.content.len())
            .field("body_type", &self.body_type)
            .field("dsn", &self.dsn)
            .field("rcpt_dsn", &self.rcpt_dsn)
            .finish()
    }
}
