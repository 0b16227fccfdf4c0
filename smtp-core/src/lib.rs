//! # smtp-core
//!
//! An SMTP server library for tokio, modelled on Python's aiosmtpd: you write a *handler*
//! whose hooks decide how the server answers, and the library speaks the protocol
//! (RFC 5321), authentication (RFC 4954), STARTTLS (RFC 3207) and pipelining (RFC 2920).
//!
//! ```no_run
//! use smtp_core::{Config, Envelope, RcptParams, Reply, Server, Session, SmtpHandler};
//!
//! #[derive(SmtpHandler)]
//! struct Printer;
//!
//! #[smtp_core::hooks]
//! impl Printer {
//!     async fn handle_rcpt(&self, _: &mut Session, _: &mut Envelope, address: &str, _: &RcptParams) -> Reply {
//!         if address.ends_with("@example.com") { Reply::ok() } else { Reply::from("550 not relaying to that domain") }
//!     }
//!
//!     async fn handle_data(&self, _: &mut Session, envelope: &mut Envelope) -> Reply {
//!         let recipients: Vec<&str> = envelope.rcpt_tos().collect();
//!         println!("{} bytes for {recipients:?}", envelope.content.len());
//!         Reply::ok()
//!     }
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = Server::new(Printer, Config::default()).listen("127.0.0.1:8025").await?.start();
//! tokio::signal::ctrl_c().await?;
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Layers
//! [`proto`] parses bytes and renders replies without I/O. [`Session`] and [`Envelope`] hold
//! what the engine knows about a connection and a transaction, and [`auth`] the
//! Authentication System. The connection (private; one room per concern: I/O, commands, the
//! transaction, bodies, AUTH, STARTTLS, PROXY) owns the socket, timers and TLS and drives one
//! session through one phase at a time; the [`Server`] accepts, limits and shuts down;
//! [`handlers`] are ready-made handlers. Each layer uses only the ones before it.
//!
//! ## One async style
//! Every trait you implement — [`Handler`], [`Authenticator`], [`AuthMechanism`],
//! [`BodySink`], [`auth::mechanisms::CredentialStore`] — is written with plain `async fn`s in
//! your `impl` (the traits declare `fn … -> impl Future + Send`). No `#[async_trait]`, no
//! boxing in the hot path of hooks; where the server must hold any implementation (an
//! authenticator, a mechanism, a sink) it boxes the future itself, once per call of a rare
//! operation. That is why this style was chosen: hooks run on every command and stay
//! allocation-free, and the same style serves the traits the server stores.
//!
//! ## Limits and timeouts
//! Every one is a [`Config`] field with its default in its documentation: message size
//! (32 MiB, enforced while reading, so memory never grows past it), command line length
//! (512), DATA line length (1001), recipients (1000), idle timeout (300 s), unknown commands
//! (5), connections (1000, and 50 per client address), failed AUTH attempts (3), AUTH line
//! length (12288), TLS handshake time (30 s), PROXY header time (5 s, when required).
//! Off by default: messages and bytes per connection, and a minimum DATA rate.
//!
//! ## Service extensions and LMTP
//! CHUNKING and BINARYMIME (RFC 3030, `Config::chunking`) and DSN parameters (RFC 3461,
//! `Config::dsn`) are on by default; ENHANCEDSTATUSCODES (RFC 2034,
//! `Config::enhanced_status_codes`) is off, so replies keep aiosmtpd's texts. `Config::lmtp`
//! serves LMTP (RFC 2033), with one reply per recipient from `Handler::handle_lmtp_data`.
//! [`Handler::handle_body`] streams or discards message bodies instead of buffering them
//! (see [`body`]).
//!
//! ## Security defaults
//! AUTH is offered only over TLS (`auth_require_tls`). Passwords never reach logs, `Debug` or
//! `Display`. Only `CRLF.CRLF` ends a message (no SMTP smuggling). Bytes pipelined behind
//! STARTTLS are discarded, never executed. A panicking hook costs one reply, not the server.
//! Against credential guessing: three failures close a connection; `auth_failure_delay`
//! (off by default) slows each failure reply; an `auth_limiter` (none by default; see
//! [`auth::MemoryLimiter`]) answers `454 4.7.0` to addresses and users with too many failures;
//! each failure logs one `smtpd::auth` warning with the peer address for fail2ban.
//!
//! ## Observability
//! Every connection has a [`SessionId`] ([`Session::id`]), also the `session` field of the
//! `smtp` tracing span that every log line of the connection is in. With the `metrics` cargo
//! feature the engine counts connections, commands, replies, messages, AUTH and TLS outcomes,
//! timeouts and limits through the [`metrics`](https://docs.rs/metrics) facade, under names
//! that start with `smtpd_`; label values come from fixed sets, never from what a client
//! sends. The application installs the exporter, before [`Server::start`].
//!
//! ## Authentication
//! See [`auth`] for mechanisms, the authenticator and [`AuthResult`], and the `hooks`
//! attribute for how handler methods become hooks and mechanisms.

pub mod auth;
pub mod body;
pub mod config;
mod connection;
mod envelope;
mod extensions;
mod governance;
pub mod handler;
pub mod handlers;
pub(crate) mod metrics;
pub mod proto;
mod server;
mod session;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

pub use auth::{
    AuthAbort, AuthArgs, AuthData, AuthMechanism, AuthRequest, AuthResult, AuthServer,
    Authenticator, InitialResponse, LoginPassword, Mechanism, MechanismFn, Secret,
    SharedAuthenticator, StaticUsers, authenticator_fn,
};
pub use body::{BodyMode, BodySink, BoxedSink};
pub use config::{CallLimit, Cidr, Config, MinDataRate, ProxyProtocol};
pub use envelope::{BodyType, Envelope, Recipient};
pub use extensions::Extensions;
pub use handler::route::Hooks;
pub use handler::{Handler, HookError};
pub use proto::params::{MailParams, RcptParams};
pub use proto::proxy::{ProxyCommand, ProxyData};
pub use proto::xclient::{Attr, HeloProto, XClient};
pub use proto::xforward::{Source, XForward};
pub use proto::{MailDsn, Notify, Orcpt, RcptDsn, Reply, Ret};
pub use server::{InvalidMechanismName, Server, ServerHandle};
pub use session::{Peer, Session, SessionBuilder, SessionId, XCLIENT_MECHANISM};
pub use stream::Transport;
pub use tls::{TlsConfig, TlsInfo};

#[cfg(feature = "macros")]
pub use smtp_macros::{SmtpHandler, auth_mechanism, hooks};

/// The MIME parser of [`handlers::Message`], re-exported so that its types match.
pub use mail_parser;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "../fuzzing/mod.rs"]
pub mod __fuzz;

/// Support for the macros; not a public API and not covered by semver.
#[doc(hidden)]
pub mod __private {
    pub use crate::auth::IntoAuthResult;
    /// The autoref specialisation behind `#[derive(SmtpHandler)]`.
    pub mod route {
        pub use crate::handler::route::{Probe, UseDefaults, UseHooks, ViaDefaults, ViaHooks};
    }
    pub use futures_util::future::BoxFuture;
    pub use std::boxed::Box;
    pub use std::future::Future;

    pub use crate::auth::IntoHandleAuth;

    /// The names a derived `impl Handler` uses unqualified, imported in its own scope so that
    /// user items of the same names cannot capture them.
    pub mod types {
        pub use crate::auth::AuthArgs;
        pub use crate::auth::{AuthResult, AuthServer};
        pub use crate::body::BodyMode;
        pub use crate::envelope::Envelope;
        pub use crate::handler::HookError;
        pub use crate::proto::Reply;
        pub use crate::proto::params::{MailParams, RcptParams};
        pub use crate::proto::proxy::ProxyData;
        pub use crate::session::Session;
        pub use std::option::Option;
        pub use std::primitive::bool;
        pub use std::string::String;
        pub use std::vec::Vec;
    }
}

/// Lower-case hex of `bytes` (digests in keys, ids and CRAM-MD5 answers).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
