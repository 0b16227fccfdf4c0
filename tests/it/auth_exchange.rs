//! Where this server's AUTH does better than aiosmtpd's (issue 3, "Do better than aiosmtpd"):
//! one test per item, each saying what aiosmtpd does instead.

use smtp_core::{AuthArgs, InitialResponse, SharedAuthenticator};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use smtp_core::handlers::Sink;
use smtp_core::{
    AuthAbort, AuthData, AuthMechanism, AuthResult, AuthServer, Authenticator, Config, Envelope,
    Handler, LoginPassword, Mechanism, Reply, Server, ServerHandle, Session, StaticUsers,
    authenticator_fn,
};

const OK: &str = "250 OK";
const SUCCESS: &str = "235 2.7.0 Authentication successful";
const INVALID: &str = "535 5.7.8 Authentication credentials invalid";
const TOO_LONG: &str = "500 5.5.6 Authentication Exchange line is too long";
const TOO_MANY: &str = "421 4.7.0 Too many authentication failures";
const ABORTED: &str = "501 5.7.0 Auth aborted";
const PASSWORD_PROMPT: &str = "334 UGFzc3dvcmQA";
const EXPN: &str = "502 EXPN not implemented";

// ---- Fixtures ----------------------------------------------------------------------------

/// The session's `authenticated`, `auth_data` and `login_data` at MAIL.
type AtMail = (bool, Option<AuthData>, Option<Vec<u8>>);

/// What the authenticator and the handler saw.
#[derive(Default)]
struct Seen {
    /// How many times the authenticator was asked.
    calls: AtomicUsize,
    /// The auth data it was last asked about.
    last: Mutex<Option<AuthData>>,
    /// The `args` the `ECHO` mechanism got.
    echo_args: Mutex<Option<AuthArgs>>,
    /// The session at MAIL.
    at_mail: Mutex<Option<AtMail>>,
}

/// Accepts `goodlogin` with any password, and records every call.
fn counting(seen: &Arc<Seen>) -> SharedAuthenticator {
    let seen = seen.clone();
    SharedAuthenticator::new(move |_: &Session, _: &Envelope, _: &str, data: &AuthData| {
        seen.calls.fetch_add(1, Ordering::SeqCst);
        *seen.last.lock().unwrap() = Some(data.clone());
        match data.login_password() {
            Some(lp) if lp.login == b"goodlogin" => AuthResult::success_with(data.clone()),
            _ => AuthResult::failure(),
        }
    })
}

/// A handler with test mechanisms.
#[derive(Clone)]
struct Better(Arc<Seen>);

impl Handler for Better {
    async fn handle_mail(
        &self,
        session: &mut Session,
        _: &mut Envelope,
        _: &str,
        _: &smtp_core::MailParams,
    ) -> Reply {
        *self.0.at_mail.lock().unwrap() = Some((
            session.authenticated(),
            session.auth_data().cloned(),
            session.login_data().map(<[u8]>::to_vec),
        ));
        Reply::ok()
    }

    fn mechanisms() -> &'static [Mechanism<Self>] {
        &[
            Mechanism {
                name: "ECHO",
                run: |h, server, args| Box::pin(async move { Ok(h.echo(server, args).await) }),
            },
            Mechanism {
                name: "IGNORE-ABORT",
                run: |h, server, args| {
                    Box::pin(async move { Ok(h.ignore_abort(server, args).await) })
                },
            },
            Mechanism {
                name: "DENY",
                run: |h, server, args| Box::pin(async move { Ok(h.deny(server, args).await) }),
            },
            Mechanism {
                name: "X-CASE",
                run: |h, server, args| Box::pin(async move { Ok(h.deny(server, args).await) }),
            },
        ]
    }
}

impl Better {
    /// Records its arguments and lets the client in.
    async fn echo(&self, _: &mut AuthServer<'_>, args: AuthArgs) -> AuthResult {
        *self.0.echo_args.lock().unwrap() = Some(args);
        AuthResult::success()
    }

    /// aiosmtpd's `auth_WITH_UNDERSCORE`: ignores what the challenge returned (even an
    /// abort) and claims success.
    async fn ignore_abort(&self, server: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        let _ignored = server.challenge_auth("challenge", false).await;
        AuthResult::success()
    }

    async fn deny(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> AuthResult {
        AuthResult::failure()
    }
}

/// Like [`Better::ignore_abort`], but registered at run time, and it insists: after the
/// abort it challenges again, ignores that too, and claims success with its own 235.
struct Stubborn;

impl AuthMechanism for Stubborn {
    fn name(&self) -> &str {
        "STUBBORN"
    }

    async fn run(&self, server: &mut AuthServer<'_>, _: AuthArgs) -> Result<AuthResult, AuthAbort> {
        let _first = server.challenge_auth("first", false).await;
        let second = server.challenge_auth("second", false).await;
        assert!(
            second.is_err(),
            "a second challenge after an abort must fail"
        );
        Ok(AuthResult::success().with_message(SUCCESS))
    }
}

fn better_config(seen: &Arc<Seen>) -> Config {
    {
        let mut config = auth_config();
        config.authenticator = Some(counting(seen));
        config
    }
}

async fn better_server(config: impl FnOnce(Config) -> Config) -> (ServerHandle, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let server = Server::new(Better(seen.clone()), config(better_config(&seen)))
        .mechanism(Stubborn)
        .expect("valid name")
        .listen("127.0.0.1:0")
        .await
        .expect("bind")
        .start();
    (server, seen)
}

/// A sink that asks `authenticator`, with no cap on failures, so that one connection can show
/// several.
async fn sink_with(authenticator: impl Authenticator + 'static) -> ServerHandle {
    let config = {
        let mut config = auth_config();
        config.authenticator = Some(authenticator.into());
        config.max_auth_failures = None;
        config
    };
    start(Sink, config).await
}

fn good_plain() -> String {
    plain("", "goodlogin", "goodpasswd")
}

/// Sends `head`, lets the server read it, then sends `tail`: the server sees one line in two
/// reads, the way a line longer than its buffer arrives.
async fn send_in_two(c: &mut Client, head: &[u8], tail: &[u8]) {
    c.send(head).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.send(tail).await;
}

/// Sends `line` and checks that the next replies are exactly `replies` (one line each): what
/// was still owed before `line`, then its own reply.
async fn expect_replies(c: &mut Client, line: &str, replies: &[&str]) {
    c.send(format!("{line}\r\n").as_bytes()).await;
    let shown: String = line.chars().take(40).collect();
    for expected in replies {
        assert_eq!(c.reply().await, [*expected], "replies around `{shown}…`");
    }
}

// ---- The list ------------------------------------------------------------------------------

/// aiosmtpd accepts AUTH between MAIL and DATA (MAIL 250, AUTH 235, RCPT 250); RFC 4954 §4
/// forbids it.
#[tokio::test]
async fn auth_during_mail_transaction_is_refused() {
    let (server, seen) = better_server(|c| c).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM:<anne@example.com>", OK).await;
    c.expect(
        &format!("AUTH PLAIN {}", good_plain()),
        "503 5.5.1 Error: MAIL transaction in progress",
    )
    .await;
    c.expect(
        "AUTH LOGIN",
        "503 5.5.1 Error: MAIL transaction in progress",
    )
    .await;
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0);
    // The transaction goes on, and AUTH works again after it.
    c.expect("RCPT TO:<bob@example.com>", OK).await;
    c.expect("RSET", OK).await;
    c.expect(&format!("AUTH PLAIN {}", good_plain()), SUCCESS)
        .await;
    server.shutdown().await;
}

/// RFC 4954 §4: `=` is an empty initial response. aiosmtpd tries to decode it and answers
/// `501 5.5.2 Can't decode base64`.
#[tokio::test]
async fn equals_initial_response_means_empty() {
    let (server, seen) = better_server(|c| c).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH ECHO =", SUCCESS).await;
    let echoed = seen.echo_args.lock().unwrap().take().expect("ECHO ran");
    assert_eq!(echoed.mechanism, "ECHO");
    assert_eq!(
        echoed
            .initial_response
            .as_ref()
            .map(InitialResponse::as_str),
        Some(""),
        "`=` is an empty initial response"
    );

    // An empty PLAIN message has no NULs to split on.
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH PLAIN =", "501 5.5.2 Can't split auth value")
        .await;
    // An empty LOGIN user name skips the user name prompt.
    c.expect("AUTH LOGIN =", PASSWORD_PROMPT).await;
    c.expect(&b64("goodpasswd"), INVALID).await;
    let last = seen
        .last
        .lock()
        .unwrap()
        .clone()
        .expect("authenticator asked");
    assert_eq!(
        last.login_password(),
        Some(&LoginPassword::new("", "goodpasswd"))
    );
    server.shutdown().await;
}

/// RFC 4954 §4 allows 12288 octets per response; aiosmtpd cuts AUTH lines at 512 octets and
/// challenge answers at 1001, and then runs the rest of an over-long line as a command
/// (`BCD NOOP` gave `500 Error: command "BCD" not recognized`). Here: 12288 octets pass,
/// one more gets `500 5.5.6`, and nothing of the over-long line is ever run.
#[tokio::test]
async fn responses_up_to_12288_octets_and_no_more() {
    let (server, seen) = better_server(|c| {
        let mut config = c;
        config.max_auth_failures = None;
        config
    })
    .await;
    // 9216 octets encode to exactly 12288.
    let password = "p".repeat(9216 - "\0goodlogin\0".len());
    let longest = plain("", "goodlogin", &password);
    assert_eq!(longest.len(), 12288);
    let too_long = plain("", "goodlogin", &format!("{password}ppp"));
    assert_eq!(too_long.len(), 12292);

    // Initial response.
    let mut c = Client::ehloed(server.local_addr()).await;
    expect_replies(&mut c, &format!("AUTH PLAIN {longest}"), &[SUCCESS]).await;
    let last = seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(
        last.login_password().unwrap().password.expose(),
        password.as_bytes()
    );
    let mut c = Client::ehloed(server.local_addr()).await;
    expect_replies(&mut c, &format!("AUTH PLAIN {too_long}"), &[TOO_LONG]).await;
    c.expect("NOOP", OK).await;

    // Challenge answer.
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH PLAIN", "334 ").await;
    expect_replies(&mut c, &longest, &[SUCCESS]).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH PLAIN", "334 ").await;
    expect_replies(&mut c, &too_long, &[TOO_LONG]).await;
    c.expect("NOOP", OK).await;
    // Not authenticated: a new AUTH is welcome.
    c.expect(&format!("AUTH PLAIN {}", good_plain()), SUCCESS)
        .await;
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);
    server.shutdown().await;
}

/// An over-long initial response, at every size where a different part of the server
/// notices it, with `NOOP` in its tail: the client gets one `500 5.5.6`, and the next reply
/// answers the next command (EXPN, 502), not a `250 OK` for a NOOP smuggled in the tail.
#[tokio::test]
async fn overlong_initial_response_tail_is_not_run() {
    let (server, seen) = better_server(|c| {
        let mut config = c;
        config.max_auth_failures = None;
        config
    })
    .await;
    for size in [12289, 12320, 12400, 70_000] {
        let head = format!("AUTH PLAIN {}", "A".repeat(size));
        // The tail arrives in a read of its own, as if it started a new line.
        let mut c = Client::ehloed(server.local_addr()).await;
        send_in_two(&mut c, head.as_bytes(), b"NOOP\r\n").await;
        expect_replies(&mut c, "EXPN <anne@example.com>", &[TOO_LONG, EXPN]).await;
        // The same, in one write, with the NOOP as a third word. A line within the AUTH
        // line limit is parsed, and its three words refused first.
        let first = if size == 12289 {
            "501 Too many values"
        } else {
            TOO_LONG
        };
        let mut c = Client::ehloed(server.local_addr()).await;
        c.send(format!("{head} NOOP\r\n").as_bytes()).await;
        expect_replies(&mut c, "EXPN <anne@example.com>", &[first, EXPN]).await;
    }
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

/// The same for a challenge answer: one `500 5.5.6`, the tail not run, the exchange over,
/// and the session free to AUTH again.
#[tokio::test]
async fn overlong_challenge_answer_tail_is_not_run() {
    let (server, seen) = better_server(|c| c).await;
    for size in [12289, 12400, 70_000] {
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH PLAIN", "334 ").await;
        send_in_two(&mut c, "A".repeat(size).as_bytes(), b"NOOP\r\n").await;
        expect_replies(&mut c, "EXPN <anne@example.com>", &[TOO_LONG, EXPN]).await;

        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect("AUTH LOGIN", "334 VXNlciBOYW1lAA==").await;
        c.send(format!("{} NOOP\r\n", "A".repeat(size)).as_bytes())
            .await;
        expect_replies(&mut c, "EXPN <anne@example.com>", &[TOO_LONG, EXPN]).await;
        c.expect(&format!("AUTH PLAIN {}", good_plain()), SUCCESS)
            .await;
    }
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);
    server.shutdown().await;
}

/// aiosmtpd matches mechanism names case-sensitively (`AUTH plain` gets 504); SASL names are
/// case-insensitive (RFC 4422 §3.1).
#[tokio::test]
async fn mechanism_names_are_case_insensitive() {
    let (server, seen) = better_server(|c| c).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(&format!("auth plain {}", good_plain()), SUCCESS)
        .await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH Login", "334 VXNlciBOYW1lAA==").await;
    c.expect(&b64("goodlogin"), PASSWORD_PROMPT).await;
    c.expect(&b64("x"), SUCCESS).await;
    // The handler's mechanisms too; they get the name as registered.
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH x-case", INVALID).await;
    c.expect("AUTH echo", SUCCESS).await;
    let echoed = seen.echo_args.lock().unwrap().take().expect("ECHO ran");
    assert_eq!(echoed, AuthArgs::new("ECHO", None));
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH stubborn", "334 first").await;
    server.shutdown().await;
}

/// aiosmtpd hands empty logins and passwords, and ones with line breaks, to the
/// authenticator. PLAIN refuses them first (535); a NUL inside a field makes the message
/// unsplittable (501).
#[tokio::test]
async fn plain_rejects_empty_and_control_characters() {
    let (server, seen) = better_server(|c| {
        let mut config = c;
        config.max_auth_failures = None;
        config
    })
    .await;
    let mut c = Client::ehloed(server.local_addr()).await;
    for (login, password) in [
        ("", "goodpasswd"),
        ("goodlogin", ""),
        ("", ""),
        ("good\rlogin", "goodpasswd"),
        ("good\nlogin", "goodpasswd"),
        ("goodlogin", "good\rpasswd"),
        ("goodlogin", "good\npasswd"),
        ("goodlogin", "goodpasswd\r\n"),
    ] {
        c.expect(
            &format!("AUTH PLAIN {}", plain("", login, password)),
            INVALID,
        )
        .await;
        c.expect("AUTH PLAIN", "334 ").await;
        c.expect(&plain("", login, password), INVALID).await;
    }
    for blob in ["\0good\0login\0goodpasswd", "\0goodlogin\0good\0passwd"] {
        c.expect(
            &format!("AUTH PLAIN {}", b64(blob)),
            "501 5.5.2 Can't split auth value",
        )
        .await;
    }
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0);
    c.expect(&format!("AUTH PLAIN {}", good_plain()), SUCCESS)
        .await;
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
    server.shutdown().await;
}

/// aiosmtpd drops PLAIN's authorization identity. Here an authzid other than the login
/// reaches the authenticator, which decides whether the login may act as it; the built-in
/// user table never lets anyone.
#[tokio::test]
async fn authzid_reaches_the_authenticator() {
    let seen = Arc::new(Seen::default());
    // An async authenticator: `admin` may act as `postmaster`.
    let asked = seen.clone();
    let authenticator = authenticator_fn(move |request| {
        let asked = asked.clone();
        async move {
            tokio::task::yield_now().await;
            *asked.last.lock().unwrap() = Some(request.auth_data.clone());
            let lp = request.auth_data.login_password().expect("PLAIN");
            let may = match lp.authzid.as_deref() {
                None => true,
                Some(authzid) => lp.login == b"admin" && authzid == b"postmaster",
            };
            if may && lp.password.expose() == b"adminpw" {
                AuthResult::success_with(request.auth_data)
            } else {
                AuthResult::failure()
            }
        }
    });
    let server = start(Better(seen.clone()), {
        let mut config = auth_config();
        config.authenticator = Some(authenticator.into());
        config
    })
    .await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("postmaster", "admin", "adminpw")),
        SUCCESS,
    )
    .await;
    let expected = LoginPassword {
        authzid: Some(b"postmaster".to_vec()),
        ..LoginPassword::new("admin", "adminpw")
    };
    let last = seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(last.login_password(), Some(&expected));
    c.expect("MAIL FROM:<postmaster@example.com>", OK).await;
    let (authenticated, auth_data, login_data) = seen.at_mail.lock().unwrap().take().unwrap();
    assert!(authenticated);
    assert_eq!(auth_data.unwrap().login_password(), Some(&expected));
    assert_eq!(login_data.as_deref(), Some(&b"admin"[..]));

    // An authzid equal to the login is no request at all.
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("admin", "admin", "adminpw")),
        SUCCESS,
    )
    .await;
    let last = seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(
        last.login_password(),
        Some(&LoginPassword::new("admin", "adminpw"))
    );
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("root", "admin", "adminpw")),
        INVALID,
    )
    .await;
    server.shutdown().await;

    // The static table grants no authorization identities.
    let users = StaticUsers::new().user("alice", "alicepw");
    let server = sink_with(users).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("bob", "alice", "alicepw")),
        INVALID,
    )
    .await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("alice", "alice", "alicepw")),
        SUCCESS,
    )
    .await;
    server.shutdown().await;
}

/// PLAIN and LOGIN compare passwords after SASLprep (RFC 4616 §2), as SCRAM does: a soft
/// hyphen is nothing and a no-break space is a space, whichever side has them.
#[tokio::test]
async fn static_users_compare_passwords_after_saslprep() {
    let users = StaticUsers::new()
        .user("alice", "pen\u{AD}cil")
        .user("bob", "two words");
    let server = sink_with(users).await;
    for (login, password, reply) in [
        ("alice", "pencil", SUCCESS),
        ("alice", "pen\u{AD}cil", SUCCESS),
        ("alice", "pen-cil", INVALID),
        ("bob", "two\u{A0}words", SUCCESS),
        ("bob", "twowords", INVALID),
    ] {
        let mut c = Client::ehloed(server.local_addr()).await;
        c.expect(&format!("AUTH PLAIN {}", plain("", login, password)), reply)
            .await;
    }
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH LOGIN", "334 VXNlciBOYW1lAA==").await;
    c.expect(&b64("bob"), PASSWORD_PROMPT).await;
    c.expect(&b64("two\u{A0}words"), SUCCESS).await;
    server.shutdown().await;
}

/// aiosmtpd lets a client guess passwords for as long as the connection lasts (only a
/// `max_command_calls` on AUTH, off by default, stops it).
#[tokio::test]
async fn three_failures_close_the_connection() {
    let (server, seen) = better_server(|c| c).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    // Failures of any mechanism count.
    c.expect(&format!("AUTH PLAIN {}", plain("", "x", "y")), INVALID)
        .await;
    c.expect("AUTH DENY", INVALID).await;
    c.expect("AUTH LOGIN", "334 VXNlciBOYW1lAA==").await;
    c.expect(&b64("x"), PASSWORD_PROMPT).await;
    c.expect(&b64("y"), TOO_MANY).await;
    c.expect_closed().await;
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);

    // Per connection: a new one starts afresh; aborts are not failures.
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH DENY", INVALID).await;
    c.expect("AUTH PLAIN", "334 ").await;
    c.expect("*", ABORTED).await;
    c.expect("AUTH DENY", INVALID).await;
    c.expect(&format!("AUTH PLAIN {}", good_plain()), SUCCESS)
        .await;
    server.shutdown().await;
}

/// `config.max_auth_failures` sets the limit; `None` lifts it.
#[tokio::test]
async fn failure_limit_is_configurable() {
    for limit in [1, 5] {
        let (server, _) = better_server(|c| {
            let mut config = c;
            config.max_auth_failures = Some(limit);
            config
        })
        .await;
        let mut c = Client::ehloed(server.local_addr()).await;
        for _ in 1..limit {
            c.expect("AUTH DENY", INVALID).await;
        }
        c.expect("AUTH DENY", TOO_MANY).await;
        c.expect_closed().await;
        server.shutdown().await;
    }
    let (server, _) = better_server(|c| {
        let mut config = c;
        config.max_auth_failures = None;
        config
    })
    .await;
    let mut c = Client::ehloed(server.local_addr()).await;
    for _ in 0..20 {
        c.expect("AUTH DENY", INVALID).await;
    }
    c.expect(&format!("AUTH PLAIN {}", good_plain()), SUCCESS)
        .await;
    server.shutdown().await;
}

/// aiosmtpd's `AuthResult(success=False)` defaults to `handled=True`: returned by an
/// authenticator, nobody answers and the client hangs. Here the server knows no final reply
/// went out and sends exactly one.
#[tokio::test]
async fn handled_failure_from_authenticator_gets_one_reply() {
    let authenticator = |_: &Session, _: &Envelope, _: &str, data: &AuthData| {
        match data.login_password().map(|lp| lp.login.as_slice()) {
            // aiosmtpd's `AuthResult(success=False)`.
            Some(b"plain") => AuthResult {
                success: false,
                handled: true,
                message: None,
                auth_data: None,
            },
            Some(b"worded") => AuthResult::handled_failure()
                .with_message("454 4.7.0 Temporary authentication failure"),
            _ => AuthResult::handled_failure(),
        }
    };
    let server = sink_with(authenticator).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(&format!("AUTH PLAIN {}", plain("", "plain", "pw")), INVALID)
        .await;
    c.expect("NOOP", OK).await;
    c.expect("AUTH LOGIN", "334 VXNlciBOYW1lAA==").await;
    c.expect(&b64("other"), PASSWORD_PROMPT).await;
    c.expect(&b64("pw"), INVALID).await;
    c.expect("NOOP", OK).await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("", "worded", "pw")),
        "454 4.7.0 Temporary authentication failure",
    )
    .await;
    c.expect("NOOP", OK).await;
    server.shutdown().await;
}

/// aiosmtpd's `auth_WITH_UNDERSCORE` ignores the `MISSING` of an aborted challenge and
/// returns `"250 OK"`: the client gets `501 5.7.0 Auth aborted` *and* a 235. Here it gets the
/// 501 alone, and the session stays unauthenticated.
#[tokio::test]
async fn ignored_abort_gets_one_reply_and_no_authentication() {
    let (server, seen) = better_server(|c| {
        let mut config = c;
        config.auth_required = true;
        config
    })
    .await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH IGNORE-ABORT", "334 challenge").await;
    c.expect("*", ABORTED).await;
    c.expect("NOOP", OK).await;
    c.expect(
        "MAIL FROM:<anne@example.com>",
        "530 5.7.0 Authentication required",
    )
    .await;
    // Undecodable answers end the same way.
    c.expect("AUTH IGNORE-ABORT", "334 challenge").await;
    c.expect("not base64!", "501 5.5.2 Can't decode base64")
        .await;
    c.expect("NOOP", OK).await;
    // The run-time registered mechanism: its second challenge and its own 235 are dropped.
    c.expect("AUTH STUBBORN", "334 first").await;
    c.expect("*", ABORTED).await;
    c.expect("NOOP", OK).await;
    c.expect(
        "MAIL FROM:<anne@example.com>",
        "530 5.7.0 Authentication required",
    )
    .await;
    // Not authenticated, so AUTH is still possible (not `503 Already authenticated`).
    c.expect("AUTH IGNORE-ABORT", "334 challenge").await;
    c.expect(&b64("anything"), SUCCESS).await;
    c.expect("MAIL FROM:<anne@example.com>", OK).await;
    assert!(seen.at_mail.lock().unwrap().as_ref().unwrap().0);
    server.shutdown().await;
}
