//! Command lines: the verb, its argument, and the paths and parameters of MAIL and RCPT.

use super::Reply;

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
    /// The argument with surrounding white space removed; `None` when there is none.
    pub arg: Option<&'a str>,
}

/// Splits a command line (without its line ending) into verb and argument.
///
/// The verb ends at the first space; it is matched case-insensitively. The argument must be
/// ASCII unless SMTPUTF8 is enabled, in which case it must be UTF-8.
pub fn parse_command(line: &[u8], smtputf8: bool) -> Result<CommandLine<'_>, Reply> {
    if line.is_empty() {
        return Err(Reply::from("500 Error: bad syntax"));
    }
    let (verb, rest) = match memchr::memchr(b' ', line) {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    if !verb.is_ascii() || verb.is_empty() {
        return Err(Reply::from("500 Error: bad syntax"));
    }
    let arg = match rest {
        None => None,
        Some(rest) => {
            let text = if smtputf8 {
                std::str::from_utf8(rest)
                    .map_err(|_| Reply::from("500 Error: strict ASCII mode"))?
            } else if rest.is_ascii() {
                // ASCII is valid UTF-8.
                std::str::from_utf8(rest)
                    .map_err(|_| Reply::from("500 Error: strict ASCII mode"))?
            } else {
                return Err(Reply::from("500 Error: strict ASCII mode"));
            };
            let text = text.trim();
            (!text.is_empty()).then_some(text)
        }
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
    })
}

/// Why a MAIL or RCPT argument was refused.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// The keyword (`FROM:`/`TO:`) or the address is missing: a 501 syntax reply.
    Syntax,
    /// The address does not parse: `553 5.1.3 Error: malformed address`.
    Malformed,
}

/// A reverse- or forward-path with its ESMTP parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Path {
    /// The address without angle brackets or source route; `<>` for the null path.
    pub address: String,
    /// The parameters, upper-cased (`SIZE=1024`, `BODY=8BITMIME`).
    pub params: Vec<String>,
    /// The parameters as sent: xtext values (`ENVID=`, `ORCPT=`) are case-sensitive.
    pub raw_params: Vec<String>,
}

/// Parses `FROM:<address> params…` (or `TO:`); `keyword` includes the colon.
pub fn parse_path(arg: Option<&str>, keyword: &str) -> Result<Path, PathError> {
    let arg = arg.ok_or(PathError::Syntax)?;
    let head = arg.get(..keyword.len()).ok_or(PathError::Syntax)?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(PathError::Syntax);
    }
    let rest = arg[keyword.len()..].trim_start();
    if rest.is_empty() {
        return Err(PathError::Syntax);
    }
    let (address, params) = if let Some(inner) = rest.strip_prefix('<') {
        let end = closing_bracket(inner).ok_or(PathError::Malformed)?;
        let address = &inner[..end];
        let after = &inner[end + 1..];
        if !after.is_empty() && !after.starts_with(' ') {
            return Err(PathError::Malformed);
        }
        let address = if address.is_empty() {
            "<>"
        } else {
            strip_source_route(address)?
        };
        (address, after)
    } else {
        let end = rest.find(' ').unwrap_or(rest.len());
        (&rest[..end], &rest[end..])
    };
    if address != "<>" {
        validate_address(address)?;
    }
    let raw_params: Vec<String> = params.split_whitespace().map(str::to_owned).collect();
    let params = raw_params.iter().map(|p| p.to_ascii_uppercase()).collect();
    Ok(Path {
        address: address.to_owned(),
        params,
        raw_params,
    })
}

/// The index of the `>` that closes an angle address, skipping quoted strings.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Drops an RFC 5321 source route (`@a,@b:user@c`), which must be accepted and ignored.
fn strip_source_route(address: &str) -> Result<&str, PathError> {
    if address.starts_with('@') {
        let colon = address.find(':').ok_or(PathError::Malformed)?;
        Ok(&address[colon + 1..])
    } else {
        Ok(address)
    }
}

fn validate_address(address: &str) -> Result<(), PathError> {
    if address.is_empty() || address.len() > 320 {
        return Err(PathError::Malformed);
    }
    if address.eq_ignore_ascii_case("postmaster") {
        return Ok(());
    }
    let (local, domain) = match address.rfind('@') {
        Some(at) => (&address[..at], &address[at + 1..]),
        None => (address, ""),
    };
    if local.is_empty() || address.ends_with('@') {
        return Err(PathError::Malformed);
    }
    let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    // An unquoted `@` in the local part (`a@b@c`) is refused, as aiosmtpd's parser does.
    let bad_char = |c: char| {
        c.is_control() || c == '<' || c == '>' || (!quoted && (c == ' ' || c == '"' || c == '@'))
    };
    if local.chars().any(bad_char) || local.len() > 64 && !quoted {
        return Err(PathError::Malformed);
    }
    let literal = domain.starts_with('[') && domain.ends_with(']');
    let bad_domain = |c: char| {
        c.is_control()
            || c.is_whitespace()
            || matches!(
                c,
                '<' | '>' | '(' | ')' | '"' | '@' | ',' | ';' | ':' | '\\'
            )
    };
    // A literal may hold `:` (IPv6) but, like any domain, no control character or space:
    // the address ends up in headers and logs.
    let bad_literal = |c: char| c.is_control() || c.is_whitespace();
    if !literal && domain.chars().any(bad_domain) || literal && domain.chars().any(bad_literal) {
        return Err(PathError::Malformed);
    }
    Ok(())
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

    #[test]
    fn paths() {
        let ok = |address: &str, params: &[&str]| {
            Ok(Path {
                address: address.into(),
                params: params.iter().map(|s| s.to_string()).collect(),
                raw_params: params.iter().map(|s| s.to_lowercase()).collect(),
            })
        };
        let cases: &[(&str, Result<Path, PathError>)] = &[
            ("FROM:<a@example.com>", ok("a@example.com", &[])),
            ("from: <a@example.com>", ok("a@example.com", &[])),
            ("FROM:a@example.com", ok("a@example.com", &[])),
            ("FROM:<>", ok("<>", &[])),
            (
                "FROM:<a@b> size=100 body=8bitmime",
                ok("a@b", &["SIZE=100", "BODY=8BITMIME"]),
            ),
            ("FROM:<@relay,@other:a@b>", ok("a@b", &[])),
            ("FROM:<\"john doe\"@b>", ok("\"john doe\"@b", &[])),
            ("FROM:<Postmaster>", ok("Postmaster", &[])),
            ("FROM:<[127.0.0.1]@b>", ok("[127.0.0.1]@b", &[])),
            ("FROM:", Err(PathError::Syntax)),
            ("FROM", Err(PathError::Syntax)),
            ("TO:<a@b>", Err(PathError::Syntax)),
            ("FROM:<a@b", Err(PathError::Malformed)),
            ("FROM:<a b@c>", Err(PathError::Malformed)),
            ("FROM:<a@b>x", Err(PathError::Malformed)),
            ("FROM:<@b>", Err(PathError::Malformed)),
            ("FROM:<a@>", Err(PathError::Malformed)),
            ("FROM:<a@b@c>", Err(PathError::Malformed)),
            ("FROM:<\"a@b\"@c>", ok("\"a@b\"@c", &[])),
            // Regression: control characters inside a domain literal were accepted (found by
            // the command fuzz target); they would reach headers and logs.
            ("FROM:<a@[127.0.0.1\r]>", Err(PathError::Malformed)),
            ("FROM:<a@[127\0.0.0.1]>", Err(PathError::Malformed)),
            ("FROM:<a@[1 27.0.0.1]>", Err(PathError::Malformed)),
            ("FROM:<a@[IPv6:::1]>", ok("a@[IPv6:::1]", &[])),
        ];
        for (arg, expected) in cases {
            assert_eq!(&parse_path(Some(arg), "FROM:"), expected, "{arg}");
        }
        assert_eq!(parse_path(None, "FROM:"), Err(PathError::Syntax));
        assert_eq!(parse_path(Some("TO:<x@y>"), "TO:"), ok("x@y", &[]));
    }
}
