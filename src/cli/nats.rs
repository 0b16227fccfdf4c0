//! `--handler jetstream`: where messages are published, and how smtpd logs in to NATS.

use std::path::PathBuf;
use std::time::Duration;

/// Where `--handler jetstream` publishes messages, and how it logs in to NATS.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "NATS JetStream (--handler jetstream)")]
pub struct NatsArgs {
    /// NATS server(s), comma-separated (nats://HOST:PORT, tls://HOST:PORT).
    #[arg(long, value_name = "URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The stream; created if missing (file storage, limits retention, 2-minute duplicate
    /// window, subject --nats-subject).
    #[arg(long, value_name = "NAME", default_value = "MAIL")]
    nats_stream: String,
    /// The subject messages are published to.
    #[arg(long, value_name = "SUBJECT", default_value = "mail.in")]
    nats_subject: String,
    /// Object store bucket for messages over the server's payload limit [default: STREAM_bodies].
    #[arg(long, value_name = "NAME")]
    nats_bucket: Option<String>,
    /// Seconds a message may wait for JetStream's acknowledgement before `451` [default: 10].
    #[arg(long, value_name = "SECS")]
    nats_timeout: Option<u64>,
    /// NATS credentials file (JWT and NKey seed).
    #[arg(long, value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// NATS user name; the password is read from --nats-password-file.
    #[arg(long, value_name = "USER", requires = "nats_password_file")]
    nats_user: Option<String>,
    /// File holding the NATS password of --nats-user (its first line).
    #[arg(long, value_name = "FILE", requires = "nats_user")]
    nats_password_file: Option<PathBuf>,
    /// PEM CA certificates to verify the NATS server with; implies TLS.
    #[arg(long, value_name = "FILE")]
    nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate for NATS (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "nats_tls_key")]
    nats_tls_cert: Option<PathBuf>,
    /// PEM private key of --nats-tls-cert.
    #[arg(long, value_name = "FILE", requires = "nats_tls_cert")]
    nats_tls_key: Option<PathBuf>,
}

impl NatsArgs {
    /// Connects to NATS and sets up the stream and the object store bucket.
    pub async fn jetstream(&self) -> Result<smtp_core::handlers::JetStream, String> {
        use smtp_core::handlers::jetstream::{JetStream, JetStreamConfig, async_nats};
        let mut options = async_nats::ConnectOptions::new()
            .name("smtpd")
            .retry_on_initial_connect();
        if let Some(creds) = &self.nats_creds {
            options = options
                .credentials_file(creds)
                .await
                .map_err(|e| format!("cannot read {}: {e}", creds.display()))?;
        }
        if let (Some(user), Some(file)) = (&self.nats_user, &self.nats_password_file) {
            let password = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let password = password.lines().next().unwrap_or("").to_owned();
            options = options.user_and_password(user.clone(), password);
        }
        if let Some(ca) = &self.nats_tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.nats_tls_cert, &self.nats_tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let url = &self.nats_url;
        let client = tokio::time::timeout(Duration::from_secs(30), options.connect(url.as_str()))
            .await
            .map_err(|_| format!("cannot reach NATS at {url} within 30 seconds"))?
            .map_err(|e| format!("cannot connect to NATS at {url}: {e}"))?;
        let mut config = JetStreamConfig::new(&self.nats_stream, &self.nats_subject);
        if let Some(bucket) = &self.nats_bucket {
            config.bucket = bucket.clone();
        }
        if let Some(secs) = self.nats_timeout {
            config.publish_timeout = Duration::from_secs(secs);
        }
        JetStream::new(client, config)
            .await
            .map_err(|e| format!("cannot set up JetStream stream {}: {e}", self.nats_stream))
    }
}
