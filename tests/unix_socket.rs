//! Unix-domain socket listeners: `Server::listen_unix` and `smtpd --listen unix:/path`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{REPLY_TIMEOUT, TempDir};
use smtp_core::{Envelope, Handler, Peer, Reply, Server, Session};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;

/// A line-level SMTP client over a Unix socket.
struct UnixClient(BufReader<UnixStream>);

impl UnixClient {
    async fn connect(path: &Path) -> UnixClient {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, UnixStream::connect(path))
            .await
            .expect("connect timeout")
            .expect("connect");
        UnixClient(BufReader::new(stream))
    }

    async fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(REPLY_TIMEOUT, self.0.read_line(&mut line))
                .await
                .expect("timed out waiting for a reply")
                .expect("read");
            assert!(n > 0, "connection closed; reply so far: {lines:?}");
            let line = line.strip_suffix("\r\n").expect("CRLF").to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines;
            }
        }
    }

    async fn cmd(&mut self, line: &str, code: &str) -> Vec<String> {
        self.0
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        let reply = self.reply().await;
        assert!(reply[0].starts_with(code), "`{line}`: {reply:?}");
        reply
    }
}

#[derive(Clone, Default)]
struct Peers(Arc<Mutex<Vec<Peer>>>);

impl Handler for Peers {
    async fn handle_data(&self, session: &mut Session, _: &mut Envelope) -> Reply {
        self.0.lock().unwrap().push(session.peer.clone());
        Reply::ok()
    }
}

async fn dialogue(path: &Path) {
    let mut c = UnixClient::connect(path).await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    c.cmd("EHLO client.example", "250").await;
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    c.cmd("RCPT TO:<b@example.com>", "250").await;
    c.cmd("DATA", "354").await;
    c.cmd("hi\r\n.", "250").await;
    c.cmd("QUIT", "221").await;
}

#[tokio::test]
async fn a_message_over_a_unix_socket() {
    let dir = TempDir::new("unix");
    let path = dir.0.join("smtp.sock");
    let peers = Peers::default();
    let server = Server::new(peers.clone(), common::config())
        .listen_unix(&path)
        .unwrap()
        .start();
    dialogue(&path).await;
    assert_eq!(*peers.0.lock().unwrap(), [Peer::Unix(path.clone())]);
    server.shutdown().await;
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_but_not_a_regular_file() {
    let dir = TempDir::new("unix-stale");
    let path = dir.0.join("smtp.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "a stale socket file is left behind");
    let server = Server::new(Peers::default(), common::config())
        .listen_unix(&path)
        .expect("the stale socket is removed")
        .start();
    dialogue(&path).await;
    server.shutdown().await;

    let file = dir.0.join("not-a-socket");
    std::fs::write(&file, "data").unwrap();
    let refused = Server::new(Peers::default(), common::config()).listen_unix(&file);
    assert!(refused.is_err(), "a regular file must not be removed");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

#[tokio::test]
async fn tcp_and_unix_listeners_together() {
    let dir = TempDir::new("unix-both");
    let path = dir.0.join("smtp.sock");
    let server = Server::new(Peers::default(), common::config())
        .listen("127.0.0.1:0")
        .await
        .unwrap()
        .listen_unix(&path)
        .unwrap()
        .start();
    dialogue(&path).await;
    let mut c = common::Client::connect(server.local_addr()).await;
    c.cmd("QUIT", 221).await;
    server.shutdown().await;
}

#[tokio::test]
async fn smtpd_listens_on_a_unix_socket() {
    let dir = TempDir::new("unix-bin");
    let path: PathBuf = dir.0.join("smtpd.sock");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_smtpd"))
        .arg("--listen")
        .arg(format!("unix:{}", path.display()))
        .args([
            "--hostname",
            "test.example",
            "--ident",
            "smtpd test",
            "--handler",
            "sink",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start smtpd");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&path).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "smtpd did not listen on {path:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    dialogue(&path).await;
}

/// LMTP is meant for Unix sockets (RFC 2033 §1): LHLO, then one reply per recipient.
#[tokio::test]
async fn lmtp_over_a_unix_socket() {
    let dir = TempDir::new("unix-lmtp");
    let path = dir.0.join("lmtp.sock");
    let peers = Peers::default();
    let config = smtp_core::Config {
        lmtp: true,
        ..common::config()
    };
    let server = Server::new(peers.clone(), config)
        .listen_unix(&path)
        .unwrap()
        .start();
    let mut c = UnixClient::connect(&path).await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    c.cmd("LHLO client.example", "250").await;
    c.cmd("MAIL FROM:<a@example.com>", "250").await;
    c.cmd("RCPT TO:<b@example.com>", "250").await;
    c.cmd("RCPT TO:<c@example.com>", "250").await;
    c.cmd("DATA", "354").await;
    c.cmd("hi\r\n.", "250").await;
    let second = c.reply().await;
    assert!(second[0].starts_with("250 "), "{second:?}");
    c.cmd("QUIT", "221").await;
    assert_eq!(*peers.0.lock().unwrap(), [Peer::Unix(path.clone())]);
    server.shutdown().await;
}
