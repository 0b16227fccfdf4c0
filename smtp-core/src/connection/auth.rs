//! The AUTH command (RFC 4954): its checks, the exchange with a mechanism, and what follows a
//! failure — the log line for fail2ban, the limiter's counts, the growing delay, the cap.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use tracing::{info, warn};

use super::hooks::caught;
use super::io::Filled;
use super::{Connection, Next};
use crate::auth::exchange::{AuthArgs, AuthServer};
use crate::auth::{AuthAbort, AuthResult, IpPrefix, LimitKey, user_fingerprint};
use crate::handler::Handler;
use crate::metrics::{self, AuthOutcome};
use crate::proto::Reply;
use crate::proto::replies;
use crate::stream::Transport;

/// The user name an exchange claimed: as sent (for the log, when asked) and as counted.
struct ClaimedUser {
    raw: Vec<u8>,
    key: Vec<u8>,
}

impl<H: Handler, S: Transport> Connection<H, S> {
    pub(super) async fn auth(&mut self, arg: Option<&str>) -> Next {
        let reply = match self.auth_precheck(arg) {
            Err(reply) => reply,
            // Boxed, like the TLS handshake: rare and large, it would otherwise grow every
            // connection's task while idle.
            Ok(args) => return Box::pin(self.run_auth(args)).await,
        };
        self.io.push(&reply);
        Next::Continue
    }

    fn auth_precheck(&self, arg: Option<&str>) -> Result<AuthArgs, Reply> {
        let config = &self.shared.config;
        if !self.phase.hello_done() {
            return Err(replies::SEND_EHLO_FIRST);
        }
        if !self.session.extended_smtp() {
            return Err(replies::AUTH_NOT_RECOGNIZED);
        }
        if config.auth_require_tls && !self.session.is_tls() {
            return Err(replies::AUTH_ENCRYPTION_REQUIRED);
        }
        if self.session.authenticated() {
            return Err(replies::ALREADY_AUTHENTICATED);
        }
        if self.phase.in_transaction() {
            return Err(replies::AUTH_IN_TRANSACTION);
        }
        let Some(arg) = arg else {
            return Err(replies::AUTH_NOT_ENOUGH_VALUE);
        };
        let mut words = arg.split_whitespace();
        let Some(mechanism) = words.next() else {
            return Err(replies::AUTH_NOT_ENOUGH_VALUE);
        };
        let initial = words.next();
        if words.next().is_some() {
            return Err(replies::AUTH_TOO_MANY_VALUES);
        }
        if self.shared.registry.get(mechanism).is_none() {
            return Err(replies::AUTH_UNRECOGNIZED_TYPE);
        }
        // The line limit leaves room for `AUTH <name> `; the response itself gets the exact one.
        if initial.is_some_and(|ir| ir.len() > config.max_auth_line) {
            return Err(replies::AUTH_LINE_TOO_LONG);
        }
        Ok(AuthArgs::new(mechanism, initial))
    }

    async fn run_auth(&mut self, args: AuthArgs) -> Next {
        let shared = self.shared.clone();
        let mechanism = args.mechanism.clone();
        let limiter = shared.config.auth_limiter.as_ref().map(|l| l.get());
        if let (Some(limiter), Some(client)) = (limiter, self.client_prefix())
            && limiter.is_blocked_boxed(LimitKey::Client(client)).await
        {
            return self
                .auth_failed(&mechanism, None, replies::AUTH_TEMPORARY_FAILURE, false)
                .await;
        }
        let before = self.phase.auth();
        let authenticator = shared.config.authenticator.as_ref().map(|a| a.get());
        let mut server = AuthServer::new(
            &mut self.io,
            &mut self.session,
            &self.envelope,
            authenticator,
            limiter,
        );
        let outcome = AssertUnwindSafe(async {
            if let Some(result) = shared.handler.handle_auth(&mut server, &args).await {
                return Ok(result);
            }
            match shared.registry.get(&mechanism) {
                Some(entry) => entry.run(&shared.handler, &mut server, args).await,
                None => Ok(AuthResult::failure()),
            }
        })
        .catch_unwind()
        .await;
        let user = server.claimed_user().map(|raw| ClaimedUser {
            raw: raw.to_vec(),
            key: server.limit_key(raw).into_owned(),
        });
        let aborted = server.finish();
        self.phase.restore(before);
        let (result, abort) = match caught("auth", outcome) {
            Ok(Ok(result)) => (result, aborted),
            Ok(Err(returned)) => (AuthResult::failure(), aborted.or(Some(returned))),
            Err(error) => {
                let reply = self.exception_reply(&error).await;
                (AuthResult::failure_with(reply), aborted)
            }
        };
        match abort {
            Some(AuthAbort::Disconnected) => {
                metrics::auth_attempt(&mechanism, AuthOutcome::Aborted);
                match self.io.take_auth_interruption() {
                    Some(Filled::Timeout) => self.timed_out(),
                    Some(Filled::Shutdown) => self.shutting_down(),
                    _ => {}
                }
                return Next::Close;
            }
            Some(AuthAbort::Blocked) => {
                return self
                    .auth_failed(&mechanism, user, replies::AUTH_TEMPORARY_FAILURE, false)
                    .await;
            }
            Some(abort) => {
                info!(mechanism = %mechanism, "AUTH aborted");
                metrics::auth_attempt(&mechanism, AuthOutcome::Aborted);
                let reply = abort
                    .reply()
                    .unwrap_or_else(AuthResult::default_failure_reply);
                return self.push_final(&reply);
            }
            None => {}
        }
        let reply = result.final_reply();
        if result.success {
            info!(mechanism = %mechanism, "AUTH succeeded");
            metrics::auth_attempt(&mechanism, AuthOutcome::Success);
            self.session.authenticate(&mechanism, result.auth_data);
            return self.push_final(&reply);
        }
        if result.handled {
            info!(mechanism = %mechanism, "AUTH failed (handled by the mechanism)");
            let outcome = match reply.code() {
                400..=499 => AuthOutcome::Temporary,
                _ => AuthOutcome::Failure,
            };
            metrics::auth_attempt(&mechanism, outcome);
            return self.push_final(&reply);
        }
        self.auth_failed(&mechanism, user, reply, true).await
    }

    /// Sends the exchange's final reply; a `421` closes the connection, as everywhere.
    fn push_final(&mut self, reply: &Reply) -> Next {
        self.io.push(reply);
        if reply.closes_connection() {
            Next::Close
        } else {
            Next::Continue
        }
    }

    /// The client's network prefix, as the limiter and the per-address cap count it.
    fn client_prefix(&self) -> Option<IpPrefix> {
        let ip = self.session.peer().addr()?.ip();
        Some(self.shared.config.client_prefixes.prefix_of(ip))
    }

    /// Logs a failed AUTH (one line for fail2ban: peer address, its counted prefix, mechanism,
    /// user), counts it unless it was refused by the limiter, waits the growing failure delay,
    /// and replies.
    async fn auth_failed(
        &mut self,
        mechanism: &str,
        user: Option<ClaimedUser>,
        reply: Reply,
        count: bool,
    ) -> Next {
        self.auth_failures += 1;
        if count {
            metrics::auth_attempt(mechanism, AuthOutcome::Failure);
        } else {
            metrics::auth_blocked();
        }
        let config = &self.shared.config;
        let ip = self.session.peer().addr().map(|a| a.ip());
        let client = self.client_prefix();
        let peer_ip = ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        let client_field = client.map_or_else(|| "-".to_owned(), |c| c.to_string());
        let user_field = match &user {
            None => "-".to_owned(),
            Some(user) if config.log_auth_usernames => user
                .raw
                .iter()
                .take(64)
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
                .collect(),
            // Of the normal form, so that the log groups the spellings the limiter groups.
            Some(user) => user_fingerprint(&user.key),
        };
        warn!(
            target: "smtpd::auth",
            peer_ip = %peer_ip,
            client = %client_field,
            mechanism = %mechanism,
            user = %user_field,
            failures = self.auth_failures,
            blocked = !count,
            "AUTH failed"
        );
        if let Some(limiter) = config.auth_limiter.clone().filter(|_| count) {
            if let Some(client) = client {
                limiter
                    .get()
                    .record_failure_boxed(LimitKey::Client(client))
                    .await;
            }
            if let Some(user) = &user {
                limiter
                    .get()
                    .record_failure_boxed(LimitKey::User(&user.key))
                    .await;
            }
        }
        let base = config.auth_failure_delay;
        if !base.is_zero() {
            let doublings = (self.auth_failures - 1).min(16);
            let delay = base
                .saturating_mul(1 << doublings)
                .min(config.auth_failure_delay_max);
            tokio::time::sleep(delay).await;
        }
        // The cap's 421 replaces the failure's own reply: one final reply per AUTH.
        if config
            .max_auth_failures
            .is_some_and(|max| self.auth_failures >= max)
        {
            self.io.push(&replies::AUTH_TOO_MANY_FAILURES);
            metrics::auth_connection_closed();
            return Next::Close;
        }
        self.push_final(&reply)
    }
}

/// The AUTH line as logged: the initial response, which may carry a password, is masked.
pub(super) fn sanitize_auth(verb: &str, arg: Option<&str>) -> String {
    match arg.map(|a| a.split_whitespace().collect::<Vec<_>>()) {
        None => verb.to_owned(),
        Some(words) if words.len() <= 1 => format!("{verb} {}", words.first().unwrap_or(&"")),
        Some(words) => format!("{verb} {} ********", words[0]),
    }
}
