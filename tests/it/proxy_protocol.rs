//! PROXY protocol v1 and v2 (HAProxy's `proxy-protocol.txt`): the header before the greeting,
//! the proxied client as the session's peer, and every way a header is refused: malformed,
//! from an untrusted source, too slow, or by the `handle_proxy` hook. The last tests put a real
//! HAProxy (`send-proxy`, `send-proxy-v2`) in front of the server.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{
    Client, KillOnDrop, SharedBuf, Smtpd, TempDir, smtpd_command, start_in_memory,
};
use smtp_core::{
    Cidr, Config, Envelope, Handler, ProxyCommand, ProxyData, ProxyProtocol, Reply, ServerHandle,
    Session,
};
use tokio::io::{AsyncRead, AsyncWrite};

/// What the handler saw: the peer at `handle_proxy`, and at `handle_data` with the session's
/// PROXY data.
#[derive(Clone, Default)]
struct Seen {
    proxy_hook: Arc<Mutex<Vec<String>>>,
    data: Arc<Mutex<Vec<PeerAndProxy>>>,
}

type PeerAndProxy = (String, Option<ProxyData>);

struct Recorder {
    seen: Seen,
    refuse: Option<IpAddr>,
}

impl Handler for Recorder {
    async fn handle_proxy(&self, session: &mut Session, data: &ProxyData) -> bool {
        self.seen
            .proxy_hook
            .lock()
            .unwrap()
            .push(session.peer().to_string());
        data.source.map(|s| s.ip()) != self.refuse || self.refuse.is_none()
    }

    async fn handle_data(&self, session: &mut Session, _: &mut Envelope) -> Reply {
        let entry = (session.peer().to_string(), session.proxy_data().cloned());
        self.seen.data.lock().unwrap().push(entry);
        Reply::ok()
    }
}

fn proxy_config(trusted: &[&str]) -> Config {
    {
        let mut config = crate::support::config();
        config.proxy_protocol = Some(ProxyProtocol {
            timeout: Duration::from_secs(5),
            trusted: trusted.iter().map(|c| c.parse::<Cidr>().unwrap()).collect(),
        });
        config
    }
}

async fn start(config: Config, refuse: Option<IpAddr>) -> (ServerHandle, Seen) {
    let seen = Seen::default();
    let handler = Recorder {
        seen: seen.clone(),
        refuse,
    };
    (crate::support::start(handler, config).await, seen)
}

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// A version 2 header: `cmd` 0 LOCAL or 1 PROXY, `fam` the family/protocol byte.
fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | cmd);
    h.push(fam);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn v2_tcp4(src: [u8; 4], sport: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut body = src.to_vec();
    body.extend_from_slice(&[198, 51, 100, 2]);
    body.extend_from_slice(&sport.to_be_bytes());
    body.extend_from_slice(&25u16.to_be_bytes());
    body.extend_from_slice(tlvs);
    v2(1, 0x11, &body)
}

/// Sends `header`, then a whole message, and returns what `handle_data` saw.
async fn deliver_after(server: &ServerHandle, seen: &Seen, header: &[u8]) -> (String, ProxyData) {
    let mut c = Client::connect_raw(server.local_addr()).await;
    c.send(header).await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    c.cmd("EHLO client.example", 250).await;
    c.send_message(
        "a@example.com",
        &["b@example.com"],
        "Subject: hi\r\n\r\nhi\r\n",
    )
    .await;
    c.cmd("QUIT", 221).await;
    let (peer, data) = seen.data.lock().unwrap().pop().expect("a message");
    (peer, data.expect("session.proxy_data()"))
}

#[tokio::test]
async fn v1_tcp4_source_becomes_the_peer() {
    let (server, seen) = start(proxy_config(&[]), None).await;
    let header = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n";
    let (peer, data) = deliver_after(&server, &seen, header).await;
    assert_eq!(peer, "192.0.2.1:56324");
    assert_eq!(data.source, Some("192.0.2.1:56324".parse().unwrap()));
    assert_eq!(data.destination, Some("198.51.100.2:25".parse().unwrap()));
    assert_eq!((data.version, data.command), (1, ProxyCommand::Proxy));
    assert_eq!(*seen.proxy_hook.lock().unwrap(), ["192.0.2.1:56324"]);
    server.shutdown().await;
}

#[tokio::test]
async fn v1_tcp6() {
    let (server, seen) = start(proxy_config(&[]), None).await;
    let header = b"PROXY TCP6 2001:db8::1 2001:db8::2 40000 25\r\n";
    let (peer, data) = deliver_after(&server, &seen, header).await;
    assert_eq!(peer, "[2001:db8::1]:40000");
    assert_eq!(data.destination, Some("[2001:db8::2]:25".parse().unwrap()));
    server.shutdown().await;
}

#[tokio::test]
async fn v1_unknown_keeps_the_socket_peer() {
    let (server, seen) = start(proxy_config(&[]), None).await;
    let mut c = Client::connect_raw(server.local_addr()).await;
    let me = c.local_addr().to_string();
    c.send(b"PROXY UNKNOWN\r\n").await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    c.cmd("EHLO client.example", 250).await;
    c.send_message("a@example.com", &["b@example.com"], "hi\r\n")
        .await;
    let (peer, data) = seen.data.lock().unwrap().pop().unwrap();
    assert_eq!(peer, me);
    assert_eq!(data.unwrap().source, None);
    server.shutdown().await;
}

#[tokio::test]
async fn v2_tcp4_with_tlvs() {
    let (server, seen) = start(proxy_config(&[]), None).await;
    // ALPN "smtp", then a NOOP TLV.
    let tlvs = [0x01, 0, 4, b's', b'm', b't', b'p', 0x04, 0, 1, 0];
    let header = v2_tcp4([203, 0, 113, 7], 4242, &tlvs);
    let (peer, data) = deliver_after(&server, &seen, &header).await;
    assert_eq!(peer, "203.0.113.7:4242");
    assert_eq!((data.version, data.command), (2, ProxyCommand::Proxy));
    assert_eq!(data.tlvs, vec![(1, b"smtp".to_vec()), (4, vec![0])]);
    server.shutdown().await;
}

#[tokio::test]
async fn v2_tcp6() {
    let (server, seen) = start(proxy_config(&[]), None).await;
    let mut body = Vec::new();
    body.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    body.extend_from_slice(&[0x9c, 0x40, 0, 25]);
    let (peer, _) = deliver_after(&server, &seen, &v2(1, 0x21, &body)).await;
    assert_eq!(peer, "[2001:db8::7]:40000");
    server.shutdown().await;
}

#[tokio::test]
async fn v2_local_keeps_the_socket_peer() {
    let (server, seen) = start(proxy_config(&[]), None).await;
    let mut c = Client::connect_raw(server.local_addr()).await;
    let me = c.local_addr().to_string();
    c.send(&v2(0, 0x00, &[])).await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    c.cmd("EHLO client.example", 250).await;
    c.send_message("a@example.com", &["b@example.com"], "hi\r\n")
        .await;
    let (peer, data) = seen.data.lock().unwrap().pop().unwrap();
    assert_eq!(peer, me);
    assert_eq!(data.unwrap().command, ProxyCommand::Local);
    server.shutdown().await;
}

#[tokio::test]
async fn header_split_byte_by_byte() {
    let (server, seen) = start(proxy_config(&[]), None).await;
    let headers = [
        b"PROXY TCP4 192.0.2.9 198.51.100.2 1000 25\r\n".to_vec(),
        v2_tcp4([192, 0, 2, 9], 1000, &[]),
    ];
    for header in headers {
        let mut c = Client::connect_raw(server.local_addr()).await;
        for byte in &header {
            c.send(std::slice::from_ref(byte)).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
        c.cmd("HELO client.example", 250).await;
        c.send_message("a@example.com", &["b@example.com"], "hi\r\n")
            .await;
        let (peer, _) = seen.data.lock().unwrap().pop().unwrap();
        assert_eq!(peer, "192.0.2.9:1000");
    }
    server.shutdown().await;
}

/// Commands sent in the same packet as the header are the session's first commands; a
/// parser that read its buffer's whole contents as the header would lose them.
#[tokio::test]
async fn bytes_after_the_header_in_the_same_packet_are_kept() {
    let (server, _) = start(proxy_config(&[]), None).await;
    for header in [
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 25\r\n".to_vec(),
        v2_tcp4([192, 0, 2, 1], 1, &[]),
    ] {
        let mut c = Client::connect_raw(server.local_addr()).await;
        let mut packet = header;
        packet.extend_from_slice(b"HELO client.example\r\nNOOP\r\n");
        c.send(&packet).await;
        assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
        assert_eq!(c.reply().await, ["250 test.example"]);
        assert_eq!(c.reply().await, ["250 OK"]);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_headers_are_closed_with_nothing_sent() {
    let (server, seen) = start(proxy_config(&[]), None).await;
    let mut too_long = b"PROXY UNKNOWN ".to_vec();
    too_long.resize(200, b'x');
    let mut bad_version = v2_tcp4([192, 0, 2, 1], 1, &[]);
    bad_version[12] = 0x31;
    let cases: Vec<Vec<u8>> = vec![
        b"EHLO client.example\r\n".to_vec(),
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 25\n".to_vec(),
        b"PROXY TCP4 192.0.2.1 198.51.100.2 01 25\r\n".to_vec(),
        b"PROXY TCP4 2001:db8::1 198.51.100.2 1 25\r\n".to_vec(),
        b"PROXY TCP5 192.0.2.1 198.51.100.2 1 25\r\n".to_vec(),
        too_long,
        bad_version,
        v2(1, 0x11, &[0; 4]),
    ];
    for case in cases {
        let mut c = Client::connect_raw(server.local_addr()).await;
        c.send(&case).await;
        c.expect_closed().await;
    }
    assert!(seen.proxy_hook.lock().unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn untrusted_source_is_closed_with_nothing_sent() {
    let (server, seen) = start(proxy_config(&["10.0.0.0/8", "2001:db8::/32"]), None).await;
    let mut c = Client::connect_raw(server.local_addr()).await;
    c.send(b"PROXY TCP4 192.0.2.1 198.51.100.2 1 25\r\n").await;
    c.expect_closed().await;
    assert!(seen.proxy_hook.lock().unwrap().is_empty());
    server.shutdown().await;

    let (server, _) = start(proxy_config(&["127.0.0.0/8"]), None).await;
    let mut c = Client::connect_raw(server.local_addr()).await;
    c.send(b"PROXY TCP4 192.0.2.1 198.51.100.2 1 25\r\n").await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    server.shutdown().await;
}

fn slow_header_config() -> Config {
    let mut config = proxy_config(&[]);
    config.proxy_protocol.as_mut().unwrap().timeout = Duration::from_millis(300);
    config
}

/// Sends `partial`, the start of a header at most, and checks that the server closes the
/// connection after the header timeout (300 ms), without a word.
async fn closed_after_the_header_timeout<S: AsyncRead + AsyncWrite + Unpin>(
    mut c: Client<S>,
    partial: &[u8],
) {
    let started = tokio::time::Instant::now();
    c.send(partial).await;
    c.expect_closed().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn a_header_that_does_not_arrive_in_time_is_closed_with_nothing_sent() {
    let (server, _) = start(slow_header_config(), None).await;
    let c = Client::connect_raw(server.local_addr()).await;
    closed_after_the_header_timeout(c, b"PROXY TCP4 192.0.2.1").await;
    server.shutdown().await;
}

/// The same for no header at all and for part of a v2 signature, on a paused clock.
#[tokio::test(start_paused = true)]
async fn a_header_that_never_starts_or_stops_early_is_closed_with_nothing_sent() {
    let server = start_in_memory(smtp_core::handlers::Sink, slow_header_config());
    for partial in [&b""[..], b"PROXY TCP4 192.0.2.1", &V2_SIGNATURE[..7]] {
        closed_after_the_header_timeout(Client::in_memory(&server), partial).await;
    }
}

#[tokio::test]
async fn handle_proxy_can_refuse() {
    let refused: IpAddr = "192.0.2.66".parse().unwrap();
    let (server, seen) = start(proxy_config(&[]), Some(refused)).await;
    let mut c = Client::connect_raw(server.local_addr()).await;
    c.send(b"PROXY TCP4 192.0.2.66 198.51.100.2 1 25\r\n").await;
    c.expect_closed().await;
    assert_eq!(*seen.proxy_hook.lock().unwrap(), ["192.0.2.66:1"]);
    let mut c = Client::connect_raw(server.local_addr()).await;
    c.send(b"PROXY TCP4 192.0.2.67 198.51.100.2 1 25\r\n").await;
    assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
    server.shutdown().await;
}

#[tokio::test]
async fn without_proxy_protocol_a_header_is_an_unknown_command() {
    let (server, _) = start(crate::support::config(), None).await;
    let mut c = Client::connect(server.local_addr()).await;
    c.expect(
        "PROXY TCP4 192.0.2.1 198.51.100.2 1 25",
        "500 Error: command \"PROXY\" not recognized",
    )
    .await;
    server.shutdown().await;
}

/// Behind a proxy every client shares the proxy's address: the per-IP limit must count the
/// client named in the header, or the 51st client of a busy proxy would be refused.
#[tokio::test]
async fn the_per_ip_limit_counts_the_proxied_client() {
    let config = {
        let mut config = proxy_config(&["127.0.0.1/32"]);
        config.max_connections_per_ip = Some(1);
        config
    };
    let (server, _) = start(config, None).await;
    let mut first = Client::connect_raw(server.local_addr()).await;
    first
        .send(b"PROXY TCP4 192.0.2.1 198.51.100.2 1 25\r\n")
        .await;
    assert_eq!(first.reply().await, ["220 test.example smtpd test"]);
    let mut other = Client::connect_raw(server.local_addr()).await;
    other
        .send(b"PROXY TCP4 192.0.2.2 198.51.100.2 1 25\r\n")
        .await;
    assert_eq!(other.reply().await, ["220 test.example smtpd test"]);
    let mut same = Client::connect_raw(server.local_addr()).await;
    same.send(b"PROXY TCP4 192.0.2.1 198.51.100.2 2 25\r\n")
        .await;
    assert_eq!(
        same.reply().await,
        ["421 4.7.0 Too many connections from your address"]
    );
    same.expect_closed().await;
    server.shutdown().await;
}

/// Log lines of the session name the proxied client, not the proxy.
#[test]
fn log_lines_name_the_proxied_client() {
    let logs = SharedBuf::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (server, seen) = start(proxy_config(&[]), None).await;
        let header = b"PROXY TCP4 192.0.2.44 198.51.100.2 5555 25\r\n";
        deliver_after(&server, &seen, header).await;
        server.shutdown().await;
    });
    let text = logs.text();
    let received = text
        .lines()
        .find(|l| l.contains("message received"))
        .expect("a `message received` line");
    assert!(received.contains("peer=192.0.2.44:5555"), "{received}");
    assert!(text.contains("via PROXY protocol"), "{text}");
}

// ---- HAProxy in front ----

/// Starts HAProxy with one frontend per `(send-proxy option)` relaying to `backend`, and
/// returns it with the frontend addresses once they accept connections.
async fn haproxy(
    dir: &TempDir,
    backend: SocketAddr,
    options: &[&str],
) -> Option<(KillOnDrop, Vec<SocketAddr>)> {
    let binary = crate::support::tools::haproxy()?;
    let mut config = String::from(
        "global\n    maxconn 64\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n",
    );
    let mut fronts = Vec::new();
    for (i, option) in options.iter().enumerate() {
        let port = crate::support::free_port();
        fronts.push(SocketAddr::from(([127, 0, 0, 1], port)));
        config.push_str(&format!(
            "frontend f{i}\n    bind 127.0.0.1:{port}\n    default_backend b{i}\nbackend b{i}\n    server s1 {backend} {option}\n"
        ));
    }
    let path = dir.0.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = std::process::Command::new(binary)
        .arg("-f")
        .arg(&path)
        .arg("-db")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start haproxy");
    let child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    for front in &fronts {
        while tokio::net::TcpStream::connect(front).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "haproxy did not start listening on {front}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Some((child, fronts))
}

#[tokio::test]
async fn haproxy_send_proxy_v1_and_v2() {
    let (server, seen) = start(proxy_config(&["127.0.0.1/32"]), None).await;
    let dir = TempDir::new("haproxy");
    let Some((_haproxy, fronts)) =
        haproxy(&dir, server.local_addr(), &["send-proxy", "send-proxy-v2"]).await
    else {
        return;
    };
    for (front, version) in fronts.iter().zip([1, 2]) {
        // From 127.0.0.2, so that the client's address differs from HAProxy's own 127.0.0.1.
        let mut c = Client::connect_raw_from("127.0.0.2".parse().unwrap(), *front).await;
        let me = c.local_addr();
        assert_eq!(c.reply().await, ["220 test.example smtpd test"]);
        c.cmd("EHLO client.example", 250).await;
        c.send_message("a@example.com", &["b@example.com"], "hi\r\n")
            .await;
        c.cmd("QUIT", 221).await;
        let data = seen.data.lock().unwrap().clone();
        let (peer, proxy) = data
            .iter()
            .find(|(peer, _)| *peer == me.to_string())
            .unwrap_or_else(|| panic!("no message from {me}: {data:?}"))
            .clone();
        assert_eq!(peer, me.to_string());
        let proxy = proxy.unwrap();
        assert_eq!(proxy.version, version);
        assert_eq!(proxy.source, Some(me));
        assert_eq!(proxy.destination, Some(*front));
    }
    server.shutdown().await;
}

/// The same through the ready-made binary: `smtpd --proxy-protocol --proxy-trusted`, whose
/// Debugging handler prints `X-Peer: <client>`.
#[tokio::test]
async fn smtpd_binary_behind_haproxy() {
    let port = crate::support::free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = smtpd_command();
    command
        .args(["--listen", &addr.to_string(), "--hostname", "bin.example"])
        .args(["--ident", "test", "--proxy-protocol"])
        .args(["--proxy-trusted", "127.0.0.1/32", "--proxy-trusted", "::1"]);
    let smtpd = Smtpd::start(command);
    let dir = TempDir::new("haproxy-bin");
    let Some((_haproxy, fronts)) = haproxy(&dir, addr, &["send-proxy-v2"]).await else {
        return;
    };
    let mut c = Client::connect_raw_from("127.0.0.3".parse().unwrap(), fronts[0]).await;
    let me = c.local_addr();
    assert_eq!(c.reply().await, ["220 bin.example test"]);
    c.cmd("EHLO client.example", 250).await;
    c.send_message(
        "a@example.com",
        &["b@example.com"],
        "Subject: via haproxy\r\n\r\nhi\r\n",
    )
    .await;
    c.cmd("QUIT", 221).await;
    let printed = smtpd.stdout_until("X-Peer:");
    assert_eq!(printed.last().unwrap(), &format!("X-Peer: {me}"));
}

/// On an implicit-TLS listener the TLS handshake follows the header, often in the same
/// packet: the server must leave those bytes to TLS.
#[tokio::test]
async fn implicit_tls_behind_a_proxy() {
    use crate::support::tls::{Pki, start_both, tls_config};
    let pki = Pki::new();
    let seen = Seen::default();
    let handler = Recorder {
        seen: seen.clone(),
        refuse: None,
    };
    let config = {
        let mut config = tls_config(&pki);
        config.proxy_protocol = proxy_config(&[]).proxy_protocol;
        config
    };
    let (server, _, implicit) = start_both(handler, config).await;
    let mut plain = Client::connect_raw(implicit).await;
    plain.send(&v2_tcp4([192, 0, 2, 80], 8080, &[])).await;
    let mut d = plain
        .handshake(pki.client_config())
        .await
        .expect("TLS handshake");
    assert_eq!(d.reply().await, ["220 test.example smtpd test"]);
    d.ehlo("client.example").await;
    d.begin_data("a@example.com", &["b@example.com"]).await;
    d.send(b"hi\r\n").await;
    d.cmd(".", 250).await;
    let (peer, data) = seen.data.lock().unwrap().pop().expect("a message");
    assert_eq!(peer, "192.0.2.80:8080");
    assert_eq!(data.unwrap().version, 2);
    server.shutdown().await;
}
