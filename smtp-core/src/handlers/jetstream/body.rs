//! The body of one message on its way to JetStream: kept in memory while it fits in a stream
//! message, streamed to the object store in chunks once it does not.

use std::sync::{Arc, Mutex};

use async_nats::jetstream::object_store::{ObjectInfo, ObjectStore};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncWriteExt as _, DuplexStream};
use tokio::task::JoinHandle;

use crate::body::BodySink;

/// Bytes buffered between the sink and the object-store upload.
const PIPE_CAPACITY: usize = 256 * 1024;

/// A complete body, as `handle_data` publishes it.
pub(super) enum Stored {
    /// The whole body, small enough for a stream message.
    Inline(Vec<u8>),
    /// The body is in the object store.
    Object(Box<ObjectInfo>),
}

/// A finished body and the digest of the transaction it belongs to.
pub(super) struct Finished {
    pub(super) stored: Stored,
    pub(super) size: usize,
    pub(super) digest: [u8; 32],
}

/// Where the sink leaves the finished body for `handle_data` (kept in the session extensions).
#[derive(Clone, Default)]
pub(super) struct Slot(Arc<Mutex<Option<Finished>>>);

impl Slot {
    pub(super) fn take(&self) -> Option<Finished> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, finished: Finished) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(finished);
    }
}

/// An upload to the object store in progress: the write end of the pipe its reader drains.
struct Upload {
    pipe: DuplexStream,
    task: JoinHandle<Result<ObjectInfo, async_nats::jetstream::object_store::PutError>>,
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Aborted before the pipe closes, so the store never sees an end and never writes the
        // metadata of a truncated object.
        self.task.abort();
    }
}

/// The [`BodySink`] of [`JetStream`](super::JetStream).
pub(super) struct JetStreamBody {
    slot: Slot,
    objects: ObjectStore,
    inline_limit: usize,
    memory: Vec<u8>,
    upload: Option<Upload>,
    size: usize,
    digest: Sha256,
}

impl JetStreamBody {
    /// `envelope` is what the digest covers before the body (sender, recipients, parameters).
    pub(super) fn new(
        slot: Slot,
        objects: ObjectStore,
        inline_limit: usize,
        envelope: &[u8],
    ) -> JetStreamBody {
        let mut digest = Sha256::new();
        digest.update(envelope);
        JetStreamBody {
            slot,
            objects,
            inline_limit,
            memory: Vec::new(),
            upload: None,
            size: 0,
            digest,
        }
    }

    fn start_upload(&mut self) -> Upload {
        let (pipe, mut reader) = tokio::io::duplex(PIPE_CAPACITY);
        let objects = self.objects.clone();
        let name = super::random_name();
        let task = tokio::spawn(async move { objects.put(name.as_str(), &mut reader).await });
        Upload { pipe, task }
    }
}

impl BodySink for JetStreamBody {
    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.size += chunk.len();
        self.digest.update(chunk);
        let upload = match &mut self.upload {
            Some(upload) => upload,
            None if self.memory.len() + chunk.len() <= self.inline_limit => {
                self.memory.extend_from_slice(chunk);
                return Ok(());
            }
            None => {
                // Over the limit: what was kept goes first into the object store.
                let mut upload = self.start_upload();
                upload
                    .pipe
                    .write_all(&std::mem::take(&mut self.memory))
                    .await?;
                self.upload.insert(upload)
            }
        };
        upload.pipe.write_all(chunk).await
    }

    async fn finish(&mut self) -> std::io::Result<()> {
        let stored = match self.upload.as_mut() {
            None => Stored::Inline(std::mem::take(&mut self.memory)),
            Some(upload) => {
                upload.pipe.shutdown().await?;
                let info = (&mut upload.task)
                    .await
                    .map_err(std::io::Error::other)?
                    .map_err(std::io::Error::other)?;
                Stored::Object(Box::new(info))
            }
        };
        self.slot.put(Finished {
            stored,
            size: self.size,
            digest: self.digest.clone().finalize().into(),
        });
        Ok(())
    }
}
