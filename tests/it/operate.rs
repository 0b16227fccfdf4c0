//! Operating `smtpd` with real tools: a Prometheus server scraping `/metrics` every second,
//! HAProxy health-checking `/healthz` in front of two instances while one drains, and JSON log
//! lines that name their session.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::metrics::{metrics_addr, tools_available};
use crate::support::tools::{self, shown};
use crate::support::{Client, Smtpd, TempDir, TermOnDrop, free_port, smtpd_command, wait_until};

/// `smtpd --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --handler sink args…`.
fn smtpd(args: &[&str]) -> Smtpd {
    let mut command = smtpd_command();
    command
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--handler", "sink"])
        .args(args);
    Smtpd::start(command)
}

/// `GET url` with curl: the status code and the body.
async fn get(url: &str) -> (u16, String) {
    tools::http("GET", url, None).await
}

/// The value of a Prometheus instant query, once it has one.
async fn query(web: u16, promql: &str) -> Option<f64> {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--fail", "--max-time", "5", "-G"])
        .arg(format!("http://127.0.0.1:{web}/api/v1/query"))
        .arg("--data-urlencode")
        .arg(format!("query={promql}"));
    let output = tools::run(curl).await;
    assert!(output.status.success(), "query: {}", shown(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json["status"], "success", "{json}");
    let value = json["data"]["result"].get(0)?["value"][1].as_str()?;
    Some(value.parse().expect("a number"))
}

#[tokio::test]
async fn prometheus_scrapes_the_counts_of_a_known_load() {
    if !tools_available() || !tools::available("prometheus") {
        return;
    }
    let server = smtpd(&[]);
    let target = metrics_addr(&server);
    let dir = TempDir::new("prometheus");
    let config = dir.write(
        "prometheus.yml",
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: smtpd\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    );
    let web = free_port();
    let _prometheus = TermOnDrop::spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}")),
    );
    wait_until("Prometheus is ready", Duration::from_secs(10), async || {
        tokio::net::TcpStream::connect(("127.0.0.1", web))
            .await
            .is_ok()
            && get(&format!("http://127.0.0.1:{web}/-/ready")).await.0 == 200
    })
    .await;
    // The known load: 3 connections, 5 messages with 2 recipients each, 1 refused RCPT.
    for messages in [1, 2, 2] {
        let mut c = Client::connect(server.addr()).await;
        c.cmd("EHLO client.example", 250).await;
        for _ in 0..messages {
            c.send_message(
                "a@example.org",
                &["b@example.org", "c@example.org"],
                "Hi\r\n",
            )
            .await;
        }
        c.cmd("RCPT TO:<d@example.org>", 503).await;
        c.cmd("QUIT", 221).await;
    }
    // The scrape manager applies its targets on a 5-second tick: poll, do not sleep.
    let want = [
        ("smtpd_messages_accepted_total", 5.0),
        ("sum(smtpd_commands_total{command=\"RCPT\"})", 13.0),
        ("smtpd_replies_total{command=\"RCPT\",class=\"5xx\"}", 3.0),
        ("smtpd_connections_total{listener=\"tcp\"}", 3.0),
        ("smtpd_message_recipients_sum", 10.0),
        ("up{job=\"smtpd\"}", 1.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut got = Vec::new();
        for (promql, _) in want {
            got.push(query(web, promql).await);
        }
        if want.iter().zip(&got).all(|((_, v), got)| *got == Some(*v)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never had {want:?}; last {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// HAProxy's CSV statistics: the `status` column of server `name` in backend `smtpd`.
async fn haproxy_status(stats: u16, name: &str) -> String {
    let (code, csv) = get(&format!("http://127.0.0.1:{stats}/stats;csv")).await;
    assert_eq!(code, 200, "{csv}");
    let header: Vec<&str> = csv.lines().next().unwrap_or("").split(',').collect();
    let column = header
        .iter()
        .position(|h| *h == "status")
        .expect("a status column");
    csv.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"smtpd") && f.get(1) == Some(&name))
        .map(|f| f[column].to_owned())
        .unwrap_or_default()
}

/// One whole SMTP transaction through `front`: connect, greeting, EHLO, one message, QUIT.
/// `Err` says what went wrong (a refused connection, a 4xx…).
async fn transaction(front: SocketAddr) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(front)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut expect = async |code: &str| -> Result<(), String> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = tokio::time::timeout(Duration::from_secs(5), read.read_line(&mut line))
                .await
                .map_err(|_| "no reply".to_owned())?
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 || !line.starts_with(code) {
                return Err(format!("expected {code}, got {line:?}"));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    };
    expect("220").await?;
    let steps: [(&[u8], &str); 6] = [
        (b"EHLO client.example\r\n", "250"),
        (b"MAIL FROM:<a@example.org>\r\n", "250"),
        (b"RCPT TO:<b@example.org>\r\n", "250"),
        (b"DATA\r\n", "354"),
        (b"Subject: drain\r\n\r\nHi\r\n.\r\n", "250"),
        (b"QUIT\r\n", "221"),
    ];
    for (line, code) in steps {
        write
            .write_all(line)
            .await
            .map_err(|e| format!("write: {e}"))?;
        expect(code).await?;
    }
    Ok(())
}

// Multi-threaded: the clients must go on while the test thread waits for the drained
// process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_takes_a_draining_instance_out_of_rotation_without_refusals() {
    if !tools_available() {
        return;
    }
    let Some(haproxy) = tools::haproxy() else {
        return;
    };
    let draining = smtpd(&["--drain-delay", "3"]);
    let serving = smtpd(&[]);
    let (front, stats) = (free_port(), free_port());
    let server = |name: &str, smtpd: &Smtpd| {
        let health = metrics_addr(smtpd).port();
        format!(
            "    server {name} {} check port {health} inter 200ms fall 2 rise 1\n",
            smtpd.addr()
        )
    };
    let config = format!(
        "global\n    maxconn 256\ndefaults\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout check 1s\n\
         frontend smtp\n    mode tcp\n    bind 127.0.0.1:{front}\n    default_backend smtpd\n\
         backend smtpd\n    mode tcp\n    balance roundrobin\n    option httpchk GET /healthz\n{}{}\
         listen stats\n    mode http\n    bind 127.0.0.1:{stats}\n    stats enable\n    stats uri /stats\n",
        server("a", &draining),
        server("b", &serving),
    );
    let dir = TempDir::new("haproxy-drain");
    let path = dir.write("haproxy.cfg", config);
    let _haproxy = TermOnDrop::spawn(Command::new(haproxy).arg("-f").arg(&path).arg("-db"));
    wait_until(
        "HAProxy sees both up",
        Duration::from_secs(10),
        async || {
            tokio::net::TcpStream::connect(("127.0.0.1", stats))
                .await
                .is_ok()
                && haproxy_status(stats, "a").await == "UP"
                && haproxy_status(stats, "b").await == "UP"
        },
    )
    .await;
    // Clients go through HAProxy, one transaction after another, for the whole switch.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let front_addr = SocketAddr::from(([127, 0, 0, 1], front));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, done) = (stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match transaction(front_addr).await {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            failures.push(e);
                            0
                        }
                    };
                }
                failures
            })
        })
        .collect();
    wait_until("clients are served", Duration::from_secs(10), async || {
        done.load(Ordering::Relaxed) > 0
    })
    .await;
    let signalled = Instant::now();
    draining.signal("TERM");
    let (code, _) = get(&format!("http://{}/healthz", metrics_addr(&draining))).await;
    assert_eq!(code, 503, "/healthz once draining");
    let (code, _) = get(&format!("http://{}/readyz", metrics_addr(&draining))).await;
    assert_eq!(code, 503, "/readyz once draining");
    wait_until(
        "HAProxy marks `a` down",
        Duration::from_secs(3),
        async || haproxy_status(stats, "a").await.starts_with("DOWN"),
    )
    .await;
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "marked down only after the drain delay"
    );
    assert_eq!(haproxy_status(stats, "b").await, "UP");
    // `a` stops accepting after its delay and exits; clients go on through `b`.
    let served_before = done.load(Ordering::Relaxed);
    let exit = tokio::task::spawn_blocking(move || draining.terminate())
        .await
        .expect("waiting for the drained instance");
    assert_eq!(exit, Some(0), "the drained instance exits cleanly");
    let after_exit = done.load(Ordering::Relaxed);
    wait_until(
        "clients go on through `b`",
        Duration::from_secs(10),
        async || done.load(Ordering::Relaxed) > after_exit,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.expect("client task"));
    }
    let served = done.load(Ordering::Relaxed);
    assert!(failures.is_empty(), "clients saw failures: {failures:?}");
    assert!(
        served > served_before && served_before > 0,
        "{served_before} then {served} transactions"
    );
    let (code, _) = get(&format!("http://{}/healthz", metrics_addr(&serving))).await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn json_log_lines_carry_one_session_id_per_connection() {
    let server = smtpd(&["--log-format", "json"]);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut c = Client::connect(server.addr()).await;
        c.cmd("EHLO client.example", 250).await;
        c.send_message("a@example.org", &["b@example.org"], "Hi\r\n")
            .await;
        c.cmd("QUIT", 221).await;
        let lines = server.stderr_until("\"disconnected\"");
        let mut seen = Vec::new();
        for line in lines.iter().skip_while(|l| !l.contains("\"connected\"")) {
            let json: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let session = json["spans"]
                .as_array()
                .and_then(|spans| spans.iter().find_map(|s| s["session"].as_str()))
                .unwrap_or_else(|| panic!("no session in {line}"))
                .to_owned();
            seen.push(session);
        }
        assert!(seen.len() >= 3, "{lines:?}");
        assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
        assert!(
            seen[0].len() == 16 && seen[0].bytes().all(|b| b.is_ascii_hexdigit()),
            "{seen:?}"
        );
        ids.push(seen[0].clone());
    }
    assert_ne!(ids[0], ids[1], "each connection has its own id");
}

/// Remembers the `Session::id` its hooks saw.
#[derive(Clone, Default)]
struct Ids(Arc<std::sync::Mutex<Vec<smtp_core::SessionId>>>);

impl smtp_core::Handler for Ids {
    async fn handle_ehlo(
        &self,
        session: &mut smtp_core::Session,
        _: &mut smtp_core::Envelope,
        _: &str,
        responses: smtp_core::Reply,
    ) -> smtp_core::Reply {
        self.0.lock().unwrap().push(session.id());
        responses
    }

    async fn handle_data(
        &self,
        session: &mut smtp_core::Session,
        _: &mut smtp_core::Envelope,
    ) -> smtp_core::Reply {
        self.0.lock().unwrap().push(session.id());
        smtp_core::Reply::ok()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_handlers_session_id_is_the_one_in_the_log_and_survives_starttls() {
    let logs = crate::support::SharedBuf::default();
    let _default = tracing::subscriber::set_default(logs.subscriber());
    let pki = crate::support::tls::Pki::new();
    let ids = Ids::default();
    let server = crate::support::start(ids.clone(), crate::support::tls::tls_config(&pki)).await;
    for _ in 0..2 {
        let mut c = Client::connect(server.local_addr()).await;
        c.cmd("EHLO client.example", 250).await;
        let mut c = c.starttls(pki.client_config()).await;
        c.cmd("EHLO client.example", 250).await;
        c.send_message("a@example.org", &["b@example.org"], "Hi\r\n")
            .await;
        c.cmd("QUIT", 221).await;
    }
    server.shutdown().await;
    let ids = ids.0.lock().unwrap().clone();
    assert_eq!(ids.len(), 6, "{ids:?}");
    assert!(ids[..3].iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(ids[3..].iter().all(|id| *id == ids[3]), "{ids:?}");
    assert_ne!(ids[0], ids[3]);
    let text = logs.text();
    for id in [ids[0], ids[3]] {
        let tagged = text
            .lines()
            .filter(|l| l.contains(&format!("session={id}")))
            .count();
        assert!(tagged >= 4, "session={id} in {tagged} lines:\n{text}");
    }
}

/// A supervisor may send SIGTERM the moment it reads the listening line; the process must
/// drain and exit 0, not die of the signal's default action. Python sends the signal within
/// microseconds of reading the line (`kill(1)` would take a millisecond to start); before the
/// handlers were registered ahead of that line, 1 to 10 % of the starts died of SIGTERM.
#[tokio::test]
async fn sigterm_right_after_the_listening_line_drains_and_exits_0() {
    const STARTS: &str = "300";
    let script = r#"
import os, signal, subprocess, sys
codes = {}
for _ in range(int(sys.argv[2])):
    p = subprocess.Popen([sys.argv[1], "--listen", "127.0.0.1:0", "--handler", "sink"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for line in p.stderr:
        if b"smtpd listening on " in line:
            break
    os.kill(p.pid, signal.SIGTERM)
    code = p.wait(timeout=10)
    codes[code] = codes.get(code, 0) + 1
print(sorted(codes.items()))
"#;
    let (ok, stdout, stderr) =
        crate::support::python(script, &[env!("CARGO_BIN_EXE_smtpd"), STARTS]).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("[(0, {STARTS})]"),
        "exit code: count"
    );
}
