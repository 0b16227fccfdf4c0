//! Arguments of the service extensions: `BDAT` (RFC 3030) and the DSN parameters of MAIL and
//! RCPT (RFC 3461).

pub use super::dsn::{
    DsnError, MailDsn, Notify, Orcpt, RcptDsn, Ret, decode_xtext, mail_dsn_param, rcpt_dsn_param,
};

/// The arguments of `BDAT <chunk-size> [LAST]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bdat {
    /// The octets that follow the command line.
    pub size: usize,
    /// Whether this is the message's last chunk.
    pub last: bool,
}

/// Parses the argument of BDAT. `None` is a syntax error (`501`): the chunk's length is
/// unknown, so its octets cannot be skipped.
pub fn parse_bdat(arg: Option<&str>) -> Option<Bdat> {
    let mut words = arg?.split(' ');
    let size = words.next()?;
    if size.is_empty() || size.len() > 19 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let size = size.parse().ok()?;
    let last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return None,
    };
    if words.next().is_some() {
        return None;
    }
    Some(Bdat { size, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdat_arguments() {
        let b = |size, last| Some(Bdat { size, last });
        let cases: &[(Option<&str>, Option<Bdat>)] = &[
            (Some("0"), b(0, false)),
            (Some("100"), b(100, false)),
            (Some("100 LAST"), b(100, true)),
            (Some("0 last"), b(0, true)),
            (Some("007 LAST"), b(7, true)),
            (None, None),
            (Some("LAST"), None),
            (Some("-1"), None),
            (Some("+1"), None),
            (Some("1.5"), None),
            (Some("10 LAST x"), None),
            (Some("10 FIRST"), None),
            (Some("10  LAST"), None),
            (Some("99999999999999999999"), None),
            (Some("0x10"), None),
        ];
        for (arg, expected) in cases {
            assert_eq!(parse_bdat(*arg), *expected, "{arg:?}");
        }
    }
}
