//! Unix-domain socket listeners: `Server::listen_unix` and `smtpd --listen unix:/path`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::support::{Client, REPLY_TIMEOUT, Smtpd, TempDir, smtpd_command};
use smtp_core::{Envelope, Handler, Peer, Reply, Server, Session};
use tokio::net::UnixStream;

/// Connects to the Unix socket at `path`, without reading the greeting.
async fn connect(path: &Path) -> Client<UnixStream> {
    let stream = tokio::time::timeout(REPLY_TIMEOUT, UnixStream::connect(path))
        .await
        .expect("connect timeout")
        .expect("connect");
    Client::new(stream)
}

#[derive(Clone, Default)]
struct Peers(Arc<Mutex<Vec<Peer>>>);

impl Handler for Peers {
    async fn handle_data(&self, session: &mut Session, _: &mut Envelope) -> Reply {
        self.0.lock().unwrap().push(session.peer().clone());
        Reply::ok()
    }
}

async fn dialogue(path: &Path) {
    let mut c = connect(path).await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    c.cmd("EHLO client.example", 250).await;
    c.begin_data("a@example.com", &["b@example.com"]).await;
    c.cmd("hi\r\n.", 250).await;
    c.cmd("QUIT", 221).await;
}

#[tokio::test]
async fn a_message_over_a_unix_socket() {
    let dir = TempDir::new("unix");
    let path = dir.0.join("smtp.sock");
    let peers = Peers::default();
    let server = Server::new(peers.clone(), crate::support::config())
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
    let server = Server::new(Peers::default(), crate::support::config())
        .listen_unix(&path)
        .expect("the stale socket is removed")
        .start();
    dialogue(&path).await;
    server.shutdown().await;

    let file = dir.0.join("not-a-socket");
    std::fs::write(&file, "data").unwrap();
    let refused = Server::new(Peers::default(), crate::support::config()).listen_unix(&file);
    assert!(refused.is_err(), "a regular file must not be removed");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

#[tokio::test]
async fn tcp_and_unix_listeners_together() {
    let dir = TempDir::new("unix-both");
    let path = dir.0.join("smtp.sock");
    let server = Server::new(Peers::default(), crate::support::config())
        .listen("127.0.0.1:0")
        .await
        .unwrap()
        .listen_unix(&path)
        .unwrap()
        .start();
    dialogue(&path).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("QUIT", 221).await;
    server.shutdown().await;
}

#[tokio::test]
async fn smtpd_listens_on_a_unix_socket() {
    let dir = TempDir::new("unix-bin");
    let path: PathBuf = dir.0.join("smtpd.sock");
    let mut command = smtpd_command();
    command
        .arg("--listen")
        .arg(format!("unix:{}", path.display()))
        .args([
            "--hostname",
            "test.example",
            "--ident",
            "smtpd test",
            "--handler",
            "sink",
        ]);
    let _smtpd = Smtpd::start(command);
    dialogue(&path).await;
}

/// LMTP is meant for Unix sockets (RFC 2033 §1): LHLO, then one reply per recipient.
#[tokio::test]
async fn lmtp_over_a_unix_socket() {
    let dir = TempDir::new("unix-lmtp");
    let path = dir.0.join("lmtp.sock");
    let peers = Peers::default();
    let config = {
        let mut config = crate::support::config();
        config.lmtp = true;
        config
    };
    let server = Server::new(peers.clone(), config)
        .listen_unix(&path)
        .unwrap()
        .start();
    let mut c = connect(&path).await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    c.cmd("LHLO client.example", 250).await;
    c.begin_data("a@example.com", &["b@example.com", "c@example.com"])
        .await;
    c.cmd("hi\r\n.", 250).await;
    let second = c.reply().await;
    assert!(second[0].starts_with("250 "), "{second:?}");
    c.cmd("QUIT", 221).await;
    assert_eq!(*peers.0.lock().unwrap(), [Peer::Unix(path.clone())]);
    server.shutdown().await;
}
