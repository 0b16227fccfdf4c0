//! The DSN parameters of MAIL and RCPT (RFC 3461) and their xtext encoding.

/// `RET` of MAIL: what a failure DSN returns of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: the headers only.
    Hdrs,
}

/// The DSN parameters of MAIL (RFC 3461 §4.3, §4.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailDsn {
    /// `RET=FULL|HDRS`.
    pub ret: Option<Ret>,
    /// `ENVID=`, xtext-decoded.
    pub envid: Option<String>,
}

/// When to send a DSN for a recipient (`NOTIFY=`, RFC 3461 §4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// `SUCCESS` was asked.
    pub success: bool,
    /// `FAILURE` was asked.
    pub failure: bool,
    /// `DELAY` was asked.
    pub delay: bool,
}

impl Notify {
    /// Whether this is `NOTIFY=NEVER`.
    pub fn is_never(&self) -> bool {
        !self.success && !self.failure && !self.delay
    }
}

/// `ORCPT=addr-type;xtext` (RFC 3461 §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orcpt {
    /// The address type, e.g. `rfc822`, as sent.
    pub addr_type: String,
    /// The original recipient, xtext-decoded.
    pub address: String,
}

/// The DSN parameters of one RCPT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptDsn {
    /// `NOTIFY=`.
    pub notify: Option<Notify>,
    /// `ORCPT=`.
    pub orcpt: Option<Orcpt>,
}

/// Why a DSN parameter was refused: the reply's text, after `501 5.5.4 `.
pub type DsnError = &'static str;

/// Takes `key=value` (key upper-cased, value as sent) into `dsn` if it is a DSN parameter of
/// MAIL. `Ok(false)`: not a DSN parameter.
pub fn mail_dsn_param(dsn: &mut MailDsn, key: &str, value: Option<&str>) -> Result<bool, DsnError> {
    match key {
        "RET" => {
            if dsn.ret.is_some() {
                return Err("Error: duplicate RET parameter");
            }
            dsn.ret = Some(match value.map(str::to_ascii_uppercase).as_deref() {
                Some("FULL") => Ret::Full,
                Some("HDRS") => Ret::Hdrs,
                _ => return Err("Error: RET must be FULL or HDRS"),
            });
        }
        "ENVID" => {
            if dsn.envid.is_some() {
                return Err("Error: duplicate ENVID parameter");
            }
            // RFC 3461 §4.4: at most 100 characters, printable ASCII in xtext.
            let envid = value
                .filter(|v| v.len() <= 100)
                .and_then(decode_xtext)
                .ok_or("Error: malformed ENVID parameter")?;
            dsn.envid = Some(envid);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Takes `key=value` into `dsn` if it is a DSN parameter of RCPT. `Ok(false)`: not one.
pub fn rcpt_dsn_param(dsn: &mut RcptDsn, key: &str, value: Option<&str>) -> Result<bool, DsnError> {
    match key {
        "NOTIFY" => {
            if dsn.notify.is_some() {
                return Err("Error: duplicate NOTIFY parameter");
            }
            dsn.notify = Some(
                parse_notify(value)
                    .ok_or("Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY")?,
            );
        }
        "ORCPT" => {
            if dsn.orcpt.is_some() {
                return Err("Error: duplicate ORCPT parameter");
            }
            dsn.orcpt = Some(parse_orcpt(value).ok_or("Error: malformed ORCPT parameter")?);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn parse_notify(value: Option<&str>) -> Option<Notify> {
    let value = value?.to_ascii_uppercase();
    if value == "NEVER" {
        return Some(Notify::default());
    }
    let mut notify = Notify::default();
    for word in value.split(',') {
        let flag = match word {
            "SUCCESS" => &mut notify.success,
            "FAILURE" => &mut notify.failure,
            "DELAY" => &mut notify.delay,
            _ => return None,
        };
        if *flag {
            return None;
        }
        *flag = true;
    }
    Some(notify)
}

fn parse_orcpt(value: Option<&str>) -> Option<Orcpt> {
    let value = value?;
    // RFC 3461 §4.2: at most 500 characters.
    if value.len() > 500 {
        return None;
    }
    let (addr_type, xtext) = value.split_once(';')?;
    let atom = |c: char| c.is_ascii_alphanumeric() || c == '-';
    if addr_type.is_empty() || !addr_type.chars().all(atom) || xtext.is_empty() {
        return None;
    }
    Some(Orcpt {
        addr_type: addr_type.to_owned(),
        address: decode_xtext(xtext)?,
    })
}

/// Decodes xtext (RFC 3461 §4): printable ASCII but `+` and `=`, and `+XX` with upper-case hex.
pub fn decode_xtext(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let digit = |b: u8| match b {
                    b'0'..=b'9' => Some(b - b'0'),
                    b'A'..=b'F' => Some(b - b'A' + 10),
                    _ => None,
                };
                out.push(digit(hex[0])? * 16 + digit(hex[1])?);
                i += 3;
            }
            b'!'..=b'~' if bytes[i] != b'=' => {
                out.push(bytes[i]);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext() {
        let cases: &[(&str, Option<&str>)] = &[
            ("abc", Some("abc")),
            ("a+2Bb", Some("a+b")),
            ("a+3Db", Some("a=b")),
            ("+20", Some(" ")),
            ("a+2b", None),
            ("a+2", None),
            ("a=b", None),
            ("a b", None),
            ("", Some("")),
        ];
        for (text, expected) in cases {
            assert_eq!(decode_xtext(text).as_deref(), *expected, "{text}");
        }
    }

    #[test]
    fn mail_parameters() {
        type Case<'a> = (&'a [(&'a str, Option<&'a str>)], Result<MailDsn, &'a str>);
        let cases: &[Case] = &[
            (
                &[("RET", Some("FULL")), ("ENVID", Some("QQ314159"))],
                Ok(MailDsn {
                    ret: Some(Ret::Full),
                    envid: Some("QQ314159".into()),
                }),
            ),
            (
                &[("RET", Some("hdrs"))],
                Ok(MailDsn {
                    ret: Some(Ret::Hdrs),
                    envid: None,
                }),
            ),
            (
                &[("ENVID", Some("a+2Bb"))],
                Ok(MailDsn {
                    ret: None,
                    envid: Some("a+b".into()),
                }),
            ),
            (
                &[("RET", Some("ALL"))],
                Err("Error: RET must be FULL or HDRS"),
            ),
            (&[("RET", None)], Err("Error: RET must be FULL or HDRS")),
            (
                &[("RET", Some("FULL")), ("RET", Some("HDRS"))],
                Err("Error: duplicate RET parameter"),
            ),
            (
                &[("ENVID", Some("a=b"))],
                Err("Error: malformed ENVID parameter"),
            ),
            (&[("ENVID", None)], Err("Error: malformed ENVID parameter")),
        ];
        for (params, expected) in cases {
            let mut dsn = MailDsn::default();
            let got = params
                .iter()
                .try_for_each(|(k, v)| mail_dsn_param(&mut dsn, k, *v).map(|taken| assert!(taken)))
                .map(|()| dsn);
            assert_eq!(got, expected.clone(), "{params:?}");
        }
        assert_eq!(
            mail_dsn_param(&mut MailDsn::default(), "SIZE", Some("1")),
            Ok(false)
        );
    }

    #[test]
    fn rcpt_parameters() {
        let notify = |success, failure, delay| Notify {
            success,
            failure,
            delay,
        };
        type Case<'a> = (&'a str, Option<&'a str>, Result<RcptDsn, &'a str>);
        let bad_notify = "Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY";
        let cases: &[Case] = &[
            (
                "NOTIFY",
                Some("NEVER"),
                Ok(RcptDsn {
                    notify: Some(notify(false, false, false)),
                    orcpt: None,
                }),
            ),
            (
                "NOTIFY",
                Some("success,Delay"),
                Ok(RcptDsn {
                    notify: Some(notify(true, false, true)),
                    orcpt: None,
                }),
            ),
            (
                "NOTIFY",
                Some("FAILURE"),
                Ok(RcptDsn {
                    notify: Some(notify(false, true, false)),
                    orcpt: None,
                }),
            ),
            ("NOTIFY", Some("NEVER,SUCCESS"), Err(bad_notify)),
            ("NOTIFY", Some("SUCCESS,SUCCESS"), Err(bad_notify)),
            ("NOTIFY", Some("SOMETIMES"), Err(bad_notify)),
            ("NOTIFY", Some(""), Err(bad_notify)),
            ("NOTIFY", None, Err(bad_notify)),
            (
                "ORCPT",
                Some("rfc822;Bob+2BX@example.com"),
                Ok(RcptDsn {
                    notify: None,
                    orcpt: Some(Orcpt {
                        addr_type: "rfc822".into(),
                        address: "Bob+X@example.com".into(),
                    }),
                }),
            ),
            (
                "ORCPT",
                Some("rfc822"),
                Err("Error: malformed ORCPT parameter"),
            ),
            (
                "ORCPT",
                Some(";a@b"),
                Err("Error: malformed ORCPT parameter"),
            ),
            (
                "ORCPT",
                Some("rfc822;"),
                Err("Error: malformed ORCPT parameter"),
            ),
            (
                "ORCPT",
                Some("rfc822;a=b"),
                Err("Error: malformed ORCPT parameter"),
            ),
        ];
        for (key, value, expected) in cases {
            let mut dsn = RcptDsn::default();
            let got = rcpt_dsn_param(&mut dsn, key, *value).map(|taken| {
                assert!(taken);
                dsn
            });
            assert_eq!(got, expected.clone(), "{key}={value:?}");
        }
        let mut dsn = RcptDsn::default();
        assert_eq!(rcpt_dsn_param(&mut dsn, "NOTIFY", Some("NEVER")), Ok(true));
        assert_eq!(
            rcpt_dsn_param(&mut dsn, "NOTIFY", Some("NEVER")),
            Err("Error: duplicate NOTIFY parameter")
        );
        assert_eq!(rcpt_dsn_param(&mut dsn, "BODY", Some("7BIT")), Ok(false));
    }
}
