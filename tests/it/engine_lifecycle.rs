//! Connection and server lifecycle: panicking hooks, idle timeouts, graceful shutdown,
//! many concurrent clients, connection limits.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use smtp_core::handlers::Sink;
use smtp_core::{Config, Envelope, Handler, HookError, Reply, ServerHandle, Session};
use tokio::io::DuplexStream;
use tokio::time::Instant;

/// Hooks that panic on request.
struct Panicky;

impl Handler for Panicky {
    async fn handle_rcpt(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        address: &str,
        _options: &smtp_core::RcptParams,
    ) -> Reply {
        if address.starts_with("panic") {
            panic!("boom for {address}");
        }
        Reply::ok()
    }

    async fn handle_data(&self, _session: &mut Session, envelope: &mut Envelope) -> Reply {
        if envelope.content.starts_with(b"PANIC") {
            panic!("cannot store this");
        }
        Reply::ok()
    }

    async fn handle_noop(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        arg: Option<&str>,
    ) -> Reply {
        match arg {
            Some("static") => panic!("a static message"),
            Some("lines") => panic!("line one\nline two\r\n250 OK"),
            Some("long") => panic!("{}", "x".repeat(500)),
            Some("opaque") => std::panic::panic_any(42u32),
            _ => Reply::ok(),
        }
    }
}

#[tokio::test]
async fn a_panicking_hook_costs_one_reply_not_the_connection() {
    let server = start(Panicky, config()).await;
    let mut bystander = Client::ehloed(server.local_addr()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM:<a@example.com>", "250 OK").await;
    c.expect(
        "RCPT TO:<panic@example.com>",
        "500 Error: (panic) boom for panic@example.com",
    )
    .await;
    // The recipient was not recorded, the transaction goes on.
    c.expect("DATA", "503 Error: need RCPT command").await;
    c.expect("RCPT TO:<b@example.com>", "250 OK").await;
    c.cmd("DATA", 354).await;
    c.send(b"hello\r\n").await;
    c.expect(".", "250 OK").await;
    // The same connection keeps panicking and recovering.
    for _ in 0..3 {
        c.expect("NOOP static", "500 Error: (panic) a static message")
            .await;
        c.expect("NOOP", "250 OK").await;
    }
    // Other connections, old and new, are unaffected.
    bystander.expect("NOOP", "250 OK").await;
    let mut newcomer = Client::ehloed(server.local_addr()).await;
    newcomer
        .send_message("a@example.com", &["b@example.com"], "hi\r\n")
        .await;
}

#[tokio::test]
async fn a_panic_in_handle_data_ends_the_transaction() {
    let server = start(Panicky, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], b"PANIC now\r\n")
            .await,
        ["500 Error: (panic) cannot store this"]
    );
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    assert_eq!(
        c.deliver("a@example.com", &["b@example.com"], b"calm\r\n")
            .await,
        ["250 OK"]
    );
}

/// A panic message is client-visible text: it must not break the reply into lines the client
/// would read as further replies, nor be unbounded.
#[tokio::test]
async fn panic_messages_are_sanitised() {
    let server = start(Panicky, config()).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect("NOOP lines", "500 Error: (panic) line oneline two250 OK")
        .await;
    c.expect(
        "NOOP long",
        &format!("500 Error: (panic) {}", "x".repeat(200)),
    )
    .await;
    c.expect("NOOP opaque", "500 Error: (panic) unknown panic")
        .await;
    c.expect("NOOP", "250 OK").await;
}

/// A handler with its own `handle_exception`.
struct Apologetic {
    close: bool,
}

impl Handler for Apologetic {
    async fn handle_mail(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        address: &str,
        _options: &smtp_core::MailParams,
    ) -> Reply {
        if address == "ok@example.com" {
            return Reply::ok();
        }
        panic!("no senders today");
    }

    async fn handle_vrfy(
        &self,
        _session: &mut Session,
        _envelope: &mut Envelope,
        _address: &str,
    ) -> Reply {
        panic!("vrfy broke");
    }

    async fn handle_exception(&self, session: &Session, error: &HookError) -> Reply {
        if error.message == "vrfy broke" {
            panic!("and so did handle_exception");
        }
        let code = if self.close { 421 } else { 451 };
        Reply::new(
            code,
            format!(
                "4.3.0 {} failed for {}: {}",
                error.hook,
                session.host_name().unwrap_or("?"),
                error.message
            ),
        )
    }
}

#[tokio::test]
async fn handle_exception_decides_the_reply_to_a_panic() {
    let server = start(Apologetic { close: false }, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        "MAIL FROM:<a@example.com>",
        "451 4.3.0 handle_mail failed for client.example: no senders today",
    )
    .await;
    // The panicking MAIL did not start a transaction.
    c.expect("RCPT TO:<b@example.com>", "503 Error: need MAIL command")
        .await;
    c.expect("MAIL FROM:<ok@example.com>", "250 OK").await;
    // A handle_exception that panics itself.
    // A handle_exception that panics too still gets a reply that says what failed.
    c.expect("VRFY b@example.com", "500 Error: (panic) vrfy broke")
        .await;
    c.expect("RCPT TO:<b@example.com>", "250 OK").await;
}

#[tokio::test]
async fn a_421_from_handle_exception_closes_the_connection() {
    let server = start(Apologetic { close: true }, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect(
        "MAIL FROM:<a@example.com>",
        "421 4.3.0 handle_mail failed for client.example: no senders today",
    )
    .await;
    c.expect_closed().await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("MAIL FROM:<ok@example.com>", "250 OK").await;
}

fn timeout_config(timeout: Duration) -> Config {
    {
        let mut config = config();
        config.idle_timeout = timeout;
        config
    }
}

const TIMED_OUT: &str = "421 4.4.2 test.example Error: timeout exceeded";

#[tokio::test]
async fn an_idle_client_gets_421_and_is_closed() {
    let server = start(Sink, timeout_config(Duration::from_millis(800))).await;
    let mut c = Client::connect(server.local_addr()).await;
    let since = Instant::now();
    assert_eq!(c.reply().await, [TIMED_OUT]);
    let waited = since.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(5),
        "timed out after {waited:?}"
    );
    c.expect_closed().await;
}

// The tests below run over an in-memory stream on a paused clock: the idle timer is the
// same as on a socket (`an_idle_client_gets_421_and_is_closed`), and no test waits for it.

/// Checks that `since` was `timeout` ago on the paused clock, give or take the timer's tick.
fn assert_waited(since: Instant, timeout: Duration) {
    let waited = since.elapsed();
    assert!(
        waited >= timeout && waited < timeout + Duration::from_millis(10),
        "timed out after {waited:?}, not {timeout:?}"
    );
}

/// An in-memory client of a server with the idle `timeout`, after EHLO.
async fn idle_after_ehlo<H: Handler>(handler: H, timeout: Duration) -> Client<DuplexStream> {
    let server = start_in_memory(handler, timeout_config(timeout));
    let mut c = Client::in_memory(&server).greeted().await;
    c.cmd("EHLO client.example", 250).await;
    c
}

#[tokio::test(start_paused = true)]
async fn a_half_sent_command_does_not_keep_the_connection_alive() {
    let mut c = idle_after_ehlo(Sink, Duration::from_millis(500)).await;
    c.send(b"MAIL FROM:<a@exa").await;
    let since = Instant::now();
    assert_eq!(c.reply().await, [TIMED_OUT]);
    assert_waited(since, Duration::from_millis(500));
    c.expect_closed().await;
}

#[tokio::test(start_paused = true)]
async fn each_command_restarts_the_idle_timer() {
    let mut c = idle_after_ehlo(Sink, Duration::from_millis(700)).await;
    // 2.4 s of activity, far more than the timeout, with gaps well under it.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.expect("NOOP", "250 OK").await;
    }
    let since = Instant::now();
    assert_eq!(c.reply().await, [TIMED_OUT]);
    assert_waited(since, Duration::from_millis(700));
    c.expect_closed().await;
}

/// As in aiosmtpd, only recognised commands count as activity: a client cannot keep a
/// connection open with garbage.
#[tokio::test(start_paused = true)]
async fn unknown_commands_do_not_restart_the_idle_timer() {
    let mut c = idle_after_ehlo(Sink, Duration::from_millis(1000)).await;
    c.expect("NOOP", "250 OK").await;
    let since = Instant::now();
    for verb in ["FOO", "BAR"] {
        tokio::time::sleep(Duration::from_millis(450)).await;
        c.expect(
            verb,
            &format!("500 Error: command \"{verb}\" not recognized"),
        )
        .await;
    }
    assert_eq!(c.reply().await, [TIMED_OUT]);
    // Restarted by BAR, the timer would have run until 1.9 s.
    assert_waited(since, Duration::from_millis(1000));
    c.expect_closed().await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_message_transfer_times_out() {
    let (handler, messages) = collector();
    let mut c = idle_after_ehlo(handler, Duration::from_millis(600)).await;
    c.begin_data("a@example.com", &["b@example.com"]).await;
    c.send(b"Subject: stalled\r\n\r\nand then nothing").await;
    let since = Instant::now();
    assert_eq!(c.reply().await, [TIMED_OUT]);
    assert_waited(since, Duration::from_millis(600));
    c.expect_closed().await;
    assert!(messages.lock().unwrap().is_empty());
}

/// A client that stops answering an AUTH challenge is timed out like an idle one: 421, then
/// the connection closes (the mechanism itself only sees the connection end).
#[tokio::test(start_paused = true)]
async fn a_stalled_auth_challenge_times_out_with_421() {
    let cfg = {
        let mut config = timeout_config(Duration::from_millis(600));
        config.authenticator = Some(smtp_core::StaticUsers::new().user("user", "pass").into());
        config.auth_require_tls = false;
        config
    };
    let server = start_in_memory(Sink, cfg);
    let mut c = Client::in_memory(&server).greeted().await;
    c.cmd("EHLO client.example", 250).await;
    c.expect("AUTH LOGIN", "334 VXNlciBOYW1lAA==").await;
    let since = Instant::now();
    assert_eq!(c.reply().await, [TIMED_OUT]);
    assert_waited(since, Duration::from_millis(600));
    c.expect_closed().await;
}

/// Deliberate difference from aiosmtpd, which cuts off any DATA transfer that takes longer
/// than the timeout: here every chunk of message data restarts the timer.
#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_transfer_outlives_the_timeout() {
    let (handler, messages) = collector();
    let mut c = idle_after_ehlo(handler, Duration::from_millis(600)).await;
    c.begin_data("a@example.com", &["b@example.com"]).await;
    let mut expected = Vec::new();
    for i in 0..6 {
        let chunk = format!("chunk {i}\r\n");
        c.send(chunk.as_bytes()).await;
        expected.extend_from_slice(chunk.as_bytes());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    c.expect(".", "250 OK").await;
    assert_eq!(messages.lock().unwrap()[0].content, expected);
}

async fn shut_down_within(server: ServerHandle, limit: Duration) -> Duration {
    let since = Instant::now();
    tokio::time::timeout(limit, server.shutdown())
        .await
        .expect("shutdown took too long");
    since.elapsed()
}

const SHUTTING_DOWN: &str = "421 4.3.2 test.example Service shutting down";

/// Shutdown does not wait for a client in the middle of an AUTH exchange: it gets the same
/// 421 as an idle client.
#[tokio::test]
async fn shutdown_answers_a_pending_auth_challenge_with_421() {
    let cfg = {
        let mut config = config();
        config.authenticator = Some(smtp_core::StaticUsers::new().user("user", "pass").into());
        config.auth_require_tls = false;
        config
    };
    let server = start(Sink, cfg).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("AUTH LOGIN", "334 VXNlciBOYW1lAA==").await;
    shut_down_within(server, Duration::from_secs(5)).await;
    assert_eq!(c.reply().await, [SHUTTING_DOWN]);
    c.expect_closed().await;
}

#[tokio::test]
async fn shutdown_lets_a_transfer_in_flight_finish() {
    let (handler, messages) = collector();
    let cfg = {
        let mut config = config();
        config.shutdown_grace = Duration::from_secs(20);
        config
    };
    let server = start(handler, cfg).await;
    let addr = server.local_addr();
    let mut idle = Client::ehloed(addr).await;
    let mut greeted_only = Client::connect(addr).await;
    let mut busy = Client::ehloed(addr).await;
    busy.begin_data("a@example.com", &["b@example.com"]).await;
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    // Let the server read the first half before shutting down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shutdown = tokio::spawn(shut_down_within(server, Duration::from_secs(15)));

    assert_eq!(idle.reply().await, [SHUTTING_DOWN]);
    idle.expect_closed().await;
    assert_eq!(greeted_only.reply().await, [SHUTTING_DOWN]);
    greeted_only.expect_closed().await;

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the transfer"
    );
    busy.send(b"second half\r\n.\r\n").await;
    assert_eq!(busy.reply().await, ["250 OK"]);
    // The transfer done, the session ends like the others.
    assert_eq!(busy.reply().await, [SHUTTING_DOWN]);
    busy.expect_closed().await;

    let took = shutdown.await.unwrap();
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    let contents: Vec<Vec<u8>> = messages
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.content.clone())
        .collect();
    assert_eq!(
        contents,
        [b"Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"]
    );
    // No one is listening any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_cuts_off_a_transfer_after_the_grace_period() {
    let (handler, messages) = collector();
    let cfg = {
        let mut config = config();
        config.shutdown_grace = Duration::from_millis(500);
        config
    };
    let server = start(handler, cfg).await;
    let mut busy = Client::ehloed(server.local_addr()).await;
    busy.begin_data("a@example.com", &["b@example.com"]).await;
    busy.send(b"Subject: never finished\r\n\r\n").await;
    let took = shut_down_within(server, Duration::from_secs(10)).await;
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "shutdown took {took:?}"
    );
    busy.expect_closed().await;
    assert!(messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn shutdown_without_clients_is_quick() {
    let server = start(Sink, config()).await;
    let addr = server.local_addr();
    let took = shut_down_within(server, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_clients_all_deliver() {
    const CLIENTS: usize = 100;
    const PER_CLIENT: usize = 3;
    let (handler, messages) = collector();
    let cfg = {
        let mut config = config();
        config.max_connections_per_ip = None;
        config
    };
    let server = start(handler, cfg).await;
    let addr = server.local_addr();
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::ehloed(addr).await;
            // Every client is connected and greeted before any delivers.
            barrier.wait().await;
            for m in 0..PER_CLIENT {
                let body = message_body(n, m);
                let reply = c
                    .deliver(
                        &format!("sender{n}@example.com"),
                        &[&format!("rcpt{n}.{m}@example.com"), "all@example.com"],
                        body.as_bytes(),
                    )
                    .await;
                assert_eq!(reply, ["250 OK"], "client {n} message {m}");
            }
            c.expect("QUIT", "221 Bye").await;
            c.expect_closed().await;
        }));
    }
    let deadline = Duration::from_secs(30);
    for task in tasks {
        tokio::time::timeout(deadline, task)
            .await
            .expect("client took too long")
            .expect("client failed");
    }
    let mut got: Vec<(String, Vec<String>, Vec<u8>)> = messages
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m.mail_from.clone(), m.rcpt_tos.clone(), m.content.clone()))
        .collect();
    assert_eq!(got.len(), CLIENTS * PER_CLIENT);
    let mut expected: Vec<(String, Vec<String>, Vec<u8>)> = (0..CLIENTS)
        .flat_map(|n| {
            (0..PER_CLIENT).map(move |m| {
                (
                    format!("sender{n}@example.com"),
                    vec![
                        format!("rcpt{n}.{m}@example.com"),
                        "all@example.com".to_owned(),
                    ],
                    message_body(n, m).replace("\r\n..", "\r\n.").into_bytes(),
                )
            })
        })
        .collect();
    got.sort();
    expected.sort();
    assert!(got == expected, "messages were lost, mixed up or altered");
    shut_down_within(server, Duration::from_secs(5)).await;
}

/// A message unique to client `n`, message `m`, with dot-stuffed lines and some bulk.
fn message_body(n: usize, m: usize) -> String {
    let mut body =
        format!("From: sender{n}@example.com\r\nSubject: message {m} of client {n}\r\n\r\n");
    for line in 0..50 {
        body.push_str(&format!("client {n} message {m} line {line}\r\n"));
    }
    body.push_str(&format!("..dot-stuffed {n}/{m}\r\nend\r\n"));
    body
}

/// Connects until the server admits the client (a slot is released only after the previous
/// connection's task ends, a moment after its socket closes).
async fn connect_when_admitted(addr: std::net::SocketAddr) -> Client {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Client::connect_raw(addr).await;
        let greeting = c.reply().await;
        if greeting[0].starts_with("220 ") {
            return c;
        }
        assert!(Instant::now() < deadline, "never admitted: {greeting:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn max_connections_refuses_with_421() {
    let cfg = {
        let mut config = config();
        config.max_connections = Some(2);
        config.max_connections_per_ip = None;
        config
    };
    let server = start(Sink, cfg).await;
    let addr = server.local_addr();
    let mut first = Client::connect(addr).await;
    let second = Client::connect(addr).await;
    for _ in 0..3 {
        let mut refused = Client::connect_raw(addr).await;
        assert_eq!(
            refused.reply().await,
            ["421 4.3.2 Too many connections, try again later"]
        );
        refused.expect_closed().await;
    }
    // Refused clients did not use up places; leaving clients free theirs.
    first.expect("QUIT", "221 Bye").await;
    first.expect_closed().await;
    let mut third = connect_when_admitted(addr).await;
    let mut refused = Client::connect_raw(addr).await;
    assert_eq!(
        refused.reply().await,
        ["421 4.3.2 Too many connections, try again later"]
    );
    // A client that just drops the connection frees its place too.
    drop(second);
    let mut fourth = connect_when_admitted(addr).await;
    third.expect("NOOP", "250 OK").await;
    fourth.expect("NOOP", "250 OK").await;
}

#[tokio::test]
async fn max_connections_per_ip_refuses_only_that_address() {
    let cfg = {
        let mut config = config();
        config.max_connections_per_ip = Some(2);
        config
    };
    let server = start(Sink, cfg).await;
    let addr = server.local_addr();
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut a = Client::connect(addr).await;
    let _b = Client::connect(addr).await;
    let mut refused = Client::connect_raw_from(local, addr).await;
    assert_eq!(
        refused.reply().await,
        ["421 4.7.0 Too many connections from your address"]
    );
    refused.expect_closed().await;
    let mut elsewhere = Client::connect_raw_from(other, addr).await;
    assert_eq!(elsewhere.reply().await, ["220 test.example smtpd test"]);
    elsewhere.expect("NOOP", "250 OK").await;
    a.expect("QUIT", "221 Bye").await;
    a.expect_closed().await;
    let mut again = connect_when_admitted(addr).await;
    again.expect("NOOP", "250 OK").await;
}

#[tokio::test]
async fn the_default_per_ip_limit_is_50() {
    let server = start(Sink, config()).await;
    let addr = server.local_addr();
    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(Client::connect(addr).await);
    }
    let mut refused = Client::connect_raw(addr).await;
    assert_eq!(
        refused.reply().await,
        ["421 4.7.0 Too many connections from your address"]
    );
    for c in &mut clients {
        c.expect("NOOP", "250 OK").await;
    }
}
