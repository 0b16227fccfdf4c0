//! Real client programs (python3, swaks, openssl, curl…) run against the server under test.
//!
//! Under `CI=true` a missing program fails the test instead of skipping it, so a CI machine
//! without an install step cannot turn interop tests green by skipping them.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one client program may run before it is killed and the test fails.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `program --version` runs (see [`external_tool`]).
pub fn available(program: &str) -> bool {
    external_tool(program, Command::new(program).arg("--version"))
}

/// Whether the external tool `what` works: its `probe` command exits 0. Under `CI=true` a tool
/// that does not work panics; elsewhere the test is skipped with a notice.
pub fn external_tool(what: &str, probe: &mut Command) -> bool {
    let found = probe
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is required when CI=true (see .ci/run), but it cannot be run"
        );
        eprintln!("NOTICE: {what} not found; skipping this test (it fails under CI=true)");
    }
    found
}

/// Runs `command` off the async runtime (the server under test runs on it) with stdin closed,
/// and returns its output. Panics if it runs longer than `limit`, after killing it.
pub async fn run_for(command: Command, limit: Duration) -> Output {
    tokio::task::spawn_blocking(move || run_blocking(command, limit))
        .await
        .expect("join the client thread")
}

/// [`run_for`] with [`CLIENT_TIMEOUT`].
pub async fn run(command: Command) -> Output {
    run_for(command, CLIENT_TIMEOUT).await
}

fn run_blocking(mut command: Command, limit: Duration) -> Output {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    // Drain both pipes while waiting, so a chatty client cannot block on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Text of a run's stdout and stderr, for assertion messages.
pub fn shown(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// An HTTP request with curl: `method` on `url`, with `body` as data; the status code and the
/// response body. Panics when curl itself fails (no connection, timeout).
pub async fn http(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        url,
    ]);
    if let Some(body) = body {
        curl.args(["-d", body]);
    }
    let output = run(curl).await;
    assert!(output.status.success(), "curl {url}: {}", shown(&output));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl's status line");
    (status.parse().expect("a status code"), body.to_owned())
}

/// HAProxy's binary (on PATH, or in /usr/sbin or /usr/local/sbin, where Debian puts it and
/// a non-root PATH may not look), or `None` after a notice; under `CI=true` a missing one
/// fails the test.
pub fn haproxy() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let binary = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| "haproxy".into());
    external_tool("haproxy", Command::new(&binary).arg("-v")).then_some(binary)
}

/// swaks logging in to `addr` with `mechanism` as `user` (HELO `client.example`, from
/// alice@example.com to bob@example.com, 10 s timeout); the caller adds what it needs.
pub fn swaks_auth(
    addr: std::net::SocketAddr,
    mechanism: &str,
    user: &str,
    password: &str,
) -> Command {
    let mut swaks = Command::new("swaks");
    swaks
        .args(["--server", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--helo", "client.example"])
        .args(["--from", "alice@example.com", "--to", "bob@example.com"])
        .args([
            "--auth",
            mechanism,
            "--auth-user",
            user,
            "--auth-password",
            password,
        ])
        .args(["--timeout", "10"]);
    swaks
}
