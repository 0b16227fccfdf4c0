//! The body path: `handle_body` streams or discards a message instead of buffering it, for
//! DATA and BDAT alike, with memory that does not grow with the message.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::support::{Client, TempDir, collector, config, isolated, start};
use smtp_core::handlers::{Mailbox, Sink};
use smtp_core::{BodyMode, BodySink, Config, Envelope, Handler, Reply, Session};

const MIB: usize = 1024 * 1024;

/// The peak resident set size of this process, in bytes (`VmHWM`).
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM line");
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM value");
    kib * 1024
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` 5), so that the growth measured
/// next belongs to the test that follows.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
}

/// One 1000-octet line (CRLF included), the first of its block starting with a dot.
fn block() -> Vec<u8> {
    let mut line = vec![b'x'; 998];
    line.extend_from_slice(b"\r\n");
    let mut block = Vec::with_capacity(64 * 1000);
    for i in 0..64 {
        if i == 0 {
            // Dot-stuffed: arrives as `.x…`, one octet shorter.
            block.push(b'.');
            block.extend_from_slice(&line[1..]);
        } else {
            block.extend_from_slice(&line);
        }
    }
    block
}

fn big_config(limit: usize) -> Config {
    {
        let mut config = config();
        config.max_message_size = Some(limit);
        config
    }
}

/// Sends at least `total` octets of body through DATA in 64 000-octet writes; returns the
/// decoded size the server should see and the reply to the final dot.
async fn send_by_data(c: &mut Client, total: usize) -> (usize, Vec<String>) {
    c.begin_data("a@example.com", &["b@example.com"]).await;
    let block = block();
    let mut sent = 0;
    while sent < total {
        c.send(&block).await;
        sent += block.len();
    }
    c.send(b"..\r\n.\r\n").await;
    let stuffing = sent / block.len();
    (sent - stuffing + 3, c.reply().await)
}

/// The same through BDAT, one chunk per block.
async fn send_by_bdat(c: &mut Client, total: usize) -> (usize, Vec<String>) {
    c.cmd("MAIL FROM:<a@example.com> BODY=BINARYMIME", 250)
        .await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    let block = block();
    let mut sent = 0;
    let mut chunks = 0;
    while sent < total {
        c.send(format!("BDAT {}\r\n", block.len()).as_bytes()).await;
        c.send(&block).await;
        sent += block.len();
        chunks += 1;
        // Replies are read in batches, so the client keeps the pipe full.
        if chunks % 64 == 0 {
            for _ in 0..64 {
                assert_eq!(c.reply().await, ["250 2.0.0 64000 octets received"]);
            }
        }
    }
    c.send(b"BDAT 0 LAST\r\n").await;
    for _ in 0..chunks % 64 {
        assert_eq!(c.reply().await, ["250 2.0.0 64000 octets received"]);
    }
    (sent, c.reply().await)
}

/// Streams 100 MiB through a server in this process and returns the growth of the peak RSS.
/// The process must be the test's own (see [`isolated`]): the peak is the whole process's.
async fn stream_100_mib<H: Handler>(handler: H, bdat: bool) -> (usize, usize) {
    let server = start(handler, big_config(200 * MIB)).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    reset_peak_rss();
    let before = peak_rss();
    let started = Instant::now();
    let (size, reply) = if bdat {
        send_by_bdat(&mut c, 100 * MIB).await
    } else {
        send_by_data(&mut c, 100 * MIB).await
    };
    assert_eq!(reply, ["250 OK"]);
    let growth = peak_rss().saturating_sub(before);
    eprintln!(
        "100 MiB in {:?}, peak RSS growth {} KiB",
        started.elapsed(),
        growth / 1024
    );
    c.expect("QUIT", "221 Bye").await;
    server.shutdown().await;
    (size, growth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_discards_100_mib_in_bounded_memory() {
    if !isolated("streaming::sink_discards_100_mib_in_bounded_memory").await {
        return;
    }
    let (_, growth) = stream_100_mib(Sink, false).await;
    assert!(growth <= 16 * MIB, "peak RSS grew by {growth} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_discards_100_mib_of_bdat_in_bounded_memory() {
    if !isolated("streaming::sink_discards_100_mib_of_bdat_in_bounded_memory").await {
        return;
    }
    let (_, growth) = stream_100_mib(Sink, true).await;
    assert!(growth <= 16 * MIB, "peak RSS grew by {growth} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_streams_100_mib_to_a_maildir_in_bounded_memory() {
    if !isolated("streaming::mailbox_streams_100_mib_to_a_maildir_in_bounded_memory").await {
        return;
    }
    let dir = TempDir::new("stream-maildir");
    let (size, growth) = stream_100_mib(Mailbox::new(&dir.0).unwrap(), false).await;
    assert!(growth <= 16 * MIB, "peak RSS grew by {growth} bytes");
    let files: Vec<_> = std::fs::read_dir(dir.0.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one message in new/");
    assert_eq!(std::fs::read_dir(dir.0.join("tmp")).unwrap().count(), 0);
    let len = std::fs::metadata(&files[0]).unwrap().len() as usize;
    let mut head = vec![0; 200];
    std::io::Read::read_exact(&mut std::fs::File::open(&files[0]).unwrap(), &mut head).unwrap();
    let rcpt = b"X-RcptTo: b@example.com\r\n";
    let headers = head
        .windows(rcpt.len())
        .position(|w| w == rcpt)
        .expect("trace headers")
        + rcpt.len();
    assert!(head.starts_with(b"X-Peer: 127.0.0.1:"));
    assert_eq!(len, headers + size, "headers and the decoded body");
    assert_eq!(
        &head[headers..headers + 2],
        b"xx",
        "the dot of the first line is removed"
    );
}

/// A handler that streams into memory shared with the test, to check what a sink receives.
#[derive(Default, Clone)]
struct Recorder {
    body: Arc<Mutex<Vec<u8>>>,
    events: Arc<Mutex<Vec<String>>>,
    fail_after: Option<usize>,
}

struct RecorderSink {
    recorder: Recorder,
    written: usize,
}

impl BodySink for RecorderSink {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.written += chunk.len();
        if self.recorder.fail_after.is_some_and(|n| self.written > n) {
            return Err(std::io::Error::other("disk full"));
        }
        self.recorder.body.lock().unwrap().extend_from_slice(chunk);
        Ok(())
    }

    async fn finish(&mut self) -> std::io::Result<()> {
        self.recorder.events.lock().unwrap().push("finish".into());
        Ok(())
    }
}

impl Drop for RecorderSink {
    fn drop(&mut self) {
        self.recorder.events.lock().unwrap().push("drop".into());
    }
}

impl Handler for Recorder {
    async fn handle_body(&self, _: &mut Session, envelope: &mut Envelope) -> BodyMode {
        self.events.lock().unwrap().push(format!(
            "body for {:?}",
            envelope.rcpt_tos().collect::<Vec<_>>()
        ));
        BodyMode::stream(RecorderSink {
            recorder: self.clone(),
            written: 0,
        })
    }

    async fn handle_data(&self, _: &mut Session, envelope: &mut Envelope) -> Reply {
        self.events
            .lock()
            .unwrap()
            .push(format!("data content_len={}", envelope.content.len()));
        Reply::new(250, "2.0.0 streamed")
    }
}

#[tokio::test]
async fn a_sink_gets_the_decoded_body_and_handle_data_still_answers() {
    let recorder = Recorder::default();
    let server = start(recorder.clone(), config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let reply = c
        .deliver(
            "a@example.com",
            &["b@example.com"],
            b"Subject: s\r\n\r\n..dot\r\nbare\nlf\r\n",
        )
        .await;
    assert_eq!(reply, ["250 2.0.0 streamed"]);
    assert_eq!(
        *recorder.body.lock().unwrap(),
        b"Subject: s\r\n\r\n.dot\r\nbare\nlf\r\n"
    );
    assert_eq!(
        *recorder.events.lock().unwrap(),
        [
            "body for [\"b@example.com\"]",
            "finish",
            "drop",
            "data content_len=0"
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_body_is_dropped_without_finish() {
    let recorder = Recorder::default();
    let server = start(recorder.clone(), big_config(10)).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let reply = c
        .deliver("a@example.com", &["b@example.com"], b"0123456789abcdef\r\n")
        .await;
    assert_eq!(reply, ["552 Error: Too much mail data"]);
    assert_eq!(
        *recorder.events.lock().unwrap(),
        ["body for [\"b@example.com\"]", "drop"],
        "neither finish nor handle_data"
    );
    assert!(
        recorder.body.lock().unwrap().len() <= 10,
        "the sink never sees more than the limit"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_failing_sink_gets_451_and_the_session_stays_in_step() {
    let recorder = Recorder {
        fail_after: Some(100),
        ..Recorder::default()
    };
    let server = start(recorder.clone(), config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let body = "line of text\r\n".repeat(1000);
    let reply = c
        .deliver("a@example.com", &["b@example.com"], body.as_bytes())
        .await;
    assert_eq!(reply, ["451 4.3.0 Error: cannot store the message"]);
    assert!(
        !recorder
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("data")),
        "handle_data is not called"
    );
    c.expect("NOOP", "250 OK").await;
    server.shutdown().await;
}

#[tokio::test]
async fn buffering_handlers_still_see_the_content() {
    let (handler, messages) = collector();
    let server = start(handler, config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let reply = c
        .deliver(
            "a@example.com",
            &["b@example.com"],
            b"Subject: s\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(reply, ["250 OK"]);
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 6 LAST\r\nby\r\n\r\n").await;
    assert_eq!(c.reply().await, ["250 OK"]);
    {
        let messages = messages.lock().unwrap();
        assert_eq!(messages[0].content, b"Subject: s\r\n\r\nhi\r\n");
        assert_eq!(messages[1].content, b"by\r\n\r\n");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn mailbox_leaves_nothing_behind_when_a_message_is_refused() {
    let dir = TempDir::new("stream-refused");
    let server = start(Mailbox::new(&dir.0).unwrap(), big_config(50)).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    let body = "x".repeat(100) + "\r\n";
    let reply = c
        .deliver("a@example.com", &["b@example.com"], body.as_bytes())
        .await;
    assert_eq!(reply, ["552 Error: Too much mail data"]);
    // A transaction abandoned mid-BDAT is dropped too.
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 5\r\nhello").await;
    assert_eq!(c.reply().await, ["250 2.0.0 5 octets received"]);
    c.expect("RSET", "250 OK").await;
    c.expect("QUIT", "221 Bye").await;
    c.expect_closed().await;
    server.shutdown().await;
    for sub in ["tmp", "new"] {
        let left = std::fs::read_dir(dir.0.join(sub)).unwrap().count();
        assert_eq!(left, 0, "{sub}/ is empty");
    }
}

#[tokio::test]
async fn mailbox_delivers_a_bdat_message_with_its_trace_headers() {
    let dir = TempDir::new("stream-bdat");
    let server = start(Mailbox::new(&dir.0).unwrap(), config()).await;
    let mut c = Client::ehloed(server.local_addr()).await;
    c.cmd("MAIL FROM:<a@example.com>", 250).await;
    c.cmd("RCPT TO:<b@example.com>", 250).await;
    c.send(b"BDAT 14\r\nSubject: s\r\n\r\nBDAT 3 LAST\r\nx\r\n")
        .await;
    assert_eq!(c.reply().await, ["250 2.0.0 14 octets received"]);
    assert_eq!(c.reply().await, ["250 OK"]);
    // The file is in new/ before the reply is sent.
    let files: Vec<_> = std::fs::read_dir(dir.0.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let peer = c.local_addr();
    assert_eq!(
        text,
        format!(
            "X-Peer: {peer}\r\nX-MailFrom: a@example.com\r\nX-RcptTo: b@example.com\r\n\
             Subject: s\r\n\r\nx\r\n"
        )
    );
    server.shutdown().await;
}
