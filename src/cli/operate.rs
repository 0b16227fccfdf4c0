//! Flags for operators: metrics, health, log format, drain.

use std::net::SocketAddr;
use std::time::Duration;

use clap::ValueEnum;

/// Flags for running smtpd in production.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Operating")]
pub struct OperateArgs {
    /// Serve Prometheus metrics on GET /metrics, and GET /healthz and /readyz, at HOST:PORT
    /// (plain HTTP; keep it on a private address).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log lines as plain text or as JSON objects, one a line, for log shippers.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// After SIGTERM, seconds during which /healthz answers 503 but new connections are still
    /// accepted, so that a load balancer takes the instance out of rotation first.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    drain_delay: u64,
    /// After the drain delay, seconds a message transfer in progress may take to finish
    /// before its connection is closed [default: 30].
    #[arg(long, value_name = "SECS")]
    shutdown_grace: Option<u64>,
}

/// The `--log-format` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl OperateArgs {
    /// How long SIGTERM waits before the server stops accepting.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_secs(self.drain_delay)
    }

    /// Applies `--shutdown-grace`, when given.
    pub fn configure(&self, config: &mut smtp_core::Config) {
        if let Some(secs) = self.shutdown_grace {
            config.shutdown_grace = Duration::from_secs(secs);
        }
    }
}
