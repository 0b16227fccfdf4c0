//! What one AUTH failure costs [`MemoryLimiter`] with 1 000, 10 000 and 100 000 keys in its
//! table, filling it and once it is full. A measurement, not a test: it prints and asserts
//! nothing. Run with `cargo bench -p smtp-core --bench limiter`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use smtp_core::auth::{AuthLimiter, LimitKey, MemoryLimiter};

const ROUNDS: usize = 200_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    println!("ns per call; the table holds at most `keys` keys and is full after filling");
    println!(
        "{:>8} {:>10} {:>12} {:>12} {:>12}",
        "keys", "filling", "tracked key", "new key", "is_blocked"
    );
    for keys in [1_000, 10_000, 100_000] {
        let row = runtime.block_on(measure(keys));
        let cells: Vec<String> = row.iter().map(|ns| format!("{ns:>12.0}")).collect();
        println!("{keys:>8} {:>10.0} {}", row[0], cells[1..].join(" "));
    }
}

/// ns per failure while filling, per failure of a key in the full table, per failure of a
/// key not in it (counted in a shared bucket), and per `is_blocked` of such a key.
async fn measure(keys: usize) -> [f64; 4] {
    let limiter = MemoryLimiter::new(10, Duration::from_secs(600)).max_keys(keys);
    let junk: Vec<Vec<u8>> = (0..keys).map(|i| format!("junk{i}").into_bytes()).collect();
    let fresh: Vec<Vec<u8>> = (0..ROUNDS)
        .map(|i| format!("new{i}").into_bytes())
        .collect();
    let filling = per_call(keys, async {
        for user in &junk {
            limiter.record_failure(LimitKey::User(user)).await;
        }
    })
    .await;
    let tracked = per_call(ROUNDS, async {
        for i in 0..ROUNDS {
            let user = &junk[i % keys];
            limiter.record_failure(LimitKey::User(user)).await;
        }
    })
    .await;
    let new = per_call(ROUNDS, async {
        for user in &fresh {
            limiter.record_failure(LimitKey::User(user)).await;
        }
    })
    .await;
    let blocked = per_call(ROUNDS, async {
        for user in &fresh {
            black_box(limiter.is_blocked(LimitKey::User(user)).await);
        }
    })
    .await;
    [filling, tracked, new, blocked]
}

async fn per_call(calls: usize, work: impl Future<Output = ()>) -> f64 {
    let start = Instant::now();
    work.await;
    start.elapsed().as_nanos() as f64 / calls as f64
}
