//! The mechanisms a server offers: the [`AuthMechanism`] trait, the handler's [`Mechanism`]
//! table, and the registry built from both.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::data::{AuthAbort, AuthResult};
use super::exchange::{AuthArgs, AuthServer};

/// A SASL mechanism as a value: the built-ins, those in [`mechanisms`](super::mechanisms), and
/// yours, registered with [`Server::mechanism`](crate::Server::mechanism).
///
/// Implement `run` with an ordinary `async fn`. It talks to the client through
/// [`AuthServer::challenge_auth`] and decides with its result; the server sends the final
/// reply.
pub trait AuthMechanism: Send + Sync + 'static {
    /// The SASL name it is offered under: 1–20 characters of `A-Z 0-9 - _` (RFC 4422).
    fn name(&self) -> &str;

    /// Runs one exchange.
    fn run(
        &self,
        server: &mut AuthServer<'_>,
        args: AuthArgs,
    ) -> impl Future<Output = Result<AuthResult, AuthAbort>> + Send;
}

/// [`AuthMechanism`] with a boxed future, so that the registry can hold any of them.
pub(crate) trait DynMechanism: Send + Sync + 'static {
    fn run_boxed<'a, 'b>(
        &'a self,
        server: &'a mut AuthServer<'b>,
        args: AuthArgs,
    ) -> BoxFuture<'a, Result<AuthResult, AuthAbort>>;
}

impl<M: AuthMechanism> DynMechanism for M {
    fn run_boxed<'a, 'b>(
        &'a self,
        server: &'a mut AuthServer<'b>,
        args: AuthArgs,
    ) -> BoxFuture<'a, Result<AuthResult, AuthAbort>> {
        Box::pin(self.run(server, args))
    }
}

/// An AUTH mechanism of a handler: its registered name and the method that runs it.
///
/// `#[smtp_core::hooks]` builds a static table of these from `auth_*` methods and
/// `#[auth_mechanism("NAME")]`; written by hand it is
/// `Mechanism { name: "X-TOKEN", run: |h, server, args| Box::pin(h.token(server, args)) }`.
pub struct Mechanism<H> {
    /// The SASL name: 1–20 characters of `A-Z 0-9 - _` (RFC 4422).
    pub name: &'static str,
    /// Runs one AUTH exchange.
    pub run: MechanismFn<H>,
}

/// The function of a [`Mechanism`]: the same result as [`AuthMechanism::run`].
pub type MechanismFn<H> = for<'a, 'b> fn(
    &'a H,
    &'a mut AuthServer<'b>,
    AuthArgs,
) -> BoxFuture<'a, Result<AuthResult, AuthAbort>>;

impl<H> Clone for Mechanism<H> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<H> Copy for Mechanism<H> {}

impl<H> std::fmt::Debug for Mechanism<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mechanism")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How a registered mechanism runs.
pub(crate) enum MechanismEntry<H> {
    Handler(MechanismFn<H>),
    Dynamic(Arc<dyn DynMechanism>),
}

impl<H> MechanismEntry<H> {
    /// Runs the exchange with `handler`'s method or the mechanism value.
    pub(crate) fn run<'a, 'b>(
        &'a self,
        handler: &'a H,
        server: &'a mut AuthServer<'b>,
        args: AuthArgs,
    ) -> BoxFuture<'a, Result<AuthResult, AuthAbort>> {
        match self {
            MechanismEntry::Handler(run) => run(handler, server, args),
            MechanismEntry::Dynamic(m) => m.run_boxed(server, args),
        }
    }
}

impl<H> Clone for MechanismEntry<H> {
    fn clone(&self) -> Self {
        match self {
            MechanismEntry::Handler(f) => MechanismEntry::Handler(*f),
            MechanismEntry::Dynamic(m) => MechanismEntry::Dynamic(m.clone()),
        }
    }
}

/// The mechanisms of a server: the values (built-ins first, then run-time registrations), then
/// the handler's (each replacing an earlier one of the same name), minus the excluded ones.
/// Built once.
pub(crate) struct Registry<H> {
    entries: BTreeMap<String, MechanismEntry<H>>,
    advertised: String,
}

impl<H> Registry<H> {
    pub(crate) fn new(
        handler: &'static [Mechanism<H>],
        dynamic: &[(String, Arc<dyn DynMechanism>)],
        exclude: &[String],
    ) -> Registry<H> {
        let mut entries: BTreeMap<String, MechanismEntry<H>> = BTreeMap::new();
        for (name, m) in dynamic {
            entries.insert(
                name.to_ascii_uppercase(),
                MechanismEntry::Dynamic(m.clone()),
            );
        }
        for m in handler {
            entries.insert(m.name.to_ascii_uppercase(), MechanismEntry::Handler(m.run));
        }
        for name in exclude {
            entries.remove(&name.to_ascii_uppercase());
        }
        let advertised = entries
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        Registry {
            entries,
            advertised,
        }
    }

    /// The mechanism called `name`, matched case-insensitively.
    pub(crate) fn get(&self, name: &str) -> Option<&MechanismEntry<H>> {
        if name.bytes().any(|b| b.is_ascii_lowercase()) {
            self.entries.get(&name.to_ascii_uppercase())
        } else {
            self.entries.get(name)
        }
    }

    /// The names, sorted and space-separated, for `250-AUTH`.
    pub(crate) fn advertised(&self) -> &str {
        &self.advertised
    }
}

/// Whether `name` is a valid SASL mechanism name (RFC 4422 §3.1): 1 to 20 of `A-Z 0-9 - _`.
pub fn is_valid_mechanism_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
