//! What one connection does in each workload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::cli::Workload;
use crate::conn::{Conn, Fail};
use crate::scram::{self, Scram};
use crate::script::{Bodies, Script};
use crate::slots::Slots;

/// Everything a connection task needs, fixed for the whole process.
pub struct Plan {
    pub workload: Workload,
    pub addr: std::net::SocketAddr,
    pub pipeline: bool,
    pub script: Script,
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
    pub user: String,
    pub pass: String,
    pub op_timeout: Duration,
}

/// What one connection task measured.
#[derive(Default)]
pub struct Tally {
    /// Latency of each completed transaction, in nanoseconds.
    pub latencies: Vec<u64>,
    pub failures: u64,
    pub first_error: Option<String>,
    pub resumed: u64,
    /// Sessions that could not pipeline because the server did not offer PIPELINING.
    pub unpipelined: u64,
}

impl Tally {
    fn done(&mut self, slot_start: Instant) {
        self.latencies.push(slot_start.elapsed().as_nanos() as u64);
    }

    fn fail(&mut self, slots: &Slots, e: Fail) {
        self.failures += 1;
        self.first_error.get_or_insert(e.0);
        slots.failed();
    }
}

/// Runs transactions until the run is over.
pub async fn drive(plan: Arc<Plan>, slots: Arc<Slots>, expected: usize) -> Tally {
    let mut t = Tally {
        latencies: Vec::with_capacity(expected),
        ..Tally::default()
    };
    let mut bodies = Bodies::of(&plan.script);
    if plan.workload.keeps_alive() {
        keepalive(&plan, &slots, &mut bodies, &mut t).await;
    } else {
        let mut scram = Scram::new(&plan.user, &plan.pass);
        while let Some(slot) = slots.take().await {
            match timeout(
                plan.op_timeout,
                one_connection(&plan, &mut scram, &mut bodies, &mut t),
            )
            .await
            {
                Ok(Ok(())) => t.done(slot.start),
                Ok(Err(e)) => t.fail(&slots, e),
                Err(_) => t.fail(&slots, Fail("timed out".into())),
            }
        }
    }
    t
}

async fn keepalive(plan: &Plan, slots: &Slots, bodies: &mut Bodies, t: &mut Tally) {
    let s = &plan.script;
    'session: while !slots.done() {
        let (mut conn, pipelining) = match timeout(plan.op_timeout, open(plan)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                t.fail(slots, e);
                continue;
            }
            Err(_) => {
                t.fail(slots, Fail("timed out opening the session".into()));
                continue;
            }
        };
        if plan.workload == Workload::KeepaliveAuth
            && let Err(e) = auth_plain(&mut conn, s).await
        {
            t.fail(slots, e);
            continue;
        }
        if plan.pipeline && !pipelining {
            t.unpipelined += 1;
        }
        if plan.pipeline && pipelining && !slots.paced() {
            // Closed loop: the body goes out with the next MAIL, RCPT and DATA in one write.
            let Some(mut slot) = slots.take_now() else {
                quit(conn, s).await;
                break;
            };
            if let Err(e) = conn.send(&s.group).await {
                t.fail(slots, e);
                continue;
            }
            loop {
                let step = async {
                    conn.expect("MAIL", 2).await?;
                    conn.expect("RCPT", 2).await?;
                    conn.expect("DATA", 3).await?;
                    let next = slots.take_now();
                    conn.send(if next.is_some() {
                        bodies.end_next()
                    } else {
                        bodies.end()
                    })
                    .await?;
                    conn.expect("end of data", 2).await?;
                    Ok::<_, Fail>(next)
                };
                match timeout(plan.op_timeout, step).await {
                    Ok(Ok(next)) => {
                        t.done(slot.start);
                        match next {
                            Some(n) => slot = n,
                            None => break,
                        }
                    }
                    Ok(Err(e)) => {
                        t.fail(slots, e);
                        continue 'session;
                    }
                    Err(_) => {
                        t.fail(slots, Fail("message timed out".into()));
                        continue 'session;
                    }
                }
            }
            quit(conn, s).await;
            break;
        }
        let pipeline = plan.pipeline && pipelining;
        while let Some(slot) = slots.take().await {
            match timeout(plan.op_timeout, message(&mut conn, s, bodies, pipeline)).await {
                Ok(Ok(())) => t.done(slot.start),
                Ok(Err(e)) => {
                    t.fail(slots, e);
                    continue 'session;
                }
                Err(_) => {
                    t.fail(slots, Fail("message timed out".into()));
                    continue 'session;
                }
            }
        }
        quit(conn, s).await;
        break;
    }
}

/// Connects, reads the greeting and says EHLO; tells whether the server offers PIPELINING.
async fn open(plan: &Plan) -> Result<(Conn<TcpStream>, bool), Fail> {
    let mut conn = Conn::new(connect(plan).await?);
    conn.expect("greeting", 2).await?;
    let pipelining = ehlo(&mut conn, &plan.script).await?;
    Ok((conn, pipelining))
}

async fn connect(plan: &Plan) -> Result<TcpStream, Fail> {
    let tcp = TcpStream::connect(plan.addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    s: &Script,
) -> Result<bool, Fail> {
    conn.send(s.ehlo).await?;
    let mut pipelining = false;
    conn.expect_scan("EHLO", 2, |line| {
        pipelining |= line.len() >= 14 && line[4..].eq_ignore_ascii_case(b"PIPELINING");
    })
    .await?;
    Ok(pipelining)
}

async fn auth_plain<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    s: &Script,
) -> Result<(), Fail> {
    conn.send(&s.auth_plain).await?;
    // Any 2xx: postfix's smtp-sink answers AUTH with a stub 250.
    conn.expect("AUTH PLAIN", 2).await
}

async fn message<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    s: &Script,
    bodies: &mut Bodies,
    pipeline: bool,
) -> Result<(), Fail> {
    if pipeline {
        conn.send(&s.group).await?;
        conn.expect("MAIL", 2).await?;
        conn.expect("RCPT", 2).await?;
    } else {
        conn.send(s.mail).await?;
        conn.expect("MAIL", 2).await?;
        conn.send(s.rcpt).await?;
        conn.expect("RCPT", 2).await?;
        conn.send(s.data).await?;
    }
    conn.expect("DATA", 3).await?;
    conn.send(bodies.end()).await?;
    conn.expect("end of data", 2).await
}

/// Says QUIT at the end of a kept-alive session; its failure does not count.
async fn quit(mut conn: Conn<TcpStream>, s: &Script) {
    let _ = timeout(Duration::from_secs(1), async {
        conn.send(s.quit).await?;
        conn.expect("QUIT", 2).await
    })
    .await;
}

async fn one_connection(
    plan: &Plan,
    scram: &mut Scram,
    bodies: &mut Bodies,
    t: &mut Tally,
) -> Result<(), Fail> {
    let s = &plan.script;
    match plan.workload {
        Workload::ImplicitTlsAuth => {
            let tls = handshake(plan, connect(plan).await?, t).await?;
            let mut conn = Conn::new(tls);
            conn.expect("greeting", 2).await?;
            ehlo(&mut conn, s).await?;
            auth_plain(&mut conn, s).await?;
            close(conn, s).await
        }
        Workload::StarttlsAuth => {
            let mut conn = Conn::new(connect(plan).await?);
            conn.expect("greeting", 2).await?;
            ehlo(&mut conn, s).await?;
            conn.send(s.starttls).await?;
            conn.expect("STARTTLS", 2).await?;
            let tls = handshake(plan, conn.into_inner()?, t).await?;
            let mut conn = Conn::new(tls);
            ehlo(&mut conn, s).await?;
            auth_plain(&mut conn, s).await?;
            close(conn, s).await
        }
        _ => {
            let (mut conn, pipelining) = open(plan).await?;
            match plan.workload {
                Workload::ConnAuth => auth_plain(&mut conn, s).await?,
                Workload::Scram => auth_scram(&mut conn, scram).await?,
                _ => message(&mut conn, s, bodies, plan.pipeline && pipelining).await?,
            }
            close(conn, s).await
        }
    }
}

async fn handshake(
    plan: &Plan,
    tcp: TcpStream,
    t: &mut Tally,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Fail> {
    let (connector, name) = plan
        .tls
        .as_ref()
        .ok_or_else(|| Fail("no --ca given".into()))?;
    let tls = connector
        .connect(name.clone(), tcp)
        .await
        .map_err(|e| Fail(format!("TLS handshake: {e}")))?;
    if tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        t.resumed += 1;
    }
    Ok(tls)
}

async fn auth_scram<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    scram: &mut Scram,
) -> Result<(), Fail> {
    let first = scram.first();
    conn.send(format!("AUTH SCRAM-SHA-256 {first}\r\n").as_bytes())
        .await?;
    conn.expect("AUTH SCRAM-SHA-256", 3).await?;
    let fin = scram.finish(conn.text())?;
    conn.send(format!("{}\r\n", fin.message).as_bytes()).await?;
    let code = conn.reply(|_| {}).await?;
    match code {
        334 => {
            scram::verify(conn.text(), &fin.server_signature)?;
            conn.send(b"\r\n").await?;
            conn.expect("SCRAM end", 2).await
        }
        200..=299 => Ok(()),
        _ => Err(Fail(format!(
            "SCRAM proof: {code} {}",
            String::from_utf8_lossy(conn.text())
        ))),
    }
}

/// QUIT, its reply, then the connection is dropped.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: Conn<S>,
    s: &Script,
) -> Result<(), Fail> {
    conn.send(s.quit).await?;
    conn.expect("QUIT", 2).await
}
