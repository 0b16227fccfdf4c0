//! SCRAM-SHA-256, SCRAM-SHA-256-PLUS and SCRAM-SHA-1 against an independent client: Python's
//! `scramp` (PyPI), driven either through smtplib over STARTTLS (Python's ssl, trusting the
//! test CA) or, for `tls-exporter` (which Python's ssl cannot export), as a message oracle
//! while a rustls client speaks SMTP and exports the channel binding.
//!
//! python3 with scramp is required under CI (`CI=true`); elsewhere these tests are skipped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;

use crate::support::tls::Pki;
use crate::support::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use smtp_core::auth::mechanisms::Scram;
use smtp_core::auth::{CredentialStore, ScramCredentials, ScramHash};
use smtp_core::handlers::Sink;
use smtp_core::{Server, ServerHandle};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};

const SUCCESS: &str = "235 2.7.0 Authentication successful";
const INVALID: &str = "535 5.7.8 Authentication credentials invalid";
const USER: &str = "user";
const PASSWORD: &str = "pencil";

fn scramp_available() -> bool {
    crate::support::tools::external_tool(
        "python3 with scramp (pip install scramp)",
        std::process::Command::new("python3").args(["-c", "import scramp"]),
    )
}

/// A store provisioned with salted keys only: it never sees a password at login time.
struct Provisioned(HashMap<(Vec<u8>, ScramHash), ScramCredentials>);

impl Provisioned {
    fn new(password: &str) -> Provisioned {
        let mut users = HashMap::new();
        for hash in [ScramHash::Sha1, ScramHash::Sha256] {
            users.insert(
                (USER.as_bytes().to_vec(), hash),
                ScramCredentials::generate(hash, password.as_bytes()),
            );
        }
        Provisioned(users)
    }
}

impl CredentialStore for Provisioned {
    async fn scram_credentials(&self, user: &[u8], hash: ScramHash) -> Option<ScramCredentials> {
        self.0.get(&(user.to_vec(), hash)).cloned()
    }
}

/// STARTTLS with the test PKI; SCRAM-SHA-256 (told whether -PLUS is offered), SCRAM-SHA-1,
/// and SCRAM-SHA-256-PLUS when `plus`. No per-connection failure cap, so that one
/// connection can show several failures.
async fn scram_server(pki: &Pki, plus: bool) -> ServerHandle {
    scram_server_for(pki, plus, PASSWORD).await
}

/// [`scram_server`] with `user`'s password set to `password`.
async fn scram_server_for(pki: &Pki, plus: bool, password: &str) -> ServerHandle {
    let store = Arc::new(Provisioned::new(password));
    let config = {
        let mut config = config();
        config.tls = Some(pki.server_tls());
        config.max_auth_failures = None;
        config
    };
    let mut server = Server::new(Sink, config);
    if plus {
        server = server.mechanism(Scram::sha256_plus(store.clone())).unwrap();
    }
    server
        .mechanism(Scram::sha256(store.clone()).plus_offered(plus))
        .unwrap()
        .mechanism(Scram::sha1(store))
        .unwrap()
        .listen("127.0.0.1:0")
        .await
        .unwrap()
        .start()
}

// ---- smtplib + scramp, end to end in Python ----------------------------------------------

const SMTPLIB_SCRAM: &str = r#"
import smtplib, ssl, sys
import scramp
host, port, cafile, mech, user, password, cb = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=cafile)
with smtplib.SMTP(host, int(port), local_hostname="client.example", timeout=10) as s:
    s.starttls(context=ctx)
    s.ehlo()
    print("offered:", s.esmtp_features.get("auth", "").strip())
    binding = None if cb == "none" else (cb, s.sock)
    client = scramp.ScramClient([mech], user, password, channel_binding=binding)
    step = [0]
    def scram(challenge=None):
        step[0] += 1
        if challenge is None:
            return client.get_client_first()
        if step[0] == 2:
            client.set_server_first(challenge.decode())
            return client.get_client_final()
        client.set_server_final(challenge.decode())  # raises unless the server proved itself
        return ""
    try:
        code, _ = s.auth(mech, scram)
        print("result:", code, "server verified")
    except smtplib.SMTPAuthenticationError as e:
        print("result:", e.smtp_code, e.smtp_error.decode())
"#;

async fn smtplib_scram(
    addr: SocketAddr,
    pki: &Pki,
    mech: &str,
    password: &str,
    cb: &str,
) -> String {
    let ca = pki.ca.to_string_lossy().into_owned();
    let (ok, stdout, stderr) = python(
        SMTPLIB_SCRAM,
        &[
            &addr.ip().to_string(),
            &addr.port().to_string(),
            &ca,
            mech,
            USER,
            password,
            cb,
        ],
    )
    .await;
    assert!(ok, "python failed: {stdout}{stderr}");
    stdout
}

#[tokio::test]
async fn scramp_logs_in_with_each_mechanism_over_starttls() {
    if !scramp_available() {
        return;
    }
    let pki = Pki::new();
    let server = scram_server(&pki, true).await;
    for (mech, cb) in [
        ("SCRAM-SHA-256", "none"),
        ("SCRAM-SHA-256-PLUS", "tls-server-end-point"),
        ("SCRAM-SHA-1", "none"),
    ] {
        let out = smtplib_scram(server.local_addr(), &pki, mech, PASSWORD, cb).await;
        assert_eq!(
            out,
            "offered: LOGIN PLAIN SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-256-PLUS\n\
             result: 235 server verified\n",
            "{mech}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn scramp_with_a_wrong_password_is_refused() {
    if !scramp_available() {
        return;
    }
    let pki = Pki::new();
    let server = scram_server(&pki, true).await;
    for (mech, cb) in [
        ("SCRAM-SHA-256", "none"),
        ("SCRAM-SHA-256-PLUS", "tls-server-end-point"),
    ] {
        let out = smtplib_scram(server.local_addr(), &pki, mech, "pen", cb).await;
        assert!(
            out.ends_with("result: 535 5.7.8 Authentication credentials invalid\n"),
            "{mech}: {out}"
        );
    }
    server.shutdown().await;
}

/// RFC 5802 has both sides prepare the password with SASLprep: one with a soft hyphen, a
/// no-break space and a ligature, provisioned as typed, logs in with scramp, which prepares
/// it before hashing.
#[tokio::test]
async fn scramp_logs_in_with_a_password_that_saslprep_changes() {
    if !scramp_available() {
        return;
    }
    let password = "pen\u{AD}cil\u{A0}\u{FB01}ne";
    let pki = Pki::new();
    let server = scram_server_for(&pki, false, password).await;
    for mech in ["SCRAM-SHA-256", "SCRAM-SHA-1"] {
        let out = smtplib_scram(server.local_addr(), &pki, mech, password, "none").await;
        assert!(
            out.ends_with("result: 235 server verified\n"),
            "{mech}: {out}"
        );
        // What SASLprep makes of it is the same password; something else is not.
        let out = smtplib_scram(server.local_addr(), &pki, mech, "pencil fine", "none").await;
        assert!(
            out.ends_with("result: 235 server verified\n"),
            "{mech}: {out}"
        );
        let out = smtplib_scram(server.local_addr(), &pki, mech, "pencilfine", "none").await;
        assert!(
            out.ends_with(&format!("result: {INVALID}\n")),
            "{mech}: {out}"
        );
    }
    server.shutdown().await;
}

// ---- scramp as a message oracle, SMTP and TLS from Rust ------------------------------------

/// scramp's client, one message per line: argv sets the mechanism, password, channel
/// binding and client nonce; it prints client-first, reads server-first, prints client-final,
/// reads server-final and prints `verified` when the server's signature checks out.
const ORACLE: &str = r#"
import base64, sys
import scramp
from scramp.core import CbName, CBindData
# scramp knows tls-exporter but refuses it only because Python's ssl cannot export it;
# the data comes from the Rust side here.
CbName.SUPPORTED_TYPES = CbName.SUPPORTED_TYPES | {"tls-exporter"}
CbName.UNSUPPORTED_TYPES = frozenset()
mech, user, password, cb, data, nonce = sys.argv[1:7]
if cb == "none":
    binding = None
elif cb == "tls-server-end-point":
    binding = (cb, CBindData.from_der(base64.b64decode(data)).data)
else:
    binding = (cb, base64.b64decode(data))
c = scramp.ScramClient([mech], user, password, channel_binding=binding,
                       c_nonce=None if nonce == "-" else nonce)
print(c.get_client_first(), flush=True)
c.set_server_first(sys.stdin.readline().strip())
print(c.get_client_final(), flush=True)
try:
    c.set_server_final(sys.stdin.readline().strip())
    print("verified", flush=True)
except Exception as e:
    print("error:", e, flush=True)
"#;

struct Oracle {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
}

impl Oracle {
    fn start(mech: &str, password: &str, cb: &str, data: &[u8], nonce: &str) -> Oracle {
        let mut child = tokio::process::Command::new("python3")
            .args([
                "-c",
                ORACLE,
                mech,
                USER,
                password,
                cb,
                &BASE64.encode(data),
                nonce,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start python3");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Oracle {
            child,
            stdin,
            stdout,
        }
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(REPLY_TIMEOUT, self.stdout.read_line(&mut line))
            .await
            .expect("oracle timed out")
            .expect("read oracle");
        assert!(
            !line.is_empty(),
            "oracle ended: {:?}",
            self.child.try_wait()
        );
        line.trim_end().to_owned()
    }

    async fn tell(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write oracle");
    }
}

/// The decoded text of a `334` challenge.
fn challenge(reply: &[String]) -> String {
    assert_eq!(reply.len(), 1, "{reply:?}");
    assert!(reply[0].starts_with("334 "), "{reply:?}");
    String::from_utf8(BASE64.decode(&reply[0][4..]).expect("base64")).expect("UTF-8")
}

/// What one exchange produced, for replays.
struct Transcript {
    server_first: String,
    client_final: String,
}

/// Runs an exchange driven by `oracle`: returns the transcript and the final reply.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Client<S>,
    mech: &str,
    oracle: &mut Oracle,
) -> (Transcript, Vec<String>) {
    let client_first = oracle.line().await;
    c.send(format!("AUTH {mech} {}\r\n", BASE64.encode(&client_first)).as_bytes())
        .await;
    let reply = c.reply().await;
    if !reply[0].starts_with("334") {
        let transcript = Transcript {
            server_first: String::new(),
            client_final: String::new(),
        };
        return (transcript, reply);
    }
    let server_first = challenge(&reply);
    oracle.tell(&server_first).await;
    let client_final = oracle.line().await;
    c.send(format!("{}\r\n", BASE64.encode(&client_final)).as_bytes())
        .await;
    let mut reply = c.reply().await;
    if reply[0].starts_with("334") {
        oracle.tell(&challenge(&reply)).await;
        assert_eq!(oracle.line().await, "verified");
        c.send(b"\r\n").await;
        reply = c.reply().await;
    }
    let transcript = Transcript {
        server_first,
        client_final,
    };
    (transcript, reply)
}

fn exporter(c: &TlsClient) -> Vec<u8> {
    c.tls()
        .export_keying_material(vec![0; 32], b"EXPORTER-Channel-Binding", Some(b""))
        .expect("client exporter")
}

async fn tls_client(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> TlsClient {
    let mut c = Client::connect_raw(addr).await;
    c.reply().await;
    c.cmd("EHLO client.example", 250).await;
    // The STARTTLS reply text is not what these tests are about.
    c.cmd("STARTTLS", 220).await;
    let mut c = c.handshake(config).await.expect("TLS handshake");
    c.ehlo("client.example").await;
    c
}

#[tokio::test]
async fn plus_with_tls_exporter_over_tls13() {
    if !scramp_available() {
        return;
    }
    let pki = Pki::new();
    let server = scram_server(&pki, true).await;
    let mut c = tls_client(server.local_addr(), pki.client_config()).await;
    assert_eq!(
        format!("{:?}", c.tls().protocol_version().unwrap()),
        "TLSv1_3"
    );
    let mut oracle = Oracle::start(
        "SCRAM-SHA-256-PLUS",
        PASSWORD,
        "tls-exporter",
        &exporter(&c),
        "-",
    );
    let (transcript, reply) = exchange(&mut c, "SCRAM-SHA-256-PLUS", &mut oracle).await;
    assert_eq!(reply, [SUCCESS]);
    let cbind = transcript.client_final[2..].split(',').next().unwrap();
    let cbind = BASE64.decode(cbind).unwrap();
    assert_eq!(&cbind[..16], b"p=tls-exporter,,");
    assert_eq!(cbind[16..], exporter(&c));
    server.shutdown().await;
}

/// Over TLS 1.2 there is no `tls-exporter` (RFC 9266 needs TLS 1.3 here), but
/// `tls-server-end-point` works; scramp hashes the certificate itself.
#[tokio::test]
async fn plus_over_tls12_binds_to_the_server_certificate() {
    if !scramp_available() {
        return;
    }
    let pki = Pki::new();
    let server = scram_server(&pki, true).await;
    let mut c = tls_client(server.local_addr(), pki.client_config_tls12()).await;
    let mut oracle = Oracle::start(
        "SCRAM-SHA-256-PLUS",
        PASSWORD,
        "tls-exporter",
        &exporter(&c),
        "-",
    );
    let (_, reply) = exchange(&mut c, "SCRAM-SHA-256-PLUS", &mut oracle).await;
    assert_eq!(reply, [INVALID], "tls-exporter over TLS 1.2");
    let mut oracle = Oracle::start(
        "SCRAM-SHA-256-PLUS",
        PASSWORD,
        "tls-server-end-point",
        &pki.server.der,
        "-",
    );
    let (_, reply) = exchange(&mut c, "SCRAM-SHA-256-PLUS", &mut oracle).await;
    assert_eq!(reply, [SUCCESS]);
    server.shutdown().await;
}

/// A -PLUS exchange relayed from another TLS connection (a man in the middle) carries that
/// connection's binding: refused after client-final.
#[tokio::test]
async fn channel_binding_from_another_connection_fails() {
    if !scramp_available() {
        return;
    }
    let pki = Pki::new();
    let server = scram_server(&pki, true).await;
    let other = tls_client(server.local_addr(), pki.client_config()).await;
    let mut c = tls_client(server.local_addr(), pki.client_config()).await;
    assert_ne!(exporter(&other), exporter(&c));
    let mut oracle = Oracle::start(
        "SCRAM-SHA-256-PLUS",
        PASSWORD,
        "tls-exporter",
        &exporter(&other),
        "-",
    );
    let (_, reply) = exchange(&mut c, "SCRAM-SHA-256-PLUS", &mut oracle).await;
    assert_eq!(reply, [INVALID]);
    server.shutdown().await;
}

/// RFC 5802 §6: a client that could bind says `y` when it thinks the server cannot; if the
/// server offers -PLUS, someone removed it from the EHLO reply.
#[tokio::test]
async fn downgrade_from_plus_is_refused() {
    if !scramp_available() {
        return;
    }
    let pki = Pki::new();
    for (plus, expected) in [(true, INVALID), (false, SUCCESS)] {
        let server = scram_server(&pki, plus).await;
        let mut c = tls_client(server.local_addr(), pki.client_config()).await;
        // Given binding data but a non-PLUS mechanism, scramp sends the `y` flag.
        let mut oracle = Oracle::start(
            "SCRAM-SHA-256",
            PASSWORD,
            "tls-exporter",
            &exporter(&c),
            "-",
        );
        let (_, reply) = exchange(&mut c, "SCRAM-SHA-256", &mut oracle).await;
        assert_eq!(reply, [expected], "server offers -PLUS: {plus}");
        server.shutdown().await;
    }
}

/// The server nonce is fresh per exchange: replaying a recorded client-final (same client
/// nonce, same proof) against a new server-first fails.
#[tokio::test]
async fn replayed_client_final_fails() {
    if !scramp_available() {
        return;
    }
    let pki = Pki::new();
    let server = scram_server(&pki, false).await;
    let mut c = tls_client(server.local_addr(), pki.client_config()).await;
    let mut oracle = Oracle::start("SCRAM-SHA-256", PASSWORD, "none", b"", "fixed-client-nonce");
    let (recorded, reply) = exchange(&mut c, "SCRAM-SHA-256", &mut oracle).await;
    assert_eq!(reply, [SUCCESS]);

    let mut c = tls_client(server.local_addr(), pki.client_config()).await;
    let reply = c
        .cmd(
            &format!(
                "AUTH SCRAM-SHA-256 {}",
                BASE64.encode("n,,n=user,r=fixed-client-nonce")
            ),
            334,
        )
        .await;
    let server_first = challenge(&reply);
    assert_ne!(server_first, recorded.server_first, "server nonce reused");
    assert!(server_first.starts_with("r=fixed-client-nonce"));
    c.expect(&BASE64.encode(&recorded.client_final), INVALID)
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_messages_fail() {
    let pki = Pki::new();
    let server = scram_server(&pki, true).await;
    let mut c = tls_client(server.local_addr(), pki.client_config()).await;
    let first = BASE64.encode("n,,n=user,r=abcdef");
    for bad_first in [
        "garbage",
        "n,,",
        "n,,m=ext,n=user,r=abc",
        "n,,n=user",
        "n,,n=us=er,r=abc",
        "n,a=admin,n=user,r=abc",
        "p=tls-exporter,,n=user,r=abc",
        "p=tls-unique,,n=user,r=abc",
    ] {
        let mech = if bad_first.starts_with("p=tls-unique") {
            "SCRAM-SHA-256-PLUS"
        } else {
            "SCRAM-SHA-256"
        };
        c.expect(
            &format!("AUTH {mech} {}", BASE64.encode(bad_first)),
            INVALID,
        )
        .await;
    }
    // -PLUS demands binding.
    c.expect(&format!("AUTH SCRAM-SHA-256-PLUS {first}"), INVALID)
        .await;
    c.expect("AUTH SCRAM-SHA-256 !!!", "501 5.5.2 Can't decode base64")
        .await;
    for bad_final in ["garbage", "c=biws,r=abcdef,p=!!", "c=biws,p=AAAA"] {
        c.cmd(&format!("AUTH SCRAM-SHA-256 {first}"), 334).await;
        c.expect(&BASE64.encode(bad_final), INVALID).await;
    }
    c.cmd(&format!("AUTH SCRAM-SHA-256 {first}"), 334).await;
    c.expect("*", "501 5.7.0 Auth aborted").await;
    // Without an initial response, client-first follows an empty challenge.
    assert_eq!(c.cmd("AUTH SCRAM-SHA-256", 334).await, ["334 "]);
    c.cmd(&first, 334).await;
    c.expect(&BASE64.encode("c=biws,r=abcdef,p=AAAA"), INVALID)
        .await;
    server.shutdown().await;
}

/// An unknown user gets a plausible server-first, the same salt every time, and fails only
/// at the end, so that SCRAM does not tell which users exist.
#[tokio::test]
async fn unknown_user_looks_like_a_known_one() {
    let pki = Pki::new();
    let server = scram_server(&pki, false).await;
    let mut c = tls_client(server.local_addr(), pki.client_config()).await;
    let mut salts = Vec::new();
    for _ in 0..2 {
        let reply = c
            .cmd(
                &format!("AUTH SCRAM-SHA-256 {}", BASE64.encode("n,,n=nobody,r=abc")),
                334,
            )
            .await;
        let server_first = challenge(&reply);
        let parts: Vec<&str> = server_first.split(',').collect();
        assert_eq!(parts.len(), 3, "{server_first}");
        assert_eq!(parts[2], "i=4096");
        salts.push(parts[1].to_owned());
        c.expect(&BASE64.encode("c=biws,r=abc,p=AAAA"), INVALID)
            .await;
    }
    assert_eq!(salts[0], salts[1]);
    server.shutdown().await;
}
