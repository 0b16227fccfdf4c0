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
    /// [`Reply::disconnect`]: nothing is sent and the connection closes.
    disconnect: bool,
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
            disconnect: false,
        }
    }

    /// A reply with a fixed text, usable in a `const` (the catalogue of `proto::replies`).
    /// Codes outside 200..=599 are taken as 451, as in [`Reply::new`].
    pub const fn fixed(code: u16, text: &'static str) -> Reply {
        let code = if matches!(code, 200..=599) { code } else { 451 };
        Reply {
            code,
            text: Cow::Borrowed(text),
            disconnect: false,
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
            disconnect: false,
        }
    }

    /// Not a reply: the server closes the connection at once and sends nothing, neither this
    /// nor any later reply (what was queued before it still goes out). For test doubles that
    /// play a server which drops its clients; a real server answers `421` instead. Its
    /// [`code`](Self::code) is 421, so it [`closes_connection`](Self::closes_connection).
    pub const fn disconnect() -> Reply {
        Reply {
            code: 421,
            text: Cow::Borrowed(""),
            disconnect: true,
        }
    }

    /// Whether this is [`Reply::disconnect`].
    pub fn is_disconnect(&self) -> bool {
        self.disconnect
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
    ///
    /// A line longer than RFC 5321's 512 octets (§4.5.3.1.5) is cut at a character boundary:
    /// the catalogue already cuts what it echoes, but a hook's text may be any length.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut code = [0u8; 3];
        code[0] = b'0' + (self.code / 100) as u8;
        code[1] = b'0' + (self.code / 10 % 10) as u8;
        code[2] = b'0' + (self.code % 10) as u8;
        let mut lines = self.lines().peekable();
        while let Some(line) = lines.next() {
            let line = cut(line, MAX_LINE - 6);
            out.extend_from_slice(&code);
            out.push(if lines.peek().is_some() { b'-' } else { b' ' });
            // Replies echo client text (unknown verbs, VRFY): a bare CR or other control
            // character there would break the client's framing of replies.
            if line.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                out.extend(line.bytes().map(|b| match b {
                    b'\t' => b,
                    b if b.is_ascii_control() => b'?',
                    b => b,
                }));
            } else {
                out.extend_from_slice(line.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Whether the text starts with an enhanced status code (RFC 3463) of the reply's class,
    /// such as `2.1.0 `.
    pub fn has_enhanced_code(&self) -> bool {
        starts_with_enhanced_code(&self.text, self.code)
    }

    /// The reply with `code` (`"2.1.0"`) in front of every line that has none.
    pub fn with_enhanced_code(&self, code: &str) -> Reply {
        let mut text = String::with_capacity(self.text.len() + code.len() + 1);
        for (i, line) in self.lines().enumerate() {
            if i > 0 {
                text.push('\n');
            }
            if !starts_with_enhanced_code(line, self.code) {
                text.push_str(code);
                if !line.is_empty() {
                    text.push(' ');
                }
            }
            text.push_str(line);
        }
        Reply {
            code: self.code,
            text: Cow::Owned(text),
            disconnect: self.disconnect,
        }
    }

    /// The reply in wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 8);
        self.write_to(&mut out);
        out
    }
}

/// The longest reply line, with its code and CRLF (RFC 5321 §4.5.3.1.5).
pub const MAX_LINE: usize = 512;

/// The longest prefix of `text` of at most `max` octets that ends at a character boundary.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `class.subject.detail` (RFC 3463): the class is the reply code's first digit, subject and
/// detail are 1–3 digits, followed by a space or the end of the text.
fn starts_with_enhanced_code(text: &str, code: u16) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < 5 || bytes[0] != b'0' + (code / 100) as u8 || bytes[1] != b'.' {
        return false;
    }
    let mut i = 2;
    for part in 0..2 {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() && i - start < 3 {
            i += 1;
        }
        if i == start {
            return false;
        }
        if part == 0 {
            if bytes.get(i) != Some(&b'.') {
                return false;
            }
            i += 1;
        }
    }
    i == bytes.len() || bytes[i] == b' '
}

/// The enhanced status code (RFC 3463, RFC 5248) that a reply to `verb` with `code` gets when
/// its text has none, or `None` when it gets none: 3xx replies (`334`, `354`) and the replies to
/// HELO, EHLO and LHLO (RFC 2034 §3). Codes whose meaning the protocol fixes get their specific
/// code (`250` after MAIL is `2.1.0`, after RCPT `2.1.5`; `503` is `5.5.1`, `552` is `5.3.4`);
/// the others, whose reason only the handler knows (`550`, `554`, `451`…), get `X.0.0`.
pub fn enhanced_code(verb: super::Verb, code: u16) -> Option<&'static str> {
    use super::Verb;
    if matches!(verb, Verb::Helo | Verb::Ehlo | Verb::Lhlo) {
        return None;
    }
    Some(match (code, verb) {
        (250..=252, Verb::Mail) => "2.1.0",
        (250..=252, Verb::Rcpt) => "2.1.5",
        (200..=299, _) => "2.0.0",
        (300..=399, _) => return None,
        (421, _) => "4.3.2",
        (452, Verb::Rcpt) => "4.5.3",
        (452, _) => "4.3.1",
        (454, Verb::StartTls) => "4.7.0",
        (400..=499, _) => "4.0.0",
        (500, _) => "5.5.2",
        (501 | 504 | 555, _) => "5.5.4",
        (502 | 503, _) => "5.5.1",
        (530, _) => "5.7.0",
        (552, _) => "5.3.4",
        _ => "5.0.0",
    })
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
        if self.disconnect {
            return f.write_str("Reply(disconnect)");
        }
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

    #[test]
    fn disconnect_sends_nothing_closes_and_survives_an_enhanced_code() {
        let drop = Reply::disconnect();
        assert!(drop.is_disconnect() && drop.closes_connection());
        assert!(drop.with_enhanced_code("4.0.0").is_disconnect());
        assert!(!Reply::new(421, "bye").is_disconnect());
        assert_eq!(format!("{drop:?}"), "Reply(disconnect)");
    }

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
            // Regression: an unknown verb `X<CR>Y` was echoed with its bare CR, which ends a
            // reply line for some clients (found by the session fuzz target).
            (
                Reply::new(500, "command \"X\rY\0\" unknown\r"),
                b"500 command \"X?Y?\" unknown\r\n",
            ),
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
    fn long_lines_are_cut_at_512_octets() {
        // After `a`, every `é` (two octets) ends at an odd offset: 506 octets would split one.
        let long = format!("a{}", "\u{e9}".repeat(400));
        let cases: &[(Reply, usize)] = &[
            (Reply::new(500, "x".repeat(600)), MAX_LINE),
            (Reply::new(500, "x".repeat(507)), MAX_LINE),
            (Reply::new(500, "x".repeat(506)), MAX_LINE),
            (Reply::new(500, "x".repeat(505)), MAX_LINE - 1),
            (Reply::new(250, long.clone()), MAX_LINE - 1),
        ];
        for (reply, len) in cases {
            let wire = reply.to_bytes();
            assert_eq!(wire.len(), *len, "{reply:?}");
            assert!(wire.ends_with(b"\r\n"));
            assert!(std::str::from_utf8(&wire).is_ok());
        }
        let wire = Reply::new(250, format!("short\n{long}")).to_bytes();
        let lines: Vec<&[u8]> = wire.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(lines[0], b"250-short\r\n");
        assert_eq!(lines[1].len(), MAX_LINE - 1);
    }

    #[test]
    fn fixed_replies() {
        const BYE: Reply = Reply::fixed(221, "Bye");
        assert_eq!(BYE, Reply::from("221 Bye"));
        assert_eq!(Reply::fixed(99, "x").code(), 451);
    }

    #[test]
    fn enhanced_codes() {
        let cases: &[(&str, &str, &str)] = &[
            ("250 OK", "2.1.0", "250 2.1.0 OK"),
            ("250 2.1.5 recipient ok", "2.0.0", "250 2.1.5 recipient ok"),
            ("550 5.1.1 no such user", "5.0.0", "550 5.1.1 no such user"),
            (
                "550 2.1.1 wrong class",
                "5.0.0",
                "550 5.0.0 2.1.1 wrong class",
            ),
            (
                "250 5 octets received",
                "2.0.0",
                "250 2.0.0 5 octets received",
            ),
            ("250 2.0.0", "2.0.0", "250 2.0.0"),
            ("250 2.0.0000 x", "2.0.0", "250 2.0.0 2.0.0000 x"),
            ("250 ", "2.0.0", "250 2.0.0"),
            ("221 Bye", "2.0.0", "221 2.0.0 Bye"),
        ];
        for (reply, code, expected) in cases {
            let reply = Reply::from(*reply);
            assert_eq!(reply.with_enhanced_code(code).to_string(), *expected);
        }
        assert_eq!(
            Reply::new(250, "a\n2.0.0 b")
                .with_enhanced_code("2.0.0")
                .to_string(),
            "250-2.0.0 a\n250 2.0.0 b"
        );
        use crate::proto::Verb;
        let table: &[(Verb, u16, Option<&str>)] = &[
            (Verb::Mail, 250, Some("2.1.0")),
            (Verb::Rcpt, 250, Some("2.1.5")),
            (Verb::Data, 250, Some("2.0.0")),
            (Verb::Data, 354, None),
            (Verb::Auth, 334, None),
            (Verb::Ehlo, 250, None),
            (Verb::Helo, 501, None),
            (Verb::Lhlo, 250, None),
            (Verb::Rcpt, 452, Some("4.5.3")),
            (Verb::Unknown, 500, Some("5.5.2")),
            (Verb::Mail, 501, Some("5.5.4")),
            (Verb::Rcpt, 503, Some("5.5.1")),
            (Verb::Bdat, 552, Some("5.3.4")),
            (Verb::Rcpt, 550, Some("5.0.0")),
            (Verb::Data, 451, Some("4.0.0")),
        ];
        for (verb, code, expected) in table {
            assert_eq!(enhanced_code(*verb, *code), *expected, "{verb:?} {code}");
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
