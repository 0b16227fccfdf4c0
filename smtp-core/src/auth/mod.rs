//! The Authentication System (RFC 4954): the AUTH exchange, mechanisms and the authenticator.
//!
//! A mechanism is a step machine fed one client line at a time: it calls
//! [`AuthServer::challenge_auth`] for each round trip, and decides with an [`AuthResult`].
//! The connection owns the wire details (`334`, base64, `*`, `=`, line limits), so a mechanism
//! only sees decoded bytes. The built-in LOGIN and PLAIN mechanisms hand a [`LoginPassword`]
//! to the server's [`Authenticator`]. SCRAM, CRAM-MD5, OAUTHBEARER, XOAUTH2, EXTERNAL and
//! ANONYMOUS are opt-in, in [`mechanisms`]; [`AuthLimiter`] counts failures across connections.

mod builtin;
mod data;
mod limit;
#[cfg(feature = "redis")]
mod limit_redis;
pub mod mechanisms;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::future::BoxFuture;

pub use builtin::{Login, Plain};
pub use data::{AuthAbort, AuthData, AuthResult, IntoAuthResult, LoginPassword, Secret};
pub(crate) use limit::user_fingerprint;
pub use limit::{AuthLimiter, LimitKey, MemoryLimiter};
#[cfg(feature = "redis")]
pub use limit_redis::RedisLimiter;
pub use mechanisms::{CredentialStore, ScramCredentials, ScramHash};

use crate::handler::{Mechanism, MechanismFn};
use crate::proto::Reply;
use crate::session::{Envelope, Session};

/// Decides whether credentials gathered by a mechanism are good.
///
/// It sees the session and envelope but cannot change them: the server applies the
/// [`AuthResult`]. Implement it on a type (it may be async, to ask a database), or pass a
/// closure: a sync `Fn(&Session, &Envelope, &str, &AuthData) -> AuthResult`, or an async one
/// through [`authenticator_fn`].
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Decides on `auth_data`, gathered by `mechanism`.
    async fn authenticate(
        &self,
        session: &Session,
        envelope: &Envelope,
        mechanism: &str,
        auth_data: &AuthData,
    ) -> AuthResult;
}

#[async_trait]
impl<F> Authenticator for F
where
    F: Fn(&Session, &Envelope, &str, &AuthData) -> AuthResult + Send + Sync + 'static,
{
    async fn authenticate(
        &self,
        session: &Session,
        envelope: &Envelope,
        mechanism: &str,
        auth_data: &AuthData,
    ) -> AuthResult {
        self(session, envelope, mechanism, auth_data)
    }
}

/// What an async closure authenticator receives: owned copies, so its future can outlive the call.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The client.
    pub peer: crate::Peer,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// The mechanism that gathered the data.
    pub mechanism: String,
    /// The credentials.
    pub auth_data: AuthData,
}

/// An [`Authenticator`] from an async closure: `authenticator_fn(|req| async move { … })`.
pub fn authenticator_fn<F, Fut>(f: F) -> impl Authenticator
where
    F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AuthResult> + Send + 'static,
{
    struct AsyncFn<F>(F);
    #[async_trait]
    impl<F, Fut> Authenticator for AsyncFn<F>
    where
        F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AuthResult> + Send + 'static,
    {
        async fn authenticate(
            &self,
            session: &Session,
            _: &Envelope,
            mechanism: &str,
            auth_data: &AuthData,
        ) -> AuthResult {
            let request = AuthRequest {
                peer: session.peer.clone(),
                tls: session.is_tls(),
                mechanism: mechanism.to_owned(),
                auth_data: auth_data.clone(),
            };
            (self.0)(request).await
        }
    }
    AsyncFn(f)
}

/// A mechanism registered at run time, without the macros ([`crate::Server::mechanism`]).
#[async_trait]
pub trait AuthMechanism: Send + Sync + 'static {
    /// Runs one exchange. `args[0]` is the mechanism name, `args[1]` the initial response
    /// (already checked to be at most 12288 octets; `=` is passed as an empty string).
    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: &[String],
    ) -> Result<AuthResult, AuthAbort>;
}

/// One line read from the client during an exchange.
pub(crate) enum ResponseLine {
    Line(Vec<u8>),
    TooLong,
    Closed,
}

/// The connection as seen by an AUTH exchange. Implemented by the connection; boxed futures
/// are fine here, AUTH happens once per connection.
pub(crate) trait AuthIo: Send {
    fn send<'a>(&'a mut self, reply: &'a Reply) -> BoxFuture<'a, std::io::Result<()>>;
    fn read_line(&mut self) -> BoxFuture<'_, ResponseLine>;
    /// The TLS connection, once TLS is active.
    fn tls(&self) -> Option<&rustls::ServerConnection> {
        None
    }
}

/// The label of the `tls-exporter` channel binding (RFC 9266 §2).
const CHANNEL_BINDING_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// The server side of one AUTH exchange, handed to mechanisms and to `handle_auth`.
pub struct AuthServer<'a> {
    io: &'a mut dyn AuthIo,
    session: &'a mut Session,
    envelope: &'a Envelope,
    authenticator: Option<&'a dyn Authenticator>,
    final_sent: bool,
    abort: Option<AuthAbort>,
    limiter: Option<&'a dyn AuthLimiter>,
    claimed_user: Option<Vec<u8>>,
}

impl<'a> AuthServer<'a> {
    pub(crate) fn new(
        io: &'a mut dyn AuthIo,
        session: &'a mut Session,
        envelope: &'a Envelope,
        authenticator: Option<&'a dyn Authenticator>,
    ) -> AuthServer<'a> {
        AuthServer {
            io,
            session,
            envelope,
            authenticator,
            final_sent: false,
            abort: None,
            limiter: None,
            claimed_user: None,
        }
    }

    pub(crate) fn with_limiter(mut self, limiter: Option<&'a dyn AuthLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Records the user name the client claims, for the failure log and the
    /// [`AuthLimiter`]; fails with [`AuthAbort::Blocked`] (`454 4.7.0`) while the limiter blocks
    /// that user. Call it as soon as the name is known, before checking any proof, so that a
    /// blocked user learns nothing. [`authenticate`](Self::authenticate) calls it itself.
    pub async fn claim_user(&mut self, user: &[u8]) -> Result<(), AuthAbort> {
        self.claimed_user = Some(user.to_vec());
        if let Some(limiter) = self.limiter
            && limiter.is_blocked(LimitKey::User(user)).await
        {
            return Err(self.fail(AuthAbort::Blocked));
        }
        Ok(())
    }

    /// The user name claimed in this exchange, if any.
    pub fn claimed_user(&self) -> Option<&[u8]> {
        self.claimed_user.as_deref()
    }

    /// The session, read-only: the server applies the [`AuthResult`].
    pub fn session(&self) -> &Session {
        self.session
    }

    /// The session, for a `handle_auth` hook that keeps state of its own on it.
    pub fn session_mut(&mut self) -> &mut Session {
        self.session
    }

    /// The current envelope.
    pub fn envelope(&self) -> &Envelope {
        self.envelope
    }

    /// Sends a reply now. A final reply (anything but 3xx) ends the exchange for the client:
    /// the server will send nothing more for this AUTH. After a failed challenge
    /// ([`AuthAbort`]) nothing is sent: the client gets the abort's reply.
    pub async fn push(&mut self, reply: impl Into<Reply>) -> std::io::Result<()> {
        let reply = reply.into();
        if self.final_sent || self.abort.is_some() {
            // After an abort the server owes the client the abort's reply, and only that.
            tracing::warn!(reply = %reply, "AUTH mechanism pushed a reply after the exchange ended; dropped");
            return Ok(());
        }
        self.final_sent = !reply.is_intermediate();
        self.io.send(&reply).await
    }

    /// Sends `334 <challenge>` (base64-encoded when `encode_to_b64`) and returns the client's
    /// decoded answer.
    ///
    /// `*` (cancel), bad base64, an over-long line, or a lost connection end the exchange with
    /// an [`AuthAbort`]; the server answers it once the mechanism returns (use `?`).
    /// The answer is never logged.
    pub async fn challenge_auth(
        &mut self,
        challenge: impl AsRef<[u8]>,
        encode_to_b64: bool,
    ) -> Result<Vec<u8>, AuthAbort> {
        if let Some(abort) = self.abort {
            return Err(abort);
        }
        if self.final_sent {
            return Err(self.fail(AuthAbort::Finished));
        }
        let challenge = challenge.as_ref();
        let text = if encode_to_b64 {
            BASE64.encode(challenge)
        } else {
            String::from_utf8_lossy(challenge).replace(['\r', '\n'], "")
        };
        tracing::debug!(challenge = %text, "AUTH challenge");
        if self.io.send(&Reply::new(334, text)).await.is_err() {
            return Err(self.fail(AuthAbort::Disconnected));
        }
        match self.io.read_line().await {
            ResponseLine::Closed => Err(self.fail(AuthAbort::Disconnected)),
            ResponseLine::TooLong => Err(self.fail(AuthAbort::TooLong)),
            ResponseLine::Line(line) => {
                let answer = line.trim_ascii();
                if answer == b"*" {
                    tracing::warn!(peer = %self.session.peer, "client aborted AUTH with '*'");
                    return Err(self.fail(AuthAbort::Cancelled));
                }
                // Not even the undecodable answer is logged: it may be a password sent raw.
                BASE64
                    .decode(answer)
                    .map_err(|_| self.fail(AuthAbort::BadBase64))
            }
        }
    }

    /// The TLS connection, once TLS is active: what [`Session::tls`] does not carry.
    pub fn tls_connection(&self) -> Option<&rustls::ServerConnection> {
        self.io.tls()
    }

    /// `len` octets of keying material exported from the TLS session (RFC 5705, RFC 8446
    /// §7.5) with `label` and `context`; the client derives the same octets. `None` without
    /// TLS or when `len` is 0.
    pub fn tls_exporter(
        &self,
        label: &[u8],
        context: Option<&[u8]>,
        len: usize,
    ) -> Option<Vec<u8>> {
        self.io
            .tls()?
            .export_keying_material(vec![0; len], label, context)
            .ok()
    }

    /// The `tls-exporter` channel binding data (RFC 9266): 32 octets exported with the label
    /// `EXPORTER-Channel-Binding` and an empty context. `None` unless TLS 1.3 is active,
    /// since RFC 9266 allows it over TLS 1.2 only with extended master secret.
    pub fn tls_exporter_channel_binding(&self) -> Option<Vec<u8>> {
        let tls = self.io.tls()?;
        if tls.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
            return None;
        }
        self.tls_exporter(CHANNEL_BINDING_LABEL, Some(b""), 32)
    }

    /// The server's leaf certificate (DER) in this TLS session, for the
    /// `tls-server-end-point` channel binding (RFC 5929 §4), which hashes it.
    pub fn tls_server_certificate(&self) -> Option<&[u8]> {
        self.session.tls.as_ref()?.server_certificate.as_deref()
    }

    /// Decodes an initial response (`args[1]`) the way [`challenge_auth`](Self::challenge_auth)
    /// decodes answers.
    pub fn decode_initial_response(&mut self, response: &str) -> Result<Vec<u8>, AuthAbort> {
        BASE64
            .decode(response.trim())
            .map_err(|_| self.fail(AuthAbort::BadBase64))
    }

    /// Asks the server's authenticator. Without one, every attempt fails (aiosmtpd's default).
    pub async fn authenticate(&mut self, mechanism: &str, auth_data: AuthData) -> AuthResult {
        if let Some(user) = auth_data.login()
            && let Err(abort) = self.claim_user(user).await
        {
            return abort.into();
        }
        match self.authenticator {
            Some(authenticator) => {
                authenticator
                    .authenticate(self.session, self.envelope, mechanism, &auth_data)
                    .await
            }
            None => AuthResult::failure(),
        }
    }

    fn fail(&mut self, abort: AuthAbort) -> AuthAbort {
        self.abort.get_or_insert(abort);
        abort
    }

    /// Whether a final reply is already out, and the abort that ended the exchange, if any.
    pub(crate) fn finish(self) -> (bool, Option<AuthAbort>) {
        (self.final_sent, self.abort)
    }
}

/// How a registered mechanism runs.
pub(crate) enum MechanismEntry<H> {
    Handler(MechanismFn<H>),
    Dynamic(Arc<dyn AuthMechanism>),
}

impl<H> Clone for MechanismEntry<H> {
    fn clone(&self) -> Self {
        match self {
            MechanismEntry::Handler(f) => MechanismEntry::Handler(*f),
            MechanismEntry::Dynamic(m) => MechanismEntry::Dynamic(m.clone()),
        }
    }
}

/// The mechanisms of a server: built-ins, then run-time registrations, then the handler's
/// (each replacing an earlier one of the same name), minus the excluded ones. Built once.
pub(crate) struct Registry<H> {
    entries: BTreeMap<String, MechanismEntry<H>>,
    advertised: String,
}

impl<H> Registry<H> {
    pub(crate) fn new(
        handler: &'static [Mechanism<H>],
        dynamic: &[(String, Arc<dyn AuthMechanism>)],
        exclude: &[String],
    ) -> Registry<H> {
        let mut entries: BTreeMap<String, MechanismEntry<H>> = BTreeMap::new();
        entries.insert("LOGIN".into(), MechanismEntry::Dynamic(Arc::new(Login)));
        entries.insert("PLAIN".into(), MechanismEntry::Dynamic(Arc::new(Plain)));
        for (name, m) in dynamic {
            entries.insert(
                name.to_ascii_uppercase(),
                MechanismEntry::Dynamic(m.clone()),
            );
        }
        for m in handler {
            entries.insert(m.name.to_ascii_uppercase(), MechanismEntry::Handler(m.run));
        }
        for name in exclude {
            entries.remove(&name.to_ascii_uppercase());
        }
        let advertised = entries
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        Registry {
            entries,
            advertised,
        }
    }

    /// The mechanism called `name`, matched case-insensitively.
    pub(crate) fn get(&self, name: &str) -> Option<&MechanismEntry<H>> {
        if name.bytes().any(|b| b.is_ascii_lowercase()) {
            self.entries.get(&name.to_ascii_uppercase())
        } else {
            self.entries.get(name)
        }
    }

    /// The names, sorted and space-separated, for `250-AUTH`.
    pub(crate) fn advertised(&self) -> &str {
        &self.advertised
    }
}

/// Whether `name` is a valid SASL mechanism name (RFC 4422 §3.1): 1 to 20 of `A-Z 0-9 - _`.
pub fn is_valid_mechanism_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// An authenticator over a fixed table of logins and passwords, for PLAIN and LOGIN.
///
/// Passwords are compared after SASLprep (RFC 4616 §2; see
/// [`normalize_password`](mechanisms::normalize_password)), in constant time, and an unknown
/// login costs the same comparison as a known one, so timing tells nothing about which logins
/// exist.
#[derive(Clone, Default)]
pub struct StaticUsers {
    users: std::collections::HashMap<Vec<u8>, StaticUser>,
}

/// A password of [`StaticUsers`] as given (CRAM-MD5 and SCRAM start from it) and as SASLprep
/// prepares it (what PLAIN and LOGIN compare).
#[derive(Clone)]
struct StaticUser {
    password: Secret,
    prepared: Secret,
}

impl StaticUsers {
    /// An empty table.
    pub fn new() -> StaticUsers {
        StaticUsers::default()
    }

    /// Adds (or replaces) a user.
    pub fn user(mut self, login: impl Into<Vec<u8>>, password: impl Into<Vec<u8>>) -> StaticUsers {
        let password = Secret::new(password);
        let prepared = Secret::new(mechanisms::normalize_password(password.expose()).into_owned());
        self.users
            .insert(login.into(), StaticUser { password, prepared });
        self
    }

    /// Whether `login` and `password` match an entry, once both passwords are prepared with
    /// SASLprep.
    pub fn check(&self, login: &[u8], password: &[u8]) -> bool {
        let password = mechanisms::normalize_password(password);
        let dummy = Secret::new(vec![0u8; password.len()]);
        match self.users.get(login) {
            Some(user) => user.prepared.ct_eq(&password),
            None => {
                std::hint::black_box(dummy.ct_eq(&password));
                false
            }
        }
    }
}

impl std::fmt::Debug for StaticUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticUsers")
            .field("users", &self.users.len())
            .finish()
    }
}

#[async_trait]
impl Authenticator for StaticUsers {
    async fn authenticate(
        &self,
        _: &Session,
        _: &Envelope,
        _: &str,
        auth_data: &AuthData,
    ) -> AuthResult {
        let good = match auth_data {
            // An authorization identity other than the login is not granted by a plain table.
            AuthData::LoginPassword(lp) => {
                lp.authzid.is_none() && self.check(&lp.login, lp.password.expose())
            }
            // XOAUTH2 and OAUTHBEARER: the table's password is taken as the user's token, which
            // suits test setups; real deployments validate tokens with their issuer.
            AuthData::Token {
                user: Some(user),
                token,
            } => self.check(user, token.expose()),
            _ => false,
        };
        if good {
            AuthResult::success_with(auth_data.clone())
        } else {
            AuthResult::failure()
        }
    }
}
