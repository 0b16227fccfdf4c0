//! The in-process limiter: a bounded table of fixed windows that fails closed when full.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{AuthLimiter, IpPrefix, LimitKey};

/// How many shared windows count the users that find the table full.
const USER_OVERFLOW_BUCKETS: usize = 64;
/// The prefixes clients are counted by when the table is full and theirs is not in it.
const COARSE_V4: u8 = 24;
const COARSE_V6: u8 = 48;

/// The in-process [`AuthLimiter`]: at most `max_failures` failures per key in a fixed
/// `window` that starts with the key's first failure; the key is blocked from then until the
/// window ends.
///
/// # Memory, and what a full table does
///
/// The table holds at most `max_keys` keys (client prefixes and user names together; default
/// 100 000), at most `max_keys / 16` coarse client prefixes, and 66 fixed counters. A user
/// name is held as a 64-bit keyed hash, so an entry's size does not depend on the name. A key
/// leaves the table when its window ends. While the table is full:
///
/// - keys already in it keep their own counts, and nothing else counts against them;
/// - a new client prefix is counted by its /24 (IPv4) or /48 (IPv6), or by itself if it is
///   shorter, in the coarse part of the table; when that is full too, by one counter shared
///   by all such IPv4 clients, and one for IPv6;
/// - a new user name is counted by one of 64 counters, chosen by a keyed hash of the name.
///
/// These buckets block like any key, until their own window ends. So while the table is full,
/// a client or user that is not in it may be refused (`454 4.7.0`), even with the right
/// password, for failures that are not its own: a client for those of its /24 or /48 (or,
/// once the coarse part is full, of every other new client of its family), a user for those
/// of the names that share its counter (one in 64 of the names not in the table). Filling the
/// table first gains a guesser nothing: every failure still counts, only more coarsely. Once
/// the table has room again, a new key gets its own entry, but is refused while a bucket
/// that would have counted it is blocked (else a guesser counted coarsely would get a fresh
/// budget as soon as the junk before it left the table).
///
/// Each call costs O(1) amortised: windows leave from the front of a queue in the order they
/// started, which is the order they end, never by a scan of the table.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_failures: u32,
    window: Duration,
    max_keys: usize,
    hasher: RandomState,
    table: Mutex<Table>,
}

impl MemoryLimiter {
    /// At most `max_failures` failures per client prefix and per user in each `window`.
    pub fn new(max_failures: u32, window: Duration) -> MemoryLimiter {
        MemoryLimiter {
            max_failures,
            window,
            max_keys: 100_000,
            hasher: RandomState::new(),
            table: Mutex::new(Table::default()),
        }
    }

    /// Tracks at most `max_keys` client prefixes and user names, and a sixteenth as many
    /// coarser prefixes, before counting new keys in shared buckets (see above). Default is
    /// 100 000.
    pub fn max_keys(mut self, max_keys: usize) -> MemoryLimiter {
        self.max_keys = max_keys;
        self
    }

    fn lock(&self, now: Instant) -> std::sync::MutexGuard<'_, Table> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.expire(now, self.window);
        table
    }

    /// The key's own entry in the table.
    fn exact(&self, key: LimitKey<'_>) -> Key {
        match key {
            LimitKey::Client(prefix) => Key::Client(prefix),
            LimitKey::User(user) => Key::User(self.hasher.hash_one(user)),
        }
    }

    /// Where a failure of `key` is counted, given what the table holds now.
    fn bucket(&self, table: &Table, key: LimitKey<'_>) -> Bucket {
        let exact = self.exact(key);
        if table.has_room_for(exact, self.max_keys) {
            return Bucket::Table(exact);
        }
        match exact {
            Key::Client(prefix) => {
                let coarse = Key::Coarse(coarse_prefix(prefix));
                if table.has_room_for(coarse, self.max_keys / 16) {
                    return Bucket::Table(coarse);
                }
                Bucket::SharedClients(family(prefix))
            }
            Key::User(hash) => Bucket::SharedUsers(user_bucket(hash)),
            Key::Coarse(_) => unreachable!("an exact key is a client or a user"),
        }
    }

    /// The failures of a key the table does not hold: the most of any bucket that counts it
    /// while the table is full. They go on blocking it once the table has room again, until
    /// their windows end, or a guesser counted there would get a fresh budget as soon as
    /// older keys leave the table.
    fn overflow_failures(&self, table: &Table, exact: Key, now: Instant) -> u32 {
        match exact {
            Key::Client(prefix) => {
                let coarse = table.failures(Key::Coarse(coarse_prefix(prefix)));
                let shared = table.shared_clients[family(prefix)].failures(now, self.window);
                coarse.max(shared)
            }
            Key::User(hash) => table.shared_users[user_bucket(hash)].failures(now, self.window),
            Key::Coarse(_) => 0,
        }
    }
}

impl Default for MemoryLimiter {
    /// 10 failures per 10 minutes.
    fn default() -> MemoryLimiter {
        MemoryLimiter::new(10, Duration::from_secs(600))
    }
}

impl AuthLimiter for MemoryLimiter {
    async fn is_blocked(&self, key: LimitKey<'_>) -> bool {
        let now = Instant::now();
        let table = self.lock(now);
        let exact = self.exact(key);
        let failures = match table.failures.get(&exact) {
            Some(&failures) => failures,
            None => self.overflow_failures(&table, exact, now),
        };
        failures >= self.max_failures
    }

    async fn record_failure(&self, key: LimitKey<'_>) {
        let now = Instant::now();
        let mut table = self.lock(now);
        match self.bucket(&table, key) {
            Bucket::Table(key) => table.record(key, now),
            Bucket::SharedClients(i) => table.shared_clients[i].record(now, self.window),
            Bucket::SharedUsers(i) => table.shared_users[i].record(now, self.window),
        }
    }
}

fn coarse_prefix(prefix: IpPrefix) -> IpPrefix {
    prefix.shortened(COARSE_V4, COARSE_V6)
}

/// The index of a client's shared counter: 0 for IPv4, 1 for IPv6.
fn family(prefix: IpPrefix) -> usize {
    usize::from(prefix.addr().is_ipv6())
}

fn user_bucket(hash: u64) -> usize {
    (hash % USER_OVERFLOW_BUCKETS as u64) as usize
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Client(IpPrefix),
    Coarse(IpPrefix),
    User(u64),
}

impl Key {
    /// Which part of the table holds the key: 0 the exact keys, 1 the coarse prefixes.
    fn part(self) -> usize {
        usize::from(matches!(self, Key::Coarse(_)))
    }
}

enum Bucket {
    Table(Key),
    /// Index 0 counts IPv4, 1 IPv6.
    SharedClients(usize),
    SharedUsers(usize),
}

#[derive(Debug)]
struct Table {
    failures: HashMap<Key, u32>,
    /// Every key of `failures` once, with the start of its window: the order windows end in.
    by_start: VecDeque<(Instant, Key)>,
    /// How many keys each [part](Key::part) holds.
    lens: [usize; 2],
    shared_clients: [SharedWindow; 2],
    shared_users: [SharedWindow; USER_OVERFLOW_BUCKETS],
}

impl Default for Table {
    fn default() -> Table {
        Table {
            failures: HashMap::new(),
            by_start: VecDeque::new(),
            lens: [0; 2],
            shared_clients: [SharedWindow::default(); 2],
            shared_users: [SharedWindow::default(); USER_OVERFLOW_BUCKETS],
        }
    }
}

impl Table {
    /// Drops the windows that have ended. Each key is queued once, so this is O(1) amortised.
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some(&(start, key)) = self.by_start.front() {
            if now.duration_since(start) < window {
                break;
            }
            self.by_start.pop_front();
            self.failures.remove(&key);
            self.lens[key.part()] -= 1;
        }
    }

    fn has_room_for(&self, key: Key, max: usize) -> bool {
        self.lens[key.part()] < max || self.failures.contains_key(&key)
    }

    fn failures(&self, key: Key) -> u32 {
        self.failures.get(&key).copied().unwrap_or(0)
    }

    fn record(&mut self, key: Key, now: Instant) {
        let failures = self.failures.entry(key).or_insert(0);
        if *failures == 0 {
            self.by_start.push_back((now, key));
            self.lens[key.part()] += 1;
        }
        *failures = failures.saturating_add(1);
    }
}

/// A window outside the table, restarted by the first failure after it ends.
#[derive(Clone, Copy, Debug, Default)]
struct SharedWindow {
    start: Option<Instant>,
    failures: u32,
}

impl SharedWindow {
    fn failures(&self, now: Instant, window: Duration) -> u32 {
        match self.start {
            Some(start) if now.duration_since(start) < window => self.failures,
            _ => 0,
        }
    }

    fn record(&mut self, now: Instant, window: Duration) {
        if self.failures(now, window) == 0 {
            self.start = Some(now);
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::auth::limit::{AddrPrefixes, normalize_user};

    const BUDGET: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(600);

    fn client(addr: &str) -> LimitKey<'static> {
        LimitKey::Client(AddrPrefixes::default().prefix_of(addr.parse().unwrap()))
    }

    /// The `i`th address of the /64 `2001:db8:0:<subnet>::/64`, a /48 of its own per `site`.
    fn v6(site: u16, subnet: u16, i: u64) -> LimitKey<'static> {
        let addr = (u128::from(0x2001_0db8_u32) << 96)
            | (u128::from(site) << 80)
            | (u128::from(subnet) << 64)
            | u128::from(i);
        LimitKey::Client(AddrPrefixes::default().prefix_of(Ipv6Addr::from(addr).into()))
    }

    async fn fail(limiter: &MemoryLimiter, key: LimitKey<'_>, times: u32) {
        for _ in 0..times {
            limiter.record_failure(key).await;
        }
    }

    /// How many keys each part of the table holds, and how many windows are queued.
    fn sizes(limiter: &MemoryLimiter) -> ([usize; 2], usize) {
        let table = limiter.table.lock().unwrap();
        assert_eq!(table.failures.len(), table.by_start.len());
        (table.lens, table.failures.len())
    }

    fn junk_user(i: usize) -> Vec<u8> {
        format!("junk{i}").into_bytes()
    }

    #[tokio::test(start_paused = true)]
    async fn blocks_after_the_budget_and_forgets_after_the_window() {
        let limiter = MemoryLimiter::new(2, Duration::from_secs(60));
        let ip = client("192.0.2.1");
        assert!(!limiter.is_blocked(ip).await);
        limiter.record_failure(ip).await;
        assert!(!limiter.is_blocked(ip).await);
        tokio::time::sleep(Duration::from_secs(30)).await;
        limiter.record_failure(ip).await;
        assert!(limiter.is_blocked(ip).await);
        assert!(!limiter.is_blocked(client("192.0.2.2")).await);
        assert!(!limiter.is_blocked(LimitKey::User(b"192.0.2.1")).await);
        // The window started with the first failure.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!limiter.is_blocked(ip).await);
        limiter.record_failure(ip).await;
        assert!(!limiter.is_blocked(ip).await);
    }

    /// An IPv6 host that takes a new address of its /64 for every guess gets one budget.
    #[tokio::test]
    async fn addresses_of_one_ipv6_subnet_share_one_budget() {
        let limiter = MemoryLimiter::new(BUDGET, WINDOW);
        let mut blocked = Vec::new();
        for i in 0..200 {
            let key = v6(1, 2, i * 0x1_0001 + 7);
            blocked.push(limiter.is_blocked(key).await);
            limiter.record_failure(key).await;
        }
        assert_eq!(blocked.iter().filter(|b| !**b).count(), BUDGET as usize);
        assert!(blocked[BUDGET as usize..].iter().all(|b| *b));
        assert!(limiter.is_blocked(v6(1, 2, u64::MAX)).await);
        assert!(!limiter.is_blocked(v6(1, 3, 7)).await);
        assert!(!limiter.is_blocked(v6(2, 2, 7)).await);
    }

    /// One password over 100 names, from a new address of one /64 each time: no name fails
    /// twice, but the prefix is blocked after the budget.
    #[tokio::test]
    async fn spraying_from_rotating_addresses_blocks_the_prefix() {
        let limiter = MemoryLimiter::new(BUDGET, WINDOW);
        let mut answered = 0;
        for i in 0..100 {
            let (client, user) = (v6(1, 2, i), format!("user{i}"));
            if limiter.is_blocked(client).await {
                continue;
            }
            assert!(!limiter.is_blocked(LimitKey::User(user.as_bytes())).await);
            answered += 1;
            limiter.record_failure(client).await;
            limiter
                .record_failure(LimitKey::User(user.as_bytes()))
                .await;
        }
        assert_eq!(answered, BUDGET);
        assert!(!limiter.is_blocked(v6(1, 3, 0)).await);
    }

    #[tokio::test]
    async fn ipv4_addresses_count_one_by_one() {
        let limiter = MemoryLimiter::new(BUDGET, WINDOW);
        fail(&limiter, client("192.0.2.7"), BUDGET).await;
        assert!(limiter.is_blocked(client("192.0.2.7")).await);
        assert!(limiter.is_blocked(client("::ffff:192.0.2.7")).await);
        assert!(!limiter.is_blocked(client("192.0.2.8")).await);
    }

    #[tokio::test]
    async fn spellings_of_one_user_share_one_budget() {
        let limiter = MemoryLimiter::new(4, WINDOW);
        let spellings = [
            "Alice",
            "alice",
            "ALICE",
            "jo bloggs",
            "Jo\u{A0}Bloggs",
            "JO BLOGGS",
        ];
        for spelling in spellings {
            let user = normalize_user(spelling.as_bytes());
            limiter.record_failure(LimitKey::User(&user)).await;
        }
        for blocked in [false, true] {
            let alice = normalize_user(b"aLiCe");
            let jo = normalize_user("jo\u{2003}bloggs".as_bytes());
            assert_eq!(limiter.is_blocked(LimitKey::User(&alice)).await, blocked);
            assert_eq!(limiter.is_blocked(LimitKey::User(&jo)).await, blocked);
            limiter.record_failure(LimitKey::User(&alice)).await;
            limiter.record_failure(LimitKey::User(&jo)).await;
        }
        assert!(!limiter.is_blocked(LimitKey::User(b"alicia")).await);
    }

    /// Regression: a full table used to stop counting new keys, so that 100 000 failures on
    /// junk names bought unlimited guesses against a real account for the rest of the window.
    #[tokio::test]
    async fn a_table_full_of_junk_still_blocks_a_guesser() {
        let limiter = MemoryLimiter::new(BUDGET, WINDOW).max_keys(100);
        // A user and a client that failed before the junk keep their own counts.
        fail(&limiter, LimitKey::User(b"dave"), 1).await;
        fail(&limiter, client("198.51.100.1"), 1).await;
        for i in 0..49 {
            limiter.record_failure(LimitKey::User(&junk_user(i))).await;
            limiter.record_failure(v6(i as u16, 0, 1)).await;
        }
        assert_eq!(sizes(&limiter), ([100, 0], 100));
        assert!(!limiter.is_blocked(LimitKey::User(b"dave")).await);
        assert!(!limiter.is_blocked(client("198.51.100.1")).await);

        // A new guesser (a /64 of a new /48) against a user the table has never seen.
        let (carol, guesser) = (LimitKey::User(b"carol"), v6(5000, 1, 1));
        for _ in 0..BUDGET {
            assert!(!limiter.is_blocked(carol).await);
            assert!(!limiter.is_blocked(guesser).await);
            limiter.record_failure(carol).await;
            limiter.record_failure(guesser).await;
        }
        assert!(limiter.is_blocked(carol).await);
        assert!(limiter.is_blocked(guesser).await);
        // The guesser's whole /48 is blocked with it; other clients are not.
        assert!(limiter.is_blocked(v6(5000, 2, 1)).await);
        assert!(!limiter.is_blocked(v6(5001, 1, 1)).await);

        fail(&limiter, LimitKey::User(b"dave"), BUDGET - 2).await;
        assert!(!limiter.is_blocked(LimitKey::User(b"dave")).await);
        fail(&limiter, LimitKey::User(b"dave"), 1).await;
        assert!(limiter.is_blocked(LimitKey::User(b"dave")).await);
    }

    /// With the coarse prefixes full too, new clients share one counter per family.
    #[tokio::test]
    async fn a_full_coarse_table_counts_new_clients_together() {
        let limiter = MemoryLimiter::new(BUDGET, WINDOW).max_keys(32);
        fail(&limiter, client("198.51.100.1"), 1).await;
        // 31 prefixes fill the table, 2 more its coarse part.
        for site in 0..33 {
            limiter.record_failure(v6(site, 0, 1)).await;
        }
        // Each guess from a new /48: one failure each, counted together.
        for site in 1000..1000 + BUDGET as u16 {
            assert!(!limiter.is_blocked(v6(site, 0, 1)).await);
            limiter.record_failure(v6(site, 0, 1)).await;
        }
        assert!(limiter.is_blocked(v6(2000, 0, 1)).await);
        assert!(!limiter.is_blocked(client("192.0.2.1")).await);
        assert!(!limiter.is_blocked(client("198.51.100.1")).await);
        assert_eq!(sizes(&limiter), ([32, 2], 34));
    }

    /// Spraying over many names of a full table blocks their shared counters.
    #[tokio::test]
    async fn spraying_over_a_full_table_is_counted() {
        let limiter = MemoryLimiter::new(BUDGET, WINDOW).max_keys(10);
        for i in 0..10 {
            limiter.record_failure(LimitKey::User(&junk_user(i))).await;
        }
        let sprayed = USER_OVERFLOW_BUCKETS * BUDGET as usize * 4;
        for i in 10..10 + sprayed {
            limiter.record_failure(LimitKey::User(&junk_user(i))).await;
        }
        let mut blocked = 0;
        for i in 0..1_000 {
            let name = format!("user{i}");
            blocked += usize::from(limiter.is_blocked(LimitKey::User(name.as_bytes())).await);
        }
        assert!(blocked > 900, "{blocked} of 1000 blocked");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_empties_as_windows_end() {
        let limiter = MemoryLimiter::new(BUDGET, WINDOW).max_keys(100);
        for i in 0..100 {
            limiter.record_failure(LimitKey::User(&junk_user(i))).await;
            tokio::time::sleep(WINDOW / 200).await;
        }
        // The windows of the first 51 have ended a quarter window after the first one did.
        tokio::time::sleep(WINDOW * 3 / 4).await;
        fail(&limiter, LimitKey::User(b"erin"), 1).await;
        assert_eq!(sizes(&limiter), ([50, 0], 50));
        tokio::time::sleep(WINDOW).await;
        assert!(!limiter.is_blocked(LimitKey::User(b"erin")).await);
        assert_eq!(sizes(&limiter), ([0, 0], 0));
    }

    /// Regression: a guesser counted in a bucket got a fresh budget as soon as the junk that
    /// filled the table before it expired, long before its own bucket's window ended.
    #[tokio::test(start_paused = true)]
    async fn a_bucket_blocks_its_keys_after_the_table_has_room() {
        let limiter = MemoryLimiter::new(BUDGET, WINDOW).max_keys(16);
        for i in 0..16 {
            limiter.record_failure(v6(i, 0, 1)).await;
        }
        tokio::time::sleep(WINDOW / 2).await;
        let (carol, guesser) = (LimitKey::User(b"carol"), v6(500, 1, 1));
        fail(&limiter, carol, BUDGET).await;
        fail(&limiter, guesser, BUDGET).await;
        assert_eq!(sizes(&limiter), ([16, 1], 17));
        tokio::time::sleep(WINDOW / 2).await;
        assert!(limiter.is_blocked(carol).await);
        assert_eq!(sizes(&limiter), ([0, 1], 1));
        assert!(limiter.is_blocked(v6(500, 2, 1)).await);
        assert!(!limiter.is_blocked(v6(501, 1, 1)).await);
        tokio::time::sleep(WINDOW / 2).await;
        assert!(!limiter.is_blocked(carol).await);
        assert!(!limiter.is_blocked(guesser).await);
    }

    #[tokio::test(start_paused = true)]
    async fn shared_counters_have_windows_too() {
        let limiter = MemoryLimiter::new(2, WINDOW).max_keys(0);
        fail(&limiter, LimitKey::User(b"frank"), 2).await;
        fail(&limiter, client("192.0.2.1"), 2).await;
        assert!(limiter.is_blocked(LimitKey::User(b"frank")).await);
        assert!(limiter.is_blocked(client("192.0.2.99")).await);
        tokio::time::sleep(WINDOW).await;
        assert!(!limiter.is_blocked(LimitKey::User(b"frank")).await);
        assert!(!limiter.is_blocked(client("192.0.2.99")).await);
        fail(&limiter, LimitKey::User(b"frank"), 1).await;
        assert!(!limiter.is_blocked(LimitKey::User(b"frank")).await);
    }
}
