//! One connection: owns the socket, the buffers and the timers, and drives the session
//! through the protocol one command at a time.
//!
//! The rooms: `io` (buffers, timers, flushing), `phase` (where the protocol is), `hooks`
//! (calling the handler, panics caught), `commands` (dispatch, policy, HELO/EHLO/HELP/VRFY),
//! `transaction` (MAIL, RCPT), `body` (DATA, BDAT), `auth` (the AUTH exchange, limiter,
//! back-off and failure log), `starttls`, `proxy` (the PROXY header), `xclient` (a trusted proxy's client, XFORWARD's original client).
//!
//! Message bodies, DATA's and BDAT's alike, take one path: `handle_body` decides where the
//! bytes go (`envelope.content`, nowhere, or a `BodySink`), then `handle_data` (or in LMTP
//! `handle_lmtp_data`) answers. BDAT chunks are consumed whatever the reply, so the command
//! stream stays in step (RFC 3030 §2).
//!
//! Enhanced status codes (RFC 2034, `Config::enhanced_status_codes`): replies keep aiosmtpd's
//! texts, and when the option is on, `Io::push` puts an RFC 3463 code in front of every
//! 2xx, 4xx and 5xx reply that has none, chosen by the command answered and the reply code
//! (`proto::enhanced_code`): `250` after MAIL is `2.1.0`, after RCPT `2.1.5`, otherwise
//! `2.0.0`; `500` is `5.5.2`, `501` `5.5.4`, `502`/`503` `5.5.1`, `552` `5.3.4`; a code whose
//! reason only a hook knows (`550`, `451`…) gets `X.0.0`. The greeting, 3xx replies and the
//! replies to HELO, EHLO and LHLO get none. Replies with a code of their own keep it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, info, warn};

use crate::auth::registry::Registry;
use crate::config::Config;
use crate::envelope::Envelope;
use crate::governance::{Budget, Limits};
use crate::handler::Handler;
use crate::metrics::{self, ListenerKind};
use crate::proto::{Bdat, Frame, LineFramer, Verb, replies};
use crate::session::{Peer, Session};
use crate::stream::Transport;

mod auth;
mod body;
mod commands;
pub(crate) mod hooks;
mod io;
pub(crate) mod observe;
mod phase;
mod proxy;
mod starttls;
mod transaction;
mod xclient;

use io::{AUTH_LINE_OVERHEAD, Filled, Io};
use phase::Phase;
use xclient::Trust;

/// What all connections of a server share, read-only.
pub(crate) struct Shared<H> {
    pub(crate) handler: H,
    pub(crate) config: Config,
    pub(crate) registry: Registry<H>,
    pub(crate) hostname: Arc<str>,
    /// Sees each connection's dialogue (the test kit's transcripts).
    pub(crate) observer: Option<Arc<dyn observe::Observer>>,
}

/// What the connection does after a command.
enum Next {
    Continue,
    Data,
    Bdat(Bdat),
    StartTls,
    Close,
}

/// One connection's protocol state.
pub(crate) struct Connection<H: Handler, S> {
    shared: Arc<Shared<H>>,
    io: Io<S>,
    framer: LineFramer,
    line: Vec<u8>,
    session: Session,
    envelope: Envelope,
    phase: Phase,
    bogus: usize,
    calls: HashMap<Verb, usize>,
    auth_failures: u32,
    /// `handle_starttls` refused the handshake's result: only QUIT is served.
    tls_refused: bool,
    /// What the client may send (XCLIENT, XFORWARD), by the address it came from.
    trust: Trust,
    transaction: tracing::Span,
    budget: Budget,
}

impl<H: Handler, S: Transport> Connection<H, S> {
    pub(crate) fn new(
        shared: Arc<Shared<H>>,
        stream: S,
        peer: Peer,
        shutdown: CancellationToken,
        kill: CancellationToken,
    ) -> Self {
        let config = &shared.config;
        let frame_limit = config
            .max_command_line
            .max(config.max_auth_line + AUTH_LINE_OVERHEAD)
            + 64;
        let mut io = Io::new(
            stream,
            config.idle_timeout,
            config.max_auth_line,
            config.enhanced_status_codes,
            shutdown,
            kill,
        );
        io.set_transcriber(shared.observer.as_ref().map(|o| o.open(&peer)));
        let session = Session::new(peer, shared.hostname.clone());
        Connection {
            io,
            framer: LineFramer::new(frame_limit),
            line: Vec::new(),
            session,
            envelope: Envelope::default(),
            phase: Phase::default(),
            bogus: 0,
            calls: HashMap::new(),
            auth_failures: 0,
            tls_refused: false,
            trust: Trust::default(),
            transaction: tracing::Span::none(),
            budget: Budget::default(),
            shared,
        }
    }

    /// Serves the connection until it closes. `implicit_tls` handshakes before the greeting.
    ///
    /// Not an `async fn`: one taking `self` by value keeps the argument and its moved copy
    /// side by side in the future, two connections per task. The block keeps it once.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would hold the connection twice"
    )]
    pub(crate) fn run(
        mut self,
        listener: ListenerKind,
        implicit_tls: bool,
    ) -> impl Future<Output = ()> + Send {
        async move { self.run_here(listener, implicit_tls).await }
    }

    async fn run_here(&mut self, listener: ListenerKind, implicit_tls: bool) {
        let _open = metrics::Open::new(listener, implicit_tls);
        let via = self.session.peer().clone();
        let id = self.session.id();
        if self.shared.config.proxy_protocol.is_some() {
            let span = tracing::info_span!("proxy", session = %id, from = %via);
            // Behind implicit TLS the bytes after the header are the TLS handshake, which the
            // TLS stream must read itself: read exactly the header there.
            if !Box::pin(self.proxy_header(implicit_tls).instrument(span)).await {
                self.io.close().await;
                return;
            }
        }
        let span = tracing::info_span!(
            "smtp",
            session = %id,
            peer = %self.session.peer(),
            client = tracing::field::Empty
        );
        // A method on `&mut self`, not an `async move` block: the block would hold a second
        // copy of the connection in every task.
        self.session_loop(implicit_tls, via).instrument(span).await
    }

    async fn session_loop(&mut self, implicit_tls: bool, via: Peer) {
        info!("connected");
        self.trust = Trust::of(self.session.peer(), &self.shared.config);
        if self.session.proxy_data().is_some() {
            info!(%via, "via PROXY protocol");
        }
        if implicit_tls && !Box::pin(self.start_tls(true)).await {
            return;
        }
        let config = &self.shared.config;
        self.io
            .push(&replies::greeting(&config.hostname, &config.ident));
        self.phase.greeted();
        let kill = self.io.kill_signal().clone();
        tokio::select! {
            biased;
            () = self.serve() => {}
            // A hook that never returns must not hold shutdown past its grace period:
            // a serve loop that can still read saw the kill first and said goodbye.
            () = kill.cancelled() => warn!(phase = self.phase.name(), "closed while a hook was still running"),
        }
        self.io.close().await;
        info!("disconnected");
    }

    /// Records the server address the client reached (`Session::local_addr`).
    pub(crate) fn reached(&mut self, local: Option<std::net::SocketAddr>) {
        self.session.set_local_addr(local);
    }

    /// Counts the client by the address in its PROXY header (see `Budget`).
    pub(crate) fn count_proxied_client(&mut self, limits: Arc<Limits>) {
        self.budget.count_proxied_client(limits);
    }

    async fn serve(&mut self) {
        loop {
            loop {
                // After `Reply::disconnect()` no pipelined command runs.
                if self.io.disconnected() {
                    return;
                }
                if self.io.output_full() && self.io.flush().await.is_err() {
                    info!("client does not read its replies; closing");
                    return;
                }
                let frame = self.framer.next_frame(self.io.pending());
                let next = match frame {
                    Frame::Incomplete { discard } => {
                        self.io.consume(discard);
                        break;
                    }
                    Frame::TooLong { prefix, consumed } => {
                        let auth = prefix.len() >= 5 && prefix[..5].eq_ignore_ascii_case(b"AUTH ");
                        self.io.consume(consumed);
                        self.io.answering(Verb::Unknown);
                        self.io.push(&if auth {
                            replies::AUTH_LINE_TOO_LONG
                        } else {
                            replies::LINE_TOO_LONG
                        });
                        Next::Continue
                    }
                    Frame::Line { len, consumed } => {
                        let mut line = std::mem::take(&mut self.line);
                        line.clear();
                        line.extend_from_slice(&self.io.pending()[..len]);
                        self.io.consume(consumed);
                        self.io.observe(&line);
                        let next = self.command(&line).await;
                        self.line = line;
                        next
                    }
                };
                match next {
                    Next::Continue => {}
                    Next::Close => return,
                    Next::Data => {
                        if !self.data().await {
                            return;
                        }
                    }
                    Next::Bdat(chunk) => {
                        if !self.bdat(chunk).await {
                            return;
                        }
                    }
                    Next::StartTls => {
                        if !Box::pin(self.start_tls(false)).await {
                            return;
                        }
                    }
                }
            }
            match self.io.fill(true).await {
                Filled::Data => {}
                Filled::Closed => return,
                Filled::Timeout => return self.timed_out(),
                Filled::Shutdown => return self.shutting_down(),
            }
        }
    }

    fn timed_out(&mut self) {
        let host = &self.shared.config.hostname;
        if self.io.rate_expired() {
            info!("DATA slower than the minimum rate");
            metrics::data_rate_cutoff();
            self.io.push(&replies::too_slow(host));
            return;
        }
        info!(phase = self.phase.name(), "idle timeout");
        metrics::timeout(self.phase.name());
        self.io.push(&replies::timeout_exceeded(host));
    }

    fn shutting_down(&mut self) {
        let host = &self.shared.config.hostname;
        self.io.push(&replies::shutting_down(host));
    }

    /// Ends the mail transaction: a new envelope, and a BDAT body in progress dropped.
    fn reset_envelope(&mut self) {
        self.envelope = Envelope::default();
        self.transaction = tracing::Span::none();
        self.phase
            .end_transaction(self.session.host_name().is_some());
    }
}
