//! # smtp-core
//!
//! An SMTP server library for tokio, modelled on Python's aiosmtpd: you write a *handler*
//! whose hooks decide how the server answers, and the library speaks the protocol
//! (RFC 5321), authentication (RFC 4954), STARTTLS (RFC 3207) and pipelining (RFC 2920).
//!
//! ```no_run
//! use smtp_core::{Config, Envelope, Reply, Server, Session, SmtpHandler};
//!
//! #[derive(SmtpHandler)]
//! struct Printer;
//!
//! #[smtp_core::hooks]
//! impl Printer {
//!     async fn handle_rcpt(&self, _: &mut Session, _: &mut Envelope, address: &str, _: &[String]) -> Reply {
//!         if address.ends_with("@example.com") { Reply::ok() } else { Reply::from("550 not relaying to that domain") }
//!     }
//!
//!     async fn handle_data(&self, _: &mut Session, envelope: &mut Envelope) -> Reply {
//!         println!("{} bytes for {:?}", envelope.content.len(), envelope.rcpt_tos);
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
//! [`proto`] parses bytes and renders replies without I/O; the connection owns the socket,
//! timers and TLS, and drives one [`Session`] through the protocol; the [`Server`] accepts,
//! limits and shuts down.
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
//! ## Authentication
//! See [`auth`] for mechanisms, the authenticator and [`AuthResult`], and the `hooks`
//! attribute for how handler methods become hooks and mechanisms.

pub mod auth;
pub mod body;
pub mod config;
mod connection;
mod governance;
pub mod handler;
pub mod handlers;
pub mod proto;
mod server;
pub mod session;
mod stream;
pub mod tls;

pub use auth::{
    AuthAbort, AuthData, AuthMechanism, AuthRequest, AuthResult, AuthServer, Authenticator,
    LoginPassword, Secret, StaticUsers, authenticator_fn,
};
pub use body::{BodyMode, BodySink};
pub use config::{CallLimit, Cidr, Config, MinDataRate, ProxyProtocol};
pub use handler::{Handler, HookError, Mechanism, MechanismFn};
pub use proto::Reply;
pub use server::{InvalidMechanismName, Server, ServerHandle};
pub use session::{BodyType, Envelope, Peer, ProxyCommand, ProxyData, Session};
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
    pub use crate::handler::route;
    pub use futures_util::future::BoxFuture;
    pub use std::boxed::Box;
    pub use std::future::Future;

    use crate::auth::{AuthAbort, AuthResult};

    /// What a `handle_auth` method of a `#[hooks]` block may return: an [`AuthResult`] (the
    /// hook decides), a `Result<AuthResult, AuthAbort>` (so that `?` works on a challenge), or
    /// the trait's own `Option<AuthResult>` (`None` runs the mechanism).
    #[diagnostic::on_unimplemented(
        message = "`handle_auth` cannot return `{Self}`",
        label = "expected `AuthResult`, `Result<AuthResult, AuthAbort>` or `Option<AuthResult>`"
    )]
    pub trait IntoHandleAuth {
        /// Converts into the result of `Handler::handle_auth`.
        fn into_handle_auth(self) -> Option<AuthResult>;
    }

    impl IntoHandleAuth for AuthResult {
        fn into_handle_auth(self) -> Option<AuthResult> {
            Some(self)
        }
    }

    impl IntoHandleAuth for Result<AuthResult, AuthAbort> {
        fn into_handle_auth(self) -> Option<AuthResult> {
            Some(IntoAuthResult::into_auth_result(self))
        }
    }

    impl IntoHandleAuth for Option<AuthResult> {
        fn into_handle_auth(self) -> Option<AuthResult> {
            self
        }
    }

    /// A session from a local peer, for tests of handlers outside this crate.
    pub fn __test_session() -> crate::Session {
        crate::Session::new(crate::Peer::Local, "test.invalid".into())
    }

    /// The names a derived `impl Handler` uses unqualified, imported in its own scope so that
    /// user items of the same names cannot capture them.
    pub mod types {
        pub use crate::auth::{AuthResult, AuthServer};
        pub use crate::body::BodyMode;
        pub use crate::handler::HookError;
        pub use crate::proto::Reply;
        pub use crate::session::{Envelope, ProxyData, Session};
        pub use std::option::Option;
        pub use std::primitive::bool;
        pub use std::string::String;
        pub use std::vec::Vec;
    }
}
