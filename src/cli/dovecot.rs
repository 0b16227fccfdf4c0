//! `--auth-dovecot`: authentication handed to Dovecot's auth service.

use smtp_core::auth::dovecot::{DovecotAddress, DovecotAuth, DovecotOptions};
use smtp_core::{Handler, Server};

/// Flags of the Dovecot SASL back end.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Dovecot SASL")]
pub struct DovecotArgs {
    /// Hand AUTH to Dovecot's auth-client listener (unix:/PATH or HOST:PORT); its mechanisms
    /// replace the built-in ones of the same name. Dovecot must be up at startup.
    #[arg(long, value_name = "unix:/PATH|HOST:PORT", value_parser = parse_address)]
    auth_dovecot: Option<DovecotAddress>,
    /// Offer only these of Dovecot's mechanisms (comma-separated) [default: all it announces].
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        requires = "auth_dovecot"
    )]
    auth_dovecot_mechanisms: Vec<String>,
    /// Seconds Dovecot may take to answer one AUTH step before `454` [default: 30].
    #[arg(long, value_name = "SECS", requires = "auth_dovecot")]
    auth_dovecot_timeout: Option<u64>,
    /// Ask Dovecot not to apply its per-client failure penalty (tests only).
    #[arg(long, requires = "auth_dovecot")]
    auth_dovecot_no_penalty: bool,
}

fn parse_address(text: &str) -> Result<DovecotAddress, String> {
    text.parse()
        .map_err(|e: smtp_core::auth::dovecot::DovecotError| e.to_string())
}

impl DovecotArgs {
    /// Adds the mechanisms Dovecot offers to the server, when `--auth-dovecot` is given.
    pub async fn register<H: Handler>(&self, mut server: Server<H>) -> Result<Server<H>, String> {
        let Some(address) = &self.auth_dovecot else {
            return Ok(server);
        };
        let mut options = DovecotOptions::default();
        if let Some(secs) = self.auth_dovecot_timeout {
            options.response_timeout = std::time::Duration::from_secs(secs);
        }
        options.no_penalty = self.auth_dovecot_no_penalty;
        let dovecot = DovecotAuth::connect(address.clone(), options)
            .await
            .map_err(|e| format!("--auth-dovecot {address}: {e}"))?;
        let mechanisms = if self.auth_dovecot_mechanisms.is_empty() {
            dovecot.mechanisms()
        } else {
            dovecot
                .select(&self.auth_dovecot_mechanisms)
                .map_err(|e| format!("--auth-dovecot-mechanisms: {e}"))?
        };
        if mechanisms.is_empty() {
            return Err(format!(
                "--auth-dovecot {address}: Dovecot offers no mechanism"
            ));
        }
        for mechanism in mechanisms {
            server = server.mechanism(mechanism).map_err(|e| e.to_string())?;
        }
        Ok(server)
    }
}
