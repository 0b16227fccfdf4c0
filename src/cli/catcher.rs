//! `--handler capture`: smtpd as a mail catcher for tests in any language, with an HTTP API.

use std::net::SocketAddr;

use smtp_core::Handler;

/// Flags of the mail catcher (`--handler capture`).
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Mail catcher (--handler capture)")]
pub struct CatcherArgs {
    /// Address of the catcher's HTTP API (required with --handler capture; port 0 picks one,
    /// printed as `smtpd API on http://ADDR`). It has no authentication: keep it on loopback
    /// or a private CI network.
    #[arg(long, value_name = "ADDR")]
    api_listen: Option<SocketAddr>,
    /// Messages the catcher keeps; the oldest go first.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    capture_max_messages: u64,
    /// Total bytes of the messages the catcher keeps; the oldest go first, and a larger
    /// message is refused with 552.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    capture_max_bytes: u64,
}

impl CatcherArgs {
    /// Whether the flags fit the handler: `--api-listen` goes only with `--handler capture`
    /// (which itself refuses to start without it, in `capture`).
    pub fn check(&self, capture: bool) -> Result<(), String> {
        if !capture && self.api_listen.is_some() {
            return Err("--api-listen is only for --handler capture".into());
        }
        Ok(())
    }

    /// The capturing handler; starts the HTTP API beside it.
    pub async fn capture(&self) -> Result<impl Handler + use<>, String> {
        let addr = self
            .api_listen
            .ok_or("--handler capture needs --api-listen ADDR, the address of its HTTP API")?;
        let clamp = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let (handler, api) = crate::catcher::start(
            addr,
            clamp(self.capture_max_messages),
            clamp(self.capture_max_bytes),
        )
        .await?;
        eprintln!("smtpd API on http://{api}");
        Ok(handler)
    }
}
