//! Issue 13, "Defects found by testing as users would": one raw-socket dialogue per point,
//! each of which failed before its fix (the comment on each test says how).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::tls::{Pki, smtpd_tls_command};
use crate::support::*;
use smtp_core::{
    AuthAbort, AuthArgs, AuthMechanism, AuthResult, AuthServer, Envelope, Handler, HookError,
    ProxyData, ProxyProtocol, Reply, Server, Session,
};
use tokio::io::AsyncWriteExt as _;

const SRS: &str = "SRS0=HHH=TT=example.org=very.long.user.name.of.a.forwarded.sender\
                   @bounce.example.com";
const VERP: &str = "bounces+list-owner=subscriber.with.a.long.name=example.org-1234567890\
                    @lists.example.com";
const BATV: &str = "prvs=1234567890=a.sender.with.a.very.long.local.part.for.batv.tagging\
                    @example.com";
const MALFORMED: &str = "553 5.1.3 Error: malformed address";
const MAIL_SYNTAX: &str = "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]";
const RCPT_SYNTAX: &str = "501 Syntax: RCPT TO: <address> [SP <mail-parameters>]";

fn local_part(address: &str) -> &str {
    &address[..address.rfind('@').unwrap()]
}

/// Before: `validate_address` refused any unquoted local part over 64 octets with `553`.
#[tokio::test]
async fn srs_verp_and_batv_senders_with_long_local_parts_are_accepted_by_default() {
    for address in [SRS, VERP, BATV] {
        assert!(local_part(address).len() > 64, "{address}");
    }
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(&format!("MAIL FROM:<{SRS}>"), "250 OK").await;
    c.expect(&format!("RCPT TO:<{VERP}>"), "250 OK").await;
    c.expect(&format!("RCPT TO:{BATV}"), "250 OK").await;
    c.cmd("DATA", 354).await;
    c.send(b"Subject: bounce\r\n\r\nhi\r\n.\r\n").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    wait_for_messages(&messages, 1).await;
    let message = messages.lock().unwrap().remove(0);
    assert_eq!(message.mail_from, SRS);
    assert_eq!(message.rcpt_tos, [VERP, BATV]);
    server.shutdown().await;

    // The binary leaves the library's default.
    let smtpd = Smtpd::tcp(&["--handler", "sink", "--hostname", "test.example"]);
    let mut c = Client::ehloed(smtpd.addr()).await;
    c.expect(&format!("MAIL FROM:<{SRS}>"), "250 OK").await;
    c.expect(&format!("RCPT TO:<{VERP}>"), "250 OK").await;
}

/// `Config::max_local_part` and `smtpd --max-local-part` (aiosmtpd's `local_part_limit`)
/// refuse a longer local part with aiosmtpd's reply; an address within the limit passes.
#[tokio::test]
async fn a_configured_local_part_limit_refuses_longer_local_parts_with_553() {
    let config = {
        let mut config = config();
        config.max_local_part = Some(64);
        config
    };
    let server = start(smtp_core::handlers::Sink, config).await;
    let smtpd = Smtpd::tcp(&["--handler", "sink", "--max-local-part", "64"]);
    let at_limit = format!("{}@example.com", "x".repeat(64));
    for addr in [server.local_addr(), smtpd.addr()] {
        let mut c = Client::ehloed(addr).await;
        c.expect(&format!("MAIL FROM:<{SRS}>"), MALFORMED).await;
        c.expect(&format!("MAIL FROM:<{at_limit}>"), "250 OK").await;
        c.expect(&format!("RCPT TO:<{VERP}>"), MALFORMED).await;
        c.expect(&format!("RCPT TO:{BATV}"), MALFORMED).await;
        c.expect(&format!("RCPT TO:<{at_limit}>"), "250 OK").await;
    }
    server.shutdown().await;
}

/// Before: `553 5.1.3 Error: malformed address` to both; aiosmtpd accepts them and records
/// the address without the comment.
#[tokio::test]
async fn comments_in_paths_are_accepted_and_not_recorded() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM:anne@example.com(comment)", "250 OK")
        .await;
    c.expect("RCPT TO: (comment)anne@example.com", "250 OK")
        .await;
    c.expect("RCPT TO:<bob(the builder)@example.com>", "250 OK")
        .await;
    // What aiosmtpd refuses too: a comment in front of `<`, and one never closed.
    c.expect("RCPT TO:(comment)<carol@example.com>", MALFORMED)
        .await;
    c.expect("RCPT TO:carol@example.com(unclosed", MALFORMED)
        .await;
    c.cmd("DATA", 354).await;
    c.send(b"Subject: hi\r\n\r\nhi\r\n.\r\n").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    wait_for_messages(&messages, 1).await;
    let message = messages.lock().unwrap().remove(0);
    assert_eq!(message.mail_from, "anne@example.com");
    assert_eq!(message.rcpt_tos, ["anne@example.com", "bob@example.com"]);
    server.shutdown().await;
}

/// Before: `555 … not recognized or not implemented` for parameters that are not
/// `keyword[=value]`; aiosmtpd (and RFC 5321) make that a syntax error. 555 stays for
/// well-formed parameters the server does not know.
#[tokio::test]
async fn parameters_that_are_not_keyword_value_get_501_and_unknown_ones_555() {
    let server = start(smtp_core::handlers::Sink, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM: <a@example.com> SIZE 10000", MAIL_SYNTAX)
        .await;
    c.expect("MAIL FROM:<a@example.com> #$%=!@#", MAIL_SYNTAX)
        .await;
    c.expect(
        "MAIL FROM:<a@example.com> X-UNKNOWN=1",
        "555 MAIL FROM parameters not recognized or not implemented",
    )
    .await;
    c.expect("MAIL FROM:<a@example.com> SIZE=10000", "250 OK")
        .await;
    c.expect("RCPT TO:<b@example.com> #$%=!@#", RCPT_SYNTAX)
        .await;
    c.expect("RCPT TO:<b@example.com> NOTIFY= ", RCPT_SYNTAX)
        .await;
    c.expect(
        "RCPT TO:<b@example.com> X-UNKNOWN=1",
        "555 RCPT TO parameters not recognized or not implemented",
    )
    .await;
    c.expect("RCPT TO:<b@example.com> NOTIFY=NEVER", "250 OK")
        .await;
    server.shutdown().await;
}

/// Sends `line` and returns every line of its reply, each checked to fit in 512 octets with
/// its CRLF (RFC 5321 §4.5.3.1.5).
async fn short_reply(c: &mut Client, line: &str) -> Vec<String> {
    c.send(format!("{line}\r\n").as_bytes()).await;
    let reply = c.reply().await;
    for l in &reply {
        assert!(
            l.len() + 2 <= 512,
            "a {}-octet reply line to `{}…`: {l}",
            l.len() + 2,
            &line[..line.len().min(40)]
        );
    }
    reply
}

/// Before: an over-long unknown verb was echoed whole (a 543-octet line for a 510-letter
/// verb), and so was VRFY's argument.
#[tokio::test]
async fn no_reply_line_exceeds_512_octets_whatever_the_client_sends() {
    for enhanced in [false, true] {
        for max_command_line in [512, 4096] {
            let config = {
                let mut config = config();
                config.enhanced_status_codes = enhanced;
                config.max_command_line = max_command_line;
                config
            };
            let server = start(smtp_core::handlers::Sink, config).await;
            let mut c = Client::ehloed(server.local_addr()).await;
            let room = max_command_line - 12;
            let verb = "X".repeat(room);
            let reply = short_reply(&mut c, &verb).await;
            assert!(reply[0].starts_with("500 "), "{reply:?}");
            assert!(reply[0].contains("Error: command \"XXXXXXXX"), "{reply:?}");
            assert!(reply[0].ends_with("\" not recognized"), "{reply:?}");
            assert!(reply[0].len() + 2 >= 500, "cut too short: {reply:?}");
            // An argument echoed by VRFY; a long address; a long parameter name; a long
            // HELO name; a long AUTH mechanism; a long HELP topic.
            let long = "a".repeat(room);
            let reply = short_reply(&mut c, &format!("VRFY <{long}>")).await;
            assert!(reply[0].starts_with("502 "), "{reply:?}");
            assert!(reply[0].contains("Could not VRFY <aaaa"), "{reply:?}");
            let address = format!("<{}@example.com>", &long[..room - 20]);
            assert_eq!(
                short_reply(&mut c, &format!("MAIL FROM:{address}")).await,
                [MALFORMED]
            );
            let param = format!("X-{}=1", "P".repeat(room - 40));
            let reply = short_reply(&mut c, &format!("MAIL FROM:<a@example.com> {param}")).await;
            assert!(reply[0].starts_with("555 "), "{reply:?}");
            short_reply(&mut c, "MAIL FROM:<a@example.com>").await;
            let reply = short_reply(&mut c, &format!("RCPT TO:<b@example.com> {param}")).await;
            assert!(reply[0].starts_with("555 "), "{reply:?}");
            short_reply(&mut c, &format!("HELO {long}")).await;
            short_reply(&mut c, &format!("EHLO {long}")).await;
            short_reply(&mut c, &format!("AUTH {long}")).await;
            short_reply(&mut c, &format!("HELP {long}")).await;
            short_reply(&mut c, &format!("NOOP {long}")).await;
            // The over-long line itself.
            let reply = short_reply(&mut c, &"Y".repeat(max_command_line + 100)).await;
            assert!(reply[0].starts_with("500 "), "{reply:?}");
            server.shutdown().await;
        }
    }
}

/// Before: `500 Error: strict ASCII mode` to both, a text that is wrong when SMTPUTF8 is
/// offered. NOOP ignores its argument; an address that is not UTF-8 is refused for what it is.
#[tokio::test]
async fn arguments_that_are_not_utf8_with_smtputf8_on() {
    let config = {
        let mut config = config();
        config.smtputf8 = true;
        config
    };
    let server = start(smtp_core::handlers::Sink, config).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.send(b"NOOP \xff\r\n").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    c.send(b"MAIL FROM:anne\xff@example.com\r\n").await;
    assert_eq!(
        c.reply().await,
        ["553 5.1.7 Error: address is not valid UTF-8"]
    );
    c.expect("MAIL FROM:<anne@example.com>", "250 OK").await;
    c.send(b"RCPT TO:<b\xc3@example.com>\r\n").await;
    assert_eq!(
        c.reply().await,
        ["553 5.1.3 Error: address is not valid UTF-8"]
    );
    c.send("RCPT TO:<b\u{e9}@example.com>\r\n".as_bytes()).await;
    assert_eq!(c.reply().await, ["250 OK"]);
    server.shutdown().await;
}

/// Pipelines NOOPs without reading a reply, on a socket with a 4 KiB receive buffer, until a
/// write fails (the server closed) or `limit` passes; returns how long that took, or `None`.
async fn pipeline_without_reading(addr: std::net::SocketAddr, limit: Duration) -> Option<Duration> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    let batch = "NOOP\r\n".repeat(10_000);
    let started = tokio::time::Instant::now();
    let mut sent = 0usize;
    loop {
        match tokio::time::timeout_at(started + limit, stream.write_all(batch.as_bytes())).await {
            Err(_) => return None,
            Ok(Err(_)) => {
                assert!(sent >= 200_000, "closed after only {sent} NOOPs");
                return Some(started.elapsed());
            }
            Ok(Ok(())) => sent += 10_000,
        }
    }
}

/// Before: the server blocked writing replies to a client that never read them, for ever, and
/// kept its buffers. Now a write without progress for the idle timeout closes the connection,
/// and commands wait while 64 KiB of replies are unsent. Other clients are served meanwhile.
#[tokio::test]
async fn a_client_that_never_reads_its_replies_is_closed_after_the_idle_timeout() {
    let config = {
        let mut config = config();
        config.idle_timeout = Duration::from_secs(2);
        config
    };
    let server = start(smtp_core::handlers::Sink, config).await;
    let addr = server.local_addr();
    let stalled = tokio::spawn(pipeline_without_reading(addr, Duration::from_secs(40)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Another client is served all along (its NOOPs also keep its own idle timer fresh).
    let mut other = Client::ehloed(addr).await;
    while !stalled.is_finished() {
        other.expect("NOOP", "250 OK").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let closed_after = stalled.await.expect("the pipelining task");
    let closed_after = closed_after.expect("the server never closed a client that never reads");
    assert!(
        closed_after < Duration::from_secs(30),
        "closed only after {closed_after:?}"
    );
    other.expect("NOOP", "250 OK").await;
    let mut next = Client::ehloed(addr).await;
    next.cmd("QUIT", 221).await;
    server.shutdown().await;
}

/// Trickles a message at one byte per second after `start` (a line that opens the transfer,
/// answered with `reply_to_start` if any) and returns the 421 that cuts it off and when.
async fn trickle(start_line: &str, reply_to_start: Option<u16>) -> (Vec<String>, Duration) {
    let server = start_in_memory(smtp_core::handlers::Sink, config());
    let mut c = Client::in_memory(&server).greeted().await;
    c.cmd("EHLO client.example", 250).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    match reply_to_start {
        Some(code) => drop(c.cmd(start_line, code).await),
        None => c.send(format!("{start_line}\r\n").as_bytes()).await,
    }
    let started = tokio::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "one byte per second for two minutes was not cut off"
        );
        c.send(b"x").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(1), c.line()).await {
            let waited = started.elapsed();
            c.expect_closed().await;
            server.shutdown().await;
            return (vec![line], waited);
        }
    }
}

/// Before: `min_data_rate` was off by default, and each byte reset the idle timer, so one
/// byte per second kept a DATA transfer open for as long as the client liked.
#[tokio::test(start_paused = true)]
async fn a_one_byte_per_second_data_transfer_is_cut_off_by_default() {
    let (reply, waited) = trickle("DATA", Some(354)).await;
    assert_eq!(reply, ["421 4.4.2 test.example Error: too slow"]);
    assert!(
        waited >= Duration::from_secs(10),
        "before the grace: {waited:?}"
    );
    assert!(waited <= Duration::from_secs(12), "late: {waited:?}");
}

/// The same for a BDAT chunk.
#[tokio::test(start_paused = true)]
async fn a_one_byte_per_second_bdat_chunk_is_cut_off_by_default() {
    let (reply, waited) = trickle("BDAT 100000 LAST", None).await;
    assert_eq!(reply, ["421 4.4.2 test.example Error: too slow"]);
    assert!(
        waited >= Duration::from_secs(10),
        "before the grace: {waited:?}"
    );
    assert!(waited <= Duration::from_secs(12), "late: {waited:?}");
}

/// The binary has the default too, and `--min-data-rate none` turns it off: the same
/// trickle to both, one is cut off after the 10-second grace, the other delivers.
#[tokio::test]
async fn smtpd_cuts_off_slow_data_unless_min_data_rate_is_none() {
    let default = Smtpd::tcp(&["--handler", "sink", "--hostname", "test.example"]);
    let none = Smtpd::tcp(&["--handler", "sink", "--min-data-rate", "none"]);
    let mut cut = Client::ehloed(default.addr()).await;
    let mut kept = Client::ehloed(none.addr()).await;
    for c in [&mut cut, &mut kept] {
        c.begin_data("a@example.com", &["b@example.com"]).await;
    }
    let started = std::time::Instant::now();
    let reply = loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "smtpd never cut off a 4-byte-per-second transfer"
        );
        cut.send(b"x").await;
        kept.send(b"x").await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(1), cut.line()).await {
            break line;
        }
    };
    assert_eq!(reply, "421 4.4.2 test.example Error: too slow");
    assert!(started.elapsed() >= Duration::from_secs(10));
    cut.expect_closed().await;
    kept.send(b"\r\n.\r\n").await;
    assert_eq!(kept.reply().await, ["250 OK"]);
}

/// Runs GNU SASL's `gsasl` client: STARTTLS with the PKI's client certificate, then
/// `AUTH EXTERNAL` naming `authzid` (none when empty). Returns whether it logged in, and
/// its output.
async fn gsasl_external(pki: &Pki, port: u16, authzid: &str) -> (bool, String) {
    let mut command = std::process::Command::new("gsasl");
    command
        .arg(format!("--connect=127.0.0.1:{port}"))
        .args(["--smtp", "--starttls", "--mechanism=EXTERNAL"])
        .args(["--hostname=localhost", "--service=smtp"])
        .arg(format!("--x509-ca-file={}", pki.ca.display()))
        .arg(format!("--x509-cert-file={}", pki.client.cert.display()))
        .arg(format!("--x509-key-file={}", pki.client.key.display()))
        .arg("--verbose");
    if !authzid.is_empty() {
        command.arg(format!("--authorization-id={authzid}"));
    }
    let output = tools::run(command).await;
    (output.status.success(), tools::shown(&output))
}

/// Before: `smtpd --auth-mechanism EXTERNAL` refused every non-empty authorization identity,
/// and GNU SASL clients send the user name as one. The client certificate's CN is `client`.
#[tokio::test]
async fn gsasl_logs_in_with_external_naming_the_certificates_identity() {
    if !tools::external_tool(
        "gsasl",
        std::process::Command::new("gsasl").arg("--version"),
    ) {
        return;
    }
    let pki = Pki::new();
    let mut command = smtpd_tls_command(&pki);
    command
        .args(["--listen", "127.0.0.1:0", "--tls-client-ca"])
        .arg(&pki.ca)
        .args([
            "--auth-mechanism",
            "EXTERNAL",
            "--auth-failure-delay-ms",
            "0",
        ]);
    let smtpd = Smtpd::start(command);
    let port = smtpd.addr().port();
    for (authzid, accepted) in [("", true), ("client", true), ("admin", false)] {
        let (ok, shown) = gsasl_external(&pki, port, authzid).await;
        assert_eq!(ok, accepted, "authzid {authzid:?}: {shown}");
        // The authorization identity went out as the response to `334 `.
        let sent = format!("334 \n{}\n", b64(authzid));
        assert!(shown.replace("\r\n", "\n").contains(&sent), "{shown}");
        let expected = if accepted { "235 2.7.0" } else { "535 5.7.8" };
        assert!(shown.contains(expected), "authzid {authzid:?}: {shown}");
    }
}

/// A mechanism that fails with a reply of its own, or panics.
struct Failing {
    name: &'static str,
    reply: Option<&'static str>,
}

impl AuthMechanism for Failing {
    fn name(&self) -> &str {
        self.name
    }

    async fn run(&self, _: &mut AuthServer<'_>, _: AuthArgs) -> Result<AuthResult, AuthAbort> {
        match self.reply {
            Some(reply) => Ok(AuthResult::failure_with(reply)),
            None => panic!("the mechanism broke"),
        }
    }
}

/// A sink whose `handle_exception` says goodbye.
struct Goodbye;

impl Handler for Goodbye {
    async fn handle_exception(&self, _: &Session, _: &HookError) -> Reply {
        Reply::from("421 4.7.0 test.example mechanism failure, closing")
    }
}

async fn failing_mechanisms(max_auth_failures: Option<u32>) -> smtp_core::ServerHandle {
    let config = {
        let mut config = auth_config();
        config.max_auth_failures = max_auth_failures;
        config
    };
    let mechanism = |name, reply| Failing { name, reply };
    Server::new(Goodbye, config)
        .mechanism(mechanism("GOODBYE", Some("421 4.7.0 go away")))
        .and_then(|s| s.mechanism(mechanism("OWN", Some("535 5.7.8 not you, says OWN"))))
        .and_then(|s| s.mechanism(mechanism("BROKEN", None)))
        .expect("valid names")
        .listen("127.0.0.1:0")
        .await
        .expect("bind")
        .start()
}

/// After the 421 the client gets nothing more (no 250 to NOOP) and the connection is closed.
async fn expect_closed_after_421(c: &mut Client) {
    // The first write after the server's FIN still succeeds locally.
    c.send(b"NOOP\r\n").await;
    c.expect_closed().await;
}

/// Before: the mechanism's 421 was sent and the session went on (`NOOP` → `250`).
#[tokio::test]
async fn a_421_from_an_auth_mechanism_closes_the_connection() {
    let server = failing_mechanisms(None).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH GOODBYE", "421 4.7.0 go away").await;
    expect_closed_after_421(&mut c).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        "AUTH BROKEN",
        "421 4.7.0 test.example mechanism failure, closing",
    )
    .await;
    expect_closed_after_421(&mut c).await;
    server.shutdown().await;
}

/// The attempt that reaches `max_auth_failures` gets the cap's 421 instead of the mechanism's
/// own failure reply: one final reply per AUTH, then the close.
#[tokio::test]
async fn the_failure_cap_replaces_a_mechanisms_own_failure_reply() {
    let server = failing_mechanisms(Some(2)).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH OWN", "535 5.7.8 not you, says OWN").await;
    c.expect("AUTH OWN", "421 4.7.0 Too many authentication failures")
        .await;
    c.expect_closed().await;
    server.shutdown().await;
}

/// Records what `handle_proxy` was given and what the session holds at RSET.
#[derive(Clone, Default)]
struct ProxySeen(Arc<Mutex<Vec<Option<ProxyData>>>>);

impl Handler for ProxySeen {
    async fn handle_proxy(&self, _: &mut Session, data: &ProxyData) -> bool {
        self.0.lock().unwrap().push(Some(data.clone()));
        true
    }

    async fn handle_rset(&self, session: &mut Session, _: &mut Envelope) -> Reply {
        self.0.lock().unwrap().push(session.proxy_data().cloned());
        Reply::ok()
    }
}

/// A PROXY v2 header for a relayed AF_UNIX stream connection (family 0x31): two 108-octet,
/// NUL-padded paths.
fn v2_unix(source: &[u8], destination: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8; 216];
    body[..source.len()].copy_from_slice(source);
    body[108..108 + destination.len()].copy_from_slice(destination);
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x31]);
    header.extend_from_slice(&(body.len() as u16).to_be_bytes());
    header.extend_from_slice(&body);
    header
}

/// Before: the UNIX family's addresses were dropped (`ProxyData` had only socket addresses).
#[tokio::test]
async fn proxy_v2_unix_family_keeps_its_paths() {
    let config = {
        let mut config = config();
        config.proxy_protocol = Some(ProxyProtocol::default());
        config
    };
    let seen = ProxySeen::default();
    let server = start(seen.clone(), config).await;
    let mut c = Client::connect_raw(server.local_addr()).await;
    c.send(&v2_unix(
        b"/run/haproxy/client.sock",
        b"/run/smtpd/front.sock",
    ))
    .await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    c.cmd("EHLO client.example", 250).await;
    c.expect("RSET", "250 OK").await;
    c.cmd("QUIT", 221).await;
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for data in seen {
        let data = data.expect("proxy data");
        assert_eq!(data.version, 2);
        assert_eq!(data.source, None);
        assert_eq!(
            data.unix_source.as_deref(),
            Some(&b"/run/haproxy/client.sock"[..])
        );
        assert_eq!(
            data.unix_destination.as_deref(),
            Some(&b"/run/smtpd/front.sock"[..])
        );
    }
    server.shutdown().await;
}

/// Makes a version-1 certificate and its key the way `openssl x509 -req` does without an
/// extension file; returns (cert, key).
async fn v1_certificate(dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.0.join("v1.key");
    let csr = dir.0.join("v1.csr");
    let cert = dir.0.join("v1.pem");
    let mut req = std::process::Command::new("openssl");
    req.args([
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
    ])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&csr);
    let output = tools::run(req).await;
    assert!(output.status.success(), "{}", tools::shown(&output));
    let mut x509 = std::process::Command::new("openssl");
    x509.args(["x509", "-req", "-days", "1", "-in"])
        .arg(&csr)
        .arg("-signkey")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    let output = tools::run(x509).await;
    assert!(output.status.success(), "{}", tools::shown(&output));
    (cert, key)
}

/// Checks that `message` says what is wrong with the certificate and how to make one.
fn explains_version_1(message: &str) {
    assert!(!message.contains("does not match"), "{message}");
    assert!(message.contains("version 1"), "{message}");
    assert!(message.contains("-addext"), "{message}");
    assert!(message.contains("-extfile"), "{message}");
}

/// Before: "KEY does not match CERT: invalid peer certificate: UnsupportedCertVersion",
/// although the key matches.
#[tokio::test]
async fn a_version_1_certificate_is_refused_with_how_to_make_a_usable_one() {
    // `openssl --version` is an error: the probe is `openssl version`.
    if !tools::external_tool(
        "openssl",
        std::process::Command::new("openssl").arg("version"),
    ) {
        return;
    }
    let dir = TempDir::new("v1-cert");
    let (cert, key) = v1_certificate(&dir).await;
    let error = smtp_core::TlsConfig::builder(&cert, &key)
        .build()
        .expect_err("a version 1 certificate");
    explains_version_1(&error.to_string());
    let output = run_smtpd(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    assert!(!output.status.success(), "{}", tools::shown(&output));
    explains_version_1(&String::from_utf8_lossy(&output.stderr));
}
