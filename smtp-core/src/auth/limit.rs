//! Limits on failed AUTH attempts across connections, keyed by client prefix and by user.
//!
//! The reference is Postfix's `smtpd_client_auth_rate_limit`: a fixed window per client, after
//! which further AUTH gets `454 4.7.0 Temporary authentication failure` until the window ends.
//! Unlike Postfix this counts failures only (a user who logs in often is never blocked), and
//! also counts them per user name, so that a guesser spreading over many addresses is stopped
//! too. A client is its network prefix ([`AddrPrefixes`]: an IPv6 host can change its address
//! for every connection within its /64) and a user is their normalised name
//! ([`normalize_user`]: `Alice` is `alice`), so neither can be varied for a fresh budget.

mod memory;
mod prefix;
mod user;

use std::future::Future;

use futures_util::future::BoxFuture;

pub use self::{
    prefix::{AddrPrefixes, InvalidPrefixLen, IpPrefix},
    user::normalize_user,
};
pub use memory::MemoryLimiter;

/// What a failure is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKey<'a> {
    /// The client's network: its address masked by [`AddrPrefixes::prefix_of`].
    Client(IpPrefix),
    /// The user name the client claimed, in the form the authenticator compares names in
    /// ([`normalize_user`] unless it has its own, [`Authenticator::limit_key`]).
    ///
    /// [`Authenticator::limit_key`]: crate::Authenticator::limit_key
    User(&'a [u8]),
}

/// Counts failed AUTH attempts and says when a client prefix or a user name is blocked.
///
/// The server asks [`is_blocked`](Self::is_blocked) for the client prefix before an exchange
/// and for the user name as soon as a mechanism knows it ([`crate::AuthServer::claim_user`]),
/// and calls [`record_failure`](Self::record_failure) for both after each failure. Keys come
/// already mapped: the address to its prefix, the name to its normalised form, so that every
/// limiter counts alike. Implementations that talk to a remote store should fail open (not
/// block) when it is unreachable, and log. Implement both methods with ordinary `async fn`s.
pub trait AuthLimiter: Send + Sync + 'static {
    /// Whether `key` is blocked now.
    fn is_blocked(&self, key: LimitKey<'_>) -> impl Future<Output = bool> + Send;
    /// Counts one failure against `key`.
    fn record_failure(&self, key: LimitKey<'_>) -> impl Future<Output = ()> + Send;
}

/// [`AuthLimiter`] with boxed futures, so that the server can hold any of them.
pub(crate) trait DynAuthLimiter: Send + Sync + 'static {
    fn is_blocked_boxed<'a>(&'a self, key: LimitKey<'a>) -> BoxFuture<'a, bool>;
    fn record_failure_boxed<'a>(&'a self, key: LimitKey<'a>) -> BoxFuture<'a, ()>;
}

impl<L: AuthLimiter> DynAuthLimiter for L {
    fn is_blocked_boxed<'a>(&'a self, key: LimitKey<'a>) -> BoxFuture<'a, bool> {
        Box::pin(self.is_blocked(key))
    }

    fn record_failure_boxed<'a>(&'a self, key: LimitKey<'a>) -> BoxFuture<'a, ()> {
        Box::pin(self.record_failure(key))
    }
}

/// Any [`AuthLimiter`], shared: what `Config::auth_limiter` holds.
#[derive(Clone)]
pub struct SharedLimiter(std::sync::Arc<dyn DynAuthLimiter>);

impl SharedLimiter {
    /// Wraps `limiter`.
    pub fn new(limiter: impl AuthLimiter) -> SharedLimiter {
        SharedLimiter(std::sync::Arc::new(limiter))
    }

    pub(crate) fn get(&self) -> &dyn DynAuthLimiter {
        &*self.0
    }
}

impl<L: AuthLimiter> From<L> for SharedLimiter {
    fn from(limiter: L) -> SharedLimiter {
        SharedLimiter::new(limiter)
    }
}

/// A shared limiter is one too: one `Arc<MemoryLimiter>` can serve several servers.
impl<L: AuthLimiter> AuthLimiter for std::sync::Arc<L> {
    fn is_blocked(&self, key: LimitKey<'_>) -> impl Future<Output = bool> + Send {
        (**self).is_blocked(key)
    }

    fn record_failure(&self, key: LimitKey<'_>) -> impl Future<Output = ()> + Send {
        (**self).record_failure(key)
    }
}

impl std::fmt::Debug for SharedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedLimiter(..)")
    }
}

/// How a user name appears in the failure log: `#` and 8 hex digits of a keyed hash, the same
/// for the same name while the process runs. Never the name itself: a user-name field often
/// carries a mistyped password.
pub(crate) fn user_fingerprint(user: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut key).expect("OS random source");
        key
    });
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(user);
    let digest = mac.finalize().into_bytes();
    format!("#{}", crate::hex(&digest[..4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_stable_and_hide_the_name() {
        let alice = user_fingerprint(b"alice");
        assert_eq!(alice, user_fingerprint(b"alice"));
        assert_ne!(alice, user_fingerprint(b"bob"));
        assert_eq!(alice.len(), 9);
        assert!(alice.starts_with('#') && !alice.contains("alice"));
    }
}
