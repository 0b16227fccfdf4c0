//! The procedural macros of `smtp_core`: `#[derive(SmtpHandler)]`, `#[hooks]` and
//! `#[auth_mechanism]`. Use them through `smtp_core`, which re-exports them.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod name;
mod spec;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `smtp_core::Handler`: with the methods of the type's `#[smtp_core::hooks]` impl
/// block if it has one, with the default of every hook if it does not.
///
/// ```
/// use smtp_core::SmtpHandler;
///
/// #[derive(SmtpHandler)]
/// struct Sink;
/// ```
///
/// is, without the macro,
///
/// ```
/// struct Sink;
///
/// impl smtp_core::Handler for Sink {}
/// ```
///
/// and with a `#[hooks]` block, each hook of the derived impl calls the block's method of the
/// same name, and `mechanisms()` returns the block's table: see [`macro@hooks`] for the code.
///
/// The derive cannot see the `#[hooks]` block; it finds out at compile time whether the type
/// has one. For a generic type the answer could differ between instances, so there the derived
/// impl requires a `#[hooks]` block, and `Relay<T>` is a handler for the `T`s that the block
/// covers.
///
/// `#[smtp(crate = "path")]` names the `smtp_core` crate when it is not a dependency of that
/// name (a re-export, a renamed dependency).
#[proc_macro_derive(SmtpHandler, attributes(smtp))]
pub fn derive_smtp_handler(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}

/// Makes the methods of an impl block the hooks and AUTH mechanisms of a
/// `#[derive(SmtpHandler)]` type.
///
/// - `handle_*` methods are hooks, with the parameters of the `Handler` method of the same name
///   (`handle_data`, `handle_rcpt`, …). Any other `handle_*` name is an error.
/// - `auth_*` methods are AUTH mechanisms named by the rest of the method name, where `__`
///   stands for `-` (aiosmtpd's rule): `auth_CRAM__MD5` is `CRAM-MD5` and
///   `auth_MECH_WITH_UNDERSCORE` is `MECH_WITH_UNDERSCORE`. `auth_LOGIN` and `auth_PLAIN`
///   replace the built-in mechanisms.
/// - A method marked `#[auth_mechanism("NAME")]` is the mechanism `NAME`, whatever its own
///   name.
/// - Other methods are left alone.
///
/// Hooks and mechanisms are `async fn`s taking `&self`. A mechanism takes
/// `(&self, server: &mut AuthServer<'_>, args: AuthArgs)` and returns an `AuthResult`, or a
/// `Result<AuthResult, AuthAbort>` so that `server.challenge_auth(…).await?` works; either
/// becomes the one result type of every mechanism, `Result<AuthResult, AuthAbort>`.
/// `handle_auth` takes `&AuthArgs` and returns the same, or `Handler`'s own
/// `Option<AuthResult>`.
///
/// ```
/// use smtp_core::{AuthAbort, AuthArgs, AuthResult, AuthServer, Envelope, RcptParams, Reply, Session, SmtpHandler};
///
/// #[derive(SmtpHandler)]
/// struct Relay;
///
/// #[smtp_core::hooks]
/// impl Relay {
///     async fn handle_rcpt(&self, _: &mut Session, _: &mut Envelope, address: &str, _: &RcptParams) -> Reply {
///         if address.ends_with("@example.com") { Reply::ok() } else { Reply::from("550 not relaying") }
///     }
///
///     #[smtp_core::auth_mechanism("X-TOKEN")]
///     async fn token(&self, server: &mut AuthServer<'_>, args: AuthArgs) -> Result<AuthResult, AuthAbort> {
///         let token = server.initial_or_challenge(args.initial_response, "token please").await?;
///         Ok(if token == b"secret" { AuthResult::success() } else { AuthResult::failure() })
///     }
/// }
/// ```
///
/// is, without the macros,
///
/// ```
/// use smtp_core::auth::IntoAuthResult;
/// use smtp_core::{AuthAbort, AuthArgs, AuthResult, AuthServer, Envelope, Handler, Mechanism, RcptParams, Reply, Session};
///
/// struct Relay;
///
/// impl Relay {
///     async fn token(&self, server: &mut AuthServer<'_>, args: AuthArgs) -> Result<AuthResult, AuthAbort> {
///         let token = server.initial_or_challenge(args.initial_response, "token please").await?;
///         Ok(if token == b"secret" { AuthResult::success() } else { AuthResult::failure() })
///     }
/// }
///
/// impl Handler for Relay {
///     async fn handle_rcpt(&self, _: &mut Session, _: &mut Envelope, address: &str, _: &RcptParams) -> Reply {
///         if address.ends_with("@example.com") { Reply::ok() } else { Reply::from("550 not relaying") }
///     }
///
///     fn mechanisms() -> &'static [Mechanism<Self>] {
///         const {
///             &[Mechanism {
///                 name: "X-TOKEN",
///                 run: |h, server, args| Box::pin(async move { h.token(server, args).await.into_auth_result() }),
///             }]
///         }
///     }
/// }
/// ```
///
/// A type has one `#[hooks]` block. The methods stay in it and can still be called directly. Errors in the block
/// (an unknown hook, a bad mechanism name, a hook that is not `async`) are reported together,
/// and the handler keeps the defaults until they are fixed.
///
/// `#[hooks(crate = "path")]` names the `smtp_core` crate, as `#[smtp(crate = "path")]` does
/// for the derive.
#[proc_macro_attribute]
pub fn hooks(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::hooks(args.into(), input.into()).into()
}

/// Registers a method of a `#[smtp_core::hooks]` impl block as the AUTH mechanism of the given
/// name: `#[auth_mechanism("X-TOKEN")]`.
///
/// The name is 1 to 20 characters of `A-Z 0-9 - _` (RFC 4422), written in upper case. The
/// attribute is read by `#[hooks]`, which puts the method in the `mechanisms()` table of the
/// handler (see [`macro@hooks`] for the code); anywhere else it is an error.
#[proc_macro_attribute]
pub fn auth_mechanism(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::auth_mechanism(args.into(), input.into()).into()
}
