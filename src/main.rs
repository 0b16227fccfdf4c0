//! `smtpd`: a ready-to-run SMTP server. Without flags it listens on 127.0.0.1:8025 and prints
//! every message it receives. The flags are in `cli`; this file starts the runtime and the
//! server, and waits for a signal.

mod catcher;
mod cli;
mod http;
mod operate;

use std::process::ExitCode;

use clap::Parser;
use smtp_core::handlers::{Debugging, JetStream, Mailbox, Sink};
use smtp_core::{BodyMode, Envelope, Handler, Reply, Server, Session, TlsConfig};

use cli::{Cli, HandlerChoice, ListenAddr};

/// The handler chosen on the command line.
///
/// A hook's future lives inside every connection's future, idle or not, so the largest one
/// sets the memory of all connections: JetStream's publish (the NATS client's futures, several
/// KiB) and the Maildir file work are boxed, an allocation per message instead of kilobytes
/// per connection. Sink, the benchmark's handler, stays unboxed.
enum CliHandler {
    Debugging(Debugging),
    Sink(Sink),
    Maildir(Mailbox),
    JetStream(Box<JetStream>),
}

impl Handler for CliHandler {
    async fn handle_body(&self, session: &mut Session, envelope: &mut Envelope) -> BodyMode {
        match self {
            CliHandler::Debugging(h) => h.handle_body(session, envelope).await,
            CliHandler::Sink(h) => h.handle_body(session, envelope).await,
            CliHandler::Maildir(h) => Box::pin(h.handle_body(session, envelope)).await,
            CliHandler::JetStream(h) => Box::pin(h.handle_body(session, envelope)).await,
        }
    }

    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        match self {
            CliHandler::Debugging(h) => h.handle_data(session, envelope).await,
            CliHandler::Sink(h) => h.handle_data(session, envelope).await,
            CliHandler::Maildir(h) => Box::pin(h.handle_data(session, envelope)).await,
            CliHandler::JetStream(h) => Box::pin(h.handle_data(session, envelope)).await,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line: clap's first, and the possible values when it lists them.
            let text = e.to_string();
            let mut lines = text.lines();
            let first = lines
                .next()
                .unwrap_or("bad arguments")
                .trim_start_matches("error: ");
            let values = lines.find_map(|l| l.trim().strip_prefix("[possible values: "));
            return fail(match values {
                Some(values) => format!(
                    "{first}: expected one of {} (see --help)",
                    values.trim_end_matches(']')
                ),
                None => format!("{first} (see --help)"),
            });
        }
    };
    let filter = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    operate::init_logging(cli.operate.log_format, filter);
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
    let result = match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("smtpd: {message}");
    ExitCode::from(2)
}

async fn run(cli: Cli) -> Result<(), String> {
    let handler = match &cli.handler {
        HandlerChoice::Debugging => CliHandler::Debugging(Debugging::stdout()),
        HandlerChoice::Sink => CliHandler::Sink(Sink),
        HandlerChoice::Maildir(dir) => CliHandler::Maildir(
            Mailbox::new(dir).map_err(|e| format!("cannot use Maildir {}: {e}", dir.display()))?,
        ),
        HandlerChoice::JetStream => CliHandler::JetStream(Box::new(cli.nats.jetstream().await?)),
        HandlerChoice::Capture => return serve(&cli, cli.catcher.capture().await?).await,
    };
    serve(&cli, handler).await
}

/// Listens where the flags say, with `handler`, until a signal stops the server.
async fn serve<H: Handler>(cli: &Cli, handler: H) -> Result<(), String> {
    let mut config = cli.config()?;
    config.auth_limiter = cli.auth_limiter().await?;
    cli.operate.configure(&mut config);
    // The recorder goes in before the server starts, so that every metric reaches it.
    let status = operate::Status::default();
    if let Some(addr) = cli.operate.metrics_listen {
        let bound = operate::serve_endpoints(addr, status.clone()).await?;
        eprintln!("smtpd metrics on http://{bound}/metrics");
    }
    let tls = config.tls.clone();
    // Before the listening line: a supervisor may signal as soon as it reads that line.
    let mut signals = Signals::install();
    let server = cli.mechanisms(Server::new(handler, config))?;
    let mut server = cli.dovecot.register(server).await?;
    for addr in &cli.listen {
        let listened = match addr {
            ListenAddr::Tcp(tcp) => server.listen(tcp).await,
            ListenAddr::Unix(path) => server.listen_unix(path),
        };
        server = listened.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }
    for addr in &cli.implicit_tls_listen {
        server = server
            .listen_implicit_tls(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }
    let handle = server.start();
    status.serving();
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
    if signals.next_stop(tls.as_ref()).await == Stop::Drain {
        // Health checks fail at once; connections are still accepted until the load
        // balancer has seen that, then the server stops as on SIGINT.
        status.draining();
        let delay = cli.operate.drain_delay();
        tracing::info!(delay_secs = delay.as_secs(), "draining");
        // A SIGINT during the delay skips the rest of it.
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = signals.interrupt() => {}
        }
    }
    handle.shutdown().await;
    Ok(())
}

/// How a signal asks the server to stop.
#[derive(PartialEq, Eq)]
enum Stop {
    /// SIGINT: at once.
    Now,
    /// SIGTERM: after the drain delay.
    Drain,
}

/// The signals that stop the server or reload its certificate, registered once before the
/// server says it is listening: a signal that arrives before its handler is registered gets
/// the default action, and SIGTERM's default kills the process without a drain.
struct Signals {
    #[cfg(unix)]
    unix: Option<UnixSignals>,
}

#[cfg(unix)]
struct UnixSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl UnixSignals {
    /// None if any cannot be registered; SIGINT then falls back to `ctrl_c`.
    fn register() -> Option<UnixSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Some(UnixSignals {
            interrupt: signal(SignalKind::interrupt()).ok()?,
            terminate: signal(SignalKind::terminate()).ok()?,
            hangup: signal(SignalKind::hangup()).ok()?,
        })
    }
}

impl Signals {
    fn install() -> Signals {
        Signals {
            #[cfg(unix)]
            unix: UnixSignals::register(),
        }
    }

    /// Waits for SIGINT or SIGTERM. SIGHUP re-reads the TLS certificate and key meanwhile, so
    /// renewed certificates are served without a restart.
    async fn next_stop(&mut self, tls: Option<&TlsConfig>) -> Stop {
        #[cfg(unix)]
        if let Some(unix) = &mut self.unix {
            loop {
                tokio::select! {
                    _ = unix.interrupt.recv() => return Stop::Now,
                    _ = unix.terminate.recv() => return Stop::Drain,
                    _ = unix.hangup.recv() => match tls.map(TlsConfig::reload) {
                        Some(Ok(())) => tracing::info!("TLS certificate reloaded"),
                        Some(Err(e)) => tracing::error!("TLS certificate not reloaded: {e}"),
                        None => tracing::info!("SIGHUP ignored: no TLS certificate to reload"),
                    },
                }
            }
        }
        let _ = tls;
        self.interrupt().await;
        Stop::Now
    }

    /// Waits for SIGINT.
    async fn interrupt(&mut self) {
        #[cfg(unix)]
        if let Some(unix) = &mut self.unix {
            unix.interrupt.recv().await;
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
