//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, versions 1 and 2), parsed from
//! the front of a buffer without I/O.
//!
//! [`parse`] is given everything received so far and says whether the header is complete,
//! needs more bytes, or is invalid. It never reads past the header: the bytes after it belong
//! to the SMTP session.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a PROXY protocol header (version 1 or 2) announced.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyData {
    /// The original client address; `None` for `UNKNOWN`, `LOCAL`, and the UNSPEC and UNIX
    /// families. When present it is also the session's [`Peer`](crate::Peer).
    pub source: Option<SocketAddr>,
    /// The address the client connected to, on the proxy.
    pub destination: Option<SocketAddr>,
    /// The UNIX-family (v2 `AF_UNIX`) source path: up to 108 octets, NULs trimmed. `None` for
    /// the other families.
    pub unix_source: Option<Vec<u8>>,
    /// The UNIX-family destination path, likewise.
    pub unix_destination: Option<Vec<u8>>,
    /// The protocol version: 1 (text) or 2 (binary).
    pub version: u8,
    /// `PROXY` for a relayed client; `LOCAL` for the proxy's own connections (health checks).
    pub command: ProxyCommand,
    /// Version 2 TLVs as raw `(type, value)` pairs, in order (e.g. `0x01` ALPN,
    /// `0x05` UNIQUE_ID, `0x20` SSL).
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

impl ProxyData {
    /// A header that names no addresses.
    pub fn unknown(version: u8, command: ProxyCommand) -> ProxyData {
        ProxyData {
            source: None,
            destination: None,
            unix_source: None,
            unix_destination: None,
            version,
            command,
            tlvs: Vec::new(),
        }
    }
}

/// The command of a PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyCommand {
    /// The connection relays a client (v1 always; v2 command 1).
    Proxy,
    /// The proxy speaks for itself (v2 command 0); the addresses are ignored.
    Local,
}

/// The longest version 1 header, CRLF included.
pub const V1_MAX: usize = 107;
/// The 12 bytes that start a version 2 header.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
const V2_FIXED: usize = 16;

/// What [`parse`] found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxyParse {
    /// The header is not complete; at least this many more bytes are needed.
    NeedMore(usize),
    /// A complete header, which took the first `usize` bytes of the buffer.
    Done(ProxyData, usize),
    /// Not a valid PROXY header; the text says why.
    Invalid(&'static str),
}

/// Parses a PROXY header, version 1 or 2, at the front of `buf`.
pub fn parse(buf: &[u8]) -> ProxyParse {
    let v1 = prefix_of(buf, V1_PREFIX);
    let v2 = prefix_of(buf, V2_SIGNATURE);
    if buf.len() >= V1_PREFIX.len() && v1 {
        parse_v1(buf)
    } else if buf.len() >= V2_SIGNATURE.len() && v2 {
        parse_v2(buf)
    } else if v1 || v2 {
        ProxyParse::NeedMore(1)
    } else {
        ProxyParse::Invalid("PROXY unrecognized signature")
    }
}

/// Whether `buf` and `expected` agree on their common length.
fn prefix_of(buf: &[u8], expected: &[u8]) -> bool {
    let n = buf.len().min(expected.len());
    buf[..n] == expected[..n]
}

fn parse_v1(buf: &[u8]) -> ProxyParse {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = memchr::memchr(b'\n', window) else {
        return if buf.len() >= V1_MAX {
            ProxyParse::Invalid("PROXYv1 header too long")
        } else {
            ProxyParse::NeedMore(1)
        };
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return ProxyParse::Invalid("PROXYv1 line not ended by CRLF");
    }
    let Ok(line) = std::str::from_utf8(&window[V1_PREFIX.len()..lf - 1]) else {
        return ProxyParse::Invalid("PROXYv1 not ASCII");
    };
    let consumed = lf + 1;
    let mut fields = line.split(' ');
    let family = fields.next().unwrap_or_default();
    if family == "UNKNOWN" {
        // The receiver must ignore whatever follows UNKNOWN (proxy-protocol.txt §2.1).
        return ProxyParse::Done(ProxyData::unknown(1, ProxyCommand::Proxy), consumed);
    }
    let parts: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = parts[..] else {
        return ProxyParse::Invalid("PROXYv1 wrong number of fields");
    };
    let (src, dst) = match family {
        "TCP4" => match (src.parse::<Ipv4Addr>(), dst.parse::<Ipv4Addr>()) {
            (Ok(s), Ok(d)) => (IpAddr::V4(s), IpAddr::V4(d)),
            _ => return ProxyParse::Invalid("PROXYv1 address not IPv4"),
        },
        "TCP6" => match (src.parse::<Ipv6Addr>(), dst.parse::<Ipv6Addr>()) {
            (Ok(s), Ok(d)) => (IpAddr::V6(s), IpAddr::V6(d)),
            _ => return ProxyParse::Invalid("PROXYv1 address not IPv6"),
        },
        _ => return ProxyParse::Invalid("PROXYv1 unrecognized protocol"),
    };
    let (Some(sport), Some(dport)) = (port(sport), port(dport)) else {
        return ProxyParse::Invalid("PROXYv1 invalid port");
    };
    let data = ProxyData {
        source: Some(SocketAddr::new(src, sport)),
        destination: Some(SocketAddr::new(dst, dport)),
        ..ProxyData::unknown(1, ProxyCommand::Proxy)
    };
    ProxyParse::Done(data, consumed)
}

/// A decimal port, 0 to 65535, without a leading zero or sign.
fn port(text: &str) -> Option<u16> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

fn parse_v2(buf: &[u8]) -> ProxyParse {
    if buf.len() < V2_FIXED {
        return ProxyParse::NeedMore(V2_FIXED - buf.len());
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    let (family, protocol) = (buf[13] >> 4, buf[13] & 0x0f);
    let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if version != 2 {
        return ProxyParse::Invalid("PROXYv2 unsupported version");
    }
    let command = match command {
        0 => ProxyCommand::Local,
        1 => ProxyCommand::Proxy,
        _ => return ProxyParse::Invalid("PROXYv2 unsupported command"),
    };
    if family > 3 || protocol > 2 {
        return ProxyParse::Invalid("PROXYv2 unsupported family or protocol");
    }
    let total = V2_FIXED + len;
    if buf.len() < total {
        return ProxyParse::NeedMore(total - buf.len());
    }
    let body = &buf[V2_FIXED..total];
    let address_len = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if body.len() < address_len {
        return ProxyParse::Invalid("PROXYv2 address block too short");
    }
    let (addresses, mut rest) = body.split_at(address_len);
    let mut tlvs = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 3 {
            return ProxyParse::Invalid("PROXYv2 truncated TLV");
        }
        let n = u16::from_be_bytes([rest[1], rest[2]]) as usize;
        if rest.len() < 3 + n {
            return ProxyParse::Invalid("PROXYv2 truncated TLV");
        }
        tlvs.push((rest[0], rest[3..3 + n].to_vec()));
        rest = &rest[3 + n..];
    }
    let mut data = ProxyData {
        tlvs,
        ..ProxyData::unknown(2, command)
    };
    // LOCAL connections (health checks) and UNSPEC/UNIX families carry no client address.
    if command == ProxyCommand::Proxy {
        let a = addresses;
        let pair = match family {
            1 => Some((
                IpAddr::from(<[u8; 4]>::try_from(&a[0..4]).unwrap_or_default()),
                IpAddr::from(<[u8; 4]>::try_from(&a[4..8]).unwrap_or_default()),
                &a[8..12],
            )),
            2 => Some((
                IpAddr::from(<[u8; 16]>::try_from(&a[0..16]).unwrap_or_default()),
                IpAddr::from(<[u8; 16]>::try_from(&a[16..32]).unwrap_or_default()),
                &a[32..36],
            )),
            3 => {
                data.unix_source = Some(unix_path(&a[..108]));
                data.unix_destination = Some(unix_path(&a[108..216]));
                None
            }
            _ => None,
        };
        if let Some((src, dst, ports)) = pair {
            data.source = Some(SocketAddr::new(
                src,
                u16::from_be_bytes([ports[0], ports[1]]),
            ));
            data.destination = Some(SocketAddr::new(
                dst,
                u16::from_be_bytes([ports[2], ports[3]]),
            ));
        }
    }
    ProxyParse::Done(data, total)
}

/// A `sun_path` of the UNIX family: the octets before the first NUL.
fn unix_path(raw: &[u8]) -> Vec<u8> {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    raw[..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_unix_family_keeps_both_paths() {
        let mut body = vec![0u8; 216];
        body[..12].copy_from_slice(b"/run/src.soc");
        body[108..120].copy_from_slice(b"/run/dst.soc");
        let (data, _) = done(&v2(1, 0x31, &body));
        assert_eq!(data.unix_source.as_deref(), Some(&b"/run/src.soc"[..]));
        assert_eq!(data.unix_destination.as_deref(), Some(&b"/run/dst.soc"[..]));
        assert_eq!(data.source, None);
        let (local, _) = done(&v2(0, 0x31, &body));
        assert_eq!(local.unix_source, None, "LOCAL carries no addresses");
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn inet4_body() -> Vec<u8> {
        let mut b = vec![192, 0, 2, 1, 198, 51, 100, 2];
        b.extend_from_slice(&56324u16.to_be_bytes());
        b.extend_from_slice(&25u16.to_be_bytes());
        b
    }

    fn addrs(src: &str, dst: &str) -> (Option<SocketAddr>, Option<SocketAddr>) {
        (src.parse().ok(), dst.parse().ok())
    }

    fn done(input: &[u8]) -> (ProxyData, usize) {
        match parse(input) {
            ProxyParse::Done(data, n) => (data, n),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn v1_headers() {
        let table: &[(&[u8], &str, &str)] = &[
            (
                b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",
                "192.0.2.1:56324",
                "198.51.100.2:25",
            ),
            (
                b"PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n",
                "[2001:db8::1]:0",
                "[2001:db8::2]:65535",
            ),
            (b"PROXY UNKNOWN\r\n", "", ""),
            (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", "", ""),
        ];
        for (input, src, dst) in table {
            let (data, n) = done(input);
            assert_eq!(n, input.len());
            assert_eq!((data.source, data.destination), addrs(src, dst));
            assert_eq!((data.version, data.command), (1, ProxyCommand::Proxy));
        }
    }

    #[test]
    fn v1_leaves_the_bytes_after_the_header() {
        let input = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nEHLO x\r\n";
        assert_eq!(done(input).1, input.len() - 8);
    }

    #[test]
    fn v1_invalid() {
        let table: &[(&[u8], &str)] = &[
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                "PROXYv1 line not ended by CRLF",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
                "PROXYv1 wrong number of fields",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
                "PROXYv1 wrong number of fields",
            ),
            (
                b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
                "PROXYv1 wrong number of fields",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
                "PROXYv1 wrong number of fields",
            ),
            (b"PROXY TCP4 ::1 ::2 1 2\r\n", "PROXYv1 address not IPv4"),
            (
                b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
                "PROXYv1 address not IPv6",
            ),
            (
                b"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
                "PROXYv1 address not IPv4",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
                "PROXYv1 invalid port",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
                "PROXYv1 invalid port",
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
                "PROXYv1 invalid port",
            ),
            (
                b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
                "PROXYv1 unrecognized protocol",
            ),
            (
                b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
                "PROXYv1 unrecognized protocol",
            ),
            (b"PROXY \xff\r\n", "PROXYv1 not ASCII"),
            (b"EHLO x\r\n", "PROXY unrecognized signature"),
            (b"proxy ", "PROXY unrecognized signature"),
            (b"\r\n\r\n\0\r\nQUIX", "PROXY unrecognized signature"),
        ];
        for (input, why) in table {
            assert_eq!(
                parse(input),
                ProxyParse::Invalid(why),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn v1_too_long() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX - 2, b'x');
        line.extend_from_slice(b"\r\n");
        assert_eq!(done(&line).1, V1_MAX);
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX, b'x');
        assert_eq!(parse(&long), ProxyParse::Invalid("PROXYv1 header too long"));
        long.extend_from_slice(b"\r\n");
        assert_eq!(parse(&long), ProxyParse::Invalid("PROXYv1 header too long"));
    }

    #[test]
    fn v2_headers() {
        let mut inet6 = Vec::new();
        inet6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        inet6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        inet6.extend_from_slice(&[0, 1, 0, 25]);
        let mut with_tlvs = inet4_body();
        with_tlvs.extend_from_slice(&[0x01, 0, 2, b'h', b'2', 0x04, 0, 0]);
        type Tlvs = Vec<(u8, Vec<u8>)>;
        let table: Vec<(Vec<u8>, ProxyCommand, &str, &str, Tlvs)> = vec![
            (
                v2(1, 0x11, &inet4_body()),
                ProxyCommand::Proxy,
                "192.0.2.1:56324",
                "198.51.100.2:25",
                vec![],
            ),
            (
                v2(1, 0x21, &inet6),
                ProxyCommand::Proxy,
                "[2001:db8::1]:1",
                "[2001:db8::2]:25",
                vec![],
            ),
            (
                v2(1, 0x11, &with_tlvs),
                ProxyCommand::Proxy,
                "192.0.2.1:56324",
                "198.51.100.2:25",
                vec![(1, b"h2".to_vec()), (4, vec![])],
            ),
            (v2(0, 0x00, &[]), ProxyCommand::Local, "", "", vec![]),
            // LOCAL: the addresses are those of the proxy itself and are ignored.
            (
                v2(0, 0x11, &inet4_body()),
                ProxyCommand::Local,
                "",
                "",
                vec![],
            ),
            (v2(1, 0x00, &[]), ProxyCommand::Proxy, "", "", vec![]),
            (v2(1, 0x31, &[0; 216]), ProxyCommand::Proxy, "", "", vec![]),
        ];
        for (input, command, src, dst, tlvs) in table {
            let mut buf = input.clone();
            buf.extend_from_slice(b"EHLO x\r\n");
            let (data, n) = done(&buf);
            assert_eq!(n, input.len());
            assert_eq!((data.version, data.command), (2, command));
            assert_eq!((data.source, data.destination), addrs(src, dst));
            assert_eq!(data.tlvs, tlvs);
        }
    }

    #[test]
    fn v2_invalid() {
        let mut bad_version = v2(1, 0x11, &inet4_body());
        bad_version[12] = 0x11;
        let table: Vec<(Vec<u8>, &str)> = vec![
            (bad_version, "PROXYv2 unsupported version"),
            (v2(2, 0x11, &inet4_body()), "PROXYv2 unsupported command"),
            (
                v2(1, 0x41, &inet4_body()),
                "PROXYv2 unsupported family or protocol",
            ),
            (
                v2(1, 0x13, &inet4_body()),
                "PROXYv2 unsupported family or protocol",
            ),
            (v2(1, 0x11, &[0; 11]), "PROXYv2 address block too short"),
            (v2(1, 0x21, &[0; 12]), "PROXYv2 address block too short"),
            (v2(1, 0x00, &[1, 0]), "PROXYv2 truncated TLV"),
            (v2(1, 0x00, &[1, 0, 2, 0]), "PROXYv2 truncated TLV"),
        ];
        for (input, why) in table {
            assert_eq!(parse(&input), ProxyParse::Invalid(why), "{input:?}");
        }
    }

    #[test]
    fn every_split_needs_more_until_complete() {
        let headers = [
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n".to_vec(),
            v2(1, 0x11, &inet4_body()),
        ];
        for header in headers {
            for cut in 0..header.len() {
                assert!(
                    matches!(parse(&header[..cut]), ProxyParse::NeedMore(n) if n >= 1 && cut + n <= header.len()),
                    "cut at {cut}: {:?}",
                    parse(&header[..cut])
                );
            }
            assert_eq!(done(&header).1, header.len());
        }
    }

    #[test]
    fn v2_need_more_is_exact_once_the_length_is_known() {
        let header = v2(1, 0x11, &inet4_body());
        assert_eq!(parse(&header[..16]), ProxyParse::NeedMore(12));
        assert_eq!(parse(&header[..13]), ProxyParse::NeedMore(3));
    }
}
