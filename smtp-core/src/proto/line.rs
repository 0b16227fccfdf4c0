//! Framing of command lines, with a bound on their length.

/// What the framer found at the front of the input buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line of this many bytes (line ending excluded) ends after `consumed` bytes.
    Line {
        /// Bytes of the line without its ending.
        len: usize,
        /// Bytes to remove from the buffer, line ending included.
        consumed: usize,
    },
    /// A line longer than the limit ended; `prefix` is its start (for choosing the error reply)
    /// and `consumed` bytes are to be dropped. Reported once per over-long line.
    TooLong {
        /// The first bytes of the line, at most 16.
        prefix: Vec<u8>,
        /// Bytes to remove from the buffer.
        consumed: usize,
    },
    /// More input is needed. `discard` bytes at the front belong to an over-long line and are
    /// to be dropped now, so the buffer never holds more than the limit.
    Incomplete {
        /// Bytes to remove from the buffer.
        discard: usize,
    },
}

/// Splits input into command lines of at most `limit` bytes.
///
/// A line ends at LF; CRs before the LF are dropped (clients that end commands with a bare LF
/// still work, as they do with aiosmtpd). Bare LF never ends DATA: that is [`super::DataDecoder`]'s job.
/// An over-long line is discarded as it arrives and reported once, as tokio-util's `LinesCodec` does.
#[derive(Debug)]
pub struct LineFramer {
    limit: usize,
    discarding: Option<Vec<u8>>,
}

impl LineFramer {
    /// A framer for lines of at most `limit` bytes, line ending excluded.
    pub fn new(limit: usize) -> LineFramer {
        LineFramer {
            limit,
            discarding: None,
        }
    }

    /// Whether an over-long line is being discarded.
    pub fn is_discarding(&self) -> bool {
        self.discarding.is_some()
    }

    /// Looks at the front of `input`.
    pub fn next_frame(&mut self, input: &[u8]) -> Frame {
        match memchr::memchr(b'\n', input) {
            Some(lf) => {
                if let Some(prefix) = self.discarding.take() {
                    return Frame::TooLong {
                        prefix,
                        consumed: lf + 1,
                    };
                }
                let mut len = lf;
                while len > 0 && input[len - 1] == b'\r' {
                    len -= 1;
                }
                // The CRs before LF are not part of the line, so only the content counts.
                if len > self.limit {
                    let prefix = input[..len.min(16)].to_vec();
                    return Frame::TooLong {
                        prefix,
                        consumed: lf + 1,
                    };
                }
                Frame::Line {
                    len,
                    consumed: lf + 1,
                }
            }
            None if self.discarding.is_some() => Frame::Incomplete {
                discard: input.len(),
            },
            // Leave room for a CR or two of a line ending still to come.
            None if input.len() > self.limit + 2 => {
                self.discarding = Some(input[..16.min(input.len())].to_vec());
                Frame::Incomplete {
                    discard: input.len(),
                }
            }
            None => Frame::Incomplete { discard: 0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(limit: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut framer = LineFramer::new(limit);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match framer.next_frame(&buf) {
                    Frame::Line { len, consumed } => {
                        out.push(String::from_utf8_lossy(&buf[..len]).into_owned());
                        buf.drain(..consumed);
                    }
                    Frame::TooLong { prefix, consumed } => {
                        out.push(format!("TOO LONG {}", String::from_utf8_lossy(&prefix)));
                        buf.drain(..consumed);
                    }
                    Frame::Incomplete { discard } => {
                        buf.drain(..discard);
                        break;
                    }
                }
            }
            assert!(buf.len() <= limit + 2, "buffer grew past the limit");
        }
        out
    }

    #[test]
    fn framing() {
        let cases: &[(&[&[u8]], &[&str])] = &[
            (&[b"NOOP\r\n"], &["NOOP"]),
            (&[b"NOOP\n"], &["NOOP"]),
            (&[b"NOOP\r\r\n"], &["NOOP"]),
            (&[b"NO", b"OP\r", b"\n"], &["NOOP"]),
            (&[b"A\r\nB\r\nC"], &["A", "B"]),
            (&[b"NOOP\rRSET\r\n"], &["NOOP\rRSET"]),
            (&[b"0123456789\r\n"], &["0123456789"]),
            (
                &[b"0123456789A\r\nNOOP\r\n"],
                &["TOO LONG 0123456789A", "NOOP"],
            ),
            (
                &[b"0123456789ABCDEF", b"GHIJ", b"KL\r\nNOOP\r\n"],
                &["TOO LONG 0123456789ABCDEF", "NOOP"],
            ),
        ];
        for (chunks, expected) in cases {
            assert_eq!(frames(10, chunks), *expected, "{chunks:?}");
        }
    }
}
