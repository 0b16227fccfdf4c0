//! The mail catcher (`--handler capture`): a bounded message store and its HTTP API.
//!
//! The store and the faults are the test kit's ([`smtp_core::testing`]); this module adds the
//! handler that refuses what the store could not keep, and the API over HTTP.

mod api;
mod faults;
mod json;

use std::net::SocketAddr;

use smtp_core::testing::{Accept, Faults, MessageStore, Recorder};
use smtp_core::{Envelope, Handler, Reply, Session};

/// Accepts every message that fits in the store, and keeps its body for it.
pub struct Capture {
    store: MessageStore,
}

impl Handler for Capture {
    async fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        if envelope.content.len() > self.store.max_bytes() {
            return Reply::new(
                552,
                "5.3.4 Message larger than the catcher keeps (--capture-max-bytes)",
            );
        }
        Accept.handle_data(session, envelope).await
    }
}

/// Listens for the API on `addr`, serves it on the current runtime for as long as the process
/// runs, and returns the handler that fills the store and plays the faults.
pub async fn start(
    addr: SocketAddr,
    max_messages: usize,
    max_bytes: usize,
) -> Result<(Recorder<Capture>, SocketAddr), String> {
    let store = MessageStore::bounded(max_messages, max_bytes);
    let faults = Faults::default();
    let local =
        crate::http::serve(addr, api::router(store.clone(), faults.clone()), "the API").await?;
    let capture = Capture {
        store: store.clone(),
    };
    let recorder = Recorder::new(capture).with_store(store).with_faults(faults);
    Ok((recorder, local))
}
