//! Command lines: the verb and its argument. The paths of MAIL and RCPT are read by
//! [`super::address`], re-exported here.

use super::{Reply, replies};

pub use super::address::{Path, PathError, PathOptions, parse_path, parse_path_with};

/// The verbs the server knows. Anything else is [`Verb::Unknown`] and counts against the
/// bogus-command budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
#[non_exhaustive]
pub enum Verb {
    Helo,
    Ehlo,
    Lhlo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    Auth,
    StartTls,
    Bdat,
    Xclient,
    Xforward,
    Unknown,
}

impl Verb {
    fn from_upper(verb: &[u8]) -> Verb {
        match verb {
            b"HELO" => Verb::Helo,
            b"EHLO" => Verb::Ehlo,
            b"LHLO" => Verb::Lhlo,
            b"MAIL" => Verb::Mail,
            b"RCPT" => Verb::Rcpt,
            b"DATA" => Verb::Data,
            b"RSET" => Verb::Rset,
            b"NOOP" => Verb::Noop,
            b"QUIT" => Verb::Quit,
            b"VRFY" => Verb::Vrfy,
            b"EXPN" => Verb::Expn,
            b"HELP" => Verb::Help,
            b"AUTH" => Verb::Auth,
            b"STARTTLS" => Verb::StartTls,
            b"BDAT" => Verb::Bdat,
            b"XCLIENT" => Verb::Xclient,
            b"XFORWARD" => Verb::Xforward,
            _ => Verb::Unknown,
        }
    }

    /// The verb as written in replies and HELP.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Helo => "HELO",
            Verb::Ehlo => "EHLO",
            Verb::Lhlo => "LHLO",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP",
            Verb::Quit => "QUIT",
            Verb::Vrfy => "VRFY",
            Verb::Expn => "EXPN",
            Verb::Help => "HELP",
            Verb::Auth => "AUTH",
            Verb::StartTls => "STARTTLS",
            Verb::Bdat => "BDAT",
            Verb::Xclient => "XCLIENT",
            Verb::Xforward => "XFORWARD",
            Verb::Unknown => "",
        }
    }
}

/// One command line, split into its verb and argument.
#[derive(Debug, PartialEq, Eq)]
pub struct CommandLine<'a> {
    /// The recognised verb, or `Unknown`.
    pub verb: Verb,
    /// The verb as sent, upper-cased (for the replies to unknown verbs). Borrowed, without
    /// an allocation, for the known verbs.
    pub verb_text: std::borrow::Cow<'static, str>,
    /// The argument with surrounding white space removed; `None` when there is none. With
    /// SMTPUTF8 on, an argument that is not UTF-8 reads as [`NOT_UTF8`]; see
    /// [`CommandLine::arg_is_utf8`].
    pub arg: Option<&'a str>,
    /// The argument as sent, without surrounding ASCII white space; `None` when there is none.
    pub raw_arg: Option<&'a [u8]>,
}

/// What [`CommandLine::arg`] holds for an argument that is not UTF-8 (SMTPUTF8 on): U+FFFD,
/// the replacement character. aiosmtpd decodes such an argument with surrogate escapes and
/// goes on; this reads the same where the argument only has to match something: NOOP ignores
/// it, HELP and AUTH find no topic or mechanism of that name, QUIT and DATA take none, and
/// HELO/EHLO record it as the client's (undecodable) name. MAIL and RCPT must not record it
/// as an address: they answer [`replies::address_not_utf8`].
pub const NOT_UTF8: &str = "\u{fffd}";

impl CommandLine<'_> {
    /// Whether the argument, if any, is UTF-8, so that [`CommandLine::arg`] is what was sent.
    pub fn arg_is_utf8(&self) -> bool {
        self.raw_arg
            .is_none_or(|raw| std::str::from_utf8(raw).is_ok())
    }
}

/// Splits a command line (without its line ending) into verb and argument.
///
/// The verb ends at the first space; it is matched case-insensitively. The argument must be
/// ASCII unless SMTPUTF8 is enabled; then one that is not UTF-8 reads as [`NOT_UTF8`].
pub fn parse_command(line: &[u8], smtputf8: bool) -> Result<CommandLine<'_>, Reply> {
    if line.is_empty() {
        return Err(replies::BAD_SYNTAX);
    }
    let (verb, rest) = match memchr::memchr(b' ', line) {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    if !verb.is_ascii() || verb.is_empty() {
        return Err(replies::BAD_SYNTAX);
    }
    let raw_arg = rest.map(<[u8]>::trim_ascii).filter(|raw| !raw.is_empty());
    let arg = match raw_arg {
        None => None,
        Some(raw) if !smtputf8 && !raw.is_ascii() => return Err(replies::STRICT_ASCII),
        Some(raw) => match std::str::from_utf8(raw) {
            Ok(text) => Some(text.trim()).filter(|text| !text.is_empty()),
            Err(_) => Some(NOT_UTF8),
        },
    };
    // Known verbs are at most 8 letters: upper-case them on the stack, not in a new String.
    let mut upper = [0u8; 8];
    let known = match upper.get_mut(..verb.len()) {
        Some(buf) => {
            buf.copy_from_slice(verb);
            buf.make_ascii_uppercase();
            Verb::from_upper(buf)
        }
        None => Verb::Unknown,
    };
    let verb_text = match known {
        Verb::Unknown => {
            // The verb is ASCII (checked above), so this cannot fail.
            std::borrow::Cow::Owned(
                String::from_utf8(verb.to_ascii_uppercase()).unwrap_or_default(),
            )
        }
        verb => std::borrow::Cow::Borrowed(verb.name()),
    };
    let verb = known;
    Ok(CommandLine {
        verb,
        verb_text,
        arg,
        raw_arg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        type Case<'a> = (&'a [u8], Result<(Verb, Option<&'a str>), &'a str>);
        let cases: &[Case] = &[
            (b"EHLO example.com", Ok((Verb::Ehlo, Some("example.com")))),
            (b"ehlo  spaced  ", Ok((Verb::Ehlo, Some("spaced")))),
            (b"NOOP", Ok((Verb::Noop, None))),
            (b"NOOP ", Ok((Verb::Noop, None))),
            (b"mail FROM:<a@b>", Ok((Verb::Mail, Some("FROM:<a@b>")))),
            (b"StartTLS", Ok((Verb::StartTls, None))),
            (b"FOO bar", Ok((Verb::Unknown, Some("bar")))),
            (b"xclient ADDR=::1", Ok((Verb::Xclient, Some("ADDR=::1")))),
            (b"XFORWARD IDENT=1", Ok((Verb::Xforward, Some("IDENT=1")))),
            (b"NOOP\tx", Ok((Verb::Unknown, None))),
            (b"", Err("500 Error: bad syntax")),
            (b"\xc3\xa9HLO x", Err("500 Error: bad syntax")),
            (
                b"MAIL FROM:<\xc3\xa9@b>",
                Err("500 Error: strict ASCII mode"),
            ),
        ];
        for (line, expected) in cases {
            let got = parse_command(line, false)
                .map(|c| (c.verb, c.arg))
                .map_err(|r| r.to_string());
            let expected = (*expected).map_err(str::to_owned);
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(line));
        }
        let utf8 = parse_command(b"MAIL FROM:<\xc3\xa9@b>", true).unwrap();
        assert_eq!(utf8.arg, Some("FROM:<\u{e9}@b>"));
    }

    /// Issue 13: with SMTPUTF8 on, `NOOP \xff` got `500 Error: strict ASCII mode`, a text
    /// that is wrong when the server offers SMTPUTF8; aiosmtpd accepts the line.
    #[test]
    fn arguments_that_are_not_utf8() {
        type Case<'a> = (
            &'a [u8],
            bool,
            Result<(Verb, Option<&'a str>, bool), &'a str>,
        );
        let cases: &[Case] = &[
            (b"NOOP \xff", true, Ok((Verb::Noop, Some(NOT_UTF8), false))),
            (
                b"HELP \xffHELO ",
                true,
                Ok((Verb::Help, Some(NOT_UTF8), false)),
            ),
            (
                b"MAIL FROM:anne\xff@example.com",
                true,
                Ok((Verb::Mail, Some(NOT_UTF8), false)),
            ),
            (
                b"RCPT TO:<\xc3>",
                true,
                Ok((Verb::Rcpt, Some(NOT_UTF8), false)),
            ),
            (
                b"NOOP \xc3\xa9",
                true,
                Ok((Verb::Noop, Some("\u{e9}"), true)),
            ),
            (b"NOOP  ", true, Ok((Verb::Noop, None, true))),
            (b"NOOP", true, Ok((Verb::Noop, None, true))),
            (b"NOOP \xff", false, Err("500 Error: strict ASCII mode")),
            (b"NOOP \xc3\xa9", false, Err("500 Error: strict ASCII mode")),
            (b"N\xffOOP", true, Err("500 Error: bad syntax")),
        ];
        for (line, smtputf8, expected) in cases {
            let got = parse_command(line, *smtputf8)
                .map(|c| (c.verb, c.arg, c.arg_is_utf8()))
                .map_err(|r| r.to_string());
            let expected = (*expected).map_err(str::to_owned);
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(line));
        }
        let cmd = parse_command(b"NOOP  \xff x ", true).unwrap();
        assert_eq!(cmd.raw_arg, Some(&b"\xff x"[..]));
    }
}
