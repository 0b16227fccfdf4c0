//! A whole session over an in-memory stream.

use std::sync::{Arc, Mutex};

use super::{CREDENTIAL, LOGIN, PASSWORD, WRITE_BREAK, b64, check_replies, contains, secrets};
use crate::proto::Reply;
use crate::{Config, Envelope, Handler, Peer, Server, Session, StaticUsers};

/// Records each message it accepts under a fresh id, and answers `250 2.0.0 queued as fuzz-<id>`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<u64>>>);

impl Handler for Recorder {
    async fn handle_rcpt(
        &self,
        _: &mut Session,
        _: &mut Envelope,
        to: &str,
        _: &crate::RcptParams,
    ) -> Reply {
        if to.starts_with("reject") {
            Reply::from("550 5.1.1 Mailbox unavailable")
        } else {
            Reply::ok()
        }
    }

    async fn handle_data(&self, _: &mut Session, _: &mut Envelope) -> Reply {
        let mut ids = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let id = ids.len() as u64 + 1;
        ids.push(id);
        Reply::new(250, format!("2.0.0 queued as fuzz-{id}"))
    }
}

/// A `Write` into shared memory, for capturing the log.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Expands a write that starts with [`CREDENTIAL`]: the next byte names the credential,
/// which comes on lines of its own, so that nothing the server may log precedes it.
fn credential(piece: &[u8]) -> Vec<u8> {
    let (kind, rest) = match piece {
        [_, kind, rest @ ..] => (*kind, rest),
        _ => (0, &[][..]),
    };
    let plain = b64(format!("\0{LOGIN}\0{PASSWORD}"));
    let expanded = match kind {
        b'P' => format!("\r\nAUTH PLAIN {plain}\r\n"),
        b'p' => format!("\r\nAUTH PLAIN\r\n{plain}\r\n"),
        b'Z' => format!(
            "\r\nAUTH PLAIN {}\r\n",
            b64(format!("{LOGIN}\0{LOGIN}\0{PASSWORD}"))
        ),
        b'L' => format!("\r\nAUTH LOGIN {}\r\n{}\r\n", b64(LOGIN), b64(PASSWORD)),
        b'W' => format!("\r\n{}\r\n", b64(PASSWORD)),
        b'R' => format!("\r\n{PASSWORD}\r\n"),
        _ => "\r\n".to_owned(),
    };
    let mut out = expanded.into_bytes();
    out.extend_from_slice(rest);
    out
}

/// A whole session over an in-memory stream: `input` is what the client writes, one write per
/// piece between [`WRITE_BREAK`] bytes; a piece that starts with [`CREDENTIAL`] sends the
/// credential its next byte names (`P`, `p`, `Z`: PLAIN; `L`: LOGIN; `W`, `R`: the password
/// alone, encoded or raw). Checks that every reply is well-formed, that each message the
/// server accepted reached the handler exactly once, and that the password never reached the
/// log.
pub fn session(input: &[u8]) {
    let pieces: Vec<Vec<u8>> = input
        .split(|b| *b == WRITE_BREAK)
        .map(|piece| match piece.first() {
            Some(&CREDENTIAL) => credential(piece),
            _ => piece.to_vec(),
        })
        .collect();
    // The password may only arrive as a credential, never inside something the server logs:
    // what the client writes, credentials left out, must not spell it (across writes too).
    let written: Vec<u8> = input
        .split(|b| *b == WRITE_BREAK)
        .flat_map(|piece| match piece {
            [CREDENTIAL, rest @ ..] => [b"\r\n", rest.get(1..).unwrap_or_default()].concat(),
            _ => piece.to_vec(),
        })
        .collect();
    if secrets().iter().any(|s| contains(&written, s.as_bytes())) {
        return;
    }

    let log = LogBuffer::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let recorder = Recorder::default();
    let config = Config {
        hostname: "fuzz.example".into(),
        ident: "smtpd fuzz".into(),
        max_message_size: Some(2048),
        max_recipients: 8,
        auth_require_tls: false,
        authenticator: Some(StaticUsers::new().user(LOGIN, PASSWORD).into()),
        idle_timeout: std::time::Duration::from_secs(30),
        ..Config::default()
    };
    let server = Server::new(recorder.clone(), config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = runtime.block_on(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let handle = server.start();
        let (client, server_end) = tokio::io::duplex(128);
        handle.serve_stream(server_end, Peer::Local, false);
        let (mut rd, mut wr) = tokio::io::split(client);
        let write = async {
            for piece in &pieces {
                if wr.write_all(piece).await.is_err() {
                    break;
                }
                // Let the server read this piece on its own.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            }
            let _ = wr.shutdown().await;
        };
        let read = async {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out
        };
        let run = async { tokio::join!(write, read).1 };
        let out = tokio::time::timeout(std::time::Duration::from_secs(20), run)
            .await
            .expect("the session ended when the client stopped");
        handle.shutdown().await;
        out
    });
    drop(runtime);

    check_replies(&out);
    let text = String::from_utf8_lossy(&out);
    let mut replied: Vec<u64> = text
        .split("\r\n")
        .filter_map(|line| line.strip_prefix("250 2.0.0 queued as fuzz-"))
        .map(|id| id.parse().expect("message id"))
        .collect();
    replied.sort_unstable();
    let recorded = recorder.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(
        replied, recorded,
        "accepted messages and handler calls differ: {text}"
    );
    let log =
        String::from_utf8_lossy(&log.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(log.contains("connected"), "the log was not captured");
    for secret in secrets() {
        if let Some(line) = log.lines().find(|l| l.contains(&secret)) {
            panic!("password logged: {line}");
        }
    }
}
