//! The [`Handler`] trait: the hooks through which an application decides what the server does.

use std::future::Future;

use crate::auth::{AuthArgs, AuthResult, AuthServer, Mechanism};
use crate::body::BodyMode;
use crate::envelope::Envelope;
use crate::proto::params::{MailParams, RcptParams};
use crate::proto::proxy::ProxyData;
use crate::proto::{Reply, replies};
use crate::session::Session;

/// What went wrong inside a hook, for [`Handler::handle_exception`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HookError {
    /// The hook that failed (`"handle_data"`, `"auth"` for a mechanism, …).
    pub hook: &'static str,
    /// The panic message (`"unknown panic"` when the payload was not a string).
    pub message: String,
}

impl HookError {
    /// The error of `hook`, which panicked with `message`.
    pub fn new(hook: &'static str, message: impl Into<String>) -> HookError {
        HookError {
            hook,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hook `{}` panicked: {}", self.hook, self.message)
    }
}

impl std::error::Error for HookError {}

/// The default replies of the hooks, shared by [`Handler`]'s defaults and the macro-generated
/// handlers, so that "no hook" means the same thing everywhere.
pub mod defaults {
    use super::*;

    /// `250 <server hostname>`.
    pub fn helo(session: &Session) -> Reply {
        Reply::new(250, session.server_hostname().to_owned())
    }
    /// `221 Bye`.
    pub fn quit() -> Reply {
        replies::BYE
    }
    /// `252 Cannot VRFY user, but will accept message and attempt delivery`.
    pub fn vrfy() -> Reply {
        replies::CANNOT_VRFY
    }
    /// `500 Error: (panic) <message>`, aiosmtpd's reply to an exception.
    pub fn exception(error: &HookError) -> Reply {
        let message: String = error
            .message
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        replies::hook_panicked(&message)
    }
}

macro_rules! hooks {
    ($(
        $(#[$doc:meta])*
        fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty $default:block
    )*) => {
        /// The application's side of the server: one async hook per command, each with a default.
        ///
        /// A hook decides the reply. When the reply is positive (2xx) the server records the
        /// command's effect itself: the greeting name, the sender, the recipient. So a hook
        /// only decides; it does not need to fill in the envelope (unlike aiosmtpd, where a hook
        /// that forgets to set `envelope.mail_from` breaks the transaction).
        ///
        /// A hook that panics does not take the connection down: the client gets the reply of
        /// [`Handler::handle_exception`] and the session goes on.
        ///
        /// Implement it by hand, or write ordinary methods and let `#[derive(SmtpHandler)]`
        /// with `#[smtp_core::hooks]` implement it.
        ///
        /// Memory: a hook's future is awaited inside the connection's task, so the largest
        /// hook future of a handler is part of every connection, idle ones too. A hook that
        /// awaits a heavy client (a message queue, an HTTP request) should box that work,
        /// `Box::pin(publish(…)).await`: one allocation per call instead of kilobytes per
        /// connection. (The `smtpd` binary does this for its Maildir and JetStream handlers.)
        pub trait Handler: Send + Sync + 'static {
            $(
                $(#[$doc])*
                #[allow(unused_variables)]
                fn $name(&self $(, $arg: $ty)*) -> impl Future<Output = $ret> + Send {
                    async move $default
                }
            )*

            /// The handler's own AUTH mechanisms. They are added to the built-in LOGIN and
            /// PLAIN, replacing a built-in of the same name.
            fn mechanisms() -> &'static [Mechanism<Self>]
            where
                Self: Sized,
            {
                &[]
            }
        }

        /// What the macros expand to; the paths the macros use are under `__private`.
        #[allow(missing_docs)]
        pub(crate) mod route {
            use super::*;

            /// The hooks of a `#[smtp_core::hooks]` impl block: the same methods as
            /// [`Handler`], implemented by that attribute. `#[derive(SmtpHandler)]` forwards
            /// `Handler` to it when a type has it, and uses the defaults otherwise. Not meant to
            /// be implemented by hand: implement [`Handler`] instead.
            #[diagnostic::on_unimplemented(message = "`{Self}` has no `#[smtp_core::hooks]` impl block")]
            pub trait Hooks: Send + Sync + 'static {
                $(
                    $(#[$doc])*
                    #[allow(unused_variables)]
                    fn $name(&self $(, $arg: $ty)*) -> impl Future<Output = $ret> + Send {
                        async move $default
                    }
                )*
                /// The handler's own AUTH mechanisms, as in [`Handler::mechanisms`].
                fn mechanisms() -> &'static [Mechanism<Self>] where Self: Sized { &[] }
            }

            /// Autoref specialisation: `(&Probe::<T>::new()).route()` is [`UseHooks`] when
            /// `T: Hooks`, and [`UseDefaults`] otherwise. This lets `#[derive(SmtpHandler)]`
            /// work with or without a `#[hooks]` block, which it cannot see.
            pub struct Probe<T>(std::marker::PhantomData<T>);
            #[allow(clippy::new_without_default)]
            impl<T> Probe<T> {
                pub const fn new() -> Self { Probe(std::marker::PhantomData) }
            }
            pub struct UseHooks;
            pub struct UseDefaults;
            pub trait ViaHooks { fn route(&self) -> UseHooks { UseHooks } }
            impl<T: Hooks> ViaHooks for Probe<T> {}
            pub trait ViaDefaults { fn route(&self) -> UseDefaults { UseDefaults } }
            impl<T> ViaDefaults for &Probe<T> {}

            impl UseHooks {
                $(
                    pub fn $name<T: Hooks>(self, h: &T $(, $arg: $ty)*) -> impl Future<Output = $ret> + Send {
                        h.$name($($arg),*)
                    }
                )*
                pub fn mechanisms<T: Hooks>(self) -> &'static [Mechanism<T>] { T::mechanisms() }
            }

            impl UseDefaults {
                $(
                    #[allow(unused_variables)]
                    pub fn $name<T>(self, h: &T $(, $arg: $ty)*) -> impl Future<Output = $ret> + Send {
                        async move $default
                    }
                )*
                pub fn mechanisms<T>(self) -> &'static [Mechanism<T>] { &[] }
            }

            /// The body of a derived `impl Handler`.
            #[macro_export]
            #[doc(hidden)]
            macro_rules! __forward_hooks {
                () => {
                    $(
                        fn $name(&self $(, $arg: $ty)*) -> impl ::core::future::Future<Output = $ret> + ::core::marker::Send {
                            #[allow(unused_imports)]
                            use $crate::__private::route::{ViaDefaults as _, ViaHooks as _};
                            (&$crate::__private::route::Probe::<Self>::new()).route().$name(self $(, $arg)*)
                        }
                    )*
                    fn mechanisms() -> &'static [$crate::Mechanism<Self>] {
                        #[allow(unused_imports)]
                        use $crate::__private::route::{ViaDefaults as _, ViaHooks as _};
                        (&$crate::__private::route::Probe::<Self>::new()).route().mechanisms::<Self>()
                    }
                };
            }
        }
    };
}

hooks! {
    /// HELO. Default: `250 <server hostname>`.
    fn handle_helo(&self, session: &mut Session, envelope: &mut Envelope, hostname: &str) -> Reply {
        defaults::helo(session)
    }

    /// EHLO (and LHLO). `responses` is the reply the server would send, with its extensions;
    /// return it, changed or not. Default: `responses`.
    fn handle_ehlo(&self, session: &mut Session, envelope: &mut Envelope, hostname: &str, responses: Reply) -> Reply {
        responses
    }

    /// MAIL FROM, after the server's own checks and after the server recorded the sender and
    /// its parameters in the envelope (raw in `envelope.mail_options`, typed in `params`);
    /// the hook may amend them, and a negative reply undoes them. Default: `250 OK`.
    fn handle_mail(&self, session: &mut Session, envelope: &mut Envelope, address: &str, params: &MailParams) -> Reply {
        Reply::ok()
    }

    /// RCPT TO, after the server's own checks and after the server appended the recipient to
    /// `envelope.recipients`; the hook may amend it, and a negative reply removes it.
    /// Default: `250 OK`.
    fn handle_rcpt(&self, session: &mut Session, envelope: &mut Envelope, address: &str, params: &RcptParams) -> Reply {
        Reply::ok()
    }

    /// The message, in `envelope.content`. Default: `250 OK` (the message is dropped).
    fn handle_data(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        Reply::ok()
    }

    /// The body starts (after `354`, or with the first BDAT chunk): where it goes.
    /// [`BodyMode::Stream`] hands it to a [`BodySink`](crate::BodySink) piece by piece and
    /// [`BodyMode::Discard`] drops it; with either, `envelope.content` stays empty and memory
    /// stays bounded. `handle_data` is called at the end either way. Default:
    /// [`BodyMode::Buffer`], the body in `envelope.content`.
    fn handle_body(&self, session: &mut Session, envelope: &mut Envelope) -> BodyMode {
        BodyMode::Buffer
    }

    /// LMTP only (`Config::lmtp`): the replies after the message, one per accepted recipient
    /// in the order of `envelope.rcpt_tos` (RFC 2033 §4.2). Default: `None`, which sends
    /// `handle_data`'s reply once per recipient. A list of another length is cut, or padded
    /// with its last reply.
    fn handle_lmtp_data(&self, session: &mut Session, envelope: &mut Envelope) -> Option<Vec<Reply>> {
        None
    }

    /// RSET, after the envelope was reset. Default: `250 OK`.
    fn handle_rset(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        Reply::ok()
    }

    /// NOOP with its optional argument. Default: `250 OK`.
    fn handle_noop(&self, session: &mut Session, envelope: &mut Envelope, arg: Option<&str>) -> Reply {
        Reply::ok()
    }

    /// QUIT; the connection closes after the reply. Default: `221 Bye`.
    fn handle_quit(&self, session: &mut Session, envelope: &mut Envelope) -> Reply {
        defaults::quit()
    }

    /// VRFY with a parsable address. Default: `252 Cannot VRFY user, but will accept message
    /// and attempt delivery`.
    fn handle_vrfy(&self, session: &mut Session, envelope: &mut Envelope, address: &str) -> Reply {
        defaults::vrfy()
    }

    /// A hook panicked; the reply goes to the client and the session goes on.
    /// Default: `500 Error: (panic) <message>`.
    fn handle_exception(&self, session: &Session, error: &HookError) -> Reply {
        defaults::exception(error)
    }

    /// The PROXY protocol header, on a server with `config.proxy_protocol`, before the
    /// greeting; `session.peer` is already the proxied client. `false` closes the connection
    /// with nothing sent. Default: `true`.
    fn handle_proxy(&self, session: &mut Session, proxy_data: &ProxyData) -> bool {
        true
    }

    /// AUTH, after the server's checks (EHLO, TLS, not yet authenticated, mechanism known).
    /// `Some(result)` replaces the mechanism dispatch; the default, `None`, runs the mechanism.
    fn handle_auth(&self, server: &mut AuthServer<'_>, args: &AuthArgs) -> Option<AuthResult> {
        None
    }

    /// STARTTLS, after a successful handshake; `session.tls()` holds what was negotiated
    /// (aiosmtpd's `handle_STARTTLS`). `false` refuses the result: every later command but QUIT
    /// gets `554 Command refused due to lack of security`. Default: `true`.
    fn handle_starttls(&self, session: &mut Session, envelope: &mut Envelope) -> bool {
        true
    }
}
