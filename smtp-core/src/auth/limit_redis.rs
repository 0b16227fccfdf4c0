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
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}user:{hex}", self.prefix)
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use crate::auth::AddrPrefixes;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};

    use super::*;
    use crate::auth::limit::normalize_user;

    /// A `redis-server` on a free loopback port, in a directory of its own, killed on drop.
    struct RedisServer {
        child: Child,
        dir: PathBuf,
        url: String,
    }

    impl RedisServer {
        /// `None`, with a notice, where `redis-server` cannot be run; under `CI=true` it must.
        async fn start() -> Option<RedisServer> {
            let runs = Command::new("redis-server")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !runs {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "redis-server is required when CI=true"
                );
                eprintln!("NOTICE: redis-server not found; skipping this test");
                return None;
            }
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir =
                std::env::temp_dir().join(format!("smtpd-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create the Redis directory");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("start redis-server");
            let server = RedisServer {
                child,
                dir,
                url: format!("redis://127.0.0.1:{port}/"),
            };
            for _ in 0..500 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return Some(server);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("redis-server did not start on port {port}");
        }

        async fn limiter(&self, max_failures: u32) -> RedisLimiter {
            RedisLimiter::connect(&self.url, max_failures, Duration::from_secs(60))
                .await
                .expect("connect to Redis")
                .prefix("test:")
        }

        async fn get(&self, key: &str) -> Option<u32> {
            let client = redis::Client::open(self.url.as_str()).unwrap();
            let mut connection = client.get_multiplexed_tokio_connection().await.unwrap();
            redis::cmd("GET")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap()
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn client(prefixes: AddrPrefixes, addr: &str) -> LimitKey<'static> {
        LimitKey::Client(prefixes.prefix_of(addr.parse::<IpAddr>().unwrap()))
    }

    /// 200 addresses of one IPv6 /64 are one client, counted under a key that names the
    /// prefix; another /64 and another IPv4 address are not blocked with it.
    #[tokio::test]
    async fn addresses_of_one_prefix_share_a_redis_count() {
        let Some(redis) = RedisServer::start().await else {
            return;
        };
        let limiter = redis.limiter(3).await;
        let prefixes = AddrPrefixes::default();
        let mut blocked = Vec::new();
        for i in 0..200 {
            let key = client(prefixes, &format!("2001:db8:1:2:{i:x}::{:x}", i * 7));
            blocked.push(limiter.is_blocked(key).await);
            limiter.record_failure(key).await;
        }
        assert_eq!(blocked.iter().filter(|b| !**b).count(), 3);
        assert_eq!(redis.get("test:ip:2001:db8:1:2::/64").await, Some(200));
        assert!(
            !limiter
                .is_blocked(client(prefixes, "2001:db8:1:3::1"))
                .await
        );

        for _ in 0..3 {
            limiter.record_failure(client(prefixes, "192.0.2.7")).await;
        }
        assert!(
            limiter
                .is_blocked(client(prefixes, "::ffff:192.0.2.7"))
                .await
        );
        assert!(!limiter.is_blocked(client(prefixes, "192.0.2.8")).await);
        assert_eq!(redis.get("test:ip:192.0.2.7/32").await, Some(3));

        let wide = AddrPrefixes::new(24, 48).unwrap();
        assert!(!limiter.is_blocked(client(wide, "192.0.2.8")).await);
        limiter.record_failure(client(wide, "192.0.2.9")).await;
        assert_eq!(redis.get("test:ip:192.0.2.0/24").await, Some(1));
    }

    /// Spellings of one name count under one key: the SHA-256 of the normalised name.
    #[tokio::test]
    async fn spellings_of_one_user_share_a_redis_count() {
        let Some(redis) = RedisServer::start().await else {
            return;
        };
        let limiter = redis.limiter(4).await;
        for spelling in ["Alice", "alice", "ALICE", "al\u{AD}ice"] {
            let user = normalize_user(spelling.as_bytes());
            assert!(!limiter.is_blocked(LimitKey::User(&user)).await);
            limiter.record_failure(LimitKey::User(&user)).await;
        }
        assert!(
            limiter
                .is_blocked(LimitKey::User(&normalize_user(b"aLiCe")))
                .await
        );
        assert!(!limiter.is_blocked(LimitKey::User(b"bob")).await);
        let sha256_alice = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90";
        assert_eq!(
            redis.get(&format!("test:user:{sha256_alice}")).await,
            Some(4)
        );

        let jo = |name: &str| normalize_user(name.as_bytes()).into_owned();
        limiter
            .record_failure(LimitKey::User(&jo("Jo\u{A0}Bloggs")))
            .await;
        limiter
            .record_failure(LimitKey::User(&jo("jo\u{2003}bloggs")))
            .await;
        limiter
            .record_failure(LimitKey::User(&jo("JO BLOGGS")))
            .await;
        assert!(!limiter.is_blocked(LimitKey::User(&jo("jo bloggs"))).await);
        limiter
            .record_failure(LimitKey::User(&jo("jo bloggs")))
            .await;
        assert!(limiter.is_blocked(LimitKey::User(&jo("Jo Bloggs"))).await);
    }
}
