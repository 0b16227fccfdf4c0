//! The Authentication System (RFC 4954): the AUTH exchange, mechanisms and the authenticator.
//!
//! A mechanism is a step machine fed one client line at a time: it calls
//! [`AuthServer::challenge_auth`] for each round trip, and decides with an [`AuthResult`].
//! The connection owns the wire details (`334`, base64, `*`, `=`, line limits), so a mechanism
//! only sees decoded bytes, and the exchange's one final reply comes from the result.
//!
//! The rooms: [`AuthServer`] and [`AuthArgs`] (`exchange`), the [`Authenticator`] that judges
//! credentials (`authenticator`, with the table [`StaticUsers`]), the [`AuthMechanism`] trait
//! and the server's registry (`registry`), the built-in LOGIN and PLAIN, and the opt-in SCRAM,
//! CRAM-MD5, OAUTHBEARER, XOAUTH2, EXTERNAL and ANONYMOUS in [`mechanisms`]. [`AuthLimiter`]
//! counts failures across connections.

mod authenticator;
mod builtin;
pub(crate) mod data;
pub mod dovecot;
pub(crate) mod exchange;
pub(crate) mod limit;
#[cfg(feature = "redis")]
mod limit_redis;
pub mod mechanisms;
pub(crate) mod registry;
mod static_users;

pub use authenticator::{AuthRequest, Authenticator, SharedAuthenticator, authenticator_fn};
pub use builtin::{Login, Plain};
pub use data::{
    AuthAbort, AuthData, AuthResult, IntoAuthResult, IntoHandleAuth, LoginPassword, Secret,
};
pub use dovecot::{DovecotAuth, DovecotMechanism};
pub use exchange::{AuthArgs, AuthServer, InitialResponse};
pub(crate) use limit::user_fingerprint;
pub use limit::{
    AddrPrefixes, AuthLimiter, InvalidPrefixLen, IpPrefix, LimitKey, MemoryLimiter, SharedLimiter,
    normalize_user,
};
#[cfg(feature = "redis")]
pub use limit_redis::RedisLimiter;
pub use mechanisms::{CredentialStore, ScramCredentials, ScramHash};
pub use registry::{AuthMechanism, Mechanism, MechanismFn, is_valid_mechanism_name};
pub use static_users::StaticUsers;
