//! Hostile and broken clients and handlers: early talkers, slowloris, idle floods up to the
//! connection limits, resets in the middle of DATA, handlers that panic or never answer.
//! In every case the server keeps serving well-behaved clients and loses no message.
//!
//! Early talkers: a client that speaks before the greeting is served, after the greeting and
//! in order, as aiosmtpd does. Postfix's postscreen rejects such "pregreet" clients with
//! `554`; a deployment that wants that puts a front end (postscreen, a PROXY-protocol
//! balancer) before smtpd: smtpd sends its greeting at once, so there is no window to judge.
//!
//! Slowloris during DATA (each chunk restarts the idle timer, deliberately) is bounded by
//! `Config::min_data_rate`, tested in `governance.rs`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use smtp_core::{Envelope, Handler, Reply, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Issue 8 (early talkers; Postfix postscreen "pregreet"): commands sent before the greeting
/// get their replies after it, in order; nothing is answered before the `220`.
#[tokio::test]
async fn an_early_talker_is_answered_after_the_greeting() {
    let server = start(smtp_core::handlers::Sink, config()).await;
    let mut c = Client::connect_raw(server.local_addr()).await;
    c.send(b"EHLO early.example\r\nNOOP\r\nQUIT\r\n").await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    assert_eq!(c.reply().await[0], "250-test.example");
    assert_eq!(c.reply().await, ["250 OK"]);
    assert_eq!(c.reply().await, ["221 Bye"]);
    c.expect_closed().await;
    server.shutdown().await;
}

/// Slowloris (issue 8): a byte every half second of a command that never ends does not count as
/// activity, so the idle timeout closes the connection on time while another client is
/// served normally.
///
/// On a paused clock over in-memory streams: the idle timer is the same as on a socket
/// (`engine_lifecycle::an_idle_client_gets_421_and_is_closed`).
#[tokio::test(start_paused = true)]
async fn a_slowloris_client_is_cut_off_by_the_idle_timeout() {
    let server = start_in_memory(smtp_core::handlers::Sink, {
        let mut config = config();
        config.idle_timeout = Duration::from_secs(2);
        config
    });
    let mut slow = Client::in_memory(&server).greeted().await;
    let started = tokio::time::Instant::now();
    let trickle = async {
        // One byte every 0.5 s, until just before the timeout: a timer each byte restarted
        // would run until 3.5 s.
        for byte in b"NOOP".iter() {
            slow.send(&[*byte]).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        slow
    };
    let served = async {
        let mut c = Client::in_memory(&server).greeted().await;
        c.cmd("EHLO client.example", 250).await;
        let reply = c
            .deliver("a@example.com", &["b@example.com"], b"hi\r\n")
            .await;
        assert_eq!(reply, ["250 OK"]);
    };
    let (mut slow, ()) = tokio::join!(trickle, served);
    assert_eq!(
        slow.reply().await,
        ["421 4.4.2 test.example Error: timeout exceeded"]
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(2010),
        "closed after {elapsed:?}"
    );
    slow.expect_closed().await;
    server.shutdown().await;
}

/// Idle floods (issue 8): one address opening connections until it is refused gets
/// `421 4.7.0` past its per-address share, and a client from another address is served.
#[tokio::test]
async fn an_idle_flood_from_one_address_leaves_room_for_others() {
    let (handler, messages) = collector();
    let server = start(handler, {
        let mut config = config();
        config.max_connections = Some(30);
        config.max_connections_per_ip = Some(10);
        config
    })
    .await;
    let flooder = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut idle = Vec::new();
    for _ in 0..10 {
        let mut c = Client::connect_raw_from(flooder, server.local_addr()).await;
        assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
        idle.push(c);
    }
    for _ in 0..5 {
        let mut c = Client::connect_raw_from(flooder, server.local_addr()).await;
        assert_eq!(
            c.reply().await,
            ["421 4.7.0 Too many connections from your address"]
        );
        c.expect_closed().await;
    }
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut c = Client::connect_raw_from(other, server.local_addr()).await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    c.cmd("EHLO client.example", 250).await;
    let reply = c
        .deliver("a@example.com", &["b@example.com"], b"hi\r\n")
        .await;
    assert_eq!(reply, ["250 OK"]);
    assert_eq!(messages.lock().unwrap().len(), 1);
    drop(idle);
    server.shutdown().await;
}

/// Idle floods (issue 8): connections that fill the server up to `max_connections` and then
/// say nothing get `421 4.3.2` for the next client only until the idle timeout frees their
/// places; then a well-behaved client is served.
#[tokio::test]
async fn an_idle_flood_up_to_the_connection_limit_times_out() {
    let server = start(smtp_core::handlers::Sink, {
        let mut config = config();
        config.max_connections = Some(20);
        config.max_connections_per_ip = None;
        config.idle_timeout = Duration::from_secs(1);
        config
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(Client::connect(server.local_addr()).await);
    }
    let mut refused = Client::connect_raw(server.local_addr()).await;
    assert_eq!(
        refused.reply().await,
        ["421 4.3.2 Too many connections, try again later"]
    );
    for c in &mut idle {
        assert_eq!(
            c.reply().await,
            ["421 4.4.2 test.example Error: timeout exceeded"]
        );
        c.expect_closed().await;
    }
    // The places are released as the connections end; give the server a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}

/// Resets during DATA (issue 8; peers have crashed or kept half a message on a client RST):
/// a client that resets the connection halfway through a message delivers nothing, and the
/// server keeps serving — twenty times over.
#[tokio::test]
async fn a_reset_during_data_delivers_nothing_and_the_server_goes_on() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    for _ in 0..20 {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        stream
            .write_all(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: half\r\n\r\nhalf a mess")
            .await
            .unwrap();
        // Wait for the 354, so that the server is inside DATA when the reset comes.
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("354 ") {
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(REPLY_TIMEOUT, stream.read(&mut buf))
                .await
                .expect("timed out waiting for 354")
                .unwrap();
            assert!(n > 0, "closed before 354");
            seen.extend_from_slice(&buf[..n]);
        }
        // Linger 0: closing sends RST instead of FIN.
        stream.set_zero_linger().unwrap();
        drop(stream);
    }
    let mut c = Client::ehloed(server.local_addr()).await;
    let reply = c
        .deliver("a@example.com", &["b@example.com"], b"whole\r\n")
        .await;
    assert_eq!(reply, ["250 OK"]);
    {
        let messages = messages.lock().unwrap();
        assert_eq!(messages.len(), 1, "a reset message was delivered");
        assert_eq!(messages[0].content, b"whole\r\n");
    }
    server.shutdown().await;
}

/// Panics on every message whose body starts with `PANIC`; counts the others.
#[derive(Clone, Default)]
struct Panicky(Arc<AtomicUsize>);

impl Handler for Panicky {
    async fn handle_data(&self, _: &mut Session, envelope: &mut Envelope) -> Reply {
        if envelope.content.starts_with(b"PANIC") {
            panic!("storage exploded");
        }
        self.0.fetch_add(1, Ordering::SeqCst);
        Reply::ok()
    }
}

/// A handler that panics (issue 8): while twenty clients make `handle_data` panic at once,
/// each gets one `500` and keeps its connection, and every good message is counted once.
#[tokio::test]
async fn a_panicking_handler_under_load_costs_one_reply_each() {
    let handler = Panicky::default();
    let server = start(handler.clone(), config()).await;
    let addr = server.local_addr();
    let clients = (0..20).map(|_| {
        tokio::spawn(async move {
            let mut c = Client::ehloed(addr).await;
            let reply = c
                .deliver("a@example.com", &["b@example.com"], b"PANIC\r\n")
                .await;
            assert_eq!(reply, ["500 Error: (panic) storage exploded"]);
            let reply = c
                .deliver("a@example.com", &["b@example.com"], b"fine\r\n")
                .await;
            assert_eq!(reply, ["250 OK"]);
        })
    });
    for client in clients.collect::<Vec<_>>() {
        client.await.unwrap();
    }
    assert_eq!(handler.0.load(Ordering::SeqCst), 20);
    server.shutdown().await;
}

/// Never answers a message whose body starts with `HANG`.
struct Hanging;

impl Handler for Hanging {
    async fn handle_data(&self, _: &mut Session, envelope: &mut Envelope) -> Reply {
        if envelope.content.starts_with(b"HANG") {
            std::future::pending::<()>().await;
        }
        Reply::ok()
    }
}

/// A handler that hangs (issue 8). smtpd has no hook timeout: a hook is the application's
/// code, and cancelling it midway could lose a message it was storing, so a slow store is
/// the application's to bound (SECURITY.md). What smtpd guarantees: the hung hook holds only
/// its own connection, other clients are served, and shutdown still ends within
/// `shutdown_grace`. Regression: shutdown used to wait forever for the hung hook.
#[tokio::test]
async fn a_hanging_handler_holds_only_its_own_connection() {
    let server = start(Hanging, {
        let mut config = config();
        config.shutdown_grace = Duration::from_millis(500);
        config
    })
    .await;
    let mut hung = Client::ehloed(server.local_addr()).await;
    hung.begin_data("a@example.com", &["b@example.com"]).await;
    hung.send(b"HANG\r\n.\r\n").await;
    for _ in 0..3 {
        let mut c = Client::ehloed(server.local_addr()).await;
        let reply = c
            .deliver("a@example.com", &["b@example.com"], b"fine\r\n")
            .await;
        assert_eq!(reply, ["250 OK"]);
    }
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown waited for the hung hook");
    assert!(started.elapsed() < Duration::from_secs(3));
    hung.expect_closed().await;
}
