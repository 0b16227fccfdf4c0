//! LMTP (RFC 2033): LHLO, and after the message one reply per accepted recipient, decided by
//! the handler; with a raw client, Python's `smtplib.LMTP`, and `smtpd --lmtp`.

use crate::support::{Client, Smtpd, config, python, start};
use smtp_core::handlers::Sink;
use smtp_core::{Config, Envelope, Handler, Reply, Session};

fn lmtp() -> Config {
    {
        let mut config = config();
        config.lmtp = true;
        config
    }
}

/// Refuses `nobody@` at RCPT, and after the message refuses `full@` (mailbox full) while
/// accepting everyone else.
struct Mailboxes;

impl Handler for Mailboxes {
    async fn handle_rcpt(
        &self,
        _: &mut Session,
        _: &mut Envelope,
        address: &str,
        _: &smtp_core::RcptParams,
    ) -> Reply {
        if address.starts_with("nobody@") {
            Reply::from("550 5.1.1 no such user")
        } else {
            Reply::ok()
        }
    }

    async fn handle_lmtp_data(
        &self,
        _: &mut Session,
        envelope: &mut Envelope,
    ) -> Option<Vec<Reply>> {
        let replies = envelope
            .rcpt_tos()
            .map(|rcpt| {
                if rcpt.starts_with("full@") {
                    Reply::new(452, format!("4.2.2 <{rcpt}> mailbox full"))
                } else {
                    Reply::new(250, format!("2.1.5 <{rcpt}> delivered"))
                }
            })
            .collect();
        Some(replies)
    }
}

#[tokio::test]
async fn lhlo_replaces_helo_and_ehlo() {
    let server = start(Sink, lmtp()).await;
    let mut c = Client::connect(server.local_addr()).await;
    // HELO and EHLO are unknown in LMTP, but do not count towards the unknown-command limit.
    for _ in 0..6 {
        c.expect(
            "HELO client.example",
            "500 Error: command \"HELO\" not recognized",
        )
        .await;
        c.expect(
            "EHLO client.example",
            "500 Error: command \"EHLO\" not recognized",
        )
        .await;
    }
    c.expect("MAIL FROM:<a@example.com>", "503 Error: send HELO first")
        .await;
    c.expect("LHLO", "501 Syntax: LHLO hostname").await;
    let lhlo = c.cmd("LHLO client.example", 250).await;
    assert_eq!(lhlo[0], "250-test.example");
    assert_eq!(lhlo.last().unwrap(), "250 HELP");
    assert!(lhlo.contains(&"250-PIPELINING".to_owned()));
    c.expect(
        "HELP",
        "250 Supported commands: AUTH DATA HELP LHLO MAIL NOOP QUIT RCPT RSET VRFY",
    )
    .await;
    c.expect("HELP LHLO", "250 Syntax: LHLO hostname").await;
    c.expect(
        "HELP EHLO",
        "501 Supported commands: AUTH DATA HELP LHLO MAIL NOOP QUIT RCPT RSET VRFY",
    )
    .await;
    c.expect("MAIL FROM:<a@example.com> SIZE=10", "250 OK")
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn each_accepted_recipient_gets_its_own_reply_after_data() {
    let server = start(Mailboxes, lmtp()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("LHLO client.example", 250).await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    c.expect("RCPT TO:<b@example.com>", "250 OK").await;
    c.expect("RCPT TO:<nobody@example.com>", "550 5.1.1 no such user")
        .await;
    c.expect("RCPT TO:<full@example.com>", "250 OK").await;
    c.expect("RCPT TO:<d@example.com>", "250 OK").await;
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    c.send(b"Subject: lmtp\r\n\r\nhi\r\n.\r\n").await;
    assert_eq!(c.reply().await, ["250 2.1.5 <b@example.com> delivered"]);
    assert_eq!(
        c.reply().await,
        ["452 4.2.2 <full@example.com> mailbox full"]
    );
    assert_eq!(c.reply().await, ["250 2.1.5 <d@example.com> delivered"]);
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}

#[tokio::test]
async fn bdat_last_gets_one_reply_per_recipient_too() {
    let server = start(Mailboxes, lmtp()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("LHLO client.example", 250).await;
    c.send(
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<full@example.com>\r\nRCPT TO:<b@example.com>\r\n\
          BDAT 3\r\nabcBDAT 3 LAST\r\ndefNOOP\r\n",
    )
    .await;
    let mut replies = Vec::new();
    for _ in 0..7 {
        replies.push(c.reply().await.join("\n"));
    }
    assert_eq!(
        replies,
        [
            "250 OK",
            "250 OK",
            "250 OK",
            "250 2.0.0 3 octets received",
            "452 4.2.2 <full@example.com> mailbox full",
            "250 2.1.5 <b@example.com> delivered",
            "250 OK",
        ]
    );
    server.shutdown().await;
}

/// Without `handle_lmtp_data`, `handle_data`'s reply goes to every recipient.
struct Plain;

impl Handler for Plain {
    async fn handle_data(&self, _: &mut Session, envelope: &mut Envelope) -> Reply {
        Reply::new(250, format!("2.0.0 {} octets", envelope.content.len()))
    }
}

/// A handler whose list is too short: it is padded with its last reply.
struct Short;

impl Handler for Short {
    async fn handle_lmtp_data(&self, _: &mut Session, _: &mut Envelope) -> Option<Vec<Reply>> {
        Some(vec![Reply::from("451 4.3.0 try later")])
    }
}

#[tokio::test]
async fn the_default_repeats_handle_data_and_short_lists_are_padded() {
    let server = start(Plain, lmtp()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("LHLO client.example", 250).await;
    let reply = c
        .deliver(
            "a@example.com",
            &["b@example.com", "c@example.com"],
            b"x\r\n",
        )
        .await;
    assert_eq!(reply, ["250 2.0.0 3 octets"]);
    assert_eq!(c.reply().await, ["250 2.0.0 3 octets"]);
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;

    let server = start(Short, lmtp()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("LHLO client.example", 250).await;
    let reply = c
        .deliver(
            "a@example.com",
            &["b@example.com", "c@example.com"],
            b"x\r\n",
        )
        .await;
    assert_eq!(reply, ["451 4.3.0 try later"]);
    assert_eq!(c.reply().await, ["451 4.3.0 try later"]);
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}

#[tokio::test]
async fn smtp_mode_knows_no_lhlo() {
    let server = start(Plain, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect(
        "LHLO client.example",
        "500 Error: command \"LHLO\" not recognized",
    )
    .await;
    c.cmd("EHLO client.example", 250).await;
    let reply = c
        .deliver(
            "a@example.com",
            &["b@example.com", "c@example.com"],
            b"x\r\n",
        )
        .await;
    assert_eq!(reply, ["250 2.0.0 3 octets"], "one reply in SMTP");
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}

/// `smtplib.LMTP` speaks LHLO; it reads one reply after DATA, so the script reads the
/// second recipient's reply itself.
const SMTPLIB_LMTP: &str = r#"
import smtplib, sys
s = smtplib.LMTP("127.0.0.1", int(sys.argv[1]))
s.sock.settimeout(10)
print(s.ehlo("python.example")[0])
print(s.mail("a@example.com"))
print(s.rcpt("b@example.com"))
print(s.rcpt("nobody@example.com"))
print(s.rcpt("full@example.com"))
print(s.data(b"Subject: lmtp\r\n\r\nfrom python\r\n"))
print(s.getreply())
print(s.quit())
"#;

#[tokio::test]
async fn python_smtplib_lmtp_client_sees_each_recipient() {
    let server = start(Mailboxes, lmtp()).await;
    let port = server.local_addr().port().to_string();
    let (ok, stdout, stderr) = python(SMTPLIB_LMTP, &[&port]).await;
    assert!(ok, "python failed: {stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "250",
            "(250, b'OK')",
            "(250, b'OK')",
            "(550, b'5.1.1 no such user')",
            "(250, b'OK')",
            "(250, b'2.1.5 <b@example.com> delivered')",
            "(452, b'4.2.2 <full@example.com> mailbox full')",
            "(221, b'Bye')",
        ]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smtpd_binary_speaks_lmtp_with_a_flag() {
    let smtpd = Smtpd::tcp(&["--lmtp", "--handler", "sink", "--hostname", "lmtp.example"]);
    let mut c = Client::connect(smtpd.addr()).await;
    c.expect(
        "EHLO client.example",
        "500 Error: command \"EHLO\" not recognized",
    )
    .await;
    let lhlo = c.cmd("LHLO client.example", 250).await;
    assert_eq!(lhlo[0], "250-lmtp.example");
    let reply = c
        .deliver(
            "a@example.com",
            &["b@example.com", "c@example.com"],
            b"x\r\n",
        )
        .await;
    assert_eq!(reply, ["250 OK"]);
    assert_eq!(c.reply().await, ["250 OK"]);
    c.expect("QUIT", "221 Bye").await;
}
