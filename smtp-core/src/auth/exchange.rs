//! One AUTH exchange as a mechanism sees it: [`AuthServer`], [`AuthArgs`] and the connection
//! side ([`AuthIo`]) that carries its challenges.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::future::BoxFuture;

use super::authenticator::DynAuthenticator;
use super::data::{AuthAbort, AuthData, AuthResult};
use super::limit::{DynAuthLimiter, LimitKey, normalize_user};
use crate::envelope::Envelope;
use crate::proto::Reply;
use crate::session::Session;

/// The initial response of an AUTH command (RFC 4954 §4), as sent: base64 text, or empty for
/// `=`. Its `Debug` hides it, since it may carry a password.
#[derive(Clone, PartialEq, Eq)]
pub struct InitialResponse(String);

impl InitialResponse {
    /// An initial response from its base64 text; `=` means empty.
    pub fn new(text: impl Into<String>) -> InitialResponse {
        let text = text.into();
        InitialResponse(if text == "=" { String::new() } else { text })
    }

    /// The base64 text (empty for `=`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InitialResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InitialResponse({} octets)", self.0.len())
    }
}

/// The AUTH command as a mechanism gets it: the mechanism name, upper-cased, and the initial
/// response if the client sent one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthArgs {
    /// The mechanism name, upper-cased.
    pub mechanism: String,
    /// The initial response, if any.
    pub initial_response: Option<InitialResponse>,
}

impl AuthArgs {
    /// The arguments of `AUTH <mechanism> [initial-response]`.
    pub fn new(mechanism: &str, initial_response: Option<&str>) -> AuthArgs {
        AuthArgs {
            mechanism: mechanism.to_ascii_uppercase(),
            initial_response: initial_response.map(InitialResponse::new),
        }
    }
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
///
/// A mechanism talks to the client only through challenges (`334`); the exchange's one final
/// reply comes from the [`AuthResult`] it returns, so a mechanism cannot tell the client one
/// thing and the server another.
pub struct AuthServer<'a> {
    io: &'a mut dyn AuthIo,
    session: &'a mut Session,
    envelope: &'a Envelope,
    authenticator: Option<&'a dyn DynAuthenticator>,
    abort: Option<AuthAbort>,
    limiter: Option<&'a dyn DynAuthLimiter>,
    claimed_user: Option<Vec<u8>>,
}

impl<'a> AuthServer<'a> {
    pub(crate) fn new(
        io: &'a mut dyn AuthIo,
        session: &'a mut Session,
        envelope: &'a Envelope,
        authenticator: Option<&'a dyn DynAuthenticator>,
        limiter: Option<&'a dyn DynAuthLimiter>,
    ) -> AuthServer<'a> {
        AuthServer {
            io,
            session,
            envelope,
            authenticator,
            abort: None,
            limiter,
            claimed_user: None,
        }
    }

    /// Records the user name the client claims, for the failure log and the
    /// [`AuthLimiter`](super::AuthLimiter), which counts it in the authenticator's normal form
    /// ([`Authenticator::limit_key`](super::Authenticator::limit_key)); fails with
    /// [`AuthAbort::Blocked`] (`454 4.7.0`) while the limiter blocks that user. Call it as soon as the name is known, before checking any proof, so that a
    /// blocked user learns nothing. [`authenticate`](Self::authenticate) calls it itself.
    pub async fn claim_user(&mut self, user: &[u8]) -> Result<(), AuthAbort> {
        self.claimed_user = Some(user.to_vec());
        if let Some(limiter) = self.limiter {
            let key = self.limit_key(user);
            if limiter.is_blocked_boxed(LimitKey::User(&key)).await {
                return Err(self.fail(AuthAbort::Blocked));
            }
        }
        Ok(())
    }

    /// The form of `user` the limiter counts.
    pub(crate) fn limit_key<'u>(&self, user: &'u [u8]) -> std::borrow::Cow<'u, [u8]> {
        match self.authenticator {
            Some(authenticator) => authenticator.limit_key_dyn(user),
            None => normalize_user(user),
        }
    }

    /// The user name claimed in this exchange, if any.
    pub fn claimed_user(&self) -> Option<&[u8]> {
        self.claimed_user.as_deref()
    }

    /// The session, read-only: the server applies the [`AuthResult`].
    pub fn session(&self) -> &Session {
        self.session
    }

    /// The session, for a `handle_auth` hook that keeps state of its own in its
    /// [`extensions`](Session::extensions_mut).
    pub fn session_mut(&mut self) -> &mut Session {
        self.session
    }

    /// The current envelope.
    pub fn envelope(&self) -> &Envelope {
        self.envelope
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
                    tracing::warn!(peer = %self.session.peer(), "client aborted AUTH with '*'");
                    return Err(self.fail(AuthAbort::Cancelled));
                }
                // Not even the undecodable answer is logged: it may be a password sent raw.
                BASE64
                    .decode(answer)
                    .map_err(|_| self.fail(AuthAbort::BadBase64))
            }
        }
    }

    /// The client's first message: the decoded initial response when the client sent one,
    /// else its answer to `challenge` (sent base64-encoded; an empty challenge is `334 `).
    pub async fn initial_or_challenge(
        &mut self,
        initial: Option<InitialResponse>,
        challenge: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>, AuthAbort> {
        match initial {
            Some(initial) => self.decode_initial_response(&initial),
            None => self.challenge_auth(challenge, true).await,
        }
    }

    /// Decodes an initial response the way [`challenge_auth`](Self::challenge_auth) decodes
    /// answers.
    pub fn decode_initial_response(
        &mut self,
        response: &InitialResponse,
    ) -> Result<Vec<u8>, AuthAbort> {
        BASE64
            .decode(response.as_str().trim())
            .map_err(|_| self.fail(AuthAbort::BadBase64))
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
        self.session.tls()?.server_certificate.as_deref()
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
                    .authenticate_boxed(self.session, self.envelope, mechanism, &auth_data)
                    .await
            }
            None => AuthResult::failure(),
        }
    }

    fn fail(&mut self, abort: AuthAbort) -> AuthAbort {
        self.abort.get_or_insert(abort);
        abort
    }

    /// The abort that ended the exchange, if any.
    pub(crate) fn finish(self) -> Option<AuthAbort> {
        self.abort
    }
}
