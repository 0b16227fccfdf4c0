//! A real `nats-server -js` (Debian package `nats-server`) in a temp dir, on a free port,
//! restartable on the same port and store.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use smtp_core::handlers::jetstream::async_nats;
use tokio::io::AsyncReadExt as _;

use super::{KillOnDrop, TempDir};

/// A running nats-server with JetStream, killed on drop.
pub struct NatsServer {
    child: Option<KillOnDrop>,
    pub addr: SocketAddr,
    dir: TempDir,
}

impl NatsServer {
    /// Starts one, or returns `None` (after a notice) when nats-server is not installed;
    /// under `CI=true` a missing nats-server fails the test.
    pub async fn start() -> Option<NatsServer> {
        if !super::tools::available("nats-server") {
            return None;
        }
        let port = super::free_port();
        let mut server = NatsServer {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: TempDir::new("nats"),
        };
        server.run().await;
        Some(server)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// A client of this server.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("connect to nats-server")
    }

    /// Every message of `stream`, in order, read by an ephemeral pull consumer (it keeps
    /// every value of a repeated header, which `Stream::get_raw_message` does not).
    pub async fn messages(&self, stream: &str) -> Vec<async_nats::Message> {
        use async_nats::jetstream::consumer::pull;
        let js = async_nats::jetstream::new(self.client().await);
        let stream = js.get_stream(stream).await.expect("the stream");
        let consumer = stream
            .create_consumer(pull::Config::default())
            .await
            .expect("a consumer");
        let mut all = Vec::new();
        loop {
            let batch = consumer
                .fetch()
                .max_messages(500)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .expect("fetch");
            let batch: Vec<_> = futures_util::StreamExt::collect(batch).await;
            if batch.is_empty() {
                return all;
            }
            for message in batch {
                let message = message.expect("a message");
                message.ack().await.expect("ack");
                all.push(message.message);
            }
        }
    }

    /// Stops it (SIGKILL).
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Stops it (SIGKILL) and starts it again on the same port and store.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    async fn run(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.addr.port().to_string(),
            ])
            .arg("-sd")
            .arg(self.dir.0.join("store"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(KillOnDrop(child));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Ready once it greets with INFO.
            if let Ok(mut stream) = tokio::net::TcpStream::connect(self.addr).await {
                let mut info = [0u8; 4];
                if stream.read_exact(&mut info).await.is_ok() && &info == b"INFO" {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
