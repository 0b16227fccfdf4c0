//! `--handler capture`: smtpd as a mail catcher for tests in any language, with an HTTP API.

use std::net::SocketAddr;

use smtp_core::Handler;

/// Flags of the mail catcher (`--handler capture`).
#[derive(Debug)]
pub struct CatcherArgs(Flags);

#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Mail catcher (--handler capture)")]
struct Flags {
    /// Whether `--handler` is `capture`: set by clap while parsing, because `Cli` takes the
    /// handler out of the matches before these flags are read.
    #[arg(
        long = "handler-is-capture",
        hide = true,
        default_value_if("handler", "capture", "true")
    )]
    handler_is_capture: bool,
    /// Address of the catcher's HTTP API (required with --handler capture; port 0 picks one,
    /// printed as `smtpd API on http://ADDR`).
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

impl clap::Args for CatcherArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Flags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Flags::augment_args_for_update(cmd)
    }
}

impl clap::FromArgMatches for CatcherArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<CatcherArgs, clap::Error> {
        let flags = Flags::from_arg_matches(matches)?;
        let wrong = match (flags.handler_is_capture, flags.api_listen) {
            (true, None) => {
                "--handler capture needs --api-listen ADDR, the address of its HTTP API"
            }
            (false, Some(_)) => "--api-listen is only for --handler capture",
            _ => return Ok(CatcherArgs(flags)),
        };
        Err(clap::Error::raw(
            clap::error::ErrorKind::ArgumentConflict,
            format!("{wrong}\n"),
        ))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl CatcherArgs {
    /// The capturing handler; starts the HTTP API beside it.
    pub async fn capture(&self) -> Result<impl Handler + use<>, String> {
        let flags = &self.0;
        let addr = flags
            .api_listen
            .ok_or("--handler capture needs --api-listen ADDR, the address of its HTTP API")?;
        let clamp = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let (handler, api) = crate::catcher::start(
            addr,
            clamp(flags.capture_max_messages),
            clamp(flags.capture_max_bytes),
        )
        .await?;
        eprintln!("smtpd API on http://{api}");
        Ok(handler)
    }
}
