//! The socket side of a connection: buffered input and output, the idle deadline, the
//! minimum data rate, shutdown signals. The rest of the connection reads through `pending`,
//! `consume` and `fill`, and writes through `push`; only this room touches the buffers.

use std::borrow::Cow;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::BoxFuture;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, ReadBuf};
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::debug;

use crate::auth::exchange::{AuthIo, ResponseLine};
use crate::config::MinDataRate;
use crate::governance::DataRate;
use crate::proto::{Frame, LineFramer, Reply, Verb, enhanced_code};
use crate::stream::{Stream, Transport};

use super::observe::{Transcriber, redact_auth};

pub(super) const READ_CHUNK: usize = 16 * 1024;
/// The first read buffer of a connection. It doubles, up to `MAX_READ`, each time a read fills
/// it, so idle and command-only connections stay small and bulk transfers read in large pieces.
const MIN_READ: usize = 1024;
const MAX_READ: usize = 64 * 1024;
/// Room on an AUTH command line around the initial response: `AUTH `, the name, a space.
pub(super) const AUTH_LINE_OVERHEAD: usize = 32;
/// Unsent reply octets at which the connection stops executing commands and waits for the
/// client to read (RFC 2920 §3.1 lets a server stop reading while its output is blocked).
const MAX_UNSENT: usize = 64 * 1024;
/// The room taken for replies when the output buffer is empty: a one-line reply or a short
/// EHLO list fits.
const OUT_START: usize = 256;

/// How a read ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Filled {
    Data,
    Closed,
    Timeout,
    Shutdown,
}

/// The socket side: buffered input and output, the idle deadline, shutdown signals.
pub(super) struct Io<S> {
    stream: Stream<S>,
    inbuf: Vec<u8>,
    start: usize,
    outbuf: Vec<u8>,
    deadline: Instant,
    idle_timeout: Duration,
    shutdown: CancellationToken,
    kill: CancellationToken,
    /// One timer and one wait per signal for the whole connection, not one per read: they are
    /// registered once, and the timer is re-armed only when it fires early (`fill`).
    timer: Pin<Box<Sleep>>,
    armed: Instant,
    shutdown_wait: Pin<Box<WaitForCancellationFutureOwned>>,
    kill_wait: Pin<Box<WaitForCancellationFutureOwned>>,
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
    /// A write failed or stalled: nothing more is sent.
    write_failed: bool,
    /// A hook answered `Reply::disconnect()`: nothing more is queued, and reads end.
    disconnected: bool,
    /// Sees each line received and each reply queued (`Server::observe`).
    transcriber: Option<Box<dyn Transcriber>>,
    /// Reads so far: lines that share a number arrived in one read (pipelined).
    reads: u64,
}

impl<S: Transport> Io<S> {
    pub(super) fn new(
        stream: S,
        idle_timeout: Duration,
        max_auth_line: usize,
        enhanced: bool,
        shutdown: CancellationToken,
        kill: CancellationToken,
    ) -> Io<S> {
        let deadline = Instant::now() + idle_timeout;
        Io {
            stream: Stream::Plain(stream),
            inbuf: Vec::new(),
            start: 0,
            outbuf: Vec::new(),
            deadline,
            idle_timeout,
            timer: Box::pin(sleep_until(deadline)),
            armed: deadline,
            shutdown_wait: Box::pin(shutdown.clone().cancelled_owned()),
            kill_wait: Box::pin(kill.clone().cancelled_owned()),
            read_size: MIN_READ,
            shutdown,
            kill,
            auth_framer: LineFramer::new(max_auth_line),
            rate: None,
            enhanced,
            verb: None,
            auth_interrupted: None,
            write_failed: false,
            disconnected: false,
            transcriber: None,
            reads: 0,
        }
    }

    pub(super) fn set_transcriber(&mut self, transcriber: Option<Box<dyn Transcriber>>) {
        self.transcriber = transcriber;
    }

    /// Shows a command line to the transcriber, an AUTH initial response masked.
    pub(super) fn observe(&mut self, line: &[u8]) {
        if let Some(t) = &mut self.transcriber {
            t.received(&redact_auth(line), self.reads);
        }
    }

    /// Whether a hook answered `Reply::disconnect()`.
    pub(super) fn disconnected(&self) -> bool {
        self.disconnected
    }

    /// Queues a reply; it goes out at the next `fill` or `flush`.
    pub(super) fn push(&mut self, reply: &Reply) {
        if self.stop_at(reply) {
            return;
        }
        let reply = self.enhance(reply);
        debug!(reply = %reply, "<<");
        self.write_reply(&reply);
    }

    /// Queues a reply without logging it: for replies that echo a line which may be a
    /// credential.
    pub(super) fn push_unlogged(&mut self, reply: &Reply) {
        if !self.stop_at(reply) {
            let reply = self.enhance(reply);
            self.write_reply(&reply);
        }
    }

    /// Whether nothing more is sent: after `Reply::disconnect()`.
    fn stop_at(&mut self, reply: &Reply) -> bool {
        self.disconnected |= reply.is_disconnect();
        self.disconnected
    }

    fn write_reply(&mut self, reply: &Reply) {
        crate::metrics::reply(self.verb, reply.code());
        let from = self.outbuf.len();
        // The buffer is given back while the connection waits (see `fill`): take room for
        // a typical reply at once instead of growing it byte run by byte run.
        if self.outbuf.capacity() == 0 {
            self.outbuf.reserve(OUT_START);
        }
        reply.write_to(&mut self.outbuf);
        if let Some(t) = &mut self.transcriber {
            t.sent(&self.outbuf[from..]);
        }
    }

    /// The command being answered, which decides the enhanced code of its replies.
    pub(super) fn answering(&mut self, verb: Verb) {
        self.verb = Some(verb);
    }

    /// The reply with its enhanced status code (RFC 2034), when it needs one and lacks it.
    fn enhance<'a>(&self, reply: &'a Reply) -> Cow<'a, Reply> {
        let code = self
            .verb
            .filter(|_| self.enhanced)
            .and_then(|verb| enhanced_code(verb, reply.code()));
        match code {
            Some(code) if !reply.has_enhanced_code() => Cow::Owned(reply.with_enhanced_code(code)),
            _ => Cow::Borrowed(reply),
        }
    }

    /// Sends what is queued.
    ///
    /// A client that stops reading cannot hold the connection: a write that makes no progress
    /// for the idle timeout fails with `TimedOut`, and so does any write once the connection
    /// is killed.
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        let mut sent = 0;
        while sent < self.outbuf.len() {
            let write = self.stream.write(&self.outbuf[sent..]);
            let written = tokio::select! {
                biased;
                written = tokio::time::timeout(self.idle_timeout, write) => written,
                _ = self.kill.cancelled() => {
                    self.write_failed = true;
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
            };
            match written {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => sent += n,
                Ok(Err(e)) => {
                    self.write_failed = true;
                    return Err(e);
                }
                Err(_) => {
                    debug!("no write progress within the idle timeout");
                    self.write_failed = true;
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
            }
        }
        if sent > 0 {
            self.stream.flush().await?;
            self.outbuf.clear();
        }
        Ok(())
    }

    /// Whether enough replies wait unsent that no further command should be read until they
    /// are out: what bounds the memory of a client that pipelines without reading.
    pub(super) fn output_full(&self) -> bool {
        self.outbuf.len() >= MAX_UNSENT
    }

    /// Moves the idle deadline: the client made progress.
    pub(super) fn touch(&mut self) {
        self.deadline = Instant::now() + self.idle_timeout;
    }

    /// The input received and not yet consumed.
    pub(super) fn pending(&self) -> &[u8] {
        &self.inbuf[self.start..]
    }

    /// Marks the first `n` pending octets as used.
    pub(super) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.inbuf.len() - self.start);
        self.start += n;
    }

    /// Consumes and returns up to `n` pending octets (fewer when fewer are buffered).
    pub(super) fn take_up_to(&mut self, n: usize) -> &[u8] {
        let take = n.min(self.inbuf.len() - self.start);
        let from = self.start;
        self.start += take;
        &self.inbuf[from..from + take]
    }

    /// Drops all buffered input: what a client pipelined behind STARTTLS is never executed
    /// (CVE-2011-0411, aiosmtpd CVE-2024-34083).
    pub(super) fn discard_input(&mut self) {
        self.inbuf.clear();
        self.start = 0;
    }

    /// Holds the transfer that starts now to the minimum data rate, if one is configured.
    pub(super) fn start_rate(&mut self, min: Option<MinDataRate>) {
        self.rate = min.map(DataRate::new);
    }

    /// Ends the rate check of a transfer.
    pub(super) fn end_rate(&mut self) {
        self.rate = None;
    }

    /// Whether the last timeout was the minimum data rate's, not the idle timeout's.
    pub(super) fn rate_expired(&self) -> bool {
        self.rate.as_ref().is_some_and(DataRate::expired)
    }

    /// Why the read of an AUTH answer ended without a line, once.
    pub(super) fn take_auth_interruption(&mut self) -> Option<Filled> {
        self.auth_interrupted.take()
    }

    pub(super) fn kill_signal(&self) -> &CancellationToken {
        &self.kill
    }

    pub(super) fn shutdown_signal(&self) -> &CancellationToken {
        &self.shutdown
    }

    pub(super) fn stream_mut(&mut self) -> &mut Stream<S> {
        &mut self.stream
    }

    /// Reads at most `wanted` more octets into the input, for the PROXY header: behind
    /// implicit TLS no byte after the header may be taken from the TLS stream.
    pub(super) async fn read_at_most(&mut self, wanted: usize) -> std::io::Result<usize> {
        self.inbuf.reserve(wanted);
        let mut limited = (&mut self.stream).take(wanted as u64);
        limited.read_buf(&mut self.inbuf).await
    }

    /// Closes the write side after sending what is queued, unless writing already failed:
    /// a client that stopped reading gets no second idle timeout.
    pub(super) async fn close(&mut self) {
        if !self.write_failed && self.flush().await.is_ok() {
            let _ = tokio::time::timeout(self.idle_timeout, self.stream.shutdown()).await;
        }
    }

    /// Sends what is buffered, then reads more. Replies go out only here, that is when no
    /// complete command is waiting: pipelined commands get their replies in one write.
    pub(super) async fn fill(&mut self, stop_on_shutdown: bool) -> Filled {
        if self.flush().await.is_err() || self.disconnected {
            return Filled::Closed;
        }
        if self.start > 0 {
            self.inbuf.drain(..self.start);
            self.start = 0;
        }
        // Waiting for a command with nothing pending: the connection may wait long for the
        // client (what 10,000 idle connections cost), and keeps no buffer meanwhile. The read
        // goes to a per-thread scratch buffer, and the input buffer is made as large as what
        // arrived. A message body (`stop_on_shutdown` false) keeps its buffer between reads.
        let idle = stop_on_shutdown && self.inbuf.is_empty();
        let spare = if idle {
            self.inbuf = Vec::new();
            if self.outbuf.is_empty() {
                self.outbuf = Vec::new();
            }
            self.read_size
        } else {
            if self.inbuf.capacity() - self.inbuf.len() < self.read_size / 2 {
                self.inbuf.reserve(self.read_size);
            }
            self.inbuf.capacity() - self.inbuf.len()
        };
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
                read = read_some(&mut self.stream, &mut self.inbuf, idle.then_some(spare)) => return match read {
                    Ok(0) | Err(_) => Filled::Closed,
                    Ok(n) => {
                        self.reads += 1;
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

thread_local! {
    /// Where reads into an empty input go (see `fill`): one per runtime thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; MAX_READ]);
}

/// One read into `buf`, or with `scratch`, of at most that many octets into `SCRATCH`, whose
/// octets `buf` then takes: `buf` is allocated only when something arrived, and only as large
/// as that.
async fn read_some<S: Transport>(
    stream: &mut Stream<S>,
    buf: &mut Vec<u8>,
    scratch: Option<usize>,
) -> std::io::Result<usize> {
    let Some(size) = scratch else {
        return stream.read_buf(buf).await;
    };
    std::future::poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut read = ReadBuf::new(&mut scratch[..size]);
            std::task::ready!(Pin::new(&mut *stream).poll_read(cx, &mut read))?;
            buf.extend_from_slice(read.filled());
            Poll::Ready(Ok(read.filled().len()))
        })
    })
    .await
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
                        if let Some(t) = &mut self.transcriber {
                            t.received(b"****", self.reads);
                        }
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
