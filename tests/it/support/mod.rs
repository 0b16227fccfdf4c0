//! Shared fixtures of the end-to-end tests: a server on 127.0.0.1:0 (or on an in-memory
//! stream), the one test client, certificates, external programs and child processes.

use std::time::{Duration, Instant};

use smtp_core::{Config, Handler, Server, ServerHandle};

mod client;
pub mod nats;
pub mod process;
pub mod tls;
pub mod tools;

pub use client::{Client, TlsClient};
pub use process::{KillOnDrop, Smtpd, TermOnDrop, isolated, run_smtpd, smtpd_command};

/// How long any single reply may take before a test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A port on 127.0.0.1 that was free a moment ago, for a program that must be told its port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config for tests: fixed host name, AUTH allowed without TLS unless a test says otherwise.
pub fn config() -> Config {
    {
        let mut config = Config::default();
        config.hostname = "test.example".into();
        config.ident = "smtpd test".into();
        config
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

/// Starts `handler` with `config` and no listener: clients come in through
/// [`Client::in_memory`]. Under `#[tokio::test(start_paused = true)]` its timers take no real
/// time: the clock jumps to the next deadline whenever every task waits.
pub fn start_in_memory<H: Handler>(handler: H, config: Config) -> ServerHandle {
    Server::new(handler, config).start()
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

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a file in the temp dir");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- AUTH helpers (tests/auth_*.rs) ----

/// [`config`] with AUTH offered over plaintext, as aiosmtpd's `auth_require_tls=False` fixtures.
pub fn auth_config() -> Config {
    {
        let mut config = config();
        config.auth_require_tls = false;
        config
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

/// Memory shared with the test, written as a `std::io::Write`: what a `Debugging` handler
/// prints, or with [`SharedBuf::subscriber`] everything `tracing` logs. Install that subscriber
/// with `tracing::subscriber::set_default` in a current-thread runtime test, so that the
/// server's tasks log into it.
#[derive(Clone, Default)]
pub struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    /// A TRACE-level `fmt` subscriber writing into this buffer, without colours.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish()
    }

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

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedBuf {
    type Writer = SharedBuf;

    fn make_writer(&'a self) -> SharedBuf {
        self.clone()
    }
}

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

/// Waits, checking every 100 ms, until `done` says so; panics with `what` after `limit`.
pub async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut done: F) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
