//! Soak test: many connections on loopback for a bounded time, delivering messages with a mix
//! of plain sessions, AUTH, pipelining and aborted sessions (reset mid-DATA, QUIT mid-
//! transaction, wrong passwords), against a server in a child process whose memory is
//! sampled. Run it through `scripts/soak.sh SECONDS`.
//!
//! Every message carries a unique id. At the end the server reports, over SMTP, how many
//! messages it stored, how many ids it saw twice, and a checksum of the ids; these must match
//! exactly the messages whose final `250` the clients read — so a lost, duplicated or
//! smuggled-in (aborted) message fails the run, as does resident memory that keeps growing
//! after warm-up.
//!
//! ```text
//! cargo run --release --example soak -- 180 [CLIENTS]
//! ```

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use smtp_core::{Config, Envelope, Handler, Reply, Server, Session, StaticUsers};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

const LOGIN: &str = "soak";
const PASSWORD: &str = "soak-password";
const STATS: &str = "stats@soak.invalid";

/// What the server stored: ids seen (a bitmap, so that the store itself does not grow the
/// memory curve), duplicates, and a checksum of the ids.
#[derive(Default)]
struct Store {
    seen: Vec<u64>,
    messages: u64,
    duplicates: u64,
    sum: u64,
}

impl Store {
    /// Records `id`; false when it was already stored.
    fn insert(&mut self, id: u64) -> bool {
        let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let new = self.seen[word] & bit == 0;
        self.seen[word] |= bit;
        new
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Store>>);

impl Handler for Recorder {
    async fn handle_data(&self, _: &mut Session, envelope: &mut Envelope) -> Reply {
        let Some(id) = message_id(&envelope.content) else {
            return Reply::from("554 5.6.0 no X-Soak-Id");
        };
        let mut store = self.0.lock().unwrap();
        if store.insert(id) {
            store.messages += 1;
            store.sum = store
                .sum
                .wrapping_add(id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        } else {
            store.duplicates += 1;
        }
        Reply::new(250, format!("2.0.0 queued {id}"))
    }

    async fn handle_vrfy(&self, _: &mut Session, _: &mut Envelope, address: &str) -> Reply {
        if address != STATS {
            return Reply::from("252 2.1.5 Cannot VRFY");
        }
        let store = self.0.lock().unwrap();
        Reply::new(
            250,
            format!(
                "messages={} duplicates={} sum={}",
                store.messages, store.duplicates, store.sum
            ),
        )
    }
}

fn message_id(content: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(content).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("X-Soak-Id: "))?;
    line.trim().parse().ok()
}

/// The child: serves on 127.0.0.1, prints its port, runs until killed.
async fn serve() {
    let config = {
        let mut config = Config::default();
        config.hostname = "soak.example".into();
        config.auth_require_tls = false;
        config.authenticator = Some(StaticUsers::new().user(LOGIN, PASSWORD).into());
        config.max_connections = Some(10_000);
        config.max_connections_per_ip = None;
        config
    };
    let server = Server::new(Recorder::default(), config)
        .listen("127.0.0.1:0")
        .await
        .expect("bind")
        .start();
    println!("{}", server.local_addr().port());
    std::future::pending::<()>().await;
}

/// A line-oriented client over one connection.
struct Client {
    io: BufReader<TcpStream>,
}

type Result<T> = std::result::Result<T, String>;

impl Client {
    async fn connect(port: u16) -> Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut c = Client {
            io: BufReader::new(stream),
        };
        c.expect(220).await?;
        Ok(c)
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.io
            .get_mut()
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Reads one whole reply; returns its last line.
    async fn reply(&mut self) -> Result<String> {
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(Duration::from_secs(30), self.io.read_line(&mut line))
                .await
                .map_err(|_| "reply timeout".to_owned())?
                .map_err(|e| format!("read: {e}"))?;
            if read == 0 {
                return Err("connection closed".into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line.trim_end().to_owned());
            }
        }
    }

    async fn expect(&mut self, code: u16) -> Result<String> {
        let reply = self.reply().await?;
        if reply.starts_with(&code.to_string()) {
            Ok(reply)
        } else {
            Err(format!("expected {code}, got {reply:?}"))
        }
    }

    async fn cmd(&mut self, line: &str, code: u16) -> Result<String> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.expect(code).await
    }
}

fn body(id: u64) -> String {
    let mut body = format!("X-Soak-Id: {id}\r\nSubject: soak {id}\r\n\r\n");
    for i in 0..(id % 40) {
        body.push_str(&format!("line {i} of message {id}\r\n"));
    }
    body.push_str("..a stuffed line\r\n");
    body
}

/// Counts shared by the client tasks.
#[derive(Default)]
struct Tally {
    next_id: AtomicU64,
    delivered: AtomicU64,
    sum: AtomicU64,
    sessions: AtomicU64,
    aborted: AtomicU64,
    failures: AtomicU64,
}

impl Tally {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn accepted(&self, id: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.sum
            .fetch_add(id.wrapping_mul(0x9e37_79b9_7f4a_7c15), Ordering::Relaxed);
    }
}

/// One message with MAIL, RCPT, DATA, each answered before the next.
async fn deliver(c: &mut Client, tally: &Tally) -> Result<()> {
    let id = tally.id();
    c.cmd("MAIL FROM:<a@soak.example>", 250).await?;
    c.cmd("RCPT TO:<b@soak.example>", 250).await?;
    c.cmd("DATA", 354).await?;
    c.send(body(id).as_bytes()).await?;
    c.cmd(".", 250).await?;
    tally.accepted(id);
    Ok(())
}

/// Two messages with PIPELINING: each envelope in one write, the second behind the first's dot.
async fn pipelined(c: &mut Client, tally: &Tally) -> Result<()> {
    let envelope = "MAIL FROM:<a@soak.example>\r\nRCPT TO:<b@soak.example>\r\nRCPT TO:<c@soak.example>\r\nDATA\r\n";
    c.send(envelope.as_bytes()).await?;
    for code in [250, 250, 250, 354] {
        c.expect(code).await?;
    }
    let first = tally.id();
    let second = tally.id();
    c.send(format!("{}.\r\n{envelope}", body(first)).as_bytes())
        .await?;
    c.expect(250).await?;
    tally.accepted(first);
    for code in [250, 250, 250, 354] {
        c.expect(code).await?;
    }
    c.send(format!("{}.\r\n", body(second)).as_bytes()).await?;
    c.expect(250).await?;
    tally.accepted(second);
    Ok(())
}

async fn session(port: u16, n: u64, tally: &Tally) -> Result<()> {
    let mut c = Client::connect(port).await?;
    c.cmd("EHLO soak-client.example", 250).await?;
    match n % 8 {
        0 | 1 => deliver(&mut c, tally).await?,
        2 | 3 => pipelined(&mut c, tally).await?,
        4 => {
            let good =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{LOGIN}\0{PASSWORD}"));
            c.cmd(&format!("AUTH PLAIN {good}"), 235).await?;
            deliver(&mut c, tally).await?;
        }
        5 => {
            let bad = base64::engine::general_purpose::STANDARD.encode(format!("\0{LOGIN}\0nope"));
            c.cmd(&format!("AUTH PLAIN {bad}"), 535).await?;
            deliver(&mut c, tally).await?;
        }
        6 => {
            // Reset in the middle of DATA: this id must never be stored.
            let id = tally.id();
            c.cmd("MAIL FROM:<a@soak.example>", 250).await?;
            c.cmd("RCPT TO:<b@soak.example>", 250).await?;
            c.cmd("DATA", 354).await?;
            c.send(body(id).as_bytes()).await?;
            let stream = c.io.into_inner();
            if n % 16 == 6 {
                let _ = stream.set_zero_linger();
            }
            drop(stream);
            tally.aborted.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        _ => {
            // QUIT in the middle of a transaction, after one good message.
            deliver(&mut c, tally).await?;
            c.cmd("MAIL FROM:<a@soak.example>", 250).await?;
            c.cmd("RCPT TO:<b@soak.example>", 250).await?;
            c.cmd("QUIT", 221).await?;
            tally.aborted.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    }
    c.cmd("QUIT", 221).await?;
    Ok(())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn stats(port: u16) -> Result<(u64, u64, u64)> {
    let mut c = Client::connect(port).await?;
    let reply = c.cmd(&format!("VRFY <{STATS}>"), 250).await?;
    let field = |name: &str| -> u64 {
        reply
            .split(' ')
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    Ok((field("messages="), field("duplicates="), field("sum=")))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(serve());
        return;
    }
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let clients: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);

    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("--serve")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut port = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("read the port");
    let port: u16 = port.trim().parse().expect("port");
    let pid = child.id();

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let duration = Duration::from_secs(seconds);
    let warmup = duration / 5;
    let rss_start = rss_kib(pid);
    let outcome = runtime.block_on(async {
        let mut workers = Vec::new();
        for _ in 0..clients {
            let tally = tally.clone();
            workers.push(tokio::spawn(async move {
                while started.elapsed() < duration {
                    let n = tally.sessions.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = session(port, n, &tally).await {
                        tally.failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("session {n}: {e}");
                    }
                }
            }));
        }
        let mut samples = Vec::new();
        while started.elapsed() < duration {
            tokio::time::sleep(Duration::from_secs(1)).await;
            samples.push((started.elapsed(), rss_kib(pid)));
        }
        for worker in workers {
            worker.await.expect("worker");
        }
        (samples, stats(port).await)
    });
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();

    let (samples, stats) = outcome;
    let rss_warm = samples
        .iter()
        .find(|(t, _)| *t >= warmup)
        .map_or(rss_start, |(_, r)| *r);
    let rss_end = samples.last().map_or(rss_start, |(_, r)| *r);
    let rss_max_after = samples
        .iter()
        .filter(|(t, _)| *t >= warmup)
        .map(|(_, r)| *r)
        .max()
        .unwrap_or(rss_end);
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let failures = tally.failures.load(Ordering::Relaxed);
    println!("duration        {:.1} s", elapsed.as_secs_f64());
    println!("clients         {clients}");
    println!("sessions        {}", tally.sessions.load(Ordering::Relaxed));
    println!(
        "messages        {delivered} accepted ({:.0}/s)",
        delivered as f64 / elapsed.as_secs_f64()
    );
    println!(
        "aborted         {} sessions",
        tally.aborted.load(Ordering::Relaxed)
    );
    println!("failures        {failures}");
    println!("rss start       {rss_start} KiB");
    println!(
        "rss warm-up     {rss_warm} KiB (at {:.0} s)",
        warmup.as_secs_f64()
    );
    println!("rss max after   {rss_max_after} KiB");
    println!("rss end         {rss_end} KiB");

    let mut problems = Vec::new();
    match stats {
        Ok((stored, duplicates, sum)) => {
            println!("server stored   {stored} messages, {duplicates} duplicates");
            if stored != delivered {
                problems.push(format!(
                    "server stored {stored}, clients saw {delivered} accepted"
                ));
            }
            if duplicates != 0 {
                problems.push(format!("{duplicates} duplicated messages"));
            }
            if sum != tally.sum.load(Ordering::Relaxed) {
                problems.push("the stored ids are not the accepted ones".into());
            }
        }
        Err(e) => problems.push(format!("no stats: {e}")),
    }
    if failures != 0 {
        problems.push(format!("{failures} sessions failed"));
    }
    // Flat after warm-up: allocator noise, not growth with the number of messages.
    if rss_max_after > rss_warm + rss_warm / 2 + 16 * 1024 {
        problems.push(format!(
            "memory grew from {rss_warm} KiB to {rss_max_after} KiB after warm-up"
        ));
    }
    if problems.is_empty() {
        println!("result          ok");
    } else {
        for p in &problems {
            println!("FAILED: {p}");
        }
        std::process::exit(1);
    }
}
