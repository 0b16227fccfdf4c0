//! `--handler capture`: smtpd as a mail catcher for tests in any language, with an HTTP API.

use smtp_core::Handler;

/// Flags of the mail catcher (`--handler capture`).
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Mail catcher (--handler capture)")]
pub struct CatcherArgs {}

impl CatcherArgs {
    /// The capturing handler; starts the HTTP API beside it.
    pub async fn capture(&self) -> Result<impl Handler + use<>, String> {
        Err::<smtp_core::testing::Accept, _>("--handler capture is not built yet".to_owned())
    }
}
