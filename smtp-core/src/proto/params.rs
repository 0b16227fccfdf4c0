//! Arguments of the service extensions: `BDAT` (RFC 3030), and the parameters of MAIL and RCPT
//! (RFC 5321 §4.1.2) read into typed values: `SIZE`, `BODY`, `SMTPUTF8` and DSN's.

use super::{Reply, Verb, replies};

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

/// MAIL's `BODY=` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME` (RFC 6152).
    EightBitMime,
    /// `BODY=BINARYMIME` (RFC 3030): the message can only come with BDAT.
    BinaryMime,
}

/// What the server offers, which decides the meaning of MAIL and RCPT parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParamPolicy {
    /// DSN is offered: `RET`, `ENVID`, `NOTIFY`, `ORCPT` are read. Default is off.
    pub dsn: bool,
    /// CHUNKING is offered, so `BODY=BINARYMIME` is allowed. Default is off.
    pub chunking: bool,
    /// SMTPUTF8 is offered, so MAIL may carry `SMTPUTF8`. Default is off.
    pub smtputf8: bool,
    /// The largest message, which a larger `SIZE=` is refused for. Default is no limit.
    pub size_limit: Option<usize>,
}

impl ParamPolicy {
    /// The policy of a server that offers DSN, CHUNKING and SMTPUTF8 as given.
    pub fn new(dsn: bool, chunking: bool, smtputf8: bool, size_limit: Option<usize>) -> Self {
        ParamPolicy {
            dsn,
            chunking,
            smtputf8,
            size_limit,
        }
    }
}

/// The parameters of one MAIL command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailParams {
    /// `SIZE=`: the client's estimate of the message size (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<BodyType>,
    /// `SMTPUTF8` was given (RFC 6531).
    pub smtputf8: bool,
    /// `RET=` and `ENVID=` (RFC 3461); empty unless the policy offers DSN.
    pub dsn: MailDsn,
}

/// The parameters of one RCPT command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RcptParams {
    /// `NOTIFY=` and `ORCPT=` (RFC 3461); empty unless the policy offers DSN.
    pub dsn: RcptDsn,
}

/// Reads MAIL's parameters (as sent: xtext values are case-sensitive) into typed values.
///
/// All parameters must be `keyword[=value]` first, else the whole command is a syntax error
/// (501), as in aiosmtpd; then each is read in order and the first one refused decides the
/// reply. A well-formed parameter the policy does not offer gets 555 (RFC 5321 §4.1.1.11).
pub fn parse_mail_params<S: AsRef<str>>(
    params: &[S],
    policy: &ParamPolicy,
) -> Result<MailParams, Reply> {
    let syntax = || replies::syntax(Verb::Mail, true);
    let params = split_params(params).ok_or_else(syntax)?;
    let mut mail = MailParams::default();
    for (key, value) in params {
        if dsn_param(policy, || mail_dsn_param(&mut mail.dsn, &key, value))? {
            continue;
        }
        let upper = value.map(str::to_ascii_uppercase);
        match (key.as_str(), upper.as_deref()) {
            ("BODY", Some("7BIT")) => mail.body = Some(BodyType::SevenBit),
            ("BODY", Some("8BITMIME")) => mail.body = Some(BodyType::EightBitMime),
            ("BODY", Some("BINARYMIME")) if policy.chunking => {
                mail.body = Some(BodyType::BinaryMime)
            }
            ("BODY", _) if policy.chunking => return Err(replies::BODY_WITH_BINARYMIME),
            ("BODY", _) => return Err(replies::BODY_7BIT_8BITMIME),
            ("SMTPUTF8", Some(_)) => return Err(replies::SMTPUTF8_TAKES_NO_ARGUMENTS),
            ("SMTPUTF8", None) if !policy.smtputf8 => return Err(replies::SMTPUTF8_DISABLED),
            ("SMTPUTF8", None) => mail.smtputf8 = true,
            ("SIZE", size) => {
                // RFC 1870: 1*20DIGIT; `SIZE` without a value is a syntax error in aiosmtpd.
                let size = size
                    .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(syntax)?;
                if policy.size_limit.is_some_and(|limit| size > limit as u64) {
                    return Err(replies::SIZE_EXCEEDS_LIMIT);
                }
                mail.size = Some(size);
            }
            _ => return Err(replies::MAIL_PARAMS_UNKNOWN),
        }
    }
    Ok(mail)
}

/// Reads RCPT's parameters (as sent) into typed values; the replies follow
/// [`parse_mail_params`].
pub fn parse_rcpt_params<S: AsRef<str>>(
    params: &[S],
    policy: &ParamPolicy,
) -> Result<RcptParams, Reply> {
    let params = split_params(params).ok_or_else(|| replies::syntax(Verb::Rcpt, true))?;
    let mut rcpt = RcptParams::default();
    for (key, value) in params {
        if dsn_param(policy, || rcpt_dsn_param(&mut rcpt.dsn, &key, value))? {
            continue;
        }
        return Err(replies::RCPT_PARAMS_UNKNOWN);
    }
    Ok(rcpt)
}

/// Whether `take` took a DSN parameter, which it may only when the policy offers DSN.
fn dsn_param(
    policy: &ParamPolicy,
    take: impl FnOnce() -> Result<bool, DsnError>,
) -> Result<bool, Reply> {
    if !policy.dsn {
        return Ok(false);
    }
    take().map_err(replies::dsn_error)
}

/// Splits each `keyword[=value]` into its upper-cased keyword and its value as sent, or `None`
/// when one is not that syntax: the keyword is a letter or digit, then letters, digits and
/// `-`; a value, when there is `=`, is not empty and has no control character (RFC 5321
/// §4.1.2 `esmtp-param`).
fn split_params<S: AsRef<str>>(params: &[S]) -> Option<Vec<(String, Option<&str>)>> {
    params
        .iter()
        .map(|param| {
            let param = param.as_ref();
            let (key, value) = match param.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (param, None),
            };
            let keyword = key
                .as_bytes()
                .first()
                .is_some_and(u8::is_ascii_alphanumeric)
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let value_ok = value.is_none_or(|v| !v.is_empty() && !v.chars().any(char::is_control));
            (keyword && value_ok).then(|| (key.to_ascii_uppercase(), value))
        })
        .collect()
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

    fn mail(size: Option<u64>, body: Option<BodyType>, smtputf8: bool) -> MailParams {
        MailParams {
            size,
            body,
            smtputf8,
            ..MailParams::default()
        }
    }

    const MAIL_SYNTAX: &str = "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]";
    const RCPT_SYNTAX: &str = "501 Syntax: RCPT TO: <address> [SP <mail-parameters>]";
    const MAIL_UNKNOWN: &str = "555 MAIL FROM parameters not recognized or not implemented";
    const RCPT_UNKNOWN: &str = "555 RCPT TO parameters not recognized or not implemented";

    /// Every MAIL parameter reply, as the engine sent them before the parsing moved here,
    /// and issue 13's syntax errors (501 for what is not `keyword[=value]`, 555 for what is).
    #[test]
    fn mail_params() {
        let off = ParamPolicy::default();
        let all = ParamPolicy::new(true, true, true, Some(1000));
        let dsn = MailDsn {
            ret: Some(Ret::Hdrs),
            envid: Some("Q+1".into()),
        };
        type Case<'a> = (&'a [&'a str], ParamPolicy, Result<MailParams, &'a str>);
        let cases: &[Case] = &[
            (&[], off, Ok(MailParams::default())),
            (&["SIZE=100"], off, Ok(mail(Some(100), None, false))),
            (&["size=0"], all, Ok(mail(Some(0), None, false))),
            (&["SIZE=1000"], all, Ok(mail(Some(1000), None, false))),
            (
                &["SIZE=1001"],
                all,
                Err("552 Error: message size exceeds fixed maximum message size"),
            ),
            (
                &["SIZE=99999999999"],
                off,
                Ok(mail(Some(99999999999), None, false)),
            ),
            (&["SIZE=abc"], off, Err(MAIL_SYNTAX)),
            (&["SIZE=+5"], off, Err(MAIL_SYNTAX)),
            (&["SIZE=99999999999999999999"], off, Err(MAIL_SYNTAX)),
            // `MAIL FROM:<a@example.com> SIZE 10000`.
            (&["SIZE", "10000"], off, Err(MAIL_SYNTAX)),
            (&["SIZE="], off, Err(MAIL_SYNTAX)),
            (
                &["BODY=7BIT"],
                off,
                Ok(mail(None, Some(BodyType::SevenBit), false)),
            ),
            (
                &["body=8bitmime"],
                off,
                Ok(mail(None, Some(BodyType::EightBitMime), false)),
            ),
            (
                &["BODY=BINARYMIME"],
                all,
                Ok(mail(None, Some(BodyType::BinaryMime), false)),
            ),
            (
                &["BODY=BINARYMIME"],
                off,
                Err("501 Error: BODY can only be one of 7BIT, 8BITMIME"),
            ),
            (
                &["BODY=UTF8"],
                all,
                Err("501 Error: BODY can only be one of 7BIT, 8BITMIME, BINARYMIME"),
            ),
            (
                &["BODY"],
                off,
                Err("501 Error: BODY can only be one of 7BIT, 8BITMIME"),
            ),
            (&["SMTPUTF8"], all, Ok(mail(None, None, true))),
            (&["SMTPUTF8"], off, Err("501 Error: SMTPUTF8 disabled")),
            (
                &["SMTPUTF8=yes"],
                all,
                Err("501 Error: SMTPUTF8 takes no arguments"),
            ),
            (
                &["SIZE=10", "BODY=8BITMIME", "SMTPUTF8"],
                all,
                Ok(mail(Some(10), Some(BodyType::EightBitMime), true)),
            ),
            (
                &["RET=hdrs", "ENVID=Q+2B1"],
                all,
                Ok(MailParams {
                    dsn: dsn.clone(),
                    ..MailParams::default()
                }),
            ),
            (&["RET=HDRS"], off, Err(MAIL_UNKNOWN)),
            (
                &["RET=ALL"],
                all,
                Err("501 5.5.4 Error: RET must be FULL or HDRS"),
            ),
            (
                &["RET=FULL", "RET=HDRS"],
                all,
                Err("501 5.5.4 Error: duplicate RET parameter"),
            ),
            (&["X-UNKNOWN=1"], all, Err(MAIL_UNKNOWN)),
            (&["AUTH=<>"], all, Err(MAIL_UNKNOWN)),
            (&["10000"], off, Err(MAIL_UNKNOWN)),
            (&["#$%=!@#"], all, Err(MAIL_SYNTAX)),
            (&["-X=1"], off, Err(MAIL_SYNTAX)),
            (&["X_Y=1"], off, Err(MAIL_SYNTAX)),
            (&["X=a\u{7f}"], off, Err(MAIL_SYNTAX)),
            (&["=1"], off, Err(MAIL_SYNTAX)),
            (&["(comment)"], off, Err(MAIL_SYNTAX)),
            // The whole line is checked for syntax first, as in aiosmtpd.
            (&["X-UNKNOWN=1", "#"], off, Err(MAIL_SYNTAX)),
            (
                &["SIZE=5000", "X-UNKNOWN=1"],
                all,
                Err("552 Error: message size exceeds fixed maximum message size"),
            ),
            (&["X-UNKNOWN=1", "SIZE=5000"], all, Err(MAIL_UNKNOWN)),
        ];
        for (params, policy, expected) in cases {
            let got = parse_mail_params(params, policy).map_err(|r| r.to_string());
            let expected = expected.clone().map_err(str::to_owned);
            assert_eq!(got, expected, "{params:?} {policy:?}");
        }
    }

    #[test]
    fn rcpt_params() {
        let off = ParamPolicy::default();
        let dsn = ParamPolicy::new(true, false, false, None);
        let notify = RcptParams {
            dsn: RcptDsn {
                notify: Some(Notify {
                    success: true,
                    failure: false,
                    delay: false,
                }),
                orcpt: Some(Orcpt {
                    addr_type: "rfc822".into(),
                    address: "b+x@example.com".into(),
                }),
            },
        };
        type Case<'a> = (&'a [&'a str], ParamPolicy, Result<RcptParams, &'a str>);
        let cases: &[Case] = &[
            (&[], off, Ok(RcptParams::default())),
            (
                &["NOTIFY=success", "ORCPT=rfc822;b+2Bx@example.com"],
                dsn,
                Ok(notify),
            ),
            (&["NOTIFY=NEVER"], off, Err(RCPT_UNKNOWN)),
            (&["X-UNKNOWN=1"], dsn, Err(RCPT_UNKNOWN)),
            (&["SIZE=10"], off, Err(RCPT_UNKNOWN)),
            (
                &["NOTIFY=SOMETIMES"],
                dsn,
                Err("501 5.5.4 Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY"),
            ),
            (
                &["ORCPT=rfc822"],
                dsn,
                Err("501 5.5.4 Error: malformed ORCPT parameter"),
            ),
            // `RCPT TO:<b@example.com> #$%=!@#`.
            (&["#$%=!@#"], dsn, Err(RCPT_SYNTAX)),
            (&["#$%=!@#"], off, Err(RCPT_SYNTAX)),
            (&["NOTIFY="], dsn, Err(RCPT_SYNTAX)),
            (&["X-UNKNOWN=1", "@"], off, Err(RCPT_SYNTAX)),
        ];
        for (params, policy, expected) in cases {
            let got = parse_rcpt_params(params, policy).map_err(|r| r.to_string());
            let expected = expected.clone().map_err(str::to_owned);
            assert_eq!(got, expected, "{params:?} {policy:?}");
        }
    }
}
