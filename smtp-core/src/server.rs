//! Accepting connections, limiting them, and shutting down gracefully.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::FutureExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::auth::registry::{DynMechanism, Registry};
use crate::auth::{AuthMechanism, Login, Plain, is_valid_mechanism_name};
use crate::config::Config;
use crate::connection::observe::Observer;
use crate::connection::{Connection, Shared};
use crate::governance::Limits;
use crate::handler::Handler;
use crate::metrics::{self, ListenerKind};
use crate::session::Peer;
use crate::stream::Transport;

struct Listener {
    listener: TcpListener,
    implicit_tls: bool,
}

struct UnixListener {
    listener: tokio::net::UnixListener,
    path: PathBuf,
}

/// An SMTP server being set up: a handler, a [`Config`], listeners.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use smtp_core::{Config, Server, handlers::Sink};
/// let handle = Server::new(Sink, Config::default()).listen("127.0.0.1:0").await?.start();
/// println!("listening on {}", handle.local_addr());
/// handle.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Server<H: Handler> {
    handler: H,
    config: Config,
    mechanisms: Vec<(String, Arc<dyn DynMechanism>)>,
    listeners: Vec<Listener>,
    unix_listeners: Vec<UnixListener>,
    observer: Option<Arc<dyn Observer>>,
}

/// A mechanism name that RFC 4422 does not allow.
#[derive(Debug)]
pub struct InvalidMechanismName(pub String);

impl std::fmt::Display for InvalidMechanismName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid SASL mechanism name `{}`: use 1 to 20 of A-Z 0-9 - _",
            self.0
        )
    }
}

impl std::error::Error for InvalidMechanismName {}

impl<H: Handler> Server<H> {
    /// A server for `handler` with `config`; it listens nowhere yet.
    pub fn new(handler: H, config: Config) -> Server<H> {
        let builtins: [Arc<dyn DynMechanism>; 2] = [Arc::new(Login), Arc::new(Plain)];
        Server {
            handler,
            config,
            mechanisms: ["LOGIN", "PLAIN"]
                .into_iter()
                .map(String::from)
                .zip(builtins)
                .collect(),
            listeners: Vec::new(),
            unix_listeners: Vec::new(),
            observer: None,
        }
    }

    /// Shows every connection's dialogue to `observer` (the test kit's transcripts).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn observe(mut self, observer: Arc<dyn Observer>) -> Server<H> {
        self.observer = Some(observer);
        self
    }

    /// Registers an AUTH mechanism at run time under its own name, the way
    /// `#[auth_mechanism]` does at compile time. It replaces a built-in of the same name; the
    /// handler's own mechanisms replace it.
    pub fn mechanism(
        mut self,
        mechanism: impl AuthMechanism,
    ) -> Result<Server<H>, InvalidMechanismName> {
        let name = mechanism.name().to_owned();
        if !is_valid_mechanism_name(&name) {
            return Err(InvalidMechanismName(name));
        }
        self.mechanisms.push((name, Arc::new(mechanism)));
        Ok(self)
    }

    /// Listens on `addr` (port 0 picks a free port).
    pub async fn listen(self, addr: impl ToSocketAddrs) -> io::Result<Server<H>> {
        self.add_listener(addr, false).await
    }

    /// Listens on `addr` with implicit TLS (RFC 8314 submissions): the TLS handshake comes
    /// before the greeting. Needs `config.tls`.
    pub async fn listen_implicit_tls(self, addr: impl ToSocketAddrs) -> io::Result<Server<H>> {
        if self.config.tls.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "implicit TLS needs a TLS configuration",
            ));
        }
        self.add_listener(addr, true).await
    }

    /// Listens on a Unix-domain socket at `path`, in any mode (SMTP, or LMTP as RFC 2033
    /// intends). A stale socket file left there is removed first; any other file is an error.
    /// Clients get [`Peer::Unix`]; only `max_connections` applies to them. The socket file is
    /// removed on shutdown; [`ServerHandle::local_addrs`] lists TCP listeners only.
    pub fn listen_unix(mut self, path: impl Into<PathBuf>) -> io::Result<Server<H>> {
        use std::os::unix::fs::FileTypeExt as _;
        let path = path.into();
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.file_type().is_socket()
        {
            std::fs::remove_file(&path)?;
        }
        let listener = tokio::net::UnixListener::bind(&path)?;
        self.unix_listeners.push(UnixListener { listener, path });
        Ok(self)
    }

    async fn add_listener(
        mut self,
        addr: impl ToSocketAddrs,
        implicit_tls: bool,
    ) -> io::Result<Server<H>> {
        let listener = TcpListener::bind(addr).await?;
        self.listeners.push(Listener {
            listener,
            implicit_tls,
        });
        Ok(self)
    }

    /// Starts serving in the background and returns the handle that stops it.
    pub fn start(self) -> ServerHandle {
        let config = self.config;
        if config.auth_required && !config.auth_require_tls {
            warn!(
                "auth_required is set but auth_require_tls is not: passwords may cross the network in the clear"
            );
        }
        let registry = Registry::new(
            H::mechanisms(),
            &self.mechanisms,
            &config.auth_exclude_mechanism,
        );
        info!("available AUTH mechanisms: {}", registry.advertised());
        metrics::describe();
        let shared = Arc::new(Shared {
            hostname: Arc::from(config.hostname.as_str()),
            handler: self.handler,
            config,
            registry,
            observer: self.observer,
        });
        let limits = Arc::new(Limits::default());
        let shutdown = CancellationToken::new();
        let kill = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut addrs = Vec::new();
        for Listener {
            listener,
            implicit_tls,
        } in self.listeners
        {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, implicit_tls, "listening");
                addrs.push(addr);
            }
            let accept = accept_loop(
                listener,
                implicit_tls,
                shared.clone(),
                limits.clone(),
                shutdown.clone(),
                kill.clone(),
                tracker.clone(),
            );
            tracker.spawn(accept);
        }
        for UnixListener { listener, path } in self.unix_listeners {
            info!(path = %path.display(), "listening");
            let accept = unix_accept_loop(
                listener,
                path,
                shared.clone(),
                limits.clone(),
                shutdown.clone(),
                kill.clone(),
                tracker.clone(),
            );
            tracker.spawn(accept);
        }
        let grace = shared.config.shutdown_grace;
        let spawner: Spawner = {
            let (shutdown, kill, tracker) = (shutdown.clone(), kill.clone(), tracker.clone());
            Arc::new(move |stream, peer, implicit_tls| {
                let connection =
                    Connection::new(shared.clone(), stream, peer, shutdown.clone(), kill.clone());
                tracker.spawn(connection.run(ListenerKind::Stream, implicit_tls));
            })
        };
        ServerHandle {
            addrs,
            shutdown,
            kill,
            tracker,
            grace,
            spawner,
        }
    }
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    implicit_tls: bool,
    shared: Arc<Shared<H>>,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
    kill: CancellationToken,
    tracker: TaskTracker,
) {
    // A listener bound to one address gives that address to every connection; only a
    // wildcard listener needs a getsockname per connection to learn it.
    let bound = listener
        .local_addr()
        .ok()
        .filter(|a| !a.ip().is_unspecified());
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr): (TcpStream, SocketAddr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        // A trusted proxy speaks for many clients: each is counted by the address in its
        // PROXY header or XCLIENT command, once that is read.
        let config = &shared.config;
        let proxied = match &config.proxy_protocol {
            Some(proxy) => proxy.trusts(addr.ip()),
            None => crate::config::trusted(&config.xclient_trusted, addr.ip()),
        };
        let admitted = if proxied {
            limits
                .admit_any(&shared.config)
                .map(|slot| [Some(slot), None])
        } else {
            limits
                .admit(addr.ip(), &shared.config)
                .map(|[a, b]| [Some(a), Some(b)])
        };
        match admitted {
            Ok(slots) => {
                let local = bound.or_else(|| stream.local_addr().ok());
                let mut connection = Connection::new(
                    shared,
                    stream,
                    Peer::Tcp(addr),
                    shutdown.clone(),
                    kill.clone(),
                );
                connection.reached(local);
                if proxied {
                    connection.count_proxied_client(limits.clone());
                }
                // `map`, not an `async move` block around `.await`: the block would keep two
                // copies of the connection's future in every task.
                let run = connection.run(ListenerKind::Tcp, implicit_tls);
                tracker.spawn(run.map(move |()| drop(slots)));
            }
            Err(text) => {
                info!(peer = %addr, "{text}");
                let line = format!("421 {text}\r\n");
                tracker.spawn(async move {
                    let mut stream = stream;
                    if !implicit_tls {
                        let _ = stream.write_all(line.as_bytes()).await;
                    }
                    let _ = stream.shutdown().await;
                });
            }
        }
    }
}

async fn unix_accept_loop<H: Handler>(
    listener: tokio::net::UnixListener,
    path: PathBuf,
    shared: Arc<Shared<H>>,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
    kill: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        match limits.admit_any(&shared.config) {
            Ok(slot) => {
                let peer = Peer::Unix(path.clone());
                let connection =
                    Connection::new(shared.clone(), stream, peer, shutdown.clone(), kill.clone());
                let run = connection.run(ListenerKind::Unix, false);
                tracker.spawn(run.map(move |()| drop(slot)));
            }
            Err(text) => {
                info!(path = %path.display(), "{text}");
                let line = format!("421 {text}\r\n");
                tracker.spawn(async move {
                    let mut stream = stream;
                    let _ = stream.write_all(line.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// A running server: its addresses, and the way to stop it.
pub struct ServerHandle {
    addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    kill: CancellationToken,
    tracker: TaskTracker,
    grace: std::time::Duration,
    spawner: Spawner,
}

/// Starts a connection on any transport; type-erased so that the handle is not generic.
type Spawner = Arc<dyn Fn(Box<dyn Transport>, Peer, bool) + Send + Sync>;

impl ServerHandle {
    /// Serves one connection that arrived some other way: a Unix socket, a socket handed over
    /// by a supervisor, or an in-memory stream (`tokio::io::duplex`) in tests and fuzzing.
    /// It shares the server's handler, settings and shutdown, but not the per-IP limits.
    /// With `implicit_tls` the TLS handshake comes first.
    pub fn serve_stream(&self, stream: impl Transport, peer: Peer, implicit_tls: bool) {
        (self.spawner)(Box::new(stream), peer, implicit_tls);
    }
    /// The address of the first listener.
    ///
    /// # Panics
    /// When the server was started without a listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The addresses of all listeners, in the order they were added.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops gracefully: no new connections; idle sessions get `421 4.3.2 … Service shutting
    /// down`; a message transfer in progress may finish within `config.shutdown_grace`;
    /// then every connection is closed.
    pub async fn shutdown(self) {
        info!("shutting down");
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("grace period over; closing the remaining connections");
            self.kill.cancel();
            self.tracker.wait().await;
        }
        info!("stopped");
    }
}
