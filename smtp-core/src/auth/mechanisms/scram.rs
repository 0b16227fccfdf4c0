//! SCRAM (RFC 5802) with SHA-1 and SHA-256 (RFC 7677), and channel binding for the `-PLUS`
//! variants: `tls-exporter` (RFC 9266) and `tls-server-end-point` (RFC 5929).
//!
//! One exchange over SMTP: client-first (initial response or after `334 `), `334`
//! server-first, client-final, `334` server-final (`v=`), an empty answer, then `235`.
//! Every failure gets the standard `535`; the reason is logged at debug level.

use std::fmt;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq as _;

use super::CredentialStore;
use crate::auth::{AuthAbort, AuthArgs, AuthData, AuthMechanism, AuthResult, AuthServer};

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

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
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

    fn h(self, data: &[u8]) -> Vec<u8> {
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
        ScramCredentials::derive(hash, password, &super::random_bytes(16), DEFAULT_ITERATIONS)
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

/// A SCRAM mechanism (RFC 5802): `SCRAM-SHA-256`, `SCRAM-SHA-256-PLUS` or `SCRAM-SHA-1`,
/// checking proofs against a [`CredentialStore`]. On success the session's auth data is
/// [`AuthData::Verified`]; the authenticator is not asked.
///
/// An authorization identity other than the user is refused. User names are compared as
/// sent (after `=2C`/`=3D` unescaping), without SASLprep.
#[derive(Clone)]
pub struct Scram {
    hash: ScramHash,
    plus: bool,
    plus_offered: bool,
    store: Arc<dyn CredentialStore>,
}

impl fmt::Debug for Scram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scram({})", self.name())
    }
}

impl Scram {
    /// SCRAM-SHA-256 (RFC 7677).
    pub fn sha256(store: impl CredentialStore) -> Scram {
        Scram::new(ScramHash::Sha256, false, store)
    }

    /// SCRAM-SHA-256-PLUS: SCRAM-SHA-256 bound to the TLS channel, with `tls-exporter`
    /// (TLS 1.3) or `tls-server-end-point`, whichever the client picks; fails without TLS.
    pub fn sha256_plus(store: impl CredentialStore) -> Scram {
        Scram::new(ScramHash::Sha256, true, store)
    }

    /// SCRAM-SHA-1 (RFC 5802), for old clients.
    pub fn sha1(store: impl CredentialStore) -> Scram {
        Scram::new(ScramHash::Sha1, false, store)
    }

    /// SCRAM-SHA-1-PLUS.
    pub fn sha1_plus(store: impl CredentialStore) -> Scram {
        Scram::new(ScramHash::Sha1, true, store)
    }

    fn new(hash: ScramHash, plus: bool, store: impl CredentialStore) -> Scram {
        Scram {
            hash,
            plus,
            plus_offered: false,
            store: Arc::new(store),
        }
    }

    /// Tells a non-PLUS mechanism that the server also offers its `-PLUS` variant: a client
    /// that says it could bind (`y`) is then refused over TLS, as a downgrade (RFC 5802 §6).
    pub fn plus_offered(mut self, offered: bool) -> Scram {
        self.plus_offered = offered;
        self
    }

    /// The mechanism name, e.g. `SCRAM-SHA-256-PLUS`.
    pub fn name(&self) -> &'static str {
        match (self.hash, self.plus) {
            (ScramHash::Sha1, false) => "SCRAM-SHA-1",
            (ScramHash::Sha1, true) => "SCRAM-SHA-1-PLUS",
            (ScramHash::Sha256, false) => "SCRAM-SHA-256",
            (ScramHash::Sha256, true) => "SCRAM-SHA-256-PLUS",
        }
    }
}

/// Why an exchange failed: RFC 5802's `server-error-value`s, for the debug log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScramError {
    InvalidEncoding,
    ExtensionsNotSupported,
    InvalidProof,
    ChannelBindingsDontMatch,
    ServerDoesSupportChannelBinding,
    ChannelBindingNotSupported,
    UnsupportedChannelBindingType,
    UnknownUser,
    InvalidUsernameEncoding,
    NoAuthorization,
    OtherError,
}

/// The client's channel-binding flag (gs2-cbind-flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CbFlag {
    /// `n`: the client does not support channel binding.
    No,
    /// `y`: the client supports it but thinks the server does not.
    ClientOnly,
    /// `p=<name>`: the client binds with this type.
    Bind(String),
}

#[derive(Debug)]
pub(crate) struct ClientFirst<'a> {
    pub(crate) gs2_header: &'a str,
    pub(crate) flag: CbFlag,
    pub(crate) authzid: Option<String>,
    pub(crate) user: String,
    pub(crate) bare: &'a str,
    pub(crate) nonce: &'a str,
}

/// `saslname` unescaping: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::InvalidUsernameEncoding),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::InvalidUsernameEncoding);
    }
    Ok(out)
}

fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

pub(crate) fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, ScramError> {
    let mut parts = message.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ScramError::InvalidEncoding);
    };
    let flag = match flag {
        "n" => CbFlag::No,
        "y" => CbFlag::ClientOnly,
        _ => match flag.strip_prefix("p=") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                CbFlag::Bind(name.to_owned())
            }
            _ => return Err(ScramError::InvalidEncoding),
        },
    };
    let authzid = match authzid {
        "" => None,
        a => Some(saslname(
            a.strip_prefix("a=").ok_or(ScramError::InvalidEncoding)?,
        )?),
    };
    let gs2_header = &message[..message.len() - bare.len()];
    if bare.starts_with("m=") {
        return Err(ScramError::ExtensionsNotSupported);
    }
    let mut attrs = bare.split(',');
    let user = attrs
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or(ScramError::InvalidEncoding)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| valid_nonce(n))
        .ok_or(ScramError::InvalidEncoding)?;
    // Extensions are allowed after the nonce, and ignored.
    if attrs.any(|a| a.len() < 2 || a.as_bytes()[1] != b'=') {
        return Err(ScramError::InvalidEncoding);
    }
    Ok(ClientFirst {
        gs2_header,
        flag,
        authzid,
        user: saslname(user)?,
        bare,
        nonce,
    })
}

/// The server's side of one exchange after server-first.
pub(crate) struct Exchange {
    hash: ScramHash,
    credentials: ScramCredentials,
    cbind_input: Vec<u8>,
    client_first_bare: String,
    pub(crate) server_first: String,
    nonce: String,
}

/// Builds server-first for `client_first` with the server's part of the nonce.
/// `cb_data` is the channel-binding data when the client binds (`p=`).
pub(crate) fn server_first(
    hash: ScramHash,
    client_first: &ClientFirst<'_>,
    credentials: ScramCredentials,
    server_nonce: &str,
    cb_data: Option<&[u8]>,
) -> Exchange {
    let nonce = format!("{}{server_nonce}", client_first.nonce);
    let server_first = format!(
        "r={nonce},s={},i={}",
        BASE64.encode(&credentials.salt),
        credentials.iterations
    );
    let mut cbind_input = client_first.gs2_header.as_bytes().to_vec();
    cbind_input.extend_from_slice(cb_data.unwrap_or_default());
    Exchange {
        hash,
        credentials,
        cbind_input,
        client_first_bare: client_first.bare.to_owned(),
        server_first,
        nonce,
    }
}

/// Checks client-final; returns server-final (`v=…`).
pub(crate) fn client_final(exchange: &Exchange, message: &str) -> Result<String, ScramError> {
    let (without_proof, proof) = message
        .rsplit_once(",p=")
        .ok_or(ScramError::InvalidEncoding)?;
    let mut attrs = without_proof.split(',');
    let cbind = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .and_then(|c| BASE64.decode(c).ok())
        .ok_or(ScramError::InvalidEncoding)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::InvalidEncoding)?;
    let proof = BASE64
        .decode(proof)
        .map_err(|_| ScramError::InvalidEncoding)?;
    if cbind != exchange.cbind_input {
        return Err(ScramError::ChannelBindingsDontMatch);
    }
    if nonce != exchange.nonce {
        return Err(ScramError::OtherError);
    }
    let hash = exchange.hash;
    let auth_message = format!(
        "{},{},{without_proof}",
        exchange.client_first_bare, exchange.server_first
    );
    let keys = &exchange.credentials;
    let client_signature = hash.hmac(&keys.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(ScramError::InvalidProof);
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    if !bool::from(hash.h(&client_key).ct_eq(&keys.stored_key)) {
        return Err(ScramError::InvalidProof);
    }
    let server_signature = hash.hmac(&keys.server_key, auth_message.as_bytes());
    Ok(format!("v={}", BASE64.encode(server_signature)))
}

/// Credentials for a user that does not exist, the same on every try, so that the
/// server-first message does not reveal which users exist (RFC 5802 §9).
fn mock_credentials(hash: ScramHash, user: &[u8]) -> ScramCredentials {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    let key = KEY.get_or_init(|| super::random_bytes(32));
    let mut salt = ScramHash::Sha256.hmac(key, b"salt\0");
    salt.extend_from_slice(user);
    let salt = ScramHash::Sha256.hmac(key, &salt)[..16].to_vec();
    ScramCredentials {
        salt,
        iterations: DEFAULT_ITERATIONS,
        stored_key: hash.h(&super::random_bytes(32)),
        server_key: hash.h(&super::random_bytes(32)),
    }
}

/// The `tls-server-end-point` data (RFC 5929 §4.1): the server certificate hashed with the
/// hash of its signature algorithm, SHA-256 when that is MD5 or SHA-1 or not a plain hash.
pub(crate) fn tls_server_end_point(certificate: &[u8]) -> Vec<u8> {
    const SHA384: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    ];
    const SHA512: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    ];
    match signature_algorithm(certificate) {
        Some(oid) if SHA384.contains(&oid) => Sha384::digest(certificate).to_vec(),
        Some(oid) if SHA512.contains(&oid) => Sha512::digest(certificate).to_vec(),
        _ => Sha256::digest(certificate).to_vec(),
    }
}

/// The OID of `Certificate.signatureAlgorithm` (RFC 5280 §4.1), read from the DER.
fn signature_algorithm(der: &[u8]) -> Option<&[u8]> {
    /// One DER element at the start of `input`: (tag, contents, rest).
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, input) = input.split_first()?;
        let (&first, mut input) = input.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || input.len() < n {
                return None;
            }
            let len = input[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            input = &input[n..];
            len
        };
        (input.len() >= len).then(|| (tag, &input[..len], &input[len..]))
    }
    let (0x30, certificate, _) = element(der)? else {
        return None;
    };
    let (0x30, _tbs, rest) = element(certificate)? else {
        return None;
    };
    let (0x30, algorithm, _) = element(rest)? else {
        return None;
    };
    match element(algorithm)? {
        (0x06, oid, _) => Some(oid),
        _ => None,
    }
}

impl AuthMechanism for Scram {
    fn name(&self) -> &str {
        Scram::name(self)
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let name = self.name();
        let first = server
            .initial_or_challenge(args.initial_response, b"")
            .await?;
        let refuse = |error: ScramError| {
            tracing::debug!(mechanism = %name, ?error, "SCRAM exchange failed");
            Ok(AuthResult::failure())
        };
        let Ok(first) = std::str::from_utf8(&first) else {
            return refuse(ScramError::InvalidEncoding);
        };
        let client_first = match parse_client_first(first) {
            Ok(client_first) => client_first,
            Err(error) => return refuse(error),
        };
        let cb_data = match (&client_first.flag, self.plus) {
            (CbFlag::Bind(kind), true) => match self.channel_binding(server, kind) {
                Ok(data) => Some(data),
                Err(error) => return refuse(error),
            },
            (_, true) => return refuse(ScramError::ChannelBindingNotSupported),
            (CbFlag::Bind(_), false) => return refuse(ScramError::ChannelBindingNotSupported),
            (CbFlag::ClientOnly, false) if self.plus_offered && server.session().is_tls() => {
                return refuse(ScramError::ServerDoesSupportChannelBinding);
            }
            _ => None,
        };
        if client_first
            .authzid
            .as_ref()
            .is_some_and(|a| *a != client_first.user)
        {
            return refuse(ScramError::NoAuthorization);
        }
        let user = client_first.user.as_bytes().to_vec();
        server.claim_user(&user).await?;
        let stored = self.store.scram_credentials(&user, self.hash).await;
        let known = stored.is_some();
        let credentials = stored.unwrap_or_else(|| mock_credentials(self.hash, &user));
        let server_nonce = BASE64.encode(super::random_bytes(18));
        let exchange = server_first(
            self.hash,
            &client_first,
            credentials,
            &server_nonce,
            cb_data.as_deref(),
        );
        let last = server
            .challenge_auth(exchange.server_first.as_bytes(), true)
            .await?;
        let Ok(last) = std::str::from_utf8(&last) else {
            return refuse(ScramError::InvalidEncoding);
        };
        let server_final = match client_final(&exchange, last) {
            Ok(_) if !known => return refuse(ScramError::UnknownUser),
            Ok(server_final) => server_final,
            Err(error) => return refuse(error),
        };
        let ack = server.challenge_auth(server_final.as_bytes(), true).await?;
        if !ack.is_empty() {
            return refuse(ScramError::OtherError);
        }
        Ok(AuthResult::success_with(AuthData::Verified { login: user }))
    }
}

impl Scram {
    fn channel_binding(&self, server: &AuthServer<'_>, kind: &str) -> Result<Vec<u8>, ScramError> {
        let data = match kind {
            "tls-exporter" => server.tls_exporter_channel_binding(),
            "tls-server-end-point" => server.tls_server_certificate().map(tls_server_end_point),
            _ => return Err(ScramError::UnsupportedChannelBindingType),
        };
        data.ok_or(ScramError::ChannelBindingNotSupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the server side of an RFC example: returns server-first and server-final.
    fn example(
        hash: ScramHash,
        password: &str,
        client_first: &str,
        server_nonce: &str,
        salt_b64: &str,
        client_final_message: &str,
    ) -> (String, Result<String, ScramError>) {
        let cf = parse_client_first(client_first).unwrap();
        let salt = BASE64.decode(salt_b64).unwrap();
        let credentials = ScramCredentials::derive(hash, password.as_bytes(), &salt, 4096);
        let exchange = server_first(hash, &cf, credentials, server_nonce, None);
        let result = client_final(&exchange, client_final_message);
        (exchange.server_first, result)
    }

    /// RFC 4013 §3's examples, and the fallbacks for what SASLprep refuses.
    #[test]
    fn passwords_are_prepared_with_saslprep() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"I\xc2\xadX", b"IX"),   // soft hyphen: mapped to nothing
            (b"user", b"user"),       // no transformation
            (b"USER", b"USER"),       // case preserved
            (b"\xc2\xaa", b"a"),      // NFKC
            (b"\xe2\x85\xa8", b"IX"), // NFKC: roman numeral nine
            (b"a\xc2\xa0b", b"a b"),  // no-break space: mapped to space
            (b"\x07", b"\x07"),       // prohibited: used as it is
        ];
        for (password, prepared) in cases {
            assert_eq!(&*normalize_password(password), prepared, "{password:?}");
        }
        assert_eq!(&*normalize_password(b"\xff\xfe"), b"\xff\xfe", "not UTF-8");
        let salt = b"salt";
        assert_eq!(
            ScramCredentials::derive(ScramHash::Sha256, "I\u{AD}X".as_bytes(), salt, 4096),
            ScramCredentials::derive(ScramHash::Sha256, b"IX", salt, 4096)
        );
    }

    #[test]
    fn rfc5802_sha1_example() {
        let (first, last) = example(
            ScramHash::Sha1,
            "pencil",
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "QSXCR+Q6sek8bf92",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        );
        assert_eq!(
            first,
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
        );
        assert_eq!(last.unwrap(), "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }

    #[test]
    fn rfc7677_sha256_example() {
        let (first, last) = example(
            ScramHash::Sha256,
            "pencil",
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        assert_eq!(
            first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        assert_eq!(
            last.unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn wrong_proof_nonce_and_binding_fail() {
        let cf = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let salt = "W22ZaJ0SNY7soEsUEjb6gQ==";
        let good = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let table: &[(&str, &str, ScramError)] = &[
            ("wrong password", "", ScramError::InvalidProof),
            (
                "pencil",
                "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                ScramError::OtherError,
            ),
            (
                "pencil",
                "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                ScramError::ChannelBindingsDontMatch,
            ),
            (
                "pencil",
                "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
                ScramError::InvalidProof,
            ),
            ("pencil", "c=biws,r=x", ScramError::InvalidEncoding),
            ("pencil", "garbage,p=!!", ScramError::InvalidEncoding),
        ];
        for (password, client_final_message, error) in table {
            let message = if client_final_message.is_empty() {
                good
            } else {
                client_final_message
            };
            let (_, result) = example(ScramHash::Sha256, password, cf, nonce, salt, message);
            assert_eq!(result, Err(*error), "{password} {message}");
        }
    }

    #[test]
    fn client_first_parsing() {
        let cf = parse_client_first("p=tls-exporter,a=bob,n=bob,r=abc,x=ext").unwrap();
        assert_eq!(cf.flag, CbFlag::Bind("tls-exporter".into()));
        assert_eq!(cf.gs2_header, "p=tls-exporter,a=bob,");
        assert_eq!(cf.authzid.as_deref(), Some("bob"));
        assert_eq!(cf.bare, "n=bob,r=abc,x=ext");
        assert_eq!(
            parse_client_first("y,,n=a=2Cb=3Dc,r=n").unwrap().user,
            "a,b=c"
        );
        let table: &[(&str, ScramError)] = &[
            ("", ScramError::InvalidEncoding),
            ("n,,", ScramError::InvalidEncoding),
            ("x,,n=user,r=abc", ScramError::InvalidEncoding),
            ("p=,,n=user,r=abc", ScramError::InvalidEncoding),
            ("n,,m=ext,n=user,r=abc", ScramError::ExtensionsNotSupported),
            ("n,,n=user", ScramError::InvalidEncoding),
            ("n,,n=user,r=", ScramError::InvalidEncoding),
            ("n,,r=abc,n=user", ScramError::InvalidEncoding),
            ("n,,n=us=er,r=abc", ScramError::InvalidUsernameEncoding),
            ("n,,n=,r=abc", ScramError::InvalidUsernameEncoding),
            ("n,b=x,n=user,r=abc", ScramError::InvalidEncoding),
        ];
        for (input, error) in table {
            assert_eq!(parse_client_first(input).unwrap_err(), *error, "{input:?}");
        }
    }

    #[test]
    fn server_end_point_hash_follows_the_signature_algorithm() {
        // A minimal Certificate: SEQUENCE { SEQUENCE {} , SEQUENCE { OID } , BIT STRING }.
        let cert = |oid: &[u8]| {
            let mut alg = vec![0x06, oid.len() as u8];
            alg.extend_from_slice(oid);
            let mut body = vec![0x30, 0x00, 0x30, alg.len() as u8];
            body.extend_from_slice(&alg);
            body.extend_from_slice(&[0x03, 0x01, 0x00]);
            let mut der = vec![0x30, body.len() as u8];
            der.extend_from_slice(&body);
            der
        };
        let ecdsa_sha384 = cert(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        assert_eq!(tls_server_end_point(&ecdsa_sha384).len(), 48);
        let rsa_sha512 = cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]);
        assert_eq!(tls_server_end_point(&rsa_sha512).len(), 64);
        let rsa_sha1 = cert(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]);
        assert_eq!(
            tls_server_end_point(&rsa_sha1),
            Sha256::digest(&rsa_sha1).to_vec()
        );
        assert_eq!(tls_server_end_point(b"junk").len(), 32);
    }

    #[test]
    fn credentials_hide_their_keys() {
        let c = ScramCredentials::generate(ScramHash::Sha256, b"pencil");
        assert_eq!(c.salt.len(), 16);
        assert_eq!(
            format!("{c:?}"),
            "ScramCredentials(iterations=4096, keys=...)"
        );
    }
}
