//! Command line of the load generator.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// SMTP load generator: N concurrent connections against one server on loopback, one JSON line
/// per run on stdout. Bounded: every run stops after --count transactions or --duration seconds,
/// and every transaction has a timeout.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version)]
pub struct Args {
    /// What each connection does.
    #[arg(value_enum)]
    pub workload: Workload,
    /// Server address (loopback only).
    #[arg(long, default_value = "127.0.0.1:2525")]
    pub addr: SocketAddr,
    /// Transactions to measure: messages, or connections for the per-connection workloads.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    pub count: u64,
    /// Concurrent connections.
    #[arg(short = 'c', long, default_value_t = 20)]
    pub concurrency: usize,
    /// Unmeasured transactions before the measured run (on their own connections).
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Message size including headers, e.g. 1K, 10M [default: 1K; 10M for `big`].
    #[arg(long, value_parser = parse_size)]
    pub size: Option<usize>,
    /// Send MAIL, RCPT and DATA in one write, and the body with the next MAIL/RCPT/DATA
    /// (RFC 2920), when the server offers PIPELINING.
    #[arg(long)]
    pub pipeline: bool,
    /// User for AUTH PLAIN and SCRAM.
    #[arg(long, default_value = "user")]
    pub user: String,
    /// Password for AUTH PLAIN and SCRAM.
    #[arg(long, default_value = "pass")]
    pub pass: String,
    /// PEM certificates to verify the server's certificate against (the TLS workloads).
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Name the server's certificate must carry.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// Resume TLS sessions (TLS 1.3 tickets) instead of a full handshake per connection.
    #[arg(long)]
    pub resume: bool,
    /// Open loop: offer this many transactions per second, whatever the server's pace; latency
    /// is measured from each transaction's scheduled start.
    #[arg(long, value_name = "PER_SEC")]
    pub rate: Option<f64>,
    /// Raise the offered rate from --rate (default 2000/s) by --ramp-factor per step until the
    /// throughput stops growing; one JSON line per step, then one for the saturation point.
    #[arg(long)]
    pub ramp: bool,
    /// Rate multiplier between ramp steps.
    #[arg(long, default_value_t = 1.25)]
    pub ramp_factor: f64,
    /// Seconds of offered load per ramp step.
    #[arg(long, default_value_t = 1.0)]
    pub ramp_step_secs: f64,
    /// Server process whose CPU time and peak RSS (VmHWM) to report.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Start no transaction after this many seconds of a run (the run then reports what it did).
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Seconds one transaction (a message, or a whole connection) may take.
    #[arg(long, default_value_t = 10.0)]
    pub op_timeout: f64,
    /// Stop the run after this many failed transactions.
    #[arg(long, default_value_t = 100)]
    pub max_failures: u64,
    /// Runtime threads: 1 is tokio's current-thread runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Label copied into the JSON line.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// What each connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// EHLO once, then MAIL/RCPT/DATA repeated on the same connection.
    Keepalive,
    /// As keepalive, with AUTH PLAIN once per connection.
    KeepaliveAuth,
    /// One connection per message: connect, EHLO, MAIL/RCPT/DATA, QUIT.
    ConnPerMsg,
    /// Connect, EHLO, AUTH PLAIN, QUIT.
    ConnAuth,
    /// Keepalive with 10 MiB messages.
    Big,
    /// Connect, EHLO, STARTTLS, handshake, EHLO, AUTH PLAIN, QUIT.
    StarttlsAuth,
    /// Connect to an implicit-TLS port, handshake, EHLO, AUTH PLAIN, QUIT.
    ImplicitTlsAuth,
    /// Connect, EHLO, AUTH SCRAM-SHA-256, QUIT.
    Scram,
}

impl Workload {
    /// Whether one transaction is a message on a kept-alive connection.
    pub fn keeps_alive(self) -> bool {
        matches!(self, Self::Keepalive | Self::KeepaliveAuth | Self::Big)
    }

    /// Whether a transaction carries a message (the others are a connection each).
    pub fn sends_mail(self) -> bool {
        self.keeps_alive() || self == Self::ConnPerMsg
    }

    /// Whether the workload speaks TLS.
    pub fn tls(self) -> bool {
        matches!(self, Self::StarttlsAuth | Self::ImplicitTlsAuth)
    }

    /// The workload's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Keepalive => "keepalive",
            Self::KeepaliveAuth => "keepalive-auth",
            Self::ConnPerMsg => "conn-per-msg",
            Self::ConnAuth => "conn-auth",
            Self::Big => "big",
            Self::StarttlsAuth => "starttls-auth",
            Self::ImplicitTlsAuth => "implicit-tls-auth",
            Self::Scram => "scram",
        }
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let (num, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1024),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<usize>()
        .map(|n| n * mult)
        .map_err(|e| format!("size `{s}`: {e}"))
}
