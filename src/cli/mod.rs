//! The command line: flags, and the [`Config`] and mechanisms they describe. Every default
//! comes from `Config::default()`; a flag that is not given leaves the library's choice.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod catcher;
mod dovecot;
mod nats;
mod operate;

pub use catcher::CatcherArgs;
pub use dovecot::DovecotArgs;
pub use nats::NatsArgs;
pub use operate::{LogFormat, OperateArgs};

use clap::{Parser, ValueEnum};
use smtp_core::auth::mechanisms::{Anonymous, CramMd5, External, OAuthBearer, Scram, XOAuth2};
use smtp_core::auth::{AddrPrefixes, MemoryLimiter, SharedLimiter};
use smtp_core::{
    Cidr, Config, Handler, MinDataRate, ProxyProtocol, Server, StaticUsers, TlsConfig,
};

/// An SMTP server: a debugging mail catcher, a sink, a Maildir delivery agent, a JetStream
/// hand-off, or a mail catcher for tests with an HTTP API.
#[derive(Parser, Debug)]
#[command(name = "smtpd", version, about)]
pub struct Cli {
    /// Address to listen on: HOST:PORT, or unix:/PATH for a Unix-domain socket (repeatable).
    #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1:8025", value_parser = parse_listen)]
    pub listen: Vec<ListenAddr>,
    /// Address for an implicit-TLS listener (submissions, RFC 8314; repeatable). Needs --tls-cert.
    #[arg(long = "implicit-tls-listen", value_name = "ADDR")]
    pub implicit_tls_listen: Vec<SocketAddr>,
    /// Host name in the greeting and EHLO reply [default: this machine's host name].
    #[arg(long)]
    hostname: Option<String>,
    /// Greeting text after the host name [default: "smtpd" and its version].
    #[arg(long)]
    ident: Option<String>,
    /// What to do with messages: debugging (print them), sink (drop them), maildir:DIR,
    /// jetstream (publish them to NATS JetStream; see the --nats-* flags), capture (keep
    /// them for an HTTP API; see --api-listen).
    #[arg(long, value_name = "HANDLER", default_value = "debugging", value_parser = parse_handler)]
    pub handler: HandlerChoice,
    /// Largest message in bytes, or `none` [default: 33554432].
    #[arg(long, value_name = "BYTES|none", value_parser = parse_limit::<usize>)]
    size_limit: Option<Limit<usize>>,
    /// Longest local part of an address, or `none` [default: none].
    #[arg(long, value_name = "OCTETS|none", value_parser = parse_limit::<usize>)]
    max_local_part: Option<Limit<usize>>,
    /// Offer SMTPUTF8 and accept UTF-8 addresses.
    #[arg(long)]
    smtputf8: bool,
    /// Speak LMTP (RFC 2033) instead of SMTP: LHLO, and one reply per recipient after DATA.
    #[arg(long)]
    lmtp: bool,
    /// Do not offer CHUNKING/BINARYMIME (BDAT, RFC 3030).
    #[arg(long)]
    no_chunking: bool,
    /// Do not offer DSN (RFC 3461) parameters.
    #[arg(long)]
    no_dsn: bool,
    /// Offer ENHANCEDSTATUSCODES: an RFC 3463 code on every reply (`250 2.1.0 OK`).
    #[arg(long)]
    enhanced_status_codes: bool,
    /// Idle timeout in seconds [default: 300].
    #[arg(long = "timeout", visible_alias = "idle-timeout", value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Connections served at once, or `none` [default: 1000].
    #[arg(long, value_name = "N|none", value_parser = parse_limit::<usize>)]
    max_connections: Option<Limit<usize>>,
    /// Connections served at once from one client address, or `none` [default: 50].
    #[arg(long, value_name = "N|none", value_parser = parse_limit::<usize>)]
    max_connections_per_ip: Option<Limit<usize>>,
    /// Recipients per message [default: 1000].
    #[arg(long, value_name = "N")]
    max_recipients: Option<usize>,
    /// A user for AUTH PLAIN/LOGIN, as USER:PASSWORD (repeatable).
    #[arg(long = "auth-user", value_name = "USER:PASSWORD", value_parser = parse_user)]
    auth_users: Vec<(String, String)>,
    /// Require AUTH before MAIL, RCPT, DATA, VRFY and HELP.
    #[arg(long)]
    auth_required: bool,
    /// Offer AUTH without TLS (unsafe outside tests and loopback).
    #[arg(long)]
    no_auth_require_tls: bool,
    /// Do not offer this mechanism (repeatable).
    #[arg(long = "auth-exclude", value_name = "MECH")]
    auth_exclude: Vec<String>,
    /// Also offer this mechanism (repeatable). SCRAM and CRAM-MD5 check --auth-user; XOAUTH2
    /// and OAUTHBEARER take its password as the user's token; EXTERNAL accepts a client
    /// certificate verified against --tls-client-ca.
    #[arg(long = "auth-mechanism", value_name = "MECH", ignore_case = true)]
    auth_mechanisms: Vec<MechanismChoice>,
    /// Pause before the first AUTH failure reply on a connection, doubled for each further
    /// failure (0: none).
    #[arg(long, value_name = "MILLIS", default_value_t = 1000)]
    auth_failure_delay_ms: u64,
    /// AUTH failures per client address and per user in 10 minutes before `454`, or `none`.
    #[arg(long, value_name = "N|none", default_value = "10", value_parser = parse_limit::<u32>)]
    auth_rate_limit: Limit<u32>,
    /// Name the user in the log line of each AUTH failure (default: a fingerprint, since
    /// users often type a password into the user field).
    #[arg(long)]
    log_auth_usernames: bool,
    /// Prefix length by which IPv4 clients are counted (AUTH limiter, per-client connection
    /// cap, failure log) [default: 32].
    #[arg(long, value_name = "BITS")]
    auth_prefix_v4: Option<u8>,
    /// Prefix length by which IPv6 clients are counted: one host can use a new address of its
    /// /64 for every connection [default: 64].
    #[arg(long, value_name = "BITS")]
    auth_prefix_v6: Option<u8>,
    /// Count AUTH failures in this Redis (redis://HOST:PORT), shared with other instances.
    #[arg(long, value_name = "URL")]
    auth_limit_redis: Option<String>,
    /// PEM certificate chain for STARTTLS and implicit TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates to verify client certificates against (optional client auth).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Refuse every command but EHLO, NOOP, STARTTLS and QUIT before TLS.
    #[arg(long, requires = "tls_cert")]
    require_starttls: bool,
    /// Make every TLS handshake a full one (no session tickets, no session cache). Resumption
    /// is on by default: a returning client skips the certificate signature.
    #[arg(long, requires = "tls_cert")]
    tls_no_resumption: bool,
    /// Require a PROXY protocol header (v1 or v2) before the greeting on every connection.
    #[arg(long)]
    proxy_protocol: bool,
    /// A network allowed to send PROXY headers, e.g. 10.0.0.0/8 (repeatable; default: any).
    #[arg(
        long = "proxy-trusted",
        value_name = "CIDR",
        requires = "proxy_protocol"
    )]
    proxy_trusted: Vec<Cidr>,
    /// Seconds a PROXY header may take to arrive [default: 5].
    #[arg(long, value_name = "SECS", requires = "proxy_protocol")]
    proxy_timeout: Option<u64>,
    /// A network whose clients may send XCLIENT, e.g. an nginx mail proxy (repeatable;
    /// default: none).
    #[arg(long = "xclient-trusted", value_name = "CIDR")]
    xclient_trusted: Vec<Cidr>,
    /// A network whose clients may send XFORWARD, e.g. the Postfix relaying to a content
    /// filter (repeatable; default: none).
    #[arg(long = "xforward-trusted", value_name = "CIDR")]
    xforward_trusted: Vec<Cidr>,
    /// Messages per connection before `421`, or `none` [default: none].
    #[arg(long, value_name = "N|none", value_parser = parse_limit::<usize>)]
    max_messages_per_connection: Option<Limit<usize>>,
    /// Message bytes per connection before `421`, or `none` [default: none].
    #[arg(long, value_name = "BYTES|none", value_parser = parse_limit::<u64>)]
    max_bytes_per_connection: Option<Limit<u64>>,
    /// Slowest message transfer tolerated after a 10-second grace, in bytes per second, or
    /// `none` [default: 500].
    #[arg(long, value_name = "BYTES_PER_SEC|none", value_parser = parse_limit::<u64>)]
    min_data_rate: Option<Limit<u64>>,
    /// Worker threads [default: the CPUs this process may use]; 1 runs everything on one thread.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub catcher: CatcherArgs,
    #[command(flatten)]
    pub dovecot: DovecotArgs,
    #[command(flatten)]
    pub operate: OperateArgs,
}

/// A limit given on the command line: a number, or `none` (`0` is accepted for `none` too,
/// as older versions of the flags had it).
#[derive(Clone, Copy, Debug)]
pub struct Limit<T>(Option<T>);

fn parse_limit<T: std::str::FromStr + PartialEq + Default>(s: &str) -> Result<Limit<T>, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Limit(None));
    }
    let n: T = s
        .parse()
        .map_err(|_| "expected a number or `none`".to_owned())?;
    Ok(Limit((n != T::default()).then_some(n)))
}

/// Applies a limit flag, when given, to its field.
fn set<T>(field: &mut Option<T>, flag: Option<Limit<T>>) {
    if let Some(Limit(value)) = flag {
        *field = value;
    }
}

/// A `--listen` address.
#[derive(Clone, Debug)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => addr.fmt(f),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    match s.strip_prefix("unix:") {
        Some("") => Err("expected unix:/PATH".into()),
        Some(path) => Ok(ListenAddr::Unix(path.into())),
        None => s
            .parse()
            .map(ListenAddr::Tcp)
            .map_err(|_| "expected HOST:PORT or unix:/PATH".into()),
    }
}

/// The `--handler` choice.
#[derive(Clone, Debug)]
pub enum HandlerChoice {
    Debugging,
    Sink,
    Maildir(PathBuf),
    JetStream,
    /// `capture`: keep messages in memory and serve them over HTTP (`--api-listen`).
    Capture,
}

fn parse_handler(s: &str) -> Result<HandlerChoice, String> {
    match s {
        "debugging" => Ok(HandlerChoice::Debugging),
        "sink" => Ok(HandlerChoice::Sink),
        "jetstream" => Ok(HandlerChoice::JetStream),
        "capture" => Ok(HandlerChoice::Capture),
        _ => match s.strip_prefix("maildir:") {
            Some(dir) if !dir.is_empty() => Ok(HandlerChoice::Maildir(dir.into())),
            _ => Err("expected debugging, sink, maildir:DIR, jetstream or capture".into()),
        },
    }
}

/// The mechanisms `--auth-mechanism` can add (PLAIN and LOGIN are always there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MechanismChoice {
    #[value(name = "PLAIN")]
    Plain,
    #[value(name = "LOGIN")]
    Login,
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-256-PLUS")]
    ScramSha256Plus,
    #[value(name = "SCRAM-SHA-1")]
    ScramSha1,
    #[value(name = "SCRAM-SHA-1-PLUS")]
    ScramSha1Plus,
    #[value(name = "CRAM-MD5")]
    CramMd5,
    #[value(name = "ANONYMOUS")]
    Anonymous,
    #[value(name = "XOAUTH2")]
    Xoauth2,
    #[value(name = "OAUTHBEARER")]
    Oauthbearer,
    #[value(name = "EXTERNAL")]
    External,
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok((user.into(), password.into()))
        }
        _ => Err("expected USER:PASSWORD".into()),
    }
}

impl Cli {
    fn has(&self, mechanism: MechanismChoice) -> bool {
        self.auth_mechanisms.contains(&mechanism)
    }

    fn users(&self) -> StaticUsers {
        let users = self
            .auth_users
            .iter()
            .fold(StaticUsers::new(), |users, (u, p)| {
                users.user(u.as_bytes(), p.as_bytes())
            });
        if self.has(MechanismChoice::External) {
            users.accept_client_certificates()
        } else {
            users
        }
    }

    /// The server configuration the flags describe.
    pub fn config(&self) -> Result<Config, String> {
        self.catcher
            .check(matches!(self.handler, HandlerChoice::Capture))?;
        let mut config = Config::default();
        if let Some(hostname) = &self.hostname {
            config.hostname = hostname.clone();
        }
        if let Some(ident) = &self.ident {
            config.ident = ident.clone();
        }
        set(&mut config.max_message_size, self.size_limit);
        set(&mut config.max_local_part, self.max_local_part);
        set(&mut config.max_connections, self.max_connections);
        set(
            &mut config.max_connections_per_ip,
            self.max_connections_per_ip,
        );
        set(
            &mut config.max_messages_per_connection,
            self.max_messages_per_connection,
        );
        set(
            &mut config.max_bytes_per_connection,
            self.max_bytes_per_connection,
        );
        if let Some(Limit(rate)) = self.min_data_rate {
            config.min_data_rate = rate.map(|bytes_per_second| MinDataRate {
                bytes_per_second,
                ..MinDataRate::default()
            });
        }
        config.smtputf8 |= self.smtputf8;
        config.lmtp |= self.lmtp;
        config.chunking &= !self.no_chunking;
        config.dsn &= !self.no_dsn;
        config.enhanced_status_codes |= self.enhanced_status_codes;
        if let Some(secs) = self.idle_timeout {
            config.idle_timeout = Duration::from_secs(secs);
        }
        if let Some(n) = self.max_recipients {
            config.max_recipients = n;
        }
        config.auth_required |= self.auth_required;
        config.auth_require_tls &= !self.no_auth_require_tls;
        config.auth_exclude_mechanism = self.auth_exclude.clone();
        config.auth_failure_delay = Duration::from_millis(self.auth_failure_delay_ms);
        config.log_auth_usernames |= self.log_auth_usernames;
        config.require_starttls |= self.require_starttls;
        let prefixes = config.client_prefixes;
        config.client_prefixes = AddrPrefixes::new(
            self.auth_prefix_v4.unwrap_or(prefixes.v4()),
            self.auth_prefix_v6.unwrap_or(prefixes.v6()),
        )
        .map_err(|e| e.to_string())?;
        if !self.auth_users.is_empty() || self.has(MechanismChoice::External) {
            config.authenticator = Some(self.users().into());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let mut builder = TlsConfig::builder(cert, key);
            if let Some(ca) = &self.tls_client_ca {
                builder = builder.client_ca(ca);
            }
            if self.tls_no_resumption {
                builder = builder.resumption(smtp_core::tls::Resumption::Off);
            }
            config.tls = Some(builder.build().map_err(|e| e.to_string())?);
        }
        if self.proxy_protocol {
            let default = ProxyProtocol::default();
            config.proxy_protocol = Some(ProxyProtocol {
                trusted: self.proxy_trusted.clone(),
                timeout: self
                    .proxy_timeout
                    .map_or(default.timeout, Duration::from_secs),
            });
        }
        config.xclient_trusted = self.xclient_trusted.clone();
        config.xforward_trusted = self.xforward_trusted.clone();
        if !self.implicit_tls_listen.is_empty() && config.tls.is_none() {
            return Err("--implicit-tls-listen needs --tls-cert and --tls-key".into());
        }
        if self.has(MechanismChoice::External) && self.tls_client_ca.is_none() {
            return Err(
                "--auth-mechanism EXTERNAL needs --tls-client-ca to verify client certificates"
                    .into(),
            );
        }
        Ok(config)
    }

    /// The AUTH failure limiter of `--auth-rate-limit` and `--auth-limit-redis`.
    pub async fn auth_limiter(&self) -> Result<Option<SharedLimiter>, String> {
        const WINDOW: Duration = Duration::from_secs(600);
        let Limit(Some(max)) = self.auth_rate_limit else {
            return Ok(None);
        };
        Ok(Some(match &self.auth_limit_redis {
            Some(url) => smtp_core::auth::RedisLimiter::connect(url, max, WINDOW)
                .await
                .map_err(|e| format!("cannot use Redis {url}: {e}"))?
                .into(),
            None => MemoryLimiter::new(max, WINDOW).into(),
        }))
    }

    /// Registers the `--auth-mechanism` mechanisms over the `--auth-user` table.
    pub fn mechanisms<H: Handler>(&self, mut server: Server<H>) -> Result<Server<H>, String> {
        use MechanismChoice as M;
        let users = Arc::new(self.users());
        for &choice in &self.auth_mechanisms {
            let users = users.clone();
            server = match choice {
                M::ScramSha256 => server
                    .mechanism(Scram::sha256(users).plus_offered(self.has(M::ScramSha256Plus))),
                M::ScramSha256Plus => server.mechanism(Scram::sha256_plus(users)),
                M::ScramSha1 => {
                    server.mechanism(Scram::sha1(users).plus_offered(self.has(M::ScramSha1Plus)))
                }
                M::ScramSha1Plus => server.mechanism(Scram::sha1_plus(users)),
                M::CramMd5 => server.mechanism(CramMd5::new(users)),
                M::Anonymous => server.mechanism(Anonymous),
                M::Xoauth2 => server.mechanism(XOAuth2::new()),
                M::Oauthbearer => server.mechanism(OAuthBearer::new()),
                M::External => server.mechanism(External),
                M::Plain | M::Login => Ok(server),
            }
            .map_err(|e| e.to_string())?;
        }
        Ok(server)
    }
}
