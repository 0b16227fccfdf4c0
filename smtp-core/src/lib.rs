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
//! length (12288), TLS handshake time (30 s).
//!
//! ## Security defaults
//! AUTH is offered only over TLS (`auth_require_tls`). Passwords never reach logs, `Debug` or
//! `Display`. Only `CRLF.CRLF` ends a message (no SMTP smuggling). Bytes pipelined behind
//! STARTTLS are discarded, never executed. A panicking hook costs one reply, not the server.
//!
//! ## Authentication
//! See [`auth`] for mechanisms, the authenticator and [`AuthResult`], and the `hooks`
//! attribute for how handler methods become hooks and mechanisms.

pub mod auth;
pub mod config;
mod connection;
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
pub use config::{CallLimit, Config};
pub use handler::{Handler, HookError, Mechanism, MechanismFn};
pub use proto::Reply;
pub use server::{InvalidMechanismName, Server, ServerHandle};
pub use session::{Envelope, Peer, ProxyData, Session};
pub use stream::Transport;
pub use tls::{TlsConfig, TlsInfo};

#[cfg(feature = "macros")]
pub use smtp_macros::{SmtpHandler, auth_mechanism, hooks};

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
        pub use crate::handler::HookError;
        pub use crate::proto::Reply;
        pub use crate::session::{Envelope, Session};
        pub use std::option::Option;
        pub use std::string::String;
    }
}
