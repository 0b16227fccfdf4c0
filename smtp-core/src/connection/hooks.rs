//! Calling a hook: a panic becomes `handle_exception`'s reply, never a lost connection.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use tracing::warn;

use super::Connection;
use crate::handler::{Handler, HookError, defaults};
use crate::proto::Reply;
use crate::stream::Transport;

/// Runs a hook of the handler with the connection's session and envelope, catching a panic:
/// `call_hook!(self, "handle_noop", |h, session, envelope| h.handle_noop(session, envelope, arg))`
/// is `Result<T, HookError>`.
macro_rules! call_hook {
    ($conn:expr, $name:literal, |$h:ident, $session:ident, $envelope:ident| $call:expr) => {{
        let $h = &$conn.shared.handler;
        let $session = &mut $conn.session;
        #[allow(unused_variables)]
        let $envelope = &mut $conn.envelope;
        let outcome =
            ::futures_util::FutureExt::catch_unwind(::std::panic::AssertUnwindSafe($call)).await;
        $crate::connection::hooks::caught($name, outcome)
    }};
}
pub(super) use call_hook;

/// A hook's outcome, with a panic turned into its [`HookError`].
pub(super) fn caught<T>(
    hook: &'static str,
    outcome: Result<T, Box<dyn Any + Send>>,
) -> Result<T, HookError> {
    outcome.map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        warn!(hook, %message, "hook panicked");
        HookError::new(hook, message)
    })
}

impl<H: Handler, S: Transport> Connection<H, S> {
    /// The reply of a hook that answers with one, or `handle_exception`'s when it panicked.
    pub(super) async fn settle(&mut self, outcome: Result<Reply, HookError>) -> Reply {
        match outcome {
            Ok(reply) => reply,
            Err(error) => self.exception_reply(&error).await,
        }
    }

    /// `handle_exception`'s reply to `error`; if that hook panics too, the default reply,
    /// which still says what failed.
    pub(super) async fn exception_reply(&mut self, error: &HookError) -> Reply {
        let handler = &self.shared.handler;
        AssertUnwindSafe(handler.handle_exception(&self.session, error))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                warn!(hook = "handle_exception", "hook panicked");
                defaults::exception(error)
            })
    }
}
