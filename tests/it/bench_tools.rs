//! The benchmark's own clients and report (bench/), run against a real server so that a broken
//! tool cannot produce a plausible-looking benchmark: each must succeed on a good run and fail
//! loudly on a bad one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// The report of `run.sh`: medians over reps, ratios to the named peer, a gen-bound row
/// judged by no ratio, and strace's summary turned into the system-call target.
#[tokio::test]
async fn loadgen_report_judges_targets_from_medians() {
    if !available("python3") {
        return;
    }
    let dir = TempDir::new("bench-report");
    let row = |label: &str, thr: f64, cpu: f64, server_pct: f64, gen_pct: f64| {
        format!(
            r#"{{"label": "{label}", "unit": "msg", "count": 1000, "failures": 0, "throughput": {thr}, "mib_s": null, "server_us_per_unit": {cpu}, "server_cpu_pct": {server_pct}, "gen_cpu_pct": {gen_pct}, "gen_us_per_unit": 20, "p50_ms": 0.5, "p99_ms": 1.5, "server_rss_mib": 8}}"#
        )
    };
    let results = [
        // Medians: 96 msg/s and 30 µs, whatever the order of the reps.
        row("smtpd/keepalive/1", 100.0, 30.0, 99.0, 80.0),
        row("smtpd/keepalive/2", 90.0, 20.0, 99.0, 80.0),
        row("smtpd/keepalive/3", 96.0, 99.0, 99.0, 80.0),
        row("smtp-sink/keepalive/1", 70.0, 40.0, 99.0, 70.0),
        row("go-smtp/keepalive/1", 80.0, 35.0, 99.0, 70.0),
        // The generator at its limit while smtpd was not: no ratio from this row.
        row("smtpd/conn-auth/1", 10.0, 50.0, 80.0, 95.0),
        row("go-smtp/conn-auth/1", 10.0, 100.0, 99.0, 60.0),
    ]
    .join("\n");
    std::fs::write(dir.0.join("results.jsonl"), results).unwrap();
    let memory = r#"{"label": "smtpd/idle/1", "conns": 10000, "failed": 0, "rss_kib": 40960}"#;
    std::fs::write(dir.0.join("memory.jsonl"), memory).unwrap();
    // strace -c's table, as strace prints it, for 1,000 messages.
    let trace = dir.0.join("smtpd.syscalls.1.txt");
    std::fs::write(
        &trace,
        "% time     seconds  usecs/call     calls    errors syscall\n\
         ------ ----------- ----------- --------- --------- ----------------\n\
          50.00    0.010000          10      1004           sendto\n\
          40.00    0.008000           8      1020        20 recvfrom\n\
          10.00    0.002000          20       100           epoll_wait\n\
         ------ ----------- ----------- --------- --------- ----------------\n\
         100.00    0.020000           9      2124        20 total\n",
    )
    .unwrap();
    // loadgen's line for the traced run: its label and count.
    let traced_run = dir.0.join("smtpd.syscalls.1.json");
    std::fs::write(&traced_run, row("smtpd/syscalls/1", 900.0, 0.0, 99.0, 50.0)).unwrap();
    let args = [
        "--strace".into(),
        trace.display().to_string(),
        traced_run.display().to_string(),
    ];
    let output = run(python("loadgen_report.py", &args)).await;
    assert!(output.status.success(), "{}", shown(&output));
    std::fs::write(dir.0.join("syscalls.jsonl"), &output.stdout).unwrap();

    let output = run(python("loadgen_report.py", &[dir.0.display().to_string()])).await;
    assert!(output.status.success(), "{}", shown(&output));
    let report = text(&output.stdout);
    for line in [
        "| 1 KiB keep-alive: throughput at saturation | 96.0 | smtp-sink keepalive: 70.0 | 1.37 | >= 1.25x | met |",
        "| 1 KiB keep-alive: throughput at saturation | 96.0 | go-smtp keepalive: 80.0 | 1.20 | >= 1.25x | **NOT MET** |",
        "| 1 KiB keep-alive: server CPU per message | 30.0 | smtp-sink keepalive: 40.0 | 0.75 | <= 0.75x | met |",
        "| connect+EHLO+AUTH PLAIN+QUIT: CPU per connection | 50.0 | go-smtp conn-auth: 100.0 | 0.50 | <= 0.5x | not judged (gen-bound) |",
        "| STARTTLS+AUTH: CPU per connection | - | go-smtp starttls-auth: - | - | <= 0.6x | not measured |",
        "| idle connections after EHLO: server RSS | 40.0 MiB with 10,000 | - | - | <= 40 MiB at 10,000 | met |",
        "| recvfrom | 1.020 | 0.020 |",
        "| system calls per pipelined message (strace -c) | 2.12: 1.02 reads (0.020 failed), 1.00 writes | one group per message | - | 1 read + 1 write, no failed read | met |",
    ] {
        assert!(report.contains(line), "missing {line:?} in:\n{report}");
    }
}
