//! `--auth-dovecot`: authentication handed to Dovecot's auth service.

use smtp_core::{Handler, Server};

/// Flags of the Dovecot SASL back end.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Dovecot SASL")]
pub struct DovecotArgs {}

impl DovecotArgs {
    /// Adds the mechanisms Dovecot offers to the server, when `--auth-dovecot` is given.
    pub async fn register<H: Handler>(&self, server: Server<H>) -> Result<Server<H>, String> {
        Ok(server)
    }
}
