//! A real Dovecot auth service in a temp dir: its own base_dir, a passwd-file, an auth-client
//! unix listener and a TCP one, in a process group of its own.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// alice has a plain password (every mechanism), bob a crypt hash (PLAIN and LOGIN only),
/// carol SCRAM keys (PLAIN, LOGIN, SCRAM-SHA-256); all three passwords are `s3cret`. Users
/// named `tempfail…` get Dovecot's temporary failure.
const USERS: &str = "alice:{PLAIN}s3cret
bob:{SHA512-CRYPT}$6$dAsmZYilB.Cxgt14$kueRyw15psEH0xw4I4nHHT2yAwh0/HbbHM6PZGTQYvQQhMFBfbqohT5BF87bDJkzA/sApXli4nG8VZEkWhdgB1
carol:{SCRAM-SHA-256}4096,rSOSsbnhycBBSHu64YCdog==,0nSUXXOGrtGEUBMFnIQgM/0BBVuREhYrtX8Y6CThYMw=,XA0dWvtXjkcZH0IuUBbb14Xxllqt2D3WEUrMRr98yy4=
";

/// Dovecot's master and auth processes, in a process group of their own, stopped on drop.
pub struct Dovecot {
    pub dir: TempDir,
    pub port: u16,
    pub master: Option<Child>,
}

impl Dovecot {
    /// Starts one, or returns `None` (after a notice) when dovecot is not installed.
    pub fn start() -> Option<Dovecot> {
        if !tools::available("dovecot") {
            return None;
        }
        let dir = TempDir::new("dovecot");
        let d = dir.0.display();
        let port = free_port();
        dir.write("users", USERS);
        // checkpassword's "temporary problem": Dovecot answers `FAIL code=temp_fail`.
        let script = dir.write("tempfail", "#!/bin/sh\nexit 111\n");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod the checkpassword script");
        dir.write(
            "dovecot.conf",
            format!(
                "default_internal_user = root
protocols =
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 scram-sha-256
auth_failure_delay = 0
auth_debug = yes
passdb {{
  driver = passwd-file
  args = {d}/users
}}
passdb {{
  driver = checkpassword
  args = {d}/tempfail
  username_filter = tempfail*
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/home
}}
service auth {{
  unix_listener {d}/auth-client {{
    mode = 0666
  }}
  inet_listener auth-client {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"
            ),
        );
        let mut dovecot = Dovecot {
            dir,
            port,
            master: None,
        };
        dovecot.run();
        Some(dovecot)
    }

    /// Runs the master and waits until the socket completes a handshake.
    pub fn run(&mut self) {
        let master = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(self.dir.0.join("dovecot.conf"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run dovecot");
        self.master = Some(master);
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while !handshake_completes(&self.socket()) {
            assert!(
                Instant::now() < deadline,
                "dovecot did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops every process of the group (SIGTERM to the master alone leaves the auth
    /// process behind for as long as a client stays connected).
    pub fn stop(&mut self) {
        let Some(mut master) = self.master.take() else {
            return;
        };
        let group = format!("-{}", master.id());
        kill("-TERM", &group);
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while matches!(master.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        kill("-KILL", &group);
        let _ = master.wait();
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.0.join("auth-client")
    }

    /// `--auth-dovecot unix:…` and the flags every smtpd of these tests gets.
    fn smtpd_args(&self) -> Vec<String> {
        [
            "--handler",
            "sink",
            "--no-auth-require-tls",
            "--auth-failure-delay-ms",
            "0",
            "--auth-dovecot-no-penalty",
            "--auth-dovecot",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("unix:{}", self.socket().display())])
        .collect()
    }

    pub fn smtpd(&self, more: &[&str]) -> Smtpd {
        let mut command = smtpd_command();
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(self.smtpd_args())
            .args(more);
        Smtpd::start(command)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("dovecot.log")).unwrap_or_default()
    }

    /// The log once it contains `text` (Dovecot's log process writes it a moment later).
    pub fn log_with(&self, text: &str) -> String {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            assert!(Instant::now() < deadline, "no {text:?} in {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn kill(signal: &str, group: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", group])
        .stderr(Stdio::null())
        .status();
}

/// Whether the auth-client socket at `path` answers a handshake up to `DONE`.
fn handshake_completes(path: &std::path::Path) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"VERSION\t1\t2\nCPID\t1\n").is_err() {
        return false;
    }
    let mut seen = Vec::new();
    let mut chunk = [0; 1024];
    while let Ok(n @ 1..) = stream.read(&mut chunk) {
        seen.extend_from_slice(&chunk[..n]);
        if seen.windows(5).any(|w| w == b"DONE\n") {
            return true;
        }
    }
    false
}
