//! [`StaticUsers`]: an authenticator over a fixed table, for PLAIN, LOGIN and tokens.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::authenticator::Authenticator;
use super::data::{AuthData, AuthResult, Secret};
use super::mechanisms::{self, ScramCredentials, ScramHash};
use crate::envelope::Envelope;
use crate::session::Session;

/// An authenticator over a fixed table of logins and passwords, for PLAIN and LOGIN.
///
/// Passwords are compared after SASLprep (RFC 4616 §2; see
/// [`normalize_password`](mechanisms::normalize_password)), in constant time, and an unknown
/// login costs the same comparison as a known one, so timing tells nothing about which logins
/// exist.
///
/// For SCRAM the table derives every user's keys (4096 PBKDF2 rounds each) once per hash
/// function, for all users together at the first SCRAM login with that hash, and keeps them:
/// a login then costs a few HMACs, and a known user costs the same as an unknown one. That
/// first login waits for the whole table (about a millisecond per user for SHA-256).
#[derive(Clone, Default)]
pub struct StaticUsers {
    users: HashMap<Vec<u8>, StaticUser>,
    client_certificates: bool,
    /// SCRAM keys per hash (SHA-1, SHA-256), shared by clones; emptied when a user is added.
    scram: Arc<ScramTables>,
}

/// The SCRAM keys of every user, one table per hash, each made at its first use.
type ScramTables = [OnceLock<HashMap<Vec<u8>, ScramCredentials>>; 2];

/// A password of [`StaticUsers`] as given (CRAM-MD5 and SCRAM start from it) and as SASLprep
/// prepares it (what PLAIN and LOGIN compare).
#[derive(Clone)]
pub(crate) struct StaticUser {
    pub(crate) password: Secret,
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
        self.scram = Arc::default();
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

    /// Also accepts EXTERNAL (RFC 4422 appendix A): a client certificate that TLS verified
    /// against the configured client CA, acting as itself (no authorization identity) or as
    /// one of the identities the certificate names — its subject common name, or a SAN e-mail
    /// address or DNS name — which is what GNU SASL clients send.
    pub fn accept_client_certificates(mut self) -> StaticUsers {
        self.client_certificates = true;
        self
    }

    pub(crate) fn entry(&self, login: &[u8]) -> Option<&StaticUser> {
        self.users.get(login)
    }

    /// The SCRAM keys of every user for `hash`, made with `derive(login, password)` at the
    /// first call: the same work whichever login is asked for first.
    pub(crate) fn scram_keys(
        &self,
        hash: ScramHash,
        derive: impl Fn(&[u8], &Secret) -> ScramCredentials,
    ) -> &HashMap<Vec<u8>, ScramCredentials> {
        let slot = match hash {
            ScramHash::Sha1 => 0,
            ScramHash::Sha256 => 1,
        };
        self.scram[slot].get_or_init(|| {
            self.users
                .iter()
                .map(|(login, user)| (login.clone(), derive(login, &user.password)))
                .collect()
        })
    }
}

impl std::fmt::Debug for StaticUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticUsers")
            .field("users", &self.users.len())
            .field("client_certificates", &self.client_certificates)
            .finish()
    }
}

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
            AuthData::External {
                authzid,
                certificates,
                identities,
            } => {
                self.client_certificates
                    && !certificates.is_empty()
                    && authzid
                        .as_ref()
                        .is_none_or(|wanted| identities.iter().any(|id| id.as_bytes() == wanted))
            }
            _ => false,
        };
        if good {
            AuthResult::success_with(auth_data.clone())
        } else {
            AuthResult::failure()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn scram_keys_are_derived_once_for_all_users_until_a_user_is_added() {
        let derived = Cell::new(0);
        let derive = |login: &[u8], _: &Secret| {
            derived.set(derived.get() + 1);
            ScramCredentials {
                salt: login.to_vec(),
                iterations: 1,
                stored_key: Vec::new(),
                server_key: Vec::new(),
            }
        };
        let users = StaticUsers::new().user("a", "1").user("b", "2");
        // The first lookup derives every user's keys, whichever user it asks for.
        assert_eq!(users.scram_keys(ScramHash::Sha256, derive).len(), 2);
        assert_eq!(derived.get(), 2);
        let clone = users.clone();
        assert!(
            clone
                .scram_keys(ScramHash::Sha256, derive)
                .contains_key(&b"b"[..])
        );
        assert_eq!(derived.get(), 2, "clones share the keys");
        clone.scram_keys(ScramHash::Sha1, derive);
        assert_eq!(derived.get(), 4, "one table per hash");
        let more = users.user("c", "3");
        assert_eq!(more.scram_keys(ScramHash::Sha256, derive).len(), 3);
        assert_eq!(derived.get(), 7, "a new user: derived again");
    }
}
