//! The mail transaction: MAIL and RCPT, and the checks DATA and BDAT share.
//!
//! The engine records a command's effect in the envelope before the hook runs, so the hook
//! sees the envelope as it will be and may amend it; a negative reply undoes the record.

use tracing::{Instrument as _, debug};

use super::hooks::call_hook;
use super::{Connection, replies};
use crate::envelope::{BodyType, Recipient};
use crate::handler::Handler;
use crate::proto::params::{mail_dsn_param, rcpt_dsn_param};
use crate::proto::{MailDsn, PathError, RcptDsn, Reply, Verb, parse_path};
use crate::stream::Transport;

impl<H: Handler, S: Transport> Connection<H, S> {
    pub(super) fn auth_needed(&self) -> bool {
        self.shared.config.auth_required && !self.session.authenticated()
    }

    pub(super) async fn mail(&mut self, arg: Option<&str>) -> Reply {
        if !self.phase.hello_done() {
            return Reply::from("503 Error: send HELO first");
        }
        if self.auth_needed() {
            return replies::auth_required();
        }
        let path = match parse_path(arg, "FROM:") {
            Ok(path) => path,
            Err(PathError::Syntax) => return self.syntax(Verb::Mail),
            Err(PathError::Malformed) => return replies::malformed(),
        };
        if !path.params.is_empty() && !self.session.extended_smtp() {
            return self.syntax(Verb::Mail);
        }
        if self.phase.in_transaction() {
            return Reply::from("503 Error: nested MAIL command");
        }
        let config = &self.shared.config;
        let mut smtp_utf8 = false;
        let mut body_type = None;
        let mut dsn = MailDsn::default();
        for (param, raw) in path.params.iter().zip(&path.raw_params) {
            let (key, value) = match param.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (param.as_str(), None),
            };
            let key_ok =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !key_ok || value == Some("") {
                return self.syntax(Verb::Mail);
            }
            if config.dsn {
                let raw_value = raw.split_once('=').map(|(_, v)| v);
                match mail_dsn_param(&mut dsn, key, raw_value) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(text) => return Reply::new(501, format!("5.5.4 {text}")),
                }
            }
            match (key, value) {
                ("BODY", Some("7BIT")) => body_type = Some(BodyType::SevenBit),
                ("BODY", Some("8BITMIME")) => body_type = Some(BodyType::EightBitMime),
                ("BODY", Some("BINARYMIME")) if config.chunking => {
                    body_type = Some(BodyType::BinaryMime)
                }
                ("BODY", _) if config.chunking => {
                    return Reply::from(
                        "501 Error: BODY can only be one of 7BIT, 8BITMIME, BINARYMIME",
                    );
                }
                ("BODY", _) => {
                    return Reply::from("501 Error: BODY can only be one of 7BIT, 8BITMIME");
                }
                ("SMTPUTF8", Some(_)) => {
                    return Reply::from("501 Error: SMTPUTF8 takes no arguments");
                }
                ("SMTPUTF8", None) if !config.smtputf8 => {
                    return Reply::from("501 Error: SMTPUTF8 disabled");
                }
                ("SMTPUTF8", None) => smtp_utf8 = true,
                ("SIZE", Some(size)) => {
                    let Ok(size) = size.parse::<u64>() else {
                        return self.syntax(Verb::Mail);
                    };
                    if config
                        .max_message_size
                        .is_some_and(|limit| size > limit as u64)
                    {
                        return Reply::from(
                            "552 Error: message size exceeds fixed maximum message size",
                        );
                    }
                }
                _ => {
                    return Reply::from(
                        "555 MAIL FROM parameters not recognized or not implemented",
                    );
                }
            }
        }
        self.envelope.mail_from = Some(path.address.clone());
        self.envelope.mail_options = path.params.clone();
        self.envelope.smtp_utf8 = smtp_utf8;
        self.envelope.body_type = body_type;
        self.envelope.dsn = dsn;
        let r = call_hook!(self, "handle_mail", |h, session, envelope| h.handle_mail(
            session,
            envelope,
            &path.address,
            &path.params
        ));
        let reply = self.settle(r).await;
        if reply.is_positive() {
            self.transaction = tracing::info_span!("transaction", from = %path.address);
            debug!(parent: &self.transaction, "MAIL FROM accepted");
            self.phase.mail();
        } else {
            self.reset_envelope();
        }
        reply
    }

    pub(super) async fn rcpt(&mut self, arg: Option<&str>) -> Reply {
        if !self.phase.hello_done() {
            return Reply::from("503 Error: send HELO first");
        }
        if self.auth_needed() {
            return replies::auth_required();
        }
        if !self.phase.in_transaction() {
            return Reply::from("503 Error: need MAIL command");
        }
        if self.phase.is_chunking() {
            return Reply::from("503 5.5.1 Error: BDAT transfer in progress");
        }
        let path = match parse_path(arg, "TO:") {
            Ok(path) => path,
            Err(PathError::Syntax) => return self.syntax(Verb::Rcpt),
            Err(PathError::Malformed) => return replies::malformed(),
        };
        if !path.params.is_empty() && !self.session.extended_smtp() {
            return self.syntax(Verb::Rcpt);
        }
        let config = &self.shared.config;
        let mut dsn = RcptDsn::default();
        for (param, raw) in path.params.iter().zip(&path.raw_params) {
            let (key, raw_value) = match raw.split_once('=') {
                Some((_, v)) => (param.split('=').next().unwrap_or(""), Some(v)),
                None => (param.as_str(), None),
            };
            if config.dsn {
                match rcpt_dsn_param(&mut dsn, key, raw_value) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(text) => return Reply::new(501, format!("5.5.4 {text}")),
                }
            }
            return Reply::from("555 RCPT TO parameters not recognized or not implemented");
        }
        if self.envelope.recipients.len() >= config.max_recipients {
            return Reply::from("452 4.5.3 Too many recipients");
        }
        let accepted = self.envelope.recipients.len();
        self.envelope.recipients.push(Recipient {
            address: path.address.clone(),
            params: path.params.clone(),
            dsn,
        });
        let span = self.transaction.clone();
        let r = call_hook!(self, "handle_rcpt", |h, session, envelope| h
            .handle_rcpt(session, envelope, &path.address, &path.params)
            .instrument(span));
        let reply = self.settle(r).await;
        if !reply.is_positive() {
            self.envelope.recipients.truncate(accepted);
        }
        reply
    }

    /// The checks shared by DATA and BDAT: a greeting, AUTH if required, a recipient.
    pub(super) fn transaction_ready(&self) -> Result<(), Reply> {
        if !self.phase.hello_done() {
            return Err(Reply::from("503 Error: send HELO first"));
        }
        if self.auth_needed() {
            return Err(replies::auth_required());
        }
        if self.envelope.recipients.is_empty() {
            return Err(Reply::from("503 Error: need RCPT command"));
        }
        Ok(())
    }
}
