//! Credential guessing played as an attacker plays it, through real servers over real
//! sockets. The test is a trusted loopback proxy: it writes a PROXY header (v1 or v2) naming
//! any client address, IPv6 included, then speaks SMTP. Each case runs against one
//! `MemoryLimiter` shared by two servers and against a real Redis shared by two servers.
//!
//! The limiter counts failures per client prefix (`Config::client_prefixes`: /32 for IPv4,
//! /64 for IPv6) and per normalised user name, with one budget for both (`BUDGET` here).
//! redis-server (Debian package `redis-server`) is required under CI (`CI=true`).

use std::borrow::Cow;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::auth_limiter::RedisServer;
use crate::support::*;
use smtp_core::auth::{
    AddrPrefixes, AuthLimiter, LimitKey, MemoryLimiter, RedisLimiter, SharedLimiter, normalize_user,
};
use smtp_core::handlers::Sink;
use smtp_core::{
    AuthData, AuthResult, Authenticator, Config, Envelope, ProxyProtocol, ServerHandle, Session,
    StaticUsers,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SUCCESS: &str = "235 2.7.0 Authentication successful";
const INVALID: &str = "535 5.7.8 Authentication credentials invalid";
const BLOCKED: &str = "454 4.7.0 Temporary authentication failure";
const TOO_MANY: &str = "421 4.7.0 Too many connections from your address";
/// The one password of the spraying attacks.
const SPRAYED: &str = "Summer2026!";
const BUDGET: usize = 5;
const WINDOW: Duration = Duration::from_secs(600);
/// How long a whole test may take: a few hundred connections on loopback.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Address `host` of the /64 `2001:db8:<site>:<subnet>::/64`, in the /48 `2001:db8:<site>::/48`.
fn v6(site: u16, subnet: u16, host: u64) -> IpAddr {
    let addr = (0x2001_0db8_u128 << 96)
        | (u128::from(site) << 80)
        | (u128::from(subnet) << 64)
        | u128::from(host);
    Ipv6Addr::from(addr).into()
}

/// The `i`th of many addresses in one /64, scattered over its 64 host bits.
fn host(i: usize) -> u64 {
    (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A PROXY header naming `from` (IPv6) as the client: v1 text for even host bits, v2 binary
/// for odd ones, so that both carry the attackers' addresses.
fn proxy_header(from: IpAddr) -> Vec<u8> {
    let IpAddr::V6(src) = from else {
        return format!("PROXY TCP4 {from} 192.0.2.25 40000 25\r\n").into_bytes();
    };
    let dst: Ipv6Addr = "2001:db8:ffff::25".parse().unwrap();
    if src.octets()[15] % 2 == 0 {
        return format!("PROXY TCP6 {src} {dst} 40000 25\r\n").into_bytes();
    }
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    header.extend_from_slice(&src.octets());
    header.extend_from_slice(&dst.octets());
    header.extend_from_slice(&40000u16.to_be_bytes());
    header.extend_from_slice(&25u16.to_be_bytes());
    header
}

/// A connection through the proxy from `from`, greeted: the greeting is returned instead
/// when it is not a 220.
async fn connect_as(server: SocketAddr, from: IpAddr) -> Result<Client, String> {
    let mut c = Client::connect_raw(server).await;
    c.send(&proxy_header(from)).await;
    let greeting = c.reply().await.join("\n");
    match greeting.starts_with("220 ") {
        true => Ok(c),
        false => Err(greeting),
    }
}

/// One connection from `from`: EHLO, `AUTH PLAIN` as `user`, QUIT; the reply to AUTH.
async fn attempt(server: SocketAddr, from: IpAddr, user: &str, password: &str) -> String {
    let mut c = match connect_as(server, from).await {
        Ok(c) => c,
        Err(greeting) => return greeting,
    };
    c.cmd("EHLO client.example", 250).await;
    c.send(format!("AUTH PLAIN {}\r\n", plain("", user, password)).as_bytes())
        .await;
    let reply = c.reply().await.join("\n");
    c.cmd("QUIT", 221).await;
    reply
}

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("the test took too long");
}

/// The users of every case. The attackers never learn a password.
fn users() -> StaticUsers {
    StaticUsers::new()
        .user("carol", "s3cret")
        .user("dave", "d4ve-pw")
        .user("alice", "w0nderland")
}

/// A server behind the trusted loopback proxy, with no delay and no per-connection cap on
/// failures (every guess is a connection of its own here).
fn guarded_config(limiter: SharedLimiter) -> Config {
    let mut config = auth_config();
    config.authenticator = Some(users().into());
    config.auth_limiter = Some(limiter);
    config.max_auth_failures = None;
    config.auth_failure_delay = Duration::ZERO;
    // The cap has a test of its own; here a closing connection must not hold a place.
    config.max_connections_per_ip = None;
    config.proxy_protocol = Some(ProxyProtocol {
        trusted: vec!["127.0.0.0/8".parse().unwrap()],
        timeout: Duration::from_secs(5),
    });
    config
}

/// Where the failures are counted: one `MemoryLimiter` or one Redis, shared by every server.
enum Store {
    Memory(Arc<MemoryLimiter>),
    Redis(RedisServer),
}

impl Store {
    fn memory() -> Store {
        Store::Memory(Arc::new(MemoryLimiter::new(BUDGET as u32, WINDOW)))
    }

    /// `None` (the test is skipped) where redis-server cannot run, except under CI.
    async fn redis() -> Option<Store> {
        match tools::available("redis-server") {
            true => Some(Store::Redis(RedisServer::start().await)),
            false => None,
        }
    }

    async fn limiter(&self) -> SharedLimiter {
        match self {
            Store::Memory(limiter) => limiter.clone().into(),
            Store::Redis(redis) => RedisLimiter::connect(&redis.url, BUDGET as u32, WINDOW)
                .await
                .expect("connect to Redis")
                .into(),
        }
    }

    /// Two servers (as behind a load balancer) counting into this store, configured by
    /// [`guarded_config`] and `tweak`.
    async fn servers(&self, tweak: impl Fn(&mut Config)) -> Servers {
        let mut servers = Vec::new();
        for _ in 0..2 {
            let mut config = guarded_config(self.limiter().await);
            tweak(&mut config);
            servers.push(start(Sink, config).await);
        }
        Servers(servers)
    }
}

struct Servers(Vec<ServerHandle>);

impl Servers {
    /// [`attempt`] on the servers in turn.
    async fn attempt(&self, i: usize, from: IpAddr, user: &str, password: &str) -> String {
        let server = self.0[i % self.0.len()].local_addr();
        attempt(server, from, user, password).await
    }

    /// One attempt per `i` of `range`, as `guess(i)` says: `(from, user, password)`.
    async fn guesses(
        &self,
        range: std::ops::Range<usize>,
        guess: impl Fn(usize) -> (IpAddr, String, String),
    ) -> Vec<String> {
        let mut replies = Vec::new();
        for i in range {
            let (from, user, password) = guess(i);
            replies.push(self.attempt(i, from, &user, &password).await);
        }
        replies
    }

    /// Each `(from, user, password)` in turn gets `reply`.
    async fn expect(&self, cases: &[(IpAddr, &str, &str, &str)]) {
        for (i, &(from, user, password, reply)) in cases.iter().enumerate() {
            let got = self.attempt(i, from, user, password).await;
            assert_eq!(got, reply, "{user} from {from}");
        }
    }

    async fn shutdown(self) {
        for server in self.0 {
            server.shutdown().await;
        }
    }
}

/// `replies` are `BUDGET` times 535, then 454 only.
fn blocked_after_the_budget(replies: &[String]) {
    let invalid = replies.iter().take_while(|r| *r == INVALID).count();
    let blocked = replies[invalid..].iter().filter(|r| *r == BLOCKED).count();
    assert_eq!(
        (invalid, blocked),
        (BUDGET, replies.len() - BUDGET),
        "{replies:?}"
    );
}

/// Every case, once with each store.
macro_rules! with_each_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $case() {
                super::bounded(super::$case(super::Store::memory())).await;
            })*
        }
        mod redis {
            $(#[tokio::test]
            async fn $case() {
                if let Some(store) = super::Store::redis().await {
                    super::bounded(super::$case(store)).await;
                }
            })*
        }
    };
}

with_each_store!(
    one_ipv6_v64_is_one_guesser,
    spraying_from_one_v64_blocks_the_v64,
    a_v48_holder_is_stopped_by_counting_v48s,
    spellings_of_a_user_share_one_budget,
    an_authenticator_names_its_own_limit_key,
    a_table_full_of_junk_still_blocks_a_guesser,
    parallel_guesses_overshoot_by_less_than_the_connection_cap,
);

/// 200 connections from 200 addresses of one /64, each guessing carol's password: the /64
/// is one client, blocked after the budget whatever it asks; another /64 logs in. (The
/// guesses spend carol's own budget too, so carol is refused from anywhere for the window:
/// that is what the per-user count is for.)
async fn one_ipv6_v64_is_one_guesser(store: Store) {
    let servers = store.servers(|_| {}).await;
    let replies = servers
        .guesses(0..200, |i| {
            (v6(1, 2, host(i)), "carol".into(), format!("guess{i}"))
        })
        .await;
    blocked_after_the_budget(&replies);
    servers
        .expect(&[
            (v6(1, 2, 0xd), "dave", "d4ve-pw", BLOCKED),
            (v6(1, 3, 0xd), "dave", "d4ve-pw", SUCCESS),
            (v6(9, 9, 1), "carol", "s3cret", BLOCKED),
        ])
        .await;
    servers.shutdown().await;
}

/// Password spraying: one password over 100 user names, each from a new address of the
/// attacker's /64. No name fails twice, but the /64 is blocked after the budget; other
/// clients, even of the same /48, are not.
async fn spraying_from_one_v64_blocks_the_v64(store: Store) {
    let servers = store.servers(|_| {}).await;
    let replies = servers
        .guesses(0..100, |i| {
            (v6(1, 2, host(i)), format!("user{i}"), SPRAYED.into())
        })
        .await;
    blocked_after_the_budget(&replies);
    servers
        .expect(&[
            (v6(1, 2, 1), "dave", "d4ve-pw", BLOCKED),
            (v6(1, 3, 1), "dave", "d4ve-pw", SUCCESS),
            (v6(2, 2, 1), "carol", "s3cret", SUCCESS),
        ])
        .await;
    servers.shutdown().await;
}

/// The trade-off of the prefix length. A /48 holder (65 536 /64s) spraying from a new /64
/// each time meets no limit while clients are counted by /64: every guess is answered.
/// Counted by /48 (`client_prefixes`, `--auth-prefix-v6 48`) it is blocked after the budget,
/// and so is every neighbour in its /48, with the right password; other /48s are not.
async fn a_v48_holder_is_stopped_by_counting_v48s(store: Store) {
    let by_v64 = store.servers(|_| {}).await;
    let spray = |i: usize| (v6(7, i as u16, host(i)), format!("user{i}"), SPRAYED.into());
    let replies = by_v64.guesses(0..100, spray).await;
    assert!(replies.iter().all(|r| r == INVALID), "{replies:?}");
    by_v64.shutdown().await;

    let by_v48 = store
        .servers(|c| c.client_prefixes = AddrPrefixes::new(32, 48).unwrap())
        .await;
    blocked_after_the_budget(&by_v48.guesses(100..200, spray).await);
    let neighbour = v6(7, 0xffff, 1);
    by_v48
        .expect(&[
            (neighbour, "dave", "d4ve-pw", BLOCKED),
            (v6(8, 0, 1), "dave", "d4ve-pw", SUCCESS),
        ])
        .await;
    by_v48.shutdown().await;
}

/// `Alice`, `ALICE`, `alice`, `al<soft hyphen>ice` and full-width `ＡＬＩＣＥ` are one user
/// to the limiter (case-folded, SASLprep'd), each tried from a /64 of its own: one budget.
async fn spellings_of_a_user_share_one_budget(store: Store) {
    let servers = store.servers(|_| {}).await;
    let spellings = ["Alice", "ALICE", "alice", "al\u{AD}ice", "ＡＬＩＣＥ"];
    assert_eq!(spellings.len(), BUDGET);
    for (i, spelling) in spellings.iter().enumerate() {
        let reply = servers
            .attempt(i, v6(3, i as u16, 1), spelling, "guess")
            .await;
        assert_eq!(reply, INVALID, "{spelling}");
    }
    servers
        .expect(&[
            (v6(4, 0, 1), "alice", "w0nderland", BLOCKED),
            (v6(4, 1, 1), "dave", "d4ve-pw", SUCCESS),
        ])
        .await;
    servers.shutdown().await;
}

/// Accounts reachable as `bob` and as `bob@example.com`: the authenticator says so through
/// `limit_key`, and guesses at both spellings share one budget.
struct DomainUsers(StaticUsers);

fn local_part(login: &[u8]) -> &[u8] {
    let domain = b"@example.com";
    match login.len().checked_sub(domain.len()) {
        Some(at) if login[at..].eq_ignore_ascii_case(domain) => &login[..at],
        _ => login,
    }
}

impl Authenticator for DomainUsers {
    async fn authenticate(
        &self,
        _: &Session,
        _: &Envelope,
        _: &str,
        auth_data: &AuthData,
    ) -> AuthResult {
        match auth_data.login_password() {
            Some(lp) if self.0.check(local_part(&lp.login), lp.password.expose()) => {
                AuthResult::success()
            }
            _ => AuthResult::failure(),
        }
    }

    fn limit_key<'u>(&self, user: &'u [u8]) -> Cow<'u, [u8]> {
        normalize_user(local_part(user))
    }
}

async fn an_authenticator_names_its_own_limit_key(store: Store) {
    let servers = store
        .servers(|c| c.authenticator = Some(DomainUsers(users()).into()))
        .await;
    for i in 0..BUDGET {
        let user = ["dave", "Dave@Example.COM", "dave@example.com"][i % 3];
        let reply = servers.attempt(i, v6(5, i as u16, 1), user, "guess").await;
        assert_eq!(reply, INVALID, "{user}");
    }
    servers
        .expect(&[
            (v6(6, 0, 1), "dave@example.com", "d4ve-pw", BLOCKED),
            (v6(6, 1, 1), "carol@example.com", "s3cret", SUCCESS),
            (v6(6, 2, 1), "carol", "s3cret", SUCCESS),
        ])
        .await;
    servers.shutdown().await;
}

/// First 64 junk keys (32 junk user names from 32 new networks) fill a `MemoryLimiter` of
/// 64 keys; then a guesser from yet another network, rotating its /64s, tries carol. The
/// full table still counts it (by its /48, and carol in a shared user counter), so it is
/// blocked after the budget. Dave, who failed once before the junk, keeps his own count and
/// logs in from a new network. In Redis there is no table to fill: the same holds.
async fn a_table_full_of_junk_still_blocks_a_guesser(store: Store) {
    let store = match store {
        Store::Memory(_) => Store::Memory(Arc::new(
            MemoryLimiter::new(BUDGET as u32, WINDOW).max_keys(64),
        )),
        redis => redis,
    };
    let servers = store.servers(|_| {}).await;
    servers
        .expect(&[(v6(0x100, 0, 1), "dave", "typo", INVALID)])
        .await;
    let junk = servers
        .guesses(0..31, |i| {
            (v6(0x200 + i as u16, 0, 1), format!("junk{i}"), "x".into())
        })
        .await;
    assert!(junk.iter().all(|r| r == INVALID), "{junk:?}");
    let replies = servers
        .guesses(0..50, |i| {
            (
                v6(0x5000, i as u16, host(i)),
                "carol".into(),
                format!("guess{i}"),
            )
        })
        .await;
    blocked_after_the_budget(&replies);
    servers
        .expect(&[
            (v6(0x6000, 0, 1), "carol", "s3cret", BLOCKED),
            (v6(0x6001, 0, 1), "dave", "d4ve-pw", SUCCESS),
        ])
        .await;
    servers.shutdown().await;
}

/// `max_connections_per_ip` counts a /64 as one client: three connections from three
/// addresses of one /64 fill its places, a fourth address is refused before the greeting,
/// another /64 is not; a closed connection gives its place back.
#[tokio::test]
async fn the_connection_cap_counts_a_v64_as_one_client() {
    bounded(async {
        let mut config = guarded_config(MemoryLimiter::default().into());
        config.max_connections_per_ip = Some(3);
        let server = start(Sink, config).await;
        let addr = server.local_addr();
        let mut held = Vec::new();
        for i in 0..3 {
            held.push(connect_as(addr, v6(1, 2, host(i))).await.expect("admitted"));
        }
        let refused = connect_as(addr, v6(1, 2, host(3))).await.err();
        assert_eq!(refused.as_deref(), Some(TOO_MANY));
        let other = connect_as(addr, v6(1, 3, 1)).await;
        assert!(other.is_ok(), "{:?}", other.err());

        let mut first = held.remove(0);
        first.cmd("QUIT", 221).await;
        first.expect_closed().await;
        // The server drops the place when the connection's task ends, just after the close.
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        while connect_as(addr, v6(1, 2, host(4))).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the place never came back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop((held, other));
        server.shutdown().await;
    })
    .await;
}

/// Guesses in parallel: a check and its count are not one step, so guesses already past the
/// check when the budget fills are still answered (more so with Redis, a round trip away).
/// The per-client connection cap bounds them: with 8 places, 64 simultaneous guesses from one
/// /64 get at most `BUDGET + 7` answers.
async fn parallel_guesses_overshoot_by_less_than_the_connection_cap(store: Store) {
    let cap = 8;
    let mut config = guarded_config(store.limiter().await);
    config.max_connections_per_ip = Some(cap);
    let server = start(Sink, config).await;
    let addr = server.local_addr();
    let guesses: Vec<_> = (0..64)
        .map(|i| {
            let user = format!("user{i}");
            tokio::spawn(async move { attempt(addr, v6(1, 2, host(i)), &user, "x").await })
        })
        .collect();
    let mut replies = Vec::new();
    for guess in guesses {
        replies.push(guess.await.expect("a guess"));
    }
    let answered = replies.iter().filter(|r| *r == INVALID).count();
    assert!(
        (BUDGET..BUDGET + cap).contains(&answered),
        "{answered} answered: {replies:?}"
    );
    let other = |r: &&String| *r != INVALID && *r != BLOCKED && *r != TOO_MANY;
    assert_eq!(replies.iter().find(other), None);
    server.shutdown().await;
}

/// The failure log line names the counted prefix, so that fail2ban can ban it: the binary
/// behind the proxy, counting by the default /64, then by `--auth-prefix-v6 48`.
#[tokio::test]
async fn the_failure_log_line_names_the_prefix() {
    bounded(async {
        let from = v6(1, 2, 0xabcd);
        for (flags, client) in [
            (&[][..], "client=2001:db8:1:2::/64 "),
            (&["--auth-prefix-v6", "48"][..], "client=2001:db8:1::/48 "),
        ] {
            let mut command = smtpd_command();
            command.args(["--listen", "127.0.0.1:0", "--no-auth-require-tls"]);
            command.args([
                "--auth-user",
                "carol:s3cret",
                "--auth-failure-delay-ms",
                "0",
            ]);
            command.args(["--proxy-protocol", "--proxy-trusted", "127.0.0.0/8"]);
            command.args(flags);
            let smtpd = Smtpd::start(command);
            assert_eq!(
                attempt(smtpd.addr(), from, "carol", "hunter2").await,
                INVALID
            );
            let line = smtpd.stderr_until("AUTH failed").pop().unwrap();
            let peer = "peer_ip=2001:db8:1:2::abcd ";
            assert!(line.contains(&format!("{peer}{client}")), "{line}");
            assert!(!line.contains("hunter2"), "{line}");
            drop(smtpd);
        }
    })
    .await;
}

/// What a key in Redis holds: `GET key` over RESP.
async fn redis_get(url: &str, key: &str) -> Option<u32> {
    let addr = url.trim_start_matches("redis://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("Redis");
    let command = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    stream.write_all(command.as_bytes()).await.unwrap();
    let mut text = String::new();
    while text != "$-1\r\n" && text.matches("\r\n").count() < 2 {
        let mut chunk = [0; 64];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "Redis closed: {text:?}");
        text.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
    }
    match text.split("\r\n").collect::<Vec<_>>()[..] {
        ["$-1", ..] => None,
        [_, count, ..] => Some(count.parse().unwrap()),
        _ => panic!("GET {key}: {text:?}"),
    }
}

/// Redis keys name the counted prefix (`ip:2001:db8:1:2::/64`, what CHANGELOG calls the key
/// change) and the SHA-256 of the normalised user name, never the name.
#[tokio::test]
async fn redis_keys_name_the_prefix_and_hash_the_user() {
    if !tools::available("redis-server") {
        return;
    }
    bounded(async {
        let redis = RedisServer::start().await;
        let limiter = RedisLimiter::connect(&redis.url, BUDGET as u32, WINDOW)
            .await
            .expect("connect to Redis")
            .prefix("test:");
        let client = |prefixes: AddrPrefixes, ip: IpAddr| LimitKey::Client(prefixes.prefix_of(ip));
        let (default, wide) = (AddrPrefixes::default(), AddrPrefixes::new(24, 48).unwrap());
        for i in 0..200 {
            limiter
                .record_failure(client(default, v6(1, 2, host(i))))
                .await;
        }
        limiter.record_failure(client(wide, v6(1, 2, 1))).await;
        for ip in ["192.0.2.7", "::ffff:192.0.2.7"] {
            limiter
                .record_failure(client(default, ip.parse().unwrap()))
                .await;
            limiter
                .record_failure(client(wide, ip.parse().unwrap()))
                .await;
        }
        for spelling in ["Alice", "alice", "al\u{AD}ice"] {
            let user = normalize_user(spelling.as_bytes());
            limiter.record_failure(LimitKey::User(&user)).await;
        }
        let sha256_alice = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90";
        for (key, count) in [
            ("test:ip:2001:db8:1:2::/64", Some(200)),
            ("test:ip:2001:db8:1::/48", Some(1)),
            ("test:ip:192.0.2.7/32", Some(2)),
            ("test:ip:192.0.2.0/24", Some(2)),
            (&format!("test:user:{sha256_alice}"), Some(3)),
            ("test:ip:2001:db8:1:2:0:0:0:1", None),
            ("test:user:alice", None),
        ] {
            assert_eq!(redis_get(&redis.url, key).await, count, "{key}");
        }
    })
    .await;
}
