//! SCRAM keys: the hash functions, the salted credentials a store keeps, SASLprep.

use std::fmt;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::auth::mechanisms::random_bytes;

/// The iteration count [`ScramCredentials::generate`] uses: RFC 7677's minimum.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// `Normalize(password)` of RFC 5802 §2.2: the SASLprep profile (RFC 4013) of a UTF-8
/// password, which clients such as scramp and libgsasl apply before hashing; without it a
/// password with, say, a no-break space or a ligature never matches. A password that is not
/// UTF-8, or that SASLprep refuses (control or unassigned characters), is used as it is, as
/// PostgreSQL does, so that it still works with clients that send it unprepared.
pub fn normalize_password(password: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    match std::str::from_utf8(password).map(stringprep::saslprep) {
        Ok(Ok(Cow::Owned(prepared))) => Cow::Owned(prepared.into_bytes()),
        _ => Cow::Borrowed(password),
    }
}

/// The hash function of a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SCRAM-SHA-1 (RFC 5802), for old clients.
    Sha1,
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
}

impl ScramHash {
    /// `"SHA-1"` or `"SHA-256"`, as in the mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SHA-1",
            ScramHash::Sha256 => "SHA-256",
        }
    }

    pub(super) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramHash::Sha1 => run::<Hmac<Sha1>>(key, data),
            ScramHash::Sha256 => run::<Hmac<Sha256>>(key, data),
        }
    }

    pub(super) fn h(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// `Hi()` of RFC 5802 §2.2, which is PBKDF2 with HMAC and one output block.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => {
                pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(password, salt, iterations).to_vec()
            }
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// What the server keeps about a SCRAM user (RFC 5802 §3): no password, nothing a client
/// could log in with, but `stored_key` allows an offline dictionary attack, so keep it as
/// secret as password hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    /// The salt of `Hi()`.
    pub salt: Vec<u8>,
    /// The iteration count of `Hi()`.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl ScramCredentials {
    /// The keys of `password` with `salt` and `iterations`. The password is prepared with
    /// SASLprep first (see [`normalize_password`]), as clients prepare theirs.
    pub fn derive(
        hash: ScramHash,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> ScramCredentials {
        let salted = hash.hi(&normalize_password(password), salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        ScramCredentials {
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.h(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
        }
    }

    /// The keys of `password` with a new random 16-octet salt and 4096 iterations, for
    /// provisioning a user.
    pub fn generate(hash: ScramHash, password: &[u8]) -> ScramCredentials {
        ScramCredentials::derive(hash, password, &random_bytes(16), DEFAULT_ITERATIONS)
    }
}

impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ScramCredentials(iterations={}, keys=...)",
            self.iterations
        )
    }
}

/// Credentials for a user that does not exist, the same on every try, so that the
/// server-first message does not reveal which users exist (RFC 5802 §9).
pub(super) fn mock_credentials(hash: ScramHash, user: &[u8]) -> ScramCredentials {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    let key = KEY.get_or_init(|| random_bytes(32));
    let mut salt = ScramHash::Sha256.hmac(key, b"salt\0");
    salt.extend_from_slice(user);
    let salt = ScramHash::Sha256.hmac(key, &salt)[..16].to_vec();
    ScramCredentials {
        salt,
        iterations: DEFAULT_ITERATIONS,
        stored_key: hash.h(&random_bytes(32)),
        server_key: hash.h(&random_bytes(32)),
    }
}
