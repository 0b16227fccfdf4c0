//! Command dispatch and the policy every command passes (line limits, STARTTLS and AUTH
//! requirements, call limits, unknown commands), and the commands without a room of their own:
//! HELO, EHLO/LHLO, HELP, VRFY, NOOP, QUIT, RSET.

use tracing::debug;

use super::hooks::call_hook;
use super::io::AUTH_LINE_OVERHEAD;
use super::{Connection, Next};
use crate::handler::Handler;
use crate::proto::xclient::XCLIENT_ATTRIBUTES;
use crate::proto::xforward::XFORWARD_ATTRIBUTES;
use crate::proto::{PathOptions, Reply, Verb, parse_bdat, parse_command, parse_path_with, replies};
use crate::stream::Transport;

impl<H: Handler, S: Transport> Connection<H, S> {
    pub(super) fn syntax(&self, verb: Verb) -> Reply {
        replies::syntax(verb, self.session.extended_smtp())
    }

    /// How a path is parsed here: the configured local-part limit.
    pub(super) fn path_options(&self) -> PathOptions {
        PathOptions::default().with_local_part_limit(self.shared.config.max_local_part)
    }

    pub(super) fn command_limit(&self, verb: Verb) -> usize {
        let config = &self.shared.config;
        match verb {
            Verb::Auth => config.max_auth_line + AUTH_LINE_OVERHEAD,
            Verb::Mail if self.session.extended_smtp() => {
                config.max_command_line
                    + if config.max_message_size.is_some() {
                        26
                    } else {
                        0
                    }
                    + if config.smtputf8 { 10 } else { 0 }
            }
            _ => config.max_command_line,
        }
    }

    pub(super) async fn command(&mut self, line: &[u8]) -> Next {
        let config = &self.shared.config;
        self.io.answering(Verb::Unknown);
        let cmd = match parse_command(line, config.smtputf8) {
            Ok(cmd) => cmd,
            Err(reply) => {
                crate::metrics::command(Verb::Unknown);
                self.io.push(&reply);
                return Next::Continue;
            }
        };
        crate::metrics::command(cmd.verb);
        match cmd.verb {
            Verb::Auth => debug!(">> {}", super::auth::sanitize_auth(&cmd.verb_text, cmd.arg)),
            // An unknown "command" may be a credential sent after a refused AUTH: never log it.
            Verb::Unknown => debug!(">> (unrecognized command of {} bytes)", line.len()),
            _ => debug!(">> {}", String::from_utf8_lossy(line)),
        }
        let verb = cmd.verb;
        self.io.answering(verb);
        if line.len() > self.command_limit(verb) {
            self.io.push(&if verb == Verb::Auth {
                replies::AUTH_LINE_TOO_LONG
            } else {
                replies::LINE_TOO_LONG
            });
            return Next::Continue;
        }
        if self.tls_refused && verb != Verb::Quit {
            self.io.push(&replies::LACK_OF_SECURITY);
            return Next::Continue;
        }
        if config.require_starttls
            && config.tls.is_some()
            && !self.session.is_tls()
            && !matches!(verb, Verb::Noop | Verb::Ehlo | Verb::StartTls | Verb::Quit)
            && !(verb == Verb::Lhlo && config.lmtp)
        {
            self.io.push(&replies::STARTTLS_FIRST);
            return Next::Continue;
        }
        if let Some(limits) = &config.max_command_calls {
            let used = self.calls.entry(verb).or_insert(0);
            *used += 1;
            let name = if verb == Verb::Unknown {
                "*"
            } else {
                verb.name()
            };
            if *used > limits.limit(name) {
                self.io.push(&replies::sent_too_many_times(&cmd.verb_text));
                return Next::Close;
            }
        }
        if config.lmtp && matches!(verb, Verb::Helo | Verb::Ehlo) {
            // LMTP has only LHLO; as in aiosmtpd, this does not count as an unknown command.
            self.io.push(&replies::unknown_command(&cmd.verb_text));
            return Next::Continue;
        }
        let unknown = match verb {
            Verb::Unknown => true,
            Verb::Lhlo => !config.lmtp,
            Verb::Bdat => !config.chunking,
            _ => false,
        };
        if unknown {
            self.bogus += 1;
            if self.bogus >= config.max_unknown_commands {
                self.io.push(&replies::TOO_MANY_UNRECOGNIZED);
                return Next::Close;
            }
            let reply = replies::unknown_command(&cmd.verb_text);
            // Sent, but not logged: it echoes the unknown line (see above).
            self.io.answering(Verb::Unknown);
            self.io.push_unlogged(&reply);
            return Next::Continue;
        }
        self.io.touch();
        let arg = cmd.arg;
        let reply = match verb {
            Verb::Helo => self.helo(arg).await,
            Verb::Ehlo => self.ehlo(arg).await,
            Verb::Noop => {
                let r = call_hook!(self, "handle_noop", |h, session, envelope| h
                    .handle_noop(session, envelope, arg));
                self.settle(r).await
            }
            Verb::Quit => {
                if arg.is_some() {
                    self.syntax(verb)
                } else {
                    let r = call_hook!(self, "handle_quit", |h, session, envelope| h
                        .handle_quit(session, envelope));
                    let reply = self.settle(r).await;
                    self.io.push(&reply);
                    return Next::Close;
                }
            }
            Verb::Rset => {
                if arg.is_some() {
                    self.syntax(verb)
                } else {
                    self.reset_envelope();
                    let r = call_hook!(self, "handle_rset", |h, session, envelope| h
                        .handle_rset(session, envelope));
                    self.settle(r).await
                }
            }
            Verb::Help => self.help(arg),
            Verb::Vrfy => self.vrfy(arg).await,
            Verb::Expn => replies::EXPN_NOT_IMPLEMENTED,
            Verb::Mail => self.mail(arg, cmd.arg_is_utf8()).await,
            Verb::Rcpt => self.rcpt(arg, cmd.arg_is_utf8()).await,
            Verb::Data => match self.data_command(arg) {
                Ok(reply) => {
                    self.io.push(&reply);
                    return Next::Data;
                }
                Err(reply) => reply,
            },
            Verb::StartTls => match self.starttls_command(arg) {
                Ok(reply) => {
                    self.io.push(&reply);
                    return Next::StartTls;
                }
                Err(reply) => reply,
            },
            Verb::Auth => return self.auth(arg).await,
            Verb::Lhlo => self.ehlo(arg).await,
            Verb::Bdat => match parse_bdat(arg) {
                Some(chunk) => return Next::Bdat(chunk),
                None => replies::syntax(Verb::Bdat, false),
            },
            Verb::Xclient => self.xclient(arg),
            Verb::Xforward => self.xforward(arg),
            Verb::Unknown => unreachable!("unknown verbs are answered before dispatch"),
        };
        let close = reply.closes_connection();
        self.io.push(&reply);
        if close { Next::Close } else { Next::Continue }
    }

    pub(super) async fn helo(&mut self, arg: Option<&str>) -> Reply {
        let Some(hostname) = arg else {
            return self.syntax(Verb::Helo);
        };
        self.reset_envelope();
        let r = call_hook!(self, "handle_helo", |h, session, envelope| h
            .handle_helo(session, envelope, hostname));
        let reply = self.settle(r).await;
        if reply.is_positive() {
            self.session.greeted(hostname, false);
            self.phase.hello();
        }
        reply
    }

    pub(super) fn ehlo_reply(&self) -> Reply {
        let config = &self.shared.config;
        let mut lines = vec![config.hostname.clone()];
        if let Some(limit) = config.max_message_size {
            lines.push(format!("SIZE {limit}"));
        }
        lines.push("8BITMIME".into());
        if config.smtputf8 {
            lines.push("SMTPUTF8".into());
        }
        lines.push("PIPELINING".into());
        if config.chunking {
            lines.push("CHUNKING".into());
            lines.push("BINARYMIME".into());
        }
        if config.dsn {
            lines.push("DSN".into());
        }
        if config.enhanced_status_codes {
            lines.push("ENHANCEDSTATUSCODES".into());
        }
        if config.tls.is_some() && !self.session.is_tls() {
            lines.push("STARTTLS".into());
        }
        if !config.auth_require_tls || self.session.is_tls() {
            lines.push(format!("AUTH {}", self.shared.registry.advertised()));
        }
        if self.trust.xclient {
            lines.push(format!("XCLIENT {XCLIENT_ATTRIBUTES}"));
        }
        if self.trust.xforward {
            lines.push(format!("XFORWARD {XFORWARD_ATTRIBUTES}"));
        }
        lines.push("HELP".into());
        Reply::multiline(250, lines)
    }

    pub(super) async fn ehlo(&mut self, arg: Option<&str>) -> Reply {
        let Some(hostname) = arg else {
            return self.syntax(if self.shared.config.lmtp {
                Verb::Lhlo
            } else {
                Verb::Ehlo
            });
        };
        self.reset_envelope();
        let responses = self.ehlo_reply();
        let r = call_hook!(self, "handle_ehlo", |h, session, envelope| h
            .handle_ehlo(session, envelope, hostname, responses));
        let reply = self.settle(r).await;
        if reply.is_positive() {
            self.session.greeted(hostname, true);
            self.phase.hello();
        }
        reply
    }

    pub(super) fn help(&self, arg: Option<&str>) -> Reply {
        if self.auth_needed() {
            return replies::AUTH_REQUIRED;
        }
        let config = &self.shared.config;
        let tls = config.tls.is_some();
        let Some(topic) = arg else {
            return replies::supported_commands(250, config.lmtp, tls);
        };
        let verb = parse_command(topic.as_bytes(), false)
            .map(|c| c.verb)
            .unwrap_or(Verb::Unknown);
        let offered = match verb {
            Verb::StartTls => tls,
            Verb::Helo | Verb::Ehlo => !config.lmtp,
            Verb::Lhlo => config.lmtp,
            // Not in aiosmtpd's list of commands, but its syntax is worth a HELP.
            Verb::Bdat => config.chunking,
            _ => true,
        };
        let known = replies::syntax_of(verb).is_some() && offered;
        if !known {
            return replies::supported_commands(501, config.lmtp, tls);
        }
        let syntax = self.syntax(verb);
        Reply::new(250, syntax.text().to_owned())
    }

    pub(super) async fn vrfy(&mut self, arg: Option<&str>) -> Reply {
        if self.auth_needed() {
            return replies::AUTH_REQUIRED;
        }
        let Some(arg) = arg else {
            return self.syntax(Verb::Vrfy);
        };
        let path = parse_path_with(Some(&format!("TO:{arg}")), "TO:", &self.path_options());
        let address = match path {
            Ok(path) if path.params.is_empty() && path.address != "<>" => path.address,
            _ => return replies::could_not_vrfy(arg),
        };
        let r = call_hook!(self, "handle_vrfy", |h, session, envelope| h
            .handle_vrfy(session, envelope, &address));
        self.settle(r).await
    }
}
