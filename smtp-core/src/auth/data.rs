//! What AUTH produces: [`AuthResult`], [`AuthData`], [`LoginPassword`] and their secrecy.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::proto::{Reply, replies};

/// A password, or any other secret: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    /// The secret itself. Named so that every use stands out in review.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Compares with `other` in time that does not depend on where they differ.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        // Lengths are compared openly: hiding them would need padding to a maximum, and a
        // password's length is far less useful to an attacker than its bytes.
        self.0.len() == other.len() && bool::from(self.0.as_slice().ct_eq(other))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("...")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("...")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: the allocator may have copied it before, but this copy does not linger.
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

/// The login and password of the PLAIN and LOGIN mechanisms.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginPassword {
    /// The authentication identity (user name).
    pub login: Vec<u8>,
    /// The password.
    pub password: Secret,
    /// PLAIN's authorization identity, when the client sent one different from `login`
    /// (RFC 4616: the client asks to act as this identity). The authenticator decides
    /// whether `login` may do so.
    pub authzid: Option<Vec<u8>>,
}

impl LoginPassword {
    /// A login and password without an authorization identity.
    pub fn new(login: impl Into<Vec<u8>>, password: impl Into<Vec<u8>>) -> LoginPassword {
        LoginPassword {
            login: login.into(),
            password: Secret::new(password),
            authzid: None,
        }
    }
}

impl fmt::Debug for LoginPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LoginPassword(login='{}', password=...",
            String::from_utf8_lossy(&self.login)
        )?;
        if let Some(authzid) = &self.authzid {
            write!(f, ", authzid='{}'", String::from_utf8_lossy(authzid))?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for LoginPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a mechanism learned about the client, handed to the authenticator and kept in
/// [`Session::auth_data`](crate::Session::auth_data) after success.
#[derive(Clone)]
#[non_exhaustive]
pub enum AuthData {
    /// PLAIN and LOGIN.
    LoginPassword(LoginPassword),
    /// A bearer token (OAUTHBEARER, XOAUTH2) for the authenticator to check.
    Token {
        /// The user the client names (XOAUTH2's `user=`, OAUTHBEARER's `a=`), if any.
        user: Option<Vec<u8>>,
        /// The token, without the `Bearer ` prefix.
        token: Secret,
    },
    /// A user whose proof the mechanism itself verified against a credential store
    /// (SCRAM, CRAM-MD5); the authenticator is not asked.
    Verified {
        /// The authenticated user.
        login: Vec<u8>,
    },
    /// EXTERNAL (RFC 4422 appendix A): the TLS client certificate vouches for the client.
    External {
        /// The identity the client asks to act as; `None` means the certificate's own.
        authzid: Option<Vec<u8>>,
        /// The client's certificate chain (DER), leaf first, as verified by TLS.
        certificates: Vec<Vec<u8>>,
        /// The identities the leaf certificate names: its subject common names, then its
        /// subject-alternative-name e-mail addresses and DNS names.
        identities: Vec<String>,
    },
    /// ANONYMOUS (RFC 4505): the client's trace information, for logging only.
    Anonymous {
        /// What the client sent (an email address or an opaque string), at most 255 characters.
        trace: String,
    },
    /// Whatever a custom mechanism wants to record, and the identity it authenticated.
    Custom {
        /// The user the mechanism authenticated, if it knows one: it becomes
        /// [`Session::login_data`](crate::Session::login_data).
        login: Option<Vec<u8>>,
        /// The mechanism's own value; read it with [`AuthData::downcast_ref`].
        value: Arc<dyn Any + Send + Sync>,
    },
}

impl AuthData {
    /// Wraps a custom value.
    pub fn custom<T: Any + Send + Sync>(value: T) -> AuthData {
        AuthData::Custom {
            login: None,
            value: Arc::new(value),
        }
    }

    /// Wraps a custom value of a mechanism that authenticated `login`.
    pub fn custom_for<T: Any + Send + Sync>(login: impl Into<Vec<u8>>, value: T) -> AuthData {
        AuthData::Custom {
            login: Some(login.into()),
            value: Arc::new(value),
        }
    }

    /// The login, when the data has one; it becomes `session.login_data`.
    pub fn login(&self) -> Option<&[u8]> {
        match self {
            AuthData::LoginPassword(lp) => Some(&lp.login),
            AuthData::Token { user, .. } => user.as_deref(),
            AuthData::Verified { login } => Some(login),
            AuthData::External {
                authzid,
                identities,
                ..
            } => authzid
                .as_deref()
                .or_else(|| identities.first().map(String::as_bytes)),
            AuthData::Custom { login, .. } => login.as_deref(),
            AuthData::Anonymous { .. } => None,
        }
    }

    /// The login and password, for PLAIN and LOGIN.
    pub fn login_password(&self) -> Option<&LoginPassword> {
        match self {
            AuthData::LoginPassword(lp) => Some(lp),
            _ => None,
        }
    }

    /// The custom value, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        match self {
            AuthData::Custom { value, .. } => value.downcast_ref(),
            _ => None,
        }
    }
}

impl fmt::Debug for AuthData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthData::LoginPassword(lp) => fmt::Debug::fmt(lp, f),
            AuthData::Token { user, .. } => write!(
                f,
                "Token(user={:?}, token=...)",
                user.as_deref().map(String::from_utf8_lossy)
            ),
            AuthData::Verified { login } => {
                write!(f, "Verified(login='{}')", String::from_utf8_lossy(login))
            }
            AuthData::External {
                authzid,
                certificates,
                identities,
            } => write!(
                f,
                "External(authzid={:?}, identities={identities:?}, certificates={})",
                authzid.as_deref().map(String::from_utf8_lossy),
                certificates.len()
            ),
            AuthData::Anonymous { trace } => write!(f, "Anonymous(trace={trace:?})"),
            AuthData::Custom { .. } => f.write_str("AuthData(...)"),
        }
    }
}

/// The outcome of an AUTH exchange, as decided by a mechanism or the authenticator.
///
/// Whatever it says, the client gets exactly one final reply to its AUTH command, and it
/// comes from this result alone: the `message` when there is one and it agrees with `success`
/// (2xx for a success, 4xx or 5xx for a failure), else `235 2.7.0 Authentication successful`
/// or `535 5.7.8 Authentication credentials invalid`. A `421` message also closes the
/// connection. Mechanisms send only challenges (`334`), so the client can never be told
/// something the session does not record.
#[derive(Clone)]
pub struct AuthResult {
    /// Whether the client is now authenticated.
    pub success: bool,
    /// aiosmtpd's flag, for failures only: the mechanism has dealt with this failure itself
    /// (it ended the exchange without checking a credential, e.g. the client gave up, or it
    /// counts its own failures). The server then sends the reply but does not count the attempt
    /// against `max_auth_failures` or the limiter, and does not wait the failure delay.
    pub handled: bool,
    /// The reply to send instead of the standard one.
    pub message: Option<Reply>,
    /// Stored in `session.auth_data` on success.
    pub auth_data: Option<AuthData>,
}

impl AuthResult {
    /// Success with nothing recorded: `235 2.7.0 Authentication successful`.
    pub fn success() -> AuthResult {
        AuthResult {
            success: true,
            handled: true,
            message: None,
            auth_data: None,
        }
    }

    /// Success, recording `auth_data` in the session.
    pub fn success_with(auth_data: AuthData) -> AuthResult {
        AuthResult {
            auth_data: Some(auth_data),
            ..AuthResult::success()
        }
    }

    /// Failure with the standard reply: `535 5.7.8 Authentication credentials invalid`.
    pub fn failure() -> AuthResult {
        AuthResult {
            success: false,
            handled: false,
            message: None,
            auth_data: None,
        }
    }

    /// Failure with a reply of your own, such as
    /// `454 4.7.0 Temporary authentication failure`.
    pub fn failure_with(reply: impl Into<Reply>) -> AuthResult {
        AuthResult {
            message: Some(reply.into()),
            ..AuthResult::failure()
        }
    }

    /// A failure the mechanism has dealt with itself (see [`handled`](Self::handled)).
    pub fn handled_failure() -> AuthResult {
        AuthResult {
            handled: true,
            ..AuthResult::failure()
        }
    }

    /// The reply the client gets: `message` when it agrees with `success`, else the standard
    /// one.
    pub fn final_reply(&self) -> Reply {
        let agrees = |reply: &&Reply| {
            if self.success {
                (200..300).contains(&reply.code())
            } else {
                reply.code() >= 400
            }
        };
        match self.message.as_ref().filter(agrees) {
            Some(reply) => reply.clone(),
            None if self.success => replies::AUTH_SUCCESSFUL,
            None => AuthResult::default_failure_reply(),
        }
    }

    /// `535 5.7.8 Authentication credentials invalid`.
    pub fn default_failure_reply() -> Reply {
        replies::AUTH_INVALID
    }

    /// Sets the reply to send.
    pub fn with_message(mut self, reply: impl Into<Reply>) -> AuthResult {
        self.message = Some(reply.into());
        self
    }
}

impl fmt::Debug for AuthResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AuthResult(success={}, handled={}, message={:?}, auth_data={})",
            self.success,
            self.handled,
            self.message.as_ref().map(|m| m.to_string()),
            if self.auth_data.is_some() {
                "..."
            } else {
                "None"
            }
        )
    }
}

/// Why a challenge got no usable answer. The server sends the matching reply itself once the
/// mechanism returns, so a mechanism can end with `?` and never answer a client line twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthAbort {
    /// The client answered `*`: `501 5.7.0 Auth aborted`.
    Cancelled,
    /// The answer was not base64: `501 5.5.2 Can't decode base64`.
    BadBase64,
    /// The answer was longer than 12288 octets:
    /// `500 5.5.6 Authentication Exchange line is too long`.
    TooLong,
    /// The client went away.
    Disconnected,
    /// The [`AuthLimiter`](crate::auth::AuthLimiter) blocks the client's address or the user
    /// name it claimed: `454 4.7.0 Temporary authentication failure`.
    Blocked,
}

impl AuthAbort {
    /// The reply the client gets for this abort, if any.
    pub fn reply(self) -> Option<Reply> {
        match self {
            AuthAbort::Cancelled => Some(replies::AUTH_ABORTED),
            AuthAbort::BadBase64 => Some(replies::AUTH_BAD_BASE64),
            AuthAbort::TooLong => Some(replies::AUTH_LINE_TOO_LONG),
            AuthAbort::Blocked => Some(replies::AUTH_TEMPORARY_FAILURE),
            AuthAbort::Disconnected => None,
        }
    }
}

impl fmt::Display for AuthAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reply() {
            Some(reply) => reply.fmt(f),
            None => write!(f, "{self:?}"),
        }
    }
}

impl std::error::Error for AuthAbort {}

impl From<AuthAbort> for AuthResult {
    fn from(_: AuthAbort) -> AuthResult {
        AuthResult::handled_failure()
    }
}

/// What a mechanism method of a `#[hooks]` block may return: an [`AuthResult`], or a
/// `Result` whose error is an [`AuthAbort`] (so that `challenge_auth(…).await?` works). Both
/// become the one result type of every mechanism, `Result<AuthResult, AuthAbort>`.
#[diagnostic::on_unimplemented(
    message = "an AUTH mechanism cannot return `{Self}`",
    label = "expected `AuthResult` or `Result<AuthResult, AuthAbort>`"
)]
pub trait IntoAuthResult {
    /// Converts into the result of a mechanism.
    fn into_auth_result(self) -> Result<AuthResult, AuthAbort>;
}

impl IntoAuthResult for AuthResult {
    fn into_auth_result(self) -> Result<AuthResult, AuthAbort> {
        Ok(self)
    }
}

impl IntoAuthResult for Result<AuthResult, AuthAbort> {
    fn into_auth_result(self) -> Result<AuthResult, AuthAbort> {
        self
    }
}

/// What a `handle_auth` method of a `#[hooks]` block may return: an [`AuthResult`] (the
/// hook decides), a `Result<AuthResult, AuthAbort>` (so that `?` works on a challenge), or
/// the trait's own `Option<AuthResult>` (`None` runs the mechanism).
#[diagnostic::on_unimplemented(
    message = "`handle_auth` cannot return `{Self}`",
    label = "expected `AuthResult`, `Result<AuthResult, AuthAbort>` or `Option<AuthResult>`"
)]
pub trait IntoHandleAuth {
    /// Converts into the result of `Handler::handle_auth`.
    fn into_handle_auth(self) -> Option<AuthResult>;
}

impl IntoHandleAuth for AuthResult {
    fn into_handle_auth(self) -> Option<AuthResult> {
        Some(self)
    }
}

impl IntoHandleAuth for Result<AuthResult, AuthAbort> {
    fn into_handle_auth(self) -> Option<AuthResult> {
        Some(self.unwrap_or_else(AuthResult::from))
    }
}

impl IntoHandleAuth for Option<AuthResult> {
    fn into_handle_auth(self) -> Option<AuthResult> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_hidden() {
        let lp = LoginPassword::new("alice", "hunter2");
        for text in [
            format!("{lp:?}"),
            format!("{lp}"),
            format!("{:?}", AuthData::LoginPassword(lp.clone())),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("alice"), "{text}");
        }
        let result = AuthResult::success_with(AuthData::LoginPassword(lp));
        let text = format!("{result:?}");
        assert_eq!(
            text,
            "AuthResult(success=true, handled=true, message=None, auth_data=...)"
        );
    }

    #[test]
    fn constant_time_compare() {
        let s = Secret::new("pass");
        assert!(s.ct_eq(b"pass"));
        assert!(!s.ct_eq(b"pasS"));
        assert!(!s.ct_eq(b"pas"));
    }
}
