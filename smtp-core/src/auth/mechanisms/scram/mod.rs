//! SCRAM (RFC 5802) with SHA-1 and SHA-256 (RFC 7677), and channel binding for the `-PLUS`
//! variants: `tls-exporter` (RFC 9266) and `tls-server-end-point` (RFC 5929).
//!
//! One exchange over SMTP: client-first (initial response or after `334 `), `334`
//! server-first, client-final, `334` server-final (`v=`), an empty answer, then `235`.
//! Every failure gets the standard `535`; the reason is logged at debug level.
//! The rooms: `keys` (hashes and credentials), `messages` (the wire format), and here the
//! mechanism and its channel bindings.

pub(super) mod keys;
mod messages;

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::CredentialStore;
use super::store::DynCredentialStore;
use crate::auth::mechanisms::random_bytes;
use crate::auth::{AuthAbort, AuthArgs, AuthData, AuthMechanism, AuthResult, AuthServer};
use keys::mock_credentials;
pub use keys::{ScramCredentials, ScramHash, normalize_password};
use messages::{CbFlag, ScramError, client_final, parse_client_first, server_first};

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
    store: Arc<dyn DynCredentialStore>,
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
        let stored = self.store.scram_credentials_boxed(&user, self.hash).await;
        let known = stored.is_some();
        // Made for a known user as well, so that both cost the same.
        let mock = mock_credentials(self.hash, &user);
        let credentials = stored.unwrap_or(mock);
        let server_nonce = BASE64.encode(random_bytes(18));
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
