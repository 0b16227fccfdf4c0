//! Optional SASL mechanisms, each an ordinary [`AuthMechanism`](super::AuthMechanism)
//! registered with [`Server::mechanism`](crate::Server::mechanism):
//!
//! | name | type | checks with |
//! | --- | --- | --- |
//! | `SCRAM-SHA-256`, `SCRAM-SHA-256-PLUS`, `SCRAM-SHA-1` | [`Scram`] | a [`CredentialStore`] of salted keys |
//! | `CRAM-MD5` (legacy) | [`CramMd5`] | a [`CredentialStore`] of plaintext-equivalent secrets |
//! | `OAUTHBEARER`, `XOAUTH2` | [`OAuthBearer`], [`XOAuth2`] | the authenticator ([`AuthData::Token`](super::AuthData::Token)) |
//! | `EXTERNAL` | [`External`] | the authenticator ([`AuthData::External`](super::AuthData::External)) |
//! | `ANONYMOUS` | [`Anonymous`] | nothing: trace only |
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use smtp_core::auth::mechanisms::Scram;
//! use smtp_core::{Config, Server, SharedAuthenticator, StaticUsers, handlers::Sink};
//!
//! let users = Arc::new(StaticUsers::new().user("alice", "correct horse"));
//! let mut config = Config::default();
//! config.authenticator = Some(SharedAuthenticator::from_arc(users.clone()));
//! let server = Server::new(Sink, config)
//!     .mechanism(Scram::sha256_plus(users.clone()))?
//!     .mechanism(Scram::sha256(users).plus_offered(true))?
//!     .listen("127.0.0.1:8587")
//!     .await?
//!     .start();
//! # Ok(()) }
//! ```
//!
//! With the macros, a handler method can delegate to any of them:
//!
//! ```no_run
//! use smtp_core::auth::mechanisms::CramMd5;
//! use smtp_core::{AuthAbort, AuthArgs, AuthMechanism, AuthResult, AuthServer, SmtpHandler, StaticUsers};
//!
//! #[derive(SmtpHandler)]
//! struct Legacy {
//!     cram: CramMd5,
//! }
//!
//! #[smtp_core::hooks]
//! impl Legacy {
//!     #[smtp_core::auth_mechanism("CRAM-MD5")]
//!     async fn cram(
//!         &self,
//!         server: &mut AuthServer<'_>,
//!         args: AuthArgs,
//!     ) -> Result<AuthResult, AuthAbort> {
//!         self.cram.run(server, args).await
//!     }
//! }
//! # let _ = Legacy { cram: CramMd5::new(StaticUsers::new()) };
//! ```

mod anonymous;
mod certificate;
mod cram_md5;
mod external;
mod oauthbearer;
mod scram;
mod store;
mod xoauth2;

pub use anonymous::Anonymous;
pub use cram_md5::CramMd5;
pub use external::External;
pub use oauthbearer::OAuthBearer;
pub use scram::{Scram, ScramCredentials, ScramHash, normalize_password};
pub use store::CredentialStore;
pub use xoauth2::XOAuth2;

/// `len` random octets from the operating system.
fn random_bytes(len: usize) -> Vec<u8> {
    use rand::TryRng as _;
    let mut bytes = vec![0u8; len];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("OS random source");
    bytes
}
