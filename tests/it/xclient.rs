//! XCLIENT (Postfix's `XCLIENT_README`): a trusted proxy names the client it speaks for and
//! the session starts over as that client's; anyone else changes nothing. The last tests put
//! a real nginx mail proxy (`auth_http`, `xclient on`) in front of the server.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::tools::{available, run};
use crate::support::{Client, Smtpd, TempDir, TermOnDrop, b64, plain};
use smtp_core::{Cidr, Config, Envelope, Handler, HeloProto, Reply, ServerHandle, Session};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// What the handler saw at DATA.
#[derive(Clone, Debug, Default, PartialEq)]
struct Seen {
    peer: String,
    helo: Option<String>,
    login: Option<String>,
    mechanism: Option<String>,
    proto: Option<HeloProto>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Handler for Recorder {
    async fn handle_data(&self, session: &mut Session, _: &mut Envelope) -> Reply {
        let seen = Seen {
            peer: session.peer().to_string(),
            helo: session.host_name().map(str::to_owned),
            login: session
                .login_data()
                .map(|l| String::from_utf8_lossy(l).into_owned()),
            mechanism: session.auth_mechanism().map(str::to_owned),
            proto: session
                .xclient()
                .and_then(|x| x.proto.as_ref()?.known().copied()),
        };
        self.0.lock().unwrap().push(seen);
        Reply::ok()
    }
}

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

fn config(trusted: &str) -> Config {
    let mut config = crate::support::config();
    config.xclient_trusted = vec![trusted.parse::<Cidr>().unwrap()];
    config.auth_require_tls = false;
    config
}

async fn start(config: Config) -> (ServerHandle, Recorder) {
    let recorder = Recorder::default();
    (
        crate::support::start(recorder.clone(), config).await,
        recorder,
    )
}

const GREETING: &str = "220 test.example smtpd test";

async fn send_message(client: &mut Client) {
    client
        .send_message(
            "a@example.org",
            &["b@example.net"],
            "Subject: x\r\n\r\nhi\r\n",
        )
        .await;
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_and_the_session_starts_over() {
    let (server, recorder) = start(config("127.0.0.1/32")).await;
    let mut client = Client::connect(server.local_addr()).await;
    let extensions = client.ehlo("proxy.example").await;
    assert!(
        extensions
            .contains(&"XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT".to_owned()),
        "{extensions:?}"
    );
    client
        .expect(
            "XCLIENT NAME=mail.example ADDR=192.0.2.7 PORT=4242 PROTO=ESMTP \
             HELO=client+2Eexample LOGIN=alice DESTADDR=192.0.2.1 DESTPORT=587",
            GREETING,
        )
        .await;
    // HELO= counts as the client's greeting: MAIL may follow at once.
    send_message(&mut client).await;
    client
        .expect(
            &format!("AUTH PLAIN {}", plain("", "x", "y")),
            "503 Already authenticated",
        )
        .await;
    // Without HELO=, the proxy replays the client's EHLO; the earlier facts stay.
    client
        .expect(
            "XCLIENT ADDR=IPV6:2001:db8::5 LOGIN=[UNAVAILABLE]",
            GREETING,
        )
        .await;
    client.cmd("MAIL FROM:<a@example.org>", 250).await;
    client.cmd("RSET", 250).await;
    client.ehlo("again.example").await;
    send_message(&mut client).await;
    let seen = recorder.seen();
    assert_eq!(
        seen[0],
        Seen {
            peer: "192.0.2.7:4242".into(),
            helo: Some("client.example".into()),
            login: Some("alice".into()),
            mechanism: Some("XCLIENT".into()),
            proto: Some(HeloProto::Esmtp),
        }
    );
    assert_eq!(
        seen[1],
        Seen {
            peer: "[2001:db8::5]:4242".into(),
            helo: Some("again.example".into()),
            login: None,
            mechanism: None,
            proto: None,
        }
    );
}

#[tokio::test]
async fn untrusted_and_malformed_xclient_change_nothing() {
    let (server, recorder) = start(config("10.0.0.0/8")).await;
    let mut client = Client::connect(server.local_addr()).await;
    let extensions = client.ehlo("client.example").await;
    assert!(!extensions.iter().any(|e| e.starts_with("XCLIENT")));
    let refused = "550 5.7.0 Error: insufficient authorization";
    client
        .expect("XCLIENT ADDR=192.0.2.7 LOGIN=alice", refused)
        .await;
    client.expect("XCLIENT", refused).await;
    send_message(&mut client).await;
    let local = client.local_addr().to_string();
    let untouched = Seen {
        peer: local.clone(),
        helo: Some("client.example".into()),
        login: None,
        mechanism: None,
        proto: None,
    };
    assert_eq!(recorder.seen(), vec![untouched.clone()]);

    let (server, recorder) = start(config("127.0.0.1/32")).await;
    let mut client = Client::connect(server.local_addr()).await;
    client.ehlo("client.example").await;
    let cases = [
        ("XCLIENT", "501 5.5.4 Syntax: XCLIENT attribute=value..."),
        (
            "XCLIENT ADDR=192.0.2.7 FOO=bar",
            "501 5.5.4 Bad XCLIENT attribute name: FOO=bar",
        ),
        (
            "XCLIENT LOGIN=alice ADDR=nowhere",
            "501 5.5.4 Bad XCLIENT ADDR syntax: nowhere",
        ),
        (
            "XCLIENT LOGIN=alice PORT=70000",
            "501 5.5.4 Bad XCLIENT PORT syntax: 70000",
        ),
        (
            "XCLIENT LOGIN=al+ice",
            "501 5.5.4 Bad XCLIENT LOGIN syntax: al+ice",
        ),
    ];
    for (line, reply) in cases {
        client.expect(line, reply).await;
    }
    client.cmd("MAIL FROM:<a@example.org>", 250).await;
    client
        .expect(
            "XCLIENT ADDR=192.0.2.7",
            "503 5.5.1 Error: MAIL transaction in progress",
        )
        .await;
    client.cmd("RCPT TO:<b@example.net>", 250).await;
    client.cmd("DATA", 354).await;
    client.send(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    assert!(client.reply().await[0].starts_with("250"));
    let untouched = Seen {
        peer: client.local_addr().to_string(),
        ..untouched
    };
    assert_eq!(recorder.seen(), vec![untouched]);
}

/// The proxy itself is not held to `max_connections_per_ip`; each client it names is.
#[tokio::test]
async fn per_address_limits_count_the_client_xclient_names() {
    let mut config = config("127.0.0.1/32");
    config.max_connections_per_ip = Some(1);
    let (server, _) = start(config).await;
    let mut first = Client::connect(server.local_addr()).await;
    let mut second = Client::connect(server.local_addr()).await;
    first.expect("XCLIENT ADDR=192.0.2.7", GREETING).await;
    second.expect("XCLIENT ADDR=192.0.2.8", GREETING).await;
    let mut third = Client::connect(server.local_addr()).await;
    third
        .expect(
            "XCLIENT ADDR=192.0.2.7",
            "421 4.7.0 Too many connections from your address",
        )
        .await;
    third.expect_closed().await;
    drop(first);
    // The first connection's place is free once the server has seen it close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = Client::connect(server.local_addr()).await;
        again.send(b"XCLIENT ADDR=192.0.2.7\r\n").await;
        if again.reply().await[0] == GREETING {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The binary: `--xclient-trusted`, the message printed with the named client, and the
/// failed-AUTH log line (for fail2ban) with the named client's address.
#[tokio::test]
async fn the_binary_takes_xclient_from_trusted_networks() {
    let smtpd = Smtpd::tcp(&[
        "--xclient-trusted",
        "127.0.0.1/32",
        "--auth-user",
        "bob:secret",
        "--no-auth-require-tls",
    ]);
    let mut client = Client::connect(smtpd.addr()).await;
    client.ehlo("proxy.example").await;
    client.cmd("XCLIENT ADDR=192.0.2.7 PORT=2525", 220).await;
    client.ehlo("client.example").await;
    send_message(&mut client).await;
    let printed = smtpd.stdout_until("X-Peer:");
    assert_eq!(printed.last().unwrap(), "X-Peer: 192.0.2.7:2525");
    client
        .cmd(&format!("AUTH PLAIN {}", b64("\0bob\0wrong")), 535)
        .await;
    let log = smtpd.stderr_until("AUTH failed");
    assert!(log.last().unwrap().contains("peer_ip=192.0.2.7"), "{log:?}");
}

// ---- A real nginx mail proxy in front of the server. ----

/// A one-line `auth_http` service: alice/s3cret is sent to `backend`, anything else refused.
async fn auth_http(backend: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16384 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request);
            let good = request.contains("Auth-User: alice\r\n")
                && request.contains("Auth-Pass: s3cret\r\n");
            let response = if good {
                format!(
                    "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: {}\r\n\
                     Auth-Port: {}\r\n\r\n",
                    backend.ip(),
                    backend.port()
                )
            } else {
                "HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\
                 Auth-Wait: 1\r\n\r\n"
                    .to_owned()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    addr
}

/// nginx as the recipe runs it, listening on 127.0.0.1 and asking `auth` before proxying.
async fn nginx(dir: &TempDir, auth: SocketAddr) -> (TermOnDrop, SocketAddr) {
    let port = crate::support::free_port();
    let conf = format!(
        "load_module /usr/lib/nginx/modules/ngx_mail_module.so;\n\
         worker_processes 1;\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         mail {{\n\
           server_name mx.test;\n\
           auth_http {auth}/auth;\n\
           server {{\n\
             listen 127.0.0.1:{port};\n\
             protocol smtp;\n\
             smtp_auth login plain;\n\
             xclient on;\n\
           }}\n\
         }}\n",
        dir = dir.0.display()
    );
    let path = dir.write("nginx.conf", conf);
    let child = TermOnDrop::spawn(
        Command::new("nginx")
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(&dir.0)
            .args(["-g", "daemon off;"]),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        let log = std::fs::read_to_string(dir.0.join("error.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "nginx did not start: {log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, addr)
}

fn nginx_available() -> bool {
    crate::support::tools::external_tool(
        "nginx with libnginx-mod-mail",
        Command::new("test").args(["-e", "/usr/lib/nginx/modules/ngx_mail_module.so"]),
    ) && crate::support::tools::external_tool("nginx", Command::new("nginx").arg("-v"))
}

#[tokio::test]
async fn behind_nginx_the_message_has_the_real_client_and_the_login_nginx_verified() {
    if !nginx_available() {
        return;
    }
    let (server, recorder) = start(config("127.0.0.1/32")).await;
    let auth = auth_http(server.local_addr()).await;
    let dir = TempDir::new("nginx-xclient");
    let (_nginx, proxy) = nginx(&dir, auth).await;
    let client_ip: IpAddr = "127.0.0.2".parse().unwrap();

    let mut client = Client::connect_raw_from(client_ip, proxy)
        .await
        .greeted()
        .await;
    client.ehlo("client.example").await;
    client
        .cmd(&format!("AUTH PLAIN {}", plain("", "alice", "s3cret")), 235)
        .await;
    send_message(&mut client).await;
    client.cmd("QUIT", 221).await;

    let mut refused = Client::connect_raw_from(client_ip, proxy)
        .await
        .greeted()
        .await;
    refused.ehlo("client.example").await;
    refused
        .cmd(&format!("AUTH PLAIN {}", plain("", "alice", "wrong")), 535)
        .await;

    // swaks, AUTH LOGIN through the same proxy.
    let mut swaks = Command::new("swaks");
    swaks.args(["--server", &proxy.to_string(), "--ehlo", "swaks.example"]);
    swaks.args([
        "--auth",
        "LOGIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "s3cret",
    ]);
    swaks.args(["--from", "alice@example.org", "--to", "carol@example.net"]);
    let swaks_ok = available("swaks") && {
        let out = run(swaks).await;
        assert!(
            out.status.success(),
            "{}",
            crate::support::tools::shown(&out)
        );
        true
    };

    let seen = recorder.seen();
    assert_eq!(seen.len(), 1 + usize::from(swaks_ok), "{seen:?}");
    // nginx 1.22 sends ADDR, LOGIN and NAME (no PORT: the port stays the proxy's); the
    // client's EHLO is replayed after the 220.
    assert!(seen[0].peer.starts_with("127.0.0.2:"), "{seen:?}");
    assert_eq!(
        seen[0],
        Seen {
            peer: seen[0].peer.clone(),
            helo: Some("client.example".into()),
            login: Some("alice".into()),
            mechanism: Some("XCLIENT".into()),
            proto: None,
        }
    );
    if swaks_ok {
        assert_eq!(seen[1].login.as_deref(), Some("alice"));
        assert_eq!(seen[1].helo.as_deref(), Some("swaks.example"));
        assert!(seen[1].peer.starts_with("127.0.0.1:"), "{seen:?}");
    }
}
