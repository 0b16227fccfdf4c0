//! The DATA decoder: end-of-data detection, dot-unstuffing and limits, fed in chunks.

/// Why a message was refused once its end marker arrived.
///
/// The error is only reported after `CRLF.CRLF`, because until then every byte the client
/// sends is message content and must not be read as a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataError {
    /// A line was longer than the line limit: `500 Line too long (see RFC5321 4.5.3.1.6)`.
    LineTooLong,
    /// The message was larger than the size limit: `552 Error: Too much mail data`.
    TooMuchData,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    LineStart,
    /// A `.` started the line; it is held back until we know whether it ends the data.
    Dot,
    /// `.` then CR started the line; both are held back.
    DotCr,
    /// Inside a line.
    InLine,
    /// Inside a line, just after a CR.
    Cr,
}

/// Decodes the DATA stream after `354`, independent of how the input is split into reads.
///
/// Only `CRLF.CRLF` (or `.CRLF` as the first line) ends the data: a bare LF or CR never does,
/// which closes the SMTP smuggling hole (CVE-2023-51766, aiosmtpd CVE-2024-27305). One leading
/// dot is removed from each line. Lines keep their CRLF. The size counts the raw bytes as sent,
/// dot-stuffing included and the final `.CRLF` excluded (aiosmtpd counts the same way).
/// Once the size limit is passed the content stops growing, so memory stays bounded whatever
/// the client sends.
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    line_len: usize,
    size: usize,
    line_limit: usize,
    size_limit: Option<usize>,
    error: Option<DataError>,
    /// Content stopped growing because a limit is already passed; the error itself is decided
    /// when the line ends, so that it does not depend on how the input was split.
    overflow: bool,
}

impl DataDecoder {
    /// A decoder for lines of at most `line_limit` bytes (CRLF included) and messages of at most
    /// `size_limit` bytes (`None`: no limit).
    pub fn new(line_limit: usize, size_limit: Option<usize>) -> DataDecoder {
        DataDecoder {
            state: State::LineStart,
            line_len: 0,
            size: 0,
            line_limit,
            size_limit,
            error: None,
            overflow: false,
        }
    }

    /// The raw size counted so far.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The first error met so far.
    pub fn error(&self) -> Option<DataError> {
        self.error
    }

    /// Feeds `input`. Decoded content is passed to `sink` in slices (not after an error).
    /// Returns `Some(n)` when the end marker was found after `n` bytes of `input` (the rest
    /// is the next command), or `None` when all of `input` was consumed.
    pub fn feed(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Option<usize> {
        let mut run_start = 0;
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::InLine => {
                    // Fast path: only a CR can change the state inside a line.
                    match memchr::memchr(b'\r', &input[i..]) {
                        Some(off) => {
                            self.line_len += off + 1;
                            i += off + 1;
                            self.state = State::Cr;
                        }
                        None => {
                            self.line_len += input.len() - i;
                            i = input.len();
                        }
                    }
                    continue;
                }
                State::LineStart => {
                    self.line_len = 1;
                    self.state = match input[i] {
                        b'.' => {
                            self.emit(&input[run_start..i], sink);
                            run_start = i + 1;
                            State::Dot
                        }
                        b'\r' => State::Cr,
                        _ => State::InLine,
                    };
                }
                State::Dot => {
                    self.line_len += 1;
                    self.state = match input[i] {
                        b'\r' => {
                            // Hold the CR too: `.CRLF` must not reach the content.
                            run_start = i + 1;
                            State::DotCr
                        }
                        _ => State::InLine,
                    };
                }
                State::DotCr => {
                    self.line_len += 1;
                    if input[i] == b'\n' {
                        self.state = State::LineStart;
                        return Some(i + 1);
                    }
                    self.emit(b"\r", sink);
                    run_start = i;
                    self.state = if input[i] == b'\r' {
                        State::Cr
                    } else {
                        State::InLine
                    };
                }
                State::Cr => {
                    self.line_len += 1;
                    self.state = match input[i] {
                        b'\n' => {
                            // The line is judged whole: emit it before it joins the size.
                            self.emit(&input[run_start..=i], sink);
                            run_start = i + 1;
                            self.end_line(self.line_len);
                            State::LineStart
                        }
                        b'\r' => State::Cr,
                        _ => State::InLine,
                    };
                }
            }
            i += 1;
        }
        self.emit(&input[run_start..], sink);
        None
    }

    fn end_line(&mut self, len: usize) {
        self.size += len;
        self.line_len = 0;
        if self.error.is_none() {
            if len > self.line_limit {
                self.error = Some(DataError::LineTooLong);
            } else if self.size_limit.is_some_and(|limit| self.size > limit) {
                self.error = Some(DataError::TooMuchData);
            }
        }
    }

    fn emit(&mut self, bytes: &[u8], sink: &mut dyn FnMut(&[u8])) {
        if bytes.is_empty() || self.error.is_some() || self.overflow {
            return;
        }
        // The line in progress counts too, so an endless line cannot grow the content.
        let over_size = self
            .size_limit
            .is_some_and(|limit| self.size + self.line_len > limit);
        if self.line_len > self.line_limit || over_size {
            self.overflow = true;
            return;
        }
        sink(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in every possible two-way split, checking that the result does not
    /// depend on the split, and returns (content, bytes left after the end marker, error).
    fn decode(
        input: &[u8],
        line_limit: usize,
        size_limit: Option<usize>,
    ) -> (Vec<u8>, Option<Vec<u8>>, Option<DataError>) {
        let mut results = Vec::new();
        for split in 0..=input.len() {
            let mut decoder = DataDecoder::new(line_limit, size_limit);
            let mut content = Vec::new();
            let mut rest = None;
            let mut offset = 0;
            for chunk in [&input[..split], &input[split..]] {
                if rest.is_some() {
                    break;
                }
                if let Some(n) = decoder.feed(chunk, &mut |b| content.extend_from_slice(b)) {
                    rest = Some(input[offset + n..].to_vec());
                }
                offset += chunk.len();
            }
            // Content is only meaningful for a finished, accepted message.
            if decoder.error().is_some() || rest.is_none() {
                assert!(
                    size_limit.is_none_or(|l| content.len() <= l),
                    "content grew past the limit"
                );
                content.clear();
            }
            results.push((content, rest, decoder.error()));
        }
        for r in &results[1..] {
            assert_eq!(
                r,
                &results[0],
                "split changed the result for {:?}",
                String::from_utf8_lossy(input)
            );
        }
        results.remove(0)
    }

    #[test]
    fn end_marker_and_unstuffing() {
        type Case<'a> = (&'a [u8], &'a [u8], Option<&'a [u8]>);
        let cases: &[Case] = &[
            (b".\r\n", b"", Some(b"")),
            (b"Hi\r\n.\r\nQUIT\r\n", b"Hi\r\n", Some(b"QUIT\r\n")),
            (b"..dot\r\n.\r\n", b".dot\r\n", Some(b"")),
            (b"...\r\n.\r\n", b"..\r\n", Some(b"")),
            (b".x\r\n.\r\n", b"x\r\n", Some(b"")),
            (b"a\r\n.\rX\r\n.\r\n", b"a\r\n\rX\r\n", Some(b"")),
            (b"a\r\n.\r\r\n.\r\n", b"a\r\n\r\r\n", Some(b"")),
            // Smuggling attempts: none of these end the data; only the real marker after them does.
            (b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n", Some(b"")),
            (b"a\r.\rb\r\n.\r\n", b"a\r.\rb\r\n", Some(b"")),
            (b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n", Some(b"")),
            (b"a\r\n.\r\r\nb\r\n.\r\n", b"a\r\n\r\r\nb\r\n", Some(b"")),
            (
                b"a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n",
                b"a\r\n\nMAIL FROM:<x@y>\r\n",
                Some(b""),
            ),
            (b"a\r\n.\n", b"", None),
            (b"a\0b\r\n.\r\n", b"a\0b\r\n", Some(b"")),
        ];
        for (input, content, rest) in cases {
            let (got, got_rest, err) = decode(input, 1001, None);
            assert_eq!(got, *content, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(
                got_rest.as_deref(),
                *rest,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(err, None);
        }
    }

    #[test]
    fn limits() {
        // Lines of exactly the limit (CRLF included) pass; one more byte fails.
        assert_eq!(decode(b"abc\r\n.\r\n", 5, None).2, None);
        assert_eq!(
            decode(b"abcd\r\n.\r\n", 5, None).2,
            Some(DataError::LineTooLong)
        );
        assert_eq!(
            decode(b"abcdefghij", 5, None),
            (vec![], None, None),
            "an unfinished line is judged at its end"
        );
        // Size counts raw bytes, dot-stuffing included, end marker excluded.
        assert_eq!(decode(b"..a\r\n.\r\n", 1001, Some(5)).2, None);
        assert_eq!(
            decode(b"..ab\r\n.\r\n", 1001, Some(5)).2,
            Some(DataError::TooMuchData)
        );
        let (_, rest, err) = decode(b"0123456789\r\n0123\r\n.\r\n", 1001, Some(8));
        assert_eq!(err, Some(DataError::TooMuchData));
        assert_eq!(rest.as_deref(), Some(&b""[..]));
        // The first error wins.
        assert_eq!(
            decode(b"0123456789\r\nabc\r\n.\r\n", 5, Some(3)).2,
            Some(DataError::LineTooLong)
        );
    }
}
