//! The XFORWARD command (Postfix's `XFORWARD_README`): an MTA in front of this server (a
//! content filter's sender) forwards the original client of the next message, for logging.
//! Attributes may come over several commands before MAIL; they hold for one transaction.

use std::net::IpAddr;

use super::xclient::{Attr, AttrError, attributes, parse_addr, parse_name, parse_port, typed};

/// The attributes the server takes, as advertised after `XFORWARD` in the EHLO reply.
pub const XFORWARD_ATTRIBUTES: &str = "NAME ADDR PORT PROTO HELO IDENT SOURCE";

/// The longest PROTO or IDENT value, as Postfix allows.
const MAX_WORD: usize = 64;

/// Where the original client was (`SOURCE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `LOCAL`: the message came from this site (local submission, a local client).
    Local,
    /// `REMOTE`: from elsewhere.
    Remote,
}

/// What XFORWARD commands said about the current transaction's original client; an
/// attribute never sent is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct XForward {
    /// The original client's host name (`NAME`).
    pub name: Option<Attr<String>>,
    /// The original client's address (`ADDR`).
    pub addr: Option<Attr<IpAddr>>,
    /// The original client's port (`PORT`).
    pub port: Option<Attr<u16>>,
    /// The protocol the original client spoke (`PROTO`: `SMTP`, `ESMTP`, …).
    pub proto: Option<Attr<String>>,
    /// The original client's HELO name (`HELO`).
    pub helo: Option<Attr<String>>,
    /// The sending MTA's identifier of the message, e.g. Postfix's queue id (`IDENT`).
    pub ident: Option<Attr<String>>,
    /// Whether the original client was local (`SOURCE`).
    pub source: Option<Attr<Source>>,
}

impl XForward {
    /// Takes the attributes `newer` sent over these.
    pub fn merge(&mut self, newer: XForward) {
        fn take<T>(slot: &mut Option<T>, newer: Option<T>) {
            if newer.is_some() {
                *slot = newer;
            }
        }
        take(&mut self.name, newer.name);
        take(&mut self.addr, newer.addr);
        take(&mut self.port, newer.port);
        take(&mut self.proto, newer.proto);
        take(&mut self.helo, newer.helo);
        take(&mut self.ident, newer.ident);
        take(&mut self.source, newer.source);
    }
}

/// Parses XFORWARD's argument. A repeated attribute keeps its last value.
pub fn parse_xforward(arg: Option<&str>) -> Result<XForward, AttrError> {
    const NAMES: &[&str] = &["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"];
    let mut x = XForward::default();
    for attribute in attributes(arg, NAMES) {
        let (name, value) = attribute?;
        match name {
            "NAME" => x.name = Some(typed(name, value, parse_name)?),
            "ADDR" => x.addr = Some(typed(name, value, parse_addr)?),
            "PORT" => x.port = Some(typed(name, value, parse_port)?),
            "PROTO" => x.proto = Some(typed(name, value, parse_word)?),
            "HELO" => x.helo = Some(typed(name, value, parse_name)?),
            "IDENT" => x.ident = Some(typed(name, value, parse_word)?),
            _ => x.source = Some(typed(name, value, parse_source)?),
        }
    }
    Ok(x)
}

fn parse_word(text: &str) -> Option<String> {
    let ok =
        !text.is_empty() && text.len() <= MAX_WORD && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| text.to_owned())
}

fn parse_source(text: &str) -> Option<Source> {
    if text.eq_ignore_ascii_case("LOCAL") {
        Some(Source::Local)
    } else if text.eq_ignore_ascii_case("REMOTE") {
        Some(Source::Remote)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(text: &str) -> Option<Attr<String>> {
        Some(Attr::Known(text.to_owned()))
    }

    #[test]
    fn xforward_arguments() {
        let postfix = XForward {
            proto: text("ESMTP"),
            helo: text("client.example"),
            ident: text("3F63D9BC02D"),
            source: Some(Attr::Known(Source::Local)),
            ..XForward::default()
        };
        let cases: &[(Option<&str>, Result<XForward, AttrError>)] = &[
            (
                Some("PROTO=ESMTP HELO=client.example IDENT=3F63D9BC02D SOURCE=LOCAL"),
                Ok(postfix),
            ),
            (
                Some("NAME=localhost ADDR=127.0.0.1 PORT=52784"),
                Ok(XForward {
                    name: text("localhost"),
                    addr: Some(Attr::Known("127.0.0.1".parse().unwrap())),
                    port: Some(Attr::Known(52784)),
                    ..XForward::default()
                }),
            ),
            (
                Some("NAME=[TEMPUNAVAIL] source=remote"),
                Ok(XForward {
                    name: Some(Attr::TempUnavailable),
                    source: Some(Attr::Known(Source::Remote)),
                    ..XForward::default()
                }),
            ),
            (None, Err(AttrError::Empty)),
            (
                Some("LOGIN=alice"),
                Err(AttrError::BadName("LOGIN=alice".into())),
            ),
            (
                Some("SOURCE=NEARBY"),
                Err(AttrError::BadValue("SOURCE", "NEARBY".into())),
            ),
            (
                Some("IDENT=a+20b"),
                Err(AttrError::BadValue("IDENT", "a b".into())),
            ),
            (
                Some("ADDR=IPV6:::1 PORT=-1"),
                Err(AttrError::BadValue("PORT", "-1".into())),
            ),
        ];
        for (arg, expected) in cases {
            assert_eq!(&parse_xforward(*arg), expected, "{arg:?}");
        }
    }

    #[test]
    fn later_commands_add_and_override_attributes() {
        let mut x = parse_xforward(Some("ADDR=192.0.2.1 HELO=a.example")).unwrap();
        x.merge(parse_xforward(Some("HELO=b.example SOURCE=REMOTE")).unwrap());
        assert_eq!(x.addr, Some(Attr::Known("192.0.2.1".parse().unwrap())));
        assert_eq!(x.helo, text("b.example"));
        assert_eq!(x.source, Some(Attr::Known(Source::Remote)));
    }
}
