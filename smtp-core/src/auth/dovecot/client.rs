//! One multiplexed connection to Dovecot's auth-client socket: the handshake, request ids,
//! a reader task that routes each reply to its request, a writer task, and reconnection on
//! loss. Every wait is bounded by the options' timeouts.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use super::protocol::{
    self, AuthLine, ClientInfo, Frame, MAJOR_VERSION, MechInfo, Params, ServerLine,
    parse_server_line,
};
use super::{DovecotAddress, DovecotError, DovecotOptions};

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Lines queued for the writer task; a request sends one line per server reply.
const WRITE_QUEUE: usize = 256;

/// A reply of the server to one request.
pub(crate) enum Answer {
    Cont(String),
    Ok(Params),
    Fail(Params),
}

/// The requests waiting for a reply; `None` once the connection is lost.
type Pending = Arc<Mutex<Option<HashMap<u32, mpsc::Sender<Answer>>>>>;

/// An established connection.
struct Conn {
    lines: mpsc::Sender<String>,
    pending: Pending,
    next_id: AtomicU32,
    reader: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Conn {
    fn is_lost(&self) -> bool {
        self.pending.lock().unwrap().is_none()
    }

    /// A fresh request id and the receiver of its replies; `None` once the connection is lost.
    fn register(&self) -> Option<(u32, mpsc::Receiver<Answer>)> {
        let mut pending = self.pending.lock().unwrap();
        let pending = pending.as_mut()?;
        let id = loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 && !pending.contains_key(&id) {
                break id;
            }
        };
        let (tx, rx) = mpsc::channel(4);
        pending.insert(id, tx);
        Some((id, rx))
    }

    fn forget(&self, id: u32) {
        if let Some(pending) = self.pending.lock().unwrap().as_mut() {
            pending.remove(&id);
        }
    }
}

/// Marks the connection lost: every waiting request sees its channel close.
fn lose(pending: &Pending) {
    pending.lock().unwrap().take();
}

/// The client: the current connection, made again when lost.
pub(crate) struct Client {
    address: DovecotAddress,
    options: DovecotOptions,
    slot: tokio::sync::Mutex<Slot>,
    offered: Mutex<Vec<MechInfo>>,
}

#[derive(Default)]
struct Slot {
    conn: Option<Arc<Conn>>,
    retry_after: Option<Instant>,
}

/// Why a request got no answer from Dovecot.
#[derive(Debug)]
pub(crate) struct Unavailable;

impl Client {
    /// Connects once, so that a missing Dovecot is reported at startup.
    pub(crate) async fn connect(
        address: DovecotAddress,
        options: DovecotOptions,
    ) -> Result<Client, DovecotError> {
        let (conn, offered) = open(&address, &options).await?;
        Ok(Client {
            address,
            options,
            slot: tokio::sync::Mutex::new(Slot {
                conn: Some(Arc::new(conn)),
                retry_after: None,
            }),
            offered: Mutex::new(offered),
        })
    }

    /// The mechanisms of the last handshake.
    pub(crate) fn offered(&self) -> Vec<MechInfo> {
        self.offered.lock().unwrap().clone()
    }

    /// The live connection, reconnecting if it was lost (at most once per `reconnect_delay`).
    /// The second value says whether the connection was just made.
    async fn connection(&self) -> Result<(Arc<Conn>, bool), Unavailable> {
        // Whoever holds the slot is inside `open`, which ends within `connect_timeout`.
        let wait = self.options.connect_timeout + Duration::from_secs(1);
        let mut slot = timeout(wait, self.slot.lock())
            .await
            .map_err(|_| Unavailable)?;
        if let Some(conn) = slot.conn.as_ref().filter(|c| !c.is_lost()) {
            return Ok((conn.clone(), false));
        }
        slot.conn = None;
        if slot.retry_after.is_some_and(|at| Instant::now() < at) {
            return Err(Unavailable);
        }
        match open(&self.address, &self.options).await {
            Ok((conn, offered)) => {
                tracing::info!(address = %self.address, "connected to Dovecot auth");
                *self.offered.lock().unwrap() = offered;
                let conn = Arc::new(conn);
                slot.conn = Some(conn.clone());
                slot.retry_after = None;
                Ok((conn, true))
            }
            Err(error) => {
                tracing::warn!(address = %self.address, %error, "Dovecot auth unavailable");
                slot.retry_after = Some(Instant::now() + self.options.reconnect_delay);
                Err(Unavailable)
            }
        }
    }

    /// Sends `AUTH` and returns the request, to read its replies and answer its challenges.
    pub(crate) async fn start(
        &self,
        mechanism: &str,
        client: &ClientInfo,
        response: Option<&str>,
    ) -> Result<Request, Unavailable> {
        let line = |id| {
            AuthLine {
                id,
                mechanism,
                service: &self.options.service,
                client,
                no_penalty: self.options.no_penalty,
                response,
            }
            .encode()
        };
        let (conn, fresh) = self.connection().await?;
        match self.send_auth(conn, line).await {
            // A connection that died while idle: one more try, on a new one.
            Err(Unavailable) if !fresh => {
                let (conn, _) = self.connection().await?;
                self.send_auth(conn, line).await
            }
            sent => sent,
        }
    }

    async fn send_auth(
        &self,
        conn: Arc<Conn>,
        line: impl Fn(u32) -> String,
    ) -> Result<Request, Unavailable> {
        let (id, replies) = conn.register().ok_or(Unavailable)?;
        let mut request = Request {
            conn,
            id,
            replies,
            finished: false,
            wait: self.options.response_timeout,
        };
        request.send(line(id)).await?;
        Ok(request)
    }
}

/// One authentication request in flight. Dropped before its `OK`/`FAIL` (the SMTP client
/// gave up), it sends `CANCEL`.
pub(crate) struct Request {
    conn: Arc<Conn>,
    id: u32,
    replies: mpsc::Receiver<Answer>,
    finished: bool,
    wait: Duration,
}

impl Request {
    /// The server's next reply, within the response timeout.
    pub(crate) async fn answer(&mut self) -> Result<Answer, Unavailable> {
        let answer = timeout(self.wait, self.replies.recv())
            .await
            .ok()
            .flatten()
            .ok_or(Unavailable)?;
        if !matches!(answer, Answer::Cont(_)) {
            self.finished = true;
        }
        Ok(answer)
    }

    /// Answers a `CONT` with the client's response, base64-encoded.
    pub(crate) async fn cont(&mut self, data: &str) -> Result<(), Unavailable> {
        self.send(protocol::cont(self.id, data)).await
    }

    async fn send(&mut self, line: String) -> Result<(), Unavailable> {
        match timeout(self.wait, self.conn.lines.send(line)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Unavailable),
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.conn.forget(self.id);
        if !self.finished && !self.conn.is_lost() {
            // Best effort: a full queue means the connection is stuck and will be dropped.
            let _ = self.conn.lines.try_send(protocol::cancel(self.id));
        }
    }
}

/// Connects, shakes hands, and starts the reader and writer tasks, all within
/// `connect_timeout`.
async fn open(
    address: &DovecotAddress,
    options: &DovecotOptions,
) -> Result<(Conn, Vec<MechInfo>), DovecotError> {
    // One deadline for both steps, so that the slot lock in `connection` is held at most
    // `connect_timeout`.
    let (reader, writer, buf, offered) = timeout(options.connect_timeout, async {
        let (mut reader, mut writer) = connect(address).await.map_err(DovecotError::Connect)?;
        let mut buf = Vec::with_capacity(4096);
        let offered = handshake(&mut reader, &mut writer, &mut buf).await?;
        Ok::<_, DovecotError>((reader, writer, buf, offered))
    })
    .await
    .map_err(|_| DovecotError::Timeout)??;
    let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
    let (lines, queue) = mpsc::channel(WRITE_QUEUE);
    tokio::spawn(write_lines(
        writer,
        queue,
        pending.clone(),
        options.response_timeout,
    ));
    let reader = tokio::spawn(read_replies(reader, buf, pending.clone()));
    let conn = Conn {
        lines,
        pending,
        next_id: AtomicU32::new(1),
        reader,
    };
    Ok((conn, offered))
}

async fn connect(address: &DovecotAddress) -> io::Result<(Reader, Writer)> {
    Ok(match address {
        DovecotAddress::Unix(path) => {
            let (r, w) = tokio::net::UnixStream::connect(path).await?.into_split();
            (Box::new(r), Box::new(w))
        }
        DovecotAddress::Tcp(host) => {
            let stream = tokio::net::TcpStream::connect(host.as_str()).await?;
            stream.set_nodelay(true)?;
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        }
    })
}

/// `VERSION` and `CPID` out; `VERSION`, `MECH`…, `SPID`, `CUID`, `COOKIE` in, in any order,
/// up to `DONE`.
async fn handshake(
    reader: &mut Reader,
    writer: &mut Writer,
    buf: &mut Vec<u8>,
) -> Result<Vec<MechInfo>, DovecotError> {
    writer
        .write_all(protocol::handshake(std::process::id()).as_bytes())
        .await
        .map_err(DovecotError::Connect)?;
    let mut version = None;
    let mut offered = Vec::new();
    loop {
        let line = read_line(reader, buf)
            .await
            .map_err(DovecotError::Connect)?;
        let line =
            parse_server_line(&line).map_err(|bad| DovecotError::Protocol(bad.0.to_owned()))?;
        match line {
            ServerLine::Version { major } => version = Some(major),
            ServerLine::Mech(mech) => offered.push(mech),
            ServerLine::Done => break,
            _ => {}
        }
    }
    match version {
        Some(MAJOR_VERSION) => Ok(offered),
        Some(major) => Err(DovecotError::Protocol(format!(
            "protocol version {major}, expected {MAJOR_VERSION}"
        ))),
        None => Err(DovecotError::Protocol("no VERSION before DONE".into())),
    }
}

/// The next line (without LF) from `reader`, buffering in `buf`, which never grows past a
/// line limit plus one read.
async fn read_line(reader: &mut Reader, buf: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    loop {
        match protocol::next_line(buf) {
            Frame::Line { len, consumed } => {
                let line = buf[..len].to_vec();
                buf.drain(..consumed);
                return Ok(line);
            }
            Frame::NeedMore => {}
            Frame::TooLong => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "line from Dovecot too long",
                ));
            }
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Routes each reply to its request until the connection ends or breaks the protocol.
async fn read_replies(mut reader: Reader, mut buf: Vec<u8>, pending: Pending) {
    let error = loop {
        let line = match read_line(&mut reader, &mut buf).await {
            Ok(line) => line,
            Err(error) => break error.to_string(),
        };
        let (id, answer) = match parse_server_line(&line) {
            Ok(ServerLine::Cont { id, data }) => (id, Answer::Cont(data)),
            Ok(ServerLine::Ok { id, params }) => (id, Answer::Ok(params)),
            Ok(ServerLine::Fail { id, params }) => (id, Answer::Fail(params)),
            Ok(_) => continue,
            Err(bad) => break bad.0.to_owned(),
        };
        let mut guard = pending.lock().unwrap();
        let Some(waiting) = guard.as_mut() else {
            return;
        };
        let final_reply = !matches!(answer, Answer::Cont(_));
        let target = if final_reply {
            waiting.remove(&id)
        } else {
            waiting.get(&id).cloned()
        };
        // A reply to a cancelled request, or a second reply without an answer in between,
        // has no one waiting for it.
        if let Some(target) = target {
            let _ = target.try_send(answer);
        }
    };
    tracing::warn!(%error, "lost the connection to Dovecot auth");
    lose(&pending);
}

/// Writes queued lines; a write that fails or stalls past `wait` loses the connection.
async fn write_lines(
    mut writer: Writer,
    mut queue: mpsc::Receiver<String>,
    pending: Pending,
    wait: Duration,
) {
    while let Some(line) = queue.recv().await {
        if !matches!(
            timeout(wait, writer.write_all(line.as_bytes())).await,
            Ok(Ok(()))
        ) {
            lose(&pending);
            return;
        }
    }
}
