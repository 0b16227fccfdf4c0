//! The smallest end-to-end check: greeting and QUIT.

use crate::support::*;
use smtp_core::handlers::Sink;

#[tokio::test]
async fn greeting_and_quit() {
    let server = start(Sink, config()).await;
    let mut c = Client::connect_raw(server.local_addr()).await;
    assert_eq!(c.reply().await, vec!["220 test.example smtpd test"]);
    c.expect("QUIT", "221 Bye").await;
    c.expect_closed().await;
    server.shutdown().await;
}

/// A connection handed over as an in-memory stream is served like a TCP one.
#[tokio::test]
async fn serve_stream_over_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = smtp_core::Server::new(Sink, config()).start();
    let (mut client, server_side) = tokio::io::duplex(4096);
    server.serve_stream(server_side, smtp_core::Peer::Local, false);
    client.write_all(b"EHLO mem\r\nQUIT\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(REPLY_TIMEOUT, client.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("220 test.example smtpd test\r\n250-test.example\r\n"),
        "{text}"
    );
    assert!(text.ends_with("250 HELP\r\n221 Bye\r\n"), "{text}");
    server.shutdown().await;
}
