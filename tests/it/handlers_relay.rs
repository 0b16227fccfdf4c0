//! The `Message` handler (a parsed message for a closure) and the `Proxy` handler (relay to
//! an upstream server with lettre, reporting its refusals), over real sockets: the upstream is
//! another smtp-core server that records what it accepts.

use std::sync::{Arc, Mutex};

use crate::support::Client;
use smtp_core::handlers::{Message, ParsedMessage, Proxy};
use smtp_core::mail_parser::MimeHeaders as _;
use smtp_core::{Envelope, Handler, Reply, Session};

const BODY: &[u8] = b"From: Ann <a@example.com>\r\n\
Subject: =?utf-8?q?caf=C3=A9?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
hello\r\n\
--b\r\n\
Content-Type: application/octet-stream; name=x.bin\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAEC\r\n\
--b--\r\n";

#[tokio::test]
async fn message_hands_over_a_parsed_message_with_trace_headers() {
    let got: Arc<Mutex<Vec<ParsedMessage>>> = Arc::default();
    let sink = got.clone();
    let handler = Message::new(move |msg: ParsedMessage| {
        sink.lock().unwrap().push(msg);
        async { Ok(()) }
    });
    let server = crate::support::start(handler, crate::support::config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let me = c.local_addr();
    let reply = c
        .deliver("a@example.com", &["b@example.com", "c@example.com"], BODY)
        .await;
    assert_eq!(reply[0][..3], *"250");
    let msg = got.lock().unwrap().pop().expect("a message");
    assert_eq!(msg.mail_from, "a@example.com");
    assert_eq!(msg.rcpt_tos, ["b@example.com", "c@example.com"]);
    let m = &msg.message;
    assert_eq!(m.subject(), Some("café"));
    assert_eq!(m.body_text(0).as_deref(), Some("hello"));
    assert_eq!(
        m.attachment(0).map(|a| a.contents()),
        Some(&[0u8, 1, 2][..])
    );
    assert_eq!(
        m.attachment(0).and_then(|a| a.attachment_name()),
        Some("x.bin")
    );
    let header = |name: &'static str| m.header_raw(name).map(str::trim);
    assert_eq!(header("X-Peer"), Some(me.ip().to_string().as_str()));
    assert_eq!(header("X-MailFrom"), Some("a@example.com"));
    assert_eq!(header("X-RcptTo"), Some("b@example.com, c@example.com"));
    server.shutdown().await;
}

#[tokio::test]
async fn message_closure_decides_the_reply() {
    let handler = Message::new(|msg: ParsedMessage| async move {
        match msg.message.subject() {
            Some(_) => Ok(()),
            None => Err(Reply::from("550 5.6.0 A subject, please")),
        }
    });
    let server = crate::support::start(handler, crate::support::config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let reply = c
        .deliver(
            "a@example.com",
            &["b@example.com"],
            b"No: subject\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(reply, ["550 5.6.0 A subject, please"]);
    server.shutdown().await;
}

/// An upstream that refuses `nobody@…` (550) and `later@…` (450), refuses messages whose
/// body contains `REJECT`, and records the rest.
struct Upstream(crate::support::Messages);

impl Handler for Upstream {
    async fn handle_rcpt(
        &self,
        _: &mut Session,
        _: &mut Envelope,
        address: &str,
        _: &smtp_core::RcptParams,
    ) -> Reply {
        if address.starts_with("nobody@") {
            Reply::from("550 5.1.1 no such user")
        } else if address.starts_with("later@") {
            Reply::from("450 4.2.1 mailbox busy")
        } else {
            Reply::ok()
        }
    }

    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        if memchr_reject(&envelope.content) {
            return Reply::from("554 5.7.1 content refused");
        }
        self.0
            .lock()
            .unwrap()
            .push(smtp_core::handlers::ReceivedMessage {
                peer: session.peer().clone(),
                login: None,
                mail_from: envelope.mail_from.clone().unwrap_or_default(),
                rcpt_tos: envelope.rcpt_tos().map(String::from).collect(),
                content: envelope.content.clone(),
            });
        Reply::ok()
    }
}

fn memchr_reject(content: &[u8]) -> bool {
    content.windows(6).any(|w| w == b"REJECT")
}

/// A Proxy server relaying to a recording upstream.
async fn relay() -> (
    smtp_core::ServerHandle,
    smtp_core::ServerHandle,
    crate::support::Messages,
) {
    let messages = crate::support::Messages::default();
    let upstream =
        crate::support::start(Upstream(messages.clone()), crate::support::config()).await;
    let port = upstream.local_addr().port();
    let front =
        crate::support::start(Proxy::new("127.0.0.1", port), crate::support::config()).await;
    (front, upstream, messages)
}

async fn send(front: &smtp_core::ServerHandle, to: &[&str], body: &[u8]) -> (Vec<String>, String) {
    let mut c = Client::ehloed(front.local_addr()).await;
    let me = c.local_addr().ip().to_string();
    (c.deliver("a@example.com", to, body).await, me)
}

#[tokio::test]
async fn proxy_relays_with_trace_headers() {
    let (front, upstream, messages) = relay().await;
    let (reply, me) = send(
        &front,
        &["b@example.com", "c@example.com"],
        b"Subject: x\r\n\r\nhi\r\n",
    )
    .await;
    assert_eq!(reply[0][..3], *"250");
    let relayed = messages.lock().unwrap().pop().expect("relayed");
    assert_eq!(relayed.mail_from, "a@example.com");
    assert_eq!(relayed.rcpt_tos, ["b@example.com", "c@example.com"]);
    let expected = format!(
        "X-Peer: {me}\r\nX-MailFrom: a@example.com\r\nX-RcptTo: b@example.com, c@example.com\r\nSubject: x\r\n\r\nhi\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&relayed.content), expected);
    front.shutdown().await;
    upstream.shutdown().await;
}

#[tokio::test]
async fn proxy_dot_stuffing_survives_the_relay() {
    let (front, upstream, messages) = relay().await;
    // The front unstuffs `..` to `.`; lettre must stuff it again for the upstream.
    let (reply, _) = send(&front, &["b@example.com"], b"..leading dot\r\n").await;
    assert_eq!(reply[0][..3], *"250");
    let relayed = messages.lock().unwrap().pop().expect("relayed");
    assert!(
        relayed
            .content
            .ends_with(b"b@example.com\r\n.leading dot\r\n"),
        "{:?}",
        String::from_utf8_lossy(&relayed.content)
    );
    front.shutdown().await;
    upstream.shutdown().await;
}

#[tokio::test]
async fn proxy_reports_recipients_the_upstream_refused() {
    let (front, upstream, messages) = relay().await;
    let to = ["b@example.com", "nobody@example.com", "later@example.com"];
    let (reply, _) = send(&front, &to, b"hi\r\n").await;
    assert_eq!(
        reply,
        [
            "250-Delivered to 1 of 3 recipients",
            "250-<nobody@example.com>: 550 5.1.1 no such user",
            "250 <later@example.com>: 450 4.2.1 mailbox busy",
        ]
    );
    assert_eq!(
        messages.lock().unwrap().pop().unwrap().rcpt_tos,
        ["b@example.com"]
    );
    front.shutdown().await;
    upstream.shutdown().await;
}

#[tokio::test]
async fn proxy_passes_on_the_refusal_of_every_recipient() {
    let (front, upstream, messages) = relay().await;
    let (reply, _) = send(&front, &["nobody@example.com"], b"hi\r\n").await;
    assert_eq!(reply, ["550 5.1.1 no such user"]);
    let (reply, _) = send(
        &front,
        &["later@example.com", "nobody@example.com"],
        b"hi\r\n",
    )
    .await;
    assert_eq!(reply, ["450 4.2.1 <later@example.com>: mailbox busy"]);
    assert!(messages.lock().unwrap().is_empty());
    front.shutdown().await;
    upstream.shutdown().await;
}

#[tokio::test]
async fn proxy_passes_on_a_refused_message() {
    let (front, upstream, _) = relay().await;
    let (reply, _) = send(&front, &["b@example.com"], b"REJECT me\r\n").await;
    assert_eq!(reply, ["554 5.7.1 content refused"]);
    front.shutdown().await;
    upstream.shutdown().await;
}

#[tokio::test]
async fn proxy_without_upstream_is_a_temporary_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let front =
        crate::support::start(Proxy::new("127.0.0.1", port), crate::support::config()).await;
    let (reply, _) = send(&front, &["b@example.com"], b"hi\r\n").await;
    assert_eq!(reply, ["451 4.4.1 Error: upstream unavailable"]);
    front.shutdown().await;
}
