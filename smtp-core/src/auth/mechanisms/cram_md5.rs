//! CRAM-MD5 (RFC 2195). Legacy: the server must hold a plaintext-equivalent secret, and the
//! exchange can be attacked offline. Offer it only to devices that know nothing better.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use md5::Md5;
use subtle::ConstantTimeEq as _;

use super::CredentialStore;
use super::store::DynCredentialStore;
use crate::auth::{AuthAbort, AuthArgs, AuthData, AuthMechanism, AuthResult, AuthServer};

/// CRAM-MD5: the challenge `<random.timestamp@hostname>`, the answer `user HMAC-MD5(secret,
/// challenge)` in hex, checked against [`CredentialStore::plaintext_secret`]. On success
/// the auth data is [`AuthData::Verified`].
#[derive(Clone)]
pub struct CramMd5 {
    store: Arc<dyn DynCredentialStore>,
}

impl fmt::Debug for CramMd5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CramMd5")
    }
}

impl CramMd5 {
    /// CRAM-MD5 over `store`.
    pub fn new(store: impl CredentialStore) -> CramMd5 {
        CramMd5 {
            store: Arc::new(store),
        }
    }
}

/// The hex HMAC-MD5 digest of `challenge` keyed with `secret`.
pub(crate) fn digest(secret: &[u8], challenge: &[u8]) -> String {
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(challenge);
    crate::hex(&mac.finalize().into_bytes())
}

impl AuthMechanism for CramMd5 {
    fn name(&self) -> &str {
        "CRAM-MD5"
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        if args.initial_response.is_some() {
            // RFC 2195 has no initial response.
            return Ok(AuthResult::failure());
        }
        let random = super::random_bytes(8)
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let challenge = format!("<{random}.{time}@{}>", server.session().server_hostname());
        let answer = server.challenge_auth(challenge.as_bytes(), true).await?;
        let Some(split) = answer.iter().rposition(|b| *b == b' ') else {
            return Ok(AuthResult::failure());
        };
        let (user, given) = (&answer[..split], &answer[split + 1..]);
        if user.is_empty() {
            return Ok(AuthResult::failure());
        }
        server.claim_user(user).await?;
        let secret = self.store.plaintext_secret_boxed(user).await;
        let expected = digest(
            secret.as_ref().map_or(&b"no such user"[..], |s| s.expose()),
            challenge.as_bytes(),
        );
        let matches = bool::from(expected.as_bytes().ct_eq(&given.to_ascii_lowercase()));
        Ok(if matches && secret.is_some() {
            AuthResult::success_with(AuthData::Verified {
                login: user.to_vec(),
            })
        } else {
            AuthResult::failure()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2195_example() {
        assert_eq!(
            digest(
                b"tanstaaftanstaaf",
                b"<1896.697170952@postoffice.reston.mci.net>"
            ),
            "b913a602c7eda7a495b4e6e7334d3890"
        );
    }
}
