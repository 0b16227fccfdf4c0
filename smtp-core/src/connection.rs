//! One connection: owns the socket, the buffers and the timers, and drives the session
//! through the protocol one command at a time.
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
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::{Instant, Sleep, sleep_until, timeout};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{Instrument as _, debug, info, warn};

use crate::auth::{AuthIo, AuthServer, LimitKey, MechanismEntry, ResponseLine};
use crate::body::BodyMode;
use crate::governance::{Budget, DataRate};
use crate::handler::{Handler, HookError};
use crate::proto::params::{mail_dsn_param, rcpt_dsn_param};
use crate::proto::proxy::ProxyParse;
use crate::proto::{
    Bdat, DataDecoder, DataError, Frame, LineFramer, MailDsn, PathError, RcptDsn, Reply, Verb,
    enhanced_code, parse_bdat, parse_command, parse_path,
};
use crate::server::Shared;
use crate::session::{BodyType, Envelope, Peer, Session};
use crate::stream::{Stream, Transport};
use crate::tls::TlsInfo;

const READ_CHUNK: usize = 16 * 1024;
/// The first read buffer of a connection. It doubles, up to `MAX_READ`, each time a read fills
/// it, so idle and command-only connections stay small and bulk transfers read in large pieces.
const MIN_READ: usize = 1024;
const MAX_READ: usize = 64 * 1024;
/// Room on an AUTH command line around the initial response: `AUTH `, the name, a space.
const AUTH_LINE_OVERHEAD: usize = 32;

/// How a read ended.
enum Filled {
    Data,
    Closed,
    Timeout,
    Shutdown,
}

/// What the connection does after a command.
enum Next {
    Continue,
    Data,
    Bdat(Bdat),
    StartTls,
    Close,
}

/// A message body in progress, DATA's or BDAT's: where its bytes go.
struct Body {
    mode: BodyMode,
    /// Decoded octets so far.
    size: usize,
    /// A sink's `write` or `finish` failed: the rest is dropped and the message refused.
    failed: bool,
}

impl Body {
    async fn write(&mut self, content: &mut Vec<u8>, bytes: &[u8]) {
        self.size += bytes.len();
        match &mut self.mode {
            BodyMode::Buffer => content.extend_from_slice(bytes),
            BodyMode::Discard => {}
            BodyMode::Stream(sink) => {
                if !self.failed && !bytes.is_empty() && sink.write(bytes).await.is_err() {
                    self.failed = true;
                }
            }
        }
    }

    /// Finishes a complete body; false when it could not be stored.
    async fn finish(&mut self) -> bool {
        if let BodyMode::Stream(sink) = &mut self.mode
            && !self.failed
            && sink.finish().await.is_err()
        {
            self.failed = true;
        }
        !self.failed
    }
}

/// A BDAT transaction after its first chunk.
struct Chunking {
    body: Body,
    /// Octets received so far, counted against the size limit.
    size: usize,
    /// The size limit was passed: every further chunk is consumed and refused.
    too_big: bool,
}

/// The socket side: buffered input and output, the idle deadline, shutdown signals.
pub(crate) struct Io<S> {
    stream: Stream<S>,
    inbuf: Vec<u8>,
    start: usize,
    outbuf: Vec<u8>,
    deadline: Instant,
    idle_timeout: std::time::Duration,
    shutdown: CancellationToken,
    kill: CancellationToken,
    /// One timer and one wait per signal for the whole connection, not one per read: they are
    /// registered once, and the timer is re-armed only when it fires early (`fill`).
    timer: std::pin::Pin<Box<Sleep>>,
    armed: Instant,
    shutdown_wait: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
    kill_wait: std::pin::Pin<Box<WaitForCancellationFutureOwned>>,
    read_size: usize,
    auth_framer: LineFramer,
    /// The minimum rate of the DATA transfer in progress, if one is configured.
    rate: Option<DataRate>,
    /// Whether replies get enhanced status codes (`Config::enhanced_status_codes`).
    enhanced: bool,
    /// The command being answered, which decides the enhanced code; `None` before the first.
    verb: Option<Verb>,
    /// Why a read inside an AUTH exchange ended without a line: the mechanism only sees a
    /// lost connection, but a timeout or a shutdown still owes the client its 421.
    auth_interrupted: Option<Filled>,
}

impl<S: Transport> Io<S> {
    fn push(&mut self, reply: &Reply) {
        let reply = self.enhance(reply);
        debug!(reply = %reply, "<<");
        reply.write_to(&mut self.outbuf);
    }

    /// The reply with its enhanced status code (RFC 2034), when it needs one and lacks it.
    fn enhance<'a>(&self, reply: &'a Reply) -> std::borrow::Cow<'a, Reply> {
        let code = self
            .verb
            .filter(|_| self.enhanced)
            .and_then(|verb| enhanced_code(verb, reply.code()));
        match code {
            Some(code) if !reply.has_enhanced_code() => {
                std::borrow::Cow::Owned(reply.with_enhanced_code(code))
            }
            _ => std::borrow::Cow::Borrowed(reply),
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.outbuf.is_empty() {
            self.stream.write_all(&self.outbuf).await?;
            self.stream.flush().await?;
            self.outbuf.clear();
        }
        Ok(())
    }

    fn touch(&mut self) {
        self.deadline = Instant::now() + self.idle_timeout;
    }

    fn pending(&self) -> &[u8] {
        &self.inbuf[self.start..]
    }

    /// Sends what is buffered, then reads more. Replies go out only here, that is when no
    /// complete command is waiting: pipelined commands get their replies in one write.
    async fn fill(&mut self, stop_on_shutdown: bool) -> Filled {
        if self.flush().await.is_err() {
            return Filled::Closed;
        }
        if self.start > 0 {
            self.inbuf.drain(..self.start);
            self.start = 0;
        }
        let spare = self.inbuf.capacity() - self.inbuf.len();
        if spare < self.read_size / 2 {
            self.inbuf.reserve(self.read_size);
        }
        let spare = self.inbuf.capacity() - self.inbuf.len();
        loop {
            let deadline = match &self.rate {
                Some(rate) => self.deadline.min(rate.deadline()),
                None => self.deadline,
            };
            // The deadline moves later with every command; the timer is only moved earlier
            // here, and later when it fires before the deadline.
            if deadline < self.armed {
                self.timer.as_mut().reset(deadline);
                self.armed = deadline;
            }
            // Checked here as well as waited for below, because the read comes first there:
            // a busy connection then costs one poll per wake-up, not three.
            if self.kill.is_cancelled() || (stop_on_shutdown && self.shutdown.is_cancelled()) {
                return Filled::Shutdown;
            }
            tokio::select! {
                biased;
                read = self.stream.read_buf(&mut self.inbuf) => return match read {
                    Ok(0) | Err(_) => Filled::Closed,
                    Ok(n) => {
                        if let Some(rate) = &mut self.rate {
                            rate.received(n);
                        }
                        if n >= spare {
                            self.read_size = (self.read_size * 2).min(MAX_READ);
                        }
                        Filled::Data
                    }
                },
                _ = &mut self.kill_wait => return Filled::Shutdown,
                _ = &mut self.shutdown_wait, if stop_on_shutdown => return Filled::Shutdown,
                _ = &mut self.timer => {}
            }
            if Instant::now() >= deadline {
                return Filled::Timeout;
            }
            self.timer.as_mut().reset(deadline);
            self.armed = deadline;
        }
    }
}

impl<S: Transport> AuthIo for Io<S> {
    fn tls(&self) -> Option<&rustls::ServerConnection> {
        self.stream.tls()
    }

    fn send<'a>(&'a mut self, reply: &'a Reply) -> BoxFuture<'a, std::io::Result<()>> {
        Box::pin(async move {
            self.push(reply);
            self.flush().await
        })
    }

    fn read_line(&mut self) -> BoxFuture<'_, ResponseLine> {
        Box::pin(async move {
            loop {
                match self.auth_framer.next_frame(&self.inbuf[self.start..]) {
                    Frame::Line { len, consumed } => {
                        let line = self.inbuf[self.start..self.start + len].to_vec();
                        self.start += consumed;
                        return ResponseLine::Line(line);
                    }
                    Frame::TooLong { consumed, .. } => {
                        self.start += consumed;
                        return ResponseLine::TooLong;
                    }
                    Frame::Incomplete { discard } => self.start += discard,
                }
                match self.fill(true).await {
                    Filled::Data => {}
                    ended => {
                        self.auth_interrupted = Some(ended);
                        return ResponseLine::Closed;
                    }
                }
            }
        })
    }
}

/// One connection's protocol state.
pub(crate) struct Connection<H: Handler, S> {
    shared: Arc<Shared<H>>,
    io: Io<S>,
    framer: LineFramer,
    line: Vec<u8>,
    session: Session,
    envelope: Envelope,
    bogus: usize,
    calls: HashMap<Verb, usize>,
    auth_failures: u32,
    transaction: tracing::Span,
    budget: Budget,
    chunking: Option<Chunking>,
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
            .command_size_limit
            .max(config.auth_line_limit + AUTH_LINE_OVERHEAD)
            + 64;
        let deadline = Instant::now() + config.timeout;
        let io = Io {
            stream: Stream::Plain(stream),
            inbuf: Vec::new(),
            start: 0,
            outbuf: Vec::new(),
            deadline,
            idle_timeout: config.timeout,
            timer: Box::pin(sleep_until(deadline)),
            armed: deadline,
            shutdown_wait: Box::pin(shutdown.clone().cancelled_owned()),
            kill_wait: Box::pin(kill.clone().cancelled_owned()),
            read_size: MIN_READ,
            shutdown,
            kill,
            auth_framer: LineFramer::new(config.auth_line_limit),
            rate: None,
            enhanced: config.enhanced_status_codes,
            verb: None,
            auth_interrupted: None,
        };
        let session = Session::new(peer, shared.hostname.clone());
        Connection {
            io,
            framer: LineFramer::new(frame_limit),
            line: Vec::new(),
            session,
            envelope: Envelope::default(),
            bogus: 0,
            calls: HashMap::new(),
            auth_failures: 0,
            transaction: tracing::Span::none(),
            budget: Budget::default(),
            chunking: None,
            shared,
        }
    }

    /// Serves the connection until it closes. `implicit_tls` handshakes before the greeting.
    pub(crate) async fn run(mut self, implicit_tls: bool) {
        let via = self.session.peer.clone();
        if self.shared.config.proxy_protocol.is_some() {
            let span = tracing::info_span!("proxy", from = %via);
            // Behind implicit TLS the bytes after the header are the TLS handshake, which the
            // TLS stream must read itself: read exactly the header there.
            if !Box::pin(self.proxy_header(implicit_tls).instrument(span)).await {
                let _ = self.io.stream.shutdown().await;
                return;
            }
        }
        let span = tracing::info_span!("smtp", peer = %self.session.peer);
        // A method on `&mut self`, not an `async move` block: the block would hold a second
        // copy of the connection in every task.
        self.session_loop(implicit_tls, via).instrument(span).await
    }

    async fn session_loop(&mut self, implicit_tls: bool, via: Peer) {
        {
            info!("connected");
            if self.session.proxy_data.is_some() {
                info!(%via, "via PROXY protocol");
            }
            if implicit_tls && !Box::pin(self.start_tls(true)).await {
                return;
            }
            let greeting = Reply::new(
                220,
                format!(
                    "{} {}",
                    self.shared.config.hostname, self.shared.config.ident
                ),
            );
            self.io.push(&greeting);
            let kill = self.io.kill.clone();
            tokio::select! {
                biased;
                () = self.serve() => {}
                // A hook that never returns must not hold shutdown past its grace period:
                // a serve loop that can still read saw the kill first and said goodbye.
                () = kill.cancelled() => warn!("closed while a hook was still running"),
            }
            let _ = self.io.flush().await;
            let _ = self.io.stream.shutdown().await;
            info!("disconnected");
        }
    }

    /// Reads the PROXY header and asks the handler. Returns false when the connection must
    /// close with nothing sent: untrusted source, invalid header, timeout, or the hook says no.
    async fn proxy_header(&mut self, exact: bool) -> bool {
        let Some(proxy) = self.shared.config.proxy_protocol.clone() else {
            return true;
        };
        if let Some(addr) = self.session.peer.addr()
            && !proxy.trusts(addr.ip())
        {
            info!("PROXY header from an untrusted source");
            return false;
        }
        let deadline = Instant::now() + proxy.timeout;
        let data = loop {
            let wanted = match crate::proto::proxy::parse(self.io.pending()) {
                ProxyParse::Done(data, consumed) => {
                    self.io.start += consumed;
                    break data;
                }
                ProxyParse::Invalid(why) => {
                    info!(error = why, "invalid PROXY header");
                    return false;
                }
                ProxyParse::NeedMore(n) if exact => n,
                ProxyParse::NeedMore(_) => READ_CHUNK,
            };
            self.io.inbuf.reserve(wanted);
            let mut limited = (&mut self.io.stream).take(wanted as u64);
            let read = limited.read_buf(&mut self.io.inbuf);
            let read = tokio::select! {
                biased;
                _ = self.io.kill.cancelled() => return false,
                _ = self.io.shutdown.cancelled() => return false,
                read = tokio::time::timeout_at(deadline, read) => read,
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return false,
                Err(_) => {
                    info!("PROXY header timed out");
                    return false;
                }
            }
        };
        debug!(?data, "PROXY header");
        if let Some(source) = data.source {
            self.session.peer = Peer::Tcp(source);
            if let Err(reply) = self.budget.admit_proxied(source.ip(), &self.shared.config) {
                info!(peer = %self.session.peer, "{}", reply.text());
                self.io.push(&reply);
                let _ = self.io.flush().await;
                return false;
            }
        }
        let h = &self.shared.handler;
        let accepted = AssertUnwindSafe(h.handle_proxy(&mut self.session, &data))
            .catch_unwind()
            .await
            .unwrap_or(false);
        if !accepted {
            info!(peer = %self.session.peer, "PROXY connection refused by the handler");
            return false;
        }
        self.session.proxy_data = Some(data);
        true
    }

    /// Counts the client by the address in its PROXY header (see `Budget`).
    pub(crate) fn count_proxied_client(&mut self, limits: Arc<crate::server::Limits>) {
        self.budget.count_proxied_client(limits);
    }

    async fn serve(&mut self) {
        loop {
            loop {
                let frame = self.framer.next_frame(self.io.pending());
                let next = match frame {
                    Frame::Incomplete { discard } => {
                        self.io.start += discard;
                        break;
                    }
                    Frame::TooLong { prefix, consumed } => {
                        self.io.start += consumed;
                        self.io.verb = Some(Verb::Unknown);
                        let auth = prefix.len() >= 5 && prefix[..5].eq_ignore_ascii_case(b"AUTH ");
                        self.io.push(&if auth {
                            too_long_auth()
                        } else {
                            Reply::from("500 Command line too long")
                        });
                        Next::Continue
                    }
                    Frame::Line { len, consumed } => {
                        let mut line = std::mem::take(&mut self.line);
                        line.clear();
                        line.extend_from_slice(&self.io.pending()[..len]);
                        self.io.start += consumed;
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
        if self.io.rate.as_ref().is_some_and(DataRate::expired) {
            info!("DATA slower than the minimum rate");
            let host = &self.shared.config.hostname;
            self.io
                .push(&Reply::new(421, format!("4.4.2 {host} Error: too slow")));
            return;
        }
        info!("idle timeout");
        self.io.push(&Reply::new(
            421,
            format!(
                "4.4.2 {} Error: timeout exceeded",
                self.shared.config.hostname
            ),
        ));
    }

    fn shutting_down(&mut self) {
        self.io.push(&Reply::new(
            421,
            format!(
                "4.3.2 {} Service shutting down",
                self.shared.config.hostname
            ),
        ));
    }

    fn reset_envelope(&mut self) {
        self.envelope = Envelope::default();
        self.transaction = tracing::Span::none();
        // Drops a BDAT body in progress, and with it what a sink wrote.
        self.chunking = None;
    }

    /// Runs a hook, turning a panic into the `handle_exception` reply.
    async fn settle(&mut self, hook: &'static str, outcome: std::thread::Result<Reply>) -> Reply {
        match outcome {
            Ok(reply) => reply,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                warn!(hook, %message, "hook panicked");
                let error = HookError { hook, message };
                let handler = &self.shared.handler;
                AssertUnwindSafe(handler.handle_exception(&self.session, &error))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Reply::from("500 Error: Cannot describe error"))
            }
        }
    }

    fn syntax(&self, verb: Verb) -> Reply {
        let extended = if self.session.extended_smtp {
            " [SP <mail-parameters>]"
        } else {
            ""
        };
        let text = match verb {
            Verb::Mail => format!("Syntax: MAIL FROM: <address>{extended}"),
            Verb::Rcpt => format!("Syntax: RCPT TO: <address>{extended}"),
            _ => format!("Syntax: {}", syntax_of(verb).unwrap_or("")),
        };
        Reply::new(501, text)
    }

    fn command_limit(&self, verb: Verb) -> usize {
        let config = &self.shared.config;
        match verb {
            Verb::Auth => config.auth_line_limit + AUTH_LINE_OVERHEAD,
            Verb::Mail if self.session.extended_smtp => {
                config.command_size_limit
                    + if config.data_size_limit.is_some() {
                        26
                    } else {
                        0
                    }
                    + if config.enable_smtputf8 { 10 } else { 0 }
            }
            _ => config.command_size_limit,
        }
    }

    fn auth_needed(&self) -> bool {
        self.shared.config.auth_required && !self.session.authenticated
    }

    async fn command(&mut self, line: &[u8]) -> Next {
        let config = &self.shared.config;
        self.io.verb = Some(Verb::Unknown);
        let cmd = match parse_command(line, config.enable_smtputf8) {
            Ok(cmd) => cmd,
            Err(reply) => {
                self.io.push(&reply);
                return Next::Continue;
            }
        };
        match cmd.verb {
            Verb::Auth => debug!(">> {}", sanitize_auth(&cmd.verb_text, cmd.arg)),
            // An unknown "command" may be a credential sent after a refused AUTH: never log it.
            Verb::Unknown => debug!(">> (unrecognized command of {} bytes)", line.len()),
            _ => debug!(">> {}", String::from_utf8_lossy(line)),
        }
        let verb = cmd.verb;
        self.io.verb = Some(verb);
        if line.len() > self.command_limit(verb) {
            self.io.push(&if verb == Verb::Auth {
                too_long_auth()
            } else {
                Reply::from("500 Command line too long")
            });
            return Next::Continue;
        }
        if config.require_starttls
            && config.tls.is_some()
            && !self.session.is_tls()
            && !matches!(verb, Verb::Noop | Verb::Ehlo | Verb::StartTls | Verb::Quit)
            && !(verb == Verb::Lhlo && config.lmtp)
        {
            self.io
                .push(&Reply::from("530 Must issue a STARTTLS command first"));
            return Next::Continue;
        }
        if let Some(limits) = &config.command_call_limit {
            let used = self.calls.entry(verb).or_insert(0);
            *used += 1;
            let name = if verb == Verb::Unknown {
                "*"
            } else {
                verb.name()
            };
            if *used > limits.limit(name) {
                self.io.push(&Reply::new(
                    421,
                    format!("4.7.0 {} sent too many times", cmd.verb_text),
                ));
                return Next::Close;
            }
        }
        if config.lmtp && matches!(verb, Verb::Helo | Verb::Ehlo) {
            // LMTP has only LHLO; as in aiosmtpd, this does not count as an unknown command.
            self.io.push(&Reply::new(
                500,
                format!("Error: command \"{}\" not recognized", cmd.verb_text),
            ));
            return Next::Continue;
        }
        let unknown = match verb {
            Verb::Unknown => true,
            Verb::Lhlo => !config.lmtp,
            Verb::Bdat => !config.chunking,
            _ => false,
        };
        if unknown {
            self.bogus += 1;
            if self.bogus >= config.bogus_limit {
                self.io.push(&Reply::from(
                    "502 5.5.1 Too many unrecognized commands, goodbye.",
                ));
                return Next::Close;
            }
            let reply = Reply::new(
                500,
                format!("Error: command \"{}\" not recognized", cmd.verb_text),
            );
            // Sent, but not logged: it echoes the unknown line (see above).
            self.io.verb = Some(Verb::Unknown);
            self.io.enhance(&reply).write_to(&mut self.io.outbuf);
            return Next::Continue;
        }
        self.io.touch();
        let arg = cmd.arg;
        let reply = match verb {
            Verb::Helo => self.helo(arg).await,
            Verb::Ehlo => self.ehlo(arg).await,
            Verb::Noop => {
                let h = &self.shared.handler;
                let r = AssertUnwindSafe(h.handle_noop(&mut self.session, &mut self.envelope, arg))
                    .catch_unwind()
                    .await;
                self.settle("handle_noop", r).await
            }
            Verb::Quit => {
                if arg.is_some() {
                    self.syntax(verb)
                } else {
                    let h = &self.shared.handler;
                    let r = AssertUnwindSafe(h.handle_quit(&mut self.session, &mut self.envelope))
                        .catch_unwind()
                        .await;
                    let reply = self.settle("handle_quit", r).await;
                    self.io.push(&reply);
                    return Next::Close;
                }
            }
            Verb::Rset => {
                if arg.is_some() {
                    self.syntax(verb)
                } else {
                    self.reset_envelope();
                    let h = &self.shared.handler;
                    let r = AssertUnwindSafe(h.handle_rset(&mut self.session, &mut self.envelope))
                        .catch_unwind()
                        .await;
                    self.settle("handle_rset", r).await
                }
            }
            Verb::Help => self.help(arg),
            Verb::Vrfy => self.vrfy(arg).await,
            Verb::Expn => Reply::from("502 EXPN not implemented"),
            Verb::Mail => self.mail(arg).await,
            Verb::Rcpt => self.rcpt(arg).await,
            Verb::Data => match self.data_command(arg) {
                Ok(reply) => {
                    self.io.push(&reply);
                    return Next::Data;
                }
                Err(reply) => reply,
            },
            Verb::StartTls => match self.starttls_command(arg) {
                Ok(reply) => {
                    self.io.push(&reply);
                    return Next::StartTls;
                }
                Err(reply) => reply,
            },
            Verb::Auth => return self.auth(arg).await,
            Verb::Lhlo => self.ehlo(arg).await,
            Verb::Bdat => match parse_bdat(arg) {
                Some(chunk) => return Next::Bdat(chunk),
                None => Reply::from("501 Syntax: BDAT <chunk-size> [LAST]"),
            },
            Verb::Unknown => unreachable!("unknown verbs are answered before dispatch"),
        };
        let close = reply.closes_connection();
        self.io.push(&reply);
        if close { Next::Close } else { Next::Continue }
    }

    async fn helo(&mut self, arg: Option<&str>) -> Reply {
        let Some(hostname) = arg else {
            return self.syntax(Verb::Helo);
        };
        self.reset_envelope();
        let h = &self.shared.handler;
        let r = AssertUnwindSafe(h.handle_helo(&mut self.session, &mut self.envelope, hostname))
            .catch_unwind()
            .await;
        let reply = self.settle("handle_helo", r).await;
        if reply.is_positive() {
            self.session.host_name = Some(hostname.to_owned());
            self.session.extended_smtp = false;
        }
        reply
    }

    fn ehlo_reply(&self) -> Reply {
        let config = &self.shared.config;
        let mut lines = vec![config.hostname.clone()];
        if let Some(limit) = config.data_size_limit {
            lines.push(format!("SIZE {limit}"));
        }
        lines.push("8BITMIME".into());
        if config.enable_smtputf8 {
            lines.push("SMTPUTF8".into());
        }
        lines.push("PIPELINING".into());
        if config.chunking {
            lines.push("CHUNKING".into());
            lines.push("BINARYMIME".into());
        }
        if config.dsn {
            lines.push("DSN".into());
        }
        if config.enhanced_status_codes {
            lines.push("ENHANCEDSTATUSCODES".into());
        }
        if config.tls.is_some() && !self.session.is_tls() {
            lines.push("STARTTLS".into());
        }
        if !config.auth_require_tls || self.session.is_tls() {
            lines.push(format!("AUTH {}", self.shared.registry.advertised()));
        }
        lines.push("HELP".into());
        Reply::multiline(250, lines)
    }

    async fn ehlo(&mut self, arg: Option<&str>) -> Reply {
        let Some(hostname) = arg else {
            return self.syntax(if self.shared.config.lmtp {
                Verb::Lhlo
            } else {
                Verb::Ehlo
            });
        };
        self.reset_envelope();
        let responses = self.ehlo_reply();
        let h = &self.shared.handler;
        let r = AssertUnwindSafe(h.handle_ehlo(
            &mut self.session,
            &mut self.envelope,
            hostname,
            responses,
        ))
        .catch_unwind()
        .await;
        let reply = self.settle("handle_ehlo", r).await;
        if reply.is_positive() {
            self.session.host_name = Some(hostname.to_owned());
            self.session.extended_smtp = true;
        }
        reply
    }

    fn help(&self, arg: Option<&str>) -> Reply {
        if self.auth_needed() {
            return auth_required();
        }
        let config = &self.shared.config;
        let tls = config.tls.is_some();
        let supported = || {
            let mut text = String::from(if config.lmtp {
                "Supported commands: AUTH DATA HELP LHLO MAIL NOOP QUIT RCPT RSET"
            } else {
                "Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET"
            });
            if tls {
                text.push_str(" STARTTLS");
            }
            text.push_str(" VRFY");
            text
        };
        let Some(topic) = arg else {
            return Reply::new(250, supported());
        };
        let verb = parse_command(topic.as_bytes(), false)
            .map(|c| c.verb)
            .unwrap_or(Verb::Unknown);
        let offered = match verb {
            Verb::StartTls => tls,
            Verb::Helo | Verb::Ehlo => !config.lmtp,
            Verb::Lhlo => config.lmtp,
            // Not in aiosmtpd's list of commands, but its syntax is worth a HELP.
            Verb::Bdat => config.chunking,
            _ => true,
        };
        let known = syntax_of(verb).is_some() && offered;
        if !known {
            return Reply::new(501, supported());
        }
        let syntax = self.syntax(verb);
        Reply::new(250, syntax.text().to_owned())
    }

    async fn vrfy(&mut self, arg: Option<&str>) -> Reply {
        if self.auth_needed() {
            return auth_required();
        }
        let Some(arg) = arg else {
            return self.syntax(Verb::Vrfy);
        };
        let address = match parse_path(Some(&format!("TO:{arg}")), "TO:") {
            Ok(path) if path.params.is_empty() && path.address != "<>" => path.address,
            _ => return Reply::new(502, format!("Could not VRFY {arg}")),
        };
        let h = &self.shared.handler;
        let r = AssertUnwindSafe(h.handle_vrfy(&mut self.session, &mut self.envelope, &address))
            .catch_unwind()
            .await;
        self.settle("handle_vrfy", r).await
    }

    async fn mail(&mut self, arg: Option<&str>) -> Reply {
        if self.session.host_name.is_none() {
            return Reply::from("503 Error: send HELO first");
        }
        if self.auth_needed() {
            return auth_required();
        }
        let path = match parse_path(arg, "FROM:") {
            Ok(path) => path,
            Err(PathError::Syntax) => return self.syntax(Verb::Mail),
            Err(PathError::Malformed) => return malformed(),
        };
        if !path.params.is_empty() && !self.session.extended_smtp {
            return self.syntax(Verb::Mail);
        }
        if self.envelope.in_transaction() {
            return Reply::from("503 Error: nested MAIL command");
        }
        let config = &self.shared.config;
        let mut smtp_utf8 = false;
        let mut body_type = None;
        let mut dsn = MailDsn::default();
        for (param, raw) in path.params.iter().zip(&path.raw_params) {
            let (key, value) = match param.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (param.as_str(), None),
            };
            let key_ok =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !key_ok || value == Some("") {
                return self.syntax(Verb::Mail);
            }
            if config.dsn {
                let raw_value = raw.split_once('=').map(|(_, v)| v);
                match mail_dsn_param(&mut dsn, key, raw_value) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(text) => return Reply::new(501, format!("5.5.4 {text}")),
                }
            }
            match (key, value) {
                ("BODY", Some("7BIT")) => body_type = Some(BodyType::SevenBit),
                ("BODY", Some("8BITMIME")) => body_type = Some(BodyType::EightBitMime),
                ("BODY", Some("BINARYMIME")) if config.chunking => {
                    body_type = Some(BodyType::BinaryMime)
                }
                ("BODY", _) if config.chunking => {
                    return Reply::from(
                        "501 Error: BODY can only be one of 7BIT, 8BITMIME, BINARYMIME",
                    );
                }
                ("BODY", _) => {
                    return Reply::from("501 Error: BODY can only be one of 7BIT, 8BITMIME");
                }
                ("SMTPUTF8", Some(_)) => {
                    return Reply::from("501 Error: SMTPUTF8 takes no arguments");
                }
                ("SMTPUTF8", None) if !config.enable_smtputf8 => {
                    return Reply::from("501 Error: SMTPUTF8 disabled");
                }
                ("SMTPUTF8", None) => smtp_utf8 = true,
                ("SIZE", Some(size)) => {
                    let Ok(size) = size.parse::<u64>() else {
                        return self.syntax(Verb::Mail);
                    };
                    if config
                        .data_size_limit
                        .is_some_and(|limit| size > limit as u64)
                    {
                        return Reply::from(
                            "552 Error: message size exceeds fixed maximum message size",
                        );
                    }
                }
                _ => {
                    return Reply::from(
                        "555 MAIL FROM parameters not recognized or not implemented",
                    );
                }
            }
        }
        let h = &self.shared.handler;
        let r = AssertUnwindSafe(h.handle_mail(
            &mut self.session,
            &mut self.envelope,
            &path.address,
            &path.params,
        ))
        .catch_unwind()
        .await;
        let reply = self.settle("handle_mail", r).await;
        if reply.is_positive() {
            self.transaction = tracing::info_span!("transaction", from = %path.address);
            debug!(parent: &self.transaction, "MAIL FROM accepted");
            self.envelope.mail_from = Some(path.address);
            self.envelope.mail_options = path.params;
            self.envelope.smtp_utf8 = smtp_utf8;
            self.envelope.body_type = body_type;
            self.envelope.dsn = dsn;
        }
        reply
    }

    async fn rcpt(&mut self, arg: Option<&str>) -> Reply {
        if self.session.host_name.is_none() {
            return Reply::from("503 Error: send HELO first");
        }
        if self.auth_needed() {
            return auth_required();
        }
        if !self.envelope.in_transaction() {
            return Reply::from("503 Error: need MAIL command");
        }
        if self.chunking.is_some() {
            return Reply::from("503 5.5.1 Error: BDAT transfer in progress");
        }
        let path = match parse_path(arg, "TO:") {
            Ok(path) => path,
            Err(PathError::Syntax) => return self.syntax(Verb::Rcpt),
            Err(PathError::Malformed) => return malformed(),
        };
        if !path.params.is_empty() && !self.session.extended_smtp {
            return self.syntax(Verb::Rcpt);
        }
        let config = &self.shared.config;
        let mut dsn = RcptDsn::default();
        for (param, raw) in path.params.iter().zip(&path.raw_params) {
            let (key, raw_value) = match raw.split_once('=') {
                Some((_, v)) => (param.split('=').next().unwrap_or(""), Some(v)),
                None => (param.as_str(), None),
            };
            if config.dsn {
                match rcpt_dsn_param(&mut dsn, key, raw_value) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(text) => return Reply::new(501, format!("5.5.4 {text}")),
                }
            }
            return Reply::from("555 RCPT TO parameters not recognized or not implemented");
        }
        if self.envelope.rcpt_tos.len() >= config.max_recipients {
            return Reply::from("452 4.5.3 Too many recipients");
        }
        let h = &self.shared.handler;
        let r = AssertUnwindSafe(h.handle_rcpt(
            &mut self.session,
            &mut self.envelope,
            &path.address,
            &path.params,
        ))
        .catch_unwind()
        .instrument(self.transaction.clone())
        .await;
        let reply = self.settle("handle_rcpt", r).await;
        if reply.is_positive() {
            self.envelope.rcpt_tos.push(path.address);
            self.envelope.rcpt_options.push(path.params);
            self.envelope.rcpt_dsn.push(dsn);
        }
        reply
    }

    /// The checks shared by DATA and BDAT: a greeting, AUTH if required, a recipient.
    fn transaction_ready(&self) -> Result<(), Reply> {
        if self.session.host_name.is_none() {
            return Err(Reply::from("503 Error: send HELO first"));
        }
        if self.auth_needed() {
            return Err(auth_required());
        }
        if self.envelope.rcpt_tos.is_empty() {
            return Err(Reply::from("503 Error: need RCPT command"));
        }
        Ok(())
    }

    fn data_command(&self, arg: Option<&str>) -> Result<Reply, Reply> {
        self.transaction_ready()?;
        if arg.is_some() {
            return Err(self.syntax(Verb::Data));
        }
        // RFC 3030 §3: DATA cannot carry a binary body, nor join a BDAT transfer.
        if self.chunking.is_some() {
            return Err(Reply::from(
                "503 5.5.1 Error: DATA not allowed during a BDAT transfer",
            ));
        }
        if self.envelope.body_type == Some(BodyType::BinaryMime) {
            return Err(Reply::from(
                "503 5.5.1 Error: BODY=BINARYMIME requires BDAT",
            ));
        }
        Ok(Reply::from("354 End data with <CR><LF>.<CR><LF>"))
    }

    /// Asks the handler where the body goes.
    async fn start_body(&mut self) -> Body {
        self.envelope.content.clear();
        let h = &self.shared.handler;
        let mode = AssertUnwindSafe(h.handle_body(&mut self.session, &mut self.envelope))
            .catch_unwind()
            .instrument(self.transaction.clone())
            .await;
        let mode = mode.unwrap_or_else(|_| {
            warn!(hook = "handle_body", "hook panicked; buffering the body");
            BodyMode::Buffer
        });
        Body {
            mode,
            size: 0,
            failed: false,
        }
    }

    /// Reads the message after `354` and answers it. Returns false when the connection is gone.
    async fn data(&mut self) -> bool {
        let mut body = self.start_body().await;
        let config = &self.shared.config;
        let mut decoder = DataDecoder::new(config.data_line_limit, config.data_size_limit);
        let mut decoded = Vec::new();
        self.io.rate = self.shared.config.min_data_rate.map(DataRate::new);
        loop {
            let input = &self.io.inbuf[self.io.start..];
            let content = &mut self.envelope.content;
            // Buffered bodies are decoded straight into the content; a sink gets the decoded
            // bytes of one read at a time.
            let end = match body.mode {
                BodyMode::Buffer => {
                    let end = decoder.feed(input, &mut |bytes| content.extend_from_slice(bytes));
                    body.size = content.len();
                    end
                }
                BodyMode::Discard => decoder.feed(input, &mut |bytes| body.size += bytes.len()),
                BodyMode::Stream(_) => {
                    decoded.clear();
                    let end = decoder.feed(input, &mut |bytes| decoded.extend_from_slice(bytes));
                    body.write(content, &decoded).await;
                    end
                }
            };
            if let Some(n) = end {
                self.io.start += n;
                break;
            }
            self.io.start = self.io.inbuf.len();
            if !self.more_body().await {
                return false;
            }
        }
        self.io.touch();
        let replies = match decoder.error() {
            Some(DataError::LineTooLong) => {
                vec![Reply::from("500 Line too long (see RFC5321 4.5.3.1.6)")]
            }
            Some(DataError::TooMuchData) => vec![too_much_data()],
            None => self.deliver(body).await,
        };
        self.reset_envelope();
        self.push_all(&replies) && self.message_done(decoder.size())
    }

    /// Reads more of a message body (DATA or BDAT); false when the connection ends. Progress
    /// resets the idle timer, so a large message is not cut off mid-transfer, and a shutdown
    /// waits for the transfer (within `shutdown_grace`).
    async fn more_body(&mut self) -> bool {
        self.io.touch();
        match self.io.fill(false).await {
            Filled::Data => true,
            Filled::Closed | Filled::Shutdown => false,
            Filled::Timeout => {
                self.timed_out();
                false
            }
        }
    }

    /// Counts a finished message against the session caps and ends its rate check; false
    /// (after a `421`) when the session has had its share.
    fn message_done(&mut self, size: usize) -> bool {
        self.io.rate = None;
        let capped = self.budget.message_done(size, &self.shared.config);
        if let Some(reply) = &capped {
            info!(%reply, "session cap reached");
            self.io.push(reply);
        }
        capped.is_none()
    }

    /// Pushes the replies to a message; false when one of them closes the connection.
    fn push_all(&mut self, replies: &[Reply]) -> bool {
        let mut open = true;
        for reply in replies {
            open &= !reply.closes_connection();
            self.io.push(reply);
        }
        open
    }

    /// Hands a complete body to the handler: `handle_data`'s reply, or in LMTP one reply per
    /// recipient.
    async fn deliver(&mut self, mut body: Body) -> Vec<Reply> {
        let recipients = self.envelope.rcpt_tos.len();
        let lmtp = self.shared.config.lmtp;
        let span = self.transaction.clone();
        if !body.finish().await {
            warn!(parent: &span, "the body sink failed");
            let reply = Reply::from("451 4.3.0 Error: cannot store the message");
            return vec![reply; if lmtp { recipients } else { 1 }];
        }
        info!(parent: &span, size = body.size, recipients, "message received");
        drop(body);
        let h = &self.shared.handler;
        if lmtp {
            let r = AssertUnwindSafe(h.handle_lmtp_data(&mut self.session, &mut self.envelope))
                .catch_unwind()
                .instrument(span.clone())
                .await;
            let decided = match r {
                Ok(decided) => decided,
                Err(panic) => Some(vec![self.settle("handle_lmtp_data", Err(panic)).await]),
            };
            if let Some(mut replies) = decided.filter(|r| !r.is_empty()) {
                let last = replies[replies.len() - 1].clone();
                replies.resize(recipients, last);
                return replies;
            }
        }
        let h = &self.shared.handler;
        let r = AssertUnwindSafe(h.handle_data(&mut self.session, &mut self.envelope))
            .catch_unwind()
            .instrument(span)
            .await;
        let reply = self.settle("handle_data", r).await;
        vec![reply; if lmtp { recipients } else { 1 }]
    }

    /// One BDAT chunk (RFC 3030): exactly `chunk.size` octets follow the command line, with
    /// no dot-stuffing and no end marker. They are consumed whatever the reply, so that the
    /// next command is read where it starts. Returns false when the connection is gone.
    async fn bdat(&mut self, chunk: Bdat) -> bool {
        let refused = self.transaction_ready().err();
        if refused.is_none() && self.chunking.is_none() {
            let body = self.start_body().await;
            self.chunking = Some(Chunking {
                body,
                size: 0,
                too_big: false,
            });
        }
        let limit = self.shared.config.data_size_limit;
        // Whether this chunk's octets go into the body (else they are read and dropped).
        let keep = match &mut self.chunking {
            Some(state) if refused.is_none() => {
                let total = state.size.saturating_add(chunk.size);
                if state.too_big || limit.is_some_and(|limit| total > limit) {
                    state.too_big = true;
                    false
                } else {
                    state.size = total;
                    true
                }
            }
            _ => false,
        };
        let mut remaining = chunk.size;
        // Each chunk's transfer is held to the minimum rate, as a DATA transfer is.
        self.io.rate = self.shared.config.min_data_rate.map(DataRate::new);
        loop {
            let pending = self.io.inbuf.len() - self.io.start;
            let take = pending.min(remaining);
            if keep && let Some(state) = &mut self.chunking {
                let bytes = &self.io.inbuf[self.io.start..self.io.start + take];
                state.body.write(&mut self.envelope.content, bytes).await;
            }
            self.io.start += take;
            remaining -= take;
            if remaining == 0 {
                self.io.rate = None;
                break;
            }
            if !self.more_body().await {
                return false;
            }
        }
        self.io.touch();
        if let Some(reply) = refused {
            self.io.push(&reply);
            return true;
        }
        let too_big = self.chunking.as_ref().is_some_and(|state| state.too_big);
        if !chunk.last {
            self.io.push(&if too_big {
                too_much_data()
            } else {
                Reply::new(250, format!("2.0.0 {} octets received", chunk.size))
            });
            return true;
        }
        let size = self.chunking.as_ref().map_or(0, |state| state.size);
        let replies = match self.chunking.take() {
            Some(state) if !too_big => self.deliver(state.body).await,
            _ => vec![too_much_data()],
        };
        self.reset_envelope();
        self.push_all(&replies) && self.message_done(size)
    }

    fn starttls_command(&self, arg: Option<&str>) -> Result<Reply, Reply> {
        if arg.is_some() {
            return Err(self.syntax(Verb::StartTls));
        }
        if self.shared.config.tls.is_none() {
            return Err(Reply::from("454 TLS not available"));
        }
        if self.session.is_tls() {
            return Err(Reply::from("503 5.5.1 Error: TLS already active"));
        }
        Ok(Reply::from("220 Ready to start TLS"))
    }

    /// Runs the TLS handshake and starts the session over. Returns false when the connection
    /// must close.
    async fn start_tls(&mut self, implicit: bool) -> bool {
        let Some(tls) = self.shared.config.tls.clone() else {
            return false;
        };
        if self.io.flush().await.is_err() {
            return false;
        }
        // Whatever the client sent after STARTTLS was sent in plaintext and is never executed
        // (CVE-2011-0411, aiosmtpd CVE-2024-34083).
        self.io.inbuf.clear();
        self.io.start = 0;
        let Stream::Plain(plain) = std::mem::replace(&mut self.io.stream, Stream::Upgrading) else {
            return false;
        };
        let certificate = tls.snapshot();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
        let handshake = tokio::select! {
            biased;
            _ = self.io.kill.cancelled() => return false,
            r = timeout(self.shared.config.tls_handshake_timeout, acceptor.accept(plain)) => r,
        };
        match handshake {
            Ok(Ok(stream)) => {
                let presented = tls.presented(&certificate);
                let info = TlsInfo::from_connection(stream.get_ref().1, implicit, presented);
                info!(version = %info.version, cipher = %info.cipher_suite, "TLS established");
                self.io.stream = Stream::Tls(Box::new(stream));
                let peer = self.session.peer.clone();
                let proxy = self.session.proxy_data.take();
                self.session = Session::new(peer, self.shared.hostname.clone());
                self.session.tls = Some(info);
                self.session.proxy_data = proxy;
                self.reset_envelope();
                self.io.touch();
                true
            }
            Ok(Err(e)) => {
                info!(error = %e, "TLS handshake failed");
                false
            }
            Err(_) => {
                info!("TLS handshake timed out");
                false
            }
        }
    }

    async fn auth(&mut self, arg: Option<&str>) -> Next {
        let reply = match self.auth_precheck(arg) {
            Err(reply) => reply,
            // Boxed, like the TLS handshake: rare and large, it would otherwise grow every
            // connection's task while idle.
            Ok(args) => return Box::pin(self.run_auth(args)).await,
        };
        self.io.push(&reply);
        Next::Continue
    }

    fn auth_precheck(&self, arg: Option<&str>) -> Result<Vec<String>, Reply> {
        let config = &self.shared.config;
        if self.session.host_name.is_none() {
            return Err(Reply::from("503 Error: send EHLO first"));
        }
        if !self.session.extended_smtp {
            return Err(Reply::from("500 Error: command 'AUTH' not recognized"));
        }
        if config.auth_require_tls && !self.session.is_tls() {
            return Err(Reply::from(
                "538 5.7.11 Encryption required for requested authentication mechanism",
            ));
        }
        if self.session.authenticated {
            return Err(Reply::from("503 Already authenticated"));
        }
        if self.envelope.in_transaction() {
            return Err(Reply::from("503 5.5.1 Error: MAIL transaction in progress"));
        }
        let Some(arg) = arg else {
            return Err(Reply::from("501 Not enough value"));
        };
        let mut args: Vec<String> = arg.split_whitespace().map(str::to_owned).collect();
        if args.len() > 2 {
            return Err(Reply::from("501 Too many values"));
        }
        args[0].make_ascii_uppercase();
        if self.shared.registry.get(&args[0]).is_none() {
            return Err(Reply::from("504 5.5.4 Unrecognized authentication type"));
        }
        // The line limit leaves room for `AUTH <name> `; the response itself gets the exact one.
        if args
            .get(1)
            .is_some_and(|ir| ir.len() > config.auth_line_limit)
        {
            return Err(too_long_auth());
        }
        // RFC 4954 §4: `=` is an empty initial response.
        if args.get(1).is_some_and(|ir| ir == "=") {
            args[1].clear();
        }
        Ok(args)
    }

    async fn run_auth(&mut self, args: Vec<String>) -> Next {
        let shared = self.shared.clone();
        let mechanism = args[0].clone();
        let authenticator = shared.config.authenticator.as_deref();
        let limiter = shared.config.auth_limiter.as_deref();
        if let (Some(limiter), Some(addr)) = (limiter, self.session.peer.addr())
            && limiter.is_blocked(LimitKey::Ip(addr.ip())).await
        {
            return self
                .auth_failed(&mechanism, None, Some(blocked()), false)
                .await;
        }
        let mut server = AuthServer::new(
            &mut self.io,
            &mut self.session,
            &self.envelope,
            authenticator,
        )
        .with_limiter(limiter);
        let outcome = AssertUnwindSafe(async {
            if let Some(result) = shared.handler.handle_auth(&mut server, &args).await {
                return result;
            }
            match shared.registry.get(&mechanism) {
                Some(MechanismEntry::Handler(run)) => {
                    run(&shared.handler, &mut server, &args).await
                }
                Some(MechanismEntry::Dynamic(m)) => {
                    m.run(&mut server, &args).await.unwrap_or_else(Into::into)
                }
                None => crate::auth::AuthResult::failure(),
            }
        })
        .catch_unwind()
        .await;
        let user = server.claimed_user().map(<[u8]>::to_vec);
        let (final_sent, abort) = server.finish();
        let result = match outcome {
            Ok(result) => result,
            Err(panic) => {
                let reply = self.settle("auth", Err(panic)).await;
                crate::auth::AuthResult::failure_with(reply)
            }
        };
        if abort == Some(crate::auth::AuthAbort::Disconnected) {
            match self.io.auth_interrupted.take() {
                Some(Filled::Timeout) => self.timed_out(),
                Some(Filled::Shutdown) => self.shutting_down(),
                _ => {}
            }
            return Next::Close;
        }
        if abort == Some(crate::auth::AuthAbort::Blocked) {
            let reply = (!final_sent).then(blocked);
            return self.auth_failed(&mechanism, user, reply, false).await;
        }
        if let Some(reply) = abort.and_then(|a| a.reply()) {
            info!(mechanism = %mechanism, "AUTH aborted");
            if !final_sent {
                self.io.push(&reply);
            }
            return Next::Continue;
        }
        if result.success {
            info!(mechanism = %mechanism, "AUTH succeeded");
            self.session.authenticated = true;
            self.session.login_data = result
                .auth_data
                .as_ref()
                .and_then(|d| d.login())
                .map(<[u8]>::to_vec);
            self.session.auth_data = result.auth_data;
            if !final_sent {
                self.io.push(
                    &result
                        .message
                        .unwrap_or_else(|| Reply::from("235 2.7.0 Authentication successful")),
                );
            }
            return Next::Continue;
        }
        let reply = (!final_sent).then(|| {
            result
                .message
                .unwrap_or_else(|| Reply::from("535 5.7.8 Authentication credentials invalid"))
        });
        self.auth_failed(&mechanism, user, reply, true).await
    }

    /// Logs a failed AUTH (one line for fail2ban: peer address, mechanism, user), counts it
    /// unless it was refused by the limiter, waits the growing failure delay, and replies.
    async fn auth_failed(
        &mut self,
        mechanism: &str,
        user: Option<Vec<u8>>,
        reply: Option<Reply>,
        count: bool,
    ) -> Next {
        self.auth_failures += 1;
        let config = &self.shared.config;
        let ip = self.session.peer.addr().map(|a| a.ip());
        let peer_ip = ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        let user_field = match user.as_deref() {
            None => "-".to_owned(),
            Some(user) if config.log_auth_usernames => user
                .iter()
                .take(64)
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
                .collect(),
            Some(user) => crate::auth::user_fingerprint(user),
        };
        warn!(
            target: "smtpd::auth",
            peer_ip = %peer_ip,
            mechanism = %mechanism,
            user = %user_field,
            failures = self.auth_failures,
            blocked = !count,
            "AUTH failed"
        );
        if let Some(limiter) = config.auth_limiter.clone().filter(|_| count) {
            if let Some(ip) = ip {
                limiter.record_failure(LimitKey::Ip(ip)).await;
            }
            if let Some(user) = &user {
                limiter.record_failure(LimitKey::User(user)).await;
            }
        }
        let base = config.auth_failure_delay;
        if !base.is_zero() {
            let doublings = (self.auth_failures - 1).min(16);
            let delay = base
                .saturating_mul(1 << doublings)
                .min(config.auth_failure_delay_max);
            tokio::time::sleep(delay).await;
        }
        if config
            .max_auth_failures
            .is_some_and(|max| self.auth_failures >= max)
        {
            self.io
                .push(&Reply::from("421 4.7.0 Too many authentication failures"));
            return Next::Close;
        }
        if let Some(reply) = reply {
            self.io.push(&reply);
        }
        Next::Continue
    }
}

fn syntax_of(verb: Verb) -> Option<&'static str> {
    Some(match verb {
        Verb::Auth => "AUTH <mechanism>",
        Verb::Data => "DATA",
        Verb::Ehlo => "EHLO hostname",
        Verb::Helo => "HELO hostname",
        Verb::Help => "HELP [command]",
        Verb::Mail => "MAIL FROM: <address>",
        Verb::Noop => "NOOP [ignored]",
        Verb::Quit => "QUIT",
        Verb::Rcpt => "RCPT TO: <address>",
        Verb::Rset => "RSET",
        Verb::StartTls => "STARTTLS",
        Verb::Vrfy => "VRFY <address>",
        Verb::Lhlo => "LHLO hostname",
        Verb::Bdat => "BDAT <chunk-size> [LAST]",
        _ => return None,
    })
}

fn blocked() -> Reply {
    Reply::from("454 4.7.0 Temporary authentication failure")
}

fn auth_required() -> Reply {
    Reply::from("530 5.7.0 Authentication required")
}

fn too_much_data() -> Reply {
    Reply::from("552 Error: Too much mail data")
}

fn malformed() -> Reply {
    Reply::from("553 5.1.3 Error: malformed address")
}

fn too_long_auth() -> Reply {
    Reply::from("500 5.5.6 Authentication Exchange line is too long")
}

/// The AUTH line as logged: the initial response, which may carry a password, is masked.
fn sanitize_auth(verb: &str, arg: Option<&str>) -> String {
    match arg.map(|a| a.split_whitespace().collect::<Vec<_>>()) {
        None => verb.to_owned(),
        Some(words) if words.len() <= 1 => format!("{verb} {}", words.first().unwrap_or(&"")),
        Some(words) => format!("{verb} {} ********", words[0]),
    }
}
