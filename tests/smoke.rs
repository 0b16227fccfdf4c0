//! The smallest end-to-end check: greeting and QUIT.

mod common;
use common::*;
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
