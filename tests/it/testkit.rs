//! `smtp_core::testing::TestServer`: what it records, every kind of fault, transcripts with
//! AUTH redacted, TLS from a generated certificate. Real clients over real sockets: the raw
//! `Client` where the exact dialogue matters, lettre where a real sender is the point.

use std::time::{Duration, Instant};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use smtp_core::testing::{Action, Command, Fault, Line, TestServer};
use smtp_core::{
    AuthAbort, AuthArgs, AuthData, AuthResult, AuthServer, Config, Envelope, Handler, RcptParams,
    Reply, Ret, Session, SmtpHandler,
};

use crate::support::{Client, b64};

const WAIT: Duration = Duration::from_secs(5);

fn lettre_message(subject: &str) -> lettre::Message {
    lettre::Message::builder()
        .from("App <app@example.com>".parse().unwrap())
        .to("Ann <ann@example.com>".parse().unwrap())
        .subject(subject)
        .body("Hello\r\n".to_owned())
        .unwrap()
}

fn plain_transport(server: &TestServer) -> lettre::AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr().port())
        .timeout(Some(WAIT))
        .build()
}

#[tokio::test]
async fn records_the_envelope_the_session_and_the_parsed_message() {
    let server = TestServer::start().await;
    let mut c = Client::ehloed(server.addr()).await;
    c.cmd("MAIL FROM:<app@example.com> RET=HDRS ENVID=abc", 250)
        .await;
    c.cmd("RCPT TO:<ann@example.com> NOTIFY=SUCCESS,FAILURE", 250)
        .await;
    c.cmd("RCPT TO:<bob@example.com>", 250).await;
    c.cmd("DATA", 354).await;
    c.send(b"Subject: Hi\r\nContent-Type: text/plain\r\n\r\n..dot\r\n.\r\n")
        .await;
    c.reply().await;
    let messages = server.wait_for(1, WAIT).await.expect("one message");
    let m = &messages[0];
    assert_eq!(m.mail_from, "app@example.com");
    assert_eq!(m.dsn.ret, Some(Ret::Hdrs));
    assert_eq!(m.rcpt_tos(), ["ann@example.com", "bob@example.com"]);
    assert_eq!(m.recipients[0].params, ["NOTIFY=SUCCESS,FAILURE"]);
    assert_eq!(
        m.raw,
        b"Subject: Hi\r\nContent-Type: text/plain\r\n\r\n.dot\r\n"
    );
    assert_eq!(m.subject().as_deref(), Some("Hi"));
    assert_eq!(m.text().as_deref(), Some(".dot\r\n"));
    assert_eq!(m.helo.as_deref(), Some("client.example"));
    assert_eq!(m.peer.addr(), Some(c.local_addr()));
    assert!(m.tls.is_none() && m.auth_mechanism.is_none());
    server.clear();
    assert!(server.messages().is_empty() && server.transcripts().is_empty());
}

#[tokio::test]
async fn wait_for_says_how_many_arrived_when_it_times_out() {
    let server = TestServer::start().await;
    plain_transport(&server)
        .send(lettre_message("one"))
        .await
        .expect("sent");
    let started = Instant::now();
    let error = server
        .wait_for(2, Duration::from_millis(200))
        .await
        .expect_err("only one message");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!((error.wanted, error.arrived), (2, 1));
    assert_eq!(
        error.to_string(),
        "waited 200ms for 2 message(s), but 1 arrived"
    );
}

/// A user handler: refuses one domain.
struct NoNowhere;

impl Handler for NoNowhere {
    async fn handle_rcpt(
        &self,
        _: &mut Session,
        _: &mut Envelope,
        address: &str,
        _: &RcptParams,
    ) -> Reply {
        if address.ends_with("@nowhere.example") {
            Reply::new(550, "5.1.1 No such user")
        } else {
            Reply::ok()
        }
    }

    async fn handle_data(&self, _: &mut Session, envelope: &mut Envelope) -> Reply {
        if envelope.content.starts_with(b"Subject: spam") {
            Reply::new(554, "5.7.1 No spam")
        } else {
            Reply::ok()
        }
    }
}

#[tokio::test]
async fn the_users_handler_decides_and_only_accepted_messages_are_recorded() {
    let server = TestServer::builder().handler(NoNowhere).start().await;
    let mut c = Client::ehloed(server.addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<x@nowhere.example>", 550).await;
    c.cmd("RCPT TO:<ann@example.com>", 250).await;
    c.cmd("DATA", 354).await;
    c.send(b"Subject: spam\r\n\r\n.\r\n").await;
    assert!(c.reply().await[0].starts_with("554"));
    c.send_message(
        "a@example.com",
        &["ann@example.com"],
        "Subject: ham\r\n\r\n",
    )
    .await;
    let messages = server.wait_for(1, WAIT).await.expect("one message");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject().as_deref(), Some("ham"));
}

#[tokio::test]
async fn reply_faults_answer_the_nth_command_and_can_change_while_running() {
    let server = TestServer::builder()
        .fault(Fault::matching(
            Command::Rcpt,
            |a| a.argument.is_some_and(|a| a.ends_with("@full.example")),
            Action::Reply(Reply::new(452, "4.2.2 Mailbox full")),
        ))
        .start()
        .await;
    server
        .faults()
        .on_mail(1, Reply::new(451, "4.3.0 Try again later"));
    server
        .faults()
        .on_data(1, Reply::new(552, "5.3.4 Too big for us"));
    let mut c = Client::ehloed(server.addr()).await;
    c.expect("MAIL FROM:<a@example.com>", "451 4.3.0 Try again later")
        .await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.expect("RCPT TO:<x@full.example>", "452 4.2.2 Mailbox full")
        .await;
    c.cmd("RCPT TO:<ann@example.com>", 250).await;
    c.cmd("DATA", 354).await;
    c.send(b"Subject: one\r\n\r\n.\r\n").await;
    assert_eq!(c.reply().await, ["552 5.3.4 Too big for us"]);
    // Counted over the server: the second message goes through.
    c.send_message(
        "a@example.com",
        &["ann@example.com"],
        "Subject: two\r\n\r\n",
    )
    .await;
    // Changed while running.
    server.faults().clear();
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<x@full.example>", 250).await;
    let messages = server.wait_for(1, WAIT).await.expect("one message");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject().as_deref(), Some("two"));
}

#[tokio::test]
async fn a_fault_from_now_counts_from_when_it_is_set() {
    let server = TestServer::start().await;
    let mut c = Client::ehloed(server.addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RSET", 250).await;
    let later = Action::Reply(Reply::new(451, "4.3.0 Later"));
    server.faults().add_from_now(Command::Mail, 2, later);
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RSET", 250).await;
    c.expect("MAIL FROM:<a@example.com>", "451 4.3.0 Later")
        .await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
}

#[tokio::test]
async fn a_421_fault_closes_the_connection_after_its_reply() {
    let server = TestServer::start().await;
    server
        .faults()
        .on_rcpt(1, Reply::new(421, "4.3.2 Going away"));
    let mut c = Client::ehloed(server.addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.expect("RCPT TO:<b@example.com>", "421 4.3.2 Going away")
        .await;
    c.expect_closed().await;
}

#[tokio::test]
async fn a_drop_fault_closes_the_connection_without_a_reply_or_later_commands() {
    let server = TestServer::start().await;
    server.faults().drop_at(Command::Rcpt, 1);
    let mut c = Client::ehloed(server.addr()).await;
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nNOOP\r\n")
        .await;
    assert_eq!(c.reply().await, ["250 OK"]);
    c.expect_closed().await;
    let transcript = &server.transcripts()[0];
    assert!(transcript.sent("RCPT TO:"));
    assert_eq!(transcript.replies().last(), Some("250 OK"), "{transcript}");
}

#[tokio::test]
async fn a_drop_in_data_fault_closes_the_connection_in_the_body() {
    let server = TestServer::start().await;
    server.faults().drop_in_data(1);
    let mut c = Client::ehloed(server.addr()).await;
    c.begin_data("a@example.com", &["b@example.com"]).await;
    c.send(b"Subject: lost\r\n\r\nbody\r\n").await;
    c.expect_closed().await;
    assert!(server.messages().is_empty());
    // The next message goes through.
    let mut c = Client::ehloed(server.addr()).await;
    c.send_message("a@example.com", &["b@example.com"], "Subject: kept\r\n\r\n")
        .await;
    server.wait_for(1, WAIT).await.expect("the second message");
}

#[tokio::test]
async fn a_drop_in_data_fault_closes_the_connection_in_a_bdat_chunk() {
    let server = TestServer::start().await;
    server.faults().drop_in_data(1);
    let mut c = Client::ehloed(server.addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 14 LAST\r\nSubject: x\r\n\r\n").await;
    c.expect_closed().await;
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn an_ehlo_fault_answers_the_greeting() {
    let server = TestServer::start().await;
    server.faults().add(Fault::nth(
        Command::Ehlo,
        1,
        Action::Reply(Reply::new(554, "5.7.1 Not today")),
    ));
    let mut c = Client::connect(server.addr()).await;
    c.expect("EHLO client.example", "554 5.7.1 Not today").await;
    c.cmd("HELO client.example", 250).await;
}

#[tokio::test]
async fn a_delay_fault_delays_the_reply() {
    let server = TestServer::start().await;
    server
        .faults()
        .delay(Command::Mail, Duration::from_millis(300));
    let mut c = Client::ehloed(server.addr()).await;
    let started = Instant::now();
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn transcripts_show_pipelining_and_quit() {
    let server = TestServer::start().await;
    let mut c = Client::ehloed(server.addr()).await;
    let replies = c
        .pipeline(
            &[
                "MAIL FROM:<a@example.com>",
                "RCPT TO:<b@example.com>",
                "DATA",
            ],
            3,
        )
        .await;
    assert!(replies[2].starts_with("354"));
    c.send(b"Subject: x\r\n\r\n.\r\n").await;
    c.reply().await;
    c.cmd("QUIT", 221).await;
    c.expect_closed().await;
    let t = &server.transcripts()[0];
    assert!(t.pipelined() && t.sent("QUIT"), "{t}");
    let commands: Vec<&str> = t.commands().collect();
    assert_eq!(
        commands,
        [
            "EHLO client.example",
            "MAIL FROM:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "DATA",
            "QUIT"
        ]
    );
    let reads: Vec<u64> = t
        .lines()
        .iter()
        .filter_map(|l| match l {
            Line::Client { read, .. } => Some(*read),
            _ => None,
        })
        .collect();
    assert_eq!(reads[1], reads[3], "MAIL and DATA arrived in one read");
    assert_ne!(reads[0], reads[1]);
    assert!(
        t.replies().next().is_some_and(|r| r.starts_with("220 ")),
        "{t}"
    );
    assert!(t.is_closed());
}

async fn lettre_auth(server: &TestServer, mechanism: Mechanism) {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr().port())
        .credentials(Credentials::new("ann".into(), "s3cret-pw".into()))
        .authentication(vec![mechanism])
        .timeout(Some(WAIT))
        .build()
        .send(lettre_message("authenticated"))
        .await
        .expect("sent");
}

#[tokio::test]
async fn transcripts_never_show_credentials() {
    let server = TestServer::builder()
        .users([("ann", "s3cret-pw")])
        .start()
        .await;
    lettre_auth(&server, Mechanism::Plain).await;
    lettre_auth(&server, Mechanism::Login).await;
    let messages = server.wait_for(2, WAIT).await.expect("two messages");
    assert_eq!(messages[0].auth_mechanism.as_deref(), Some("PLAIN"));
    assert_eq!(messages[1].auth_login.as_deref(), Some("ann"));
    let transcripts = server.transcripts();
    let plain = transcripts[0].to_string();
    let login = transcripts[1].to_string();
    assert!(plain.contains("C: AUTH PLAIN ****\n"), "{plain}");
    assert!(
        login.contains("C: AUTH LOGIN\n") && login.contains("C: ****\n"),
        "{login}"
    );
    for text in [&plain, &login] {
        // Neither in clear nor in base64 (`YW5u` is "ann", `czNjcmV0` starts "s3cret").
        for secret in ["s3cret", "czNjcmV0", "YW5u"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[tokio::test]
async fn tls_from_a_generated_certificate_starttls_and_implicit() {
    let server = TestServer::builder()
        .tls_self_signed()
        .users([("ann", "pw")])
        .start()
        .await;
    let ca = Certificate::from_pem(server.ca_pem().expect("a CA").as_bytes()).expect("PEM");
    let tls = TlsParameters::builder("127.0.0.1".into())
        .add_root_certificate(ca)
        .build()
        .expect("TLS parameters");
    let implicit = server.tls_addr().expect("an implicit TLS listener");
    for (port, mode) in [
        (server.addr().port(), Tls::Required(tls.clone())),
        (implicit.port(), Tls::Wrapper(tls)),
    ] {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .tls(mode)
            .credentials(Credentials::new("ann".into(), "pw".into()))
            .timeout(Some(WAIT))
            .build()
            .send(lettre_message("over TLS"))
            .await
            .expect("sent over TLS");
    }
    let messages = server.wait_for(2, WAIT).await.expect("two messages");
    let implicit: Vec<bool> = messages
        .iter()
        .map(|m| m.tls.as_ref().expect("TLS").implicit)
        .collect();
    assert_eq!(implicit, [false, true]);
    assert!(
        messages
            .iter()
            .all(|m| m.auth_login.as_deref() == Some("ann"))
    );
}

/// A handler with an AUTH mechanism of its own: X-TOKEN asks for a token and logs in "ann".
#[derive(SmtpHandler)]
struct TokenAuth;

#[smtp_core::hooks]
impl TokenAuth {
    #[smtp_core::auth_mechanism("X-TOKEN")]
    async fn token(
        &self,
        server: &mut AuthServer<'_>,
        _: AuthArgs,
    ) -> Result<AuthResult, AuthAbort> {
        let token = server.challenge_auth(b"token please", true).await?;
        Ok(match token == b"open-sesame" {
            true => AuthResult::success_with(AuthData::custom_for("ann", ())),
            false => AuthResult::failure(),
        })
    }
}

/// The kit runs the user's handler behind its recorder, whose type cannot list the handler's
/// mechanisms: they must still be offered and run, and the login recorded.
#[tokio::test]
async fn the_handlers_own_auth_mechanism_works_through_the_test_server() {
    let mut config = Config::default();
    config.auth_require_tls = false;
    let server = TestServer::builder()
        .config(config)
        .handler(TokenAuth)
        .start()
        .await;
    let mut c = Client::connect(server.addr()).await;
    let ehlo = c.cmd("EHLO client.example", 250).await;
    assert!(
        ehlo.iter()
            .any(|l| l.starts_with("250-AUTH") && l.contains("X-TOKEN")),
        "{ehlo:?}"
    );
    let challenge = c.cmd("AUTH X-TOKEN", 334).await;
    assert_eq!(challenge, [format!("334 {}", b64("token please"))]);
    c.cmd(&b64("wrong"), 535).await;
    c.cmd("AUTH X-TOKEN", 334).await;
    c.cmd(&b64("open-sesame"), 235).await;
    c.send_message(
        "app@example.com",
        &["ann@example.com"],
        "Subject: t\r\n\r\nhi\r\n",
    )
    .await;
    let messages = server.wait_for(1, WAIT).await.expect("one message");
    assert_eq!(messages[0].auth_mechanism.as_deref(), Some("X-TOKEN"));
    assert_eq!(messages[0].auth_login.as_deref(), Some("ann"));
    let transcript = server.transcripts()[0].to_string();
    assert!(!transcript.contains(&b64("open-sesame")), "{transcript}");
}
