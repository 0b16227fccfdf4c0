//! Scale-out with faults: a real `nats-server -js`, real HAProxy (PROXY v2, health checks) in
//! front of two `smtpd --handler jetstream` instances, and 8 concurrent senders that retry every
//! `4xx` and every broken connection until `250`. While they run, one instance is killed with
//! SIGKILL and restarted, and nats-server is killed and restarted. Afterwards every message is
//! in the stream exactly once (by its Message-ID header), and the stream holds nothing no
//! sender sent.
//!
//! Needs `nats-server` and `haproxy` (Debian packages of those names; required under `CI=true`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::support::nats::NatsServer;
use crate::support::*;

const SENDERS: usize = 8;
const PER_SENDER: usize = 50;
const STREAM: &str = "SCALE";
/// The whole run, faults included, must end within this.
const DEADLINE: Duration = Duration::from_secs(60);
/// One SMTP step (a reply) may take this long before the attempt counts as broken.
const STEP: Duration = Duration::from_secs(8);

fn instance(port: u16, url: &str) -> Smtpd {
    let mut command = smtpd_command();
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--hostname", &format!("mx{port}.example")])
        .args(["--handler", "jetstream", "--nats-url", url])
        .args(["--nats-stream", STREAM, "--nats-subject", "scale.in"])
        .args(["--nats-timeout", "3"])
        .args(["--proxy-protocol", "--proxy-trusted", "127.0.0.1/32"]);
    Smtpd::start(command)
}

fn haproxy(dir: &TempDir, backends: &[u16]) -> Option<(KillOnDrop, SocketAddr)> {
    let binary = tools::haproxy()?;
    let port = free_port();
    let mut config = format!(
        "global\n    maxconn 256\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    retries 3\n    option redispatch\nfrontend smtp\n    bind 127.0.0.1:{port}\n    default_backend smtpd\nbackend smtpd\n    balance roundrobin\n"
    );
    for (i, backend) in backends.iter().enumerate() {
        config.push_str(&format!(
            "    server s{i} 127.0.0.1:{backend} send-proxy-v2 check inter 200ms fall 1 rise 1\n"
        ));
    }
    let path = dir.write("haproxy.cfg", config);
    let child = std::process::Command::new(binary)
        .arg("-f")
        .arg(&path)
        .arg("-db")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start haproxy");
    Some((KillOnDrop(child), SocketAddr::from(([127, 0, 0, 1], port))))
}

/// How one attempt at a message ended.
enum Outcome {
    Accepted,
    /// A `4xx` reply at any step.
    Temporary,
    /// The connection broke, or a reply did not come in time.
    Broken,
}

async fn reply(lines: &mut BufReader<TcpStream>) -> Option<u16> {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(STEP, lines.read_line(&mut line))
            .await
            .ok()?
            .ok()?;
        if n == 0 || line.len() < 4 {
            return None;
        }
        if line.as_bytes()[3] == b' ' {
            return line[..3].parse().ok();
        }
    }
}

async fn attempt(front: SocketAddr, message_id: &str) -> Outcome {
    let Ok(Ok(stream)) = tokio::time::timeout(STEP, TcpStream::connect(front)).await else {
        return Outcome::Broken;
    };
    let mut io = BufReader::new(stream);
    let body = format!(
        "Message-ID: <{message_id}>\r\nSubject: {message_id}\r\n\r\nbody of {message_id}\r\n.\r\n"
    );
    let steps: [(&str, u16); 5] = [
        ("", 220),
        ("EHLO sender.example\r\n", 250),
        ("MAIL FROM:<sender@example.com>\r\n", 250),
        ("RCPT TO:<rcpt@example.org>\r\n", 250),
        ("DATA\r\n", 354),
    ];
    for (command, expected) in steps {
        if !command.is_empty() && io.get_mut().write_all(command.as_bytes()).await.is_err() {
            return Outcome::Broken;
        }
        match reply(&mut io).await {
            Some(code) if code == expected => {}
            Some(code) if (400..500).contains(&code) => return Outcome::Temporary,
            Some(code) => panic!("{message_id}: `{command}` got {code}"),
            None => return Outcome::Broken,
        }
    }
    if io.get_mut().write_all(body.as_bytes()).await.is_err() {
        return Outcome::Broken;
    }
    let outcome = match reply(&mut io).await {
        Some(250) => Outcome::Accepted,
        Some(code) if (400..500).contains(&code) => Outcome::Temporary,
        Some(code) => panic!("{message_id}: the message got {code}"),
        None => Outcome::Broken,
    };
    let _ = io.get_mut().write_all(b"QUIT\r\n").await;
    outcome
}

#[derive(Default)]
struct Figures {
    accepted: AtomicUsize,
    temporary: AtomicUsize,
    broken: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_message_lost_or_doubled_when_an_instance_and_nats_die() {
    let Some(mut nats) = NatsServer::start().await else {
        return;
    };
    let ports = [free_port(), free_port()];
    let mut instances = [
        instance(ports[0], &nats.url()),
        instance(ports[1], &nats.url()),
    ];
    let dir = TempDir::new("scale-out");
    let Some((_haproxy, front)) = haproxy(&dir, &ports) else {
        return;
    };
    let started = Instant::now();
    while TcpStream::connect(front).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "haproxy did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let figures = Arc::new(Figures::default());
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let figures = figures.clone();
        senders.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for m in 0..PER_SENDER {
                let id = format!("s{s}-m{m}@scale.test");
                loop {
                    assert!(started.elapsed() < DEADLINE, "{id}: no 250 in time");
                    match attempt(front, &id).await {
                        Outcome::Accepted => break,
                        Outcome::Temporary => figures.temporary.fetch_add(1, Ordering::Relaxed),
                        Outcome::Broken => figures.broken.fetch_add(1, Ordering::Relaxed),
                    };
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                figures.accepted.fetch_add(1, Ordering::Relaxed);
                accepted.push(id);
            }
            accepted
        }));
    }

    // The faults, while the senders run.
    let total = SENDERS * PER_SENDER;
    let wait_for = |n: usize| {
        let figures = figures.clone();
        async move {
            while figures.accepted.load(Ordering::Relaxed) < n {
                assert!(started.elapsed() < DEADLINE, "stuck before {n} accepted");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(total / 4).await;
    instances[0].signal("KILL");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let port = ports[0];
    let restarted = {
        let url = nats.url();
        tokio::task::spawn_blocking(move || instance(port, &url))
            .await
            .unwrap()
    };
    instances[0] = restarted;
    wait_for(total / 2).await;
    nats.restart().await;

    let mut accepted = Vec::new();
    for sender in senders {
        accepted.extend(sender.await.expect("a sender"));
    }
    let elapsed = started.elapsed();

    let mut in_stream: BTreeMap<String, usize> = BTreeMap::new();
    for message in nats.messages(STREAM).await {
        let text = String::from_utf8_lossy(&message.payload);
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .and_then(|l| l.strip_suffix('>'))
            .unwrap_or_else(|| {
                panic!(
                    "a message without Message-ID: {text:?} {:?} {:?}",
                    message.subject, message.headers
                )
            })
            .to_owned();
        *in_stream.entry(id).or_default() += 1;
    }
    let sent: BTreeSet<&String> = accepted.iter().collect();
    let duplicates: Vec<_> = in_stream.iter().filter(|(_, n)| **n > 1).collect();
    let lost: Vec<_> = sent
        .iter()
        .filter(|id| !in_stream.contains_key(**id))
        .collect();
    let unknown: Vec<_> = in_stream.keys().filter(|id| !sent.contains(id)).collect();
    println!(
        "scale-out: sent {total}, 250s {}, 4xx retried {}, broken connections retried {}, \
         in stream {}, duplicates {}, lost {}, unknown {}, in {elapsed:.1?}",
        figures.accepted.load(Ordering::Relaxed),
        figures.temporary.load(Ordering::Relaxed),
        figures.broken.load(Ordering::Relaxed),
        in_stream.len(),
        duplicates.len(),
        lost.len(),
        unknown.len(),
    );
    assert_eq!(accepted.len(), total);
    assert_eq!(sent.len(), total, "every sender's Message-ID is unique");
    assert!(duplicates.is_empty(), "stored twice: {duplicates:?}");
    assert!(
        lost.is_empty(),
        "answered 250 but not in the stream: {lost:?}"
    );
    assert!(
        unknown.is_empty(),
        "in the stream but never sent: {unknown:?}"
    );
    assert!(
        figures.temporary.load(Ordering::Relaxed) + figures.broken.load(Ordering::Relaxed) > 0,
        "the faults cost no retry at all: they did not happen under load"
    );
}
