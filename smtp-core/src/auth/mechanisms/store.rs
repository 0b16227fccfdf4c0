//! Where SCRAM and CRAM-MD5 find what they check a client's proof against.

use std::sync::Arc;

use async_trait::async_trait;
use sha2::Digest as _;

use super::scram::{DEFAULT_ITERATIONS, ScramCredentials, ScramHash};
use crate::auth::{Secret, StaticUsers};

/// A user database for the mechanisms that verify a proof themselves instead of handing a
/// password to the [`Authenticator`](crate::Authenticator).
///
/// Both methods default to "no such user". A store for SCRAM keeps only
/// [`ScramCredentials`] (made once with [`ScramCredentials::generate`]), never passwords.
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// The SCRAM keys of `user` for `hash`, if the user exists.
    async fn scram_credentials(&self, user: &[u8], hash: ScramHash) -> Option<ScramCredentials> {
        let _ = (user, hash);
        None
    }

    /// A plaintext-equivalent secret of `user`, for CRAM-MD5 (legacy: a store that can answer
    /// this holds what an attacker needs to log in).
    async fn plaintext_secret(&self, user: &[u8]) -> Option<Secret> {
        let _ = user;
        None
    }
}

#[async_trait]
impl<T: CredentialStore + ?Sized> CredentialStore for Arc<T> {
    async fn scram_credentials(&self, user: &[u8], hash: ScramHash) -> Option<ScramCredentials> {
        (**self).scram_credentials(user, hash).await
    }

    async fn plaintext_secret(&self, user: &[u8]) -> Option<Secret> {
        (**self).plaintext_secret(user).await
    }
}

/// The table holds passwords, so SCRAM keys are derived on demand, with a salt fixed per
/// user (so that clients may cache their salted password).
#[async_trait]
impl CredentialStore for StaticUsers {
    async fn scram_credentials(&self, user: &[u8], hash: ScramHash) -> Option<ScramCredentials> {
        let password = &self.entry(user)?.password;
        let mut salt = sha2::Sha256::new();
        salt.update(b"smtpd StaticUsers SCRAM salt\0");
        salt.update(hash.name().as_bytes());
        salt.update(b"\0");
        salt.update(user);
        let salt = &salt.finalize()[..16];
        Some(ScramCredentials::derive(
            hash,
            password.expose(),
            salt,
            DEFAULT_ITERATIONS,
        ))
    }

    async fn plaintext_secret(&self, user: &[u8]) -> Option<Secret> {
        self.entry(user).map(|user| user.password.clone())
    }
}
