//! Credential guessing: the limiter across connections (in memory, and in a real Redis
//! shared by two servers), the growing delay on one connection, and the fail2ban log line.
//!
//! redis-server (Debian package `redis-server`) is required under CI (`CI=true`); elsewhere
//! the Redis test is skipped. Clients bind 127.0.0.2 to be a second address: loopback
//! accepts all of 127.0.0.0/8.

use smtp_core::auth::{AddrPrefixes, SharedLimiter};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use smtp_core::auth::{AuthLimiter, MemoryLimiter};
use smtp_core::handlers::Sink;
use smtp_core::{Config, ServerHandle, StaticUsers};

const SUCCESS: &str = "235 2.7.0 Authentication successful";
const INVALID: &str = "535 5.7.8 Authentication credentials invalid";
const BLOCKED: &str = "454 4.7.0 Temporary authentication failure";
const GUESSER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const BUDGET: u32 = 5;

fn limited_config(limiter: impl Into<SharedLimiter>) -> Config {
    {
        let mut config = auth_config();
        config.authenticator = Some(StaticUsers::new().user("carol", "s3cret").into());
        config.auth_limiter = Some(limiter.into());
        config
    }
}

/// One connection from `from`: EHLO, `AUTH PLAIN` as `user`, the reply, QUIT.
async fn attempt(from: IpAddr, server: SocketAddr, user: &str, password: &str) -> String {
    let mut c = Client::connect_raw_from(from, server).await;
    c.reply().await;
    c.cmd("EHLO client.example", 250).await;
    c.send(format!("AUTH PLAIN {}\r\n", plain("", user, password)).as_bytes())
        .await;
    let reply = c.reply().await.join("\n");
    c.send(b"QUIT\r\n").await;
    reply
}

/// 50 guesses, each on its own connection from 127.0.0.1 and each at a different user name
/// (password spraying), spread round-robin over `servers`: the first `BUDGET` are answered,
/// the rest refused with 454; 127.0.0.2 still logs in on every server.
async fn guessing_loop_is_blocked(servers: &[&ServerHandle]) {
    let mut replies = Vec::new();
    for i in 0..50 {
        let server = servers[i % servers.len()].local_addr();
        replies.push(attempt(GUESSER, server, &format!("guess{i}"), "password1").await);
    }
    let budget = BUDGET as usize;
    assert_eq!(replies[..budget], vec![INVALID; budget]);
    assert_eq!(replies[budget..], vec![BLOCKED; 50 - budget]);
    // Even the right password is refused while the address is blocked.
    assert_eq!(
        attempt(GUESSER, servers[0].local_addr(), "carol", "s3cret").await,
        BLOCKED
    );
    for server in servers {
        assert_eq!(
            attempt(OTHER, server.local_addr(), "carol", "s3cret").await,
            SUCCESS
        );
    }
}

#[tokio::test]
async fn memory_limiter_blocks_a_guessing_address_but_not_another() {
    let limiter = Arc::new(MemoryLimiter::new(BUDGET, Duration::from_secs(60)));
    let server = start(Sink, limited_config(limiter)).await;
    guessing_loop_is_blocked(&[&server]).await;
    server.shutdown().await;
}

/// Failures against one user name from many addresses block that user everywhere; the
/// limiter is asked as soon as the name is known, before the password is checked.
#[tokio::test]
async fn guesses_at_one_user_block_that_user_from_any_address() {
    let limiter = Arc::new(MemoryLimiter::new(BUDGET, Duration::from_secs(60)));
    let server = start(Sink, limited_config(limiter)).await;
    for i in 0..BUDGET {
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, i as u8 + 1));
        assert_eq!(
            attempt(from, server.local_addr(), "carol", "wrong").await,
            INVALID
        );
    }
    assert_eq!(
        attempt(OTHER, server.local_addr(), "carol", "s3cret").await,
        BLOCKED
    );
    server.shutdown().await;
}

/// A mechanism asks about the user as soon as it knows the name: a blocked user gets 454
/// before SCRAM's server-first, so the exchange reveals nothing about the password.
#[tokio::test]
async fn scram_asks_the_limiter_before_any_proof() {
    use smtp_core::auth::mechanisms::Scram;
    let users = Arc::new(StaticUsers::new().user("carol", "s3cret"));
    let limiter = Arc::new(MemoryLimiter::new(1, Duration::from_secs(60)));
    let server = smtp_core::Server::new(Sink, limited_config(limiter))
        .mechanism(Scram::sha256(users))
        .unwrap()
        .listen("127.0.0.1:0")
        .await
        .unwrap()
        .start();
    let first = format!("AUTH SCRAM-SHA-256 {}", b64("n,,n=carol,r=abcdef"));
    let mut c = Client::connect_raw_from(GUESSER, server.local_addr()).await;
    c.reply().await;
    c.cmd("EHLO client.example", 250).await;
    c.cmd(&first, 334).await;
    c.expect(&b64("c=biws,r=abcdef,p=AAAA"), INVALID).await;
    let mut c = Client::connect_raw_from(OTHER, server.local_addr()).await;
    c.reply().await;
    c.cmd("EHLO client.example", 250).await;
    c.expect(&first, BLOCKED).await;
    server.shutdown().await;
}

/// On one connection, failure replies come after `d`, `2d`, `4d`… capped at the maximum.
#[tokio::test]
async fn failure_replies_are_delayed_more_each_time() {
    let config = {
        let mut config = auth_config();
        config.authenticator = Some(StaticUsers::new().user("carol", "s3cret").into());
        config.auth_failure_delay = Duration::from_millis(100);
        config.auth_failure_delay_max = Duration::from_millis(250);
        config.max_auth_failures = Some(4);
        config
    };
    let server = start(Sink, config).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let line = format!("AUTH PLAIN {}", plain("", "carol", "wrong"));
    let mut took = Vec::new();
    for reply in [
        INVALID,
        INVALID,
        INVALID,
        "421 4.7.0 Too many authentication failures",
    ] {
        let start = Instant::now();
        c.expect(&line, reply).await;
        took.push(start.elapsed());
    }
    for (elapsed, min) in took.iter().zip([100, 200, 250, 250]) {
        assert!(
            *elapsed >= Duration::from_millis(min),
            "{took:?} should be at least 100, 200, 250, 250 ms"
        );
    }
    assert!(
        took[3] < Duration::from_millis(1000),
        "{took:?}: not capped"
    );
    server.shutdown().await;
}

/// Everything logged by this process, which must be the test's own (see [`isolated`]). A
/// global subscriber, not a scoped one: tracing caches per call site whether anyone listens,
/// which scoped subscribers on parallel test threads would race on.
fn global_logs() -> &'static SharedBuf {
    static LOGS: std::sync::OnceLock<SharedBuf> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = SharedBuf::default();
        tracing::subscriber::set_global_default(logs.subscriber()).expect("global subscriber");
        logs
    })
}

/// One warning per failure, with the address, the mechanism and a fingerprint of the user
/// name, and never the password.
#[tokio::test]
async fn each_failure_logs_one_line_for_fail2ban() {
    if !isolated("auth_limiter::each_failure_logs_one_line_for_fail2ban").await {
        return;
    }
    let logs = global_logs();
    // An address of its own, to pick this test's lines out of the shared log.
    let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    let limiter = Arc::new(MemoryLimiter::new(1, Duration::from_secs(60)));
    let server = start(Sink, limited_config(limiter)).await;
    assert_eq!(
        attempt(from, server.local_addr(), "mal\"lory", "hunter2").await,
        INVALID
    );
    assert_eq!(
        attempt(from, server.local_addr(), "carol", "hunter2").await,
        BLOCKED
    );
    server.shutdown().await;
    let text = logs.text();
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("AUTH failed") && l.contains("peer_ip=127.0.0.3 "))
        .collect();
    assert_eq!(failures.len(), 2, "{text}");
    assert!(failures[0].contains(" WARN "), "{}", failures[0]);
    let (head, tail) = failures[0]
        .split_once("user=#")
        .unwrap_or_else(|| panic!("no user fingerprint: {}", failures[0]));
    assert!(
        head.ends_with(
            "smtpd::auth: AUTH failed peer_ip=127.0.0.3 client=127.0.0.3/32 mechanism=PLAIN "
        ),
        "{}",
        failures[0]
    );
    // The name is logged as a fingerprint: a user-name field may hold a mistyped password.
    assert!(tail[..8].bytes().all(|b| b.is_ascii_hexdigit()), "{tail}");
    assert_eq!(&tail[8..], " failures=1 blocked=false");
    assert!(!text.contains("lory"), "{text}");
    assert!(
        failures[1].contains(
            "peer_ip=127.0.0.3 client=127.0.0.3/32 mechanism=PLAIN user=- failures=1 blocked=true"
        ),
        "{}",
        failures[1]
    );
    assert!(!text.contains("hunter2"), "{text}");
}

// ---- Redis -----------------------------------------------------------------------------------

/// A `redis-server` on a free loopback port, killed on drop.
pub(crate) struct RedisServer {
    _child: KillOnDrop,
    pub(crate) url: String,
}

impl RedisServer {
    pub(crate) async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = RedisServer {
            _child: KillOnDrop(child),
            url: format!("redis://127.0.0.1:{port}/"),
        };
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }
}

/// Two servers (as behind a load balancer) share one Redis: guesses spread over both are
/// counted together.
#[tokio::test]
async fn redis_limiter_is_shared_by_two_servers() {
    if !tools::available("redis-server") {
        return;
    }
    let redis = RedisServer::start().await;
    let mut servers = Vec::new();
    for _ in 0..2 {
        let limiter =
            smtp_core::auth::RedisLimiter::connect(&redis.url, BUDGET, Duration::from_secs(60))
                .await
                .expect("connect to Redis");
        servers.push(start(Sink, limited_config(limiter)).await);
    }
    guessing_loop_is_blocked(&[&servers[0], &servers[1]]).await;
    for server in servers {
        server.shutdown().await;
    }
}

/// The Redis window expires by itself.
#[tokio::test]
async fn redis_window_expires() {
    if !tools::available("redis-server") {
        return;
    }
    use smtp_core::auth::LimitKey;
    let redis = RedisServer::start().await;
    let limiter = smtp_core::auth::RedisLimiter::connect(&redis.url, 2, Duration::from_millis(300))
        .await
        .expect("connect to Redis")
        .prefix("test:");
    let key = LimitKey::User(b"carol");
    limiter.record_failure(key).await;
    assert!(!limiter.is_blocked(key).await);
    limiter.record_failure(key).await;
    assert!(limiter.is_blocked(key).await);
    assert!(
        !limiter
            .is_blocked(LimitKey::Client(AddrPrefixes::default().prefix_of(GUESSER)))
            .await
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!limiter.is_blocked(key).await);
}
