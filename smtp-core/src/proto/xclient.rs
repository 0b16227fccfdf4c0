//! The XCLIENT command (Postfix's `XCLIENT_README`): a trusted proxy names the client it
//! speaks for. `XCLIENT attribute=value …`, each value xtext (RFC 3461 §4), where
//! `[UNAVAILABLE]` and `[TEMPUNAVAIL]` say the proxy does not know the value.

use std::net::IpAddr;

use super::dsn::decode_xtext;

/// The attributes the server takes, as advertised after `XCLIENT` in the EHLO reply.
pub const XCLIENT_ATTRIBUTES: &str = "NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT";

/// The longest NAME or HELO value (a DNS name), as Postfix allows.
const MAX_NAME: usize = 255;

/// One attribute's value: known, or one of the placeholders a proxy sends instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attr<T> {
    /// The value.
    Known(T),
    /// `[UNAVAILABLE]`: the proxy does not have it.
    Unavailable,
    /// `[TEMPUNAVAIL]`: the proxy could not look it up for now (a DNS failure).
    TempUnavailable,
}

impl<T> Attr<T> {
    /// The value, when known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Attr::Known(value) => Some(value),
            Attr::Unavailable | Attr::TempUnavailable => None,
        }
    }
}

/// How the client greeted the proxy: XCLIENT's `PROTO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeloProto {
    /// HELO.
    Smtp,
    /// EHLO.
    Esmtp,
}

/// What an XCLIENT command said; an attribute it did not send is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct XClient {
    /// The client's host name (`NAME`), as the proxy resolved it.
    pub name: Option<Attr<String>>,
    /// The client's address (`ADDR`; IPv6 with or without Postfix's `IPV6:` prefix).
    pub addr: Option<Attr<IpAddr>>,
    /// The client's TCP port (`PORT`).
    pub port: Option<Attr<u16>>,
    /// Whether the client said HELO or EHLO to the proxy (`PROTO`).
    pub proto: Option<Attr<HeloProto>>,
    /// The name the client gave in HELO/EHLO (`HELO`).
    pub helo: Option<Attr<String>>,
    /// The user the proxy authenticated (`LOGIN`).
    pub login: Option<Attr<String>>,
    /// The address the client connected to (`DESTADDR`).
    pub destaddr: Option<Attr<IpAddr>>,
    /// The port the client connected to (`DESTPORT`).
    pub destport: Option<Attr<u16>>,
}

/// Why an XCLIENT or XFORWARD argument was refused (`501`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrError {
    /// No attributes at all.
    Empty,
    /// A word without `=`, or an attribute name the command does not have.
    BadName(String),
    /// A value that is not xtext, or not of the attribute's kind.
    BadValue(&'static str, String),
}

/// The `name=value` words of an argument, the names upper-cased and the values xtext-decoded;
/// `names` lists the attribute names the command takes.
pub(crate) fn attributes<'a>(
    arg: Option<&'a str>,
    names: &'static [&'static str],
) -> impl Iterator<Item = Result<(&'static str, Attr<String>), AttrError>> + 'a {
    let words = arg.map(str::split_ascii_whitespace);
    let empty = words.is_none().then_some(Err(AttrError::Empty));
    empty
        .into_iter()
        .chain(words.into_iter().flatten().map(move |word| {
            let bad_name = || AttrError::BadName(word.to_owned());
            let (name, raw) = word.split_once('=').ok_or_else(bad_name)?;
            let name = names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(name))
                .ok_or_else(bad_name)?;
            let value = match raw {
                "[UNAVAILABLE]" => Attr::Unavailable,
                "[TEMPUNAVAIL]" => Attr::TempUnavailable,
                _ => Attr::Known(
                    decode_xtext(raw).ok_or_else(|| AttrError::BadValue(name, raw.to_owned()))?,
                ),
            };
            Ok((*name, value))
        }))
}

/// Converts a known value with `parse`; a value it refuses is a `BadValue` of `name`.
pub(crate) fn typed<T>(
    name: &'static str,
    value: Attr<String>,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Attr<T>, AttrError> {
    Ok(match value {
        Attr::Known(text) => {
            Attr::Known(parse(&text).ok_or_else(|| AttrError::BadValue(name, text.clone()))?)
        }
        Attr::Unavailable => Attr::Unavailable,
        Attr::TempUnavailable => Attr::TempUnavailable,
    })
}

/// An address as Postfix writes it: IPv4, or IPv6 with or without an `IPV6:` prefix.
pub(crate) fn parse_addr(text: &str) -> Option<IpAddr> {
    let v6 = text
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("IPV6:"))
        .map(|_| &text[5..]);
    match v6 {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => text.parse().ok(),
    }
}

/// A host name or HELO argument: printable, no spaces, at most 255 octets.
pub(crate) fn parse_name(text: &str) -> Option<String> {
    let ok = !text.is_empty()
        && text.len() <= MAX_NAME
        && text.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80);
    ok.then(|| text.to_owned())
}

/// A port: 0 to 65535.
pub(crate) fn parse_port(text: &str) -> Option<u16> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse().ok())
        .flatten()
}

/// Parses XCLIENT's argument. A repeated attribute keeps its last value, as in Postfix.
pub fn parse_xclient(arg: Option<&str>) -> Result<XClient, AttrError> {
    const NAMES: &[&str] = &[
        "NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN", "DESTADDR", "DESTPORT",
    ];
    let mut x = XClient::default();
    for attribute in attributes(arg, NAMES) {
        let (name, value) = attribute?;
        match name {
            "NAME" => x.name = Some(typed(name, value, parse_name)?),
            "ADDR" => x.addr = Some(typed(name, value, parse_addr)?),
            "PORT" => x.port = Some(typed(name, value, parse_port)?),
            "PROTO" => x.proto = Some(typed(name, value, parse_proto)?),
            "HELO" => x.helo = Some(typed(name, value, parse_name)?),
            "LOGIN" => x.login = Some(typed(name, value, |t| Some(t.to_owned()))?),
            "DESTADDR" => x.destaddr = Some(typed(name, value, parse_addr)?),
            _ => x.destport = Some(typed(name, value, parse_port)?),
        }
    }
    Ok(x)
}

fn parse_proto(text: &str) -> Option<HeloProto> {
    if text.eq_ignore_ascii_case("SMTP") {
        Some(HeloProto::Smtp)
    } else if text.eq_ignore_ascii_case("ESMTP") {
        Some(HeloProto::Esmtp)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<Attr<IpAddr>> {
        Some(Attr::Known(text.parse().unwrap()))
    }

    fn text(text: &str) -> Option<Attr<String>> {
        Some(Attr::Known(text.to_owned()))
    }

    #[test]
    fn xclient_arguments() {
        let nginx = XClient {
            addr: ip("192.0.2.7"),
            login: text("alice"),
            name: Some(Attr::Unavailable),
            ..XClient::default()
        };
        let full = XClient {
            name: text("mail.example.org"),
            addr: ip("2001:db8::1"),
            port: Some(Attr::Known(4242)),
            proto: Some(Attr::Known(HeloProto::Esmtp)),
            helo: text("client.example"),
            login: text("bob smith"),
            destaddr: ip("192.0.2.1"),
            destport: Some(Attr::Known(587)),
        };
        let cases: &[(Option<&str>, Result<XClient, AttrError>)] = &[
            (
                Some("ADDR=192.0.2.7 LOGIN=alice NAME=[UNAVAILABLE]"),
                Ok(nginx),
            ),
            (
                Some(
                    "name=mail.example.org ADDR=IPV6:2001:db8::1 PORT=4242 PROTO=esmtp \
                     HELO=client.example LOGIN=bob+20smith DESTADDR=192.0.2.1 DESTPORT=587",
                ),
                Ok(full),
            ),
            (
                Some("ADDR=192.0.2.1 ADDR=192.0.2.2"),
                Ok(XClient {
                    addr: ip("192.0.2.2"),
                    ..XClient::default()
                }),
            ),
            (
                Some("NAME=[TEMPUNAVAIL] ADDR=::1"),
                Ok(XClient {
                    name: Some(Attr::TempUnavailable),
                    addr: ip("::1"),
                    ..XClient::default()
                }),
            ),
            (None, Err(AttrError::Empty)),
            (Some("FOO=bar"), Err(AttrError::BadName("FOO=bar".into()))),
            (Some("ADDR"), Err(AttrError::BadName("ADDR".into()))),
            (
                Some("ADDR=300.1.1.1"),
                Err(AttrError::BadValue("ADDR", "300.1.1.1".into())),
            ),
            (
                Some("ADDR=IPV6:192.0.2.1"),
                Err(AttrError::BadValue("ADDR", "IPV6:192.0.2.1".into())),
            ),
            (
                Some("PORT=65536"),
                Err(AttrError::BadValue("PORT", "65536".into())),
            ),
            (
                Some("PORT=+1"),
                Err(AttrError::BadValue("PORT", "+1".into())),
            ),
            (
                Some("PROTO=LMTP"),
                Err(AttrError::BadValue("PROTO", "LMTP".into())),
            ),
            (
                Some("LOGIN=a+2"),
                Err(AttrError::BadValue("LOGIN", "a+2".into())),
            ),
            (
                Some("HELO=a+20b"),
                Err(AttrError::BadValue("HELO", "a b".into())),
            ),
            (
                Some("NAME="),
                Err(AttrError::BadValue("NAME", String::new())),
            ),
        ];
        for (arg, expected) in cases {
            assert_eq!(&parse_xclient(*arg), expected, "{arg:?}");
        }
        let long = format!("HELO={}", "a".repeat(256));
        assert!(matches!(
            parse_xclient(Some(&long)),
            Err(AttrError::BadValue("HELO", _))
        ));
    }
}
