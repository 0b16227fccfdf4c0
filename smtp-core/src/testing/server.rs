//! [`TestServer`] and its builder.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::faults::{Fault, Faults};
use super::message::Message;
use super::quickack::QuickAck;
use super::recorder::{Accept, Recorder};
use super::store::{MessageStore, WaitError};
use super::transcript::{Transcript, Transcripts};
use crate::auth::StaticUsers;
use crate::config::Config;
use crate::handler::Handler;
use crate::server::ServerHandle;
use crate::session::Peer;

/// A real SMTP server on `127.0.0.1`, on a port the system picks, in the current tokio
/// runtime; it stops when dropped. See the [module documentation](super).
///
/// Its connections are served as [`ServerHandle::serve_stream`] serves them: the per-address
/// limits (`max_connections_per_ip`) do not apply.
pub struct TestServer {
    handle: Option<Arc<ServerHandle>>,
    accepting: Vec<JoinHandle<()>>,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    ca_pem: Option<String>,
    store: MessageStore,
    transcripts: Arc<Transcripts>,
    faults: Faults,
}

/// How a [`TestServer`] is set up: [`TestServer::builder`].
pub struct TestServerBuilder<H = Accept> {
    handler: H,
    config: Config,
    users: Vec<(String, String)>,
    self_signed: bool,
    faults: Faults,
}

impl TestServer {
    /// Starts a server that accepts every message, with the default [`Config`].
    ///
    /// # Panics
    /// When it cannot listen on `127.0.0.1`, or outside a tokio runtime.
    pub async fn start() -> TestServer {
        TestServer::builder().start().await
    }

    /// Starts a setup: a config, a handler, users, TLS, faults.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            handler: Accept,
            config: Config::default(),
            users: Vec::new(),
            self_signed: false,
            faults: Faults::default(),
        }
    }

    /// The address of the plain (and STARTTLS) listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the implicit TLS listener, with
    /// [`tls_self_signed`](TestServerBuilder::tls_self_signed).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The PEM of the CA that signed the server's certificate, with
    /// [`tls_self_signed`](TestServerBuilder::tls_self_signed): what a client must trust.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<Message> {
        self.store
            .messages()
            .iter()
            .map(|m| (**m).clone())
            .collect()
    }

    /// The store the messages are recorded in: to [`subscribe`](MessageStore::subscribe) to
    /// new ones, or to look one up by id.
    pub fn store(&self) -> &MessageStore {
        &self.store
    }

    /// Waits until at least `n` messages were accepted (counted since the start or the last
    /// [`clear`](Self::clear)) and returns them all; an error says how many arrived in time.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Message>, WaitError> {
        let messages = self.store.wait_for(n, timeout).await?;
        Ok(messages.iter().map(|m| (**m).clone()).collect())
    }

    /// Forgets the messages and transcripts recorded so far.
    pub fn clear(&self) {
        self.store.clear();
        self.transcripts.clear();
    }

    /// Every connection's dialogue so far, in the order they connected.
    pub fn transcripts(&self) -> Vec<Transcript> {
        self.transcripts.snapshot()
    }

    /// The faults, changeable while the server runs.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Stops the server and waits for its connections to end (see
    /// [`ServerHandle::shutdown`]). Dropping it stops it too, without waiting.
    pub async fn stop(mut self) {
        self.stopping().await;
    }

    /// Stops accepting, then shuts the server down.
    fn stopping(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let accepting = std::mem::take(&mut self.accepting);
        let handle = self.handle.take();
        async move {
            for task in accepting {
                task.abort();
                let _ = task.await;
            }
            if let Some(handle) = handle.and_then(|h| Arc::try_unwrap(h).ok()) {
                handle.shutdown().await;
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(self.stopping());
        }
    }
}

/// Accepts connections for the server: its sockets ACK at once (see `quickack`).
async fn accept(listener: TcpListener, handle: Arc<ServerHandle>, implicit_tls: bool) {
    loop {
        if let Ok((stream, addr)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            handle.serve_stream(QuickAck(stream), Peer::Tcp(addr), implicit_tls);
        }
    }
}

impl<H: Handler> TestServerBuilder<H> {
    /// The server's configuration (limits, extensions, `require_starttls`…).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Runs `handler` behind the kit: its replies apply, and what it accepts is recorded.
    pub fn handler<H2: Handler>(self, handler: H2) -> TestServerBuilder<H2> {
        TestServerBuilder {
            handler,
            config: self.config,
            users: self.users,
            self_signed: self.self_signed,
            faults: self.faults,
        }
    }

    /// Accepts AUTH PLAIN and LOGIN for these logins and passwords (replacing
    /// `config.authenticator`). Without TLS, AUTH is allowed in the clear.
    pub fn users<U, P>(mut self, users: impl IntoIterator<Item = (U, P)>) -> Self
    where
        U: Into<String>,
        P: Into<String>,
    {
        self.users
            .extend(users.into_iter().map(|(u, p)| (u.into(), p.into())));
        self
    }

    /// Generates a certificate for `localhost` and `127.0.0.1`, offers STARTTLS and listens
    /// for implicit TLS too; the CA is [`TestServer::ca_pem`].
    pub fn tls_self_signed(mut self) -> Self {
        self.self_signed = true;
        self
    }

    /// A fault from the start; more can be added while the server runs.
    pub fn fault(self, fault: Fault) -> Self {
        self.faults.add(fault);
        self
    }

    /// Starts the server.
    ///
    /// # Panics
    /// When it cannot listen on `127.0.0.1` or make the certificate, or outside a tokio
    /// runtime.
    pub async fn start(self) -> TestServer {
        let mut config = self.config;
        let mut ca_pem = None;
        if self.self_signed {
            let made = super::cert::self_signed().unwrap_or_else(|e| panic!("{e}"));
            config.tls = Some(made.tls);
            ca_pem = Some(made.ca_pem);
        }
        if !self.users.is_empty() {
            let users = self.users.iter().fold(StaticUsers::new(), |users, (u, p)| {
                users.user(u.as_str(), p.as_str())
            });
            config.authenticator = Some(users.into());
            if config.tls.is_none() {
                config.auth_require_tls = false;
            }
        }
        let tls = config.tls.is_some();
        let store = MessageStore::new();
        let transcripts = Arc::new(Transcripts::default());
        let recorder = Recorder::new(self.handler)
            .with_store(store.clone())
            .with_faults(self.faults.clone());
        let server = recorder.server(config).observe(transcripts.clone());
        let handle = Arc::new(server.start());
        let mut addrs = Vec::new();
        let mut accepting = Vec::new();
        for implicit_tls in [false, true].into_iter().take(if tls { 2 } else { 1 }) {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("listen on 127.0.0.1");
            addrs.push(listener.local_addr().expect("a local address"));
            accepting.push(tokio::spawn(accept(listener, handle.clone(), implicit_tls)));
        }
        TestServer {
            addr: addrs[0],
            tls_addr: addrs.get(1).copied(),
            ca_pem,
            handle: Some(handle),
            accepting,
            store,
            transcripts,
            faults: self.faults,
        }
    }
}
