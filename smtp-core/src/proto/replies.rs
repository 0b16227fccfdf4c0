//! Every fixed reply the engine sends, in one place, so that texts and enhanced codes cannot
//! drift apart between the engine, its tests and the documentation.
//!
//! The texts are aiosmtpd's where aiosmtpd has the reply (clients and tests compare whole lines);
//! the enhanced codes are in the text where aiosmtpd writes one, else the engine adds them when
//! ENHANCEDSTATUSCODES is on ([`super::enhanced_code`]). Replies that echo client text are
//! functions that cut the echo so the line stays within 512 octets even after that.

use super::reply::{MAX_LINE, cut};
use super::{Reply, Verb};

/// Room for the enhanced code the engine may put in front of a text (`X.YYY.ZZZ `).
const ENHANCED_CODE_ROOM: usize = 10;

/// The longest text a catalogue reply has: a line less `NNN `, CRLF and an enhanced code.
pub const MAX_TEXT: usize = MAX_LINE - 4 - 2 - ENHANCED_CODE_ROOM;

/// `before`, as much of `echoed` as fits, and `after`; `echoed` is client text (or a
/// configured name) of any length.
fn echo(code: u16, before: &str, echoed: &str, after: &str) -> Reply {
    let room = MAX_TEXT.saturating_sub(before.len() + after.len());
    Reply::new(code, format!("{before}{}{after}", cut(echoed, room)))
}

// Command lines.

/// An empty line, or a verb that is not ASCII.
pub const BAD_SYNTAX: Reply = Reply::fixed(500, "Error: bad syntax");
/// A non-ASCII argument while SMTPUTF8 is off.
pub const STRICT_ASCII: Reply = Reply::fixed(500, "Error: strict ASCII mode");
/// A command line over its limit.
pub const LINE_TOO_LONG: Reply = Reply::fixed(500, "Command line too long");
/// The fifth unknown command; the connection closes.
pub const TOO_MANY_UNRECOGNIZED: Reply =
    Reply::fixed(502, "5.5.1 Too many unrecognized commands, goodbye.");
/// A command other than NOOP, EHLO, STARTTLS, QUIT before STARTTLS when TLS is required.
pub const STARTTLS_FIRST: Reply = Reply::fixed(530, "Must issue a STARTTLS command first");
/// HELP, VRFY, MAIL, RCPT, DATA before AUTH when AUTH is required.
/// Every command but QUIT after `handle_starttls` refused the handshake (aiosmtpd's text).
pub const LACK_OF_SECURITY: Reply = Reply::fixed(554, "Command refused due to lack of security");
/// `530 5.7.0 Authentication required`.
pub const AUTH_REQUIRED: Reply = Reply::fixed(530, "5.7.0 Authentication required");
/// QUIT's default reply.
pub const BYE: Reply = Reply::fixed(221, "Bye");
/// VRFY's default reply.
pub const CANNOT_VRFY: Reply = Reply::fixed(
    252,
    "Cannot VRFY user, but will accept message and attempt delivery",
);
/// EXPN, which is never offered.
pub const EXPN_NOT_IMPLEMENTED: Reply = Reply::fixed(502, "EXPN not implemented");

/// `500 Error: command "<VERB>" not recognized`, also for HELO and EHLO in LMTP.
pub fn unknown_command(verb: &str) -> Reply {
    echo(500, "Error: command \"", verb, "\" not recognized")
}

/// `421 4.7.0 <VERB> sent too many times`: the command's call limit is spent; the connection
/// closes.
pub fn sent_too_many_times(verb: &str) -> Reply {
    echo(421, "4.7.0 ", verb, " sent too many times")
}

/// `501 Syntax: …` for `verb`; MAIL and RCPT name their parameters after EHLO (`extended`).
pub fn syntax(verb: Verb, extended: bool) -> Reply {
    let params = if extended {
        " [SP <mail-parameters>]"
    } else {
        ""
    };
    match verb {
        Verb::Mail => Reply::new(501, format!("Syntax: MAIL FROM: <address>{params}")),
        Verb::Rcpt => Reply::new(501, format!("Syntax: RCPT TO: <address>{params}")),
        _ => Reply::new(501, format!("Syntax: {}", syntax_of(verb).unwrap_or(""))),
    }
}

/// The syntax HELP shows for `verb`, or `None` for a verb HELP does not describe.
pub fn syntax_of(verb: Verb) -> Option<&'static str> {
    Some(match verb {
        Verb::Auth => "AUTH <mechanism>",
        Verb::Data => "DATA",
        Verb::Ehlo => "EHLO hostname",
        Verb::Helo => "HELO hostname",
        Verb::Help => "HELP [command]",
        Verb::Mail => "MAIL FROM: <address>",
        Verb::Noop => "NOOP [ignored]",
        Verb::Quit => "QUIT",
        Verb::Rcpt => "RCPT TO: <address>",
        Verb::Rset => "RSET",
        Verb::StartTls => "STARTTLS",
        Verb::Vrfy => "VRFY <address>",
        Verb::Lhlo => "LHLO hostname",
        Verb::Bdat => "BDAT <chunk-size> [LAST]",
        _ => return None,
    })
}

/// HELP's list of commands: `250` for a bare HELP, `501` for an unknown topic.
pub fn supported_commands(code: u16, lmtp: bool, tls: bool) -> Reply {
    let hello = if lmtp { "HELP LHLO" } else { "EHLO HELO HELP" };
    let starttls = if tls { " STARTTLS" } else { "" };
    Reply::new(
        code,
        format!("Supported commands: AUTH DATA {hello} MAIL NOOP QUIT RCPT RSET{starttls} VRFY"),
    )
}

/// `502 Could not VRFY <argument>`.
pub fn could_not_vrfy(arg: &str) -> Reply {
    echo(502, "Could not VRFY ", arg, "")
}

/// `500 Error: (panic) <message>`: a hook panicked and the handler has no better reply.
pub fn hook_panicked(message: &str) -> Reply {
    echo(500, "Error: (panic) ", message, "")
}

// The connection.

/// `220 <hostname> <ident>`.
pub fn greeting(hostname: &str, ident: &str) -> Reply {
    echo(220, "", &format!("{hostname} {ident}"), "")
}

/// `421 4.4.2 <hostname> Error: timeout exceeded`: the idle timeout closes the connection.
pub fn timeout_exceeded(hostname: &str) -> Reply {
    echo(421, "4.4.2 ", hostname, " Error: timeout exceeded")
}

/// `421 4.4.2 <hostname> Error: too slow`: DATA or BDAT under the minimum data rate.
pub fn too_slow(hostname: &str) -> Reply {
    echo(421, "4.4.2 ", hostname, " Error: too slow")
}

/// `421 4.3.2 <hostname> Service shutting down`.
pub fn shutting_down(hostname: &str) -> Reply {
    echo(421, "4.3.2 ", hostname, " Service shutting down")
}

// The transaction.

/// MAIL, RCPT, DATA or BDAT before HELO/EHLO.
pub const SEND_HELO_FIRST: Reply = Reply::fixed(503, "Error: send HELO first");
/// MAIL inside a transaction.
pub const NESTED_MAIL: Reply = Reply::fixed(503, "Error: nested MAIL command");
/// RCPT before MAIL.
pub const NEED_MAIL: Reply = Reply::fixed(503, "Error: need MAIL command");
/// DATA or BDAT before a recipient.
pub const NEED_RCPT: Reply = Reply::fixed(503, "Error: need RCPT command");
/// An address that does not parse, or whose local part is over the configured limit.
pub const MALFORMED_ADDRESS: Reply = Reply::fixed(553, "5.1.3 Error: malformed address");
/// `BODY=` other than 7BIT and 8BITMIME (CHUNKING off).
pub const BODY_7BIT_8BITMIME: Reply =
    Reply::fixed(501, "Error: BODY can only be one of 7BIT, 8BITMIME");
/// `BODY=` other than 7BIT, 8BITMIME and BINARYMIME (CHUNKING on).
pub const BODY_WITH_BINARYMIME: Reply = Reply::fixed(
    501,
    "Error: BODY can only be one of 7BIT, 8BITMIME, BINARYMIME",
);
/// `SMTPUTF8=…`.
pub const SMTPUTF8_TAKES_NO_ARGUMENTS: Reply =
    Reply::fixed(501, "Error: SMTPUTF8 takes no arguments");
/// `SMTPUTF8` while SMTPUTF8 is not offered.
pub const SMTPUTF8_DISABLED: Reply = Reply::fixed(501, "Error: SMTPUTF8 disabled");
/// `SIZE=` over the data size limit.
pub const SIZE_EXCEEDS_LIMIT: Reply = Reply::fixed(
    552,
    "Error: message size exceeds fixed maximum message size",
);
/// A well-formed MAIL parameter the server does not offer.
pub const MAIL_PARAMS_UNKNOWN: Reply = Reply::fixed(
    555,
    "MAIL FROM parameters not recognized or not implemented",
);
/// A well-formed RCPT parameter the server does not offer.
pub const RCPT_PARAMS_UNKNOWN: Reply =
    Reply::fixed(555, "RCPT TO parameters not recognized or not implemented");
/// RCPT over `max_recipients` (RFC 5321 §4.5.3.1.8).
pub const TOO_MANY_RECIPIENTS: Reply = Reply::fixed(452, "4.5.3 Too many recipients");

/// `501 5.5.4 <text>`: a DSN parameter that does not parse ([`super::params::DsnError`]).
pub fn dsn_error(text: &str) -> Reply {
    echo(501, "5.5.4 ", text, "")
}

/// A MAIL or RCPT whose argument is not UTF-8 while SMTPUTF8 is on. aiosmtpd would record
/// the address with surrogate escapes; an address is kept as a Rust `String`, so it is refused
/// as bad address syntax: X.1.7 for a sender, X.1.3 for a recipient (RFC 3463 §3.2). X.6.7 is
/// not it: it says non-ASCII addresses are not permitted, which they are.
pub fn address_not_utf8(verb: Verb) -> Reply {
    if verb == Verb::Mail {
        Reply::fixed(553, "5.1.7 Error: address is not valid UTF-8")
    } else {
        Reply::fixed(553, "5.1.3 Error: address is not valid UTF-8")
    }
}

// DATA and BDAT.

/// DATA accepted: the client sends the message.
pub const START_DATA: Reply = Reply::fixed(354, "End data with <CR><LF>.<CR><LF>");
/// A DATA line over 1000 octets, reported after the final dot.
pub const DATA_LINE_TOO_LONG: Reply = Reply::fixed(500, "Line too long (see RFC5321 4.5.3.1.6)");
/// A message over the data size limit.
pub const TOO_MUCH_DATA: Reply = Reply::fixed(552, "Error: Too much mail data");
/// The body sink failed.
pub const CANNOT_STORE: Reply = Reply::fixed(451, "4.3.0 Error: cannot store the message");
/// The queue (JetStream) did not take the message in time; the client retries later.
pub const QUEUE_UNAVAILABLE: Reply =
    Reply::fixed(451, "4.3.0 Error: queue unavailable, try again later");

/// `250 2.0.0 OK queued as <id>`: the queue acknowledged the message.
pub fn queued_as(id: &str) -> Reply {
    echo(250, "2.0.0 OK queued as ", id, "")
}
/// RCPT while a BDAT transfer is in progress (RFC 3030 §3).
pub const BDAT_IN_PROGRESS: Reply = Reply::fixed(503, "5.5.1 Error: BDAT transfer in progress");
/// DATA while a BDAT transfer is in progress (RFC 3030 §3).
pub const DATA_DURING_BDAT: Reply =
    Reply::fixed(503, "5.5.1 Error: DATA not allowed during a BDAT transfer");
/// DATA after `BODY=BINARYMIME` (RFC 3030 §3).
pub const BINARYMIME_REQUIRES_BDAT: Reply =
    Reply::fixed(503, "5.5.1 Error: BODY=BINARYMIME requires BDAT");

/// `250 2.0.0 <n> octets received`: a BDAT chunk that is not the last.
pub fn octets_received(size: usize) -> Reply {
    Reply::new(250, format!("2.0.0 {size} octets received"))
}

// STARTTLS.

/// STARTTLS accepted: the handshake follows.
pub const READY_TO_START_TLS: Reply = Reply::fixed(220, "Ready to start TLS");
/// STARTTLS without a TLS configuration.
pub const TLS_NOT_AVAILABLE: Reply = Reply::fixed(454, "TLS not available");
/// STARTTLS inside TLS.
pub const TLS_ALREADY_ACTIVE: Reply = Reply::fixed(503, "5.5.1 Error: TLS already active");

// AUTH (aiosmtpd's texts, `aiosmtpd_auth_replies.md`).

/// AUTH before EHLO.
pub const SEND_EHLO_FIRST: Reply = Reply::fixed(503, "Error: send EHLO first");
/// AUTH after HELO: AUTH is an ESMTP command.
pub const AUTH_NOT_RECOGNIZED: Reply = Reply::fixed(500, "Error: command 'AUTH' not recognized");
/// AUTH before TLS when AUTH requires TLS.
pub const AUTH_ENCRYPTION_REQUIRED: Reply = Reply::fixed(
    538,
    "5.7.11 Encryption required for requested authentication mechanism",
);
/// A second successful AUTH.
pub const ALREADY_AUTHENTICATED: Reply = Reply::fixed(503, "Already authenticated");
/// AUTH (RFC 4954 §4) or XCLIENT inside a transaction.
pub const AUTH_IN_TRANSACTION: Reply =
    Reply::fixed(503, "5.5.1 Error: MAIL transaction in progress");
/// AUTH without a mechanism.
pub const AUTH_NOT_ENOUGH_VALUE: Reply = Reply::fixed(501, "Not enough value");
/// AUTH with more than a mechanism and an initial response.
pub const AUTH_TOO_MANY_VALUES: Reply = Reply::fixed(501, "Too many values");
/// AUTH with a mechanism that is not offered.
pub const AUTH_UNRECOGNIZED_TYPE: Reply =
    Reply::fixed(504, "5.5.4 Unrecognized authentication type");
/// An AUTH line or response over `auth_line_limit`.
pub const AUTH_LINE_TOO_LONG: Reply =
    Reply::fixed(500, "5.5.6 Authentication Exchange line is too long");
/// AUTH succeeded (the default final reply).
pub const AUTH_SUCCESSFUL: Reply = Reply::fixed(235, "2.7.0 Authentication successful");
/// AUTH failed (the default final reply).
pub const AUTH_INVALID: Reply = Reply::fixed(535, "5.7.8 Authentication credentials invalid");
/// The client cancelled the exchange with `*`.
pub const AUTH_ABORTED: Reply = Reply::fixed(501, "5.7.0 Auth aborted");
/// A response that is not base64.
pub const AUTH_BAD_BASE64: Reply = Reply::fixed(501, "5.5.2 Can't decode base64");
/// The limiter refuses this client or user for now.
pub const AUTH_TEMPORARY_FAILURE: Reply =
    Reply::fixed(454, "4.7.0 Temporary authentication failure");
/// The failure that reaches `max_auth_failures`; the connection closes.
pub const AUTH_TOO_MANY_FAILURES: Reply =
    Reply::fixed(421, "4.7.0 Too many authentication failures");

// XCLIENT and XFORWARD (Postfix's texts).

/// XCLIENT or XFORWARD from a client outside the trusted networks.
pub const INSUFFICIENT_AUTHORIZATION: Reply =
    Reply::fixed(550, "5.7.0 Error: insufficient authorization");
/// XFORWARD accepted.
pub const XFORWARD_OK: Reply = Reply::fixed(250, "2.0.0 Ok");

/// `501 5.5.4 …`: an XCLIENT or XFORWARD argument that does not parse.
pub fn bad_attribute(verb: Verb, error: &super::AttrError) -> Reply {
    use super::AttrError;
    let verb = verb.name();
    match error {
        AttrError::Empty => Reply::new(501, format!("5.5.4 Syntax: {verb} attribute=value...")),
        AttrError::BadName(word) => {
            echo(501, &format!("5.5.4 Bad {verb} attribute name: "), word, "")
        }
        AttrError::BadValue(name, value) => {
            echo(501, &format!("5.5.4 Bad {verb} {name} syntax: "), value, "")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rendered line of each reply, as clients and aiosmtpd's tests see it.
    #[test]
    fn texts() {
        let cases: &[(Reply, &str)] = &[
            (
                unknown_command("FOO"),
                "500 Error: command \"FOO\" not recognized",
            ),
            (
                sent_too_many_times("NOOP"),
                "421 4.7.0 NOOP sent too many times",
            ),
            (
                bad_attribute(Verb::Xclient, &super::super::AttrError::Empty),
                "501 5.5.4 Syntax: XCLIENT attribute=value...",
            ),
            (
                bad_attribute(
                    Verb::Xforward,
                    &super::super::AttrError::BadName("FOO=1".into()),
                ),
                "501 5.5.4 Bad XFORWARD attribute name: FOO=1",
            ),
            (
                bad_attribute(
                    Verb::Xclient,
                    &super::super::AttrError::BadValue("ADDR", "x".into()),
                ),
                "501 5.5.4 Bad XCLIENT ADDR syntax: x",
            ),
            (
                syntax(Verb::Mail, false),
                "501 Syntax: MAIL FROM: <address>",
            ),
            (
                syntax(Verb::Mail, true),
                "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
            ),
            (
                syntax(Verb::Rcpt, true),
                "501 Syntax: RCPT TO: <address> [SP <mail-parameters>]",
            ),
            (syntax(Verb::Rcpt, false), "501 Syntax: RCPT TO: <address>"),
            (syntax(Verb::Quit, true), "501 Syntax: QUIT"),
            (
                syntax(Verb::Bdat, false),
                "501 Syntax: BDAT <chunk-size> [LAST]",
            ),
            (
                supported_commands(250, false, false),
                "250 Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY",
            ),
            (
                supported_commands(501, false, true),
                "501 Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET \
                 STARTTLS VRFY",
            ),
            (
                supported_commands(250, true, false),
                "250 Supported commands: AUTH DATA HELP LHLO MAIL NOOP QUIT RCPT RSET VRFY",
            ),
            (could_not_vrfy("<>"), "502 Could not VRFY <>"),
            (hook_panicked("boom"), "500 Error: (panic) boom"),
            (
                greeting("mx.example", "smtpd 1.0"),
                "220 mx.example smtpd 1.0",
            ),
            (
                timeout_exceeded("mx.example"),
                "421 4.4.2 mx.example Error: timeout exceeded",
            ),
            (
                too_slow("mx.example"),
                "421 4.4.2 mx.example Error: too slow",
            ),
            (
                shutting_down("mx.example"),
                "421 4.3.2 mx.example Service shutting down",
            ),
            (
                dsn_error("Error: duplicate RET parameter"),
                "501 5.5.4 Error: duplicate RET parameter",
            ),
            (
                address_not_utf8(Verb::Mail),
                "553 5.1.7 Error: address is not valid UTF-8",
            ),
            (
                address_not_utf8(Verb::Rcpt),
                "553 5.1.3 Error: address is not valid UTF-8",
            ),
            (octets_received(42), "250 2.0.0 42 octets received"),
            (MALFORMED_ADDRESS, "553 5.1.3 Error: malformed address"),
            (
                TOO_MANY_UNRECOGNIZED,
                "502 5.5.1 Too many unrecognized commands, goodbye.",
            ),
            (AUTH_REQUIRED, "530 5.7.0 Authentication required"),
        ];
        for (reply, line) in cases {
            assert_eq!(reply.to_string(), *line);
        }
    }

    /// Issue 13: an over-long unknown verb was echoed into a 543-octet line.
    #[test]
    fn echoes_fit_in_a_line_even_with_an_enhanced_code() {
        let ascii = "X".repeat(600);
        // `é` is two octets: a cut at an odd offset would split one.
        let utf8 = "\u{e9}".repeat(300);
        let echoes: &[fn(&str) -> Reply] = &[
            unknown_command,
            sent_too_many_times,
            could_not_vrfy,
            hook_panicked,
            dsn_error,
            timeout_exceeded,
            too_slow,
            shutting_down,
            |host| greeting(host, "smtpd"),
            |ident| greeting("mx.example", ident),
        ];
        for echo in echoes {
            for text in [&ascii, &utf8] {
                let reply = echo(text);
                assert_eq!(reply.lines().count(), 1);
                let enhanced = reply.with_enhanced_code("5.255.255");
                for reply in [&reply, &enhanced] {
                    let wire = reply.to_bytes();
                    assert!(wire.len() <= MAX_LINE, "{} octets: {reply:?}", wire.len());
                    assert!(wire.len() >= MAX_LINE - 12, "cut too short: {reply:?}");
                }
            }
        }
        let verb = unknown_command(&ascii).to_string();
        assert!(verb.starts_with("500 Error: command \"XXX"), "{verb}");
        assert!(verb.ends_with("XXX\" not recognized"), "{verb}");
    }
}
