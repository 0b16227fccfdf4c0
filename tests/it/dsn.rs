//! DSN parameters (RFC 3461): RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT, checked and
//! stored in the envelope in typed form.

use std::sync::{Arc, Mutex};

use crate::support::{Client, config, start};
use smtp_core::proto::{MailDsn, Notify, Orcpt, RcptDsn, Ret};
use smtp_core::{Envelope, Handler, Reply, Session};

/// What one message's envelope held: MAIL's DSN, the recipients, their DSN.
type Seen = (MailDsn, Vec<String>, Vec<RcptDsn>);

/// Records the DSN parameters of each message.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Handler for Recorder {
    async fn handle_data(&self, _: &mut Session, envelope: &mut Envelope) -> Reply {
        self.0.lock().unwrap().push((
            envelope.dsn.clone(),
            envelope.rcpt_tos().map(String::from).collect(),
            envelope.recipients.iter().map(|r| r.dsn.clone()).collect(),
        ));
        Reply::ok()
    }
}

#[tokio::test]
async fn dsn_parameters_reach_the_envelope() {
    let recorder = Recorder::default();
    let server = start(recorder.clone(), config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        "MAIL FROM:<a@example.com> RET=HDRS ENVID=QQ+2B314159",
        "250 OK",
    )
    .await;
    c.expect(
        "RCPT TO:<b@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob+2BTag@Example.com",
        "250 OK",
    )
    .await;
    c.expect("RCPT TO:<c@example.com>", "250 OK").await;
    c.expect("RCPT TO:<d@example.com> notify=never", "250 OK")
        .await;
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    c.send(b"x\r\n").await;
    c.expect(".", "250 OK").await;
    // The next transaction starts without them.
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    c.expect("RCPT TO:<b@example.com>", "250 OK").await;
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>")
        .await;
    c.expect(".", "250 OK").await;

    {
        let seen = recorder.0.lock().unwrap();
        let (mail, rcpts, dsn) = &seen[0];
        assert_eq!(
            *mail,
            MailDsn {
                ret: Some(Ret::Hdrs),
                envid: Some("QQ+314159".into()),
            }
        );
        assert_eq!(rcpts, &["b@example.com", "c@example.com", "d@example.com"]);
        assert_eq!(
            dsn[0],
            RcptDsn {
                notify: Some(Notify {
                    success: true,
                    failure: false,
                    delay: true,
                }),
                orcpt: Some(Orcpt {
                    addr_type: "rfc822".into(),
                    address: "Bob+Tag@Example.com".into(),
                }),
            }
        );
        assert_eq!(dsn[1], RcptDsn::default());
        assert!(dsn[2].notify.is_some_and(|n| n.is_never()));
        assert_eq!(seen[1].0, MailDsn::default());
        assert_eq!(seen[1].2, [RcptDsn::default()]);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn bad_dsn_parameters_get_501_and_unknown_ones_555() {
    let server = start(Recorder::default(), config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    for (mail, reply) in [
        ("RET=ALL", "501 5.5.4 Error: RET must be FULL or HDRS"),
        (
            "RET=FULL RET=HDRS",
            "501 5.5.4 Error: duplicate RET parameter",
        ),
        ("ENVID=a=b", "501 5.5.4 Error: malformed ENVID parameter"),
        ("ENVID=a+zz", "501 5.5.4 Error: malformed ENVID parameter"),
        (
            "ENVID=",
            "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
        ),
        (
            "XENVID=1",
            "555 MAIL FROM parameters not recognized or not implemented",
        ),
    ] {
        c.expect(&format!("MAIL FROM:<a@example.com> {mail}"), reply)
            .await;
    }
    let long = "x".repeat(101);
    c.expect(
        &format!("MAIL FROM:<a@example.com> ENVID={long}"),
        "501 5.5.4 Error: malformed ENVID parameter",
    )
    .await;
    c.expect("MAIL FROM:<a@example.com> RET=FULL", "250 OK")
        .await;
    let bad_notify = "501 5.5.4 Error: NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY";
    for (rcpt, reply) in [
        ("NOTIFY=NEVER,SUCCESS", bad_notify),
        ("NOTIFY=SOMETIMES", bad_notify),
        ("NOTIFY", bad_notify),
        (
            "NOTIFY=FAILURE NOTIFY=DELAY",
            "501 5.5.4 Error: duplicate NOTIFY parameter",
        ),
        (
            "ORCPT=b@example.com",
            "501 5.5.4 Error: malformed ORCPT parameter",
        ),
        (
            "ORCPT=rfc822;",
            "501 5.5.4 Error: malformed ORCPT parameter",
        ),
        (
            "SIZE=10",
            "555 RCPT TO parameters not recognized or not implemented",
        ),
    ] {
        c.expect(&format!("RCPT TO:<b@example.com> {rcpt}"), reply)
            .await;
    }
    c.expect("DATA", "503 Error: need RCPT command").await;
    server.shutdown().await;
}

#[tokio::test]
async fn dsn_is_advertised_only_when_on_and_needs_ehlo() {
    let server = start(Recorder::default(), config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    let ehlo = c.cmd("EHLO client.example", 250).await;
    assert!(ehlo.contains(&"250-DSN".to_owned()), "{ehlo:?}");
    c.cmd("HELO client.example", 250).await;
    c.expect(
        "MAIL FROM:<a@example.com> RET=FULL",
        "501 Syntax: MAIL FROM: <address>",
    )
    .await;
    server.shutdown().await;

    let off = {
        let mut config = config();
        config.dsn = false;
        config
    };
    let server = start(Recorder::default(), off).await;
    let mut c = Client::connect(server.local_addr()).await;
    let ehlo = c.cmd("EHLO client.example", 250).await;
    assert!(!ehlo.contains(&"250-DSN".to_owned()), "{ehlo:?}");
    c.expect(
        "MAIL FROM:<a@example.com> RET=FULL",
        "555 MAIL FROM parameters not recognized or not implemented",
    )
    .await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    c.expect(
        "RCPT TO:<b@example.com> NOTIFY=NEVER",
        "555 RCPT TO parameters not recognized or not implemented",
    )
    .await;
    server.shutdown().await;
}
