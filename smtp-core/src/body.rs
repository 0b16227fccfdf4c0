//! Where a message body goes while it arrives: [`BodyMode`] and [`BodySink`].
//!
//! By default the server collects the body into `Envelope::content` (bounded by
//! `Config::max_message_size`) and calls `handle_data`. A handler that wants the body as a
//! stream, or not at all, returns another mode from `Handler::handle_body`, which the server
//! calls when the body starts (after `354`, or at the first `BDAT` chunk). DATA and BDAT share
//! this path: a sink sees the decoded message (dot-unstuffed after DATA, raw chunks after BDAT)
//! in pieces of at most the read buffer's size, so memory stays bounded whatever the size.

use std::future::Future;

use futures_util::future::BoxFuture;

/// What the server does with a message body.
#[derive(Default)]
#[non_exhaustive]
pub enum BodyMode {
    /// Collect it into `Envelope::content`. The default.
    #[default]
    Buffer,
    /// Drop it as it arrives; `Envelope::content` stays empty.
    Discard,
    /// Hand it to a sink as it arrives; `Envelope::content` stays empty. Made with
    /// [`BodyMode::stream`].
    Stream(BoxedSink),
}

impl BodyMode {
    /// Streams the body into `sink`.
    pub fn stream(sink: impl BodySink + 'static) -> BodyMode {
        BodyMode::Stream(BoxedSink(Box::new(sink)))
    }
}

/// A [`BodySink`] of any type, as [`BodyMode::Stream`] holds it.
pub struct BoxedSink(Box<dyn DynBodySink>);

impl BoxedSink {
    pub(crate) async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.0.write_boxed(chunk).await
    }

    pub(crate) async fn finish(&mut self) -> std::io::Result<()> {
        self.0.finish_boxed().await
    }
}

impl std::fmt::Debug for BodyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyMode::Buffer => "Buffer",
            BodyMode::Discard => "Discard",
            BodyMode::Stream(_) => "Stream(..)",
        })
    }
}

/// A destination for a message body that arrives in pieces.
///
/// The server calls [`write`](BodySink::write) for each piece in order, then, if the whole
/// body arrived within the limits, [`finish`](BodySink::finish), and then `handle_data` (or
/// `handle_lmtp_data`) as usual. If the body is refused (too large, a line too long), the
/// transaction is reset or the connection is lost, the sink is dropped without `finish`: an
/// implementation discards what it wrote in its `Drop`. An error from `write` or `finish`
/// makes the server answer `451 4.3.0 Error: cannot store the message` without calling
/// `handle_data`; the rest of the body is still read (and dropped) so the session stays in step.
/// An error of kind [`ConnectionAborted`](std::io::ErrorKind::ConnectionAborted) from `write`
/// instead closes the connection at once, without a reply: what a test double does to play a
/// server that drops its client in the middle of DATA.
///
/// Implement both methods with ordinary `async fn`s.
pub trait BodySink: Send {
    /// Takes the next piece of the body.
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send;

    /// The body is complete.
    fn finish(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
}

/// [`BodySink`] with boxed futures, so that a [`BodyMode`] can hold any sink.
trait DynBodySink: Send {
    fn write_boxed<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>>;
    fn finish_boxed(&mut self) -> BoxFuture<'_, std::io::Result<()>>;
}

impl<T: BodySink> DynBodySink for T {
    fn write_boxed<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>> {
        Box::pin(self.write(chunk))
    }

    fn finish_boxed(&mut self) -> BoxFuture<'_, std::io::Result<()>> {
        Box::pin(self.finish())
    }
}
