//! Message bodies, DATA's and BDAT's alike: `handle_body` decides where the bytes go
//! (`envelope.content`, nowhere, or a `BodySink`), then `handle_data` (or in LMTP
//! `handle_lmtp_data`) answers. BDAT chunks are consumed whatever the reply, so the command
//! stream stays in step (RFC 3030 §2).

use tracing::{Instrument as _, info, warn};

use super::Connection;
use super::hooks::call_hook;
use super::io::Filled;
use crate::body::BodyMode;
use crate::envelope::BodyType;
use crate::handler::Handler;
use crate::metrics::{self, Stage};
use crate::proto::replies;
use crate::proto::{Bdat, DataDecoder, DataError, Reply, Verb};
use crate::stream::Transport;

/// A message body in progress, DATA's or BDAT's: where its bytes go.
pub(super) struct Body {
    mode: BodyMode,
    /// Decoded octets so far.
    size: usize,
    /// A sink's `write` or `finish` failed: the rest is dropped and the message refused.
    failed: bool,
    /// A sink's `write` failed with `ConnectionAborted`: the connection closes at once.
    aborted: bool,
}

impl Body {
    async fn write(&mut self, content: &mut Vec<u8>, bytes: &[u8]) {
        self.size += bytes.len();
        match &mut self.mode {
            BodyMode::Buffer => content.extend_from_slice(bytes),
            BodyMode::Discard => {}
            BodyMode::Stream(sink) => {
                if !self.failed
                    && !bytes.is_empty()
                    && let Err(e) = sink.write(bytes).await
                {
                    self.failed = true;
                    self.aborted = e.kind() == std::io::ErrorKind::ConnectionAborted;
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
pub(super) struct Chunking {
    body: Body,
    /// Octets received so far, counted against the size limit.
    size: usize,
    /// The size limit was passed: every further chunk is consumed and refused.
    too_big: bool,
}

impl<H: Handler, S: Transport> Connection<H, S> {
    pub(super) fn data_command(&self, arg: Option<&str>) -> Result<Reply, Reply> {
        self.transaction_ready()?;
        if arg.is_some() {
            return Err(self.syntax(Verb::Data));
        }
        // RFC 3030 §3: DATA cannot carry a binary body, nor join a BDAT transfer.
        if self.phase.is_chunking() {
            return Err(replies::DATA_DURING_BDAT);
        }
        if self.envelope.body_type == Some(BodyType::BinaryMime) {
            return Err(replies::BINARYMIME_REQUIRES_BDAT);
        }
        Ok(replies::START_DATA)
    }

    /// Asks the handler where the body goes.
    async fn start_body(&mut self) -> Body {
        self.envelope.content.clear();
        let span = self.transaction.clone();
        let mode = call_hook!(self, "handle_body", |h, session, envelope| h
            .handle_body(session, envelope)
            .instrument(span));
        let mode = mode.unwrap_or_else(|_| {
            warn!(hook = "handle_body", "buffering the body");
            BodyMode::Buffer
        });
        Body {
            mode,
            size: 0,
            failed: false,
            aborted: false,
        }
    }

    /// Reads the message after `354` and answers it. Returns false when the connection is gone.
    pub(super) async fn data(&mut self) -> bool {
        self.phase.data();
        let mut body = self.start_body().await;
        let config = &self.shared.config;
        let mut decoder = DataDecoder::new(config.max_data_line, config.max_message_size);
        let mut decoded = Vec::new();
        self.io.start_rate(self.shared.config.min_data_rate);
        loop {
            let input = self.io.pending();
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
            if body.aborted {
                info!("the body sink dropped the connection");
                return false;
            }
            if let Some(n) = end {
                self.io.consume(n);
                break;
            }
            self.io.consume(self.io.pending().len());
            if !self.more_body().await {
                return false;
            }
        }
        self.io.touch();
        let replies = match decoder.error() {
            Some(DataError::LineTooLong) => {
                metrics::message_rejected(Stage::LineLength);
                vec![replies::DATA_LINE_TOO_LONG]
            }
            Some(DataError::TooMuchData) => {
                metrics::message_rejected(Stage::Size);
                vec![replies::TOO_MUCH_DATA]
            }
            None => self.deliver(body).await,
        };
        self.reset_envelope();
        self.push_all(&replies) && self.message_done(decoder.size())
    }

    /// Reads more of a message body (DATA or BDAT); false when the connection ends. Progress
    /// resets the idle timer, so a large message is not cut off mid-transfer, and a shutdown
    /// waits for the transfer (within `shutdown_grace`).
    pub(super) async fn more_body(&mut self) -> bool {
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
        self.io.end_rate();
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
        let recipients = self.envelope.recipients.len();
        let lmtp = self.shared.config.lmtp;
        let span = self.transaction.clone();
        if !body.finish().await {
            warn!(parent: &span, "the body sink failed");
            metrics::message_rejected(Stage::Storage);
            let reply = replies::CANNOT_STORE;
            return vec![reply; if lmtp { recipients } else { 1 }];
        }
        let size = body.size;
        info!(parent: &span, size, recipients, "message received");
        drop(body);
        if lmtp {
            let in_span = span.clone();
            let r = call_hook!(self, "handle_lmtp_data", |h, session, envelope| h
                .handle_lmtp_data(session, envelope)
                .instrument(in_span));
            let decided = match r {
                Ok(decided) => decided,
                Err(error) => Some(vec![self.exception_reply(&error).await]),
            };
            if let Some(mut replies) = decided.filter(|r| !r.is_empty()) {
                let last = replies[replies.len() - 1].clone();
                replies.resize(recipients, last);
                count_message(&replies, size, recipients);
                return replies;
            }
        }
        let r = call_hook!(self, "handle_data", |h, session, envelope| h
            .handle_data(session, envelope)
            .instrument(span));
        let reply = self.settle(r).await;
        let replies = vec![reply; if lmtp { recipients } else { 1 }];
        count_message(&replies, size, recipients);
        replies
    }

    /// One BDAT chunk (RFC 3030): exactly `chunk.size` octets follow the command line, with
    /// no dot-stuffing and no end marker. They are consumed whatever the reply, so that the
    /// next command is read where it starts. Returns false when the connection is gone.
    pub(super) async fn bdat(&mut self, chunk: Bdat) -> bool {
        let refused = self.transaction_ready().err();
        if refused.is_none() && !self.phase.is_chunking() {
            let body = self.start_body().await;
            self.phase.chunking(Chunking {
                body,
                size: 0,
                too_big: false,
            });
        }
        let limit = self.shared.config.max_message_size;
        // Whether this chunk's octets go into the body (else they are read and dropped).
        let keep = match self.phase.chunks() {
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
        self.io.start_rate(self.shared.config.min_data_rate);
        loop {
            let bytes = self.io.take_up_to(remaining);
            remaining -= bytes.len();
            if keep && let Some(state) = self.phase.chunks() {
                state.body.write(&mut self.envelope.content, bytes).await;
                if state.body.aborted {
                    info!("the body sink dropped the connection");
                    return false;
                }
            }
            if remaining == 0 {
                self.io.end_rate();
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
        let too_big = self.phase.chunks().is_some_and(|state| state.too_big);
        if !chunk.last {
            self.io.push(&if too_big {
                replies::TOO_MUCH_DATA
            } else {
                replies::octets_received(chunk.size)
            });
            return true;
        }
        let size = self.phase.chunks().map_or(0, |state| state.size);
        let replies = match self.phase.take_chunks() {
            Some(state) if !too_big => self.deliver(state.body).await,
            _ => {
                metrics::message_rejected(Stage::Size);
                vec![replies::TOO_MUCH_DATA]
            }
        };
        self.reset_envelope();
        self.push_all(&replies) && self.message_done(size)
    }
}

/// Counts a delivered message: accepted when any recipient got a 2xx (LMTP answers each).
fn count_message(replies: &[Reply], size: usize, recipients: usize) {
    if replies.iter().any(Reply::is_positive) {
        metrics::message_accepted(size, recipients);
    } else {
        metrics::message_rejected(Stage::Data);
    }
}
