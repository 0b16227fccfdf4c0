//! Limits on failed AUTH attempts across connections, keyed by client address and by user.
//!
//! The reference is Postfix's `smtpd_client_auth_rate_limit`: a fixed window per client, after
//! which further AUTH gets `454 4.7.0 Temporary authentication failure` until the window ends.
//! Unlike Postfix this counts failures only (a user who logs in often is never blocked), and
//! also counts them per user name, so that a guesser spreading over many addresses is stopped
//! too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// What a failure is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKey<'a> {
    /// The client's IP address.
    Ip(IpAddr),
    /// The user name the client claimed.
    User(&'a [u8]),
}

/// Counts failed AUTH attempts and says when a client address or a user name is blocked.
///
/// The server asks [`is_blocked`](Self::is_blocked) for the address before an exchange and
/// for the user name as soon as a mechanism knows it ([`crate::AuthServer::claim_user`]), and
/// calls [`record_failure`](Self::record_failure) for both after each failure. Implementations
/// that talk to a remote store should fail open (not block) when it is unreachable, and log.
#[async_trait]
pub trait AuthLimiter: Send + Sync + 'static {
    /// Whether `key` is blocked now.
    async fn is_blocked(&self, key: LimitKey<'_>) -> bool;
    /// Counts one failure against `key`.
    async fn record_failure(&self, key: LimitKey<'_>);
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum OwnedKey {
    Ip(IpAddr),
    User(Vec<u8>),
}

impl From<LimitKey<'_>> for OwnedKey {
    fn from(key: LimitKey<'_>) -> OwnedKey {
        match key {
            LimitKey::Ip(ip) => OwnedKey::Ip(ip),
            LimitKey::User(user) => OwnedKey::User(user.to_vec()),
        }
    }
}

/// The in-process [`AuthLimiter`]: at most `max_failures` failures per key in a fixed
/// `window`; the key is blocked from then until the window ends.
///
/// Memory is bounded: at most `max_keys` keys are tracked (default 100 000); when full,
/// expired windows are dropped, and if none has expired the new key is not tracked.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_failures: u32,
    window: Duration,
    max_keys: usize,
    counts: Mutex<HashMap<OwnedKey, (Instant, u32)>>,
}

impl MemoryLimiter {
    /// At most `max_failures` failures per address and per user in each `window`.
    pub fn new(max_failures: u32, window: Duration) -> MemoryLimiter {
        MemoryLimiter {
            max_failures,
            window,
            max_keys: 100_000,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Tracks at most `max_keys` keys. Default is 100 000.
    pub fn max_keys(mut self, max_keys: usize) -> MemoryLimiter {
        self.max_keys = max_keys;
        self
    }
}

impl Default for MemoryLimiter {
    /// 10 failures per 10 minutes.
    fn default() -> MemoryLimiter {
        MemoryLimiter::new(10, Duration::from_secs(600))
    }
}

#[async_trait]
impl AuthLimiter for MemoryLimiter {
    async fn is_blocked(&self, key: LimitKey<'_>) -> bool {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .get(&OwnedKey::from(key))
            .is_some_and(|(start, n)| start.elapsed() < self.window && *n >= self.max_failures)
    }

    async fn record_failure(&self, key: LimitKey<'_>) {
        let now = Instant::now();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let key = OwnedKey::from(key);
        if !counts.contains_key(&key) && counts.len() >= self.max_keys {
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if counts.len() >= self.max_keys {
                return;
            }
        }
        let entry = counts.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
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
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("#{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_after_the_budget_and_forgets_after_the_window() {
        let limiter = MemoryLimiter::new(2, Duration::from_millis(50));
        let ip = LimitKey::Ip([127, 0, 0, 1].into());
        let other = LimitKey::Ip([127, 0, 0, 2].into());
        assert!(!limiter.is_blocked(ip).await);
        limiter.record_failure(ip).await;
        assert!(!limiter.is_blocked(ip).await);
        limiter.record_failure(ip).await;
        assert!(limiter.is_blocked(ip).await);
        assert!(!limiter.is_blocked(other).await);
        assert!(!limiter.is_blocked(LimitKey::User(b"127.0.0.1")).await);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!limiter.is_blocked(ip).await);
    }

    #[test]
    fn fingerprints_are_stable_and_hide_the_name() {
        let alice = user_fingerprint(b"alice");
        assert_eq!(alice, user_fingerprint(b"alice"));
        assert_ne!(alice, user_fingerprint(b"bob"));
        assert_eq!(alice.len(), 9);
        assert!(alice.starts_with('#') && !alice.contains("alice"));
    }

    #[tokio::test]
    async fn key_table_is_bounded() {
        let limiter = MemoryLimiter::new(1, Duration::from_secs(60)).max_keys(2);
        for user in [&b"a"[..], b"b", b"c"] {
            limiter.record_failure(LimitKey::User(user)).await;
        }
        assert!(limiter.is_blocked(LimitKey::User(b"a")).await);
        assert!(!limiter.is_blocked(LimitKey::User(b"c")).await);
    }
}
