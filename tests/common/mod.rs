//! Shared fixtures of the end-to-end tests: a server on 127.0.0.1:0 and a raw-socket client
//! that checks exact reply lines. Every read has a timeout, so a test never hangs.
#![allow(dead_code)]

use std::time::Duration;

use smtp_core::{Config, Handler, Server, ServerHandle};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long any single reply may take before a test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A config for tests: fixed host name, AUTH allowed without TLS unless a test says otherwise.
pub fn config() -> Config {
    Config {
        hostname: "test.example".into(),
        ident: "smtpd test".into(),
        ..Config::default()
    }
}

/// Starts `handler` with `config` on 127.0.0.1 with an OS-picked port.
pub async fn start<H: Handler>(handler: H, config: Config) -> ServerHandle {
    Server::new(handler, config)
        .listen("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
        .start()
}

/// A raw SMTP client.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects without reading the greeting.
    pub async fn connect_raw(addr: std::net::SocketAddr) -> Client {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timeout")
            .expect("connect");
        let (r, w) = stream.into_split();
        Client {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    /// Connects and checks that the greeting is a 220.
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let mut c = Client::connect_raw(addr).await;
        let greeting = c.reply().await;
        assert!(greeting[0].starts_with("220 "), "greeting: {greeting:?}");
        c
    }

    /// Connects and sends EHLO.
    pub async fn ehloed(addr: std::net::SocketAddr) -> Client {
        let mut c = Client::connect(addr).await;
        c.cmd("EHLO client.example", 250).await;
        c
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// Reads one line (with CRLF stripped); `None` on EOF.
    pub async fn line(&mut self) -> Option<String> {
        read_line(&mut self.reader).await
    }

    /// Reads one whole (possibly multi-line) reply; panics on EOF.
    pub async fn reply(&mut self) -> Vec<String> {
        read_reply(&mut self.reader).await
    }

    /// Sends `line` + CRLF and checks the reply code; returns the reply lines.
    pub async fn cmd(&mut self, line: &str, code: u16) -> Vec<String> {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let reply = self.reply().await;
        assert!(
            reply[0].starts_with(&code.to_string()),
            "`{line}` expected {code}, got {reply:?}"
        );
        reply
    }

    /// Sends `line` + CRLF and checks the exact one-line reply.
    pub async fn expect(&mut self, line: &str, reply: &str) {
        self.send(format!("{line}\r\n").as_bytes()).await;
        assert_eq!(
            self.reply().await,
            vec![reply.to_owned()],
            "reply to `{line}`"
        );
    }

    /// Checks that the server closed the connection (EOF or reset) without sending more.
    pub async fn expect_closed(&mut self) {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_until(b'\n', &mut buf))
            .await
            .expect("timed out waiting for close");
        match read {
            Ok(0) | Err(_) => {}
            Ok(_) => panic!("expected close, got {:?}", String::from_utf8_lossy(&buf)),
        }
    }

    /// MAIL, RCPT, DATA with `body` (already dot-stuffed, ending in CRLF), expecting 250.
    pub async fn send_message(&mut self, from: &str, to: &[&str], body: &str) {
        self.cmd(&format!("MAIL FROM:<{from}>"), 250).await;
        for rcpt in to {
            self.cmd(&format!("RCPT TO:<{rcpt}>"), 250).await;
        }
        self.cmd("DATA", 354).await;
        self.send(body.as_bytes()).await;
        self.cmd(".", 250).await;
    }
}

// ---- Helpers of the engine_* and interop_clients tests. ----

/// Messages collected by [`collector`].
pub type Messages = std::sync::Arc<std::sync::Mutex<Vec<smtp_core::handlers::ReceivedMessage>>>;

/// A handler that records every message it accepts, and the list it records into.
pub fn collector() -> (impl Handler, Messages) {
    let messages = Messages::default();
    let sink = messages.clone();
    let handler = smtp_core::handlers::on_message(move |message| {
        sink.lock().unwrap().push(message);
        async { Ok(()) }
    });
    (handler, messages)
}

/// Waits until `messages` holds at least `n` messages, failing after [`REPLY_TIMEOUT`].
pub async fn wait_for_messages(messages: &Messages, n: usize) {
    let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
    while messages.lock().unwrap().len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} messages, got {}",
            messages.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A `Write` into a shared buffer, for `Debugging::to_writer`.
#[derive(Clone, Default)]
pub struct SharedBuf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    /// What was written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A new, empty, uniquely named directory.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "smtpd-test-{tag}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Client {
    /// Connects from the local address `from` (e.g. 127.0.0.2) without reading the greeting.
    pub async fn connect_raw_from(from: std::net::IpAddr, addr: std::net::SocketAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::new(from, 0))
            .expect("bind client address");
        let stream = tokio::time::timeout(REPLY_TIMEOUT, socket.connect(addr))
            .await
            .expect("connect timeout")
            .expect("connect");
        let (r, w) = stream.into_split();
        Client {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    /// The client's own address, as the server sees it.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.writer.as_ref().local_addr().expect("local address")
    }

    /// Turns off Nagle's algorithm, so that each `send` leaves as its own segment.
    pub fn nodelay(&self) {
        self.writer.as_ref().set_nodelay(true).expect("nodelay");
    }

    /// Returns the bytes of exactly one read from the socket (or what is already buffered).
    pub async fn read_once(&mut self) -> Vec<u8> {
        let buf = tokio::time::timeout(REPLY_TIMEOUT, self.reader.fill_buf())
            .await
            .expect("timed out waiting for data")
            .expect("read")
            .to_vec();
        self.reader.consume(buf.len());
        buf
    }

    /// Sends `lines` (each + CRLF) in one write and returns the first line of each of the
    /// `n` replies, in order.
    pub async fn pipeline(&mut self, lines: &[&str], n: usize) -> Vec<String> {
        let mut batch = String::new();
        for line in lines {
            batch.push_str(line);
            batch.push_str("\r\n");
        }
        self.send(batch.as_bytes()).await;
        let mut replies = Vec::new();
        for _ in 0..n {
            replies.push(self.reply().await.join("\n"));
        }
        replies
    }

    /// Sends one message: MAIL, RCPT, DATA and `body` (dot-stuffed, ending in CRLF), `.`;
    /// returns the whole reply to the final `.`.
    pub async fn deliver(&mut self, from: &str, to: &[&str], body: &[u8]) -> Vec<String> {
        self.cmd(&format!("MAIL FROM:<{from}>"), 250).await;
        for rcpt in to {
            self.cmd(&format!("RCPT TO:<{rcpt}>"), 250).await;
        }
        self.cmd("DATA", 354).await;
        self.send(body).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}

// ---- AUTH helpers (tests/auth_*.rs) ----

/// [`config`] with AUTH offered over plaintext, as aiosmtpd's `auth_require_tls=False` fixtures.
pub fn auth_config() -> Config {
    Config {
        auth_require_tls: false,
        ..config()
    }
}

/// Standard base64 of `bytes`.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A PLAIN response (RFC 4616): base64 of `authzid NUL login NUL password`.
pub fn plain(authzid: &str, login: &str, password: &str) -> String {
    b64(format!("{authzid}\0{login}\0{password}"))
}

/// Everything `tracing` writes, kept in memory: install [`LogBuffer::subscriber`] with
/// `tracing::subscriber::set_default` in a current-thread runtime test so that the server's
/// tasks log into it.
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// A TRACE-level `fmt` subscriber writing into this buffer, without colours.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish()
    }

    /// What was logged so far.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

/// TLS certificates and a client that can switch to TLS (see `tls.rs`).
pub mod tls;
pub mod tools;

// ---- SASL helpers (tests/sasl_*.rs, tests/auth_limiter.rs) ----

/// Runs `python3 -c script args…` (see [`tools::run`]); returns (success, stdout, stderr).
pub async fn python(script: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = std::process::Command::new("python3");
    command.arg("-c").arg(script).args(args);
    let output = tools::run(command).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Reads one reply line (CRLF stripped, checked); `None` on EOF. Shared by the plain and TLS
/// clients of the tests.
pub async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Option<String> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(REPLY_TIMEOUT, reader.read_until(b'\n', &mut buf))
        .await
        .expect("timed out waiting for a reply line")
        .expect("read");
    if n == 0 {
        return None;
    }
    assert!(
        buf.ends_with(b"\r\n"),
        "reply line without CRLF: {:?}",
        String::from_utf8_lossy(&buf)
    );
    buf.truncate(buf.len() - 2);
    Some(String::from_utf8(buf).expect("reply is UTF-8"))
}

/// Reads one whole (possibly multi-line) reply; panics on EOF.
pub async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = read_line(reader)
            .await
            .unwrap_or_else(|| panic!("connection closed; reply so far: {lines:?}"));
        let last = line.len() < 4 || line.as_bytes()[3] == b' ';
        lines.push(line);
        if last {
            return lines;
        }
    }
}
