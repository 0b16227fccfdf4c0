//! Flags for operators: metrics, health, log format, drain.

/// Flags for running smtpd in production.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Operating")]
pub struct OperateArgs {}
