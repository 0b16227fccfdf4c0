//! Every byte the generator sends, built once before the run (each connection task then stamps
//! its own copies with fresh Message-IDs, see `Bodies`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

pub struct Script {
    pub ehlo: &'static [u8],
    pub mail: &'static [u8],
    pub rcpt: &'static [u8],
    pub data: &'static [u8],
    /// MAIL, RCPT and DATA in one write.
    pub group: Vec<u8>,
    /// The message, its end-of-data line, then nothing more.
    pub body_end: Vec<u8>,
    /// The message, its end-of-data line, then the next MAIL, RCPT and DATA.
    pub body_end_next: Vec<u8>,
    pub auth_plain: Vec<u8>,
    pub starttls: &'static [u8],
    pub quit: &'static [u8],
}

impl Script {
    pub fn new(size: usize, user: &str, pass: &str) -> Self {
        const MAIL: &[u8] = b"MAIL FROM:<bench@example.com>\r\n";
        const RCPT: &[u8] = b"RCPT TO:<sink@example.com>\r\n";
        const DATA: &[u8] = b"DATA\r\n";
        let group = [MAIL, RCPT, DATA].concat();
        let mut body_end = message(size);
        body_end.extend_from_slice(b".\r\n");
        let body_end_next = [&body_end[..], &group].concat();
        let plain = B64.encode(format!("\0{user}\0{pass}"));
        Script {
            ehlo: b"EHLO loadgen.example\r\n",
            mail: MAIL,
            rcpt: RCPT,
            data: DATA,
            group,
            body_end,
            body_end_next,
            auth_plain: format!("AUTH PLAIN {plain}\r\n").into_bytes(),
            starttls: b"STARTTLS\r\n",
            quit: b"QUIT\r\n",
        }
    }
}

/// Where the 16 hex digits of the Message-ID start in every message (and in `body_end` and
/// `body_end_next`, which begin with it).
const ID_AT: usize = 90;

/// One connection task's copies of the message: before each send the Message-ID is
/// overwritten in place with the next one of this process, so every message differs, as real
/// mail does (a server that stores identical transactions once, as smtpd's JetStream hand-off
/// de-duplicates by content, still stores each one), and nothing is allocated per message.
pub struct Bodies {
    end: Vec<u8>,
    end_next: Vec<u8>,
}

impl Bodies {
    pub fn of(script: &Script) -> Bodies {
        Bodies {
            end: script.body_end.clone(),
            end_next: script.body_end_next.clone(),
        }
    }

    /// The message and its end-of-data line, with a fresh Message-ID.
    pub fn end(&mut self) -> &[u8] {
        stamp(&mut self.end);
        &self.end
    }

    /// As `end`, then the next MAIL, RCPT and DATA.
    pub fn end_next(&mut self) -> &[u8] {
        stamp(&mut self.end_next);
        &self.end_next
    }
}

fn stamp(message: &mut [u8]) {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let _ = write!(&mut message[ID_AT..ID_AT + 16], "{id:016x}");
}

/// A message of exactly `size` bytes (headers included, unless they alone are longer), in lines
/// of at most 78 characters, none starting with a dot.
pub fn message(size: usize) -> Vec<u8> {
    const HEAD: &[u8] = b"From: <bench@example.com>\r\nTo: <sink@example.com>\r\n\
Subject: loadgen\r\nMessage-ID: <loadgen.0000000000000000@example.com>\r\n\r\n";
    let mut m = Vec::with_capacity(size.max(HEAD.len()));
    m.extend_from_slice(HEAD);
    while size.saturating_sub(m.len()) > 80 {
        m.extend_from_slice(&[b'x'; 76]);
        m.extend_from_slice(b"\r\n");
    }
    let left = size.saturating_sub(m.len());
    if left >= 2 {
        m.resize(m.len() + left - 2, b'x');
        m.extend_from_slice(b"\r\n");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_sizes_are_exact() {
        for size in [200, 1024, 1025, 1026, 4096, 10 << 20] {
            let m = message(size);
            assert_eq!(m.len(), size);
            assert!(m.ends_with(b"\r\n"));
            assert!(!m.windows(3).any(|w| w == b"\n.\r" || w == b"\r\n."));
        }
    }

    #[test]
    fn every_stamped_message_has_its_own_message_id() {
        let script = Script::new(1024, "u", "p");
        assert_eq!(&script.body_end[ID_AT - 8..ID_AT], b"loadgen.");
        let mut bodies = Bodies::of(&script);
        let a = bodies.end().to_vec();
        let b = bodies.end().to_vec();
        assert_ne!(a, b);
        assert_eq!(a.len(), script.body_end.len());
        assert_eq!(a[..ID_AT], script.body_end[..ID_AT]);
        assert_eq!(a[ID_AT + 16..], script.body_end[ID_AT + 16..]);
        assert!(bodies.end_next().ends_with(&script.group));
    }
}
