//! What the server knows about a connection ([`Session`]).
//!
//! The engine decides every fact here — who the client is, what TLS it negotiated, whether and
//! as whom it authenticated — so hooks read them through methods and cannot change them. What
//! a handler wants to remember per session goes into [`Session::extensions_mut`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::data::AuthData;
use crate::extensions::Extensions;
use crate::proto::proxy::ProxyData;
use crate::proto::xclient::XClient;
use crate::tls::TlsInfo;

/// Where a connection comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Peer {
    /// A TCP client.
    Tcp(SocketAddr),
    /// A transport without an address.
    Local,
    /// A client of a Unix-domain socket listener; the path is the listener's socket.
    Unix(std::path::PathBuf),
}

impl Peer {
    /// The client's socket address, when it has one.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Peer::Tcp(addr) => Some(*addr),
            Peer::Local | Peer::Unix(_) => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Local => f.write_str("local"),
            Peer::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A connection's identifier, unique within the process and unlikely to repeat across
/// processes: it names the connection in every log line of its session (the `session` field
/// of the `smtp` span) and in [`Session::id`]. Shown as 16 hexadecimal digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(u64);

impl SessionId {
    /// The next identifier: a per-process random start, counted up.
    pub(crate) fn next() -> SessionId {
        use std::hash::{BuildHasher as _, Hasher as _};
        use std::sync::OnceLock;
        use std::sync::atomic::{AtomicU64, Ordering};
        static START: OnceLock<u64> = OnceLock::new();
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let start = *START.get_or_init(|| {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        SessionId(start.wrapping_add(COUNT.fetch_add(1, Ordering::Relaxed)))
    }

    /// The identifier as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The [`Session::auth_mechanism`] of a session whose login a trusted proxy vouched for
/// with XCLIENT's `LOGIN`.
pub const XCLIENT_MECHANISM: &str = "XCLIENT";

/// A successful AUTH: the mechanism and what it recorded.
#[derive(Clone, Debug)]
struct Authenticated {
    mechanism: String,
    auth_data: Option<AuthData>,
}

/// State that lives as long as the connection, or until STARTTLS starts it over.
///
/// As in aiosmtpd, a new `Session` is made on connect and again after a successful STARTTLS
/// handshake, so nothing said in plaintext (greeting, authentication, extensions) survives
/// into TLS. Build one for unit tests of a handler with [`Session::builder`].
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    peer: Peer,
    local_addr: Option<SocketAddr>,
    host_name: Option<String>,
    extended_smtp: bool,
    // Boxed: every idle connection holds a session, and these are rare or set once.
    tls: Option<Box<TlsInfo>>,
    auth: Option<Box<Authenticated>>,
    proxy_data: Option<Box<ProxyData>>,
    xclient: Option<Box<XClient>>,
    server_hostname: Arc<str>,
    extensions: Extensions,
}

impl Session {
    pub(crate) fn new(peer: Peer, server_hostname: Arc<str>) -> Session {
        Session {
            id: SessionId::next(),
            peer,
            local_addr: None,
            host_name: None,
            extended_smtp: false,
            tls: None,
            auth: None,
            proxy_data: None,
            xclient: None,
            server_hostname,
            extensions: Extensions::default(),
        }
    }

    /// A builder for sessions outside a server: for calling a handler's hooks in unit tests.
    pub fn builder(peer: Peer) -> SessionBuilder {
        SessionBuilder {
            session: Session::new(peer, Arc::from("test.invalid")),
        }
    }

    /// The connection's identifier, the same for its whole life (across STARTTLS and
    /// XCLIENT) and in every log line of the connection.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The client's address: behind the PROXY protocol, the client named in the header
    /// (the proxy's own address is only logged).
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The name the client gave in HELO/EHLO/LHLO; `None` until then.
    pub fn host_name(&self) -> Option<&str> {
        self.host_name.as_deref()
    }

    /// Whether the last greeting was EHLO or LHLO (not HELO).
    pub fn extended_smtp(&self) -> bool {
        self.extended_smtp
    }

    /// The negotiated TLS parameters, once TLS is active.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_deref()
    }

    /// Whether the connection is encrypted (STARTTLS done, or an implicit-TLS listener).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether an AUTH exchange succeeded on this session.
    pub fn authenticated(&self) -> bool {
        self.auth.is_some()
    }

    /// The mechanism of the successful AUTH exchange.
    pub fn auth_mechanism(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.mechanism.as_str())
    }

    /// What the successful AUTH mechanism recorded (`AuthResult::auth_data`).
    pub fn auth_data(&self) -> Option<&AuthData> {
        self.auth.as_ref()?.auth_data.as_ref()
    }

    /// The login of [`auth_data`](Self::auth_data), when it has one (aiosmtpd's
    /// `login_data`).
    pub fn login_data(&self) -> Option<&[u8]> {
        self.auth_data()?.login()
    }

    /// The address of this server the client's TCP connection reached (the listening socket's
    /// address, port included); `None` for Unix-domain sockets and in-memory streams. Behind a
    /// proxy it is the proxy's view that matters: see [`proxy_data`](Self::proxy_data) and
    /// [`xclient`](Self::xclient).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The PROXY protocol header's data, when the listener requires one.
    pub fn proxy_data(&self) -> Option<&ProxyData> {
        self.proxy_data.as_deref()
    }

    /// What the last XCLIENT command of a trusted proxy said (Postfix's `XCLIENT_README`);
    /// its client, HELO name and login are already this session's [`peer`](Self::peer),
    /// [`host_name`](Self::host_name) and [`login_data`](Self::login_data).
    pub fn xclient(&self) -> Option<&XClient> {
        self.xclient.as_deref()
    }

    /// The server's own host name, as used in the greeting and the HELO/EHLO replies.
    pub fn server_hostname(&self) -> &str {
        &self.server_hostname
    }

    /// The handler's own per-session values, one per type.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// The handler's own per-session values, to insert or change.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    pub(crate) fn set_peer(&mut self, peer: Peer) {
        self.peer = peer;
    }

    pub(crate) fn set_local_addr(&mut self, addr: Option<SocketAddr>) {
        self.local_addr = addr;
    }

    pub(crate) fn set_proxy_data(&mut self, data: ProxyData) {
        self.proxy_data = Some(Box::new(data));
    }

    pub(crate) fn greeted(&mut self, host_name: &str, extended: bool) {
        self.host_name = Some(host_name.to_owned());
        self.extended_smtp = extended;
    }

    pub(crate) fn authenticate(&mut self, mechanism: &str, auth_data: Option<AuthData>) {
        self.auth = Some(Box::new(Authenticated {
            mechanism: mechanism.to_owned(),
            auth_data,
        }));
    }

    /// The session that follows a TLS handshake: only the client's identity carries over.
    pub(crate) fn after_tls(&mut self, tls: TlsInfo) {
        let mut next = self.successor(self.peer.clone());
        next.tls = Some(Box::new(tls));
        *self = next;
    }

    /// A fresh session on the same transport: the id, the server address and the PROXY facts
    /// carry over, nothing the client said does.
    fn successor(&mut self, peer: Peer) -> Session {
        let mut next = Session::new(peer, self.server_hostname.clone());
        next.id = self.id;
        next.local_addr = self.local_addr;
        next.proxy_data = self.proxy_data.take();
        next
    }

    /// The session that follows XCLIENT: a new client, as after a new connection, keeping
    /// the transport's TLS and PROXY facts. `greeted` is the HELO name and whether it was
    /// EHLO; `login` the user the proxy authenticated.
    pub(crate) fn after_xclient(
        &mut self,
        peer: Peer,
        greeted: Option<(String, bool)>,
        login: Option<&str>,
        xclient: XClient,
    ) {
        let mut next = self.successor(peer);
        next.tls = self.tls.take();
        if let Some((host_name, extended)) = greeted {
            next.greeted(&host_name, extended);
        }
        if let Some(login) = login {
            let login = login.as_bytes().to_vec();
            next.authenticate(XCLIENT_MECHANISM, Some(AuthData::Verified { login }));
        }
        next.xclient = Some(Box::new(xclient));
        *self = next;
    }
}

/// Builds a [`Session`] for tests of a handler: `Session::builder(peer).tls(info).build()`.
#[derive(Debug)]
pub struct SessionBuilder {
    session: Session,
}

impl SessionBuilder {
    /// The server's host name (default `test.invalid`).
    pub fn server_hostname(mut self, name: &str) -> Self {
        self.session.server_hostname = Arc::from(name);
        self
    }

    /// The client's HELO (`extended = false`) or EHLO name.
    pub fn greeted(mut self, host_name: &str, extended: bool) -> Self {
        self.session.greeted(host_name, extended);
        self
    }

    /// An encrypted session.
    pub fn tls(mut self, tls: TlsInfo) -> Self {
        self.session.tls = Some(Box::new(tls));
        self
    }

    /// A session that authenticated with `mechanism`.
    pub fn authenticated(mut self, mechanism: &str, auth_data: Option<AuthData>) -> Self {
        self.session.authenticate(mechanism, auth_data);
        self
    }

    /// The server address the client connected to.
    pub fn local_addr(mut self, addr: SocketAddr) -> Self {
        self.session.local_addr = Some(addr);
        self
    }

    /// A session behind the PROXY protocol.
    pub fn proxy_data(mut self, data: ProxyData) -> Self {
        self.session.proxy_data = Some(Box::new(data));
        self
    }

    /// The session.
    pub fn build(self) -> Session {
        self.session
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_session_reads_like_an_engine_one() {
        let session = Session::builder(Peer::Local)
            .server_hostname("mx.example")
            .greeted("client.example", true)
            .tls(TlsInfo::new("TLSv1.3", "TLS13_AES_128_GCM_SHA256"))
            .authenticated(
                "PLAIN",
                Some(AuthData::Verified {
                    login: b"ann".to_vec(),
                }),
            )
            .build();
        assert_eq!(session.server_hostname(), "mx.example");
        assert_eq!(session.host_name(), Some("client.example"));
        assert!(session.extended_smtp() && session.is_tls() && session.authenticated());
        assert_eq!(session.auth_mechanism(), Some("PLAIN"));
        assert_eq!(
            session.login_data(),
            Some(&b"ann"[..]),
            "derived from auth_data"
        );
        assert!(session.proxy_data().is_none());
    }
}
