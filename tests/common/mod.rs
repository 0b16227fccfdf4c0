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
        let mut buf = Vec::new();
        let n = tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_until(b'\n', &mut buf))
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
    pub async fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self
                .line()
                .await
                .unwrap_or_else(|| panic!("connection closed; reply so far: {lines:?}"));
            let last = line.len() < 4 || line.as_bytes()[3] == b' ';
            lines.push(line);
            if last {
                return lines;
            }
        }
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
