//! Where a message body goes while it arrives: [`BodyMode`] and [`BodySink`].
//!
//! By default the server collects the body into `Envelope::content` (bounded by
//! `Config::data_size_limit`) and calls `handle_data`. A handler that wants the body as a
//! stream, or not at all, returns another mode from `Handler::handle_body`, which the server
//! calls when the body starts (after `354`, or at the first `BDAT` chunk). DATA and BDAT share
//! this path: a sink sees the decoded message (dot-unstuffed after DATA, raw chunks after BDAT)
//! in pieces of at most the read buffer's size, so memory stays bounded whatever the size.

/// The future type of [`BodySink`]'s methods: `Pin<Box<dyn Future<Output = T> + Send + 'a>>`.
pub use futures_util::future::BoxFuture;

/// What the server does with a message body.
#[derive(Default)]
pub enum BodyMode {
    /// Collect it into `Envelope::content`. The default.
    #[default]
    Buffer,
    /// Drop it as it arrives; `Envelope::content` stays empty.
    Discard,
    /// Hand it to a sink as it arrives; `Envelope::content` stays empty.
    Stream(Box<dyn BodySink>),
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
pub trait BodySink: Send {
    /// Takes the next piece of the body.
    fn write<'a>(&'a mut self, chunk: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>>;

    /// The body is complete.
    fn finish(&mut self) -> BoxFuture<'_, std::io::Result<()>>;
}
