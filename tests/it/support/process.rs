//! Child processes of the tests: one guard that kills them however a test ends, and the
//! package's own `smtpd` binary run as a user would.

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use super::REPLY_TIMEOUT;

/// A child process, killed and reaped when dropped, so that a failing test leaves no server
/// behind.
pub struct KillOnDrop(pub Child);

impl Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A daemon's master process, stopped with SIGTERM when dropped (then killed if it lingers),
/// so that it takes its workers with it: SIGKILL would leave them behind (nginx, Postfix).
pub struct TermOnDrop(pub KillOnDrop);

impl TermOnDrop {
    /// Spawns `command` with its standard streams closed.
    pub fn spawn(command: &mut Command) -> TermOnDrop {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
        TermOnDrop(KillOnDrop(child))
    }
}

impl Drop for TermOnDrop {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
        while std::time::Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// `smtpd`, the binary of this package, to be given arguments and passed to [`Smtpd::start`].
pub fn smtpd_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smtpd"))
}

/// A running `smtpd`, killed on drop. Its stdout and stderr are read line by line on threads
/// of their own, to the end, so that it never blocks on a full pipe.
pub struct Smtpd {
    child: KillOnDrop,
    /// What `smtpd listening on …` named, in order.
    pub listening: Vec<String>,
    /// Lines of stderr before and including the `listening` one.
    pub started: Vec<String>,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Smtpd {
    /// Runs `command` (see [`smtpd_command`]) and waits for its `smtpd listening on` line.
    pub fn start(mut command: Command) -> Smtpd {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn smtpd");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        let mut smtpd = Smtpd {
            child: KillOnDrop(child),
            listening: Vec::new(),
            started: Vec::new(),
            stdout,
            stderr,
        };
        smtpd.started = smtpd.stderr_until("smtpd listening on ");
        let line = smtpd.started.last().expect("the listening line");
        smtpd.listening = line["smtpd listening on ".len()..]
            .split(", ")
            .map(str::to_owned)
            .collect();
        smtpd
    }

    /// `smtpd --listen 127.0.0.1:0 args…`, started.
    pub fn tcp(args: &[&str]) -> Smtpd {
        let mut command = smtpd_command();
        command.args(["--listen", "127.0.0.1:0"]).args(args);
        Smtpd::start(command)
    }

    /// The first listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs()[0]
    }

    /// Every listening address, in order; panics on a Unix socket.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let parse = |a: &String| a.parse().expect("a listening address");
        self.listening.iter().map(parse).collect()
    }

    /// The process id, for `kill`.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Reads stderr lines up to and including the first that contains `text`.
    pub fn stderr_until(&self, text: &str) -> Vec<String> {
        until(&self.stderr, text, "stderr")
    }

    /// Reads stdout lines up to and including the first that contains `text`.
    pub fn stdout_until(&self, text: &str) -> Vec<String> {
        until(&self.stdout, text, "stdout")
    }

    /// Sends `kill -signal` (e.g. `TERM`, `HUP`).
    pub fn signal(&self, signal: &str) {
        let pid = self.id().to_string();
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(&pid)
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} {pid}");
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        self.signal("TERM");
        let deadline = std::time::Instant::now() + REPLY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for smtpd") {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "smtpd ignored SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn until(lines: &mpsc::Receiver<String>, text: &str, pipe: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(REPLY_TIMEOUT)
            .unwrap_or_else(|_| panic!("smtpd wrote no `{text}` on {pipe}; got {seen:?}"));
        let done = line.contains(text);
        seen.push(line);
        if done {
            return seen;
        }
    }
}

fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            // Reads on when nobody listens any more, so that smtpd never writes into a
            // closed pipe.
            let _ = tx.send(line);
        }
    });
    rx
}

/// Runs `smtpd args…` to its end (see [`tools::run`]).
pub async fn run_smtpd(args: &[&str]) -> std::process::Output {
    let mut command = smtpd_command();
    command.args(args);
    super::tools::run(command).await
}

/// The variable that names the test a process of its own was started for.
const ISOLATED: &str = "SMTPD_TEST_ISOLATED";

/// For a test that measures or sets something process-wide (peak RSS, the global `tracing`
/// subscriber): whether this is a process of its own, running only the test `name` (its
/// path in this binary, e.g. `streaming::sink_discards_100_mib_in_bounded_memory`). If not,
/// runs `name` alone in a new process of this test binary, fails unless it passed there,
/// and returns false: the caller returns, its body having run in the other process.
pub async fn isolated(name: &str) -> bool {
    if std::env::var(ISOLATED).as_deref() == Ok(name) {
        return true;
    }
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ISOLATED, name);
    let output = super::tools::run(command).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name}, run alone: {}",
        super::tools::shown(&output)
    );
    false
}
