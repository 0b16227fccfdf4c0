//! Dovecot's auth-client protocol (the "Dovecot Authentication Protocol", v1.x) as values: the
//! lines the server sends, parsed, and the lines a client sends, encoded. No I/O.
//!
//! Every line is `NAME TAB param TAB …` ending in LF; values use Dovecot's tab-escaping
//! (`\x01` followed by `0 1 t r n`).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The protocol's major version; a server with another major version speaks another protocol.
pub(crate) const MAJOR_VERSION: u32 = 1;
/// The minor version sent; Dovecot 2.3 speaks 1.2, and ignores the minor number.
pub(crate) const MINOR_VERSION: u32 = 2;

/// The longest line accepted from the server (Dovecot's own `AUTH_CLIENT_MAX_LINE_LENGTH`).
pub(crate) const MAX_LINE: usize = 16384;

/// A line from the auth server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ServerLine {
    Version {
        major: u32,
    },
    Mech(MechInfo),
    Spid,
    Cuid,
    Cookie,
    Done,
    /// `CONT id base64-data`
    Cont {
        id: u32,
        data: String,
    },
    /// `OK id params…`
    Ok {
        id: u32,
        params: Params,
    },
    /// `FAIL id params…`
    Fail {
        id: u32,
        params: Params,
    },
    /// A command this client does not use (ignored, as the protocol asks).
    Other,
}

/// A mechanism the auth server offers, with the flags of its `MECH` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MechInfo {
    /// The SASL name, as Dovecot announced it.
    pub name: String,
    /// The flags (`plaintext`, `dictionary`, `active`, `anonymous`, `mutual-auth`,
    /// `forward-secrecy`, `private`, …).
    pub flags: Vec<String>,
}

impl MechInfo {
    /// Whether Dovecot marks it private: usable, but not to be advertised.
    pub fn is_private(&self) -> bool {
        self.has("private")
    }

    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// The optional parameters of an `OK` or `FAIL` line: booleans and `name=value` pairs.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Params(Vec<(String, Option<String>)>);

impl Params {
    /// The value of `name=…`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether the boolean `name` (or `name=…`) is present.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// The user Dovecot names (`user=`).
    pub(crate) fn user(&self) -> Option<&str> {
        self.get("user")
    }

    /// Whether a `FAIL` is temporary: `code=temp_fail` (Dovecot 2.2+) or the older `temp`.
    pub(crate) fn is_temporary(&self) -> bool {
        self.get("code") == Some("temp_fail") || self.has("temp")
    }
}

// Only the names: values may be anything Dovecot's passdb returns.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Why a server line is not understood.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadLine(pub(crate) &'static str);

/// Parses one line from the server, without its LF.
pub(crate) fn parse_server_line(line: &[u8]) -> Result<ServerLine, BadLine> {
    let line = std::str::from_utf8(line).map_err(|_| BadLine("not UTF-8"))?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = line.split('\t');
    let command = fields.next().unwrap_or("");
    let mut next = |what: &'static str| fields.next().ok_or(BadLine(what));
    let number = |text: &str, what: &'static str| text.parse::<u32>().map_err(|_| BadLine(what));
    Ok(match command {
        "VERSION" => {
            let major = number(
                next("VERSION without a major version")?,
                "bad major version",
            )?;
            ServerLine::Version { major }
        }
        "MECH" => {
            let name = unescape(next("MECH without a name")?);
            let flags = fields.map(unescape).collect();
            ServerLine::Mech(MechInfo { name, flags })
        }
        "SPID" => ServerLine::Spid,
        "CUID" => ServerLine::Cuid,
        "COOKIE" => ServerLine::Cookie,
        "DONE" => ServerLine::Done,
        "CONT" | "OK" | "FAIL" => {
            let id = number(next("reply without an id")?, "bad request id")?;
            if command == "CONT" {
                let data = unescape(fields.next().unwrap_or(""));
                ServerLine::Cont { id, data }
            } else {
                let params = Params(fields.filter(|f| !f.is_empty()).map(param).collect());
                if command == "OK" {
                    ServerLine::Ok { id, params }
                } else {
                    ServerLine::Fail { id, params }
                }
            }
        }
        _ => ServerLine::Other,
    })
}

fn param(field: &str) -> (String, Option<String>) {
    match field.split_once('=') {
        Some((name, value)) => (unescape(name), Some(unescape(value))),
        None => (unescape(field), None),
    }
}

/// What [`next_line`] finds at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A line of `len` octets; `consumed` includes its LF.
    Line { len: usize, consumed: usize },
    /// No LF yet.
    NeedMore,
    /// No LF within [`MAX_LINE`] octets.
    TooLong,
}

/// The first complete line in `buf`.
pub(crate) fn next_line(buf: &[u8]) -> Frame {
    match memchr::memchr(b'\n', buf) {
        Some(len) if len <= MAX_LINE => Frame::Line {
            len,
            consumed: len + 1,
        },
        Some(_) => Frame::TooLong,
        None if buf.len() > MAX_LINE => Frame::TooLong,
        None => Frame::NeedMore,
    }
}

/// The client's handshake: `VERSION` and `CPID`, sent together before reading.
pub(crate) fn handshake(pid: u32) -> String {
    format!("VERSION\t{MAJOR_VERSION}\t{MINOR_VERSION}\nCPID\t{pid}\n")
}

/// What Dovecot is told about the client with an `AUTH` request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientInfo {
    /// The client's address and port (`rip`, `rport`).
    pub(crate) remote: Option<(IpAddr, u16)>,
    /// The address and port the client connected to (`lip`, `lport`).
    pub(crate) local: Option<(IpAddr, u16)>,
    /// Whether the connection is encrypted (`secured`).
    pub(crate) secured: bool,
    /// Whether TLS verified a client certificate (`valid-client-cert`).
    pub(crate) valid_client_cert: bool,
}

/// One `AUTH` request.
pub(crate) struct AuthLine<'a> {
    pub(crate) id: u32,
    pub(crate) mechanism: &'a str,
    pub(crate) service: &'a str,
    pub(crate) client: &'a ClientInfo,
    pub(crate) no_penalty: bool,
    /// The initial response, base64-encoded; `Some("")` is an empty one.
    pub(crate) response: Option<&'a str>,
}

impl AuthLine<'_> {
    /// The line, LF included; `resp=` comes last, as the protocol requires.
    pub(crate) fn encode(&self) -> String {
        let mut line = format!(
            "AUTH\t{}\t{}\tservice={}",
            self.id,
            escape(self.mechanism),
            escape(self.service)
        );
        let client = self.client;
        if let Some((ip, port)) = client.local {
            let _ = write!(line, "\tlip={ip}\tlport={port}");
        }
        if let Some((ip, port)) = client.remote {
            let _ = write!(line, "\trip={ip}\trport={port}");
        }
        for (flag, on) in [
            ("secured", client.secured),
            ("valid-client-cert", client.valid_client_cert),
            ("no-penalty", self.no_penalty),
        ] {
            if on {
                line.push('\t');
                line.push_str(flag);
            }
        }
        if let Some(response) = self.response {
            line.push_str("\tresp=");
            line.push_str(&escape(response));
        }
        line.push('\n');
        line
    }
}

/// `CONT id data`: the client's answer to a challenge, base64-encoded.
pub(crate) fn cont(id: u32, data: &str) -> String {
    format!("CONT\t{id}\t{}\n", escape(data))
}

/// `CANCEL id`: the client gave up on the request.
pub(crate) fn cancel(id: u32) -> String {
    format!("CANCEL\t{id}\n")
}

/// Dovecot's tab-escaping of a value; borrowed when nothing needs escaping (base64, names).
pub(crate) fn escape(value: &str) -> Cow<'_, str> {
    if !value.contains(['\0', '\x01', '\t', '\r', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\0' => out.push_str("\x010"),
            '\x01' => out.push_str("\x011"),
            '\t' => out.push_str("\x01t"),
            '\r' => out.push_str("\x01r"),
            '\n' => out.push_str("\x01n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Undoes [`escape`]; an escape of any other character stands for that character.
pub(crate) fn unescape(value: &str) -> String {
    if !value.contains('\x01') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\x01' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('\0'),
            Some('1') => out.push('\x01'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('n' | 'l') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, Option<&str>)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
                .collect(),
        )
    }

    fn mech(name: &str, flags: &[&str]) -> ServerLine {
        ServerLine::Mech(MechInfo {
            name: name.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        })
    }

    #[test]
    fn server_lines() {
        let cases: &[(&[u8], Result<ServerLine, BadLine>)] = &[
            (b"VERSION\t1\t2", Ok(ServerLine::Version { major: 1 })),
            (b"VERSION\t2\t0", Ok(ServerLine::Version { major: 2 })),
            (b"VERSION", Err(BadLine("VERSION without a major version"))),
            (b"VERSION\tx\t0", Err(BadLine("bad major version"))),
            (b"MECH\tPLAIN\tplaintext", Ok(mech("PLAIN", &["plaintext"]))),
            (
                b"MECH\tCRAM-MD5\tdictionary\tactive",
                Ok(mech("CRAM-MD5", &["dictionary", "active"])),
            ),
            (b"MECH\tSCRAM-SHA-256", Ok(mech("SCRAM-SHA-256", &[]))),
            (b"MECH", Err(BadLine("MECH without a name"))),
            (b"SPID\t27400", Ok(ServerLine::Spid)),
            (b"CUID\t1", Ok(ServerLine::Cuid)),
            (
                b"COOKIE\t104f6de660991c50d2f65ab4473d3c7d",
                Ok(ServerLine::Cookie),
            ),
            (b"DONE", Ok(ServerLine::Done)),
            (b"DONE\r", Ok(ServerLine::Done)),
            (
                b"CONT\t3\tVXNlcm5hbWU6",
                Ok(ServerLine::Cont {
                    id: 3,
                    data: "VXNlcm5hbWU6".into(),
                }),
            ),
            (
                b"CONT\t3",
                Ok(ServerLine::Cont {
                    id: 3,
                    data: String::new(),
                }),
            ),
            (
                b"OK\t1\tuser=alice",
                Ok(ServerLine::Ok {
                    id: 1,
                    params: params(&[("user", Some("alice"))]),
                }),
            ),
            (
                b"OK\t1",
                Ok(ServerLine::Ok {
                    id: 1,
                    params: params(&[]),
                }),
            ),
            (
                b"FAIL\t2\tuser=alice\tcode=temp_fail",
                Ok(ServerLine::Fail {
                    id: 2,
                    params: params(&[("user", Some("alice")), ("code", Some("temp_fail"))]),
                }),
            ),
            (
                b"FAIL\t2\ttemp\treason=a\x01tb",
                Ok(ServerLine::Fail {
                    id: 2,
                    params: params(&[("temp", None), ("reason", Some("a\tb"))]),
                }),
            ),
            (b"FAIL", Err(BadLine("reply without an id"))),
            (b"OK\t-1", Err(BadLine("bad request id"))),
            (b"CONT\tx\tAA==", Err(BadLine("bad request id"))),
            (b"NOTIFY\t1", Ok(ServerLine::Other)),
            (b"", Ok(ServerLine::Other)),
            (b"\xff\xfe", Err(BadLine("not UTF-8"))),
        ];
        for (line, expected) in cases {
            assert_eq!(
                &parse_server_line(line),
                expected,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn fail_params() {
        let temp = [
            params(&[("code", Some("temp_fail"))]),
            params(&[("temp", None)]),
        ];
        assert!(temp.iter().all(Params::is_temporary));
        let permanent = [
            params(&[("user", Some("alice"))]),
            params(&[("code", Some("user_disabled"))]),
            params(&[("code", Some("temp"))]),
        ];
        assert!(!permanent.iter().any(Params::is_temporary));
        assert_eq!(params(&[("user", Some("bob"))]).user(), Some("bob"));
        let secret = params(&[("pass", Some("hunter2"))]);
        assert_eq!(format!("{secret:?}"), r#"["pass"]"#);
    }

    #[test]
    fn lines_in_a_buffer() {
        let line = |len, consumed| Frame::Line { len, consumed };
        let long = vec![b'a'; MAX_LINE + 1];
        let cases: &[(&[u8], Frame)] = &[
            (b"", Frame::NeedMore),
            (b"DONE", Frame::NeedMore),
            (b"DONE\n", line(4, 5)),
            (b"\nDONE\n", line(0, 1)),
            (b"OK\t1\nCONT", line(4, 5)),
            (&long, Frame::TooLong),
        ];
        for (buf, expected) in cases {
            assert_eq!(&next_line(buf), expected);
        }
        let mut exact = vec![b'a'; MAX_LINE];
        exact.push(b'\n');
        assert_eq!(next_line(&exact), line(MAX_LINE, MAX_LINE + 1));
        let mut over = vec![b'a'; MAX_LINE + 1];
        over.push(b'\n');
        assert_eq!(next_line(&over), Frame::TooLong);
    }

    #[test]
    fn client_lines() {
        let local = ClientInfo {
            remote: Some(("192.0.2.7".parse().unwrap(), 40000)),
            local: Some(("127.0.0.1".parse().unwrap(), 587)),
            secured: true,
            valid_client_cert: true,
        };
        let bare = ClientInfo::default();
        let cases = [
            (
                AuthLine {
                    id: 1,
                    mechanism: "PLAIN",
                    service: "smtp",
                    client: &local,
                    no_penalty: false,
                    response: Some("AGFsaWNlAHMzY3JldA=="),
                },
                "AUTH\t1\tPLAIN\tservice=smtp\tlip=127.0.0.1\tlport=587\trip=192.0.2.7\t\
                 rport=40000\tsecured\tvalid-client-cert\tresp=AGFsaWNlAHMzY3JldA==\n",
            ),
            (
                AuthLine {
                    id: 7,
                    mechanism: "LOGIN",
                    service: "smtp",
                    client: &bare,
                    no_penalty: true,
                    response: None,
                },
                "AUTH\t7\tLOGIN\tservice=smtp\tno-penalty\n",
            ),
            (
                AuthLine {
                    id: 8,
                    mechanism: "PLAIN",
                    service: "smtp",
                    client: &bare,
                    no_penalty: false,
                    response: Some(""),
                },
                "AUTH\t8\tPLAIN\tservice=smtp\tresp=\n",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(line.encode(), expected);
        }
        assert_eq!(handshake(42), "VERSION\t1\t2\nCPID\t42\n");
        assert_eq!(cont(3, "YWxpY2U="), "CONT\t3\tYWxpY2U=\n");
        assert_eq!(cont(6, ""), "CONT\t6\t\n");
        assert_eq!(cancel(4), "CANCEL\t4\n");
    }

    #[test]
    fn tab_escaping_round_trips() {
        let cases = [
            ("plain", "plain"),
            ("a\tb", "a\x01tb"),
            ("a\nb\r", "a\x01nb\x01r"),
            ("\0\x01", "\x010\x011"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape(raw), escaped);
            assert_eq!(unescape(escaped), raw);
        }
        assert_eq!(unescape("a\x01lb"), "a\nb");
        assert_eq!(unescape("a\x01xb"), "axb");
        assert_eq!(unescape("a\x01"), "a");
    }
}
