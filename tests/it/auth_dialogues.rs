//! Ports of aiosmtpd's AUTH dialogues (`aiosmtpd/tests/test_smtp.py`, 1.4): `TestSMTPAuth`,
//! `TestAuthMechanisms`, `TestAuthenticator`, `TestRequiredAuthentication` and `TestAuthArgs`,
//! one module each, against Rust handlers equivalent to aiosmtpd's fixtures. Every reply line
//! is asserted exactly.
//!
//! aiosmtpd's test mechanisms return legacy values (`MISSING`, `False`, `None`, a string);
//! each is translated to the `AuthResult` with the same effect, and the translation is noted
//! at the mechanism. Where this server deliberately answers differently, the test says so.

use smtp_core::{AuthArgs, SharedAuthenticator};
use std::sync::{Arc, Mutex};

use crate::support::*;
use smtp_core::handlers::Sink;
use smtp_core::{
    AuthAbort, AuthData, AuthMechanism, AuthResult, AuthServer, Authenticator, Config, Envelope,
    Handler, LoginPassword, Mechanism, Peer, Reply, Server, ServerHandle, Session,
};

const GOOD_PASSWORD: &str = "goodpasswd";
const LOGIN_PROMPT: &str = "334 VXNlciBOYW1lAA==";
const PASSWORD_PROMPT: &str = "334 UGFzc3dvcmQA";
const OK: &str = "250 OK";
const SUCCESS: &str = "235 2.7.0 Authentication successful";
const INVALID: &str = "535 5.7.8 Authentication credentials invalid";
const UNRECOGNIZED: &str = "504 5.5.4 Unrecognized authentication type";
const NOT_B64: &str = "501 5.5.2 Can't decode base64";
const CANT_SPLIT: &str = "501 5.5.2 Can't split auth value";
const ABORTED: &str = "501 5.7.0 Auth aborted";
const AUTH_REQUIRED: &str = "530 5.7.0 Authentication required";

// ---- Fixtures ----------------------------------------------------------------------------

/// The session as the handler saw it at MAIL: aiosmtpd's tests keep the `Session` object and
/// look at it after AUTH; here the session is the server's, so a hook copies what is asked.
#[derive(Debug)]
struct SessionAtMail {
    authenticated: bool,
    auth_data: Option<AuthData>,
    login_data: Option<Vec<u8>>,
}

/// What the fixtures saw: aiosmtpd's `PeekerHandler` attributes.
#[derive(Default)]
struct Peek {
    login: Option<Vec<u8>>,
    password: Option<Vec<u8>>,
    mechanism: Option<String>,
    login_data: Option<LoginPassword>,
    peer: Option<Peer>,
    at_mail: Option<SessionAtMail>,
}

type Peeked = Arc<Mutex<Peek>>;

/// aiosmtpd's `PeekerHandler`: `handle_MAIL` plus the test mechanisms of §11.
#[derive(Clone, Default)]
struct Peeker(Peeked);

impl Handler for Peeker {
    async fn handle_mail(
        &self,
        session: &mut Session,
        _: &mut Envelope,
        _: &str,
        _: &smtp_core::MailParams,
    ) -> Reply {
        self.0.lock().unwrap().at_mail = Some(SessionAtMail {
            authenticated: session.authenticated(),
            auth_data: session.auth_data().cloned(),
            login_data: session.login_data().map(<[u8]>::to_vec),
        });
        Reply::ok()
    }

    fn mechanisms() -> &'static [Mechanism<Self>] {
        &[
            Mechanism {
                name: "DENYMISSING",
                run: |h, server, args| {
                    Box::pin(async move { Ok(h.auth_denymissing(server, args).await) })
                },
            },
            Mechanism {
                name: "DENYFALSE",
                run: |h, server, args| {
                    Box::pin(async move { Ok(h.auth_denyfalse(server, args).await) })
                },
            },
            Mechanism {
                name: "NONE",
                run: |h, server, args| Box::pin(async move { Ok(h.auth_none(server, args).await) }),
            },
            Mechanism {
                name: "NULL",
                run: |h, server, args| Box::pin(async move { Ok(h.auth_null(server, args).await) }),
            },
            Mechanism {
                name: "DONT",
                run: |h, server, args| Box::pin(async move { Ok(h.auth_dont(server, args).await) }),
            },
            Mechanism {
                name: "WITH_UNDERSCORE",
                run: |h, server, args| {
                    Box::pin(async move { Ok(h.auth_with_underscore(server, args).await) })
                },
            },
            // aiosmtpd: `@auth_mechanism("with-dash") auth_WITH_DASH`.
            Mechanism {
                name: "WITH-DASH",
                run: |h, server, args| {
                    Box::pin(async move { Ok(h.auth_with_dash(server, args).await) })
                },
            },
            // aiosmtpd: `auth_WITH__MULTI__DASH`, the double underscores mangled to dashes.
            Mechanism {
                name: "WITH-MULTI-DASH",
                run: |h, server, args| {
                    Box::pin(async move { Ok(h.auth_with_multi_dash(server, args).await) })
                },
            },
        ]
    }
}

impl Peeker {
    /// aiosmtpd returns `MISSING`, which smtp_AUTH answers with 535: `AuthResult::failure()`.
    async fn auth_denymissing(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }

    /// aiosmtpd returns `False` (535): `AuthResult::failure()`.
    async fn auth_denyfalse(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }

    /// aiosmtpd pushes its own 235 and returns `None` ("already answered"). A mechanism here
    /// cannot push a final reply: the reply comes from the result, so the 235 is its message
    /// and the client gets exactly one 235.
    async fn auth_none(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::success().with_message(SUCCESS)
    }

    /// aiosmtpd returns the string `"NULL_login"`: 235 and `login_data = "NULL_login"`, but
    /// the session is *not* authenticated. Equivalent here: success recording the value as
    /// custom auth data. Deliberate difference: a 235 does authenticate the session.
    async fn auth_null(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::success_with(AuthData::custom("NULL_login"))
    }

    /// Returns `MISSING` in aiosmtpd; never runs, since the fixture excludes it.
    async fn auth_dont(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }

    /// aiosmtpd: `challenge_auth("challenge", encode_to_b64=False, log_client_response=True)`,
    /// the answer ignored, then `"250 OK"` (a legacy string: 235 without authenticating).
    /// Here the answer is ignored the same way (there is no `log_client_response`: answers are
    /// never logged) and the result is `AuthResult::success()`. An aborted challenge still
    /// ends the exchange with one 501 (see `auth_better.rs`).
    async fn auth_with_underscore(&self, server: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        let _ignored = server.challenge_auth("challenge", false).await;
        AuthResult::success()
    }

    /// aiosmtpd returns `"250 OK"`: `AuthResult::success()`.
    async fn auth_with_dash(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::success()
    }

    /// aiosmtpd returns `"250 OK"`: `AuthResult::success()`.
    async fn auth_with_multi_dash(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::success()
    }
}

/// aiosmtpd's module-level `auth_callback`: login `goodlogin` with any password. Its `True`
/// becomes `AuthResult(success=True, auth_data=LoginPassword)`, its `False` a 535.
fn goodlogin_any_password() -> SharedAuthenticator {
    SharedAuthenticator::new(|_: &Session, _: &Envelope, _: &str, data: &AuthData| {
        match data.login_password() {
            Some(lp) if lp.login == b"goodlogin" => AuthResult::success_with(data.clone()),
            _ => AuthResult::failure(),
        }
    })
}

/// `PeekerHandler.authcallback`: remembers login and password, accepts goodlogin/goodpasswd.
fn peeking_callback(peeked: Peeked) -> SharedAuthenticator {
    SharedAuthenticator::new(move |_: &Session, _: &Envelope, _: &str, data: &AuthData| {
        let Some(lp) = data.login_password() else {
            return AuthResult::failure();
        };
        let mut peek = peeked.lock().unwrap();
        peek.login = Some(lp.login.clone());
        peek.password = Some(lp.password.expose().to_vec());
        if lp.login == b"goodlogin" && lp.password.expose() == GOOD_PASSWORD.as_bytes() {
            AuthResult::success_with(data.clone())
        } else {
            AuthResult::failure()
        }
    })
}

/// `PeekerHandler.authenticator`, as a trait object with an async method (a real one would
/// ask a database): `failme_with454` gets a custom failure reply, anyone else succeeds.
struct PeekingAuthenticator(Peeked);

impl Authenticator for PeekingAuthenticator {
    async fn authenticate(
        &self,
        session: &Session,
        _: &Envelope,
        mechanism: &str,
        auth_data: &AuthData,
    ) -> AuthResult {
        tokio::task::yield_now().await;
        let lp = auth_data.login_password().expect("PLAIN or LOGIN").clone();
        let mut peek = self.0.lock().unwrap();
        peek.peer = Some(session.peer().clone());
        peek.mechanism = Some(mechanism.to_owned());
        peek.login_data = Some(lp.clone());
        if lp.login == b"failme_with454" {
            // aiosmtpd: AuthResult(success=False, handled=False, message="454 ...").
            AuthResult::failure_with("454 4.7.0 Temporary authentication failure")
        } else {
            peek.login = Some(lp.login.clone());
            peek.password = Some(lp.password.expose().to_vec());
            AuthResult::success_with(auth_data.clone())
        }
    }
}

/// `decoding_authnotls_controller`: AUTH over plaintext, `auth_callback`, SMTPUTF8.
fn decoding_authnotls() -> Config {
    {
        let mut config = auth_config();
        config.smtputf8 = true;
        config.authenticator = Some(goodlogin_any_password());
        config
    }
}

/// `auth_peeker_controller`: the peeker's callback, `DONT` excluded.
fn auth_peeker(peeked: &Peeked) -> Config {
    {
        let mut config = auth_config();
        config.smtputf8 = true;
        config.authenticator = Some(peeking_callback(peeked.clone()));
        config.auth_exclude_mechanism = vec!["DONT".into()];
        config
    }
}

/// `authenticator_peeker_controller`: the peeker's authenticator, `DONT` excluded.
fn authenticator_peeker(peeked: &Peeked) -> Config {
    {
        let mut config = auth_config();
        config.smtputf8 = true;
        config.authenticator = Some(PeekingAuthenticator(peeked.clone()).into());
        config.auth_exclude_mechanism = vec!["DONT".into()];
        config
    }
}

/// A running `auth_peeker_controller` and what its peeker saw.
async fn peeker_server() -> (ServerHandle, Peeked) {
    let peeker = Peeker::default();
    let peeked = peeker.0.clone();
    let server = start(peeker, auth_peeker(&peeked)).await;
    (server, peeked)
}

/// The PLAIN initial response of smtplib's `auth_plain` for `goodlogin` and `password`.
fn good_plain(password: &str) -> String {
    plain("", "goodlogin", password)
}

/// Checks that nothing more was sent after the last reply: the next reply answers NOOP.
async fn nothing_more(c: &mut Client) {
    c.expect("NOOP", OK).await;
}

// ---- TestSMTPAuth --------------------------------------------------------------------------

mod test_smtp_auth {
    use super::*;

    #[tokio::test]
    async fn no_ehlo() {
        let server = start(Sink, decoding_authnotls()).await;
        let mut c = Client::connect(server.local_addr()).await;
        c.expect("AUTH", "503 Error: send EHLO first").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn helo() {
        let server = start(Sink, decoding_authnotls()).await;
        let mut c = Client::connect(server.local_addr()).await;
        c.cmd("HELO example.org", 250).await;
        c.expect("AUTH", "500 Error: command 'AUTH' not recognized")
            .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn not_enough_values() {
        let server = start(Sink, decoding_authnotls()).await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH", "501 Not enough value").await;
        // aiosmtpd strips the argument: `AUTH ` is a bare AUTH too.
        c.expect("AUTH ", "501 Not enough value").await;
        c.expect("AUTH  \t ", "501 Not enough value").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn already_authenticated() {
        let server = start(Sink, decoding_authnotls()).await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(
            &format!("AUTH PLAIN {}", good_plain(GOOD_PASSWORD)),
            SUCCESS,
        )
        .await;
        c.expect("AUTH", "503 Already authenticated").await;
        c.expect("MAIL FROM: <anne@example.com>", OK).await;
        server.shutdown().await;
    }

    /// AUTH state of different clients must be independent.
    #[tokio::test]
    async fn auth_individually() {
        let server = start(Sink, decoding_authnotls()).await;
        let mut first = Client::ehloed(server.local_addr()).await;
        let mut second = Client::ehloed(server.local_addr()).await;
        for c in [&mut first, &mut second] {
            // smtplib's login() picks PLAIN with an initial response.
            c.expect(
                &format!("AUTH PLAIN {}", good_plain(GOOD_PASSWORD)),
                SUCCESS,
            )
            .await;
        }
        let mut third = Client::ehloed(server.local_addr()).await;
        third
            .expect(
                &format!("AUTH PLAIN {}", plain("", "badlogin", "x")),
                INVALID,
            )
            .await;
        first
            .expect("AUTH PLAIN", "503 Already authenticated")
            .await;
        server.shutdown().await;
    }

    /// RSET resets only the envelope, not the session.
    #[tokio::test]
    async fn rset_maintain_authenticated() {
        let server = start(Sink, decoding_authnotls()).await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(
            &format!("AUTH PLAIN {}", good_plain(GOOD_PASSWORD)),
            SUCCESS,
        )
        .await;
        c.expect("MAIL FROM:<alice@example.com>", OK).await;
        c.expect("RSET", OK).await;
        c.expect("AUTH PLAIN", "503 Already authenticated").await;
        server.shutdown().await;
    }

    /// aiosmtpd also checks the two `UserWarning`s of `log_client_response=True`; this server
    /// has no such switch (challenge answers are never logged), so only the dialogue remains.
    #[tokio::test]
    async fn auth_loginteract_warning() {
        let server = start(Peeker::default(), decoding_authnotls()).await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH WITH_UNDERSCORE", "334 challenge").await;
        c.expect(&b64("="), SUCCESS).await;
        nothing_more(&mut c).await;
        server.shutdown().await;
    }
}

// ---- TestAuthMechanisms --------------------------------------------------------------------

mod test_auth_mechanisms {
    use super::*;

    /// The `do_auth_login3` fixture: EHLO, then `AUTH LOGIN` gets the user name prompt.
    async fn login3(server: &ServerHandle) -> Client {
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH LOGIN", LOGIN_PROMPT).await;
        c
    }

    /// The `client_auth_plain2` fixture: EHLO, then `AUTH PLAIN` gets an empty challenge.
    async fn plain2(server: &ServerHandle) -> Client {
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH PLAIN", "334 ").await;
        c
    }

    /// aiosmtpd's list has no 8BITMIME, PIPELINING, CHUNKING, BINARYMIME and DSN; this server
    /// offers them.
    #[tokio::test]
    async fn ehlo() {
        let (server, _) = peeker_server().await;
        let mut c = Client::connect(server.local_addr()).await;
        c.send(b"EHLO example.com\r\n").await;
        assert_eq!(
            c.reply().await,
            [
                "250-test.example",
                "250-SIZE 33554432",
                "250-8BITMIME",
                "250-SMTPUTF8",
                "250-PIPELINING",
                "250-CHUNKING",
                "250-BINARYMIME",
                "250-DSN",
                "250-AUTH DENYFALSE DENYMISSING LOGIN NONE NULL PLAIN WITH-DASH WITH-MULTI-DASH WITH_UNDERSCORE",
                "250 HELP",
            ]
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn not_supported_mechanism() {
        let (server, _) = peeker_server().await;
        for mechanism in ["GSSAPI", "DIGEST-MD5", "MD5", "CRAM-MD5"] {
            let mut c = Client::ehloed(server.local_addr()).await;
            c.expect(&format!("AUTH {mechanism}"), UNRECOGNIZED).await;
        }
        server.shutdown().await;
    }

    /// aiosmtpd answers 235 without authenticating (a legacy string return); here the 235
    /// means authenticated, so a second AUTH gets 503 and the auth data is recorded.
    #[tokio::test]
    async fn custom_mechanism() {
        let (server, peeked) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH NULL", SUCCESS).await;
        c.expect("AUTH NULL", "503 Already authenticated").await;
        c.expect("MAIL FROM:<anne@example.com>", OK).await;
        server.shutdown().await;
        let peek = peeked.lock().unwrap();
        let at_mail = peek.at_mail.as_ref().unwrap();
        assert!(at_mail.authenticated);
        let data = at_mail.auth_data.as_ref().unwrap();
        assert_eq!(data.downcast_ref::<&str>(), Some(&"NULL_login"));
        assert_eq!(at_mail.login_data, None);
    }

    #[tokio::test]
    async fn disabled_mechanism() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH DONT", UNRECOGNIZED).await;
        server.shutdown().await;
    }

    /// `test_byclient`: the four dialogues of smtplib's `auth(mechanism, auth_<mech>,
    /// initial_response_ok=…)`, written out on the wire (`tests/auth_clients.rs` runs the
    /// real smtplib too).
    #[tokio::test]
    async fn byclient() {
        let user = b64("goodlogin");
        let pass = b64(GOOD_PASSWORD);
        let dialogues: [&[(String, &str)]; 4] = [
            // plain, initial response
            &[(format!("AUTH PLAIN {}", good_plain(GOOD_PASSWORD)), SUCCESS)],
            // plain, no initial response
            &[
                ("AUTH PLAIN".into(), "334 "),
                (good_plain(GOOD_PASSWORD), SUCCESS),
            ],
            // login, initial response
            &[
                (format!("AUTH LOGIN {user}"), PASSWORD_PROMPT),
                (pass.clone(), SUCCESS),
            ],
            // login, no initial response
            &[
                ("AUTH LOGIN".into(), LOGIN_PROMPT),
                (user.clone(), PASSWORD_PROMPT),
                (pass.clone(), SUCCESS),
            ],
        ];
        for dialogue in dialogues {
            let (server, peeked) = peeker_server().await;
            let mut c = Client::ehloed(server.local_addr()).await;
            for (line, reply) in dialogue {
                c.expect(line, reply).await;
            }
            server.shutdown().await;
            let peek = peeked.lock().unwrap();
            assert_eq!(peek.login.as_deref(), Some(&b"goodlogin"[..]));
            assert_eq!(peek.password.as_deref(), Some(GOOD_PASSWORD.as_bytes()));
        }
    }

    #[tokio::test]
    async fn plain1_bad_base64_encoding() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH PLAIN not-b64", NOT_B64).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain1_bad_base64_length() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(&format!("AUTH PLAIN {}", b64("\0onlylogin")), CANT_SPLIT)
            .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain1_too_many_values() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH PLAIN NONE NONE", "501 Too many values")
            .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain1_bad_username() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(
            &format!("AUTH PLAIN {}", plain("", "badlogin", GOOD_PASSWORD)),
            INVALID,
        )
        .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain1_bad_password() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(&format!("AUTH PLAIN {}", good_plain("badpasswd")), INVALID)
            .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain1_empty() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(&format!("AUTH PLAIN {}", b64("=")), CANT_SPLIT)
            .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain1_good_credentials() {
        let (server, peeked) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(
            &format!("AUTH PLAIN {}", good_plain(GOOD_PASSWORD)),
            SUCCESS,
        )
        .await;
        {
            let peek = peeked.lock().unwrap();
            assert_eq!(peek.login.as_deref(), Some(&b"goodlogin"[..]));
            assert_eq!(peek.password.as_deref(), Some(GOOD_PASSWORD.as_bytes()));
        }
        c.expect("MAIL FROM:<alice@example.com>", OK).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain2_good_credentials() {
        let (server, peeked) = peeker_server().await;
        let mut c = plain2(&server).await;
        c.expect(&good_plain(GOOD_PASSWORD), SUCCESS).await;
        {
            let peek = peeked.lock().unwrap();
            assert_eq!(peek.login.as_deref(), Some(&b"goodlogin"[..]));
            assert_eq!(peek.password.as_deref(), Some(GOOD_PASSWORD.as_bytes()));
        }
        c.expect("MAIL FROM:<alice@example.com>", OK).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain2_bad_credentials() {
        let (server, _) = peeker_server().await;
        let mut c = plain2(&server).await;
        c.expect(&plain("", "badlogin", "badpasswd"), INVALID).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain2_no_credentials() {
        let (server, _) = peeker_server().await;
        let mut c = plain2(&server).await;
        c.expect(&b64("="), CANT_SPLIT).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain2_abort() {
        let (server, _) = peeker_server().await;
        let mut c = plain2(&server).await;
        c.expect("*", ABORTED).await;
        nothing_more(&mut c).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn plain2_bad_base64_encoding() {
        let (server, _) = peeker_server().await;
        let mut c = plain2(&server).await;
        c.expect("ab@%", NOT_B64).await;
        nothing_more(&mut c).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn login2_bad_base64() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH LOGIN ab@%", NOT_B64).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn login2_good_credentials() {
        let (server, peeked) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(&format!("AUTH LOGIN {}", b64("goodlogin")), PASSWORD_PROMPT)
            .await;
        c.expect(&b64(GOOD_PASSWORD), SUCCESS).await;
        {
            let peek = peeked.lock().unwrap();
            assert_eq!(peek.login.as_deref(), Some(&b"goodlogin"[..]));
            assert_eq!(peek.password.as_deref(), Some(GOOD_PASSWORD.as_bytes()));
        }
        c.expect("MAIL FROM:<alice@example.com>", OK).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn login3_good_credentials() {
        let (server, peeked) = peeker_server().await;
        let mut c = login3(&server).await;
        c.expect(&b64("goodlogin"), PASSWORD_PROMPT).await;
        c.expect(&b64(GOOD_PASSWORD), SUCCESS).await;
        {
            let peek = peeked.lock().unwrap();
            assert_eq!(peek.login.as_deref(), Some(&b"goodlogin"[..]));
            assert_eq!(peek.password.as_deref(), Some(GOOD_PASSWORD.as_bytes()));
        }
        c.expect("MAIL FROM:<alice@example.com>", OK).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn login3_bad_base64() {
        let (server, _) = peeker_server().await;
        let mut c = login3(&server).await;
        c.expect("not-b64", NOT_B64).await;
        nothing_more(&mut c).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn login3_bad_username() {
        let (server, _) = peeker_server().await;
        let mut c = login3(&server).await;
        c.expect(&b64("badlogin"), PASSWORD_PROMPT).await;
        c.expect(&b64(GOOD_PASSWORD), INVALID).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn login3_bad_password() {
        let (server, _) = peeker_server().await;
        let mut c = login3(&server).await;
        c.expect(&b64("goodlogin"), PASSWORD_PROMPT).await;
        c.expect(&b64("badpasswd"), INVALID).await;
        server.shutdown().await;
    }

    /// `PQ==` decodes to `=`: a one-character login and password, passed on as they are.
    #[tokio::test]
    async fn login3_empty_credentials() {
        let (server, peeked) = peeker_server().await;
        let mut c = login3(&server).await;
        c.expect(&b64("="), PASSWORD_PROMPT).await;
        c.expect(&b64("="), INVALID).await;
        server.shutdown().await;
        let peek = peeked.lock().unwrap();
        assert_eq!(peek.login.as_deref(), Some(&b"="[..]));
        assert_eq!(peek.password.as_deref(), Some(&b"="[..]));
    }

    #[tokio::test]
    async fn login3_abort_username() {
        let (server, _) = peeker_server().await;
        let mut c = login3(&server).await;
        c.expect("*", ABORTED).await;
        nothing_more(&mut c).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn login3_abort_password() {
        let (server, _) = peeker_server().await;
        let mut c = login3(&server).await;
        c.expect(&b64("="), PASSWORD_PROMPT).await;
        c.expect("*", ABORTED).await;
        nothing_more(&mut c).await;
        server.shutdown().await;
    }

    #[tokio::test]
    #[allow(non_snake_case)]
    async fn DENYFALSE() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH DENYFALSE", INVALID).await;
        server.shutdown().await;
    }

    #[tokio::test]
    #[allow(non_snake_case)]
    async fn DENYMISSING() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH DENYMISSING", INVALID).await;
        server.shutdown().await;
    }

    /// The mechanism pushed its own 235: exactly one reaches the client.
    #[tokio::test]
    #[allow(non_snake_case)]
    async fn NONE() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH NONE", SUCCESS).await;
        nothing_more(&mut c).await;
        c.expect("AUTH NONE", "503 Already authenticated").await;
        server.shutdown().await;
    }

    /// `@auth_mechanism("with-dash")` registers `WITH-DASH`, not the method's own name.
    #[tokio::test]
    async fn with_dash_and_multi_dash() {
        let (server, _) = peeker_server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH WITH_DASH", UNRECOGNIZED).await;
        c.expect("AUTH WITH-DASH", SUCCESS).await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH WITH_MULTI_DASH", UNRECOGNIZED).await;
        c.expect("AUTH WITH-MULTI-DASH", SUCCESS).await;
        server.shutdown().await;
    }
}

// ---- TestAuthenticator ---------------------------------------------------------------------

mod test_authenticator {
    use super::*;

    /// smtplib's `auth("plain", auth_plain)`: PLAIN with an initial response. The session is
    /// inspected at the following MAIL (aiosmtpd inspects the object it kept).
    #[tokio::test]
    async fn success() {
        let peeker = Peeker::default();
        let peeked = peeker.0.clone();
        let server = start(peeker, authenticator_peeker(&peeked)).await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(
            &format!("AUTH PLAIN {}", plain("", "gooduser", GOOD_PASSWORD)),
            SUCCESS,
        )
        .await;
        c.expect("MAIL FROM:<anne@example.com>", OK).await;
        let expected = LoginPassword::new("gooduser", GOOD_PASSWORD);
        server.shutdown().await;
        let peek = peeked.lock().unwrap();
        let peer = peek.peer.as_ref().and_then(Peer::addr).expect("TCP peer");
        assert!(peer.ip().is_loopback(), "{peer}");
        assert!(peer.port() > 0);
        assert_eq!(peek.mechanism.as_deref(), Some("PLAIN"));
        assert_eq!(peek.login_data.as_ref(), Some(&expected));
        let at_mail = peek.at_mail.as_ref().unwrap();
        assert!(at_mail.authenticated);
        assert_eq!(
            at_mail
                .auth_data
                .as_ref()
                .and_then(AuthData::login_password),
            Some(&expected)
        );
        assert_eq!(at_mail.login_data.as_deref(), Some(&b"gooduser"[..]));
    }

    #[tokio::test]
    async fn fail_withmesg() {
        let peeker = Peeker::default();
        let peeked = peeker.0.clone();
        let server = start(peeker, authenticator_peeker(&peeked)).await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(
            &format!("AUTH PLAIN {}", plain("", "failme_with454", "anypass")),
            "454 4.7.0 Temporary authentication failure",
        )
        .await;
        c.expect("MAIL FROM:<anne@example.com>", OK).await;
        server.shutdown().await;
        let peek = peeked.lock().unwrap();
        let peer = peek.peer.as_ref().and_then(Peer::addr).expect("TCP peer");
        assert!(peer.ip().is_loopback(), "{peer}");
        assert_eq!(
            peek.login_data.as_ref(),
            Some(&LoginPassword::new("failme_with454", "anypass"))
        );
        let at_mail = peek.at_mail.as_ref().unwrap();
        assert!(!at_mail.authenticated);
        assert!(at_mail.auth_data.is_none());
        assert_eq!(at_mail.login_data, None);
    }
}

// ---- TestRequiredAuthentication ------------------------------------------------------------

mod test_required_authentication {
    use super::*;

    fn required() -> Config {
        {
            let mut config = decoding_authnotls();
            config.auth_required = true;
            config
        }
    }

    async fn server() -> ServerHandle {
        start(Sink, required()).await
    }

    /// `_login`: EHLO, then smtplib's `login()`, which picks PLAIN with an initial response.
    async fn logged_in(server: &ServerHandle) -> Client {
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(
            &format!("AUTH PLAIN {}", good_plain(GOOD_PASSWORD)),
            SUCCESS,
        )
        .await;
        c
    }

    #[tokio::test]
    async fn help_unauthenticated() {
        let server = server().await;
        let mut c = Client::connect(server.local_addr()).await;
        c.expect("HELP", AUTH_REQUIRED).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn help_authenticated() {
        let server = server().await;
        let mut c = logged_in(&server).await;
        c.expect(
            "HELP",
            "250 Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY",
        )
        .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn vrfy_unauthenticated() {
        let server = server().await;
        let mut c = Client::connect(server.local_addr()).await;
        c.expect("VRFY <anne@example.com>", AUTH_REQUIRED).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn mail_unauthenticated() {
        let server = server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("MAIL FROM: <anne@example.com>", AUTH_REQUIRED)
            .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn rcpt_unauthenticated() {
        let server = server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("RCPT TO: <anne@example.com>", AUTH_REQUIRED).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn rcpt_nomail_authenticated() {
        let server = server().await;
        let mut c = logged_in(&server).await;
        c.expect(
            "RCPT TO: <anne@example.com>",
            "503 Error: need MAIL command",
        )
        .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn data_unauthenticated() {
        let server = server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("DATA", AUTH_REQUIRED).await;
        server.shutdown().await;
    }

    /// aiosmtpd's `auth_callback` accepts any password for goodlogin, so the misspelt
    /// `goodpassword` still logs in.
    #[tokio::test]
    async fn data_authenticated() {
        let server = server().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(
            &format!("AUTH PLAIN {}", good_plain("goodpassword")),
            SUCCESS,
        )
        .await;
        c.expect("DATA", "503 Error: need RCPT command").await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn vrfy_authenticated() {
        let server = server().await;
        let mut c = logged_in(&server).await;
        c.expect(
            "VRFY <anne@example.com>",
            "252 Cannot VRFY user, but will accept message and attempt delivery",
        )
        .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn mail_authenticated() {
        let server = server().await;
        let mut c = logged_in(&server).await;
        c.expect("MAIL FROM: <anne@example.com>", OK).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn data_norcpt_authenticated() {
        let server = server().await;
        let mut c = logged_in(&server).await;
        c.expect("DATA", "503 Error: need RCPT command").await;
        server.shutdown().await;
    }
}

// ---- TestAuthArgs --------------------------------------------------------------------------

mod test_auth_args {
    use super::*;

    /// What `Server::start` logs for `config`.
    async fn startup_log(config: Config) -> String {
        let logs = SharedBuf::default();
        let server = Server::new(Sink, config)
            .listen("127.0.0.1:0")
            .await
            .expect("bind");
        let handle = tracing::subscriber::with_default(logs.subscriber(), || server.start());
        handle.shutdown().await;
        logs.text()
    }

    /// aiosmtpd logs a WARNING and raises a `UserWarning`; here it is a `tracing` warning.
    #[tokio::test]
    async fn warn_authreqnotls() {
        let warning = "auth_required is set but auth_require_tls is not";
        let log = startup_log({
            let mut config = auth_config();
            config.auth_required = true;
            config
        })
        .await;
        let line = log
            .lines()
            .find(|l| l.contains(warning))
            .unwrap_or_else(|| panic!("no warning in {log}"));
        assert!(line.contains("WARN"), "{line}");
        for quiet in [
            {
                let mut config = config();
                config.auth_required = true;
                config
            },
            auth_config(),
        ] {
            let log = startup_log(quiet).await;
            assert!(!log.contains(warning), "{log}");
        }
    }

    #[tokio::test]
    async fn log_authmechanisms() {
        let log = startup_log(config()).await;
        let line = log
            .lines()
            .find(|l| l.contains("available AUTH mechanisms"))
            .unwrap_or_else(|| panic!("no mechanisms line in {log}"));
        assert!(line.contains("INFO"), "{line}");
        assert!(
            line.ends_with("available AUTH mechanisms: LOGIN PLAIN"),
            "{line}"
        );
    }

    /// aiosmtpd's decorator upper-cases the name first, so `with-dash` is valid there; the
    /// builder, like the macros, wants the name as it will be advertised.
    #[test]
    fn authmechname_decorator_badname() {
        for name in [
            "has space",
            "has.dot",
            "has/slash",
            "has\\backslash",
            "",
            "with-dash",
            "TWENTY-ONE-CHARACTERS",
        ] {
            let error = Server::new(Sink, config())
                .mechanism(Token(name))
                .err()
                .unwrap_or_else(|| panic!("{name:?} accepted"));
            assert_eq!(error.0, name);
            assert_eq!(
                error.to_string(),
                format!("invalid SASL mechanism name `{name}`: use 1 to 20 of A-Z 0-9 - _")
            );
        }
        for name in ["X-TOKEN", "WITH_UNDERSCORE", "TWENTY-CHARACTERS-OK", "9"] {
            assert!(Server::new(Sink, config()).mechanism(Token(name)).is_ok());
        }
    }
}

// ---- Beyond aiosmtpd's classes: run-time registration and the handle_auth hook -------------

/// A mechanism registered at run time with the builder under the name it holds: a bearer
/// token, as initial response or after a `334` prompt.
struct Token(&'static str);

/// Who a token belongs to, kept as custom auth data.
#[derive(Debug, PartialEq)]
struct TokenUser(&'static str);

impl AuthMechanism for Token {
    fn name(&self) -> &str {
        self.0
    }

    async fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let token = server
            .initial_or_challenge(args.initial_response, "token?")
            .await?;
        Ok(if token == b"letmein" {
            AuthResult::success_with(AuthData::custom(TokenUser("alice")))
        } else {
            AuthResult::failure()
        })
    }
}

/// Always refuses with its own reply; registered over the built-in PLAIN, or as another name.
struct ClosedPlain(&'static str);

impl AuthMechanism for ClosedPlain {
    fn name(&self) -> &str {
        self.0
    }

    async fn run(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> Result<AuthResult, AuthAbort> {
        Ok(AuthResult::failure_with("454 4.7.0 PLAIN is closed today"))
    }
}

mod run_time_registration {
    use super::*;

    async fn start_with_token() -> (ServerHandle, Peeked) {
        let peeker = Peeker::default();
        let peeked = peeker.0.clone();
        let server = Server::new(peeker, auth_peeker(&peeked))
            .mechanism(Token("X-TOKEN"))
            .expect("valid name")
            // The handler's own NONE wins over this one.
            .mechanism(ClosedPlain("NONE"))
            .expect("valid name")
            .listen("127.0.0.1:0")
            .await
            .expect("bind")
            .start();
        (server, peeked)
    }

    #[tokio::test]
    async fn advertised_with_the_others() {
        let (server, _) = start_with_token().await;
        let mut c = Client::connect(server.local_addr()).await;
        let ehlo = c.cmd("EHLO example.com", 250).await;
        assert!(
            ehlo.contains(
                &"250-AUTH DENYFALSE DENYMISSING LOGIN NONE NULL PLAIN WITH-DASH WITH-MULTI-DASH WITH_UNDERSCORE X-TOKEN"
                    .to_owned()
            ),
            "{ehlo:?}"
        );
        server.shutdown().await;
    }

    #[tokio::test]
    async fn challenge_and_custom_auth_data() {
        let (server, peeked) = start_with_token().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH X-TOKEN", &format!("334 {}", b64("token?")))
            .await;
        c.expect(&b64("letmein"), SUCCESS).await;
        c.expect("MAIL FROM:<alice@example.com>", OK).await;
        server.shutdown().await;
        let peek = peeked.lock().unwrap();
        let at_mail = peek.at_mail.as_ref().unwrap();
        assert!(at_mail.authenticated);
        let data = at_mail.auth_data.as_ref().unwrap();
        assert_eq!(data.downcast_ref::<TokenUser>(), Some(&TokenUser("alice")));
    }

    #[tokio::test]
    async fn initial_response_and_failure() {
        let (server, _) = start_with_token().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(&format!("AUTH X-TOKEN {}", b64("guess")), INVALID)
            .await;
        c.expect("AUTH X-TOKEN", &format!("334 {}", b64("token?")))
            .await;
        c.expect("*", ABORTED).await;
        c.expect(&format!("AUTH X-TOKEN {}", b64("letmein")), SUCCESS)
            .await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn handler_mechanism_beats_run_time_one() {
        let (server, _) = start_with_token().await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH NONE", SUCCESS).await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn run_time_mechanism_replaces_builtin() {
        let server = Server::new(Sink, decoding_authnotls())
            .mechanism(ClosedPlain("PLAIN"))
            .expect("valid name")
            .listen("127.0.0.1:0")
            .await
            .expect("bind")
            .start();
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(
            &format!("AUTH PLAIN {}", good_plain(GOOD_PASSWORD)),
            "454 4.7.0 PLAIN is closed today",
        )
        .await;
        c.expect("AUTH LOGIN", LOGIN_PROMPT).await;
        server.shutdown().await;
    }
}

/// aiosmtpd's `handle_AUTH` hook (its `AUTHHandler` returns a 235 for anything): it replaces
/// the mechanisms, after the server's own checks.
mod handle_auth_hook {
    use super::*;

    /// Lets a bare `AUTH PLAIN` in without asking anything, refuses LOGIN itself, and leaves
    /// the rest to the mechanisms (`None`).
    struct Doorman;

    impl Handler for Doorman {
        async fn handle_auth(
            &self,
            _: &mut AuthServer<'_>,
            args: &smtp_core::AuthArgs,
        ) -> Option<AuthResult> {
            match args.mechanism.as_str() {
                "PLAIN" if args.initial_response.is_none() => Some(AuthResult::success()),
                "LOGIN" => Some(AuthResult::failure_with("535 5.7.8 No LOGIN here")),
                _ => None,
            }
        }
    }

    #[tokio::test]
    async fn hook_replaces_mechanism() {
        let server = start(Doorman, {
            let mut config = decoding_authnotls();
            config.auth_required = true;
            config
        })
        .await;
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH LOGIN", "535 5.7.8 No LOGIN here").await;
        c.expect("MAIL FROM:<anne@example.com>", AUTH_REQUIRED)
            .await;
        // No `334`: the hook decided.
        c.expect("AUTH PLAIN", SUCCESS).await;
        c.expect("MAIL FROM:<anne@example.com>", OK).await;

        let mut c = Client::ehloed(server.local_addr()).await;
        // The server's checks come first: an unknown mechanism never reaches the hook.
        c.expect("AUTH X-ANYONE", UNRECOGNIZED).await;
        // `None` runs the built-in PLAIN and its authenticator.
        c.expect(
            &format!("AUTH PLAIN {}", plain("", "badlogin", "x")),
            INVALID,
        )
        .await;
        c.expect(&format!("AUTH PLAIN {}", good_plain("any")), SUCCESS)
            .await;
        c.expect("MAIL FROM:<anne@example.com>", OK).await;
        server.shutdown().await;
    }
}
