//! CRAM-MD5 (RFC 2195) with independent clients: Python's smtplib (`login()` picks CRAM-MD5
//! when offered) and swaks (`--auth CRAM-MD5`, with Perl's Digest::HMAC); the mechanism
//! registered through the macros; and the `smtpd` binary's `--auth-mechanism`, where the
//! `--auth-user` table feeds CRAM-MD5 and SCRAM (checked with smtplib and scramp).
//!
//! python3, swaks with Digest::HMAC, and scramp are required under CI (`CI=true`).

use smtp_core::AuthArgs;
use std::process::Command;
use std::sync::Arc;

use crate::support::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use smtp_core::auth::mechanisms::CramMd5;
use smtp_core::{
    AuthAbort, AuthData, AuthMechanism, AuthResult, AuthServer, Envelope, Reply, ServerHandle,
    Session, SmtpHandler, StaticUsers,
};

const SUCCESS: &str = "235 2.7.0 Authentication successful";
const INVALID: &str = "535 5.7.8 Authentication credentials invalid";

/// A handler whose CRAM-MD5 is written with the macros, delegating to [`CramMd5`], and
/// which records who logged in.
#[derive(SmtpHandler)]
struct Legacy {
    cram: CramMd5,
    who: Arc<std::sync::Mutex<Vec<Option<AuthData>>>>,
}

#[smtp_core::hooks]
impl Legacy {
    async fn handle_mail(
        &self,
        session: &mut Session,
        _: &mut Envelope,
        _: &str,
        _: &smtp_core::MailParams,
    ) -> Reply {
        self.who.lock().unwrap().push(session.auth_data().cloned());
        Reply::ok()
    }

    #[smtp_core::auth_mechanism("CRAM-MD5")]
    async fn cram_md5(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        self.cram.run(server, args).await
    }
}

type Who = Arc<std::sync::Mutex<Vec<Option<AuthData>>>>;

/// CRAM-MD5 only (PLAIN and LOGIN excluded), for `tim` / `tanstaaftanstaaf` (RFC 2195).
async fn cram_server() -> (ServerHandle, Who) {
    let users = StaticUsers::new().user("tim", "tanstaaftanstaaf");
    let who = Who::default();
    let handler = Legacy {
        cram: CramMd5::new(users),
        who: who.clone(),
    };
    let config = {
        let mut config = auth_config();
        config.auth_exclude_mechanism = vec!["PLAIN".into(), "LOGIN".into()];
        config
    };
    (start(handler, config).await, who)
}

/// HMAC-MD5 in hex, computed by Python's hmac module, so that the server is checked
/// against another implementation.
async fn hmac_md5_hex(key: &[u8], data: &[u8]) -> String {
    let script = "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.md5).hexdigest())";
    let (_, stdout, _) = python(
        script,
        &[
            &String::from_utf8_lossy(key),
            &String::from_utf8_lossy(data),
        ],
    )
    .await;
    stdout.trim().to_owned()
}

#[tokio::test]
async fn raw_dialogue_with_exact_replies() {
    if !tools::available("python3") {
        return;
    }
    let (server, who) = cram_server().await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let reply = c.cmd("AUTH CRAM-MD5", 334).await;
    let challenge = BASE64.decode(&reply[0][4..]).unwrap();
    let challenge = String::from_utf8(challenge).unwrap();
    assert!(
        challenge.starts_with('<') && challenge.ends_with("@test.example>"),
        "{challenge}"
    );
    // Wrong digest, unknown user, no space, an initial response (RFC 2195 has none).
    c.expect(&b64(format!("tim {}", "0".repeat(32))), INVALID)
        .await;
    c.cmd("AUTH CRAM-MD5", 334).await;
    c.expect(&b64("nobody 0123"), INVALID).await;
    c.expect(
        &format!("AUTH CRAM-MD5 {}", b64("tim")),
        "421 4.7.0 Too many authentication failures",
    )
    .await;
    c.expect_closed().await;

    let mut c = Client::ehloed(server.local_addr()).await;
    let reply = c.cmd("AUTH CRAM-MD5", 334).await;
    let challenge = BASE64.decode(&reply[0][4..]).unwrap();
    let digest = hmac_md5_hex(b"tanstaaftanstaaf", &challenge).await;
    c.expect(&b64(format!("tim {digest}")), SUCCESS).await;
    c.cmd("MAIL FROM:<tim@example.org>", 250).await;
    let who = who.lock().unwrap().clone();
    assert_eq!(format!("{who:?}"), r#"[Some(Verified(login='tim'))]"#);
    server.shutdown().await;
}

/// A challenge is never reused: each one has fresh random digits.
#[tokio::test]
async fn challenges_are_fresh() {
    let (server, _) = cram_server().await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let first = c.cmd("AUTH CRAM-MD5", 334).await;
    c.expect("*", "501 5.7.0 Auth aborted").await;
    let second = c.cmd("AUTH CRAM-MD5", 334).await;
    assert_ne!(first, second);
    server.shutdown().await;
}

const SMTPLIB_LOGIN: &str = r#"
import smtplib, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with smtplib.SMTP(host, port, local_hostname="client.example", timeout=10) as s:
    s.ehlo()
    print("offered:", s.esmtp_features.get("auth", "").strip())
    try:
        code, _ = s.login(user, password)
        print("result:", code)
    except smtplib.SMTPAuthenticationError as e:
        print("result:", e.smtp_code, e.smtp_error.decode())
"#;

#[tokio::test]
async fn smtplib_login_uses_cram_md5() {
    if !tools::available("python3") {
        return;
    }
    let (server, who) = cram_server().await;
    let addr = server.local_addr();
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    let (ok, out, err) = python(SMTPLIB_LOGIN, &[&host, &port, "tim", "tanstaaftanstaaf"]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(out, "offered: CRAM-MD5\nresult: 235\n");
    let (ok, out, err) = python(SMTPLIB_LOGIN, &[&host, &port, "tim", "wrong"]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(
        out,
        "offered: CRAM-MD5\nresult: 535 5.7.8 Authentication credentials invalid\n"
    );
    assert!(who.lock().unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn swaks_auth_cram_md5() {
    if !tools::available("swaks")
        || !crate::support::tools::external_tool(
            "Perl Digest::HMAC (for swaks --auth CRAM-MD5)",
            Command::new("perl").args(["-MDigest::HMAC_MD5", "-e", "1"]),
        )
    {
        return;
    }
    let (server, who) = cram_server().await;
    let addr = server.local_addr();
    let mut swaks = Command::new("swaks");
    swaks
        .args(["--server", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--auth", "CRAM-MD5", "--auth-user", "tim"])
        .args(["--auth-password", "tanstaaftanstaaf"])
        .args(["--from", "tim@example.org", "--to", "bob@example.net"])
        .args(["--timeout", "10"]);
    let output = tools::run(swaks).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains(" -> AUTH CRAM-MD5\n"), "{stdout}");
    assert!(stdout.contains(&format!("<-  {SUCCESS}\n")), "{stdout}");
    assert_eq!(who.lock().unwrap().len(), 1);
    server.shutdown().await;
}

// ---- The binary --------------------------------------------------------------------------

fn smtpd(args: &[&str]) -> Smtpd {
    Smtpd::tcp(&[&["--handler", "sink"], args].concat())
}

const SMTPLIB_SCRAM_PLAIN: &str = r#"
import smtplib, sys
import scramp
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with smtplib.SMTP(host, port, local_hostname="client.example", timeout=10) as s:
    s.ehlo()
    client = scramp.ScramClient(["SCRAM-SHA-256"], user, password)
    step = [0]
    def scram(challenge=None):
        step[0] += 1
        if challenge is None:
            return client.get_client_first()
        if step[0] == 2:
            client.set_server_first(challenge.decode())
            return client.get_client_final()
        client.set_server_final(challenge.decode())
        return ""
    print("result:", s.auth("SCRAM-SHA-256", scram)[0])
"#;

#[tokio::test]
async fn binary_offers_cram_md5_and_scram_from_auth_users() {
    if !tools::available("python3")
        || !crate::support::tools::external_tool(
            "python3 with scramp (pip install scramp)",
            Command::new("python3").args(["-c", "import scramp"]),
        )
    {
        return;
    }
    let server = smtpd(&[
        "--auth-user",
        "tim:tanstaaftanstaaf",
        "--no-auth-require-tls",
        "--auth-mechanism",
        "cram-md5",
        "--auth-mechanism",
        "SCRAM-SHA-256",
    ]);
    let (host, port) = (
        server.addr().ip().to_string(),
        server.addr().port().to_string(),
    );
    let mut c = Client::connect(server.addr()).await;
    let ehlo = c.cmd("EHLO client.example", 250).await;
    assert!(
        ehlo.contains(&"250-AUTH CRAM-MD5 LOGIN PLAIN SCRAM-SHA-256".to_owned()),
        "{ehlo:?}"
    );
    let (ok, out, err) = python(SMTPLIB_LOGIN, &[&host, &port, "tim", "tanstaaftanstaaf"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.ends_with("result: 235\n"), "{out}");
    let (ok, out, err) = python(
        SMTPLIB_SCRAM_PLAIN,
        &[&host, &port, "tim", "tanstaaftanstaaf"],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert_eq!(out, "result: 235\n");
}

#[tokio::test]
async fn binary_rejects_unknown_mechanisms() {
    let out = run_smtpd(&["--auth-mechanism", "X-NOPE"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("expected one of PLAIN, LOGIN, SCRAM-SHA-256, SCRAM-SHA-256-PLUS, SCRAM-SHA-1, SCRAM-SHA-1-PLUS, CRAM-MD5, ANONYMOUS, XOAUTH2, OAUTHBEARER, EXTERNAL"),
        "{stderr}"
    );
}

/// `smtpd --auth-mechanism XOAUTH2 --auth-mechanism OAUTHBEARER`: the `--auth-user` password is
/// the user's token. lettre speaks XOAUTH2; OAUTHBEARER is spoken by hand (RFC 7628 §3.1).
#[tokio::test]
async fn binary_offers_token_mechanisms_over_the_user_table() {
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let server = smtpd(&[
        "--no-auth-require-tls",
        "--auth-user",
        "user@example.com:tok-123",
        "--auth-failure-delay-ms",
        "0",
        "--auth-mechanism",
        "XOAUTH2",
        "--auth-mechanism",
        "OAUTHBEARER",
    ]);
    let send = |token: &'static str| {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(server.addr().port())
            .credentials(Credentials::new("user@example.com".into(), token.into()))
            .authentication(vec![Mechanism::Xoauth2])
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        let email = Message::builder()
            .from("user@example.com".parse().unwrap())
            .to("bob@example.net".parse().unwrap())
            .subject("token")
            .body("Hello".to_owned())
            .unwrap();
        async move { transport.send(email).await }
    };
    send("tok-123").await.expect("XOAUTH2 with the right token");
    assert!(send("tok-999").await.is_err(), "a wrong token is refused");

    let mut c = Client::connect(server.addr()).await;
    let ehlo = c.cmd("EHLO client.example", 250).await;
    assert!(
        ehlo.iter()
            .any(|l| l == "250-AUTH LOGIN OAUTHBEARER PLAIN XOAUTH2"),
        "{ehlo:?}"
    );
    let bearer = b64("n,a=user@example.com,\x01auth=Bearer tok-123\x01\x01");
    c.expect(
        &format!("AUTH OAUTHBEARER {bearer}"),
        "235 2.7.0 Authentication successful",
    )
    .await;
}

/// EXTERNAL needs a CA to verify client certificates against: without one, smtpd refuses to
/// start (one line, exit 2).
#[tokio::test]
async fn binary_refuses_external_without_a_client_ca() {
    let out = run_smtpd(&["--listen", "127.0.0.1:0", "--auth-mechanism", "EXTERNAL"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("EXTERNAL needs --tls-client-ca"),
        "{stderr}"
    );
}
