//! The paths of MAIL and RCPT: `FROM:<address> params…`, read as aiosmtpd's parser
//! (`email._header_value_parser`) reads them where senders rely on it: comments and white
//! space around the parts of an address are dropped, a source route is ignored.

/// Why a MAIL or RCPT argument was refused.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathError {
    /// The keyword (`FROM:`/`TO:`) or the address is missing: a 501 syntax reply.
    Syntax,
    /// The address does not parse, or its local part is over the configured limit:
    /// `553 5.1.3 Error: malformed address`.
    Malformed,
}

/// A reverse- or forward-path with its ESMTP parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Path {
    /// The address without angle brackets, comments or source route; `<>` for the null path.
    pub address: String,
    /// The parameters, upper-cased (`SIZE=1024`, `BODY=8BITMIME`).
    pub params: Vec<String>,
    /// The parameters as sent: xtext values (`ENVID=`, `ORCPT=`) are case-sensitive.
    pub raw_params: Vec<String>,
}

/// How paths are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathOptions {
    /// The longest local part in octets, quotes included, as aiosmtpd's `local_part_limit`.
    /// RFC 5321 §4.5.3.1.1 says 64, but SRS, VERP and BATV senders pass it every day and
    /// Postfix has no limit. Default is no limit.
    pub local_part_limit: Option<usize>,
}

impl PathOptions {
    /// Options with a local-part limit (`None`: no limit).
    pub fn with_local_part_limit(mut self, limit: Option<usize>) -> Self {
        self.local_part_limit = limit;
        self
    }
}

/// The longest address: a path of 256 octets (RFC 5321 §4.5.3.1.3) and some slack.
const MAX_ADDRESS: usize = 320;

/// Parses `FROM:<address> params…` (or `TO:`); `keyword` includes the colon. The local part
/// has no length limit: see [`parse_path_with`].
pub fn parse_path(arg: Option<&str>, keyword: &str) -> Result<Path, PathError> {
    parse_path_with(arg, keyword, &PathOptions::default())
}

/// Parses `FROM:<address> params…` (or `TO:`) with `options`; `keyword` includes the colon.
///
/// RFC 5322 comments may stand before, after and inside the address, and white space around
/// its `@`, `.`, `:` and `,`: `MAIL FROM:anne@example.com(comment)` records
/// `anne@example.com`, as in aiosmtpd. A comment in front of `<` is not taken (aiosmtpd
/// refuses it too), nor is one that is never closed.
pub fn parse_path_with(
    arg: Option<&str>,
    keyword: &str,
    options: &PathOptions,
) -> Result<Path, PathError> {
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
        let (address, after) = match inner.strip_prefix('>') {
            Some(after) => (String::from("<>"), after),
            None => {
                let (address, after) = take_address(inner, true)?;
                let after = after.strip_prefix('>').ok_or(PathError::Malformed)?;
                (strip_source_route(address)?, after)
            }
        };
        let params = skip_cfws(after)?;
        // `<a@b>x`: parameters start after white space or a comment.
        if !params.is_empty() && params.len() == after.len() {
            return Err(PathError::Malformed);
        }
        (address, params)
    } else {
        take_address(rest, false)?
    };
    if address != "<>" {
        validate_address(&address, options)?;
    }
    let raw_params: Vec<String> = params.split_whitespace().map(str::to_owned).collect();
    let params = raw_params.iter().map(|p| p.to_ascii_uppercase()).collect();
    Ok(Path {
        address,
        params,
        raw_params,
    })
}

/// Reads an address up to its end, dropping comments and the white space around them.
/// White space or a comment ends the address unless it stands next to `@`, `.`, `:` or `,`;
/// in angle brackets (`angle`), so does `>`. Returns the address and what follows it, after
/// the white space and comments that end it.
fn take_address(s: &str, angle: bool) -> Result<(String, &str), PathError> {
    let joins = |c: Option<char>| matches!(c, Some('@' | '.' | ':' | ','));
    let mut address = String::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        match c {
            ' ' | '\t' | '(' => {
                let after = skip_cfws(rest)?;
                let first = address.is_empty();
                if !first && !joins(address.chars().last()) && !joins(after.chars().next()) {
                    return Ok((address, after));
                }
                rest = after;
            }
            '>' if angle => break,
            '"' | '[' => {
                let len = delimited_len(rest).ok_or(PathError::Malformed)?;
                address.push_str(&rest[..len]);
                rest = &rest[len..];
            }
            c => {
                address.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    Ok((address, rest))
}

/// The length of the quoted string (`"…"`, with quoted pairs) or domain literal (`[…]`) at
/// the start of `s`, or `None` if it is not closed.
fn delimited_len(s: &str) -> Option<usize> {
    let close = if s.starts_with('"') { b'"' } else { b']' };
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate().skip(1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' if close == b'"' => escaped = true,
            b if b == close => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Skips white space and RFC 5322 comments (nested, with quoted pairs) at the start of `s`.
fn skip_cfws(mut s: &str) -> Result<&str, PathError> {
    loop {
        s = s.trim_start_matches([' ', '\t']);
        if !s.starts_with('(') {
            return Ok(s);
        }
        let mut depth = 0usize;
        let mut escaped = false;
        let mut end = None;
        for (i, b) in s.bytes().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        s = &s[end.ok_or(PathError::Malformed)?..];
    }
}

/// Drops an RFC 5321 source route (`@a,@b:user@c`), which must be accepted and ignored.
fn strip_source_route(address: String) -> Result<String, PathError> {
    if address.starts_with('@') {
        let colon = address.find(':').ok_or(PathError::Malformed)?;
        Ok(address[colon + 1..].to_owned())
    } else {
        Ok(address)
    }
}

fn validate_address(address: &str, options: &PathOptions) -> Result<(), PathError> {
    if address.is_empty() || address.len() > MAX_ADDRESS {
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
    if options
        .local_part_limit
        .is_some_and(|limit| local.len() > limit)
    {
        return Err(PathError::Malformed);
    }
    let quoted = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    // An unquoted `@` in the local part (`a@b@c`) is refused, as aiosmtpd's parser does.
    let bad_char = |c: char| {
        c.is_control() || c == '<' || c == '>' || (!quoted && (c == ' ' || c == '"' || c == '@'))
    };
    if local.chars().any(bad_char) {
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

    fn ok(address: &str, params: &[&str]) -> Result<Path, PathError> {
        Ok(Path {
            address: address.into(),
            params: params.iter().map(|s| s.to_string()).collect(),
            raw_params: params.iter().map(|s| s.to_lowercase()).collect(),
        })
    }

    #[test]
    fn paths() {
        let cases: &[(&str, Result<Path, PathError>)] = &[
            ("FROM:<a@example.com>", ok("a@example.com", &[])),
            ("from: <a@example.com>", ok("a@example.com", &[])),
            ("FROM:a@example.com", ok("a@example.com", &[])),
            ("FROM:<>", ok("<>", &[])),
            (
                "FROM:<a@b> size=100 body=8bitmime",
                ok("a@b", &["SIZE=100", "BODY=8BITMIME"]),
            ),
            ("FROM:a@b size=100", ok("a@b", &["SIZE=100"])),
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
            ("FROM:<\"a>b\"@c>", Err(PathError::Malformed)),
            ("FROM:<\"a@c>", Err(PathError::Malformed)),
            ("FROM:<a@[1.2.3.4>", Err(PathError::Malformed)),
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

    /// Issue 13: aiosmtpd accepts comments in paths and records the address without them;
    /// smtpd answered 553. Each accepted case was checked against aiosmtpd's `_getaddr`.
    #[test]
    fn comments_are_dropped_from_paths() {
        let cases: &[(&str, Result<Path, PathError>)] = &[
            ("TO:anne@example.com(comment)", ok("anne@example.com", &[])),
            ("TO: (comment)anne@example.com", ok("anne@example.com", &[])),
            ("TO:(comment) anne@example.com", ok("anne@example.com", &[])),
            ("TO:anne(c)@example.com", ok("anne@example.com", &[])),
            ("TO:anne@(c)example.com", ok("anne@example.com", &[])),
            ("TO:anne @ example.com", ok("anne@example.com", &[])),
            ("TO:a.b(c).d@e", ok("a.b.d@e", &[])),
            (
                "TO:anne@example.com (c) size=1",
                ok("anne@example.com", &["SIZE=1"]),
            ),
            (
                "TO:anne@example.com(c)size=1",
                ok("anne@example.com", &["SIZE=1"]),
            ),
            (
                "TO:anne@example.com ( comment with spaces ) size=1",
                ok("anne@example.com", &["SIZE=1"]),
            ),
            (
                "TO:anne@example.com(a (nested) one)",
                ok("anne@example.com", &[]),
            ),
            (
                "TO:anne@example.com(a \\) quoted pair)",
                ok("anne@example.com", &[]),
            ),
            ("TO:a(\\()@b", ok("a@b", &[])),
            ("TO:anne@example.com(one)(two)", ok("anne@example.com", &[])),
            (
                "TO:<(comment)anne@example.com>",
                ok("anne@example.com", &[]),
            ),
            (
                "TO:<anne@example.com(comment)>",
                ok("anne@example.com", &[]),
            ),
            (
                "TO:<anne(comment)@example.com>",
                ok("anne@example.com", &[]),
            ),
            ("TO:< anne@example.com >", ok("anne@example.com", &[])),
            ("TO:<anne @ example.com>", ok("anne@example.com", &[])),
            ("TO:<a@b(>)>", ok("a@b", &[])),
            ("TO:<a@[1.2.3.4](c)>", ok("a@[1.2.3.4]", &[])),
            ("TO:<a@(c)[1.2.3.4]>", ok("a@[1.2.3.4]", &[])),
            (
                "TO:<\"john doe\"(c)@example.com>",
                ok("\"john doe\"@example.com", &[]),
            ),
            ("TO:<\"a(b)\"@c>", ok("\"a(b)\"@c", &[])),
            ("TO:<@relay(c):a@b>", ok("a@b", &[])),
            (
                "TO:<anne@example.com>(comment)",
                ok("anne@example.com", &[]),
            ),
            (
                "TO:<anne@example.com>(c) size=1",
                ok("anne@example.com", &["SIZE=1"]),
            ),
            (
                "TO:<anne@example.com> (c) size=1",
                ok("anne@example.com", &["SIZE=1"]),
            ),
            // aiosmtpd refuses these too.
            ("TO:(comment)<anne@example.com>", Err(PathError::Malformed)),
            ("TO:<(comment)>", Err(PathError::Malformed)),
            ("TO:(comment)", Err(PathError::Malformed)),
            // aiosmtpd lets an unclosed comment run to the end of the line.
            ("TO:anne@example.com(unclosed", Err(PathError::Malformed)),
            ("TO:anne@example.com(a (nested)", Err(PathError::Malformed)),
            ("TO:<anne@example.com(c>", Err(PathError::Malformed)),
            ("TO:a@b(\\", Err(PathError::Malformed)),
            // A comment is no place for a second local part.
            ("TO:<a(c)b@example.com>", Err(PathError::Malformed)),
        ];
        for (arg, expected) in cases {
            assert_eq!(&parse_path(Some(arg), "TO:"), expected, "{arg}");
        }
    }

    /// Issue 13: an unquoted local part over 64 octets was refused as malformed, and with it
    /// SRS, VERP and BATV senders; like aiosmtpd's `local_part_limit`, no limit by default.
    #[test]
    fn local_part_limit() {
        let srs = "SRS0=HHH=TT=example.org=very.long.user.name.that.is.longer.than.sixty.four.\
                   octets@bounce.example.com";
        let local = &srs[..srs.rfind('@').unwrap()];
        assert!(local.len() > 64);
        let limited = |n| PathOptions::default().with_local_part_limit(Some(n));
        let quoted = format!("\"{}\"@b", "x".repeat(70));
        let cases: &[(&str, PathOptions, bool)] = &[
            (srs, PathOptions::default(), true),
            (srs, limited(local.len()), true),
            (srs, limited(local.len() - 1), false),
            (srs, limited(64), false),
            (&quoted, PathOptions::default(), true),
            (&quoted, limited(64), false),
            ("a@b", limited(1), true),
            ("ab@b", limited(1), false),
            ("Postmaster", limited(1), true),
        ];
        for (address, options, accepted) in cases {
            let arg = format!("FROM:<{address}>");
            let got = parse_path_with(Some(&arg), "FROM:", options);
            let expected = if *accepted {
                ok(address, &[])
            } else {
                Err(PathError::Malformed)
            };
            assert_eq!(got, expected, "{address} {options:?}");
        }
        let bare = format!("FROM:{srs}");
        assert_eq!(parse_path(Some(&bare), "FROM:"), ok(srs, &[]));
    }
}
