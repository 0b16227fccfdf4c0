//! The [`Authenticator`]: decides on credentials a mechanism gathered.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::data::{AuthData, AuthResult};
use super::limit::normalize_user;
use crate::envelope::Envelope;
use crate::session::{Peer, Session};

/// Decides whether credentials gathered by a mechanism are good.
///
/// It sees the session and envelope but cannot change them: the server applies the
/// [`AuthResult`]. Implement it with an ordinary `async fn` (it may ask a database), pass a
/// sync closure `Fn(&Session, &Envelope, &str, &AuthData) -> AuthResult`, or an async one
/// through [`authenticator_fn`].
pub trait Authenticator: Send + Sync + 'static {
    /// Decides on `auth_data`, gathered by `mechanism`.
    fn authenticate(
        &self,
        session: &Session,
        envelope: &Envelope,
        mechanism: &str,
        auth_data: &AuthData,
    ) -> impl Future<Output = AuthResult> + Send;

    /// The form of `user` that failed attempts are counted by: every spelling this
    /// authenticator accepts for one account must give the same bytes, or a guesser gets a
    /// budget per spelling. Default is [`normalize_user`] (case-folded, SASLprep'd).
    fn limit_key<'u>(&self, user: &'u [u8]) -> Cow<'u, [u8]> {
        normalize_user(user)
    }
}

/// A sync closure is an authenticator: `|session, envelope, mechanism, auth_data| …`.
impl<F> Authenticator for F
where
    F: Fn(&Session, &Envelope, &str, &AuthData) -> AuthResult + Send + Sync + 'static,
{
    fn authenticate(
        &self,
        session: &Session,
        envelope: &Envelope,
        mechanism: &str,
        auth_data: &AuthData,
    ) -> impl Future<Output = AuthResult> + Send {
        std::future::ready(self(session, envelope, mechanism, auth_data))
    }
}

/// [`Authenticator`] with a boxed future, so that the server can hold any of them.
pub(crate) trait DynAuthenticator: Send + Sync + 'static {
    fn limit_key_dyn<'u>(&self, user: &'u [u8]) -> Cow<'u, [u8]>;
    fn authenticate_boxed<'a>(
        &'a self,
        session: &'a Session,
        envelope: &'a Envelope,
        mechanism: &'a str,
        auth_data: &'a AuthData,
    ) -> BoxFuture<'a, AuthResult>;
}

impl<A: Authenticator> DynAuthenticator for A {
    fn limit_key_dyn<'u>(&self, user: &'u [u8]) -> Cow<'u, [u8]> {
        self.limit_key(user)
    }

    fn authenticate_boxed<'a>(
        &'a self,
        session: &'a Session,
        envelope: &'a Envelope,
        mechanism: &'a str,
        auth_data: &'a AuthData,
    ) -> BoxFuture<'a, AuthResult> {
        Box::pin(self.authenticate(session, envelope, mechanism, auth_data))
    }
}

/// Any [`Authenticator`], shared: what `Config::authenticator` holds.
#[derive(Clone)]
pub struct SharedAuthenticator(Arc<dyn DynAuthenticator>);

impl SharedAuthenticator {
    /// Wraps `authenticator`.
    pub fn new(authenticator: impl Authenticator) -> SharedAuthenticator {
        SharedAuthenticator(Arc::new(authenticator))
    }

    /// Shares an authenticator that is shared already, such as an `Arc<StaticUsers>` that
    /// also serves SCRAM as its credential store.
    pub fn from_arc<A: Authenticator>(authenticator: Arc<A>) -> SharedAuthenticator {
        SharedAuthenticator(authenticator)
    }

    pub(crate) fn get(&self) -> &dyn DynAuthenticator {
        &*self.0
    }
}

impl<A: Authenticator> From<A> for SharedAuthenticator {
    fn from(authenticator: A) -> SharedAuthenticator {
        SharedAuthenticator::new(authenticator)
    }
}

impl std::fmt::Debug for SharedAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedAuthenticator(..)")
    }
}

/// What an async closure authenticator receives: owned copies, so its future can outlive the call.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The client.
    pub peer: Peer,
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
    impl<F, Fut> Authenticator for AsyncFn<F>
    where
        F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AuthResult> + Send + 'static,
    {
        fn authenticate(
            &self,
            session: &Session,
            _: &Envelope,
            mechanism: &str,
            auth_data: &AuthData,
        ) -> impl Future<Output = AuthResult> + Send {
            (self.0)(AuthRequest {
                peer: session.peer().clone(),
                tls: session.is_tls(),
                mechanism: mechanism.to_owned(),
                auth_data: auth_data.clone(),
            })
        }
    }
    AsyncFn(f)
}
