//! The metrics of issue 16 as an operator sees them: the `smtpd` binary with
//! `--metrics-listen`, scripted dialogues over raw sockets, then `/metrics` fetched with curl
//! and every exposition linted by `promtool check metrics` (Debian's `prometheus` package).

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::tls::{Pki, smtpd_tls_command};
use crate::support::tools::{self, shown};
use crate::support::{Client, Smtpd, TempDir, b64, plain, smtpd_command};

/// The address of `/metrics` that `smtpd` announced on stderr.
pub fn metrics_addr(smtpd: &Smtpd) -> SocketAddr {
    let line = smtpd
        .started
        .iter()
        .find_map(|l| l.strip_prefix("smtpd metrics on http://"))
        .expect("a `smtpd metrics on` line");
    line.trim_end_matches("/metrics")
        .parse()
        .expect("an address")
}

/// Whether curl and promtool run (under `CI=true` they must).
pub fn tools_available() -> bool {
    tools::available("curl") && tools::available("promtool")
}

/// One scrape of `/metrics`, fetched with curl.
pub struct Scrape(String);

impl Scrape {
    /// `GET http://addr/metrics` with curl; panics unless it answers 200.
    pub async fn fetch(addr: SocketAddr) -> Scrape {
        let (status, body) = tools::http("GET", &format!("http://{addr}/metrics"), None).await;
        assert_eq!(status, 200, "GET /metrics: {body}");
        Scrape(body)
    }

    /// The value of one series, written as in the exposition (`name{a="x",b="y"}`, labels in
    /// the order the engine gives them); 0 when it is absent.
    pub fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                (name == series).then(|| value.parse().expect("a number"))
            })
            .unwrap_or(0.0)
    }

    /// Lints the exposition with `promtool check metrics` (exit 0: clean).
    pub async fn lint(&self) {
        let dir = TempDir::new("promtool");
        let file = dir.write("metrics.txt", &self.0);
        let mut promtool = Command::new("sh");
        promtool
            .arg("-c")
            .arg("promtool check metrics < \"$0\"")
            .arg(&file);
        let output = tools::run(promtool).await;
        assert!(
            output.status.success(),
            "promtool: {}\n{}",
            shown(&output),
            self.0
        );
    }
}

/// Scrapes until `series` has `want` (what the server counts after closing a connection lags
/// the client by a moment), and returns that scrape, linted.
pub async fn scrape_until(addr: SocketAddr, series: &str, want: f64) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = Scrape::fetch(addr).await;
        if scrape.value(series) == want {
            scrape.lint().await;
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {want}:\n{}",
            scrape.0
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts each `(series, value)` of `scrape`.
fn assert_values(scrape: &Scrape, expected: &[(&str, f64)]) {
    for &(series, want) in expected {
        assert_eq!(scrape.value(series), want, "{series} in\n{}", scrape.0);
    }
}

/// `smtpd --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --handler sink args…`.
fn smtpd(args: &[&str]) -> (Smtpd, SocketAddr) {
    let mut command = smtpd_command();
    command
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--handler", "sink"])
        .args(args);
    let smtpd = Smtpd::start(command);
    let addr = metrics_addr(&smtpd);
    (smtpd, addr)
}

#[tokio::test]
async fn messages_commands_and_replies_are_counted() {
    if !tools_available() {
        return;
    }
    let (smtpd, metrics) = smtpd(&["--size-limit", "100"]);
    let mut c = Client::connect(smtpd.addr()).await;
    c.cmd("EHLO client.example", 250).await;
    c.send_message(
        "a@example.org",
        &["b@example.org", "c@example.org"],
        "Hi\r\n",
    )
    .await;
    let big = format!("{}\r\n", "x".repeat(200));
    let reply = c
        .deliver("a@example.org", &["b@example.org"], big.as_bytes())
        .await;
    assert!(reply[0].starts_with("552"), "{reply:?}");
    c.cmd("MAIL FROM:<bad address>", 553).await;
    c.cmd("FROBNICATE", 500).await;
    c.cmd("QUIT", 221).await;
    c.expect_closed().await;
    let scrape = scrape_until(metrics, "smtpd_session_seconds_count", 1.0).await;
    assert_values(
        &scrape,
        &[
            (
                "smtpd_connections_total{listener=\"tcp\",tls=\"false\"}",
                1.0,
            ),
            ("smtpd_connections_active", 0.0),
            ("smtpd_commands_total{command=\"EHLO\"}", 1.0),
            ("smtpd_commands_total{command=\"MAIL\"}", 3.0),
            ("smtpd_commands_total{command=\"RCPT\"}", 3.0),
            ("smtpd_commands_total{command=\"DATA\"}", 2.0),
            ("smtpd_commands_total{command=\"unknown\"}", 1.0),
            ("smtpd_commands_total{command=\"QUIT\"}", 1.0),
            ("smtpd_replies_total{command=\"none\",class=\"2xx\"}", 1.0),
            ("smtpd_replies_total{command=\"DATA\",class=\"3xx\"}", 2.0),
            ("smtpd_replies_total{command=\"DATA\",class=\"2xx\"}", 1.0),
            ("smtpd_replies_total{command=\"DATA\",class=\"5xx\"}", 1.0),
            ("smtpd_replies_total{command=\"MAIL\",class=\"5xx\"}", 1.0),
            (
                "smtpd_replies_total{command=\"unknown\",class=\"5xx\"}",
                1.0,
            ),
            ("smtpd_messages_accepted_total", 1.0),
            ("smtpd_messages_rejected_total{stage=\"size\"}", 1.0),
            ("smtpd_message_size_bytes_count", 1.0),
            ("smtpd_message_size_bytes_sum", 4.0),
            ("smtpd_message_size_bytes_bucket{le=\"1024\"}", 1.0),
            ("smtpd_message_recipients_sum", 2.0),
            ("smtpd_message_recipients_bucket{le=\"1\"}", 0.0),
            ("smtpd_message_recipients_bucket{le=\"2\"}", 1.0),
        ],
    );
}

#[tokio::test]
async fn auth_success_failure_abort_block_and_cap_are_counted() {
    if !tools_available() {
        return;
    }
    let (smtpd, metrics) = smtpd(&[
        "--auth-user",
        "user:pass",
        "--no-auth-require-tls",
        "--auth-failure-delay-ms",
        "0",
        "--auth-rate-limit",
        "3",
    ]);
    let mut c = Client::connect(smtpd.addr()).await;
    c.cmd("EHLO client.example", 250).await;
    c.auth_plain().await;
    c.cmd("QUIT", 221).await;
    let mut c = Client::connect(smtpd.addr()).await;
    c.cmd("EHLO client.example", 250).await;
    let wrong = format!("AUTH PLAIN {}", plain("", "user", "wrong"));
    c.cmd(&wrong, 535).await;
    c.cmd("AUTH LOGIN", 334).await;
    c.cmd("*", 501).await;
    c.cmd(&format!("AUTH LOGIN {}", b64("user")), 334).await;
    c.cmd(&b64("wrong"), 535).await;
    // The third failure reaches max_auth_failures (3): 421 instead of 535.
    c.cmd(&wrong, 421).await;
    c.expect_closed().await;
    // Three failures from this address: the limiter blocks the next AUTH, right or wrong.
    let mut c = Client::connect(smtpd.addr()).await;
    c.cmd("EHLO client.example", 250).await;
    c.cmd(&format!("AUTH PLAIN {}", plain("", "user", "pass")), 454)
        .await;
    c.cmd("QUIT", 221).await;
    let scrape = scrape_until(metrics, "smtpd_session_seconds_count", 3.0).await;
    assert_values(
        &scrape,
        &[
            (
                "smtpd_auth_attempts_total{mechanism=\"PLAIN\",result=\"success\"}",
                1.0,
            ),
            (
                "smtpd_auth_attempts_total{mechanism=\"PLAIN\",result=\"failure\"}",
                2.0,
            ),
            (
                "smtpd_auth_attempts_total{mechanism=\"LOGIN\",result=\"failure\"}",
                1.0,
            ),
            (
                "smtpd_auth_attempts_total{mechanism=\"LOGIN\",result=\"aborted\"}",
                1.0,
            ),
            ("smtpd_auth_blocked_total", 1.0),
            ("smtpd_auth_connections_closed_total", 1.0),
            ("smtpd_commands_total{command=\"AUTH\"}", 6.0),
        ],
    );
}

#[tokio::test]
async fn tls_handshakes_are_counted_by_kind_result_and_version() {
    if !tools_available() {
        return;
    }
    let pki = Pki::new();
    let mut command = smtpd_tls_command(&pki);
    command
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--implicit-tls-listen", "127.0.0.1:0"]);
    let smtpd = Smtpd::start(command);
    let metrics = metrics_addr(&smtpd);
    let [plain_addr, tls_addr] = smtpd.addrs()[..] else {
        panic!("two listeners: {:?}", smtpd.listening);
    };
    let mut c = Client::connect(plain_addr).await;
    c.cmd("EHLO client.example", 250).await;
    let mut c = c.starttls(pki.client_config()).await;
    c.cmd("EHLO client.example", 250).await;
    c.cmd("QUIT", 221).await;
    let mut c = Client::connect_implicit(tls_addr, pki.client_config()).await;
    c.cmd("QUIT", 221).await;
    // Not a TLS ClientHello after STARTTLS's 220: the handshake fails.
    let mut c = Client::connect(plain_addr).await;
    c.cmd("EHLO client.example", 250).await;
    c.cmd("STARTTLS", 220).await;
    c.send(b"this is not TLS\r\n\r\n").await;
    c.read_to_close().await;
    let scrape = scrape_until(metrics, "smtpd_session_seconds_count", 3.0).await;
    assert_values(
        &scrape,
        &[
            (
                "smtpd_connections_total{listener=\"tcp\",tls=\"false\"}",
                2.0,
            ),
            (
                "smtpd_connections_total{listener=\"tcp\",tls=\"true\"}",
                1.0,
            ),
            (
                "smtpd_tls_handshakes_total{kind=\"starttls\",result=\"success\",version=\"TLSv1.3\"}",
                1.0,
            ),
            (
                "smtpd_tls_handshakes_total{kind=\"implicit\",result=\"success\",version=\"TLSv1.3\"}",
                1.0,
            ),
            (
                "smtpd_tls_handshakes_total{kind=\"starttls\",result=\"failure\",version=\"none\"}",
                1.0,
            ),
            ("smtpd_tls_handshake_seconds_count", 3.0),
        ],
    );
}

#[tokio::test]
async fn limits_timeouts_and_refused_connections_are_counted() {
    if !tools_available() {
        return;
    }
    let (smtpd, metrics) = smtpd(&["--max-connections-per-ip", "1", "--idle-timeout", "1"]);
    let mut first = Client::connect(smtpd.addr()).await;
    let mut second = Client::connect_raw(smtpd.addr()).await;
    let refused = second.reply().await;
    assert!(refused[0].starts_with("421"), "{refused:?}");
    first.cmd("EHLO client.example", 250).await;
    // Idle in the `ready` phase until the 1 s timeout closes it.
    let reply = first.reply().await;
    assert!(reply[0].starts_with("421"), "{reply:?}");
    first.expect_closed().await;
    let scrape = scrape_until(metrics, "smtpd_session_seconds_count", 1.0).await;
    assert_values(
        &scrape,
        &[
            (
                "smtpd_connections_rejected_total{reason=\"max_connections_per_ip\"}",
                1.0,
            ),
            ("smtpd_timeouts_total{phase=\"ready\"}", 1.0),
            ("smtpd_connections_active", 0.0),
        ],
    );
}

#[tokio::test]
async fn proxy_header_refusals_are_counted() {
    if !tools_available() {
        return;
    }
    let (smtpd, metrics) = smtpd(&["--proxy-protocol"]);
    let mut c = Client::connect_raw(smtpd.addr()).await;
    c.send(b"EHLO not a proxy header\r\n").await;
    c.read_to_close().await;
    let scrape = scrape_until(
        metrics,
        "smtpd_connections_rejected_total{reason=\"proxy_invalid\"}",
        1.0,
    )
    .await;
    assert_values(&scrape, &[("smtpd_connections_active", 0.0)]);
}

/// The minimum data rate has a 10-second grace: this test trickles a body for 11 s.
#[tokio::test]
async fn a_transfer_below_the_minimum_rate_is_counted() {
    if !tools_available() {
        return;
    }
    let (smtpd, metrics) = smtpd(&["--min-data-rate", "1000", "--idle-timeout", "5"]);
    let mut c = Client::connect(smtpd.addr()).await;
    c.cmd("EHLO client.example", 250).await;
    c.begin_data("a@example.org", &["b@example.org"]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        c.send(b"x\r\n").await;
        let read = tokio::time::timeout(Duration::from_millis(500), c.reply()).await;
        if let Ok(reply) = read {
            break reply;
        }
        assert!(Instant::now() < deadline, "no cut-off");
    };
    assert!(reply[0].starts_with("421"), "{reply:?}");
    let scrape = scrape_until(metrics, "smtpd_data_rate_cutoffs_total", 1.0).await;
    assert_values(&scrape, &[("smtpd_timeouts_total{phase=\"data\"}", 0.0)]);
}
