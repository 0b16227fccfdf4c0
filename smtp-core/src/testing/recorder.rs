//! The handler a [`TestServer`](super::TestServer) runs: the user's handler, wrapped so that
//! faults come first and every accepted message is recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::faults::{Command, Decision, Faults};
use crate::auth::AuthAbort;
use crate::auth::{AuthArgs, AuthMechanism, AuthResult, AuthServer, Mechanism};
use crate::body::{BodyMode, BodySink};
use crate::envelope::{Envelope, Recipient};
use crate::handler::{Handler, HookError};
use crate::proto::params::{MailParams, RcptParams};
use crate::proto::proxy::ProxyData;
use crate::proto::{MailDsn, Reply};
use crate::session::{Peer, Session};
use crate::tls::TlsInfo;

/// Accepts every message and keeps its body in `Envelope::content`: the default handler of a
/// [`TestServer`](super::TestServer).
#[derive(Debug, Default, Clone, Copy)]
pub struct Accept;

impl Handler for Accept {}

/// An accepted message, as a [`TestServer`](super::TestServer) recorded it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Message {
    /// The reverse-path of MAIL FROM; `"<>"` for the null sender.
    pub mail_from: String,
    /// The MAIL parameters, upper-cased (`"SIZE=1024"`).
    pub mail_options: Vec<String>,
    /// MAIL's DSN parameters (`RET`, `ENVID`).
    pub dsn: MailDsn,
    /// The accepted recipients with their parameters and DSN requests.
    pub recipients: Vec<Recipient>,
    /// The message as received (RFC 5322, dot-unstuffed). Empty when the handler streamed or
    /// discarded the body (`Handler::handle_body`).
    pub raw: Vec<u8>,
    /// Where the client connected from.
    pub peer: Peer,
    /// The HELO/EHLO name.
    pub helo: Option<String>,
    /// What TLS the session negotiated, if any.
    pub tls: Option<TlsInfo>,
    /// The AUTH mechanism, when the client authenticated.
    pub auth_mechanism: Option<String>,
    /// The authenticated login, when the mechanism names one.
    pub auth_login: Option<String>,
    /// When the message was accepted.
    pub received: SystemTime,
}

impl Message {
    /// The recipients' addresses.
    pub fn rcpt_tos(&self) -> Vec<&str> {
        self.recipients.iter().map(|r| r.address.as_str()).collect()
    }

    /// The message parsed with mail-parser (`None` when it is not parsable, or empty).
    pub fn parsed(&self) -> Option<mail_parser::Message<'_>> {
        mail_parser::MessageParser::default().parse(&self.raw)
    }

    /// The `Subject:` header, decoded.
    pub fn subject(&self) -> Option<String> {
        self.parsed()?.subject().map(str::to_owned)
    }

    /// The first text part (or the HTML part as text), decoded.
    pub fn text(&self) -> Option<String> {
        self.parsed()?.body_text(0).map(|t| t.into_owned())
    }
}

/// The messages recorded so far, and a signal for every new one.
pub(super) struct Store {
    messages: Mutex<Vec<Message>>,
    count: watch::Sender<usize>,
}

impl Default for Store {
    fn default() -> Store {
        Store {
            messages: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
        }
    }
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Message>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, message: Message) {
        let mut messages = self.lock();
        messages.push(message);
        self.count.send_replace(messages.len());
    }

    pub(super) fn messages(&self) -> Vec<Message> {
        self.lock().clone()
    }

    pub(super) fn clear(&self) {
        let mut messages = self.lock();
        messages.clear();
        self.count.send_replace(0);
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }
}

/// The user's handler, behind the faults and the recorder.
pub(super) struct Recorder<H> {
    pub(super) inner: Arc<H>,
    pub(super) faults: Faults,
    pub(super) store: Arc<Store>,
}

/// What the faults decided for the message in progress, from `handle_body` to `handle_data`.
struct DataDecision(Decision);

/// A sink that closes the connection at its first piece of the body.
struct DropConnection;

impl BodySink for DropConnection {
    async fn write(&mut self, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::ErrorKind::ConnectionAborted.into())
    }

    async fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn wait(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

impl<H: Handler> Recorder<H> {
    /// Applies the faults for one command: `Some(reply)` answers it instead of the handler.
    async fn fault(&self, command: Command, arg: Option<&str>, session: &Session) -> Option<Reply> {
        let decision = self.faults.decide(command, arg, session);
        wait(decision.delay).await;
        decision.reply
    }

    fn record(&self, session: &Session, envelope: &Envelope) {
        self.store.record(Message {
            mail_from: envelope.mail_from.clone().unwrap_or_default(),
            mail_options: envelope.mail_options.clone(),
            dsn: envelope.dsn.clone(),
            recipients: envelope.recipients.clone(),
            raw: envelope.content.clone(),
            peer: session.peer().clone(),
            helo: session.host_name().map(str::to_owned),
            tls: session.tls().cloned(),
            auth_mechanism: session.auth_mechanism().map(str::to_owned),
            auth_login: session
                .login_data()
                .map(|l| String::from_utf8_lossy(l).into_owned()),
            received: SystemTime::now(),
        });
    }
}

impl<H: Handler> Handler for Recorder<H> {
    async fn handle_helo(
        &self,
        session: &mut Session,
        envelope: &mut Envelope,
        hostname: &str,
    ) -> Reply {
        if let Some(reply) = self.fault(Command::Ehlo, Some(hostname), session).await {
            return reply;
        }
        self.inner.handle_helo(session, envelope, hostname).await
    }

    async fn handle_ehlo(
        &self,
        session: &mut Session,
        envelope: &mut Envelope,
        hostname: &str,
        responses: Reply,
    ) -> Reply {
        if let Some(reply) = self.fault(Command::Ehlo, Some(hostname), session).await {
            return reply;
        }
        self.inner
            .handle_ehlo(session, envelope, hostname, responses)
            .await
    }

    async fn handle_mail(
        &self,
        session: &mut Session,
        envelope: &mut Envelope,
        address: &str,
        params: &MailParams,
    ) -> Reply {
        if let Some(reply) = self.fault(Command::Mail, Some(address), session).await {
            return reply;
        }
        self.inner
            .handle_mail(session, envelope, address, params)
            .await
    }

    async fn handle_rcpt(
        &self,
        session: &mut Session,
        envelope: &mut Envelope,
        address: &str,
        params: &RcptParams,
    ) -> Reply {
        if let Some(reply) = self.fault(Command::Rcpt, Some(address), session).await {
            return reply;
        }
        self.inner
            .handle_rcpt(session, envelope, address, params)
            .await
    }

    async fn handle_body(&self, session: &mut Session, envelope: &mut Envelope) -> BodyMode {
        let decision = self.faults.decide(Command::Data, None, session);
        let drop = decision.drop_in_data;
        session.extensions_mut().insert(DataDecision(decision));
        if drop {
            return BodyMode::stream(DropConnection);
        }
        self.inner.handle_body(session, envelope).await
    }

    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        let decision = session.extensions_mut().remove::<DataDecision>();
        if let Some(DataDecision(decision)) = decision {
            wait(decision.delay).await;
            if let Some(reply) = decision.reply {
                return reply;
            }
        }
        let reply = self.inner.handle_data(session, envelope).await;
        if reply.is_positive() {
            self.record(session, envelope);
        }
        reply
    }

    async fn handle_lmtp_data(
        &self,
        session: &mut Session,
        envelope: &mut Envelope,
    ) -> Option<Vec<Reply>> {
        self.inner.handle_lmtp_data(session, envelope).await
    }

    async fn handle_rset(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        self.inner.handle_rset(session, envelope).await
    }

    async fn handle_noop(
        &self,
        session: &mut Session,
        envelope: &mut Envelope,
        arg: Option<&str>,
    ) -> Reply {
        self.inner.handle_noop(session, envelope, arg).await
    }

    async fn handle_quit(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        self.inner.handle_quit(session, envelope).await
    }

    async fn handle_vrfy(
        &self,
        session: &mut Session,
        envelope: &mut Envelope,
        address: &str,
    ) -> Reply {
        self.inner.handle_vrfy(session, envelope, address).await
    }

    async fn handle_exception(&self, session: &Session, error: &HookError) -> Reply {
        self.inner.handle_exception(session, error).await
    }

    async fn handle_proxy(&self, session: &mut Session, proxy_data: &ProxyData) -> bool {
        self.inner.handle_proxy(session, proxy_data).await
    }

    async fn handle_auth(
        &self,
        server: &mut AuthServer<'_>,
        args: &AuthArgs,
    ) -> Option<AuthResult> {
        self.inner.handle_auth(server, args).await
    }

    async fn handle_starttls(&self, session: &mut Session, envelope: &mut Envelope) -> bool {
        self.inner.handle_starttls(session, envelope).await
    }
}

/// One of the user's handler's own mechanisms, registered at run time on the recorder's
/// server (the recorder's type cannot list them statically).
pub(super) struct Forward<H> {
    pub(super) inner: Arc<H>,
    pub(super) mechanism: Mechanism<H>,
}

impl<H: Handler> AuthMechanism for Forward<H> {
    fn name(&self) -> &str {
        self.mechanism.name
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        (self.mechanism.run)(&self.inner, server, args).await
    }
}
