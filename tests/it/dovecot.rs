//! AUTH handed to a real Dovecot (Debian package `dovecot-core`): its auth service runs in a
//! temp dir with its own base_dir, a passwd-file and an auth-client listener, and smtpd relays
//! PLAIN, LOGIN, CRAM-MD5 and SCRAM-SHA-256 to it, from swaks, Python's smtplib and a raw
//! client; Dovecot stopped and started again under a running smtpd.
//!
//! dovecot (and swaks, python3) are required under CI (`CI=true`); elsewhere these tests are
//! skipped with a notice.

mod fixture;

use std::time::{Duration, Instant};

use crate::support::tls::Pki;
use crate::support::*;
use fixture::{Dovecot, kill};
use smtp_core::auth::dovecot::{DovecotAddress, DovecotAuth, DovecotOptions};
use smtp_core::{AuthAbort, AuthArgs, AuthResult, AuthServer, Server, StaticUsers, auth_mechanism};

/// A handler with an AUTH mechanism of its own: `X-TOKEN let-me-in`.
#[derive(smtp_core::SmtpHandler)]
struct TokenDesk;

#[smtp_core::hooks]
impl TokenDesk {
    #[auth_mechanism("X-TOKEN")]
    async fn token(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let token = server
            .initial_or_challenge(args.initial_response, b"token?")
            .await?;
        Ok(if token == b"let-me-in" {
            AuthResult::success()
        } else {
            AuthResult::failure()
        })
    }
}

const SUCCESS: &str = "235 2.7.0 Authentication successful";
const INVALID: &str = "535 5.7.8 Authentication credentials invalid";
const TEMPORARY: &str = "454 4.7.0 Temporary authentication failure";

/// `AUTH PLAIN` with the initial response of `user` and `password`.
fn auth_plain(user: &str, password: &str) -> String {
    format!("AUTH PLAIN {}", plain("", user, password))
}

/// One AUTH PLAIN on a new connection: the reply.
async fn plain_login(smtpd: &Smtpd, user: &str, password: &str) -> String {
    let mut c = Client::ehloed(smtpd.addr()).await;
    c.send(format!("{}\r\n", auth_plain(user, password)).as_bytes())
        .await;
    c.reply().await.join("\n")
}

// ---- swaks -----------------------------------------------------------------------------------

async fn swaks(smtpd: &Smtpd, mechanism: &str, user: &str, password: &str) -> (bool, String) {
    let mut command = tools::swaks_auth(smtpd.addr(), mechanism, user, password);
    command.args(["--quit-after", "AUTH"]);
    let output = tools::run(command).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn swaks_plain_login_and_cram_md5_through_dovecot() {
    if !tools::available("swaks") {
        return;
    }
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let smtpd = dovecot.smtpd(&[]);
    let cases = [
        ("PLAIN", "alice", "s3cret", true),
        ("PLAIN", "bob", "s3cret", true),
        ("LOGIN", "alice", "s3cret", true),
        ("LOGIN", "carol", "s3cret", true),
        // smtpd has no CRAM-MD5 of its own: only Dovecot offers it.
        ("CRAM-MD5", "alice", "s3cret", true),
        ("PLAIN", "alice", "wrong", false),
        ("LOGIN", "bob", "wrong", false),
        ("PLAIN", "nobody", "s3cret", false),
        ("CRAM-MD5", "alice", "wrong", false),
    ];
    for (mechanism, user, password, ok) in cases {
        let (succeeded, text) = swaks(&smtpd, mechanism, user, password).await;
        let expected = if ok {
            format!("<-  {SUCCESS}")
        } else {
            format!("<** {INVALID}")
        };
        assert_eq!(succeeded, ok, "swaks {mechanism} {user}: {text}");
        assert!(text.contains(&expected), "swaks {mechanism} {user}: {text}");
    }
}

// ---- Python smtplib and SCRAM ----------------------------------------------------------------

/// `login()` picks CRAM-MD5 first when offered; `PLAIN`/`LOGIN`/`CRAM-MD5` force one; `SCRAM` is a
/// SCRAM-SHA-256 client (RFC 7677) over `docmd`, checking the server's signature.
const SMTPLIB: &str = r#"
import base64, hashlib, hmac, os, smtplib, sys
host, port, mode, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
b64 = lambda b: base64.b64encode(b).decode()
with smtplib.SMTP(host, port, local_hostname="client.example", timeout=10) as s:
    s.ehlo()
    print("AUTH", s.esmtp_features.get("auth", "").strip())
    try:
        if mode == "login()":
            print(s.login(user, password))
        elif mode == "SCRAM":
            nonce = b64(os.urandom(18))
            first = "n=%s,r=%s" % (user, nonce)
            code, text = s.docmd("AUTH", "SCRAM-SHA-256 " + b64(("n,," + first).encode()))
            assert code == 334, (code, text)
            server_first = base64.b64decode(text).decode()
            attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
            assert attrs["r"].startswith(nonce)
            salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
            client_key = hmac.digest(salted, b"Client Key", "sha256")
            final = "c=biws,r=" + attrs["r"]
            message = ",".join([first, server_first, final]).encode()
            signature = hmac.digest(hashlib.sha256(client_key).digest(), message, "sha256")
            proof = bytes(a ^ b for a, b in zip(client_key, signature))
            code, text = s.docmd(b64((final + ",p=" + b64(proof)).encode()))
            if code == 334:
                server_key = hmac.digest(salted, b"Server Key", "sha256")
                expected = "v=" + b64(hmac.digest(server_key, message, "sha256"))
                assert base64.b64decode(text).decode() == expected, "bad server signature"
                code, text = s.docmd("")
            print(code, text.decode())
        else:
            s.user, s.password = user, password
            print(s.auth(mode, getattr(s, "auth_" + mode.lower().replace("-", "_")), initial_response_ok=False))
    except smtplib.SMTPAuthenticationError as e:
        print(e.smtp_code, e.smtp_error.decode())
"#;

async fn smtplib(smtpd: &Smtpd, mode: &str, user: &str, password: &str) -> String {
    let addr = smtpd.addr();
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    let (ok, stdout, stderr) = python(SMTPLIB, &[&ip, &port, mode, user, password]).await;
    assert!(ok, "smtplib {mode} {user}: {stdout}{stderr}");
    stdout
}

#[tokio::test]
async fn smtplib_plain_login_cram_md5_and_scram_through_dovecot() {
    if !tools::available("python3") {
        return;
    }
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let smtpd = dovecot.smtpd(&[]);
    let ok = "(235, b'2.7.0 Authentication successful')";
    let cases = [
        ("PLAIN", "alice", "s3cret", ok),
        ("LOGIN", "bob", "s3cret", ok),
        ("login()", "alice", "s3cret", ok),
        (
            "SCRAM",
            "carol",
            "s3cret",
            "235 2.7.0 Authentication successful",
        ),
        (
            "SCRAM",
            "alice",
            "s3cret",
            "235 2.7.0 Authentication successful",
        ),
        ("PLAIN", "alice", "wrong", INVALID),
        ("LOGIN", "carol", "wrong", INVALID),
        ("CRAM-MD5", "alice", "s3cret", ok),
        // CRAM-MD5 needs a plain password: Dovecot fails bob's crypt hash.
        ("CRAM-MD5", "bob", "s3cret", INVALID),
        ("SCRAM", "carol", "wrong", INVALID),
    ];
    for (mode, user, password, expected) in cases {
        let stdout = smtplib(&smtpd, mode, user, password).await;
        assert!(
            stdout.starts_with("AUTH CRAM-MD5 LOGIN PLAIN SCRAM-SHA-256\n"),
            "{stdout}"
        );
        assert!(stdout.contains(expected), "smtplib {mode} {user}: {stdout}");
    }
}

// ---- The smtpd binary with a raw client ------------------------------------------------------

/// Dovecot's FAIL counts toward smtpd's cap of 3 failures per connection (the binary's
/// default): the third is answered `421` and the connection closes.
#[tokio::test]
async fn wrong_passwords_count_toward_the_failure_cap() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let smtpd = dovecot.smtpd(&[]);
    let mut c = Client::ehloed(smtpd.addr()).await;
    let guess = auth_plain("alice", "guess");
    c.expect(&guess, INVALID).await;
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.expect(&b64("alice"), "334 UGFzc3dvcmQ6").await;
    c.expect(&b64("guess"), INVALID).await;
    c.expect(&guess, "421 4.7.0 Too many authentication failures")
        .await;
    c.expect_closed().await;
    assert_eq!(plain_login(&smtpd, "alice", "s3cret").await, SUCCESS);
}

/// `*` (and an answer that is not base64) cancels the request at Dovecot too; the connection goes on with the next AUTH.
#[tokio::test]
async fn a_cancelled_exchange_leaves_the_connection_usable() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let smtpd = dovecot.smtpd(&[]);
    let mut c = Client::ehloed(smtpd.addr()).await;
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.expect("*", "501 5.7.0 Auth aborted").await;
    c.cmd("AUTH CRAM-MD5", 334).await;
    c.expect("not base64!", "501 5.5.2 Can't decode base64")
        .await;
    c.expect(&auth_plain("alice", "s3cret"), SUCCESS).await;
    for cancelled in ["client in: CANCEL\t1\n", "client in: CANCEL\t2\n"] {
        dovecot.log_with(cancelled);
    }
}

/// Dovecot stopped under a running smtpd: AUTH gets `454` at once, in the middle of an
/// exchange as at its start, never a hang; started again, logins work again.
#[tokio::test]
async fn dovecot_down_gives_454_and_logins_resume_after_restart() {
    let Some(mut dovecot) = Dovecot::start() else {
        return;
    };
    let smtpd = dovecot.smtpd(&[]);
    assert_eq!(plain_login(&smtpd, "alice", "s3cret").await, SUCCESS);
    let mut midway = Client::ehloed(smtpd.addr()).await;
    midway.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;

    dovecot.stop();
    let started = Instant::now();
    midway.expect(&b64("alice"), TEMPORARY).await;
    assert_eq!(plain_login(&smtpd, "alice", "s3cret").await, TEMPORARY);
    let mut c = Client::ehloed(smtpd.addr()).await;
    c.expect("AUTH LOGIN", TEMPORARY).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // 454 is not the client's fault: not counted toward the cap of 3.
    c.expect("AUTH LOGIN", TEMPORARY).await;
    c.expect("AUTH LOGIN", TEMPORARY).await;

    dovecot.run();
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let reply = plain_login(&smtpd, "alice", "s3cret").await;
        if reply == SUCCESS {
            break;
        }
        assert_eq!(reply, TEMPORARY);
        assert!(Instant::now() < deadline, "no login after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    midway.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    midway.expect(&b64("carol"), "334 UGFzc3dvcmQ6").await;
    midway.expect(&b64("s3cret"), SUCCESS).await;
}

/// Dovecot's temporary failure (`FAIL code=temp_fail`, from a passdb that cannot answer)
/// gives `454 4.7.0`, not counted toward the cap of 3.
#[tokio::test]
async fn a_temporary_fail_gives_454() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let smtpd = dovecot.smtpd(&["--metrics-listen", "127.0.0.1:0"]);
    let mut c = Client::ehloed(smtpd.addr()).await;
    for _ in 0..4 {
        c.expect(&auth_plain("tempfail", "s3cret"), TEMPORARY).await;
    }
    c.expect(&auth_plain("alice", "s3cret"), SUCCESS).await;
    dovecot.log_with("FAIL\t4\tuser=tempfail\tcode=temp_fail");
    // On a dashboard an outage is not a wave of wrong passwords.
    if crate::metrics::tools_available() {
        let attempts = "smtpd_auth_attempts_total{mechanism=\"PLAIN\",result=";
        let scrape = crate::metrics::scrape_until(
            crate::metrics::metrics_addr(&smtpd),
            &format!("{attempts}\"temporary\"}}"),
            4.0,
        )
        .await;
        assert_eq!(scrape.value(&format!("{attempts}\"failure\"}}")), 0.0);
        assert_eq!(scrape.value(&format!("{attempts}\"success\"}}")), 1.0);
    }
}

/// A Dovecot that stops answering (its processes frozen with SIGSTOP) costs one
/// `--auth-dovecot-timeout`, then `454`; thawed, it serves the next AUTH.
#[tokio::test]
async fn a_silent_dovecot_gives_454_after_the_timeout() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let smtpd = dovecot.smtpd(&["--auth-dovecot-timeout", "1"]);
    assert_eq!(plain_login(&smtpd, "alice", "s3cret").await, SUCCESS);
    let group = format!("-{}", dovecot.master.as_ref().unwrap().id());
    kill("-STOP", &group);
    let started = Instant::now();
    let reply = plain_login(&smtpd, "alice", "s3cret").await;
    let waited = started.elapsed();
    kill("-CONT", &group);
    assert_eq!(reply, TEMPORARY);
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(5)).contains(&waited),
        "{waited:?}"
    );
    assert_eq!(plain_login(&smtpd, "bob", "s3cret").await, SUCCESS);
}

/// `--auth-dovecot-mechanisms` offers a subset; AUTH still needs TLS unless told otherwise,
/// as for the built-in mechanisms; a Dovecot that is down at startup stops smtpd with a
/// clear message.
#[tokio::test]
async fn binary_subset_tls_rule_and_startup_failure() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let smtpd = dovecot.smtpd(&["--auth-dovecot-mechanisms", "login,SCRAM-SHA-256"]);
    let mut c = Client::connect(smtpd.addr()).await;
    let ehlo = c.ehlo("client.example").await;
    // PLAIN stays the built-in one, which has no users here.
    assert!(
        ehlo.contains(&"AUTH LOGIN PLAIN SCRAM-SHA-256".to_owned()),
        "{ehlo:?}"
    );
    c.expect(&auth_plain("alice", "s3cret"), INVALID).await;
    c.expect(
        "AUTH CRAM-MD5",
        "504 5.5.4 Unrecognized authentication type",
    )
    .await;

    let socket = format!("unix:{}", dovecot.socket().display());
    let mut strict = smtpd_command();
    strict.args(["--listen", "127.0.0.1:0", "--auth-dovecot", &socket]);
    let strict = Smtpd::start(strict);
    let mut c = Client::ehloed(strict.addr()).await;
    c.expect(
        &auth_plain("alice", "s3cret"),
        "538 5.7.11 Encryption required for requested authentication mechanism",
    )
    .await;

    let unknown = run_smtpd(&[
        "--auth-dovecot",
        &socket,
        "--auth-dovecot-mechanisms",
        "GSSAPI",
    ])
    .await;
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("Dovecot does not offer the mechanism `GSSAPI`"),
        "{stderr}"
    );

    let missing = format!("unix:{}", dovecot.dir.0.join("missing").display());
    let down = run_smtpd(&["--auth-dovecot", &missing]).await;
    assert_eq!(down.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        stderr.contains(&format!(
            "--auth-dovecot {missing}: cannot reach Dovecot auth"
        )),
        "{stderr}"
    );
}

// ---- The library -----------------------------------------------------------------------------

/// `Server::mechanism` with Dovecot's mechanisms (over its TCP listener) beside a handler's
/// own: the handler's X-TOKEN still works, PLAIN is Dovecot's (the config's users no longer
/// count for it), and the message carries the user Dovecot named.
#[tokio::test]
async fn library_dovecot_mechanisms_beside_the_handlers_own() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let address: DovecotAddress = format!("127.0.0.1:{}", dovecot.port).parse().unwrap();
    let mut options = DovecotOptions::default();
    options.no_penalty = true;
    let auth = DovecotAuth::connect(address, options)
        .await
        .expect("connect to Dovecot");
    let names: Vec<String> = auth.offered().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]);
    let mut config = auth_config();
    config.authenticator = Some(StaticUsers::new().user("demo", "demo").into());
    let mut server = Server::new(TokenDesk, config);
    for mechanism in auth.select(&["plain", "CRAM-MD5"]).unwrap() {
        server = server.mechanism(mechanism).unwrap();
    }
    let server = server.listen("127.0.0.1:0").await.unwrap().start();

    let mut c = Client::connect(server.local_addr()).await;
    let ehlo = c.ehlo("client.example").await;
    assert!(
        ehlo.contains(&"AUTH CRAM-MD5 LOGIN PLAIN X-TOKEN".to_owned()),
        "{ehlo:?}"
    );
    c.expect(&auth_plain("demo", "demo"), INVALID).await;
    c.expect(&format!("AUTH X-TOKEN {}", b64("let-me-in")), SUCCESS)
        .await;

    server.shutdown().await;

    // The same connection to Dovecot serves a second server, whose handler sees the login.
    let (handler, messages) = collector();
    let mut server = Server::new(handler, auth_config());
    for mechanism in auth.mechanisms() {
        server = server.mechanism(mechanism).unwrap();
    }
    let server = server.listen("127.0.0.1:0").await.unwrap().start();
    let mut c = Client::connect(server.local_addr()).await;
    c.ehlo("client.example").await;
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.expect(&b64("bob"), "334 UGFzc3dvcmQ6").await;
    c.expect(&b64("s3cret"), SUCCESS).await;
    c.send_message("bob@example.com", &["carol@example.com"], "Hi\r\n")
        .await;
    wait_for_messages(&messages, 1).await;
    assert_eq!(
        messages.lock().unwrap()[0].login.as_deref(),
        Some(&b"bob"[..])
    );
    server.shutdown().await;
}

/// Under TLS Dovecot is told `secured`, and `valid-client-cert` when TLS verified the client's
/// certificate; before STARTTLS, `auth_require_tls` refuses Dovecot's PLAIN as the built-in one.
#[tokio::test]
async fn tls_state_reaches_dovecot() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let socket = DovecotAddress::Unix(dovecot.socket());
    let auth = DovecotAuth::connect(socket, DovecotOptions::default())
        .await
        .expect("connect to Dovecot");
    let pki = Pki::new();
    let mut config = config();
    config.tls = Some(pki.server_tls_with_client_ca());
    let mut server = Server::new(smtp_core::handlers::Sink, config);
    for mechanism in auth.mechanisms() {
        server = server.mechanism(mechanism).unwrap();
    }
    let server = server.listen("127.0.0.1:0").await.unwrap().start();
    let login = auth_plain("alice", "s3cret");

    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        &login,
        "538 5.7.11 Encryption required for requested authentication mechanism",
    )
    .await;
    for (client, flags) in [
        (pki.client_config(), "secured\tresp=<hidden>"),
        (
            pki.client_config_with_cert(rustls::ALL_VERSIONS),
            "secured\tvalid-client-cert\tresp=<hidden>",
        ),
    ] {
        let mut c = Client::ehloed(server.local_addr()).await;
        let port = c.local_addr().port();
        c.cmd("STARTTLS", 220).await;
        let mut c = c.handshake(client).await.expect("TLS handshake");
        c.ehlo("client.example").await;
        c.expect(&login, SUCCESS).await;
        let lport = server.local_addr().port();
        dovecot.log_with(&format!(
            "\tlip=127.0.0.1\tlport={lport}\trip=127.0.0.1\trport={port}\t{flags}\n"
        ));
    }
    server.shutdown().await;
}

/// Nothing the client sends as a credential reaches smtpd's log, even at trace level (`-vv`):
/// not the password, nor its base64, nor the PLAIN message.
#[tokio::test]
async fn passwords_stay_out_of_the_log() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let smtpd = dovecot.smtpd(&["-vv"]);
    let password = "s3cret";
    assert_eq!(plain_login(&smtpd, "alice", password).await, SUCCESS);
    let mut c = Client::ehloed(smtpd.addr()).await;
    c.expect(&format!("AUTH LOGIN {}", b64("carol")), "334 UGFzc3dvcmQ6")
        .await;
    c.expect(&b64(password), SUCCESS).await;
    let mut c = Client::ehloed(smtpd.addr()).await;
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.expect(&b64("bob"), "334 UGFzc3dvcmQ6").await;
    c.expect(&b64("wrong-pass"), INVALID).await;
    let log = smtpd.stderr_until("AUTH failed").join("\n");
    assert!(log.contains("AUTH succeeded"), "{log}");
    for secret in [
        password.to_owned(),
        b64(password),
        plain("", "alice", password),
        "wrong-pass".to_owned(),
        b64("wrong-pass"),
    ] {
        assert!(!log.contains(&secret), "{secret} in {log}");
    }
}
