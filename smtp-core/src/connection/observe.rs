//! Watching a connection's dialogue, for the test kit's transcripts: each command line
//! received and each reply queued, AUTH credentials masked before they leave the engine.

use std::borrow::Cow;

use crate::session::Peer;

/// Opens one [`Transcriber`] per connection (`Server::observe`).
pub(crate) trait Observer: Send + Sync + 'static {
    fn open(&self, peer: &Peer) -> Box<dyn Transcriber>;
}

/// The dialogue of one connection; dropped when the connection ends.
pub(crate) trait Transcriber: Send {
    /// A command line without its CRLF, or `****` for an answer inside an AUTH exchange.
    /// `read` numbers the socket reads: lines with the same number arrived together.
    fn received(&mut self, line: &[u8], read: u64);
    /// A reply in wire form, CRLF included.
    fn sent(&mut self, reply: &[u8]);
}

/// The line with an AUTH initial response replaced by `****`.
pub(crate) fn redact_auth(line: &[u8]) -> Cow<'_, [u8]> {
    let is_auth = line.len() > 5 && line[..5].eq_ignore_ascii_case(b"AUTH ");
    if !is_auth {
        return Cow::Borrowed(line);
    }
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match (words.next(), words.next(), words.next()) {
        (Some(verb), Some(mechanism), Some(_)) => {
            Cow::Owned([verb, b" ", mechanism, b" ****"].concat())
        }
        _ => Cow::Borrowed(line),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_auth;

    #[test]
    fn auth_initial_responses_are_masked() {
        for (line, seen) in [
            (&b"AUTH PLAIN AHVzZXIAcGFzcw=="[..], &b"AUTH PLAIN ****"[..]),
            (b"auth login dXNlcg==", b"auth login ****"),
            (b"AUTH LOGIN", b"AUTH LOGIN"),
            (b"MAIL FROM:<a@b> SIZE=1", b"MAIL FROM:<a@b> SIZE=1"),
            (b"AUTHX a b", b"AUTHX a b"),
        ] {
            assert_eq!(&*redact_auth(line), seen);
        }
    }
}
