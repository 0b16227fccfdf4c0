//! An [`AuthLimiter`] in Redis, so that several servers (behind a load balancer) share one
//! count of failures.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use sha2::Digest as _;

use super::limit::{AuthLimiter, LimitKey};

/// The Redis-backed [`AuthLimiter`] (cargo feature `redis`): the same fixed windows as
/// [`MemoryLimiter`](super::MemoryLimiter), as keys `<prefix>ip:<client prefix>` (such as
/// `smtpd:auth-fail:ip:2001:db8:1:2::/64`) and `<prefix>user:<SHA-256 of the name, hex>` that
/// expire with their window. Redis bounds their memory: keep its `maxmemory-policy` at
/// `noeviction` (the default), as any other policy may evict these keys, and an evicted count
/// is a fresh budget. Under `noeviction` a full Redis refuses the write: the failure is not
/// counted, and a warning is logged.
///
/// When Redis cannot be reached it fails open: nothing is blocked, and a warning is logged.
#[derive(Clone)]
pub struct RedisLimiter {
    connection: MultiplexedConnection,
    prefix: String,
    max_failures: u32,
    window: Duration,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("max_failures", &self.max_failures)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Connects to `url` (`redis://host:port/db`); at most `max_failures` failures per client
    /// prefix and per user in each `window`. Keys start with `smtpd:auth-fail:`.
    pub async fn connect(
        url: &str,
        max_failures: u32,
        window: Duration,
    ) -> redis::RedisResult<RedisLimiter> {
        let client = redis::Client::open(url)?;
        let connection = client.get_multiplexed_tokio_connection().await?;
        Ok(RedisLimiter {
            connection,
            prefix: "smtpd:auth-fail:".into(),
            max_failures,
            window,
        })
    }

    /// Uses another key prefix, e.g. to keep two clusters apart in one Redis.
    pub fn prefix(mut self, prefix: impl Into<String>) -> RedisLimiter {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, key: LimitKey<'_>) -> String {
        match key {
            LimitKey::Client(client) => format!("{}ip:{client}", self.prefix),
            LimitKey::User(user) => {
                // Hashed: a user-name field may hold a mistyped password.
                let digest = sha2::Sha256::digest(user);
                format!("{}user:{}", self.prefix, crate::hex(&digest))
            }
        }
    }
}

impl AuthLimiter for RedisLimiter {
    async fn is_blocked(&self, key: LimitKey<'_>) -> bool {
        let mut connection = self.connection.clone();
        let count: redis::RedisResult<Option<u32>> = redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut connection)
            .await;
        match count {
            Ok(count) => count.is_some_and(|n| n >= self.max_failures),
            Err(e) => {
                tracing::warn!(error = %e, "Redis auth limiter unavailable; not blocking");
                false
            }
        }
    }

    async fn record_failure(&self, key: LimitKey<'_>) {
        let mut connection = self.connection.clone();
        let key = self.key(key);
        let window_ms = self.window.as_millis().max(1) as u64;
        // The window starts with the first failure: SET NX fixes its expiry, INCR keeps it.
        let done: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("PX")
            .arg(window_ms)
            .arg("NX")
            .ignore()
            .cmd("INCR")
            .arg(&key)
            .ignore()
            .query_async(&mut connection)
            .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "Redis auth limiter unavailable; failure not counted");
        }
    }
}
