//! The DATA phase: framing, dot-unstuffing, SMTP smuggling, pipelining, and the built-in
//! `Mailbox` and `Debugging` handlers that store what arrives.

use std::time::Duration;

use crate::support::*;
use smtp_core::handlers::{Debugging, Mailbox};

#[tokio::test]
async fn a_message_arrives_byte_for_byte() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let me = c.local_addr();
    let body = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nline one\r\n\r\n\tindented\r\nlast line\r\n";
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com", "c@example.com"], body)
            .await,
        ["250 OK"]
    );
    let messages = messages.lock().unwrap();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.content, body);
    assert_eq!(m.mail_from, "a@example.com");
    assert_eq!(m.rcpt_tos, ["b@example.com", "c@example.com"]);
    assert_eq!(m.peer.addr(), Some(me));
    assert_eq!(m.login, None);
}

#[tokio::test]
async fn an_empty_message_is_accepted() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], b"").await,
        ["250 OK"]
    );
    assert_eq!(messages.lock().unwrap()[0].content, b"");
}

#[tokio::test]
async fn one_leading_dot_is_removed_per_line() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let sent = b"..starts with a dot\r\n..\r\n...\r\nmiddle . dot\r\n.x\r\n..\r\n";
    let kept = b".starts with a dot\r\n.\r\n..\r\nmiddle . dot\r\nx\r\n.\r\n";
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], sent).await,
        ["250 OK"]
    );
    assert_eq!(messages.lock().unwrap()[0].content, kept);
}

#[tokio::test]
async fn eight_bit_and_binary_bytes_are_kept() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let mut body: Vec<u8> = b"Subject: bytes\r\n\r\n".to_vec();
    body.extend((0u8..=255).filter(|b| *b != b'\r' && *b != b'\n'));
    body.extend_from_slice("\r\nGrüße, 日本\r\n".as_bytes());
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], &body).await,
        ["250 OK"]
    );
    assert_eq!(messages.lock().unwrap()[0].content, body);
}

/// CVE-2023-51766 / aiosmtpd CVE-2024-27305: only `CRLF.CRLF` ends the data. A server that
/// also ends it at `LF.LF` (or the like) lets a sender smuggle a second message past the
/// relay that accepted the first.
#[tokio::test]
async fn smuggled_end_markers_stay_in_the_message() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let smuggled = "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n";
    let cases: &[(&str, &str)] = &[
        ("\n.\n", "\n.\n"),
        ("\r.\r", "\r.\r"),
        ("\n.\r\n", "\n.\r\n"),
        // The dot starts a line, so it is unstuffed; `\r\r\n` is not the end.
        ("\r\n.\r\r\n", "\r\n\r\r\n"),
        ("\r\n.\n", "\r\n\n"),
        ("\r\n.\r", "\r\n\r"),
    ];
    for (i, (marker, kept)) in cases.iter().enumerate() {
        let sent = format!("Subject: case {i}\r\n\r\nbefore{marker}{smuggled}");
        let reply = c
            .deliver("a@example.com", &["b@example.com"], sent.as_bytes())
            .await;
        assert_eq!(reply, ["250 OK"], "marker {marker:?}");
        let expected = format!("Subject: case {i}\r\n\r\nbefore{kept}{smuggled}");
        let messages = messages.lock().unwrap();
        assert_eq!(messages.len(), i + 1, "marker {marker:?} split the message");
        assert_eq!(
            String::from_utf8_lossy(&messages[i].content),
            expected,
            "marker {marker:?}"
        );
        assert_eq!(messages[i].mail_from, "a@example.com");
        assert_eq!(messages[i].rcpt_tos, ["b@example.com"]);
    }
    // Nothing the "smuggled" lines said took effect.
    c.expect("RCPT TO:<x@example.com>", "503 Error: need MAIL command")
        .await;
}

#[tokio::test]
async fn the_end_marker_may_arrive_in_pieces() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.begin_data("a@example.com", &["b@example.com"]).await;
    for piece in [
        &b"Subject: pieces\r\n\r\nbody"[..],
        b"\r",
        b"\n",
        b".",
        b".dot\r\n",
        b".",
        b"\r",
        b"\n",
    ] {
        c.send(piece).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.reply().await, ["250 OK"]);
    assert_eq!(
        messages.lock().unwrap()[0].content,
        b"Subject: pieces\r\n\r\nbody\r\n.dot\r\n"
    );
}

#[tokio::test]
async fn a_large_message_arrives_intact() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let mut body = Vec::new();
    let mut i = 0u64;
    while body.len() < 8 * 1024 * 1024 {
        body.extend_from_slice(
            format!("{i:08} The quick brown fox jumps over the lazy dog.\r\n").as_bytes(),
        );
        i += 1;
    }
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], &body).await,
        ["250 OK"]
    );
    let messages = messages.lock().unwrap();
    assert_eq!(messages[0].content.len(), body.len());
    assert!(messages[0].content == body);
}

#[tokio::test]
async fn pipelined_commands_get_their_replies_in_order_in_one_write() {
    let server = start(smtp_core::handlers::Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nNOOP\r\nDATA\r\n")
        .await;
    // All replies were buffered and flushed together (RFC 2920): one read gets them all.
    let mut got = c.read_once().await;
    // Tolerate a split only if the network split it, never a reordering.
    while !got.ends_with(b"354 End data with <CR><LF>.<CR><LF>\r\n") && got.len() < 200 {
        got.extend(c.read_once().await);
    }
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "250 OK\r\n250 OK\r\n250 OK\r\n250 OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    c.send(b"hi\r\n.\r\n").await;
    assert_eq!(c.reply().await, ["250 OK"]);
}

#[tokio::test]
async fn pipelined_replies_arrive_in_a_single_read() {
    let server = start(smtp_core::handlers::Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let mut batch = String::new();
    for i in 0..50 {
        batch.push_str(&format!("NOOP {i}\r\n"));
    }
    c.send(batch.as_bytes()).await;
    let got = c.read_once().await;
    assert_eq!(got, "250 OK\r\n".repeat(50).as_bytes());
}

#[tokio::test]
async fn pipelined_errors_keep_their_place() {
    let server = start(smtp_core::handlers::Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let replies = c
        .pipeline(
            &[
                "RCPT TO:<early@example.com>",
                "MAIL FROM:<a@example.com>",
                "RCPT TO:<broken@>",
                "RCPT TO:<b@example.com>",
                "FOO",
                "RCPT TO:<c@example.com> X-UNKNOWN=1",
                "DATA extra",
                "HELP DATA",
                "RSET",
                "DATA",
            ],
            10,
        )
        .await;
    assert_eq!(
        replies,
        [
            "503 Error: need MAIL command",
            "250 OK",
            "553 5.1.3 Error: malformed address",
            "250 OK",
            "500 Error: command \"FOO\" not recognized",
            "555 RCPT TO parameters not recognized or not implemented",
            "501 Syntax: DATA",
            "250 Syntax: DATA",
            "250 OK",
            "503 Error: need RCPT command",
        ]
    );
}

#[tokio::test]
async fn a_whole_session_in_one_write() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.send(
        b"EHLO client.example\r\n\
          MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
          Subject: one\r\n\r\n..first\r\n.\r\n\
          MAIL FROM:<c@example.com>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n\
          Subject: two\r\n\r\nsecond\r\n.\r\n\
          QUIT\r\n",
    )
    .await;
    assert_eq!(c.reply().await.len(), 8, "the EHLO reply");
    for expected in [
        "250 OK",
        "250 OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 OK",
        "250 OK",
        "250 OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 OK",
        "221 Bye",
    ] {
        assert_eq!(c.reply().await, [expected]);
    }
    c.expect_closed().await;
    let messages = messages.lock().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].content, b"Subject: one\r\n\r\n.first\r\n");
    assert_eq!(messages[0].rcpt_tos, ["b@example.com"]);
    assert_eq!(messages[1].content, b"Subject: two\r\n\r\nsecond\r\n");
    assert_eq!(messages[1].mail_from, "c@example.com");
}

#[tokio::test]
async fn commands_after_a_refused_message_are_not_part_of_it() {
    let (handler, messages) = collector();
    let cfg = {
        let mut config = config();
        config.max_message_size = Some(20);
        config
    };
    let server = start(handler, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.begin_data("a@example.com", &["b@example.com"]).await;
    c.send(b"this line is longer than twenty bytes\r\n.\r\nNOOP\r\nMAIL FROM:<c@example.com>\r\n")
        .await;
    assert_eq!(c.reply().await, ["552 Error: Too much mail data"]);
    assert_eq!(c.reply().await, ["250 OK"]);
    assert_eq!(c.reply().await, ["250 OK"]);
    assert!(messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn mailbox_delivers_into_a_maildir() {
    let dir = TempDir::new("maildir");
    let maildir = dir.0.join("inbox");
    let server = start(Mailbox::new(&maildir).expect("create Maildir"), config()).await;
    for sub in ["cur", "new", "tmp"] {
        assert!(maildir.join(sub).is_dir(), "{sub} missing");
    }
    let mut c = Client::ehloed(server.local_addr()).await;
    let me = c.local_addr();
    let body = b"Subject: stored\r\n\r\n..dotted\r\nbody\r\n";
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com", "c@example.com"], body)
            .await,
        ["250 OK"]
    );
    assert_eq!(
        c.deliver(
            "d@example.com",
            &["e@example.com"],
            b"Subject: second\r\n\r\nx\r\n"
        )
        .await,
        ["250 OK"]
    );
    let mut stored: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    stored.sort_by_key(|m| m.contains("second"));
    assert_eq!(
        stored,
        [
            format!(
                "X-Peer: {me}\r\nX-MailFrom: a@example.com\r\nX-RcptTo: b@example.com, c@example.com\r\nSubject: stored\r\n\r\n.dotted\r\nbody\r\n"
            ),
            format!(
                "X-Peer: {me}\r\nX-MailFrom: d@example.com\r\nX-RcptTo: e@example.com\r\nSubject: second\r\n\r\nx\r\n"
            ),
        ]
    );
    assert_eq!(std::fs::read_dir(maildir.join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn mailbox_reports_a_failed_delivery() {
    let dir = TempDir::new("maildir-gone");
    let maildir = dir.0.join("inbox");
    let server = start(Mailbox::new(&maildir).expect("create Maildir"), config()).await;
    std::fs::remove_dir_all(&maildir).unwrap();
    let mut c = Client::ehloed(server.local_addr()).await;
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], b"x\r\n")
            .await,
        ["451 4.3.0 Error: cannot store the message"]
    );
    c.expect("NOOP", "250 OK").await;
}

#[tokio::test]
async fn debugging_prints_each_message_with_its_envelope() {
    let out = SharedBuf::default();
    let server = start(Debugging::to_writer(out.clone()), config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let me = c.local_addr();
    c.cmd("MAIL FROM:<a@example.com> SIZE=40 BODY=8BITMIME", 250)
        .await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.cmd("RCPT TO:<c@example.com>", 250).await;
    c.cmd("DATA", 354).await;
    c.send(b"Subject: debug\r\nFrom: a@example.com\r\n\r\nHello\r\n..World\r\n")
        .await;
    c.expect(".", "250 OK").await;
    assert_eq!(
        out.text(),
        format!(
            "---------- MESSAGE FOLLOWS ----------\n\
             mail options: [\"SIZE=40\", \"BODY=8BITMIME\"]\n\
             Subject: debug\n\
             From: a@example.com\n\
             X-Peer: {me}\n\
             X-MailFrom: a@example.com\n\
             X-RcptTo: b@example.com, c@example.com\n\
             \n\
             Hello\n\
             .World\n\
             ------------ END MESSAGE ------------\n"
        )
    );
}

#[tokio::test]
async fn debugging_prints_a_message_without_headers() {
    let out = SharedBuf::default();
    let server = start(Debugging::to_writer(out.clone()), config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let me = c.local_addr();
    c.begin_data("", &["b@example.com"]).await;
    c.send(b"just a line\r\n").await;
    c.expect(".", "250 OK").await;
    assert_eq!(
        out.text(),
        format!(
            "---------- MESSAGE FOLLOWS ----------\n\
             X-Peer: {me}\n\
             X-MailFrom: <>\n\
             X-RcptTo: b@example.com\n\
             \n\
             just a line\n\
             ------------ END MESSAGE ------------\n"
        )
    );
}
