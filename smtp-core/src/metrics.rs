//! Counters and histograms through the `metrics` facade (cargo feature `metrics`): the
//! engine calls these small typed functions, which compile to nothing without the feature.
//!
//! Every label value comes from a fixed set of `&'static str`, never from the client, so a
//! client cannot grow the number of series. The application installs the exporter (the
//! `smtpd` binary: Prometheus) before it starts the server.

#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use std::time::Duration;

use crate::proto::Verb;

/// Runs its body only with the `metrics` feature.
macro_rules! emit {
    ($($body:tt)*) => {
        #[cfg(feature = "metrics")]
        {
            $($body)*
        }
    };
}

/// How a connection arrived: the `listener` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListenerKind {
    Tcp,
    Unix,
    /// [`ServerHandle::serve_stream`](crate::ServerHandle::serve_stream).
    Stream,
}

impl ListenerKind {
    fn name(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Unix => "unix",
            ListenerKind::Stream => "stream",
        }
    }
}

/// Why a connection was closed before its greeting: the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    MaxConnections,
    MaxConnectionsPerIp,
    ProxyUntrusted,
    ProxyInvalid,
    ProxyTimeout,
    /// `handle_proxy` said no.
    ProxyRefused,
}

impl Rejection {
    fn name(self) -> &'static str {
        match self {
            Rejection::MaxConnections => "max_connections",
            Rejection::MaxConnectionsPerIp => "max_connections_per_ip",
            Rejection::ProxyUntrusted => "proxy_untrusted",
            Rejection::ProxyInvalid => "proxy_invalid",
            Rejection::ProxyTimeout => "proxy_timeout",
            Rejection::ProxyRefused => "proxy_refused",
        }
    }
}

/// Where a message was refused: the `stage` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// MAIL FROM refused.
    Mail,
    /// Over `max_message_size`.
    Size,
    /// A DATA line over `max_data_line`.
    LineLength,
    /// A body sink failed.
    Storage,
    /// `handle_data` (or `handle_lmtp_data`) refused it.
    Data,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Mail => "mail",
            Stage::Size => "size",
            Stage::LineLength => "line_length",
            Stage::Storage => "storage",
            Stage::Data => "data",
        }
    }
}

/// How an AUTH exchange ended: the `result` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthOutcome {
    Success,
    Failure,
    /// A 4xx from the mechanism (say, Dovecot unreachable): an outage, not a wrong password,
    /// so it must not look like guessing on a dashboard.
    Temporary,
    /// `*`, bad base64, an over-long line, or the client went away.
    Aborted,
}

impl AuthOutcome {
    fn name(self) -> &'static str {
        match self {
            AuthOutcome::Success => "success",
            AuthOutcome::Failure => "failure",
            AuthOutcome::Temporary => "temporary",
            AuthOutcome::Aborted => "aborted",
        }
    }
}

/// The mechanism names that get a label of their own; any other is `other`.
const MECHANISMS: &[&str] = &[
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-256-PLUS",
    "XOAUTH2",
    "OAUTHBEARER",
    "EXTERNAL",
    "ANONYMOUS",
    "GSSAPI",
    "NTLM",
];

/// The `mechanism` label of a mechanism name.
fn mechanism_label(name: &str) -> &'static str {
    MECHANISMS
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or("other")
}

/// The `version` label of a negotiated TLS version.
fn tls_version_label(version: &str) -> &'static str {
    match version {
        "TLSv1.3" => "TLSv1.3",
        "TLSv1.2" => "TLSv1.2",
        _ => "other",
    }
}

/// The `command` label of a verb.
fn command_label(verb: Option<Verb>) -> &'static str {
    match verb {
        None => "none",
        Some(Verb::Unknown) => "unknown",
        Some(verb) => verb.name(),
    }
}

/// The handles of the metrics that move with every command, looked up once: a lookup by name
/// and labels costs more than the increment. Like any handle of the facade, they bind to the
/// recorder installed when they are first used, so install it before the server starts.
#[cfg(feature = "metrics")]
mod hot {
    use std::sync::OnceLock;

    use ::metrics::{Counter, Histogram};

    use crate::proto::Verb;

    /// One slot per verb, `Unknown` (the last variant) included, and one for "no command
    /// yet".
    const SLOTS: usize = Verb::Unknown as usize + 2;

    pub(super) fn slot(verb: Option<Verb>) -> usize {
        let slot = verb.map_or(SLOTS - 1, |verb| verb as usize);
        debug_assert!(slot < SLOTS, "Verb::Unknown must stay the last verb");
        slot.min(SLOTS - 1)
    }

    pub(super) static COMMANDS: [OnceLock<Counter>; SLOTS] = [const { OnceLock::new() }; SLOTS];
    pub(super) static REPLIES: [[OnceLock<Counter>; 4]; SLOTS] =
        [const { [const { OnceLock::new() }; 4] }; SLOTS];
    pub(super) static ACCEPTED: OnceLock<Counter> = OnceLock::new();
    pub(super) static SIZE: OnceLock<Histogram> = OnceLock::new();
    pub(super) static RECIPIENTS: OnceLock<Histogram> = OnceLock::new();
}

/// A connection counted in `smtpd_connections_active` until dropped, when its length goes to
/// `smtpd_session_seconds`.
pub(crate) struct Open {
    #[cfg(feature = "metrics")]
    since: std::time::Instant,
}

impl Open {
    pub(crate) fn new(listener: ListenerKind, implicit_tls: bool) -> Open {
        let _ = (listener, implicit_tls);
        emit! {
            let tls = if implicit_tls { "true" } else { "false" };
            ::metrics::counter!("smtpd_connections_total", "listener" => listener.name(), "tls" => tls)
                .increment(1);
            ::metrics::gauge!("smtpd_connections_active").increment(1.0);
        }
        Open {
            #[cfg(feature = "metrics")]
            since: std::time::Instant::now(),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        emit! {
            ::metrics::gauge!("smtpd_connections_active").decrement(1.0);
            ::metrics::histogram!("smtpd_session_seconds").record(self.since.elapsed().as_secs_f64());
        }
    }
}

pub(crate) fn connection_rejected(reason: Rejection) {
    let _ = reason;
    emit! {
        ::metrics::counter!("smtpd_connections_rejected_total", "reason" => reason.name()).increment(1);
    }
}

pub(crate) fn command(verb: Verb) {
    let _ = verb;
    emit! {
        hot::COMMANDS[hot::slot(Some(verb))]
            .get_or_init(|| {
                ::metrics::counter!("smtpd_commands_total", "command" => command_label(Some(verb)))
            })
            .increment(1);
    }
}

/// A reply to `verb` (`None`: the greeting, or a reply before any command).
pub(crate) fn reply(verb: Option<Verb>, code: u16) {
    let _ = (verb, code);
    emit! {
        const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];
        let class = usize::from(code / 100).clamp(2, 5) - 2;
        hot::REPLIES[hot::slot(verb)][class]
            .get_or_init(|| {
                ::metrics::counter!(
                    "smtpd_replies_total",
                    "command" => command_label(verb),
                    "class" => CLASSES[class]
                )
            })
            .increment(1);
    }
}

pub(crate) fn message_accepted(size: usize, recipients: usize) {
    let _ = (size, recipients);
    emit! {
        hot::ACCEPTED
            .get_or_init(|| ::metrics::counter!("smtpd_messages_accepted_total"))
            .increment(1);
        hot::SIZE
            .get_or_init(|| ::metrics::histogram!("smtpd_message_size_bytes"))
            .record(size as f64);
        hot::RECIPIENTS
            .get_or_init(|| ::metrics::histogram!("smtpd_message_recipients"))
            .record(recipients as f64);
    }
}

pub(crate) fn message_rejected(stage: Stage) {
    let _ = stage;
    emit! {
        ::metrics::counter!("smtpd_messages_rejected_total", "stage" => stage.name()).increment(1);
    }
}

pub(crate) fn auth_attempt(mechanism: &str, outcome: AuthOutcome) {
    let _ = (mechanism, outcome);
    emit! {
        ::metrics::counter!(
            "smtpd_auth_attempts_total",
            "mechanism" => mechanism_label(mechanism),
            "result" => outcome.name()
        )
        .increment(1);
    }
}

/// The limiter refused an AUTH.
pub(crate) fn auth_blocked() {
    emit! {
        ::metrics::counter!("smtpd_auth_blocked_total").increment(1);
    }
}

/// `max_auth_failures` closed a connection.
pub(crate) fn auth_connection_closed() {
    emit! {
        ::metrics::counter!("smtpd_auth_connections_closed_total").increment(1);
    }
}

/// A TLS handshake: `version` is `None` when it failed (or timed out).
pub(crate) fn tls_handshake(implicit: bool, version: Option<&str>, took: Duration) {
    let _ = (implicit, version, took);
    emit! {
        let kind = if implicit { "implicit" } else { "starttls" };
        let (result, version) = match version {
            Some(version) => ("success", tls_version_label(version)),
            None => ("failure", "none"),
        };
        ::metrics::counter!(
            "smtpd_tls_handshakes_total",
            "kind" => kind,
            "result" => result,
            "version" => version
        )
        .increment(1);
        ::metrics::histogram!("smtpd_tls_handshake_seconds").record(took.as_secs_f64());
    }
}

/// A transfer slower than `min_data_rate` was cut off.
pub(crate) fn data_rate_cutoff() {
    emit! {
        ::metrics::counter!("smtpd_data_rate_cutoffs_total").increment(1);
    }
}

/// The idle timeout closed a session in `phase`.
pub(crate) fn timeout(phase: &'static str) {
    let _ = phase;
    emit! {
        ::metrics::counter!("smtpd_timeouts_total", "phase" => phase).increment(1);
    }
}

/// Describes every metric (help text and unit) to the installed recorder; the server calls it
/// once when it starts, so that an exporter lists them all before they first move.
pub(crate) fn describe() {
    emit! {
        use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_counter!("smtpd_connections_total", "Connections accepted, by listener kind and implicit TLS");
        describe_gauge!("smtpd_connections_active", "Connections open now");
        describe_counter!("smtpd_connections_rejected_total", "Connections closed before the greeting, by reason");
        describe_counter!("smtpd_commands_total", "Commands received, by verb");
        describe_counter!("smtpd_replies_total", "Replies sent, by the command answered and reply class");
        describe_counter!("smtpd_messages_accepted_total", "Messages accepted with a 2xx reply");
        describe_counter!("smtpd_messages_rejected_total", "Messages refused, by stage");
        describe_histogram!("smtpd_message_size_bytes", Unit::Bytes, "Size of accepted messages");
        describe_histogram!("smtpd_message_recipients", "Recipients of accepted messages");
        describe_counter!("smtpd_auth_attempts_total", "AUTH exchanges, by mechanism and result");
        describe_counter!("smtpd_auth_blocked_total", "AUTH commands refused by the failure limiter");
        describe_counter!("smtpd_auth_connections_closed_total", "Connections closed after max_auth_failures");
        describe_counter!("smtpd_tls_handshakes_total", "TLS handshakes, by kind, result and version");
        describe_histogram!("smtpd_tls_handshake_seconds", Unit::Seconds, "Duration of TLS handshakes");
        describe_histogram!("smtpd_session_seconds", Unit::Seconds, "Duration of connections");
        describe_counter!("smtpd_data_rate_cutoffs_total", "Transfers cut off below min_data_rate");
        describe_counter!("smtpd_timeouts_total", "Sessions closed by the idle timeout, by phase");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_fixed_sets() {
        let table: &[(&str, &str)] = &[
            ("PLAIN", "PLAIN"),
            ("plain", "PLAIN"),
            ("scram-sha-256-plus", "SCRAM-SHA-256-PLUS"),
            ("X-MY-OWN", "other"),
            ("", "other"),
        ];
        for &(name, label) in table {
            assert_eq!(mechanism_label(name), label, "{name}");
        }
        assert_eq!(tls_version_label("TLSv1.3"), "TLSv1.3");
        assert_eq!(tls_version_label("SSLv3"), "other");
        assert_eq!(command_label(Some(Verb::Unknown)), "unknown");
        assert_eq!(command_label(Some(Verb::StartTls)), "STARTTLS");
        assert_eq!(command_label(None), "none");
    }
}
