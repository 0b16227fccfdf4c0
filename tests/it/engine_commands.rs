//! Every command's success and error replies, their check order, the envelope lifecycle, and
//! what handler hooks see and decide. Replies are aiosmtpd's, line for line.

use std::sync::{Arc, Mutex};

use crate::support::*;
use smtp_core::handler::defaults;
use smtp_core::handlers::Sink;
use smtp_core::{Envelope, Handler, Reply, Session};

const SUPPORTED: &str =
    "Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY";

#[tokio::test]
async fn greeting_is_hostname_and_ident() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect_raw(server.local_addr()).await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    let custom = {
        let mut config = config();
        config.hostname = "mx.example.org".into();
        config.ident = "Custom ESMTP ready".into();
        config
    };
    let other = start(Sink, custom).await;
    let mut c = Client::connect_raw(other.local_addr()).await;
    assert_eq!(c.reply().await, ["220 mx.example.org Custom ESMTP ready"]);
}

#[tokio::test]
async fn helo_replies_with_the_server_hostname() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("HELO client.example", "250 test.example").await;
    c.expect("HELO", "501 Syntax: HELO hostname").await;
    c.expect("HELO   ", "501 Syntax: HELO hostname").await;
    // HELO may be repeated.
    c.expect("HELO again.example", "250 test.example").await;
}

#[tokio::test]
async fn ehlo_lists_the_extensions_in_order() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    let reply = c.cmd("EHLO client.example", 250).await;
    assert_eq!(
        reply,
        [
            "250-test.example",
            "250-SIZE 33554432",
            "250-8BITMIME",
            "250-PIPELINING",
            "250-CHUNKING",
            "250-BINARYMIME",
            "250-DSN",
            "250 HELP"
        ]
    );
    c.expect("EHLO", "501 Syntax: EHLO hostname").await;
}

#[tokio::test]
async fn ehlo_follows_the_config() {
    let cfg = {
        let mut config = config();
        config.max_message_size = None;
        config.smtputf8 = true;
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::connect(server.local_addr()).await;
    let reply = c.cmd("EHLO client.example", 250).await;
    assert_eq!(
        reply,
        [
            "250-test.example",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-PIPELINING",
            "250-CHUNKING",
            "250-BINARYMIME",
            "250-DSN",
            "250 HELP"
        ]
    );
    let cfg = {
        let mut config = config();
        config.max_message_size = Some(1234);
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::connect(server.local_addr()).await;
    let reply = c.cmd("EHLO client.example", 250).await;
    assert_eq!(reply[1], "250-SIZE 1234");
}

#[tokio::test]
async fn noop_ignores_its_argument() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("NOOP", "250 OK").await;
    c.expect("NOOP whatever you like", "250 OK").await;
}

#[tokio::test]
async fn quit_says_bye_and_closes() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("QUIT now", "501 Syntax: QUIT").await;
    c.expect("NOOP", "250 OK").await;
    c.expect("QUIT", "221 Bye").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn rset_needs_no_helo_and_takes_no_argument() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("RSET", "250 OK").await;
    c.expect("RSET everything", "501 Syntax: RSET").await;
}

#[tokio::test]
async fn vrfy_never_verifies() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    let cannot = "252 Cannot VRFY user, but will accept message and attempt delivery";
    // No HELO needed.
    c.expect("VRFY user@example.com", cannot).await;
    c.expect("VRFY <user@example.com>", cannot).await;
    c.expect("VRFY postmaster", cannot).await;
    c.expect("VRFY", "501 Syntax: VRFY <address>").await;
    c.expect("VRFY <user@>", "502 Could not VRFY <user@>").await;
}

#[tokio::test]
async fn expn_is_not_implemented() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("EXPN", "502 EXPN not implemented").await;
    c.expect("EXPN staff", "502 EXPN not implemented").await;
    c.cmd("EHLO client.example", 250).await;
    c.expect("EXPN staff", "502 EXPN not implemented").await;
}

#[tokio::test]
async fn help_lists_commands_and_their_syntax() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("HELP", &format!("250 {SUPPORTED}")).await;
    c.expect("HELP MAIL", "250 Syntax: MAIL FROM: <address>")
        .await;
    c.expect("help rcpt", "250 Syntax: RCPT TO: <address>")
        .await;
    c.expect("HELP NOOP", "250 Syntax: NOOP [ignored]").await;
    c.expect("HELP DATA", "250 Syntax: DATA").await;
    c.expect("HELP QUIT", "250 Syntax: QUIT").await;
    c.expect("HELP VRFY", "250 Syntax: VRFY <address>").await;
    c.expect("HELP EHLO", "250 Syntax: EHLO hostname").await;
    c.expect("HELP HELP", "250 Syntax: HELP [command]").await;
    c.expect("HELP FOO", &format!("501 {SUPPORTED}")).await;
    c.expect("HELP EXPN", &format!("501 {SUPPORTED}")).await;
    // STARTTLS is not offered without a TLS config.
    c.expect("HELP STARTTLS", &format!("501 {SUPPORTED}")).await;
    c.cmd("EHLO client.example", 250).await;
    c.expect(
        "HELP MAIL",
        "250 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
    )
    .await;
    c.expect(
        "HELP RCPT",
        "250 Syntax: RCPT TO: <address> [SP <mail-parameters>]",
    )
    .await;
}

#[tokio::test]
async fn mail_accepts_the_usual_address_forms() {
    let (recorder, log) = Recorder::new();
    let server = start(recorder, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    for line in [
        "MAIL FROM:<alice@example.com>",
        "MAIL FROM: <alice@example.com>",
        "MAIL FROM:alice@example.com",
        "mail from:<alice@example.com>",
        "MAIL FROM:<@relay.example:alice@example.com>",
        "MAIL FROM:<\"alice smith\"@example.com>",
        "MAIL FROM:<>",
    ] {
        c.expect(line, "250 OK").await;
        c.expect("RSET", "250 OK").await;
    }
    let mails: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("mail "))
        .cloned()
        .collect();
    assert_eq!(
        mails,
        [
            "mail alice@example.com []",
            "mail alice@example.com []",
            "mail alice@example.com []",
            "mail alice@example.com []",
            "mail alice@example.com []",
            "mail \"alice smith\"@example.com []",
            "mail <> []",
        ]
    );
}

#[tokio::test]
async fn mail_needs_helo_first() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("MAIL FROM:<a@example.com>", "503 Error: send HELO first")
        .await;
    // The HELO check comes before the syntax check.
    c.expect("MAIL", "503 Error: send HELO first").await;
    c.expect("MAIL FROM:<broken", "503 Error: send HELO first")
        .await;
}

#[tokio::test]
async fn mail_syntax_errors() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("HELO client.example", 250).await;
    let plain = "501 Syntax: MAIL FROM: <address>";
    c.expect("MAIL", plain).await;
    c.expect("MAIL FROM:", plain).await;
    c.expect("MAIL TO:<a@example.com>", plain).await;
    c.expect("MAIL <a@example.com>", plain).await;
    // Parameters need EHLO.
    c.expect("MAIL FROM:<a@example.com> SIZE=100", plain).await;
    c.cmd("EHLO client.example", 250).await;
    let extended = "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]";
    c.expect("MAIL", extended).await;
    c.expect("MAIL FROM:", extended).await;
    c.expect("MAIL FROM:<a@example.com> SIZE=", extended).await;
    c.expect("MAIL FROM:<a@example.com> SIZE=big", extended)
        .await;
    c.expect("MAIL FROM:<a@example.com> X_Y=1", extended).await;
    // None of these started a transaction.
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    // HELO after EHLO leaves extended SMTP again.
    c.cmd("HELO client.example", 250).await;
    c.expect("MAIL", plain).await;
    c.expect("MAIL FROM:<a@example.com> BODY=8BITMIME", plain)
        .await;
}

#[tokio::test]
async fn mail_with_a_malformed_address() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let malformed = "553 5.1.3 Error: malformed address";
    // Addresses both aiosmtpd's parser and ours refuse.
    c.expect("MAIL FROM:<@example.com>", malformed).await;
    c.expect("MAIL FROM:<a@>", malformed).await;
    c.expect("MAIL FROM:<@relay.example>", malformed).await;
    c.expect("MAIL FROM:<a@b@example.com>", malformed).await;
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
}

#[tokio::test]
async fn nested_mail_is_refused_after_the_address_check() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.cmd("HELO client.example", 250).await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    c.expect(
        "MAIL FROM:<b@example.com>",
        "503 Error: nested MAIL command",
    )
    .await;
    // aiosmtpd's order: address, then parameters without EHLO, then the nested check.
    c.expect("MAIL FROM:<b@>", "553 5.1.3 Error: malformed address")
        .await;
    c.expect(
        "MAIL FROM:<b@example.com> SIZE=1",
        "501 Syntax: MAIL FROM: <address>",
    )
    .await;
    c.expect("RSET", "250 OK").await;
    c.expect("MAIL FROM:<b@example.com>", "250 OK").await;
}

#[tokio::test]
async fn mail_parameters() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    for ok in [
        "MAIL FROM:<a@example.com> BODY=7BIT",
        "MAIL FROM:<a@example.com> BODY=8BITMIME",
        "MAIL FROM:<a@example.com> body=8bitmime",
        "MAIL FROM:<a@example.com> SIZE=1000",
        "MAIL FROM:<a@example.com> SIZE=1000 BODY=7BIT",
        "MAIL FROM:<a@example.com>   SIZE=1000",
    ] {
        c.expect(ok, "250 OK").await;
        c.expect("RSET", "250 OK").await;
    }
    // BINARYMIME comes with CHUNKING (tests/chunking.rs).
    c.expect("MAIL FROM:<a@example.com> BODY=BINARYMIME", "250 OK")
        .await;
    c.expect("RSET", "250 OK").await;
    c.expect(
        "MAIL FROM:<a@example.com> BODY=QUANTUM",
        "501 Error: BODY can only be one of 7BIT, 8BITMIME, BINARYMIME",
    )
    .await;
    c.expect(
        "MAIL FROM:<a@example.com> BODY",
        "501 Error: BODY can only be one of 7BIT, 8BITMIME, BINARYMIME",
    )
    .await;
    c.expect(
        "MAIL FROM:<a@example.com> SMTPUTF8",
        "501 Error: SMTPUTF8 disabled",
    )
    .await;
    c.expect(
        "MAIL FROM:<a@example.com> SMTPUTF8=yes",
        "501 Error: SMTPUTF8 takes no arguments",
    )
    .await;
    // RET and ENVID are DSN's (tests/dsn.rs).
    c.expect(
        "MAIL FROM:<a@example.com> X-UNKNOWN=1",
        "555 MAIL FROM parameters not recognized or not implemented",
    )
    .await;
    c.expect(
        "MAIL FROM:<a@example.com> AUTH=<>",
        "555 MAIL FROM parameters not recognized or not implemented",
    )
    .await;
    c.expect(
        "MAIL FROM:<a@example.com> SIZE=99999999999",
        "552 Error: message size exceeds fixed maximum message size",
    )
    .await;
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
}

#[tokio::test]
async fn smtputf8_parameter_and_utf8_addresses_when_enabled() {
    let (recorder, log) = Recorder::new();
    let cfg = {
        let mut config = config();
        config.smtputf8 = true;
        config
    };
    let server = start(recorder, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM:<jörg@exämple.com> SMTPUTF8", "250 OK")
        .await;
    c.expect("RCPT TO:<zoë@example.com>", "250 OK").await;
    c.expect(
        "MAIL FROM:<a@example.com> SMTPUTF8=x",
        "503 Error: nested MAIL command",
    )
    .await;
    c.cmd("DATA", 354).await;
    c.send("Subject: ünïcode\r\n\r\nbody\r\n".as_bytes()).await;
    c.expect(".", "250 OK").await;
    let log = log.lock().unwrap();
    assert!(
        log.contains(&"mail jörg@exämple.com [\"SMTPUTF8\"]".to_owned()),
        "{log:?}"
    );
    assert!(
        log.contains(&"data from=jörg@exämple.com options=[\"SMTPUTF8\"] utf8=true to=[\"zoë@example.com\"] rcpt_options=[[]] content=\"Subject: ünïcode\\r\\n\\r\\nbody\\r\\n\"".to_owned()),
        "{log:?}"
    );
}

#[tokio::test]
async fn non_ascii_is_refused_without_smtputf8() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.send("MAIL FROM:<jörg@example.com>\r\n".as_bytes()).await;
    assert_eq!(c.reply().await, ["500 Error: strict ASCII mode"]);
    c.send("NOOP ü\r\n".as_bytes()).await;
    assert_eq!(c.reply().await, ["500 Error: strict ASCII mode"]);
    c.send("NÖOP\r\n".as_bytes()).await;
    assert_eq!(c.reply().await, ["500 Error: bad syntax"]);
    c.expect("NOOP", "250 OK").await;
}

#[tokio::test]
async fn rcpt_checks_in_order() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("RCPT TO:<b@example.com>", "503 Error: send HELO first")
        .await;
    c.cmd("HELO client.example", 250).await;
    // The need-MAIL check comes before the syntax and address checks.
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    c.expect("RCPT", "503 Error: need MAIL command").await;
    c.expect("RCPT TO:<broken", "503 Error: need MAIL command")
        .await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    c.expect("RCPT", "501 Syntax: RCPT TO: <address>").await;
    c.expect(
        "RCPT FROM:<b@example.com>",
        "501 Syntax: RCPT TO: <address>",
    )
    .await;
    c.expect(
        "RCPT TO:<b@example.com> NOTIFY=NEVER",
        "501 Syntax: RCPT TO: <address>",
    )
    .await;
    c.expect("RCPT TO:<broken@>", "553 5.1.3 Error: malformed address")
        .await;
    c.expect("RCPT TO:<b@example.com>", "250 OK").await;
    c.expect("rcpt to: <c@example.com>", "250 OK").await;
    c.expect("RCPT TO:<Postmaster>", "250 OK").await;
    c.expect("RCPT TO:<>", "250 OK").await;
}

#[tokio::test]
async fn rcpt_parameters_after_ehlo() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    c.expect(
        "RCPT",
        "501 Syntax: RCPT TO: <address> [SP <mail-parameters>]",
    )
    .await;
    // NOTIFY and ORCPT are DSN's (tests/dsn.rs).
    c.expect(
        "RCPT TO:<b@example.com> X-UNKNOWN=1",
        "555 RCPT TO parameters not recognized or not implemented",
    )
    .await;
    c.expect(
        "RCPT TO:<b@example.com> SIZE=10",
        "555 RCPT TO parameters not recognized or not implemented",
    )
    .await;
    c.expect("DATA", "503 Error: need RCPT command").await;
}

#[tokio::test]
async fn data_checks_in_order() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("DATA", "503 Error: send HELO first").await;
    c.cmd("HELO client.example", 250).await;
    c.expect("DATA", "503 Error: need RCPT command").await;
    // The RCPT check comes before the syntax check.
    c.expect("DATA now", "503 Error: need RCPT command").await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    c.expect("DATA", "503 Error: need RCPT command").await;
    c.expect("RCPT TO:<b@example.com>", "250 OK").await;
    c.expect("DATA now", "501 Syntax: DATA").await;
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    c.send(b"Subject: hi\r\n\r\nhello\r\n").await;
    c.expect(".", "250 OK").await;
    c.expect("QUIT", "221 Bye").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn unknown_verbs_get_500_with_the_verb() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("FOO", "500 Error: command \"FOO\" not recognized")
        .await;
    c.expect("bar baz", "500 Error: command \"BAR\" not recognized")
        .await;
    // LHLO is LMTP's, not SMTP's.
    c.expect(
        "LHLO client.example",
        "500 Error: command \"LHLO\" not recognized",
    )
    .await;
    c.expect("NOOP", "250 OK").await;
}

#[tokio::test]
async fn the_fifth_unknown_verb_closes_the_connection() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    // The budget counts all unknown verbs, not consecutive ones.
    for verb in ["ONE", "TWO", "THREE", "FOUR"] {
        c.expect(
            verb,
            &format!("500 Error: command \"{verb}\" not recognized"),
        )
        .await;
        c.expect("NOOP", "250 OK").await;
    }
    c.expect("FIVE", "502 5.5.1 Too many unrecognized commands, goodbye.")
        .await;
    c.expect_closed().await;
}

#[tokio::test]
async fn bogus_limit_is_configurable() {
    let cfg = {
        let mut config = config();
        config.max_unknown_commands = 2;
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("ONE", "500 Error: command \"ONE\" not recognized")
        .await;
    c.expect("TWO", "502 5.5.1 Too many unrecognized commands, goodbye.")
        .await;
    c.expect_closed().await;
}

#[tokio::test]
async fn empty_lines_are_bad_syntax_and_not_bogus() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    for _ in 0..7 {
        c.expect("", "500 Error: bad syntax").await;
    }
    c.expect("NOOP", "250 OK").await;
}

#[tokio::test]
async fn verbs_are_case_insensitive() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    assert_eq!(
        c.cmd("ehlo client.example", 250).await[0],
        "250-test.example"
    );
    c.expect("hElO client.example", "250 test.example").await;
    c.expect("noop", "250 OK").await;
    c.expect("rSeT", "250 OK").await;
    c.expect("mail From:<a@example.com>", "250 OK").await;
    c.expect("rcpt tO:<b@example.com>", "250 OK").await;
    c.expect("data", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    c.send(b"hi\r\n").await;
    c.expect(".", "250 OK").await;
    c.expect(
        "vrfy b@example.com",
        "252 Cannot VRFY user, but will accept message and attempt delivery",
    )
    .await;
    c.expect("help", &format!("250 {SUPPORTED}")).await;
    c.expect("expn x", "502 EXPN not implemented").await;
    c.expect("quit", "221 Bye").await;
    c.expect_closed().await;
    let messages = messages.lock().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].mail_from, "a@example.com");
    assert_eq!(messages[0].rcpt_tos, ["b@example.com"]);
}

#[tokio::test]
async fn command_lines_may_end_in_bare_lf_or_extra_crs() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.send(b"EHLO client.example\n").await;
    assert_eq!(c.reply().await.last().unwrap(), "250 HELP");
    c.send(b"NOOP\r\r\n").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    c.send(b"NOOP\n").await;
    assert_eq!(c.reply().await, ["250 OK"]);
}

#[tokio::test]
async fn starttls_without_tls_config() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("STARTTLS", "454 TLS not available").await;
    c.expect("STARTTLS now", "501 Syntax: STARTTLS").await;
    c.expect("NOOP", "250 OK").await;
}

#[tokio::test]
async fn auth_prechecks_without_tls() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("AUTH PLAIN", "503 Error: send EHLO first").await;
    c.cmd("HELO client.example", 250).await;
    c.expect("AUTH PLAIN", "500 Error: command 'AUTH' not recognized")
        .await;
    c.cmd("EHLO client.example", 250).await;
    c.expect(
        "AUTH PLAIN",
        "538 5.7.11 Encryption required for requested authentication mechanism",
    )
    .await;
}

#[tokio::test]
async fn envelope_is_reset_by_helo_ehlo_rset_and_after_data() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    for reset in ["HELO client.example", "EHLO client.example", "RSET"] {
        c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
        c.expect("RCPT TO:<b@example.com>", "250 OK").await;
        c.cmd(reset, 250).await;
        c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
            .await;
        c.expect("DATA", "503 Error: need RCPT command").await;
        c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
        c.expect("RSET", "250 OK").await;
    }
    c.send_message("a@example.com", &["b@example.com"], "hello\r\n")
        .await;
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    c.expect("DATA", "503 Error: need RCPT command").await;
    // The session survives: no new HELO needed.
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
}

#[tokio::test]
async fn a_refused_helo_does_not_count_as_a_greeting() {
    let server = start(Picky { refuse_helo: true }, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("HELO bad.example", "550 go away").await;
    c.expect("MAIL FROM:<a@example.com>", "503 Error: send HELO first")
        .await;
    c.expect("HELO good.example", "250 test.example").await;
    c.expect("MAIL FROM:<a@example.com>", "250 2.1.0 sender ok")
        .await;
}

// ---- Hooks: what they see and what they decide. ----

/// Logs what every hook sees, and answers with the defaults.
#[derive(Clone)]
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn new() -> (Recorder, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (Recorder { log: log.clone() }, log)
    }

    fn push(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
    }
}

impl Handler for Recorder {
    async fn handle_helo(
        &self,
        session: &mut Session,
        _envelope: &mut Envelope,
        hostname: &str,
    ) -> Reply {
        self.push(format!(
            "helo {hostname} peer={} host_name={:?} server={}",
            session.peer(),
            session.host_name(),
            session.server_hostname()
        ));
        defaults::helo(session)
    }

    async fn handle_ehlo(
        &self,
        session: &mut Session,
        envelope: &mut Envelope,
        hostname: &str,
        responses: Reply,
    ) -> Reply {
        self.push(format!(
            "ehlo {hostname} extended={} in_transaction={} lines={}",
            session.extended_smtp(),
            envelope.in_transaction(),
            responses.lines().count()
        ));
        responses
    }

    async fn handle_mail(
        &self,
        session: &mut Session,
        envelope: &mut Envelope,
        address: &str,
        _options: &smtp_core::MailParams,
    ) -> Reply {
        assert!(session.host_name().is_some());
        // The engine records the sender before the hook runs; a refusal undoes it.
        assert_eq!(envelope.mail_from.as_deref(), Some(address));
        self.push(format!("mail {address} {:?}", envelope.mail_options));
        Reply::ok()
    }

    async fn handle_rcpt(
        &self,
        session: &mut Session,
        envelope: &mut Envelope,
        address: &str,
        options: &smtp_core::RcptParams,
    ) -> Reply {
        // The engine appended the recipient before the hook runs: it is the last one.
        let (current, before) = envelope.recipients.split_last().expect("recorded");
        assert_eq!(current.address, address);
        assert_eq!(current.dsn, options.dsn);
        self.push(format!(
            "rcpt {address} {:?} from={:?} so_far={:?} host={:?}",
            current.params,
            envelope.mail_from,
            before.iter().map(|r| &r.address).collect::<Vec<_>>(),
            session.host_name()
        ));
        Reply::ok()
    }

    async fn handle_data(&self, _session: &mut Session, envelope: &mut Envelope) -> Reply {
        self.push(format!(
            "data from={} options={:?} utf8={} to={:?} rcpt_options={:?} content={:?}",
            envelope.mail_from.as_deref().unwrap_or("-"),
            envelope.mail_options,
            envelope.smtp_utf8,
            envelope.rcpt_tos().collect::<Vec<_>>(),
            envelope
                .recipients
                .iter()
                .map(|r| &r.params)
                .collect::<Vec<_>>(),
            String::from_utf8_lossy(&envelope.content)
        ));
        Reply::ok()
    }

    async fn handle_rset(&self, _session: &mut Session, envelope: &mut Envelope) -> Reply {
        self.push(format!(
            "rset in_transaction={} rcpts={}",
            envelope.in_transaction(),
            envelope.recipients.len()
        ));
        Reply::ok()
    }

    async fn handle_noop(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        arg: Option<&str>,
    ) -> Reply {
        self.push(format!("noop {arg:?}"));
        Reply::ok()
    }

    async fn handle_vrfy(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        address: &str,
    ) -> Reply {
        self.push(format!("vrfy {address}"));
        defaults::vrfy()
    }

    async fn handle_quit(&self, session: &mut Session, _envelope: &mut Envelope) -> Reply {
        self.push(format!("quit host={:?}", session.host_name()));
        defaults::quit()
    }
}

#[tokio::test]
async fn hooks_see_the_session_and_envelope() {
    let (recorder, log) = Recorder::new();
    let server = start(recorder, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    let me = c.local_addr();
    c.cmd("HELO first.example", 250).await;
    c.cmd("EHLO client.example", 250).await;
    c.expect("MAIL FROM:<a@example.com> size=120 Body=8bitmime", "250 OK")
        .await;
    c.expect("RCPT TO:<b@example.com>", "250 OK").await;
    c.expect("RCPT TO:<c@example.com>", "250 OK").await;
    c.cmd("DATA", 354).await;
    c.send(b"Subject: t\r\n\r\nline\r\n").await;
    c.expect(".", "250 OK").await;
    c.expect("NOOP", "250 OK").await;
    c.expect("NOOP  some thing ", "250 OK").await;
    c.cmd("VRFY <d@example.com>", 252).await;
    c.expect("MAIL FROM:<x@example.com>", "250 OK").await;
    c.expect("RCPT TO:<y@example.com>", "250 OK").await;
    c.expect("RSET", "250 OK").await;
    c.expect("QUIT", "221 Bye").await;
    c.expect_closed().await;
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            format!("helo first.example peer={me} host_name=None server=test.example"),
            "ehlo client.example extended=false in_transaction=false lines=8".into(),
            "mail a@example.com [\"SIZE=120\", \"BODY=8BITMIME\"]".into(),
            "rcpt b@example.com [] from=Some(\"a@example.com\") so_far=[] host=Some(\"client.example\")".into(),
            "rcpt c@example.com [] from=Some(\"a@example.com\") so_far=[\"b@example.com\"] host=Some(\"client.example\")".into(),
            "data from=a@example.com options=[\"SIZE=120\", \"BODY=8BITMIME\"] utf8=false to=[\"b@example.com\", \"c@example.com\"] rcpt_options=[[], []] content=\"Subject: t\\r\\n\\r\\nline\\r\\n\"".into(),
            "noop None".into(),
            "noop Some(\"some thing\")".into(),
            "vrfy d@example.com".into(),
            "mail x@example.com []".into(),
            "rcpt y@example.com [] from=Some(\"x@example.com\") so_far=[] host=Some(\"client.example\")".into(),
            "rset in_transaction=false rcpts=0".into(),
            "quit host=Some(\"client.example\")".into(),
        ]
    );
}

/// Decides replies: refuses some recipients, senders, greetings.
#[derive(Default)]
struct Picky {
    refuse_helo: bool,
}

impl Handler for Picky {
    async fn handle_helo(
        &self,
        session: &mut Session,
        _envelope: &mut Envelope,
        hostname: &str,
    ) -> Reply {
        if self.refuse_helo && hostname == "bad.example" {
            return Reply::from("550 go away");
        }
        defaults::helo(session)
    }

    async fn handle_ehlo(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        hostname: &str,
        responses: Reply,
    ) -> Reply {
        let mut lines: Vec<String> = responses
            .lines()
            .filter(|l| !l.starts_with("SIZE"))
            .map(str::to_owned)
            .collect();
        lines[0] = format!("{} greets {hostname}", lines[0]);
        Reply::multiline(250, lines)
    }

    async fn handle_mail(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        address: &str,
        _options: &smtp_core::MailParams,
    ) -> Reply {
        if address.ends_with("@spam.example") {
            return Reply::from("550 5.7.1 sender refused");
        }
        Reply::from("250 2.1.0 sender ok")
    }

    async fn handle_rcpt(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        address: &str,
        _options: &smtp_core::RcptParams,
    ) -> Reply {
        match address {
            "nobody@example.com" => Reply::from("550 5.1.1 no such user"),
            "busy@example.com" => Reply::from("421 4.3.2 try later"),
            _ => Reply::from("250 2.1.5 recipient ok"),
        }
    }

    async fn handle_data(&self, _session: &mut Session, envelope: &mut Envelope) -> Reply {
        Reply::new(
            250,
            format!(
                "2.0.0 queued for {}",
                envelope.rcpt_tos().collect::<Vec<_>>().join(",")
            ),
        )
    }

    async fn handle_rset(&self, _session: &mut Session, _envelope: &mut Envelope) -> Reply {
        Reply::from("250 2.0.0 flushed")
    }

    async fn handle_noop(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        arg: Option<&str>,
    ) -> Reply {
        Reply::new(250, format!("noop {}", arg.unwrap_or("-")))
    }

    async fn handle_vrfy(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        address: &str,
    ) -> Reply {
        Reply::new(250, format!("<{address}>"))
    }

    async fn handle_quit(&self, _session: &mut Session, _envelope: &mut Envelope) -> Reply {
        Reply::from("221 2.0.0 see you")
    }
}

#[tokio::test]
async fn hooks_decide_the_replies() {
    let server = start(Picky::default(), config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    assert_eq!(
        c.cmd("EHLO client.example", 250).await,
        [
            "250-test.example greets client.example",
            "250-8BITMIME",
            "250-PIPELINING",
            "250-CHUNKING",
            "250-BINARYMIME",
            "250-DSN",
            "250 HELP"
        ]
    );
    c.expect("MAIL FROM:<a@spam.example>", "550 5.7.1 sender refused")
        .await;
    // A refused MAIL started nothing.
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    c.expect("MAIL FROM:<a@example.com>", "250 2.1.0 sender ok")
        .await;
    c.expect("RCPT TO:<nobody@example.com>", "550 5.1.1 no such user")
        .await;
    // Only refused recipients so far: DATA has nobody to deliver to.
    c.expect("DATA", "503 Error: need RCPT command").await;
    c.expect("RCPT TO:<b@example.com>", "250 2.1.5 recipient ok")
        .await;
    c.expect("RCPT TO:<nobody@example.com>", "550 5.1.1 no such user")
        .await;
    c.expect("RCPT TO:<c@example.com>", "250 2.1.5 recipient ok")
        .await;
    c.cmd("DATA", 354).await;
    c.send(b"hello\r\n").await;
    c.expect(".", "250 2.0.0 queued for b@example.com,c@example.com")
        .await;
    c.expect("RSET", "250 2.0.0 flushed").await;
    c.expect("NOOP", "250 noop -").await;
    c.expect("NOOP ping", "250 noop ping").await;
    c.expect("VRFY someone@example.com", "250 <someone@example.com>")
        .await;
    c.expect("QUIT", "221 2.0.0 see you").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn a_421_from_a_hook_closes_the_connection() {
    let server = start(Picky::default(), config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.expect("RCPT TO:<busy@example.com>", "421 4.3.2 try later")
        .await;
    c.expect_closed().await;
    // The server is fine.
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("NOOP", "250 noop -").await;
}
