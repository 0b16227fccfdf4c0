//! [`MessageStore`]: the messages a [`Recorder`](super::Recorder) accepted, optionally
//! bounded, with a subscription for new ones.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::message::Message;

/// How many new messages a [`MessageStore::subscribe`]r may fall behind before it misses
/// some ([`broadcast::error::RecvError::Lagged`]); the recorder never waits for it.
const SUBSCRIBER_BACKLOG: usize = 256;

/// The messages a [`Recorder`](super::Recorder) (or a [`TestServer`](super::TestServer))
/// accepted, oldest first. Cloning gives another handle on the same store.
///
/// [`MessageStore::new`] keeps everything; [`MessageStore::bounded`] drops the oldest messages
/// when a maximum count or total size is passed, as a long-running mail catcher must.
#[derive(Clone)]
pub struct MessageStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    max_messages: usize,
    max_bytes: usize,
    /// Messages accepted since the start or the last `clear`, for `wait_for`.
    arrived: watch::Sender<usize>,
    events: broadcast::Sender<Arc<Message>>,
}

#[derive(Default)]
struct State {
    messages: VecDeque<Arc<Message>>,
    bytes: usize,
    last_id: u64,
}

/// [`TestServer::wait_for`](super::TestServer::wait_for) or [`MessageStore::wait_for`] ran
/// out of time.
#[derive(Debug, Clone)]
pub struct WaitError {
    /// The number of messages waited for.
    pub wanted: usize,
    /// The number that had arrived.
    pub arrived: usize,
    /// How long it waited.
    pub timeout: Duration,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waited {:?} for {} message(s), but {} arrived",
            self.timeout, self.wanted, self.arrived
        )
    }
}

impl std::error::Error for WaitError {}

impl Default for MessageStore {
    fn default() -> MessageStore {
        MessageStore::new()
    }
}

impl fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MessageStore")
            .field("messages", &state.messages.len())
            .field("bytes", &state.bytes)
            .finish_non_exhaustive()
    }
}

impl MessageStore {
    /// A store without bounds.
    pub fn new() -> MessageStore {
        MessageStore::bounded(usize::MAX, usize::MAX)
    }

    /// A store that keeps at most `max_messages` messages of at most `max_bytes` raw bytes
    /// together, dropping the oldest first. The newest message is always kept, even when it
    /// alone is larger than `max_bytes` (a handler that must not keep it rejects it first).
    pub fn bounded(max_messages: usize, max_bytes: usize) -> MessageStore {
        MessageStore {
            inner: Arc::new(Inner {
                state: Mutex::default(),
                max_messages,
                max_bytes,
                arrived: watch::Sender::new(0),
                events: broadcast::Sender::new(SUBSCRIBER_BACKLOG),
            }),
        }
    }

    /// The largest total size of raw messages the store keeps.
    pub fn max_bytes(&self) -> usize {
        self.inner.max_bytes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `message` under the next [`Message::id`], drops the oldest beyond the bounds,
    /// and tells the subscribers.
    pub(super) fn record(&self, mut message: Message) {
        let message = {
            let mut state = self.lock();
            state.last_id += 1;
            message.id = state.last_id;
            let message = Arc::new(message);
            state.bytes += message.raw.len();
            state.messages.push_back(message.clone());
            while state.messages.len() > 1
                && (state.messages.len() > self.inner.max_messages
                    || state.bytes > self.inner.max_bytes)
            {
                if let Some(old) = state.messages.pop_front() {
                    state.bytes -= old.raw.len();
                }
            }
            message
        };
        self.inner.arrived.send_modify(|n| *n += 1);
        // No subscriber is not an error.
        let _ = self.inner.events.send(message);
    }

    /// The messages kept, oldest first.
    pub fn messages(&self) -> Vec<Arc<Message>> {
        self.lock().messages.iter().cloned().collect()
    }

    /// The message with this [`Message::id`], if it is still kept.
    pub fn get(&self, id: u64) -> Option<Arc<Message>> {
        let state = self.lock();
        let at = state.messages.binary_search_by_key(&id, |m| m.id).ok()?;
        state.messages.get(at).cloned()
    }

    /// Forgets the message with this id; whether it was kept.
    pub fn remove(&self, id: u64) -> bool {
        let mut state = self.lock();
        let Ok(at) = state.messages.binary_search_by_key(&id, |m| m.id) else {
            return false;
        };
        if let Some(old) = state.messages.remove(at) {
            state.bytes -= old.raw.len();
        }
        true
    }

    /// Forgets every message, and restarts the count [`wait_for`](Self::wait_for) waits on.
    /// Ids go on from where they were.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.messages.clear();
        state.bytes = 0;
        self.inner.arrived.send_replace(0);
    }

    /// The number of messages kept and their total raw size.
    pub fn len_and_bytes(&self) -> (usize, usize) {
        let state = self.lock();
        (state.messages.len(), state.bytes)
    }

    /// Every message accepted from now on, as it is recorded. The recorder never waits for a
    /// subscriber: one that falls more than 256 messages behind gets
    /// [`RecvError::Lagged`](broadcast::error::RecvError::Lagged) and misses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Message>> {
        self.inner.events.subscribe()
    }

    /// Waits until at least `n` messages were accepted (counted since the start or the last
    /// [`clear`](Self::clear), including any dropped by the bounds) and returns the kept
    /// ones; an error says how many arrived in time.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Arc<Message>>, WaitError> {
        let mut arrived = self.inner.arrived.subscribe();
        let waited = tokio::time::timeout(timeout, arrived.wait_for(|&c| c >= n)).await;
        if waited.is_ok_and(|r| r.is_ok()) {
            return Ok(self.messages());
        }
        Err(WaitError {
            wanted: n,
            arrived: *arrived.borrow(),
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Peer;

    fn message(size: usize) -> Message {
        Message::for_store(vec![b'x'; size], Peer::Local)
    }

    fn ids(store: &MessageStore) -> Vec<u64> {
        store.messages().iter().map(|m| m.id).collect()
    }

    #[test]
    fn the_count_bound_drops_the_oldest() {
        let store = MessageStore::bounded(2, usize::MAX);
        for _ in 0..3 {
            store.record(message(1));
        }
        assert_eq!(ids(&store), [2, 3]);
    }

    #[test]
    fn the_size_bound_drops_the_oldest_but_keeps_the_newest() {
        let store = MessageStore::bounded(10, 10);
        store.record(message(4));
        store.record(message(4));
        store.record(message(4));
        assert_eq!(ids(&store), [2, 3]);
        assert_eq!(store.len_and_bytes(), (2, 8));
        store.record(message(50));
        assert_eq!(ids(&store), [4]);
    }

    #[test]
    fn remove_and_get_by_id() {
        let store = MessageStore::new();
        for _ in 0..3 {
            store.record(message(2));
        }
        assert!(store.remove(2));
        assert!(!store.remove(2));
        assert!(store.get(2).is_none());
        assert_eq!(store.get(3).map(|m| m.id), Some(3));
        assert_eq!(store.len_and_bytes(), (2, 4));
        store.clear();
        store.record(message(1));
        assert_eq!(ids(&store), [4], "ids go on after clear");
    }

    #[tokio::test]
    async fn subscribers_see_new_messages_and_wait_for_counts_arrivals() {
        let store = MessageStore::bounded(1, usize::MAX);
        let mut events = store.subscribe();
        store.record(message(1));
        store.record(message(1));
        assert_eq!(events.recv().await.map(|m| m.id).ok(), Some(1));
        assert_eq!(events.recv().await.map(|m| m.id).ok(), Some(2));
        let kept = store.wait_for(2, Duration::from_millis(1)).await;
        assert_eq!(kept.map(|m| m.len()).ok(), Some(1));
        let late = store.wait_for(3, Duration::from_millis(1)).await;
        assert_eq!(late.map_err(|e| e.arrived).err(), Some(2));
    }

    /// A subscriber that never reads must not hold up the recorder (the SMTP side): it
    /// misses the oldest events instead.
    #[tokio::test]
    async fn a_subscriber_that_does_not_read_lags_instead_of_blocking() {
        let store = MessageStore::new();
        let mut idle = store.subscribe();
        for _ in 0..SUBSCRIBER_BACKLOG + 10 {
            store.record(message(1));
        }
        assert!(matches!(
            idle.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
        assert_eq!(idle.recv().await.map(|m| m.id).ok(), Some(11));
    }
}
