//! A real SMTP server inside your tests: [`TestServer`] (cargo feature `testing`, on by
//! default; `default-features = false` users add `features = ["testing"]`, usually in
//! `[dev-dependencies]`).
//!
//! Code that *sends* mail is tested against a server that speaks real SMTP over a real
//! socket on `127.0.0.1`, records what it accepted, and can misbehave on purpose.
//!
//! ```
//! use std::time::Duration;
//! use smtp_core::testing::TestServer;
//! use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = TestServer::start().await;
//!
//! // The code under test sends a message to `server.addr()`; here, by hand.
//! let mut client = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
//! client
//!     .write_all(b"EHLO me\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<ann@example.com>\r\nDATA\r\n")
//!     .await
//!     .unwrap();
//! client.write_all(b"Subject: Reset\r\n\r\nYour code is 1234\r\n.\r\nQUIT\r\n").await.unwrap();
//! let mut dialogue = Vec::new();
//! client.read_to_end(&mut dialogue).await.unwrap();
//!
//! let messages = server.wait_for(1, Duration::from_secs(5)).await.unwrap();
//! assert_eq!(messages[0].mail_from, "app@example.com");
//! assert_eq!(messages[0].rcpt_tos(), ["ann@example.com"]);
//! assert_eq!(messages[0].subject().as_deref(), Some("Reset"));
//!
//! let transcript = &server.transcripts()[0];
//! assert!(transcript.pipelined());
//! assert!(transcript.sent("QUIT"));
//! # }
//! ```
//!
//! ## What is recorded
//! Every message the server *accepted* (a 2xx reply after DATA): the envelope (sender,
//! recipients with their parameters and DSN requests), the raw bytes, the session's facts
//! (peer, HELO name, TLS, AUTH mechanism and login) and, on request, the parsed message
//! ([`Message::parsed`], with [`mail_parser`]). [`TestServer::wait_for`]
//! waits for them without polling; [`TestServer::clear`] forgets them.
//!
//! Your own handler can run behind the kit ([`TestServerBuilder::handler`]): its replies
//! apply, and only what it accepts is recorded (with its body in `Envelope::content`; a
//! handler that streams or discards bodies leaves [`Message::raw`] empty). LMTP replies from
//! `handle_lmtp_data` are not recorded.
//!
//! ## Transcripts
//! [`TestServer::transcripts`] holds each connection's dialogue line by line, both ways, so
//! a test can assert how a client behaved: [`Transcript::sent`]`("QUIT")`,
//! [`Transcript::pipelined`]. Credentials never appear: an AUTH initial response and every
//! answer inside an AUTH exchange read `****`.
//!
//! ## Faults
//! [`TestServer::faults`] makes the server fail on purpose, set before the start or while it
//! runs: answer the Nth MAIL, RCPT or message (counted over all connections, from 1, or from
//! the moment the fault is set with [`Faults::add_from_now`]), or every one that matches a
//! predicate, with a reply of your choice (`451 4.3.0`, `552`; a `421` closes the connection
//! after it); delay replies; close the connection without a reply at a command or in the
//! middle of a message body.
//!
//! ```
//! use std::time::Duration;
//! use smtp_core::Reply;
//! use smtp_core::testing::{Action, Command, Fault, TestServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = TestServer::builder()
//!     .fault(Fault::matching(
//!         Command::Rcpt,
//!         |attempt| attempt.argument.is_some_and(|a| a.ends_with("@full.example")),
//!         Action::Reply(Reply::new(452, "4.2.2 Mailbox full")),
//!     ))
//!     .start()
//!     .await;
//! server.faults().on_mail(1, Reply::new(451, "4.3.0 Try again later"));
//! server.faults().drop_in_data(2);
//! server.faults().add_from_now(Command::Mail, 1, Action::Delay(Duration::from_millis(5)));
//! server.faults().delay(smtp_core::testing::Command::Ehlo, Duration::from_millis(10));
//! server.faults().clear();
//! # }
//! ```
//!
//! ## TLS and AUTH
//! [`TestServerBuilder::tls_self_signed`] makes a throwaway CA and a certificate for
//! `localhost` and `127.0.0.1`: the server offers STARTTLS on [`TestServer::addr`] and
//! implicit TLS on [`TestServer::tls_addr`], and [`TestServer::ca_pem`] is the certificate
//! your client trusts. [`TestServerBuilder::users`] accepts AUTH PLAIN and LOGIN for the
//! given logins; without TLS it also allows AUTH in the clear (the server is on loopback).
//!
//! ## A recorder of your own
//! [`Recorder`] is the handler a `TestServer` runs, usable on its own: serve it where you want
//! ([`Recorder::server`]), keep its messages in a [`MessageStore`] bounded by count and size
//! (oldest dropped first), [`subscribe`](MessageStore::subscribe) to new messages, and change
//! its [`Faults`] while it runs. `smtpd --handler capture` (a mail catcher with an HTTP API) is
//! built this way.
//!
//! ## Handlers without sockets
//! To call a handler's hooks directly, build the [`Session`](crate::Session) with
//! [`Session::builder`](crate::Session::builder) (peer, TLS, authenticated identity) and an
//! [`Envelope`](crate::Envelope) by hand.

mod cert;
mod faults;
mod message;
mod quickack;
mod recorder;
mod server;
mod store;
mod transcript;

pub use faults::{Action, Attempt, Command, Fault, Faults};
pub use message::Message;
pub use recorder::{Accept, Recorder};
pub use server::{TestServer, TestServerBuilder};
pub use store::{MessageStore, WaitError};
pub use transcript::{Line, Transcript};
