//! [`Proxy`]: relays each message to an upstream SMTP server with lettre.

use std::str::FromStr as _;
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};

use super::message::trace_headers;
use crate::envelope::Envelope;
use crate::handler::Handler;
use crate::proto::Reply;
use crate::session::Session;

/// Relays every message to an upstream server, over plain SMTP, as aiosmtpd's `Proxy`
/// handler does (with an `X-Peer: <client ip>` header, and `X-MailFrom`/`X-RcptTo`), but
/// reporting the upstream's answers instead of only logging them.
///
/// The relay happens when the message is complete, so the client's reply to the final `.`
/// is decided by the upstream:
/// - every recipient accepted and the message accepted: `250 OK`;
/// - some recipients refused: the message goes to the others and the reply is a multi-line
///   `250` naming each refused recipient with the upstream's reply, e.g.
///   `250-Delivered to 1 of 2 recipients` / `250 <b@example.com>: 550 5.1.1 no such user`.
///   The client has no other way to learn of it: no bounce is sent;
/// - every recipient refused: the upstream's reply to the first one, e.g. `550 5.1.1 no such
///   user`, naming the recipient when there were several (`550 5.1.1 <b@example.com>: no
///   such user`);
/// - MAIL, DATA or the message refused: the upstream's reply, code and text;
/// - the upstream unreachable or the connection lost: `451 4.4.1 Error: upstream unavailable`.
#[derive(Debug, Clone)]
pub struct Proxy {
    host: String,
    port: u16,
    timeout: Duration,
}

impl Proxy {
    /// Relays to `host:port` (port 25 for a relay, often 10025 for a content filter).
    pub fn new(host: impl Into<String>, port: u16) -> Proxy {
        Proxy {
            host: host.into(),
            port,
            timeout: Duration::from_secs(60),
        }
    }

    /// How long the upstream may take for each step. Default is 60 seconds.
    pub fn timeout(mut self, timeout: Duration) -> Proxy {
        self.timeout = timeout;
        self
    }

    async fn relay(&self, session: &Session, envelope: &Envelope) -> Result<Reply, Reply> {
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &ClientId::Domain(session.server_hostname().to_owned()),
            None,
            None,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, upstream = %self.host, "cannot reach the upstream");
            unavailable()
        })?;
        let result = self.transaction(&mut conn, session, envelope).await;
        let _ = conn.quit().await;
        result
    }

    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        session: &Session,
        envelope: &Envelope,
    ) -> Result<Reply, Reply> {
        let mail_from = envelope.mail_from.as_deref().unwrap_or("<>");
        let from = match mail_from {
            "<>" | "" => None,
            address => Some(Address::from_str(address).map_err(|_| bad_address(address))?),
        };
        let mut params = Vec::new();
        for option in &envelope.mail_options {
            match option.as_str() {
                "BODY=8BITMIME" => {
                    params.push(MailParameter::Body(MailBodyParameter::EightBitMime))
                }
                "SMTPUTF8" => params.push(MailParameter::SmtpUtfEight),
                _ => {}
            }
        }
        conn.command(Mail::new(from, params))
            .await
            .map_err(upstream_reply)?;
        let mut refused = Vec::new();
        for rcpt in envelope.rcpt_tos() {
            let address = Address::from_str(rcpt).map_err(|_| bad_address(rcpt))?;
            if let Err(e) = conn.command(Rcpt::new(address, Vec::new())).await {
                let reply = upstream_reply(e);
                tracing::info!(recipient = %rcpt, %reply, "upstream refused a recipient");
                refused.push((rcpt, reply));
            }
        }
        let total = envelope.recipients.len();
        if refused.len() == total {
            let (rcpt, reply) = refused.swap_remove(0);
            return Err(if total == 1 {
                reply
            } else {
                let (code, text) = split_enhanced(reply.text());
                Reply::new(reply.code(), format!("{code}<{rcpt}>: {text}"))
            });
        }
        conn.command(Data).await.map_err(upstream_reply)?;
        let mut message = trace_headers(
            session.peer(),
            mail_from,
            &envelope.rcpt_tos().collect::<Vec<_>>(),
        );
        message.extend_from_slice(&envelope.content);
        // lettre ends the message with CRLF . CRLF itself.
        let body = message.strip_suffix(b"\r\n").unwrap_or(&message);
        conn.message(body).await.map_err(upstream_reply)?;
        if refused.is_empty() {
            return Ok(Reply::ok());
        }
        let mut lines = vec![format!(
            "Delivered to {} of {total} recipients",
            total - refused.len()
        )];
        lines.extend(
            refused
                .iter()
                .map(|(rcpt, reply)| format!("<{rcpt}>: {} {}", reply.code(), reply.text())),
        );
        Ok(Reply::multiline(250, lines))
    }
}

impl Handler for Proxy {
    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        match self.relay(session, envelope).await {
            Ok(reply) | Err(reply) => reply,
        }
    }
}

/// `("5.1.1 ", "no such user")` from `"5.1.1 no such user"`; `("", text)` without a code.
fn split_enhanced(text: &str) -> (&str, &str) {
    match text.split_once(' ') {
        Some((code, rest))
            if code.split('.').count() == 3
                && code
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            (&text[..code.len() + 1], rest)
        }
        _ => ("", text),
    }
}

fn unavailable() -> Reply {
    Reply::from("451 4.4.1 Error: upstream unavailable")
}

fn bad_address(address: &str) -> Reply {
    tracing::info!(%address, "address not relayable");
    Reply::from("553 5.1.3 Error: address not accepted by the relay")
}

/// The upstream's refusal as a reply of ours: its code and text, or 451 when it said nothing.
fn upstream_reply(error: lettre::transport::smtp::Error) -> Reply {
    let Some(code) = error.status() else {
        tracing::warn!(%error, "upstream connection failed");
        return unavailable();
    };
    let text = std::error::Error::source(&error)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let code: u16 = code.to_string().parse().unwrap_or(451);
    Reply::new(code, text)
}
