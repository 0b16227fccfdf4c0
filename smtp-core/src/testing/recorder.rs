//! The handler a [`TestServer`](super::TestServer) runs: the user's handler, wrapped so that
//! faults come first and every accepted message is recorded.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::faults::{Command, Decision, Faults};
use super::message::Message;
use super::store::MessageStore;
use crate::auth::AuthAbort;
use crate::auth::{AuthArgs, AuthMechanism, AuthResult, AuthServer, Mechanism};
use crate::body::{BodyMode, BodySink};
use crate::config::Config;
use crate::envelope::Envelope;
use crate::handler::{Handler, HookError};
use crate::proto::Reply;
use crate::proto::params::{MailParams, RcptParams};
use crate::proto::proxy::ProxyData;
use crate::server::Server;
use crate::session::Session;

/// Accepts every message and keeps its body in `Envelope::content`: the default handler of a
/// [`TestServer`](super::TestServer).
#[derive(Debug, Default, Clone, Copy)]
pub struct Accept;

impl Handler for Accept {}

/// A handler behind the kit's faults and recorder: faults come first, then `H` answers, and
/// every message `H` accepts goes to the [`MessageStore`]. [`TestServer`](super::TestServer)
/// runs one; a program of its own (a mail catcher) serves one with
/// [`Recorder::server`].
///
/// ```
/// use smtp_core::Config;
/// use smtp_core::testing::{Accept, Faults, MessageStore, Recorder};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let store = MessageStore::bounded(1000, 64 << 20);
/// let faults = Faults::default();
/// let recorder = Recorder::new(Accept).with_store(store.clone()).with_faults(faults.clone());
/// let server = recorder.server(Config::default()).listen("127.0.0.1:0").await?.start();
/// // … `store.subscribe()` sees every accepted message; `faults` can change at any time.
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Recorder<H = Accept> {
    inner: Arc<H>,
    faults: Faults,
    store: MessageStore,
}

impl<H: Handler> Recorder<H> {
    /// Records what `handler` accepts in a new unbounded store, without faults.
    pub fn new(handler: H) -> Recorder<H> {
        Recorder {
            inner: Arc::new(handler),
            faults: Faults::default(),
            store: MessageStore::new(),
        }
    }

    /// Records into `store` (a clone of the store is a handle on it).
    pub fn with_store(mut self, store: MessageStore) -> Recorder<H> {
        self.store = store;
        self
    }

    /// Plays `faults` (a clone of the faults is a handle on them).
    pub fn with_faults(mut self, faults: Faults) -> Recorder<H> {
        self.faults = faults;
        self
    }

    /// Where accepted messages go.
    pub fn store(&self) -> &MessageStore {
        &self.store
    }

    /// The faults it plays.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// A server that runs this recorder, with the handler's own AUTH mechanisms
    /// (`#[auth_mechanism]`) forwarded to it: serving the recorder with [`Server::new`]
    /// directly would offer only the built-in and [`Server::mechanism`] ones.
    pub fn server(self, config: Config) -> Server<Recorder<H>> {
        let inner = self.inner.clone();
        H::mechanisms()
            .iter()
            .fold(Server::new(self, config), |server, &mechanism| {
                let forward = Forward {
                    inner: inner.clone(),
                    mechanism,
                };
                server
                    .mechanism(forward)
                    .expect("the handler's mechanisms have valid names")
            })
    }
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
            id: 0,
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
struct Forward<H> {
    inner: Arc<H>,
    mechanism: Mechanism<H>,
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
