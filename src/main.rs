//! `smtpd`: a ready-to-run SMTP server. Without flags it listens on 127.0.0.1:8025 and prints
//! every message it receives.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use smtp_core::handlers::{Debugging, Mailbox, Sink};
use smtp_core::{
    BodyMode, Config, Envelope, Handler, Reply, Server, Session, StaticUsers, TlsConfig,
};

/// An SMTP server: a debugging mail catcher, a sink, or a Maildir delivery agent.
#[derive(Parser, Debug)]
#[command(name = "smtpd", version, about)]
struct Cli {
    /// Address to listen on: HOST:PORT, or unix:/PATH for a Unix-domain socket (repeatable).
    #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1:8025", value_parser = parse_listen)]
    listen: Vec<ListenAddr>,
    /// Address for an implicit-TLS listener (submissions, RFC 8314; repeatable). Needs --tls-cert.
    #[arg(long = "implicit-tls-listen", value_name = "ADDR")]
    implicit_tls_listen: Vec<SocketAddr>,
    /// Host name in the greeting and EHLO reply [default: this machine's host name].
    #[arg(long)]
    hostname: Option<String>,
    /// Greeting text after the host name.
    #[arg(long)]
    ident: Option<String>,
    /// What to do with messages: debugging (print them), sink (drop them), maildir:DIR.
    #[arg(long, value_name = "HANDLER", default_value = "debugging", value_parser = parse_handler)]
    handler: HandlerChoice,
    /// Largest message in bytes; 0 means no limit.
    #[arg(long, value_name = "BYTES", default_value_t = smtp_core::config::DEFAULT_MAX_MESSAGE_SIZE)]
    size_limit: usize,
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
    /// Idle timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    timeout: u64,
    /// Connections served at once (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_connections: usize,
    /// Connections served at once from one client address (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 50)]
    max_connections_per_ip: usize,
    /// Recipients per message.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_recipients: usize,
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
    /// Also offer this mechanism (repeatable): SCRAM-SHA-256, SCRAM-SHA-256-PLUS, SCRAM-SHA-1,
    /// SCRAM-SHA-1-PLUS, CRAM-MD5 (legacy), ANONYMOUS, XOAUTH2, OAUTHBEARER, EXTERNAL.
    /// SCRAM and CRAM-MD5 check --auth-user; XOAUTH2 and OAUTHBEARER take its password as the
    /// user's token; EXTERNAL accepts a client certificate verified against --tls-client-ca.
    #[arg(long = "auth-mechanism", value_name = "MECH", value_parser = parse_mechanism)]
    auth_mechanisms: Vec<String>,
    /// Pause before the first AUTH failure reply on a connection, doubled for each further
    /// failure (0: none).
    #[arg(long, value_name = "MILLIS", default_value_t = 1000)]
    auth_failure_delay_ms: u64,
    /// AUTH failures per client address and per user in 10 minutes before `454` (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 10)]
    auth_rate_limit: u32,
    /// Name the user in the log line of each AUTH failure (default: a fingerprint, since
    /// users often type a password into the user field).
    #[arg(long)]
    log_auth_usernames: bool,
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
    /// Require a PROXY protocol header (v1 or v2) before the greeting on every connection.
    #[arg(long)]
    proxy_protocol: bool,
    /// A network allowed to send PROXY headers, e.g. 10.0.0.0/8 (repeatable; default: any).
    #[arg(
        long = "proxy-trusted",
        value_name = "CIDR",
        requires = "proxy_protocol"
    )]
    proxy_trusted: Vec<smtp_core::Cidr>,
    /// Seconds a PROXY header may take to arrive.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 5,
        requires = "proxy_protocol"
    )]
    proxy_timeout: u64,
    /// Messages per connection before `421` (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_messages_per_connection: usize,
    /// Message bytes per connection before `421` (0: no limit).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    max_bytes_per_connection: u64,
    /// Slowest DATA transfer tolerated after a 10-second grace, in bytes per second (0: none).
    #[arg(long, value_name = "BYTES_PER_SEC", default_value_t = 0)]
    min_data_rate: u64,
    /// Worker threads [default: the CPUs this process may use]; 1 runs everything on one thread.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// A `--listen` address.
#[derive(Clone, Debug)]
enum ListenAddr {
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

#[derive(Clone, Debug)]
enum HandlerChoice {
    Debugging,
    Sink,
    Maildir(PathBuf),
}

fn parse_handler(s: &str) -> Result<HandlerChoice, String> {
    match s {
        "debugging" => Ok(HandlerChoice::Debugging),
        "sink" => Ok(HandlerChoice::Sink),
        _ => match s.strip_prefix("maildir:") {
            Some(dir) if !dir.is_empty() => Ok(HandlerChoice::Maildir(dir.into())),
            _ => Err("expected debugging, sink or maildir:DIR".into()),
        },
    }
}

const CLI_MECHANISMS: [&str; 11] = [
    "PLAIN",
    "LOGIN",
    "SCRAM-SHA-256",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1",
    "SCRAM-SHA-1-PLUS",
    "CRAM-MD5",
    "ANONYMOUS",
    "XOAUTH2",
    "OAUTHBEARER",
    "EXTERNAL",
];

fn parse_mechanism(s: &str) -> Result<String, String> {
    let name = s.to_ascii_uppercase();
    if CLI_MECHANISMS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(format!("expected one of {}", CLI_MECHANISMS.join(", ")))
    }
}

/// Registers the `--auth-mechanism` mechanisms over the `--auth-user` table.
fn with_mechanisms<H: Handler>(mut server: Server<H>, cli: &Cli) -> Result<Server<H>, String> {
    use smtp_core::auth::mechanisms::{Anonymous, CramMd5, External, OAuthBearer, Scram, XOAuth2};
    if cli.auth_mechanisms.iter().any(|m| m == "EXTERNAL") && cli.tls_client_ca.is_none() {
        return Err(
            "--auth-mechanism EXTERNAL needs --tls-client-ca to verify client certificates".into(),
        );
    }
    let users = Arc::new(static_users(cli));
    let has = |name: &str| cli.auth_mechanisms.iter().any(|m| m == name);
    for name in &cli.auth_mechanisms {
        let users = users.clone();
        server = match name.as_str() {
            "SCRAM-SHA-256" => {
                server.mechanism(Scram::sha256(users).plus_offered(has("SCRAM-SHA-256-PLUS")))
            }
            "SCRAM-SHA-256-PLUS" => server.mechanism(Scram::sha256_plus(users)),
            "SCRAM-SHA-1" => {
                server.mechanism(Scram::sha1(users).plus_offered(has("SCRAM-SHA-1-PLUS")))
            }
            "SCRAM-SHA-1-PLUS" => server.mechanism(Scram::sha1_plus(users)),
            "CRAM-MD5" => server.mechanism(CramMd5::new(users)),
            "ANONYMOUS" => server.mechanism(Anonymous),
            "XOAUTH2" => server.mechanism(XOAuth2::new()),
            "OAUTHBEARER" => server.mechanism(OAuthBearer::new()),
            "EXTERNAL" => server.mechanism(External),
            _ => Ok(server),
        }
        .map_err(|e| e.to_string())?;
    }
    Ok(server)
}

/// The binary's authenticator: the `--auth-user` table, and with `--auth-mechanism EXTERNAL`
/// any client certificate that TLS verified against `--tls-client-ca` (acting as itself).
struct CliAuthenticator {
    users: StaticUsers,
    external: bool,
}

impl smtp_core::Authenticator for CliAuthenticator {
    async fn authenticate(
        &self,
        session: &Session,
        envelope: &Envelope,
        mechanism: &str,
        auth_data: &smtp_core::AuthData,
    ) -> smtp_core::AuthResult {
        match auth_data {
            smtp_core::AuthData::External {
                authzid,
                certificates,
            } => {
                if self.external && authzid.is_none() && !certificates.is_empty() {
                    smtp_core::AuthResult::success_with(auth_data.clone())
                } else {
                    smtp_core::AuthResult::failure()
                }
            }
            _ => {
                self.users
                    .authenticate(session, envelope, mechanism, auth_data)
                    .await
            }
        }
    }
}

fn static_users(cli: &Cli) -> StaticUsers {
    cli.auth_users
        .iter()
        .fold(StaticUsers::new(), |users, (u, p)| {
            users.user(u.as_bytes(), p.as_bytes())
        })
}

async fn auth_limiter(cli: &Cli) -> Result<Option<Arc<dyn smtp_core::auth::AuthLimiter>>, String> {
    const WINDOW: Duration = Duration::from_secs(600);
    if cli.auth_rate_limit == 0 {
        return Ok(None);
    }
    Ok(Some(match &cli.auth_limit_redis {
        Some(url) => Arc::new(
            smtp_core::auth::RedisLimiter::connect(url, cli.auth_rate_limit, WINDOW)
                .await
                .map_err(|e| format!("cannot use Redis {url}: {e}"))?,
        ),
        None => Arc::new(smtp_core::auth::MemoryLimiter::new(
            cli.auth_rate_limit,
            WINDOW,
        )),
    }))
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok((user.into(), password.into()))
        }
        _ => Err("expected USER:PASSWORD".into()),
    }
}

/// The handler chosen on the command line.
enum CliHandler {
    Debugging(Debugging),
    Sink(Sink),
    Maildir(Mailbox),
}

impl Handler for CliHandler {
    async fn handle_body(&self, session: &mut Session, envelope: &mut Envelope) -> BodyMode {
        match self {
            CliHandler::Debugging(h) => h.handle_body(session, envelope).await,
            CliHandler::Sink(h) => h.handle_body(session, envelope).await,
            CliHandler::Maildir(h) => h.handle_body(session, envelope).await,
        }
    }

    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        match self {
            CliHandler::Debugging(h) => h.handle_data(session, envelope).await,
            CliHandler::Sink(h) => h.handle_data(session, envelope).await,
            CliHandler::Maildir(h) => h.handle_data(session, envelope).await,
        }
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("smtpd: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ");
            return fail(format!("{first} (see --help)"));
        }
    };
    let filter = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One core (or --threads 1): a current-thread runtime, which skips the work-stealing
    // scheduler's cross-thread wake-ups.
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    runtime.block_on(run(cli))
}

fn config(cli: &Cli) -> Result<Config, String> {
    let mut config = Config::default();
    if let Some(hostname) = &cli.hostname {
        config.hostname = hostname.clone();
    }
    if let Some(ident) = &cli.ident {
        config.ident = ident.clone();
    }
    config.max_message_size = (cli.size_limit > 0).then_some(cli.size_limit);
    config.smtputf8 = cli.smtputf8;
    config.lmtp = cli.lmtp;
    config.chunking = !cli.no_chunking;
    config.dsn = !cli.no_dsn;
    config.enhanced_status_codes = cli.enhanced_status_codes;
    config.idle_timeout = Duration::from_secs(cli.timeout);
    config.max_connections = (cli.max_connections > 0).then_some(cli.max_connections);
    config.max_connections_per_ip =
        (cli.max_connections_per_ip > 0).then_some(cli.max_connections_per_ip);
    config.max_recipients = cli.max_recipients;
    config.auth_required = cli.auth_required;
    config.auth_require_tls = !cli.no_auth_require_tls;
    config.auth_exclude_mechanism = cli.auth_exclude.clone();
    config.auth_failure_delay = Duration::from_millis(cli.auth_failure_delay_ms);
    config.log_auth_usernames = cli.log_auth_usernames;
    config.require_starttls = cli.require_starttls;
    let external = cli.auth_mechanisms.iter().any(|m| m == "EXTERNAL");
    if !cli.auth_users.is_empty() || external {
        config.authenticator = Some(
            CliAuthenticator {
                users: static_users(cli),
                external,
            }
            .into(),
        );
    }
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        let mut builder = TlsConfig::builder(cert, key);
        if let Some(ca) = &cli.tls_client_ca {
            builder = builder.client_ca(ca);
        }
        config.tls = Some(builder.build().map_err(|e| e.to_string())?);
    }
    if cli.proxy_protocol {
        config.proxy_protocol = Some(smtp_core::ProxyProtocol {
            timeout: Duration::from_secs(cli.proxy_timeout),
            trusted: cli.proxy_trusted.clone(),
        });
    }
    config.max_messages_per_connection =
        (cli.max_messages_per_connection > 0).then_some(cli.max_messages_per_connection);
    config.max_bytes_per_connection =
        (cli.max_bytes_per_connection > 0).then_some(cli.max_bytes_per_connection);
    config.min_data_rate = (cli.min_data_rate > 0).then(|| smtp_core::MinDataRate {
        bytes_per_second: cli.min_data_rate,
        ..Default::default()
    });
    if !cli.implicit_tls_listen.is_empty() && config.tls.is_none() {
        return Err("--implicit-tls-listen needs --tls-cert and --tls-key".into());
    }
    Ok(config)
}

async fn run(cli: Cli) -> ExitCode {
    let mut config = match config(&cli) {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    config.auth_limiter = match auth_limiter(&cli).await {
        Ok(limiter) => limiter,
        Err(e) => return fail(e),
    };
    let handler = match &cli.handler {
        HandlerChoice::Debugging => CliHandler::Debugging(Debugging::stdout()),
        HandlerChoice::Sink => CliHandler::Sink(Sink),
        HandlerChoice::Maildir(dir) => match Mailbox::new(dir) {
            Ok(mailbox) => CliHandler::Maildir(mailbox),
            Err(e) => return fail(format!("cannot use Maildir {}: {e}", dir.display())),
        },
    };
    let tls = config.tls.clone();
    let mut server = match with_mechanisms(Server::new(handler, config), &cli) {
        Ok(server) => server,
        Err(e) => return fail(e),
    };
    for addr in &cli.listen {
        let listened = match addr {
            ListenAddr::Tcp(tcp) => server.listen(tcp).await,
            ListenAddr::Unix(path) => server.listen_unix(path),
        };
        server = match listened {
            Ok(server) => server,
            Err(e) => return fail(format!("cannot listen on {addr}: {e}")),
        };
    }
    for addr in &cli.implicit_tls_listen {
        server = match server.listen_implicit_tls(addr).await {
            Ok(server) => server,
            Err(e) => return fail(format!("cannot listen on {addr}: {e}")),
        };
    }
    let handle = server.start();
    let unix = cli
        .listen
        .iter()
        .filter(|a| matches!(a, ListenAddr::Unix(_)));
    let addrs: Vec<String> = handle
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .chain(unix.map(ToString::to_string))
        .collect();
    eprintln!("smtpd listening on {}", addrs.join(", "));
    wait_for_signal(tls).await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}

/// Waits for SIGINT or SIGTERM. SIGHUP re-reads the TLS certificate and key, so renewed
/// certificates are served without a restart.
async fn wait_for_signal(tls: Option<TlsConfig>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return,
                    _ = term.recv() => return,
                    _ = hup.recv() => match tls.as_ref().map(TlsConfig::reload) {
                        Some(Ok(())) => tracing::info!("TLS certificate reloaded"),
                        Some(Err(e)) => tracing::error!("TLS certificate not reloaded: {e}"),
                        None => tracing::info!("SIGHUP ignored: no TLS certificate to reload"),
                    },
                }
            }
        }
    }
    let _ = tls;
    let _ = tokio::signal::ctrl_c().await;
}
