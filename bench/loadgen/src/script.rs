//! Every byte the generator sends, built once before the run.

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

/// A copy of `message` with the next Message-ID of this process: every message differs, as
/// real mail does, so a server that stores identical transactions once (smtpd's JetStream
/// hand-off de-duplicates by content) still stores each one.
pub fn stamped(message: &[u8]) -> Vec<u8> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut copy = message.to_vec();
    if copy.len() >= ID_AT + 16 {
        let id = format!("{:016x}", NEXT.fetch_add(1, Ordering::Relaxed));
        copy[ID_AT..ID_AT + 16].copy_from_slice(id.as_bytes());
    }
    copy
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
        let m = message(1024);
        assert_eq!(&m[ID_AT - 8..ID_AT], b"loadgen.");
        let (a, b) = (stamped(&m), stamped(&m));
        assert_ne!(a, b);
        assert_eq!(a.len(), m.len());
        assert!(
            a.windows(17).any(|w| w == b"0000000000000000@")
                || b.windows(17).any(|w| w == b"0000000000000001@")
        );
    }
}
