//! Hostile framing: smuggled end-of-data markers arriving in pieces or pipelined with the
//! real one, NUL bytes, and bare CR or LF inside commands.
//!
//! `engine_data.rs` covers each smuggling marker sent in one write
//! (`smuggled_end_markers_stay_in_the_message`); these tests cut the markers across TCP
//! segments and pipeline whole exploit payloads, as the published SMTP smuggling probes do.

use std::time::Duration;

use crate::support::*;

const SMUGGLED: &str = "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n";

/// CVE-2023-51764/51765/51766 (SMTP smuggling): each non-standard end marker, sent one byte
/// per segment, stays in the message; only the real `CRLF.CRLF` ends it, and the smuggled
/// transaction behind the fake marker never becomes a second message.
#[tokio::test]
async fn smuggled_markers_cut_into_single_bytes_stay_in_the_message() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let markers: &[(&str, &str)] = &[
        ("\n.\n", "\n.\n"),
        ("\r.\r", "\r.\r"),
        ("\n.\r\n", "\n.\r\n"),
        ("\r\n.\r\r\n", "\r\n\r\r\n"),
    ];
    for (i, (marker, kept)) in markers.iter().enumerate() {
        c.begin_data("a@example.com", &["b@example.com"]).await;
        c.send(b"before").await;
        for byte in marker.bytes() {
            c.send(&[byte]).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        c.send(SMUGGLED.as_bytes()).await;
        c.expect(".", "250 OK").await;
        let messages = messages.lock().unwrap();
        assert_eq!(messages.len(), i + 1, "marker {marker:?} split the message");
        assert_eq!(
            String::from_utf8_lossy(&messages[i].content),
            format!("before{kept}{SMUGGLED}"),
            "marker {marker:?}"
        );
    }
    server.shutdown().await;
}

/// CVE-2023-51766: the whole exploit in one write — a message with a fake marker, a smuggled
/// transaction, the real end and RSET — gives exactly one message and one reply per real
/// command, in order.
#[tokio::test]
async fn a_pipelined_smuggling_payload_gives_one_message() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    for marker in ["\n.\n", "\r.\r", "\n.\r\n", "\r\n.\r\r\n"] {
        let payload = format!(
            "EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nfirst{marker}{SMUGGLED}\r\n.\r\nRSET\r\n"
        );
        c.send(payload.as_bytes()).await;
        assert_eq!(c.reply().await[0], "250-test.example");
        for expected in ["250 OK", "250 OK", "354 End data with <CR><LF>.<CR><LF>"] {
            assert_eq!(c.reply().await, [expected], "marker {marker:?}");
        }
        assert_eq!(
            c.reply().await,
            ["250 OK"],
            "end of data, marker {marker:?}"
        );
        assert_eq!(c.reply().await, ["250 OK"], "RSET, marker {marker:?}");
    }
    c.expect("QUIT", "221 Bye").await;
    {
        let messages = messages.lock().unwrap();
        assert_eq!(messages.len(), 4, "a smuggled message got through");
        assert!(messages.iter().all(|m| m.mail_from == "a@example.com"));
    }
    server.shutdown().await;
}

/// CVE-2023-51766: a bare LF (or CR) before the dot of the real end does not make it
/// `CRLF.CRLF`: the data goes on, and the next real marker ends it.
#[tokio::test]
async fn a_marker_after_a_bare_line_ending_is_content() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.begin_data("a@example.com", &["b@example.com"]).await;
    c.send(b"line\n.\r\nNOOP\r\nline\r.\r\nNOOP\r\n").await;
    c.expect(".", "250 OK").await;
    assert_eq!(
        messages.lock().unwrap()[0].content,
        b"line\n.\r\nNOOP\r\nline\r.\r\nNOOP\r\n"
    );
    server.shutdown().await;
}

/// Issue 8 (framing): a bare CR does not end a command line, so `NOOP<CR>RSET` is one unknown
/// command — the RSET never runs — and the reply does not echo the CR, which some clients
/// would read as the end of the reply line (regression found by the session fuzz target).
#[tokio::test]
async fn a_bare_cr_inside_a_command_is_neither_a_line_end_nor_echoed() {
    let server = start(smtp_core::handlers::Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.send(b"NOOP\rRSET\r\n").await;
    assert_eq!(
        c.reply().await,
        ["500 Error: command \"NOOP?RSET\" not recognized"]
    );
    // The transaction survived: RSET did not run.
    c.expect(
        "MAIL FROM:<c@example.com>",
        "503 Error: nested MAIL command",
    )
    .await;
    server.shutdown().await;
}

/// Issue 8 (framing): NUL bytes. In a verb they make an unknown command whose echo carries no
/// NUL; in an address they make it malformed; in DATA they are content.
#[tokio::test]
async fn nul_bytes_in_commands_and_data() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.send(b"NO\0OP\r\n").await;
    assert_eq!(
        c.reply().await,
        ["500 Error: command \"NO?OP\" not recognized"]
    );
    c.send(b"NOOP \0\r\n").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    c.send(b"MAIL FROM:<a\0b@example.com>\r\n").await;
    assert_eq!(c.reply().await, ["553 5.1.3 Error: malformed address"]);
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.send(b"RCPT TO:<b@example.com\0>\r\n").await;
    assert_eq!(c.reply().await, ["553 5.1.3 Error: malformed address"]);
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.cmd("DATA", 354).await;
    c.send(b"a\0b\r\n").await;
    c.expect(".", "250 OK").await;
    assert_eq!(messages.lock().unwrap()[0].content, b"a\0b\r\n");
    server.shutdown().await;
}

/// Issue 8 (header injection through an address): control characters inside a domain literal were
/// accepted and would reach `Return-Path`-style headers and logs (regression found by the
/// command fuzz target).
#[tokio::test]
async fn control_characters_in_a_domain_literal_are_refused() {
    let server = start(smtp_core::handlers::Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    for line in [
        &b"MAIL FROM:<a@[127.0.0.1\r]>\r\n"[..],
        b"MAIL FROM:<a@[127.0.0.1\0]>\r\n",
        b"MAIL FROM:<a@[127.0.0.1\x1b]>\r\n",
    ] {
        c.send(line).await;
        assert_eq!(
            c.reply().await,
            ["553 5.1.3 Error: malformed address"],
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    c.expect("MAIL FROM:<a@[127.0.0.1]>", "250 OK").await;
    server.shutdown().await;
}

/// Issue 8 (framing): a bare LF ends a command line (clients that send it still work, as with
/// aiosmtpd), but never the data: `DATA<LF>` then `.<LF>` leaves the server reading data.
#[tokio::test]
async fn a_bare_lf_ends_commands_but_not_data() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.send(b"EHLO client.example\nMAIL FROM:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\n")
        .await;
    assert_eq!(c.reply().await[0], "250-test.example");
    assert_eq!(c.reply().await, ["250 OK"]);
    assert_eq!(c.reply().await, ["250 OK"]);
    assert_eq!(c.reply().await, ["354 End data with <CR><LF>.<CR><LF>"]);
    c.send(b"body\n.\nQUIT\n\r\n").await;
    c.expect(".", "250 OK").await;
    assert_eq!(messages.lock().unwrap()[0].content, b"body\n.\nQUIT\n\r\n");
    server.shutdown().await;
}
