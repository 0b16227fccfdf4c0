//! Reads the messages `smtpd --handler jetstream` hands to NATS JetStream and delivers them
//! into a Maildir, acknowledging each only after it is on disk. Start two with the same
//! `--durable` name and they share the work; kill one and the other gets its unacknowledged
//! messages after `--ack-wait`.
//!
//! ```text
//! nats-server -js &
//! cargo run --release -- --handler jetstream &
//! cargo run --release --example jetstream_consumer -- --maildir /tmp/mail
//! ```

mod consumer;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use smtp_core::handlers::jetstream::async_nats;

/// Deliver messages from a JetStream stream into a Maildir.
#[derive(Parser, Debug)]
struct Args {
    /// NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The stream smtpd publishes to (smtpd's --nats-stream).
    #[arg(long, default_value = "MAIL")]
    stream: String,
    /// Durable consumer name; consumers with the same name share the messages.
    #[arg(long, default_value = "maildir")]
    durable: String,
    /// The Maildir to deliver into.
    #[arg(long)]
    maildir: PathBuf,
    /// Seconds before an unacknowledged message is delivered again.
    #[arg(long, default_value_t = 30)]
    ack_wait: u64,
    /// Unacknowledged messages one consumer may hold at a time.
    #[arg(long, default_value_t = 10)]
    batch: usize,
}

#[tokio::main]
async fn main() -> Result<(), consumer::Error> {
    let args = Args::parse();
    let client = async_nats::connect(&args.nats_url).await?;
    let options = consumer::Options {
        stream: args.stream,
        durable: args.durable,
        maildir: args.maildir,
        ack_wait: Duration::from_secs(args.ack_wait),
        batch: args.batch,
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    consumer::run(client, options, stop, |outcome| match outcome {
        consumer::Outcome::Stored(path) => println!("stored {}", path.display()),
        consumer::Outcome::AlreadyStored(path) => println!("already stored {}", path.display()),
    })
    .await
}
