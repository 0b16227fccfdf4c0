//! SMTP replies: a status code and one or more text lines.

use std::borrow::Cow;
use std::fmt;

/// A reply to the client: a three-digit code and text, possibly over several lines.
///
/// Replies built from `&'static str` never allocate, so the constant replies of the
/// protocol cost nothing to send. Text is kept as written: the enhanced status code,
/// when there is one, is part of the text (`"2.7.0 Authentication successful"`).
/// A line break inside the text makes a multi-line reply (`250-first`, `250 last`).
#[derive(Clone, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    text: Cow<'static, str>,
}

impl Reply {
    /// A reply with `code` and `text`. Codes outside 200..=599 are taken as 451, because a
    /// client that reads a malformed code may hang; line breaks in `text` make a multi-line reply.
    pub fn new(code: u16, text: impl Into<Cow<'static, str>>) -> Reply {
        let code = if (200..600).contains(&code) {
            code
        } else {
            451
        };
        Reply {
            code,
            text: text.into(),
        }
    }

    /// A reply from its whole first line, as aiosmtpd hooks return them: `"250 OK"`.
    ///
    /// A string that does not start with a valid code becomes a `451` whose text is the string,
    /// so a mistake in a hook is visible to the client instead of breaking the protocol.
    pub fn parse(line: impl Into<Cow<'static, str>>) -> Reply {
        let line = line.into();
        let bytes = line.as_bytes();
        let well_formed = bytes.len() >= 3
            && bytes[..3].iter().all(u8::is_ascii_digit)
            && (bytes.len() == 3 || bytes[3] == b' ' || bytes[3] == b'-');
        if !well_formed {
            return Reply::new(451, line);
        }
        let code = (bytes[0] - b'0') as u16 * 100
            + (bytes[1] - b'0') as u16 * 10
            + (bytes[2] - b'0') as u16;
        let text = match line {
            Cow::Borrowed(s) => Cow::Borrowed(s.get(4..).unwrap_or("")),
            Cow::Owned(s) => Cow::Owned(s.get(4..).unwrap_or("").to_owned()),
        };
        Reply::new(code, text)
    }

    /// A multi-line reply with the same code on every line.
    pub fn multiline<I, S>(code: u16, lines: I) -> Reply
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut text = String::new();
        for (i, line) in lines.into_iter().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(line.as_ref());
        }
        Reply::new(code, text)
    }

    /// `250 OK`.
    pub const fn ok() -> Reply {
        Reply {
            code: 250,
            text: Cow::Borrowed("OK"),
        }
    }

    /// The reply's three-digit code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The reply's text, lines separated by `\n`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text lines of the reply, without codes.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n').map(|l| l.trim_end_matches('\r'))
    }

    /// Whether the reply accepts what the client asked for (2xx), so that the server
    /// records its effect (a sender, a recipient, a greeting).
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Whether the reply asks for more input (3xx).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// Whether the server must close the connection after sending this reply (421).
    pub fn closes_connection(&self) -> bool {
        self.code == 421
    }

    /// Appends the reply in wire form, CRLF after each line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut code = [0u8; 3];
        code[0] = b'0' + (self.code / 100) as u8;
        code[1] = b'0' + (self.code / 10 % 10) as u8;
        code[2] = b'0' + (self.code % 10) as u8;
        let mut lines = self.lines().peekable();
        while let Some(line) = lines.next() {
            out.extend_from_slice(&code);
            out.push(if lines.peek().is_some() { b'-' } else { b' ' });
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The reply in wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 8);
        self.write_to(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    /// The first line as the client sees it, without CRLF; further lines follow on their own lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = self.lines().peekable();
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            write!(f, "{}{sep}{line}", self.code)?;
            if lines.peek().is_some() {
                f.write_str("\n")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({self})")
    }
}

impl From<&'static str> for Reply {
    fn from(line: &'static str) -> Reply {
        Reply::parse(line)
    }
}

impl From<String> for Reply {
    fn from(line: String) -> Reply {
        Reply::parse(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let cases: &[(Reply, &[u8])] = &[
            (Reply::ok(), b"250 OK\r\n"),
            (Reply::from("221 Bye"), b"221 Bye\r\n"),
            (Reply::from("334 "), b"334 \r\n"),
            (Reply::from("334"), b"334 \r\n"),
            (Reply::new(250, "a\nb\nc"), b"250-a\r\n250-b\r\n250 c\r\n"),
            (
                Reply::multiline(250, ["x", "HELP"]),
                b"250-x\r\n250 HELP\r\n",
            ),
            (Reply::from("hello"), b"451 hello\r\n"),
            (Reply::new(99, "bad"), b"451 bad\r\n"),
            (
                Reply::from(String::from("535 5.7.8 no")),
                b"535 5.7.8 no\r\n",
            ),
        ];
        for (reply, wire) in cases {
            assert_eq!(reply.to_bytes(), *wire, "{reply:?}");
        }
    }

    #[test]
    fn classes() {
        assert!(Reply::ok().is_positive());
        assert!(Reply::from("354 go").is_intermediate());
        assert!(!Reply::from("550 no").is_positive());
        assert!(Reply::from("421 bye").closes_connection());
        assert_eq!(Reply::new(250, "a\nb").to_string(), "250-a\n250 b");
    }
}
