//! CHUNKING and BINARYMIME (RFC 3030): BDAT over real sockets, its error paths, and a
//! delivery from Python's smtplib driving BDAT by hand (no packaged client sends BDAT).

use crate::support::{Client, collector, config, python, start};
use smtp_core::handlers::Sink;

#[tokio::test]
async fn ehlo_offers_chunking_and_binarymime_unless_turned_off() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    let ehlo = c.cmd("EHLO client.example", 250).await;
    assert!(ehlo.contains(&"250-CHUNKING".to_owned()), "{ehlo:?}");
    assert!(ehlo.contains(&"250-BINARYMIME".to_owned()), "{ehlo:?}");
    server.shutdown().await;

    let off = {
        let mut config = config();
        config.chunking = false;
        config
    };
    let server = start(Sink, off).await;
    let mut c = Client::connect(server.local_addr()).await;
    let ehlo = c.cmd("EHLO client.example", 250).await;
    assert!(
        !ehlo
            .iter()
            .any(|l| l.contains("CHUNKING") || l.contains("BINARYMIME"))
    );
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    c.expect("RCPT TO:<b@example.com>", "250 OK").await;
    c.expect("BDAT 1 LAST", "500 Error: command \"BDAT\" not recognized")
        .await;
    c.expect("RSET", "250 OK").await;
    c.expect(
        "MAIL FROM:<a@example.com> BODY=BINARYMIME",
        "501 Error: BODY can only be one of 7BIT, 8BITMIME",
    )
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn chunks_arrive_byte_for_byte_without_dot_unstuffing() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM:<a@example.com> BODY=BINARYMIME", "250 OK")
        .await;
    c.expect("RCPT TO:<b@example.com>", "250 OK").await;
    c.send(b"BDAT 13\r\nSubject: x\r\n\r").await;
    assert_eq!(c.reply().await, ["250 2.0.0 13 octets received"]);
    // Binary content: a lone dot line, NUL, bare CR and LF, and text that looks like commands.
    let second = b"\n.\r\n..\r\n\0\r\x80\xff\nQUIT\r\n";
    c.send(format!("BDAT {} LAST\r\n", second.len()).as_bytes())
        .await;
    c.send(second).await;
    assert_eq!(c.reply().await, ["250 OK"]);
    c.expect("NOOP", "250 OK").await;
    {
        let messages = messages.lock().unwrap();
        let mut expected = b"Subject: x\r\n\r".to_vec();
        expected.extend_from_slice(second);
        assert_eq!(messages[0].content, expected);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bdat_0_last_ends_the_message_and_may_be_the_only_chunk() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.expect("BDAT 0 LAST", "250 OK").await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 5\r\nhello").await;
    assert_eq!(c.reply().await, ["250 2.0.0 5 octets received"]);
    c.expect("BDAT 0", "250 2.0.0 0 octets received").await;
    c.expect("bdat 0 last", "250 OK").await;
    {
        let messages = messages.lock().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].content, b"");
        assert_eq!(messages[1].content, b"hello");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn pipelined_chunks_get_one_reply_each_in_order() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let mut batch = b"MAIL FROM:<a@example.com> BODY=BINARYMIME\r\nRCPT TO:<b@example.com>\r\n\
                      RCPT TO:<c@example.com>\r\n"
        .to_vec();
    for i in 0..10 {
        let chunk = format!("chunk {i}\r\n");
        batch.extend_from_slice(format!("BDAT {}\r\n{chunk}", chunk.len()).as_bytes());
    }
    batch.extend_from_slice(b"BDAT 4 LAST\r\nend\n");
    batch.extend_from_slice(b"MAIL FROM:<d@example.com>\r\nRCPT TO:<e@example.com>\r\n");
    batch.extend_from_slice(b"BDAT 3 LAST\r\nxyzQUIT\r\n");
    c.send(&batch).await;
    let mut replies = Vec::new();
    for _ in 0..18 {
        replies.push(c.reply().await.join("\n"));
    }
    let mut expected = vec!["250 OK"; 3];
    expected.extend(["250 2.0.0 9 octets received"; 10]);
    expected.extend(["250 OK", "250 OK", "250 OK", "250 OK", "221 Bye"]);
    assert_eq!(replies, expected);
    c.expect_closed().await;
    {
        let messages = messages.lock().unwrap();
        let first: String = (0..10).map(|i| format!("chunk {i}\r\n")).collect();
        assert_eq!(messages[0].content, format!("{first}end\n").as_bytes());
        assert_eq!(messages[0].rcpt_tos, ["b@example.com", "c@example.com"]);
        assert_eq!(messages[1].content, b"xyz");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_chunk_split_across_packets_is_reassembled() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 10 LA").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    c.send(b"ST\r\n0123").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    c.send(b"456789NOOP\r\n").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    assert_eq!(c.reply().await, ["250 OK"]);
    assert_eq!(messages.lock().unwrap()[0].content, b"0123456789");
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_chunk_size_gets_501() {
    let server = start(Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    for bad in [
        "BDAT",
        "BDAT x",
        "BDAT -1",
        "BDAT +5",
        "BDAT 5 FIRST",
        "BDAT 5 LAST now",
        "BDAT 99999999999999999999",
    ] {
        c.expect(bad, "501 Syntax: BDAT <chunk-size> [LAST]").await;
    }
    c.expect("HELP BDAT", "250 Syntax: BDAT <chunk-size> [LAST]")
        .await;
    // The transaction is intact.
    c.send(b"BDAT 2 LAST\r\nok").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    server.shutdown().await;
}

#[tokio::test]
async fn bdat_out_of_sequence_gets_503_after_its_chunk_is_consumed() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    // The chunk's octets look like a command: were they not consumed, QUIT would close.
    c.send(b"BDAT 6\r\nQUIT\r\n").await;
    assert_eq!(c.reply().await, ["503 Error: send HELO first"]);
    c.cmd("EHLO client.example", 250).await;
    c.send(b"BDAT 6 LAST\r\nQUIT\r\n").await;
    assert_eq!(c.reply().await, ["503 Error: need RCPT command"]);
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.send(b"BDAT 6 LAST\r\nQUIT\r\n").await;
    assert_eq!(c.reply().await, ["503 Error: need RCPT command"]);
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 3 LAST\r\nabc").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    // After LAST the transaction is over (RFC 3030: BDAT after LAST is a bad sequence).
    c.send(b"BDAT 3 LAST\r\nabc").await;
    assert_eq!(c.reply().await, ["503 Error: need RCPT command"]);
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}

#[tokio::test]
async fn bdat_needs_auth_when_auth_is_required() {
    let cfg = {
        let mut config = config();
        config.auth_required = true;
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.send(b"BDAT 4 LAST\r\nNOOP").await;
    assert_eq!(c.reply().await, ["530 5.7.0 Authentication required"]);
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_size_limit_applies_per_chunk_and_in_total() {
    let (handler, messages) = collector();
    let cfg = {
        let mut config = config();
        config.max_message_size = Some(10);
        config
    };
    let server = start(handler, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    // One chunk over the limit: refused, consumed, and so is the rest of the transaction.
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 12\r\nRSET\r\nQUIT\r\n").await;
    assert_eq!(c.reply().await, ["552 Error: Too much mail data"]);
    c.send(b"BDAT 1\r\nx").await;
    assert_eq!(c.reply().await, ["552 Error: Too much mail data"]);
    c.send(b"BDAT 0 LAST\r\n").await;
    assert_eq!(c.reply().await, ["552 Error: Too much mail data"]);
    // The transaction was reset: a new one works.
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 6\r\n123456").await;
    assert_eq!(c.reply().await, ["250 2.0.0 6 octets received"]);
    c.send(b"BDAT 5 LAST\r\n78901").await;
    assert_eq!(c.reply().await, ["552 Error: Too much mail data"]);
    // Exactly the limit passes.
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 6\r\n123456BDAT 4 LAST\r\n7890").await;
    assert_eq!(c.reply().await, ["250 2.0.0 6 octets received"]);
    assert_eq!(c.reply().await, ["250 OK"]);
    {
        let messages = messages.lock().unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].content, b"1234567890");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn data_inside_a_bdat_transfer_is_refused() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 3\r\nabc").await;
    assert_eq!(c.reply().await, ["250 2.0.0 3 octets received"]);
    c.expect(
        "DATA",
        "503 5.5.1 Error: DATA not allowed during a BDAT transfer",
    )
    .await;
    c.expect(
        "RCPT TO:<c@example.com>",
        "503 5.5.1 Error: BDAT transfer in progress",
    )
    .await;
    c.send(b"BDAT 3 LAST\r\ndef").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    {
        let messages = messages.lock().unwrap();
        assert_eq!(messages[0].content, b"abcdef");
        assert_eq!(messages[0].rcpt_tos, ["b@example.com"]);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bdat_after_data_started_is_message_content() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let reply = c
        .deliver(
            "a@example.com",
            &["b@example.com"],
            b"BDAT 5 LAST\r\nhello\r\n",
        )
        .await;
    assert_eq!(reply, ["250 OK"]);
    assert_eq!(
        messages.lock().unwrap()[0].content,
        b"BDAT 5 LAST\r\nhello\r\n"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn binarymime_with_data_gets_503_and_bdat_still_works() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com> BODY=BINARYMIME", 250)
        .await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.expect("DATA", "503 5.5.1 Error: BODY=BINARYMIME requires BDAT")
        .await;
    c.send(b"BDAT 4 LAST\r\n\0\x01\x02\x03").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    assert_eq!(messages.lock().unwrap()[0].content, b"\0\x01\x02\x03");
    server.shutdown().await;
}

#[tokio::test]
async fn rset_abandons_a_bdat_transfer() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 3\r\nabc").await;
    assert_eq!(c.reply().await, ["250 2.0.0 3 octets received"]);
    c.expect("RSET", "250 OK").await;
    c.send(b"BDAT 3 LAST\r\ndef").await;
    assert_eq!(c.reply().await, ["503 Error: need RCPT command"]);
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 3 LAST\r\nghi").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    {
        let messages = messages.lock().unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].content, b"ghi");
    }
    server.shutdown().await;
}

/// smtplib has no BDAT, so the script sends the chunks with `send` and reads each reply with
/// `getreply` — a real client's connection handling, EHLO parsing and reply reading.
const SMTPLIB_BDAT: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
s = smtplib.SMTP("127.0.0.1", port, timeout=10)
s.ehlo("python.example")
assert s.has_extn("chunking") and s.has_extn("binarymime"), s.esmtp_features
print(s.mail("a@example.com", ["BODY=BINARYMIME"]))
print(s.rcpt("b@example.com"))
body = b"Subject: via smtplib\r\n\r\n" + bytes(range(256)) + b"\r\n.\r\n"
for i in range(0, len(body), 100):
    chunk = body[i:i + 100]
    s.send(b"BDAT %d\r\n" % len(chunk) + chunk)
    print(s.getreply())
s.send(b"BDAT 0 LAST\r\n")
print(s.getreply())
print(s.quit())
"#;

#[tokio::test]
async fn python_smtplib_delivers_with_bdat() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let port = server.local_addr().port().to_string();
    let (ok, stdout, stderr) = python(SMTPLIB_BDAT, &[&port]).await;
    assert!(ok, "python failed: {stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "(250, b'OK')",
            "(250, b'OK')",
            "(250, b'2.0.0 100 octets received')",
            "(250, b'2.0.0 100 octets received')",
            "(250, b'2.0.0 85 octets received')",
            "(250, b'OK')",
            "(221, b'Bye')",
        ]
    );
    let mut expected = b"Subject: via smtplib\r\n\r\n".to_vec();
    expected.extend(0..=255u8);
    expected.extend_from_slice(b"\r\n.\r\n");
    assert_eq!(messages.lock().unwrap()[0].content, expected);
    server.shutdown().await;
}
