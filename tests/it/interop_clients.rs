//! Real clients deliver mail end to end: lettre (Rust), Python's smtplib, swaks, and the
//! `smtpd` binary driven as a user would.

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use lettre::message::header::ContentType;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use smtp_core::{Envelope, Handler, Reply, Session};

/// One stored message with everything the server knew about it.
#[derive(Clone, Debug)]
struct Stored {
    host_name: Option<String>,
    mail_from: String,
    mail_options: Vec<String>,
    smtp_utf8: bool,
    rcpt_tos: Vec<String>,
    content: Vec<u8>,
}

impl Stored {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }
}

/// Stores every message; refuses `nobody@example.com`.
#[derive(Clone, Default)]
struct Store(Arc<Mutex<Vec<Stored>>>);

impl Store {
    fn all(&self) -> Vec<Stored> {
        self.0.lock().unwrap().clone()
    }
}

impl Handler for Store {
    async fn handle_rcpt(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        address: &str,
        _options: &smtp_core::RcptParams,
    ) -> Reply {
        if address == "nobody@example.com" {
            return Reply::from("550 5.1.1 nobody here");
        }
        Reply::ok()
    }

    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        self.0.lock().unwrap().push(Stored {
            host_name: session.host_name().map(str::to_owned),
            mail_from: envelope.mail_from.clone().unwrap_or_default(),
            mail_options: envelope.mail_options.clone(),
            smtp_utf8: envelope.smtp_utf8,
            rcpt_tos: envelope.rcpt_tos().map(String::from).collect(),
            content: envelope.content.clone(),
        });
        Reply::from("250 2.0.0 stored")
    }
}

fn lettre_to(port: u16) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .hello_name(ClientId::Domain("lettre.example".into()))
        .timeout(Some(Duration::from_secs(10)))
        .build()
}

#[tokio::test]
async fn lettre_delivers_a_message() {
    let store = Store::default();
    let server = start(store.clone(), config()).await;
    let mailer = lettre_to(server.local_addr().port());
    let email = lettre::Message::builder()
        .from("Alice <alice@example.com>".parse().unwrap())
        .to("Bob <bob@example.com>".parse().unwrap())
        .cc("carol@example.com".parse().unwrap())
        .subject("Hello from lettre")
        .header(ContentType::TEXT_PLAIN)
        .body(String::from(
            "First line.\r\n.A line that starts with a dot.\r\n.\r\nLast line.\r\n",
        ))
        .unwrap();
    let response = mailer.send(email).await.expect("lettre send");
    assert_eq!(u16::from(response.code()), 250);
    assert_eq!(response.first_line(), Some("2.0.0 stored"));
    let stored = store.all();
    assert_eq!(stored.len(), 1);
    let m = &stored[0];
    assert_eq!(m.host_name.as_deref(), Some("lettre.example"));
    assert_eq!(m.mail_from, "alice@example.com");
    assert_eq!(m.rcpt_tos, ["bob@example.com", "carol@example.com"]);
    assert!(m.mail_options.is_empty(), "{:?}", m.mail_options);
    let text = m.text();
    assert!(text.contains("Subject: Hello from lettre\r\n"), "{text}");
    assert!(
        text.starts_with("From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\n"),
        "{text}"
    );
    // lettre dot-stuffed; the server unstuffed: the body is as written (lettre adds a CRLF
    // of its own before the end marker).
    assert!(
        text.ends_with(
            "\r\n\r\nFirst line.\r\n.A line that starts with a dot.\r\n.\r\nLast line.\r\n\r\n"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn lettre_sends_8bit_content_with_body_8bitmime() {
    let store = Store::default();
    let server = start(store.clone(), config()).await;
    let mailer = lettre_to(server.local_addr().port());
    let envelope = lettre::address::Envelope::new(
        Some("a@example.com".parse().unwrap()),
        vec!["b@example.com".parse().unwrap()],
    )
    .unwrap();
    let raw = "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n";
    mailer
        .send_raw(&envelope, raw.as_bytes())
        .await
        .expect("lettre send_raw");
    let m = &store.all()[0];
    assert_eq!(m.mail_options, ["BODY=8BITMIME"]);
    // lettre ends the data with CRLF `.` CRLF even after a final CRLF.
    assert_eq!(m.content, format!("{raw}\r\n").as_bytes());
}

#[tokio::test]
async fn lettre_sees_a_refused_recipient() {
    let store = Store::default();
    let server = start(store.clone(), config()).await;
    let mailer = lettre_to(server.local_addr().port());
    let email = lettre::Message::builder()
        .from("alice@example.com".parse().unwrap())
        .to("nobody@example.com".parse().unwrap())
        .subject("lost")
        .body(String::from("x\r\n"))
        .unwrap();
    let error = mailer.send(email).await.expect_err("recipient refused");
    assert!(error.is_permanent(), "{error}");
    assert_eq!(error.status().map(u16::from), Some(550));
    assert!(store.all().is_empty());
}

#[tokio::test]
async fn lettre_sees_a_message_too_large() {
    let store = Store::default();
    let cfg = {
        let mut config = config();
        config.max_message_size = Some(500);
        config
    };
    let server = start(store.clone(), cfg).await;
    let mailer = lettre_to(server.local_addr().port());
    let email = lettre::Message::builder()
        .from("alice@example.com".parse().unwrap())
        .to("bob@example.com".parse().unwrap())
        .subject("big")
        .body("0123456789\r\n".repeat(100))
        .unwrap();
    let error = mailer.send(email).await.expect_err("message too large");
    assert_eq!(error.status().map(u16::from), Some(552), "{error}");
    assert!(store.all().is_empty());
}

fn python(script: &str, port: u16) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, "127.0.0.1", &port.to_string()]);
    cmd
}

fn stdout_of(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", tools::shown(output));
    String::from_utf8(output.stdout.clone()).unwrap()
}

const PY_SENDMAIL: &str = r#"
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), local_hostname="py.example", timeout=10) as s:
    code, _ = s.ehlo()
    print(code, sorted(s.esmtp_features))
    msg = b"From: py@example.com\r\nSubject: from python\r\n\r\nhello\r\n.leading dot\r\n.\r\nend\r\n"
    print(s.sendmail("py@example.com", ["a@example.com", "nobody@example.com", "b@example.com"], msg))
    print(s.noop())
    print(s.verify("someone@example.com"))
    print(s.rset())
    print(s.docmd("HELP"))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_delivers_a_message() {
    let store = Store::default();
    let server = start(store.clone(), config()).await;
    let output = tools::run(python(PY_SENDMAIL, server.local_addr().port())).await;
    let stdout = stdout_of(&output);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "250 ['8bitmime', 'binarymime', 'chunking', 'dsn', 'help', 'pipelining', 'size']",
            "{'nobody@example.com': (550, b'5.1.1 nobody here')}",
            "(250, b'OK')",
            "(252, b'Cannot VRFY user, but will accept message and attempt delivery')",
            "(250, b'OK')",
            "(250, b'Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY')",
        ]
    );
    let stored = store.all();
    assert_eq!(stored.len(), 1);
    let m = &stored[0];
    let msg = b"From: py@example.com\r\nSubject: from python\r\n\r\nhello\r\n.leading dot\r\n.\r\nend\r\n";
    assert_eq!(m.host_name.as_deref(), Some("py.example"));
    assert_eq!(m.mail_from, "py@example.com");
    // smtplib writes `size=N`; the server records parameters upper-cased.
    assert_eq!(m.mail_options, [format!("SIZE={}", msg.len())]);
    assert_eq!(m.rcpt_tos, ["a@example.com", "b@example.com"]);
    assert_eq!(m.content, msg);
}

const PY_SMTPUTF8: &str = r#"
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), local_hostname="py.example", timeout=10) as s:
    s.ehlo()
    print(s.has_extn("smtputf8"))
    msg = "Subject: Grüße\r\n\r\nÜberall\r\n".encode("utf-8")
    print(s.sendmail("jörg@exämple.com", ["zoë@example.com"], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"]))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_with_smtputf8() {
    let store = Store::default();
    let cfg = {
        let mut config = config();
        config.smtputf8 = true;
        config
    };
    let server = start(store.clone(), cfg).await;
    let output = tools::run(python(PY_SMTPUTF8, server.local_addr().port())).await;
    assert_eq!(stdout_of(&output), "True\n{}\n");
    let m = &store.all()[0];
    assert_eq!(m.mail_from, "jörg@exämple.com");
    assert_eq!(m.rcpt_tos, ["zoë@example.com"]);
    assert!(m.smtp_utf8);
    assert_eq!(m.mail_options.len(), 3, "{:?}", m.mail_options);
    assert!(m.mail_options[0].starts_with("SIZE="));
    assert_eq!(m.mail_options[1..], ["SMTPUTF8", "BODY=8BITMIME"]);
    assert_eq!(m.content, "Subject: Grüße\r\n\r\nÜberall\r\n".as_bytes());
}

const PY_SEND_MESSAGE: &str = r#"
import smtplib, sys
from email.message import EmailMessage
msg = EmailMessage()
msg["From"] = "Py <py@example.com>"
msg["To"] = "a@example.com, b@example.com"
msg["Subject"] = "EmailMessage"
msg.set_content("one\n.two\nthree\n")
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=10) as s:
    print(s.send_message(msg))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_send_message_with_headers_for_the_envelope() {
    let store = Store::default();
    let server = start(store.clone(), config()).await;
    let output = tools::run(python(PY_SEND_MESSAGE, server.local_addr().port())).await;
    assert_eq!(stdout_of(&output), "{}\n");
    let m = &store.all()[0];
    assert_eq!(m.mail_from, "py@example.com");
    assert_eq!(m.rcpt_tos, ["a@example.com", "b@example.com"]);
    let text = m.text();
    assert!(text.contains("Subject: EmailMessage\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\none\r\n.two\r\nthree\r\n"), "{text}");
}

fn swaks(port: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new("swaks");
    cmd.args([
        "--server",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--helo",
        "swaks.example",
        "--from",
        "swaks@example.com",
        "--timeout",
        "10",
    ]);
    cmd.args(extra);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_delivers_a_message() {
    if !tools::available("swaks") {
        return;
    }
    let store = Store::default();
    let server = start(store.clone(), config()).await;
    let port = server.local_addr().port();
    let output = tools::run(swaks(
        port,
        &[
            "--to",
            "a@example.com,b@example.com",
            "--header",
            "Subject: swaks test",
            "--body",
            "hello from swaks\n.dotted line\n",
        ],
    ))
    .await;
    let transcript = stdout_of(&output);
    assert!(transcript.contains("<-  250 2.0.0 stored"), "{transcript}");
    let m = &store.all()[0];
    assert_eq!(m.host_name.as_deref(), Some("swaks.example"));
    assert_eq!(m.mail_from, "swaks@example.com");
    assert_eq!(m.rcpt_tos, ["a@example.com", "b@example.com"]);
    let text = m.text();
    assert!(text.contains("Subject: swaks test\r\n"), "{text}");
    // swaks dot-stuffed the second line and the server unstuffed it; swaks adds blank lines
    // of its own at the end.
    assert!(
        text.ends_with("\r\n\r\nhello from swaks\r\n.dotted line\r\n\r\n\r\n"),
        "{text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_pipelines() {
    if !tools::available("swaks") {
        return;
    }
    let store = Store::default();
    let server = start(store.clone(), config()).await;
    let port = server.local_addr().port();
    let output = tools::run(swaks(
        port,
        &[
            "--pipeline",
            "--to",
            "a@example.com,nobody@example.com,b@example.com",
            "--body",
            "pipelined\n",
        ],
    ))
    .await;
    let transcript = stdout_of(&output);
    assert!(
        transcript.contains("<** 550 5.1.1 nobody here"),
        "{transcript}"
    );
    // swaks sent the whole envelope before reading a reply.
    assert!(
        transcript
            .contains(" -> RCPT TO:<b@example.com>\n -> DATA\n<-  250 OK\n<-  250 OK\n<** 550"),
        "{transcript}"
    );
    assert!(transcript.contains("<-  250 2.0.0 stored"), "{transcript}");
    let m = &store.all()[0];
    assert_eq!(m.rcpt_tos, ["a@example.com", "b@example.com"]);
    assert!(
        m.text().ends_with("\r\n\r\npipelined\r\n\r\n\r\n"),
        "{:?}",
        m.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_fails_when_every_recipient_is_refused() {
    if !tools::available("swaks") {
        return;
    }
    let store = Store::default();
    let server = start(store.clone(), config()).await;
    let output = tools::run(swaks(
        server.local_addr().port(),
        &["--to", "nobody@example.com"],
    ))
    .await;
    // swaks: exit code 24 means no recipient was accepted.
    assert_eq!(output.status.code(), Some(24), "{output:?}");
    assert!(store.all().is_empty());
}

// ---- The `smtpd` binary. ----

#[tokio::test]
async fn the_smtpd_binary_prints_each_message() {
    let smtpd = Smtpd::tcp(&["--hostname", "bin.example", "--ident", "binary under test"]);
    let mut c = Client::connect_raw(smtpd.addr()).await;
    assert_eq!(c.reply().await, ["220 bin.example binary under test"]);
    c.cmd("EHLO client.example", 250).await;
    let me = c.local_addr();
    assert_eq!(
        c.deliver(
            "a@example.com",
            &["b@example.com", "c@example.com"],
            b"Subject: via the binary\r\n\r\nbody line\r\n..dotted\r\n",
        )
        .await,
        ["250 OK"]
    );
    let printed = smtpd.stdout_until("------------ END MESSAGE ------------");
    assert_eq!(
        printed,
        [
            "---------- MESSAGE FOLLOWS ----------".to_owned(),
            "Subject: via the binary".into(),
            format!("X-Peer: {me}"),
            "X-MailFrom: a@example.com".into(),
            "X-RcptTo: b@example.com, c@example.com".into(),
            "".into(),
            "body line".into(),
            ".dotted".into(),
            "------------ END MESSAGE ------------".into(),
        ]
    );
    c.expect("QUIT", "221 Bye").await;
    assert_eq!(smtpd.terminate(), Some(0));
}

#[tokio::test]
async fn the_smtpd_binary_applies_its_flags() {
    let dir = TempDir::new("smtpd-bin");
    let maildir = dir.0.join("mail");
    let handler = format!("maildir:{}", maildir.display());
    let smtpd = Smtpd::tcp(&[
        "--hostname",
        "flags.example",
        "--handler",
        &handler,
        "--size-limit",
        "100",
        "--max-recipients",
        "1",
        "--smtputf8",
    ]);
    let mut c = Client::connect(smtpd.addr()).await;
    assert_eq!(
        c.cmd("EHLO client.example", 250).await,
        [
            "250-flags.example",
            "250-SIZE 100",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-PIPELINING",
            "250-CHUNKING",
            "250-BINARYMIME",
            "250-DSN",
            "250 HELP"
        ]
    );
    c.expect(
        "MAIL FROM:<a@example.com> SIZE=101",
        "552 Error: message size exceeds fixed maximum message size",
    )
    .await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    c.expect("RCPT TO:<b@example.com>", "250 OK").await;
    c.expect("RCPT TO:<c@example.com>", "452 4.5.3 Too many recipients")
        .await;
    c.cmd("DATA", 354).await;
    c.send(b"Subject: kept\r\n\r\nin the maildir\r\n").await;
    c.expect(".", "250 OK").await;
    let stored: Vec<_> = std::fs::read_dir(maildir.join("new"))
        .expect("maildir/new")
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].ends_with(
            "X-MailFrom: a@example.com\r\nX-RcptTo: b@example.com\r\nSubject: kept\r\n\r\nin the maildir\r\n"
        ),
        "{:?}",
        stored[0]
    );
    assert_eq!(smtpd.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smtpd_binary_rejects_a_bad_flag_with_exit_code_2() {
    let output = run_smtpd(&["--bogus-flag"]).await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("smtpd: ") && stderr.contains("--bogus-flag"),
        "{stderr:?}"
    );
    assert!(output.stdout.is_empty());

    let output = run_smtpd(&["--listen", "not-an-address"]).await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.starts_with("smtpd: "), "{stderr:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smtpd_binary_reports_an_address_in_use_with_exit_code_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let output = run_smtpd(&["--listen", &addr.to_string()]).await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with(&format!("smtpd: cannot listen on {addr}: ")),
        "{stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr:?}");
    drop(taken);
}
