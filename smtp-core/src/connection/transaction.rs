//! The mail transaction: MAIL and RCPT, and the checks DATA and BDAT share.
//!
//! The engine records a command's effect in the envelope before the hook runs, so the hook
//! sees the envelope as it will be and may amend it; a negative reply undoes the record.

use tracing::{Instrument as _, debug};

use super::Connection;
use super::hooks::call_hook;
use crate::envelope::Recipient;
use crate::handler::Handler;
use crate::proto::params::{ParamPolicy, parse_mail_params, parse_rcpt_params};
use crate::proto::replies;
use crate::proto::{Path, PathError, Reply, Verb, parse_path_with};
use crate::stream::Transport;

impl<H: Handler, S: Transport> Connection<H, S> {
    pub(super) fn auth_needed(&self) -> bool {
        self.shared.config.auth_required && !self.session.authenticated()
    }

    /// How MAIL and RCPT parameters are judged here.
    fn param_policy(&self) -> ParamPolicy {
        let config = &self.shared.config;
        ParamPolicy::new(
            config.dsn,
            config.chunking,
            config.smtputf8,
            config.max_message_size,
        )
    }

    /// The path of MAIL or RCPT, after the checks they share; `Err` is the reply.
    fn path(&self, verb: Verb, arg: Option<&str>, utf8: bool) -> Result<Path, Reply> {
        if !utf8 {
            return Err(replies::address_not_utf8(verb));
        }
        let keyword = if verb == Verb::Mail { "FROM:" } else { "TO:" };
        let path = match parse_path_with(arg, keyword, &self.path_options()) {
            Ok(path) => path,
            Err(PathError::Syntax) => return Err(self.syntax(verb)),
            Err(PathError::Malformed) => return Err(replies::MALFORMED_ADDRESS),
        };
        if !path.params.is_empty() && !self.session.extended_smtp() {
            return Err(self.syntax(verb));
        }
        Ok(path)
    }

    /// MAIL FROM. `utf8` is false when the argument was not valid UTF-8.
    pub(super) async fn mail(&mut self, arg: Option<&str>, utf8: bool) -> Reply {
        if !self.phase.hello_done() {
            return replies::SEND_HELO_FIRST;
        }
        if self.auth_needed() {
            return replies::AUTH_REQUIRED;
        }
        let path = match self.path(Verb::Mail, arg, utf8) {
            Ok(path) => path,
            Err(reply) => return reply,
        };
        if self.phase.in_transaction() {
            return replies::NESTED_MAIL;
        }
        let params = match parse_mail_params(&path.raw_params, &self.param_policy()) {
            Ok(params) => params,
            Err(reply) => return reply,
        };
        self.envelope.mail_from = Some(path.address.clone());
        self.envelope.mail_options = path.params;
        self.envelope.smtp_utf8 = params.smtputf8;
        self.envelope.body_type = params.body;
        self.envelope.dsn = params.dsn.clone();
        let r = call_hook!(self, "handle_mail", |h, session, envelope| h.handle_mail(
            session,
            envelope,
            &path.address,
            &params
        ));
        let reply = self.settle(r).await;
        if reply.is_positive() {
            self.transaction = tracing::info_span!("transaction", from = %path.address);
            debug!(parent: &self.transaction, "MAIL FROM accepted");
            self.phase.mail();
        } else {
            crate::metrics::message_rejected(crate::metrics::Stage::Mail);
            self.reset_envelope();
        }
        reply
    }

    /// RCPT TO. `utf8` is false when the argument was not valid UTF-8.
    pub(super) async fn rcpt(&mut self, arg: Option<&str>, utf8: bool) -> Reply {
        if !self.phase.hello_done() {
            return replies::SEND_HELO_FIRST;
        }
        if self.auth_needed() {
            return replies::AUTH_REQUIRED;
        }
        if !self.phase.in_transaction() {
            return replies::NEED_MAIL;
        }
        if self.phase.is_chunking() {
            return replies::BDAT_IN_PROGRESS;
        }
        let path = match self.path(Verb::Rcpt, arg, utf8) {
            Ok(path) => path,
            Err(reply) => return reply,
        };
        let params = match parse_rcpt_params(&path.raw_params, &self.param_policy()) {
            Ok(params) => params,
            Err(reply) => return reply,
        };
        if self.envelope.recipients.len() >= self.shared.config.max_recipients {
            return replies::TOO_MANY_RECIPIENTS;
        }
        let accepted = self.envelope.recipients.len();
        self.envelope.recipients.push(Recipient {
            address: path.address.clone(),
            params: path.params,
            dsn: params.dsn.clone(),
        });
        let span = self.transaction.clone();
        let r = call_hook!(self, "handle_rcpt", |h, session, envelope| h
            .handle_rcpt(session, envelope, &path.address, &params)
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
            return Err(replies::SEND_HELO_FIRST);
        }
        if self.auth_needed() {
            return Err(replies::AUTH_REQUIRED);
        }
        if self.envelope.recipients.is_empty() {
            return Err(replies::NEED_RCPT);
        }
        Ok(())
    }
}
