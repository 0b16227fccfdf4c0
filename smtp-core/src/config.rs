//! Server settings. Every limit and timeout is a field with a documented default.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::auth::{AddrPrefixes, SharedAuthenticator, SharedLimiter};
use crate::tls::TlsConfig;

/// The default `max_message_size`: 32 MiB, as aiosmtpd.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 * 1024 * 1024;

/// How a server behaves. Shared read-only by all connections; what a connection changes
/// (limits that grow after EHLO, counters) lives in the connection.
///
/// Names follow one convention: `max_*` for every limit, `*_timeout` for every timeout, the
/// bare extension name (`smtputf8`, `chunking`, `dsn`) for what EHLO offers. The struct is
/// `#[non_exhaustive]`, so new settings are not breaking changes: start from
/// `Config::default()` and set fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The server's name in the greeting and the HELO/EHLO replies. Default is the machine's
    /// host name.
    pub hostname: String,
    /// The greeting's text after the host name: `220 <hostname> <ident>`.
    /// Default is `smtpd <version>`.
    pub ident: String,
    /// The largest message accepted, advertised as `SIZE`, checked at `MAIL … SIZE=` and
    /// enforced while DATA is read (memory never grows past it). `None` means no limit and no
    /// `SIZE` extension. Default is 32 MiB.
    pub max_message_size: Option<usize>,
    /// Whether to offer SMTPUTF8 (RFC 6531) and accept UTF-8 in commands. Default is `false`.
    pub smtputf8: bool,
    /// The longest command line, CRLF excluded. After EHLO, MAIL may be 26 octets longer
    /// when SIZE is offered and 10 more with SMTPUTF8 (RFC 1870, 6531). Default is 512.
    pub max_command_line: usize,
    /// The longest DATA line, CRLF included (RFC 5321 §4.5.3.1.6). Default is 1001.
    pub max_data_line: usize,
    /// The longest local part of an address (before `@`) in MAIL, RCPT and VRFY; a longer one
    /// gets `553 5.1.3 Error: malformed address` (aiosmtpd's `local_part_limit`). `None`
    /// means no limit, as in aiosmtpd and Postfix: RFC 5321's 64 octets are exceeded every
    /// day by SRS, VERP and BATV addresses. Default is `None`.
    pub max_local_part: Option<usize>,
    /// The most recipients per message; one more gets `452 4.5.3 Too many recipients`.
    /// Default is 1000.
    pub max_recipients: usize,
    /// How long a client may stay silent. On expiry the server sends
    /// `421 4.4.2 <hostname> Error: timeout exceeded` and closes. A write that makes no
    /// progress for this long (a client that stopped reading its replies) closes the
    /// connection too. Default is 300 seconds.
    pub idle_timeout: Duration,
    /// Budgets of command calls per connection, by verb; `None` means unlimited.
    /// Exceeding one gets `421 4.7.0 <VERB> sent too many times` and a close. Default is `None`.
    pub max_command_calls: Option<CallLimit>,
    /// Unknown commands allowed per connection; the last one gets
    /// `502 5.5.1 Too many unrecognized commands, goodbye.` and a close. Default is 5.
    pub max_unknown_commands: usize,
    /// Connections served at once; further clients get `421 4.3.2` and are closed.
    /// `None` means unlimited. Default is 1000.
    pub max_connections: Option<usize>,
    /// Connections served at once from one client, counted by its network prefix
    /// (`client_prefixes`: /32 for IPv4, /64 for IPv6); `None` means unlimited. A trusted
    /// PROXY-protocol proxy is not counted itself: each client is counted by the address in
    /// its header, once read (a refused one gets `421 4.7.0`). Default is 50.
    pub max_connections_per_ip: Option<usize>,
    /// Whether MAIL, RCPT, DATA, VRFY and HELP need a successful AUTH first
    /// (`530 5.7.0 Authentication required`). Default is `false`.
    pub auth_required: bool,
    /// Whether AUTH needs TLS: until then AUTH is neither advertised nor accepted
    /// (`538 5.7.11`). Default is `true`.
    pub auth_require_tls: bool,
    /// Mechanism names not to offer, e.g. `["LOGIN"]`. Default is empty.
    pub auth_exclude_mechanism: Vec<String>,
    /// Decides on the credentials of LOGIN and PLAIN. Without one every login fails.
    /// Default is `None`.
    pub authenticator: Option<SharedAuthenticator>,
    /// Failed AUTH attempts allowed per connection; the last one gets
    /// `421 4.7.0 Too many authentication failures` and a close. `None` means unlimited.
    /// Default is 3.
    pub max_auth_failures: Option<u32>,
    /// A pause before each AUTH failure reply on a connection, doubled per failure
    /// (`d`, `2d`, `4d`, …) up to `auth_failure_delay_max`, to slow password guessing.
    /// Zero turns it off. Default is zero (the `smtpd` binary uses 1 second).
    pub auth_failure_delay: Duration,
    /// The longest `auth_failure_delay` pause. Default is 10 seconds.
    pub auth_failure_delay_max: Duration,
    /// Counts AUTH failures across connections by client address and user name, and blocks
    /// with `454 4.7.0 Temporary authentication failure` (see [`crate::auth::MemoryLimiter`]
    /// and, with the `redis` feature, `RedisLimiter`). Default is `None` (the `smtpd`
    /// binary uses a `MemoryLimiter`).
    pub auth_limiter: Option<SharedLimiter>,
    /// The prefix lengths by which clients are counted: by the AUTH limiter, by
    /// `max_connections_per_ip`, and in the failure log. An IPv6 host can use a new address of
    /// its /64 for every connection, so it is counted by its /64. Default is /32 for IPv4 and
    /// /64 for IPv6.
    pub client_prefixes: AddrPrefixes,
    /// Whether the one-line log event of each AUTH failure names the user as sent (printable
    /// ASCII, at most 64 characters) instead of a keyed fingerprint (`#1a2b3c4d`). Off by
    /// default because clients often type a password into the user field; turn it on when an
    /// operator needs to read which accounts are attacked. Default is `false`.
    pub log_auth_usernames: bool,
    /// The longest AUTH initial response or challenge answer, in octets (RFC 4954 §4).
    /// Default is 12288.
    pub max_auth_line: usize,
    /// Certificates for STARTTLS; `None` means STARTTLS is not offered. Default is `None`.
    pub tls: Option<TlsConfig>,
    /// Whether every command but NOOP, EHLO, STARTTLS and QUIT needs TLS first
    /// (`530 Must issue a STARTTLS command first`). Default is `false`.
    pub require_starttls: bool,
    /// How long a TLS handshake may take. Default is 30 seconds.
    pub tls_handshake_timeout: Duration,
    /// On shutdown, how long a message transfer in progress may take to finish.
    /// Default is 30 seconds.
    pub shutdown_grace: Duration,
    /// Whether to speak LMTP (RFC 2033) instead of SMTP: LHLO instead of HELO/EHLO, and after
    /// the message one reply per accepted recipient (`Handler::handle_lmtp_data`).
    /// Default is `false`.
    pub lmtp: bool,
    /// Whether to offer CHUNKING and BINARYMIME (RFC 3030): the BDAT command and
    /// `BODY=BINARYMIME`. Default is `true`.
    pub chunking: bool,
    /// Whether to offer DSN (RFC 3461): MAIL's `RET`/`ENVID` and RCPT's `NOTIFY`/`ORCPT` are
    /// checked and stored in the envelope. Default is `true`.
    pub dsn: bool,
    /// Whether to offer ENHANCEDSTATUSCODES (RFC 2034) and put an RFC 3463 code in front of
    /// every 2xx, 4xx and 5xx reply but the greeting and the HELO/EHLO/LHLO reply, when its
    /// text has none (`250 2.1.0 OK` after MAIL). `false` keeps aiosmtpd's texts, where only
    /// some replies carry a code. Default is `false`.
    pub enhanced_status_codes: bool,
    /// Whether every connection must start with a PROXY protocol header (v1 or v2), from
    /// which sources, and how fast. Default is `None` (no header expected).
    pub proxy_protocol: Option<ProxyProtocol>,
    /// The networks whose clients may send XCLIENT (Postfix's `smtpd_authorized_xclient_hosts`):
    /// a proxy such as nginx's mail module names the client it speaks for, and the session
    /// goes on as that client's (address, HELO name, the login the proxy verified). EHLO
    /// offers XCLIENT only to these clients, and they are counted in `max_connections_per_ip`
    /// by the address XCLIENT names. Anyone else gets `550 5.7.0 Error: insufficient
    /// authorization`. Default is empty (nobody).
    pub xclient_trusted: Vec<Cidr>,
    /// The networks whose clients may send XFORWARD (Postfix's
    /// `smtpd_authorized_xforward_hosts`): an MTA in front of this server forwards each
    /// message's original client, kept in `Envelope::xforward`. EHLO offers XFORWARD only to
    /// these clients; anyone else gets `550 5.7.0 Error: insufficient authorization`.
    /// Default is empty (nobody).
    pub xforward_trusted: Vec<Cidr>,
    /// Messages accepted per connection; after the reply to the last one the server sends
    /// `421 4.7.0 <hostname> Error: too many messages in one session` and closes.
    /// `None` means unlimited. Default is `None`.
    pub max_messages_per_connection: Option<usize>,
    /// Message bytes (DATA content) received per connection; after the reply to the message
    /// that crossed it the server sends `421 4.7.0 <hostname> Error: too much data in one
    /// session` and closes. `None` means unlimited. Default is `None`.
    pub max_bytes_per_connection: Option<u64>,
    /// The slowest message transfer tolerated, as Postfix's `smtpd_min_data_rate`: once the
    /// grace period is over, a client that has sent fewer than `bytes_per_second` on average
    /// since `354` (or since a BDAT command, for that chunk) gets
    /// `421 4.4.2 <hostname> Error: too slow` and is closed. `None` means no minimum.
    /// Default is 500 bytes per second after 10 seconds (Postfix's default rate), so a client
    /// that trickles a message cannot hold a connection for ever.
    pub min_data_rate: Option<MinDataRate>,
}

/// PROXY protocol settings (HAProxy's `proxy-protocol.txt`): the header is read before the
/// greeting, and its source address becomes the session's peer.
#[derive(Clone, Debug)]
pub struct ProxyProtocol {
    /// How long the header may take to arrive; on expiry the connection is closed with
    /// nothing sent. Default is 5 seconds.
    pub timeout: Duration,
    /// The networks a proxy may connect from; a connection from anywhere else is closed with
    /// nothing sent. An empty list trusts every source, as aiosmtpd does. Unix-socket clients
    /// are always trusted. Default is empty.
    pub trusted: Vec<Cidr>,
}

impl Default for ProxyProtocol {
    fn default() -> ProxyProtocol {
        ProxyProtocol {
            timeout: Duration::from_secs(5),
            trusted: Vec::new(),
        }
    }
}

impl ProxyProtocol {
    /// Whether a proxy at `ip` may send a header.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.is_empty() || trusted(&self.trusted, ip)
    }
}

/// An IP network in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the network. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP network (e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether `ip` is inside one of `networks`.
pub(crate) fn trusted(networks: &[Cidr], ip: IpAddr) -> bool {
    networks.iter().any(|net| net.contains(ip))
}

/// A minimum DATA transfer rate, checked after a grace period.
#[derive(Clone, Copy, Debug)]
pub struct MinDataRate {
    /// The average rate below which a sender is cut off. Postfix's default is 500.
    pub bytes_per_second: u64,
    /// How long after `354` the rate is first checked. Default is 10 seconds.
    pub grace: Duration,
}

impl Default for MinDataRate {
    fn default() -> MinDataRate {
        MinDataRate {
            bytes_per_second: 500,
            grace: Duration::from_secs(10),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            hostname: local_hostname(),
            ident: concat!("smtpd ", env!("CARGO_PKG_VERSION")).to_owned(),
            max_message_size: Some(DEFAULT_MAX_MESSAGE_SIZE),
            smtputf8: false,
            max_command_line: 512,
            max_data_line: 1001,
            max_local_part: None,
            max_recipients: 1000,
            idle_timeout: Duration::from_secs(300),
            max_command_calls: None,
            max_unknown_commands: 5,
            max_connections: Some(1000),
            max_connections_per_ip: Some(50),
            auth_required: false,
            auth_require_tls: true,
            auth_exclude_mechanism: Vec::new(),
            authenticator: None,
            max_auth_failures: Some(3),
            auth_failure_delay: Duration::ZERO,
            auth_failure_delay_max: Duration::from_secs(10),
            auth_limiter: None,
            client_prefixes: AddrPrefixes::default(),
            log_auth_usernames: false,
            max_auth_line: 12288,
            tls: None,
            require_starttls: false,
            tls_handshake_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            lmtp: false,
            chunking: true,
            dsn: true,
            enhanced_status_codes: false,
            proxy_protocol: None,
            xclient_trusted: Vec::new(),
            xforward_trusted: Vec::new(),
            max_messages_per_connection: None,
            max_bytes_per_connection: None,
            min_data_rate: Some(MinDataRate::default()),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("hostname", &self.hostname)
            .field("ident", &self.ident)
            .field("max_message_size", &self.max_message_size)
            .field("smtputf8", &self.smtputf8)
            .field("max_recipients", &self.max_recipients)
            .field("idle_timeout", &self.idle_timeout)
            .field("auth_required", &self.auth_required)
            .field("auth_require_tls", &self.auth_require_tls)
            .field("authenticator", &self.authenticator.as_ref().map(|_| "..."))
            .field("tls", &self.tls.is_some())
            .field("require_starttls", &self.require_starttls)
            .field("proxy_protocol", &self.proxy_protocol)
            .field("xclient_trusted", &self.xclient_trusted)
            .field("xforward_trusted", &self.xforward_trusted)
            .finish_non_exhaustive()
    }
}

/// Per-verb budgets of command calls, as aiosmtpd's `max_command_calls`.
#[derive(Clone, Debug, Default)]
pub struct CallLimit {
    /// Budget of every verb without its own entry.
    pub default: usize,
    /// Budgets by upper-case verb.
    pub per_verb: HashMap<String, usize>,
}

impl CallLimit {
    /// The same budget for every verb.
    pub fn all(limit: usize) -> CallLimit {
        CallLimit {
            default: limit,
            per_verb: HashMap::new(),
        }
    }

    /// The budget of `verb`.
    pub fn limit(&self, verb: &str) -> usize {
        self.per_verb.get(verb).copied().unwrap_or(self.default)
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let table: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("192.168.1.0/24", "::ffff:192.168.1.7", true),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "::1", true),
            ("::/0", "127.0.0.1", false),
        ];
        for (net, ip, inside) in table {
            let cidr: Cidr = net.parse().unwrap();
            assert_eq!(cidr.contains(ip.parse().unwrap()), *inside, "{net} ∋ {ip}");
        }
    }

    #[test]
    fn cidr_rejects() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host",
            "10.0.0.0/",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(
            "10.1.0.0/16".parse::<Cidr>().unwrap().to_string(),
            "10.1.0.0/16"
        );
    }
}
