//! Transcripts: the dialogue of each connection, as the server saw it.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::connection::observe::{Observer, Transcriber};
use crate::session::Peer;

/// One line of a dialogue.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Line {
    /// A command line from the client, without CRLF. AUTH credentials read `****`: an
    /// initial response (`AUTH PLAIN ****`) and every answer inside an exchange.
    /// Message bodies are not shown. Lines with the same `read` arrived in one read of the
    /// socket: the client pipelined them.
    Client {
        /// The line.
        text: String,
        /// The number of the socket read it arrived in.
        read: u64,
    },
    /// One reply line from the server, without CRLF (`250-PIPELINING`, `250 OK`).
    Server(String),
}

/// The dialogue of one connection.
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    peer: Option<Peer>,
    lines: Vec<Line>,
    closed: bool,
}

impl Transcript {
    /// Where the client connected from (match it with [`Message::peer`](super::Message::peer)).
    pub fn peer(&self) -> Option<&Peer> {
        self.peer.as_ref()
    }

    /// Every line, in order.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The client's command lines, in order.
    pub fn commands(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::Client { text, .. } => Some(text.as_str()),
            Line::Server(_) => None,
        })
    }

    /// The server's reply lines, in order.
    pub fn replies(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            Line::Server(text) => Some(text.as_str()),
            Line::Client { .. } => None,
        })
    }

    /// Whether the client sent a command that starts with `prefix`, case-insensitively
    /// (`"QUIT"`, `"MAIL FROM:<a@example.com>"`).
    pub fn sent(&self, prefix: &str) -> bool {
        self.commands().any(|c| {
            c.len() >= prefix.len()
                && c.is_char_boundary(prefix.len())
                && c[..prefix.len()].eq_ignore_ascii_case(prefix)
        })
    }

    /// Whether the client sent two or more commands in one read: it pipelined (RFC 2920).
    pub fn pipelined(&self) -> bool {
        let mut reads = self.lines.iter().filter_map(|l| match l {
            Line::Client { read, .. } => Some(*read),
            Line::Server(_) => None,
        });
        let Some(mut last) = reads.next() else {
            return false;
        };
        reads.any(|read| std::mem::replace(&mut last, read) == read)
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// `C: ` and `S: ` lines, one per line of the dialogue.
impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            match line {
                Line::Client { text, .. } => writeln!(f, "C: {text}")?,
                Line::Server(text) => writeln!(f, "S: {text}")?,
            }
        }
        Ok(())
    }
}

/// Every connection's transcript, in the order the connections were opened.
#[derive(Default)]
pub(super) struct Transcripts {
    all: Mutex<Vec<Arc<Mutex<Transcript>>>>,
}

impl Transcripts {
    pub(super) fn snapshot(&self) -> Vec<Transcript> {
        lock(&self.all).iter().map(|t| lock(t).clone()).collect()
    }

    pub(super) fn clear(&self) {
        lock(&self.all).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Observer for Transcripts {
    fn open(&self, peer: &Peer) -> Box<dyn Transcriber> {
        let transcript = Arc::new(Mutex::new(Transcript {
            peer: Some(peer.clone()),
            ..Transcript::default()
        }));
        lock(&self.all).push(transcript.clone());
        Box::new(Writer(transcript))
    }
}

struct Writer(Arc<Mutex<Transcript>>);

impl Transcriber for Writer {
    fn received(&mut self, line: &[u8], read: u64) {
        let text = String::from_utf8_lossy(line).into_owned();
        lock(&self.0).lines.push(Line::Client { text, read });
    }

    fn sent(&mut self, reply: &[u8]) {
        let text = String::from_utf8_lossy(reply);
        let mut t = lock(&self.0);
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            t.lines.push(Line::Server(line.to_owned()));
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        lock(&self.0).closed = true;
    }
}
