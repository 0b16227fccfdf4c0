//! Where a connection is in the protocol: one value, changed by named transitions.

use super::body::Chunking;

/// The connection's phase. Commands are checked against it (`503` out of sequence), and it
/// carries the state of a BDAT transfer between chunks.
#[derive(Default)]
pub(super) enum Phase {
    /// Before the greeting: the PROXY header, the implicit TLS handshake.
    #[default]
    Greeting,
    /// Greeted; no successful HELO/EHLO/LHLO yet (again after STARTTLS).
    Connected,
    /// After HELO/EHLO/LHLO, outside a mail transaction.
    Ready,
    /// MAIL accepted: recipients and a body may follow.
    Transaction,
    /// Reading a body after DATA's `354`.
    Data,
    /// A BDAT transfer whose last chunk has not come yet.
    Chunking(Box<Chunking>),
    /// In an AUTH exchange.
    Auth,
}

impl Phase {
    /// The greeting is queued.
    pub(super) fn greeted(&mut self) {
        *self = Phase::Connected;
    }

    /// HELO/EHLO/LHLO accepted.
    pub(super) fn hello(&mut self) {
        *self = Phase::Ready;
    }

    /// The transaction ends (RSET, a delivered or refused message, a new HELO): back to
    /// `Ready`, or to `Connected` when the client never said HELO. Drops a BDAT body in
    /// progress, and with it what a sink wrote. Before the greeting and inside an AUTH
    /// exchange there is no transaction to end, so the phase stays.
    pub(super) fn end_transaction(&mut self, hello_done: bool) {
        if matches!(self, Phase::Greeting | Phase::Auth) {
            return;
        }
        *self = if hello_done {
            Phase::Ready
        } else {
            Phase::Connected
        };
    }

    /// MAIL accepted.
    pub(super) fn mail(&mut self) {
        *self = Phase::Transaction;
    }

    /// DATA's `354` is sent.
    pub(super) fn data(&mut self) {
        *self = Phase::Data;
    }

    /// The first BDAT chunk of a transaction.
    pub(super) fn chunking(&mut self, chunking: Chunking) {
        *self = Phase::Chunking(Box::new(chunking));
    }

    /// An AUTH exchange starts; `restore` goes back to where it started from.
    pub(super) fn auth(&mut self) -> Phase {
        std::mem::replace(self, Phase::Auth)
    }

    /// Back from an AUTH exchange (or any temporary phase).
    pub(super) fn restore(&mut self, before: Phase) {
        *self = before;
    }

    /// STARTTLS: the session starts over, before HELO.
    pub(super) fn restart(&mut self) {
        *self = Phase::Connected;
    }

    /// Whether a successful HELO/EHLO/LHLO came.
    pub(super) fn hello_done(&self) -> bool {
        !matches!(self, Phase::Greeting | Phase::Connected)
    }

    /// Whether MAIL started a transaction that has not ended.
    pub(super) fn in_transaction(&self) -> bool {
        matches!(self, Phase::Transaction | Phase::Data | Phase::Chunking(_))
    }

    /// The BDAT transfer in progress.
    pub(super) fn chunks(&mut self) -> Option<&mut Chunking> {
        match self {
            Phase::Chunking(chunking) => Some(chunking),
            _ => None,
        }
    }

    /// Whether a BDAT transfer is in progress.
    pub(super) fn is_chunking(&self) -> bool {
        matches!(self, Phase::Chunking(_))
    }

    /// Takes the BDAT transfer out, leaving the transaction open.
    pub(super) fn take_chunks(&mut self) -> Option<Chunking> {
        match std::mem::replace(self, Phase::Transaction) {
            Phase::Chunking(chunking) => Some(*chunking),
            other => {
                *self = other;
                None
            }
        }
    }

    /// The phase's name, for logs.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Phase::Greeting => "greeting",
            Phase::Connected => "connected",
            Phase::Ready => "ready",
            Phase::Transaction => "transaction",
            Phase::Data => "data",
            Phase::Chunking(_) => "bdat",
            Phase::Auth => "auth",
        }
    }
}
