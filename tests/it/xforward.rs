//! XFORWARD (Postfix's `XFORWARD_README`): a trusted MTA forwards each message's original
//! client; it reaches the handler in the envelope and holds for one transaction. Anyone else
//! changes nothing. The last test relays through a real Postfix.

use std::net::IpAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::support::{Client, TempDir, TermOnDrop};
use smtp_core::{
    Attr, Cidr, Config, Envelope, Handler, Reply, ServerHandle, Session, Source, XForward,
};

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Option<XForward>>>>);

impl Handler for Recorder {
    async fn handle_data(&self, _: &mut Session, envelope: &mut Envelope) -> Reply {
        self.0
            .lock()
            .unwrap()
            .push(envelope.xforward.as_deref().cloned());
        Reply::ok()
    }
}

impl Recorder {
    fn seen(&self) -> Vec<Option<XForward>> {
        self.0.lock().unwrap().clone()
    }
}

async fn start(trusted: &str) -> (ServerHandle, Recorder) {
    let mut config: Config = crate::support::config();
    config.xforward_trusted = vec![trusted.parse::<Cidr>().unwrap()];
    let recorder = Recorder::default();
    (
        crate::support::start(recorder.clone(), config).await,
        recorder,
    )
}

async fn send_message(client: &mut Client) {
    client
        .send_message(
            "a@example.org",
            &["b@example.net"],
            "Subject: x\r\n\r\nhi\r\n",
        )
        .await;
}

fn known<T>(value: T) -> Option<Attr<T>> {
    Some(Attr::Known(value))
}

fn ident(ident: &str) -> XForward {
    let mut x = XForward::default();
    x.ident = known(ident.to_owned());
    x
}

#[tokio::test]
async fn forwarded_attributes_hold_for_one_transaction() {
    let (server, recorder) = start("127.0.0.1/32").await;
    let mut client = Client::connect(server.local_addr()).await;
    let extensions = client.ehlo("relay.example").await;
    assert!(
        extensions.contains(&"XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE".to_owned()),
        "{extensions:?}"
    );
    let ok = "250 2.0.0 Ok";
    client
        .expect("XFORWARD NAME=mx.example ADDR=192.0.2.7 PORT=2525", ok)
        .await;
    client
        .expect(
            "XFORWARD PROTO=ESMTP HELO=c+2Eexample IDENT=ABC123 SOURCE=REMOTE",
            ok,
        )
        .await;
    send_message(&mut client).await;
    // The next message has none; one refused by RSET loses what came before it.
    send_message(&mut client).await;
    client.expect("XFORWARD ADDR=192.0.2.8", ok).await;
    client.cmd("RSET", 250).await;
    send_message(&mut client).await;
    client.expect("XFORWARD IDENT=DEF456", ok).await;
    client.cmd("MAIL FROM:<a@example.org>", 250).await;
    client
        .expect(
            "XFORWARD IDENT=LATE",
            "503 5.5.1 Error: MAIL transaction in progress",
        )
        .await;
    client.cmd("RCPT TO:<b@example.net>", 250).await;
    client.cmd("DATA", 354).await;
    client.send(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    assert!(client.reply().await[0].starts_with("250"));
    let mut first = XForward::default();
    first.name = known("mx.example".to_owned());
    first.addr = known("192.0.2.7".parse::<IpAddr>().unwrap());
    first.port = known(2525);
    first.proto = known("ESMTP".to_owned());
    first.helo = known("c.example".to_owned());
    first.ident = known("ABC123".to_owned());
    first.source = known(Source::Remote);
    let last = ident("DEF456");
    assert_eq!(recorder.seen(), vec![Some(first), None, None, Some(last)]);
}

#[tokio::test]
async fn untrusted_and_malformed_xforward_change_nothing() {
    let (server, recorder) = start("10.0.0.0/8").await;
    let mut client = Client::connect(server.local_addr()).await;
    let extensions = client.ehlo("client.example").await;
    assert!(!extensions.iter().any(|e| e.starts_with("XFORWARD")));
    client
        .expect(
            "XFORWARD ADDR=192.0.2.7",
            "550 5.7.0 Error: insufficient authorization",
        )
        .await;
    send_message(&mut client).await;

    let (trusted, trusted_recorder) = start("127.0.0.1/32").await;
    let mut client = Client::connect(trusted.local_addr()).await;
    client.ehlo("relay.example").await;
    client.expect("XFORWARD IDENT=KEEP", "250 2.0.0 Ok").await;
    let cases = [
        ("XFORWARD", "501 5.5.4 Syntax: XFORWARD attribute=value..."),
        (
            "XFORWARD IDENT=X LOGIN=alice",
            "501 5.5.4 Bad XFORWARD attribute name: LOGIN=alice",
        ),
        (
            "XFORWARD IDENT=X SOURCE=ELSEWHERE",
            "501 5.5.4 Bad XFORWARD SOURCE syntax: ELSEWHERE",
        ),
        (
            "XFORWARD IDENT=X ADDR=1.2.3",
            "501 5.5.4 Bad XFORWARD ADDR syntax: 1.2.3",
        ),
    ];
    for (line, reply) in cases {
        client.expect(line, reply).await;
    }
    send_message(&mut client).await;
    assert_eq!(recorder.seen(), vec![None]);
    let kept = ident("KEEP");
    assert_eq!(trusted_recorder.seen(), vec![Some(kept)]);
}

// ---- A real Postfix relaying to the server with `smtp_send_xforward_command = yes`. ----

const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// A private Postfix instance in `dir` (the recipe's layout): injection on `smtpd_port`,
/// everything relayed to `relay_port`. Returns the master process, stopped on drop.
fn postfix(dir: &TempDir, smtpd_port: u16, relay_port: u16) -> TermOnDrop {
    let root = &dir.0;
    let mut perms = std::fs::metadata(root).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(root, perms).unwrap();
    for sub in ["etc", "spool"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let d = root.display();
    let main_cf = format!(
        "compatibility_level = 3.6\n\
         queue_directory = {d}/spool\n\
         data_directory = {d}/data\n\
         mail_owner = postfix\n\
         maillog_file = {d}/maillog\n\
         maillog_file_prefixes = {d}\n\
         inet_interfaces = loopback-only\n\
         inet_protocols = ipv4\n\
         myhostname = relay.test\n\
         myorigin = relay.test\n\
         mydestination =\n\
         mynetworks = 127.0.0.0/8\n\
         relayhost = [127.0.0.1]:{relay_port}\n\
         smtp_send_xforward_command = yes\n\
         alias_maps =\n\
         alias_database =\n"
    );
    let master_cf = format!("127.0.0.1:{smtpd_port} inet n - n - - smtpd\n{MASTER_CF}");
    // Postfix re-reads a main.cf younger than ~2 s before using it: backdate both.
    let old = SystemTime::now() - Duration::from_secs(60);
    for (name, text) in [("main.cf", main_cf), ("master.cf", master_cf)] {
        let path = root.join("etc").join(name);
        std::fs::write(&path, text).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(old).unwrap();
    }
    let etc = root.join("etc");
    let check = Command::new("postfix")
        .arg("-c")
        .arg(&etc)
        .arg("check")
        .output()
        .expect("postfix check");
    assert!(check.status.success(), "postfix check: {check:?}");
    TermOnDrop::spawn(
        Command::new("/usr/lib/postfix/sbin/master")
            .arg("-c")
            .arg(&etc)
            .arg("-s"),
    )
}

#[tokio::test]
async fn postfix_forwards_the_original_client_of_a_relayed_message() {
    use crate::support::tools::external_tool;
    if !external_tool(
        "postfix",
        Command::new("postconf").arg("-d").arg("mail_version"),
    ) || !external_tool(
        "postfix's master",
        Command::new("test").args(["-x", "/usr/lib/postfix/sbin/master"]),
    ) {
        return;
    }
    let (server, recorder) = start("127.0.0.1/32").await;
    let dir = TempDir::new("postfix-xforward");
    let smtpd_port = crate::support::free_port();
    let _master = postfix(&dir, smtpd_port, server.local_addr().port());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], smtpd_port));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut client = loop {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            let mut client = Client::new(stream);
            if client.reply().await[0].starts_with("220 relay.test") {
                break client;
            }
        }
        let log = std::fs::read_to_string(dir.0.join("maillog")).unwrap_or_default();
        assert!(Instant::now() < deadline, "Postfix did not start: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    client.ehlo("client.example").await;
    send_message(&mut client).await;
    client.cmd("QUIT", 221).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while recorder.seen().is_empty() {
        let log = std::fs::read_to_string(dir.0.join("maillog")).unwrap_or_default();
        assert!(Instant::now() < deadline, "nothing relayed: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = recorder.seen();
    let x = seen[0].clone().expect("XFORWARD attributes");
    assert_eq!(
        x.addr,
        known("127.0.0.1".parse::<IpAddr>().unwrap()),
        "{x:?}"
    );
    assert_eq!(x.helo, known("client.example".to_owned()), "{x:?}");
    assert_eq!(x.proto, known("ESMTP".to_owned()), "{x:?}");
    assert!(x.port.as_ref().and_then(Attr::known).is_some(), "{x:?}");
    assert!(x.source.is_some(), "{x:?}");
    // IDENT is Postfix's queue id, which its log names for this message.
    let ident = x
        .ident
        .as_ref()
        .and_then(Attr::known)
        .expect("IDENT")
        .clone();
    let log = std::fs::read_to_string(dir.0.join("maillog")).unwrap_or_default();
    assert!(log.contains(&format!("{ident}: ")), "{ident} not in {log}");
}
