//! The one SMTP test client, over any byte stream: TCP, TLS (implicit or after STARTTLS), a
//! Unix socket, or an in-memory `tokio::io::duplex` served by `ServerHandle::serve_stream`.
//! Every read has a timeout, so a test never hangs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use smtp_core::{Peer, ServerHandle};
use tokio::io::DuplexStream;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::REPLY_TIMEOUT;
use super::tls::SERVER_NAME;

/// An SMTP client that checks exact reply lines.
pub struct Client<S = TcpStream> {
    io: BufReader<S>,
}

/// A client speaking over TLS.
pub type TlsClient<S = TcpStream> = Client<TlsStream<S>>;

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// A client over `stream`, without reading the greeting.
    pub fn new(stream: S) -> Client<S> {
        Client {
            io: BufReader::new(stream),
        }
    }

    /// Reads the greeting and checks that it is a 220.
    pub async fn greeted(mut self) -> Client<S> {
        let greeting = self.reply().await;
        assert!(greeting[0].starts_with("220 "), "greeting: {greeting:?}");
        self
    }

    /// Sends raw bytes in one write.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write");
        self.io.flush().await.expect("flush");
    }

    /// Reads one line (CRLF stripped, checked); `None` on EOF.
    pub async fn line(&mut self) -> Option<String> {
        read_line(&mut self.io).await
    }

    /// Reads one whole (possibly multi-line) reply; panics on EOF.
    pub async fn reply(&mut self) -> Vec<String> {
        read_reply(&mut self.io).await
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

    /// EHLO, expecting 250; returns the extension keywords (first line skipped).
    pub async fn ehlo(&mut self, name: &str) -> Vec<String> {
        let reply = self.cmd(&format!("EHLO {name}"), 250).await;
        reply[1..].iter().map(|l| l[4..].to_owned()).collect()
    }

    /// `AUTH PLAIN` with an initial response for `user`/`pass`, expecting 235.
    pub async fn auth_plain(&mut self) {
        self.expect(
            &format!("AUTH PLAIN {}", super::plain("", "user", "pass")),
            "235 2.7.0 Authentication successful",
        )
        .await;
    }

    /// Sends `lines` (each + CRLF) in one write and returns each of the `n` replies that
    /// follow, its lines joined by `\n`.
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

    /// MAIL and RCPT (each expecting 250), then DATA (354): a transaction up to its message.
    pub async fn begin_data(&mut self, from: &str, to: &[&str]) {
        self.cmd(&format!("MAIL FROM:<{from}>"), 250).await;
        for rcpt in to {
            self.cmd(&format!("RCPT TO:<{rcpt}>"), 250).await;
        }
        self.cmd("DATA", 354).await;
    }

    /// Sends one message: [`Client::begin_data`], `body` (dot-stuffed, ending in CRLF) and `.`;
    /// returns the whole reply to the final `.`.
    pub async fn deliver(&mut self, from: &str, to: &[&str], body: &[u8]) -> Vec<String> {
        self.begin_data(from, to).await;
        self.send(body).await;
        self.send(b".\r\n").await;
        self.reply().await
    }

    /// [`Client::deliver`], expecting a 250 for the message.
    pub async fn send_message(&mut self, from: &str, to: &[&str], body: &str) {
        let reply = self.deliver(from, to, body.as_bytes()).await;
        assert!(
            reply[0].starts_with("250"),
            "`.` expected 250, got {reply:?}"
        );
    }

    /// What has been received but not read yet.
    pub fn buffered(&self) -> &[u8] {
        self.io.buffer()
    }

    /// Returns the bytes of exactly one read (or what is already buffered).
    pub async fn read_once(&mut self) -> Vec<u8> {
        let buf = tokio::time::timeout(REPLY_TIMEOUT, self.io.fill_buf())
            .await
            .expect("timed out waiting for data")
            .expect("read")
            .to_vec();
        self.io.consume(buf.len());
        buf
    }

    /// Checks that nothing arrives within `wait` (and nothing is buffered).
    pub async fn expect_silence(&mut self, wait: Duration) {
        assert!(
            self.io.buffer().is_empty(),
            "unexpected buffered input: {:?}",
            String::from_utf8_lossy(self.io.buffer())
        );
        let mut byte = [0u8; 1];
        if let Ok(read) = tokio::time::timeout(wait, self.io.read(&mut byte)).await {
            match read {
                Ok(0) => panic!("connection closed instead of staying silent"),
                Ok(_) => {
                    let mut rest = Vec::new();
                    let _ = tokio::time::timeout(wait, self.io.read_until(b'\n', &mut rest)).await;
                    rest.insert(0, byte[0]);
                    panic!("unexpected input: {:?}", String::from_utf8_lossy(&rest));
                }
                Err(e) => panic!("read failed instead of staying silent: {e}"),
            }
        }
    }

    /// Checks that the server closed the connection (EOF or reset) without sending more.
    pub async fn expect_closed(&mut self) {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.io.read_until(b'\n', &mut buf))
            .await
            .expect("timed out waiting for close");
        match read {
            Ok(0) | Err(_) => {}
            Ok(_) => panic!("expected close, got {:?}", String::from_utf8_lossy(&buf)),
        }
    }

    /// Reads until the server closes (EOF, reset, or a TLS close/alert) and returns what came.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        // EOF, a reset and a TLS error all mean the server closed.
        let _ = tokio::time::timeout(REPLY_TIMEOUT, self.io.read_to_end(&mut all))
            .await
            .expect("timed out waiting for the server to close");
        all
    }

    /// STARTTLS, `220 Ready to start TLS`, handshake.
    pub async fn starttls(mut self, config: Arc<rustls::ClientConfig>) -> TlsClient<S> {
        self.expect("STARTTLS", "220 Ready to start TLS").await;
        self.handshake(config).await.expect("TLS handshake")
    }

    /// Runs the TLS handshake now. Nothing may be buffered: bytes after a `220` to STARTTLS
    /// would be plaintext sent after the server's last plaintext reply.
    pub async fn handshake(
        self,
        config: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<TlsClient<S>> {
        assert!(
            self.io.buffer().is_empty(),
            "plaintext after the 220: {:?}",
            String::from_utf8_lossy(self.io.buffer())
        );
        let stream = self.io.into_inner();
        let name = ServerName::try_from(SERVER_NAME).expect("server name");
        let tls = tokio::time::timeout(
            REPLY_TIMEOUT,
            tokio_rustls::TlsConnector::from(config).connect(name, stream),
        )
        .await
        .expect("TLS handshake timed out")?;
        Ok(Client::new(tls))
    }
}

impl Client<DuplexStream> {
    /// A client of `server` over an in-memory stream (`ServerHandle::serve_stream`), without
    /// reading the greeting.
    pub fn in_memory(server: &ServerHandle) -> Client<DuplexStream> {
        let (client, served) = tokio::io::duplex(64 * 1024);
        server.serve_stream(served, Peer::Local, false);
        Client::new(client)
    }

    /// [`Client::in_memory`] to an implicit-TLS server: the handshake comes first.
    pub fn in_memory_implicit_tls(server: &ServerHandle) -> Client<DuplexStream> {
        let (client, served) = tokio::io::duplex(64 * 1024);
        server.serve_stream(served, Peer::Local, true);
        Client::new(client)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsClient<S> {
    /// The client side of the TLS connection.
    pub fn tls(&self) -> &rustls::ClientConnection {
        self.io.get_ref().get_ref().1
    }
}

impl Client {
    /// Connects without reading the greeting. Nagle's algorithm is off, so that each `send`
    /// leaves as its own segment.
    pub async fn connect_raw(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timeout")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client::new(stream)
    }

    /// Connects from the local address `from` (e.g. 127.0.0.2) without reading the greeting.
    pub async fn connect_raw_from(from: std::net::IpAddr, addr: SocketAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(from, 0))
            .expect("bind client address");
        let stream = tokio::time::timeout(REPLY_TIMEOUT, socket.connect(addr))
            .await
            .expect("connect timeout")
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client::new(stream)
    }

    /// Connects and checks that the greeting is a 220.
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::connect_raw(addr).await.greeted().await
    }

    /// Connects and sends EHLO.
    pub async fn ehloed(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr).await;
        c.cmd("EHLO client.example", 250).await;
        c
    }

    /// Connects to an implicit-TLS listener and checks the greeting, which comes over TLS.
    pub async fn connect_implicit(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> TlsClient {
        Client::connect_raw(addr)
            .await
            .handshake(config)
            .await
            .expect("TLS handshake")
            .greeted()
            .await
    }

    /// The client's own address, as the server sees it.
    pub fn local_addr(&self) -> SocketAddr {
        self.io.get_ref().local_addr().expect("local address")
    }
}

/// Reads one reply line (CRLF stripped, checked); `None` on EOF.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Option<String> {
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
async fn read_reply<R: AsyncBufRead + Unpin>(reader: &mut R) -> Vec<String> {
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
