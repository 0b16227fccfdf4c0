//! Where SCRAM and CRAM-MD5 find what they check a client's proof against.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sha2::Digest as _;

use super::scram::keys::{DEFAULT_ITERATIONS, ScramCredentials, ScramHash};
use crate::auth::{Secret, StaticUsers};

/// A user database for the mechanisms that verify a proof themselves instead of handing a
/// password to the [`Authenticator`](crate::Authenticator).
///
/// Both methods default to "no such user"; implement them with ordinary `async fn`s. A store
/// for SCRAM keeps only [`ScramCredentials`] (made once with [`ScramCredentials::generate`]),
/// never passwords.
pub trait CredentialStore: Send + Sync + 'static {
    /// The SCRAM keys of `user` for `hash`, if the user exists.
    fn scram_credentials(
        &self,
        user: &[u8],
        hash: ScramHash,
    ) -> impl Future<Output = Option<ScramCredentials>> + Send {
        let _ = (user, hash);
        async { None }
    }

    /// A plaintext-equivalent secret of `user`, for CRAM-MD5 (legacy: a store that can answer
    /// this holds what an attacker needs to log in).
    fn plaintext_secret(&self, user: &[u8]) -> impl Future<Output = Option<Secret>> + Send {
        let _ = user;
        async { None }
    }
}

impl<T: CredentialStore> CredentialStore for Arc<T> {
    fn scram_credentials(
        &self,
        user: &[u8],
        hash: ScramHash,
    ) -> impl Future<Output = Option<ScramCredentials>> + Send {
        (**self).scram_credentials(user, hash)
    }

    fn plaintext_secret(&self, user: &[u8]) -> impl Future<Output = Option<Secret>> + Send {
        (**self).plaintext_secret(user)
    }
}

/// [`CredentialStore`] with boxed futures, so that a mechanism can hold any store.
pub(crate) trait DynCredentialStore: Send + Sync + 'static {
    fn scram_credentials_boxed<'a>(
        &'a self,
        user: &'a [u8],
        hash: ScramHash,
    ) -> BoxFuture<'a, Option<ScramCredentials>>;
    fn plaintext_secret_boxed<'a>(&'a self, user: &'a [u8]) -> BoxFuture<'a, Option<Secret>>;
}

impl<T: CredentialStore> DynCredentialStore for T {
    fn scram_credentials_boxed<'a>(
        &'a self,
        user: &'a [u8],
        hash: ScramHash,
    ) -> BoxFuture<'a, Option<ScramCredentials>> {
        Box::pin(self.scram_credentials(user, hash))
    }

    fn plaintext_secret_boxed<'a>(&'a self, user: &'a [u8]) -> BoxFuture<'a, Option<Secret>> {
        Box::pin(self.plaintext_secret(user))
    }
}

/// The table holds passwords, so SCRAM keys are derived from them, with a salt fixed per
/// user (so that clients may cache their salted password), once per user and hash (see
/// [`StaticUsers`]).
impl CredentialStore for StaticUsers {
    async fn scram_credentials(&self, user: &[u8], hash: ScramHash) -> Option<ScramCredentials> {
        self.scram_keys(hash, |login, password| {
            let mut salt = sha2::Sha256::new();
            salt.update(b"smtpd StaticUsers SCRAM salt\0");
            salt.update(hash.name().as_bytes());
            salt.update(b"\0");
            salt.update(login);
            let salt = &salt.finalize()[..16];
            ScramCredentials::derive(hash, password.expose(), salt, DEFAULT_ITERATIONS)
        })
        .get(user)
        .cloned()
    }

    async fn plaintext_secret(&self, user: &[u8]) -> Option<Secret> {
        self.entry(user).map(|user| user.password.clone())
    }
}
