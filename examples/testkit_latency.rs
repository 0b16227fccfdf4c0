//! What a test pays for a `TestServer`: start one, deliver one message with lettre, wait for
//! it, drop the server; 100 times. Prints the median and the 90th percentile.
//!
//! `cargo run --example testkit_latency` (the debug build, as `cargo test` runs it).

use std::time::{Duration, Instant};

use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use smtp_core::testing::TestServer;

const RUNS: usize = 100;

async fn one() -> Duration {
    let started = Instant::now();
    let server = TestServer::start().await;
    let email = Message::builder()
        .from("app@example.com".parse().expect("sender"))
        .to("ann@example.com".parse().expect("recipient"))
        .subject("Latency")
        .body("Hello\r\n".to_owned())
        .expect("message");
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr().port())
        .build()
        .send(email)
        .await
        .expect("sent");
    server
        .wait_for(1, Duration::from_secs(5))
        .await
        .expect("received");
    drop(server);
    started.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        times.push(one().await);
    }
    times.sort();
    println!(
        "TestServer start + one lettre message, {RUNS} runs: median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        times[RUNS / 2].as_secs_f64() * 1e3,
        times[RUNS * 9 / 10].as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3,
    );
}
