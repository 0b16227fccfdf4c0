//! The benchmark's own clients and report (bench/), run against a real server so that a broken
//! tool cannot produce a plausible-looking benchmark: each must succeed on a good run and fail
//! loudly on a bad one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::tls::{Pki, tls_config};
use crate::support::tools::{available, run, shown};
use crate::support::{TempDir, config, start};
use smtp_core::ServerHandle;
use smtp_core::handlers::Sink;

fn bench(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench")
        .join(file)
}

fn python(script: &str, args: &[String]) -> Command {
    let mut command = Command::new("python3");
    command.arg(bench(script)).args(args);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that a tool's run failed (exit status 1) and said `said` on stdout or stderr.
fn assert_failed(output: &Output, said: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", shown(output));
    let both = text(&output.stdout) + &text(&output.stderr);
    assert!(
        both.contains(said),
        "expected {said:?} in {}",
        shown(output)
    );
}

/// What workload `t` runs: STARTTLS, a verified TLS 1.3 handshake, AUTH PLAIN, QUIT.
#[tokio::test]
async fn tls_conns_runs_starttls_and_auth() {
    if !available("python3") {
        return;
    }
    let pki = Pki::new();
    let server = start(Sink, {
        let mut config = tls_config(&pki);
        config.auth_require_tls = true;
        config
    })
    .await;
    let target = format!("127.0.0.1:{}", server.local_addr().port());
    let ca = pki.ca.display().to_string();
    let args = [&target, "-n", "6", "-c", "3", "--cafile", &ca, "--show"].map(String::from);
    let output = run(python("tls_conns.py", &args)).await;
    assert!(output.status.success(), "{}", shown(&output));
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("TLSv1.3 TLS_"), "{stdout}");
    assert!(stdout.contains("6 ok, 0 failed"), "{stdout}");
    server.shutdown().await;
}

/// A server without STARTTLS, or one that refuses the password, is a failed run (exit 1).
#[tokio::test]
async fn tls_conns_fails_when_a_step_fails() {
    if !available("python3") {
        return;
    }
    let pki = Pki::new();
    let ca = pki.ca.display().to_string();
    let plain = start(Sink, config()).await;
    let target = format!("127.0.0.1:{}", plain.local_addr().port());
    let args = [&target, "-n", "2", "--cafile", &ca].map(String::from);
    let output = run(python("tls_conns.py", &args)).await;
    assert_failed(&output, "2 x Failed: EHLO does not offer STARTTLS");
    plain.shutdown().await;

    let tls = start(Sink, tls_config(&pki)).await;
    let target = format!("127.0.0.1:{}", tls.local_addr().port());
    let args = [&target, "-n", "2", "--cafile", &ca, "--password", "wrong"].map(String::from);
    let output = run(python("tls_conns.py", &args)).await;
    assert_failed(&output, "AUTH PLAIN: expected 235, got 535");
    tls.shutdown().await;
}

/// The memory tool against this process's own server: idle connections are counted, a
/// streamed message is accepted, and a refused message makes the run fail.
#[tokio::test]
async fn idle_and_large_measure_and_report_refusals() {
    if !available("python3") {
        return;
    }
    // The tool measures this test process, which runs the servers.
    let tool = |server: &ServerHandle, what: &[&str]| {
        let pid = std::process::id().to_string();
        let port = server.local_addr().port().to_string();
        let head = ["--pid", &pid, "--port", &port, "--json"];
        python(
            "idle_and_large.py",
            &head
                .iter()
                .chain(what)
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
        )
    };
    let server = start(Sink, config()).await;
    let output = run(tool(&server, &["t/idle/1", "idle", "--count", "40"])).await;
    assert!(output.status.success(), "{}", shown(&output));
    let line = text(&output.stdout);
    assert!(
        line.contains(r#""label": "t/idle/1", "conns": 40, "failed": 0"#),
        "{line}"
    );

    let large = ["t/large/1", "large", "--mib", "3"];
    let output = run(tool(&server, &large)).await;
    assert!(output.status.success(), "{}", shown(&output));
    assert!(
        text(&output.stdout).contains(r#""mib": 3, "accepted": true"#),
        "{}",
        shown(&output)
    );
    server.shutdown().await;

    let small = start(Sink, {
        let mut config = config();
        config.max_message_size = Some(1 << 20);
        config
    })
    .await;
    let output = run(tool(&small, &large)).await;
    assert_failed(&output, r#""accepted": false"#);
    small.shutdown().await;
}

/// The report's targets: medians over reps, ratios to the named peer, met or NOT MET.
#[tokio::test]
async fn report_judges_targets_from_medians() {
    if !available("python3") {
        return;
    }
    let dir = TempDir::new("bench-report");
    let row = |label: &str, rate: f64, cpu: f64| {
        format!(
            r#"{{"label": "{label}", "rate_per_s": {rate}, "mib_per_s": null, "fail": 0, "timed_out": false, "unsent": 0, "lat_ms": {{"p50": 1, "p99": 2}}, "client_cpu_pct": 50, "server": {{"cpu_us_per_op": {cpu}, "VmHWM_kB": 5120}}}}"#
        )
    };
    let results = [
        row("smtpd/a/1", 100.0, 30.0),
        row("smtpd/a/2", 90.0, 20.0),
        row("smtpd/a/3", 96.0, 99.0),
        row("smtp-sink/a/1", 100.0, 40.0),
        row("smtpd/c/1", 10.0, 80.0),
        row("go-smtp/c/1", 10.0, 100.0),
    ]
    .join("\n");
    std::fs::write(dir.0.join("results.jsonl"), results).unwrap();
    let memory = r#"{"label": "smtpd/idle/1", "conns": 10000, "failed": 0, "rss_before_kib": 4096, "rss_kib": 40960}"#;
    std::fs::write(dir.0.join("memory.jsonl"), memory).unwrap();

    let output = run(python("report.py", &[dir.0.display().to_string()])).await;
    assert!(output.status.success(), "{}", shown(&output));
    let report = text(&output.stdout);
    for line in [
        "| a: server CPU per message | 30 µs | smtp-sink 40 µs | 0.75× | ≤ 1.00× smtp-sink | met |",
        "| a: msg/s | 96 | smtp-sink 100 | 0.96× | ≥ 0.95× smtp-sink | met |",
        "| c: server CPU per AUTH PLAIN connection | 80 µs | go-smtp 100 µs | 0.80× | ≤ 0.70× go-smtp | NOT MET |",
        "| t: server CPU per STARTTLS+AUTH connection | - | - | - | ≤ 1.00× go-smtp | not measured |",
        "| 10,000 idle connections: RSS | 40.0 MiB | | | ≤ 64 MiB | met |",
        "| a: 1 KiB keep-alive | 96 | 30 | 5.0 | 0.96×, 0.75× | - |",
    ] {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }
}
