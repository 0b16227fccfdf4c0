//! One connection: owns the socket, the buffers and the timers, and drives the session
//! through the protocol one command at a time.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, warn};

use crate::auth::{AuthIo, AuthServer, MechanismEntry, ResponseLine};
use crate::handler::{Handler, HookError};
use crate::proto::{
    DataDecoder, DataError, Frame, LineFramer, PathError, Reply, Verb, parse_command, parse_path,
};
use crate::server::Shared;
use crate::session::{Envelope, Peer, Session};
use crate::stream::{Stream, Transport};
use crate::tls::TlsInfo;

const READ_CHUNK: usize = 16 * 1024;
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
    StartTls,
    Close,
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
    auth_framer: LineFramer,
}

impl<S: Transport> Io<S> {
    fn push(&mut self, reply: &Reply) {
        debug!(reply = %reply, "<<");
        reply.write_to(&mut self.outbuf);
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
        self.inbuf.reserve(READ_CHUNK);
        tokio::select! {
            biased;
            _ = self.kill.cancelled() => Filled::Shutdown,
            _ = self.shutdown.cancelled(), if stop_on_shutdown => Filled::Shutdown,
            read = self.stream.read_buf(&mut self.inbuf) => match read {
                Ok(0) | Err(_) => Filled::Closed,
                Ok(_) => Filled::Data,
            },
            _ = sleep_until(self.deadline) => Filled::Timeout,
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
                if !matches!(self.fill(true).await, Filled::Data) {
                    return ResponseLine::Closed;
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
        let io = Io {
            stream: Stream::Plain(stream),
            inbuf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            outbuf: Vec::with_capacity(1024),
            deadline: Instant::now() + config.timeout,
            idle_timeout: config.timeout,
            shutdown,
            kill,
            auth_framer: LineFramer::new(config.auth_line_limit),
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
            shared,
        }
    }

    /// Serves the connection until it closes. `implicit_tls` handshakes before the greeting.
    pub(crate) async fn run(mut self, implicit_tls: bool) {
        let span = tracing::info_span!("smtp", peer = %self.session.peer);
        async move {
            info!("connected");
            if implicit_tls && !self.start_tls(true).await {
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
            self.serve().await;
            let _ = self.io.flush().await;
            let _ = self.io.stream.shutdown().await;
            info!("disconnected");
        }
        .instrument(span)
        .await
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
                    Next::StartTls => {
                        if !self.start_tls(false).await {
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
        if verb == Verb::Unknown || verb == Verb::Lhlo {
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
            reply.write_to(&mut self.io.outbuf);
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
            Verb::Lhlo | Verb::Unknown => unreachable_reply(),
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
            return self.syntax(Verb::Ehlo);
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
        let tls = self.shared.config.tls.is_some();
        let supported = || {
            let mut text = String::from(
                "Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET",
            );
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
        let known = syntax_of(verb).is_some() && (verb != Verb::StartTls || tls);
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
        for param in &path.params {
            let (key, value) = match param.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (param.as_str(), None),
            };
            let key_ok =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !key_ok || value == Some("") {
                return self.syntax(Verb::Mail);
            }
            match (key, value) {
                ("BODY", Some("7BIT" | "8BITMIME")) => {}
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
        let path = match parse_path(arg, "TO:") {
            Ok(path) => path,
            Err(PathError::Syntax) => return self.syntax(Verb::Rcpt),
            Err(PathError::Malformed) => return malformed(),
        };
        if !path.params.is_empty() {
            if !self.session.extended_smtp {
                return self.syntax(Verb::Rcpt);
            }
            return Reply::from("555 RCPT TO parameters not recognized or not implemented");
        }
        if self.envelope.rcpt_tos.len() >= self.shared.config.max_recipients {
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
        }
        reply
    }

    fn data_command(&self, arg: Option<&str>) -> Result<Reply, Reply> {
        if self.session.host_name.is_none() {
            return Err(Reply::from("503 Error: send HELO first"));
        }
        if self.auth_needed() {
            return Err(auth_required());
        }
        if self.envelope.rcpt_tos.is_empty() {
            return Err(Reply::from("503 Error: need RCPT command"));
        }
        if arg.is_some() {
            return Err(self.syntax(Verb::Data));
        }
        Ok(Reply::from("354 End data with <CR><LF>.<CR><LF>"))
    }

    /// Reads the message after `354` and answers it. Returns false when the connection is gone.
    async fn data(&mut self) -> bool {
        let config = &self.shared.config;
        let mut decoder = DataDecoder::new(config.data_line_limit, config.data_size_limit);
        self.envelope.content.clear();
        loop {
            let content = &mut self.envelope.content;
            let input = &self.io.inbuf[self.io.start..];
            if let Some(n) = decoder.feed(input, &mut |bytes| content.extend_from_slice(bytes)) {
                self.io.start += n;
                break;
            }
            self.io.start = self.io.inbuf.len();
            // Progress resets the idle timer, so a large message is not cut off mid-transfer.
            self.io.touch();
            match self.io.fill(false).await {
                Filled::Data => {}
                Filled::Closed | Filled::Shutdown => return false,
                Filled::Timeout => {
                    self.timed_out();
                    return false;
                }
            }
        }
        self.io.touch();
        let reply = match decoder.error() {
            Some(DataError::LineTooLong) => {
                Reply::from("500 Line too long (see RFC5321 4.5.3.1.6)")
            }
            Some(DataError::TooMuchData) => Reply::from("552 Error: Too much mail data"),
            None => {
                let span = self.transaction.clone();
                info!(parent: &span, size = self.envelope.content.len(), recipients = self.envelope.rcpt_tos.len(), "message received");
                let h = &self.shared.handler;
                let r = AssertUnwindSafe(h.handle_data(&mut self.session, &mut self.envelope))
                    .catch_unwind()
                    .instrument(span)
                    .await;
                self.settle("handle_data", r).await
            }
        };
        self.reset_envelope();
        let close = reply.closes_connection();
        self.io.push(&reply);
        !close
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
            Ok(args) => return self.run_auth(args).await,
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
        let mut server = AuthServer::new(
            &mut self.io,
            &mut self.session,
            &self.envelope,
            authenticator,
        );
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
        let (final_sent, abort) = server.finish();
        let result = match outcome {
            Ok(result) => result,
            Err(panic) => {
                let reply = self.settle("auth", Err(panic)).await;
                crate::auth::AuthResult::failure_with(reply)
            }
        };
        if abort == Some(crate::auth::AuthAbort::Disconnected) {
            return Next::Close;
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
        self.auth_failures += 1;
        warn!(mechanism = %mechanism, failures = self.auth_failures, "AUTH failed");
        if self
            .shared
            .config
            .max_auth_failures
            .is_some_and(|max| self.auth_failures >= max)
        {
            self.io
                .push(&Reply::from("421 4.7.0 Too many authentication failures"));
            return Next::Close;
        }
        if !final_sent {
            self.io.push(
                &result
                    .message
                    .unwrap_or_else(|| Reply::from("535 5.7.8 Authentication credentials invalid")),
            );
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
        _ => return None,
    })
}

fn auth_required() -> Reply {
    Reply::from("530 5.7.0 Authentication required")
}

fn malformed() -> Reply {
    Reply::from("553 5.1.3 Error: malformed address")
}

fn too_long_auth() -> Reply {
    Reply::from("500 5.5.6 Authentication Exchange line is too long")
}

fn unreachable_reply() -> Reply {
    Reply::from("500 Error: bad syntax")
}

/// The AUTH line as logged: the initial response, which may carry a password, is masked.
fn sanitize_auth(verb: &str, arg: Option<&str>) -> String {
    match arg.map(|a| a.split_whitespace().collect::<Vec<_>>()) {
        None => verb.to_owned(),
        Some(words) if words.len() <= 1 => format!("{verb} {}", words.first().unwrap_or(&"")),
        Some(words) => format!("{verb} {} ********", words[0]),
    }
}
