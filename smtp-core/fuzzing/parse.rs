//! The parsers: commands, DATA, the PROXY header, extension parameters.

use crate::proto::params::{decode_xtext, mail_dsn_param, rcpt_dsn_param};
use crate::proto::proxy::{ProxyParse, parse as parse_proxy};
use crate::proto::{
    DataDecoder, DataError, MailDsn, RcptDsn, Verb, parse_bdat, parse_command, parse_path,
};

/// The command parser: `input[0]` bit 0 turns SMTPUTF8 on, the rest is one command line.
pub fn command(input: &[u8]) {
    let Some((&flags, line)) = input.split_first() else {
        return;
    };
    let smtputf8 = flags & 1 != 0;
    match parse_command(line, smtputf8) {
        Err(reply) => assert_eq!(reply.code(), 500, "{reply}"),
        Ok(cmd) => {
            let verb = cmd.verb_text.as_bytes();
            assert!(!verb.is_empty() && !verb.contains(&b' '), "{cmd:?}");
            assert!(
                verb.iter().all(|b| b.is_ascii() && !b.is_ascii_lowercase()),
                "{cmd:?}"
            );
            if cmd.verb != Verb::Unknown {
                assert_eq!(cmd.verb.name(), cmd.verb_text);
            }
            if let Some(arg) = cmd.arg {
                assert!(!arg.is_empty() && arg.trim() == arg, "{cmd:?}");
                assert!(smtputf8 || arg.is_ascii(), "{cmd:?}");
            }
            for keyword in ["FROM:", "TO:"] {
                path(cmd.arg, keyword);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(line) {
        path(Some(text), "FROM:");
    }
}

fn path(arg: Option<&str>, keyword: &str) {
    let Ok(path) = parse_path(arg, keyword) else {
        return;
    };
    let address = &path.address;
    assert!(!address.is_empty() && address.len() <= 320, "{path:?}");
    // The address goes into headers and logs: a control character there is an injection.
    assert!(!address.chars().any(char::is_control), "{path:?}");
    if address != "<>" {
        // RFC 5321 allows `<` and `>` in a domain literal, never in the local part.
        let local = address
            .rsplit_once('@')
            .map_or(address.as_str(), |(l, _)| l);
        assert!(!local.contains(['<', '>']), "{path:?}");
    }
    for param in &path.params {
        assert!(
            !param.is_empty() && !param.contains(char::is_whitespace),
            "{path:?}"
        );
        assert_eq!(param, &param.to_ascii_uppercase());
    }
}

/// What [`reference_data`] makes of a DATA stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes up to and including the end marker; `None` while it has not arrived.
    pub consumed: Option<usize>,
    /// The first limit broken by a complete line.
    pub error: Option<DataError>,
    /// The message, when it ended without an error.
    pub content: Option<Vec<u8>>,
}

/// The reference model of DATA: split on CRLF only, the line `.` ends, one leading dot is
/// removed. Each line counts its raw length, CRLF included, against both limits.
pub fn reference_data(input: &[u8], line_limit: usize, size_limit: Option<usize>) -> Decoded {
    let mut content = Vec::new();
    let mut error = None;
    let mut size = 0;
    let mut pos = 0;
    while let Some(crlf) = input[pos..].windows(2).position(|w| w == b"\r\n") {
        let line = &input[pos..pos + crlf];
        pos += crlf + 2;
        if line == b"." {
            let content = error.is_none().then_some(content);
            return Decoded {
                consumed: Some(pos),
                error,
                content,
            };
        }
        size += line.len() + 2;
        if error.is_none() {
            if line.len() + 2 > line_limit {
                error = Some(DataError::LineTooLong);
            } else if size_limit.is_some_and(|limit| size > limit) {
                error = Some(DataError::TooMuchData);
            }
        }
        content.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        content.extend_from_slice(b"\r\n");
    }
    Decoded {
        consumed: None,
        error,
        content: None,
    }
}

/// The DATA decoder against [`reference_data`]. `input[0]` picks the line limit, `input[1]`
/// the size limit (255: none), `input[2]` how many split points follow (0 to 7); the rest is
/// the stream, fed in the pieces those points cut.
pub fn data(input: &[u8]) {
    let [a, b, c, rest @ ..] = input else {
        return;
    };
    let line_limit = 3 + usize::from(*a % 64);
    let size_limit = (*b != 255).then(|| usize::from(*b) * 2);
    let splits = usize::from(*c % 8).min(rest.len());
    let (cuts, stream) = rest.split_at(splits);
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|&x| usize::from(x) * (stream.len() + 1) / 256)
        .collect();
    cuts.sort_unstable();
    cuts.push(stream.len());

    let mut decoder = DataDecoder::new(line_limit, size_limit);
    let mut content = Vec::new();
    let mut consumed = None;
    let mut start = 0;
    for cut in cuts {
        let piece = &stream[start..cut];
        if let Some(n) = decoder.feed(piece, &mut |bytes| content.extend_from_slice(bytes)) {
            consumed = Some(start + n);
            break;
        }
        start = cut;
    }
    // Memory stays bounded by the size limit whatever the stream holds.
    if let Some(limit) = size_limit {
        assert!(
            content.len() <= limit,
            "content grew to {} past {limit}",
            content.len()
        );
    }
    let error = decoder.error();
    let got = Decoded {
        consumed,
        error,
        content: (consumed.is_some() && error.is_none()).then_some(content),
    };
    let expected = reference_data(stream, line_limit, size_limit);
    assert_eq!(
        got,
        expected,
        "stream {:?}",
        String::from_utf8_lossy(stream)
    );
}

/// The PROXY header parser, fed every prefix of `input`: a verdict on a prefix never changes
/// as more bytes arrive, `NeedMore` never asks past the header's end, and a complete header
/// never takes more than the buffer.
pub fn proxy(input: &[u8]) {
    let whole = parse_proxy(input);
    if let ProxyParse::Done(_, n) = &whole {
        assert!(*n > 0 && *n <= input.len(), "{whole:?}");
        assert_eq!(
            parse_proxy(&input[..*n]),
            whole,
            "the header needs bytes past its end"
        );
    }
    for k in 0..input.len() {
        match parse_proxy(&input[..k]) {
            ProxyParse::NeedMore(more) => {
                assert!(more > 0);
                if let ProxyParse::Done(_, n) = &whole {
                    assert!(
                        k + more <= *n,
                        "asked for {more} more at {k} of a {n}-byte header"
                    );
                }
            }
            early @ ProxyParse::Done(..) => assert_eq!(early, whole, "prefix of {k} bytes"),
            ProxyParse::Invalid(why) => assert!(
                matches!(whole, ProxyParse::Invalid(_)),
                "prefix of {k} bytes invalid ({why}), whole {whole:?}"
            ),
        }
    }
}

/// The extension arguments: BDAT's chunk size, the DSN parameters of MAIL and RCPT, xtext.
/// `input` is one argument; the text before `=` is the DSN keyword.
pub fn params(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Some(bdat) = parse_bdat(Some(text)) {
        let mut words = text.split(' ');
        assert_eq!(
            words.next().and_then(|w| w.parse().ok()),
            Some(bdat.size),
            "{text:?}"
        );
        assert_eq!(words.next().is_some(), bdat.last, "{text:?}");
    }
    let (key, value) = match text.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (text, None),
    };
    let mut mail = MailDsn::default();
    let _ = mail_dsn_param(&mut mail, key, value);
    let _ = mail_dsn_param(&mut mail, key, value);
    let mut rcpt = RcptDsn::default();
    let _ = rcpt_dsn_param(&mut rcpt, key, value);
    if let Some(decoded) = decode_xtext(text) {
        assert!(
            decoded.len() <= text.len(),
            "{text:?} grew into {decoded:?}"
        );
    }
}
