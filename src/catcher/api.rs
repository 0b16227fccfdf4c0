//! The catcher's HTTP API, with axum: messages, their events, and faults.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use futures_util::{Stream, StreamExt as _, stream};
use serde_json::json;
use smtp_core::testing::{Faults, Message, MessageStore};
use tokio::sync::broadcast::error::RecvError;

use super::json::{Detail, Summary};

#[derive(Clone)]
struct Api {
    store: MessageStore,
    faults: Faults,
}

/// The routes under `/api`.
pub fn router(store: MessageStore, faults: Faults) -> Router {
    Router::new()
        .route("/api/messages", get(list).delete(clear))
        .route("/api/messages/{id}", get(detail).delete(remove))
        .route("/api/messages/{id}/raw", get(raw))
        .route("/api/events", get(events))
        .route(
            "/api/faults",
            axum::routing::post(add_faults).delete(clear_faults),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".to_owned()) })
        .with_state(Api { store, faults })
}

/// An error as JSON: `{"error": "…"}`.
fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The message `id` names, or the 404 to answer.
fn find(api: &Api, id: &str) -> Result<Arc<Message>, Response> {
    id.parse()
        .ok()
        .and_then(|id| api.store.get(id))
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no message {id}")))
}

async fn list(State(api): State<Api>) -> Json<Vec<Summary>> {
    let messages = api.store.messages();
    Json(messages.iter().rev().map(|m| Summary::of(m)).collect())
}

async fn clear(State(api): State<Api>) -> StatusCode {
    api.store.clear();
    StatusCode::NO_CONTENT
}

async fn detail(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match find(&api, &id) {
        Ok(message) => Json(Detail::of(&message)).into_response(),
        Err(response) => response,
    }
}

async fn raw(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match find(&api, &id) {
        Ok(message) => {
            let content_type = [(header::CONTENT_TYPE, "message/rfc822")];
            (content_type, message.raw.clone()).into_response()
        }
        Err(response) => response,
    }
}

async fn remove(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match id.parse().is_ok_and(|id| api.store.remove(id)) {
        true => StatusCode::NO_CONTENT.into_response(),
        false => error(StatusCode::NOT_FOUND, format!("no message {id}")),
    }
}

/// One `message` event (the summary as JSON) per accepted message, from the moment of the
/// request; a `: ready` comment first says the subscription is in place. A subscriber that
/// falls behind gets a `lagged` event with the number of messages it missed.
async fn events(State(api): State<Api>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = api.store.subscribe();
    let ready = stream::once(async { Ok(Event::default().comment("ready")) });
    let messages = stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(message) => Event::default()
                .event("message")
                .id(message.id.to_string())
                .json_data(Summary::of(&message))
                .unwrap_or_else(|e| Event::default().comment(e.to_string())),
            Err(RecvError::Lagged(missed)) => {
                Event::default().event("lagged").data(missed.to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    Sse::new(ready.chain(messages)).keep_alive(KeepAlive::default())
}

async fn add_faults(State(api): State<Api>, body: Bytes) -> Response {
    match super::faults::add(&api.faults, &body) {
        Ok(added) => (StatusCode::CREATED, Json(json!({ "added": added }))).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn clear_faults(State(api): State<Api>) -> StatusCode {
    api.faults.clear();
    StatusCode::NO_CONTENT
}
