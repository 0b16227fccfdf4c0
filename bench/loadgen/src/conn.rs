//! One SMTP client connection: whole-buffer writes and a reply reader over one reused buffer.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const BUF: usize = 16 * 1024;

/// Why a transaction failed. Built only on failure, so it may allocate.
#[derive(Debug)]
pub struct Fail(pub String);

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail(format!("i/o: {e}"))
    }
}

/// A connection and the replies it has read but not yet consumed.
pub struct Conn<S> {
    io: S,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    text: (usize, usize),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S) -> Self {
        Conn {
            io,
            buf: vec![0; BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            text: (0, 0),
        }
    }

    /// Writes all of `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        self.io.write_all(bytes).await?;
        Ok(())
    }

    /// Reads one reply and fails unless its code is in `class` (2 for 2xx, 3 for 3xx).
    pub async fn expect(&mut self, step: &str, class: u16) -> Result<(), Fail> {
        self.expect_scan(step, class, |_| {}).await
    }

    /// As `expect`, showing each line of the reply to `each_line`.
    pub async fn expect_scan(
        &mut self,
        step: &str,
        class: u16,
        each_line: impl FnMut(&[u8]),
    ) -> Result<(), Fail> {
        let code = self.reply(each_line).await?;
        if code / 100 == class {
            Ok(())
        } else {
            Err(Fail(format!(
                "{step}: {code} {}",
                String::from_utf8_lossy(self.text())
            )))
        }
    }

    /// The text of the last line of the last reply read, after the code and separator.
    pub fn text(&self) -> &[u8] {
        &self.buf[self.text.0..self.text.1]
    }

    /// Reads one complete reply (all its lines) and returns its code.
    pub async fn reply(&mut self, mut each_line: impl FnMut(&[u8])) -> Result<u16, Fail> {
        loop {
            while let Some(nl) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line_end = self.start + nl;
                let next = line_end + 1;
                let line_end = if line_end > self.start && self.buf[line_end - 1] == b'\r' {
                    line_end - 1
                } else {
                    line_end
                };
                let line = &self.buf[self.start..line_end];
                if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
                    return Err(Fail(format!(
                        "malformed reply {:?}",
                        String::from_utf8_lossy(line)
                    )));
                }
                each_line(line);
                let last = line.len() == 3 || line[3] == b' ';
                let code = line[..3]
                    .iter()
                    .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
                self.text = ((self.start + 4).min(line_end), line_end);
                self.start = next;
                if last {
                    return Ok(code);
                }
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), Fail> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(Fail("reply line longer than the buffer".into()));
        }
        let n = self.io.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(Fail("server closed the connection".into()));
        }
        self.end += n;
        Ok(())
    }

    /// The stream, for STARTTLS; fails if the server sent bytes after its last reply.
    pub fn into_inner(self) -> Result<S, Fail> {
        if self.start != self.end {
            return Err(Fail("bytes after the STARTTLS reply".into()));
        }
        Ok(self.io)
    }
}
