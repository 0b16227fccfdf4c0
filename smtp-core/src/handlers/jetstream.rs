//! [`JetStream`]: hands every message to a NATS JetStream stream and answers `250` only once
//! JetStream has acknowledged it.
//!
//! Each message is one stream message: the payload is the message as received, the headers
//! carry the envelope and what the session knew ([`headers`] lists them). A message id derived
//! from the transaction (sender, recipients, their parameters and the body) goes in
//! `Nats-Msg-Id`, so JetStream stores a retried transaction once within the stream's duplicate
//! window, whether the retry is the handler's own (after a lost acknowledgement) or the
//! client's (after a `451`, or after the instance it talked to died before answering).
//!
//! A body that does not fit in one stream message (the server's `max_payload`, 1 MiB by
//! default, less room for the headers) is streamed in chunks to a JetStream object store
//! bucket while it arrives, never held whole in memory; the stream message then has an empty
//! payload and names the object in [`headers::OBJECT`].

mod body;
pub mod headers;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use async_nats;
use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_nats::{HeaderMap, HeaderValue};
use sha2::{Digest as _, Sha256};

use self::body::{JetStreamBody, Slot, Stored};
use crate::body::BodyMode;
use crate::envelope::{Envelope, Recipient};
use crate::handler::Handler;
use crate::proto::Ret;
use crate::proto::{Reply, replies};
use crate::session::Session;

/// NATS's default `max_payload`, used when the server has not said.
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// Room kept for the headers when deciding whether a body fits in a stream message.
const HEADER_ROOM: usize = 64 * 1024;

/// How [`JetStream`] sets up and uses its stream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JetStreamConfig {
    /// The stream; created if missing (see [`JetStreamConfig::stream_config`]).
    pub stream: String,
    /// The subject every message is published to; must be one of the stream's subjects.
    pub subject: String,
    /// The object store bucket for bodies over the payload limit; created if missing.
    /// Default is `<stream>_bodies`.
    pub bucket: String,
    /// How long one message may take to be acknowledged, retries included, before the client
    /// gets `451 4.3.0`. Default is 10 seconds.
    pub publish_timeout: Duration,
    /// The duplicate window of a stream created here. Default is 2 minutes (JetStream's).
    pub duplicate_window: Duration,
}

impl JetStreamConfig {
    /// Messages published to `subject` of `stream`.
    pub fn new(stream: impl Into<String>, subject: impl Into<String>) -> JetStreamConfig {
        let stream = stream.into();
        JetStreamConfig {
            bucket: format!("{stream}_bodies"),
            stream,
            subject: subject.into(),
            publish_timeout: Duration::from_secs(10),
            duplicate_window: Duration::from_secs(120),
        }
    }

    /// The stream created when it is missing: file storage, one replica, limits retention
    /// (messages stay until a limit removes them; consumers acknowledge but do not delete),
    /// no age or size limit, the [`duplicate_window`](Self::duplicate_window), subject
    /// [`subject`](Self::subject).
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.subject.clone()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: 1,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        }
    }
}

/// Why [`JetStream::new`] failed.
pub type Error = async_nats::Error;

/// Publishes every message to a JetStream stream; see the [module](self).
#[derive(Clone)]
pub struct JetStream {
    js: jetstream::Context,
    objects: ObjectStore,
    config: JetStreamConfig,
    /// The largest stream message (headers and payload) the server takes.
    max_payload: usize,
}

impl std::fmt::Debug for JetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStream")
            .field("config", &self.config)
            .field("max_payload", &self.max_payload)
            .finish_non_exhaustive()
    }
}

impl JetStream {
    /// Uses `client`, creating the stream and the bucket when they are missing.
    pub async fn new(client: async_nats::Client, config: JetStreamConfig) -> Result<Self, Error> {
        let js = jetstream::new(client.clone());
        js.get_or_create_stream(config.stream_config()).await?;
        // Read once connected: a client made with `retry_on_initial_connect` has no server
        // info before its first connection.
        let max_payload = match client.server_info().max_payload {
            0 => DEFAULT_MAX_PAYLOAD,
            max => max,
        };
        let objects = match js.get_object_store(&config.bucket).await {
            Ok(objects) => objects,
            Err(_) => {
                js.create_object_store(object_store::Config {
                    bucket: config.bucket.clone(),
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await?
            }
        };
        Ok(JetStream {
            js,
            objects,
            config,
            max_payload,
        })
    }

    /// The largest body kept in memory and sent as a stream payload.
    fn inline_limit(&self) -> usize {
        self.max_payload.saturating_sub(HEADER_ROOM)
    }

    /// Publishes until acknowledged or until the timeout; the same id every time, so a
    /// publish whose acknowledgement was lost is not stored twice.
    async fn publish(&self, headers: HeaderMap, payload: Vec<u8>, id: &str) -> Result<u64, String> {
        let payload = bytes::Bytes::from(payload);
        let attempt = || async {
            let publish = PublishMessage::build()
                .payload(payload.clone())
                .headers(headers.clone())
                .message_id(id);
            let ack = self
                .js
                .send_publish(self.config.subject.clone(), publish)
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        };
        let retries = async {
            let mut pause = Duration::from_millis(50);
            loop {
                match attempt().await {
                    Ok(ack) => return (ack.sequence, ack.duplicate),
                    Err(error) => {
                        tracing::warn!(%error, id, "JetStream publish failed; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                }
            }
        };
        match tokio::time::timeout(self.config.publish_timeout, retries).await {
            Ok((sequence, duplicate)) => {
                tracing::info!(id, sequence, duplicate, "stored in JetStream");
                Ok(sequence)
            }
            Err(_) => Err("no acknowledgement in time".to_owned()),
        }
    }

    /// A body that fits no stream message with its headers goes to the object store.
    async fn store_object(&self, content: Vec<u8>) -> Result<Stored, String> {
        let name = random_name();
        let mut reader = content.as_slice();
        let put = self.objects.put(name.as_str(), &mut reader);
        match tokio::time::timeout(self.config.publish_timeout, put).await {
            Ok(Ok(info)) => Ok(Stored::Object(Box::new(info))),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("object store timed out".to_owned()),
        }
    }
}

/// The bytes of the envelope the message id covers, before the body.
fn envelope_digest_input(envelope: &Envelope) -> Vec<u8> {
    let mut input = Vec::new();
    let mut field = |bytes: &[u8]| {
        input.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        input.extend_from_slice(bytes);
    };
    field(envelope.mail_from.as_deref().unwrap_or("").as_bytes());
    field(envelope.mail_options.join(" ").as_bytes());
    for recipient in &envelope.recipients {
        field(recipient.address.as_bytes());
        field(recipient.params.join(" ").as_bytes());
    }
    input
}

/// A recipient's address, then its DSN parameters as sent, values decoded.
fn rcpt_value(recipient: &Recipient) -> String {
    use std::fmt::Write as _;
    let mut value = recipient.address.clone();
    if let Some(notify) = recipient.dsn.notify {
        value.push_str(" NOTIFY=");
        if notify.is_never() {
            value.push_str("NEVER");
        }
        let asked = [
            (notify.success, "SUCCESS"),
            (notify.failure, "FAILURE"),
            (notify.delay, "DELAY"),
        ];
        for (i, (_, word)) in asked.iter().filter(|(on, _)| *on).enumerate() {
            if i > 0 {
                value.push(',');
            }
            value.push_str(word);
        }
    }
    if let Some(orcpt) = &recipient.dsn.orcpt {
        let _ = write!(value, " ORCPT={};{}", orcpt.addr_type, orcpt.address);
    }
    value
}

/// The message id: the first 128 bits of the transaction's SHA-256, in hex.
fn message_id(digest: &[u8; 32]) -> String {
    crate::hex(&digest[..16])
}

/// A fresh object name, for a body that goes to the object store.
fn random_name() -> String {
    crate::hex(&rand::random::<[u8; 16]>())
}

/// Sets `name` to `value` with line breaks replaced (NATS header values are single lines).
fn set(map: &mut HeaderMap, name: &'static str, value: &str) {
    let value: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if let Ok(value) = value.parse::<HeaderValue>() {
        map.append(name, value);
    }
}

impl JetStream {
    fn headers(
        &self,
        session: &Session,
        envelope: &Envelope,
        id: &str,
        size: usize,
        object: Option<&object_store::ObjectInfo>,
    ) -> HeaderMap {
        let mut map = HeaderMap::new();
        set(&mut map, headers::ID, id);
        set(
            &mut map,
            headers::MAIL_FROM,
            envelope.mail_from.as_deref().unwrap_or(""),
        );
        if !envelope.mail_options.is_empty() {
            set(
                &mut map,
                headers::MAIL_PARAMS,
                &envelope.mail_options.join(" "),
            );
        }
        if let Some(ret) = envelope.dsn.ret {
            set(
                &mut map,
                headers::DSN_RET,
                if ret == Ret::Full { "FULL" } else { "HDRS" },
            );
        }
        if let Some(envid) = &envelope.dsn.envid {
            set(&mut map, headers::DSN_ENVID, envid);
        }
        for recipient in &envelope.recipients {
            set(&mut map, headers::RCPT_TO, &rcpt_value(recipient));
        }
        set(&mut map, headers::CLIENT, &session.peer().to_string());
        if let Some(helo) = session.host_name() {
            set(&mut map, headers::HELO, helo);
        }
        if let Some(tls) = session.tls() {
            set(
                &mut map,
                headers::TLS,
                &format!("{} {}", tls.version, tls.cipher_suite),
            );
        }
        if let Some(login) = session.login_data() {
            set(&mut map, headers::AUTH, &String::from_utf8_lossy(login));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        set(&mut map, headers::RECEIVED_AT, &now.as_millis().to_string());
        set(&mut map, headers::SERVER, session.server_hostname());
        set(&mut map, headers::SIZE, &size.to_string());
        if let Some(info) = object {
            set(
                &mut map,
                headers::OBJECT,
                &format!("{}/{}", info.bucket, info.name),
            );
        }
        map
    }
}

impl Handler for JetStream {
    async fn handle_body(&self, session: &mut Session, envelope: &mut Envelope) -> BodyMode {
        let slot = Slot::default();
        session.extensions_mut().insert(slot.clone());
        BodyMode::stream(JetStreamBody::new(
            slot,
            self.objects.clone(),
            self.inline_limit(),
            &envelope_digest_input(envelope),
        ))
    }

    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        let finished = session
            .extensions_mut()
            .remove::<Slot>()
            .and_then(|s| s.take());
        let (mut stored, size, digest) = match finished {
            Some(f) => (f.stored, f.size, f.digest),
            // A wrapper that buffered the body instead of forwarding `handle_body`.
            None => {
                let content = std::mem::take(&mut envelope.content);
                let mut digest = Sha256::new();
                digest.update(envelope_digest_input(envelope));
                digest.update(&content);
                let size = content.len();
                (Stored::Inline(content), size, digest.finalize().into())
            }
        };
        let id = message_id(&digest);
        if let Stored::Inline(content) = &mut stored
            && content.len() > self.inline_limit()
        {
            match self.store_object(std::mem::take(content)).await {
                Ok(object) => stored = object,
                Err(error) => {
                    tracing::error!(%error, id, "object store failed");
                    return replies::QUEUE_UNAVAILABLE;
                }
            }
        }
        let (payload, object) = match stored {
            Stored::Inline(content) => (content, None),
            Stored::Object(info) => (Vec::new(), Some(info)),
        };
        let headers = self.headers(session, envelope, &id, size, object.as_deref());
        match self.publish(headers, payload, &id).await {
            Ok(_) => replies::queued_as(&id),
            Err(error) => {
                tracing::error!(%error, id, "JetStream did not acknowledge the message");
                replies::QUEUE_UNAVAILABLE
            }
        }
    }
}
