//! The hooks of `smtp_core::Handler`: names, parameters and results, as the macros see them.

use proc_macro2::TokenStream;
use quote::quote;

pub struct HookSpec {
    pub name: &'static str,
    pub params: &'static [(&'static str, Param)],
    pub output: Output,
}

#[derive(Clone, Copy)]
pub enum Param {
    MutSession,
    Session,
    Envelope,
    Str,
    OptionStr,
    MailParams,
    RcptParams,
    Reply,
    HookError,
    AuthServer,
    AuthArgs,
    AuthArgsRef,
    ProxyData,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Reply,
    Auth,
    Bool,
    BodyMode,
    Replies,
}

pub const HOOKS: &[HookSpec] = &[
    hook(
        "handle_helo",
        &[SESSION, ENVELOPE, ("hostname", Param::Str)],
    ),
    hook(
        "handle_ehlo",
        &[
            SESSION,
            ENVELOPE,
            ("hostname", Param::Str),
            ("responses", Param::Reply),
        ],
    ),
    hook(
        "handle_mail",
        &[
            SESSION,
            ENVELOPE,
            ("address", Param::Str),
            ("params", Param::MailParams),
        ],
    ),
    hook(
        "handle_rcpt",
        &[
            SESSION,
            ENVELOPE,
            ("address", Param::Str),
            ("params", Param::RcptParams),
        ],
    ),
    hook("handle_data", &[SESSION, ENVELOPE]),
    HookSpec {
        name: "handle_body",
        params: &[SESSION, ENVELOPE],
        output: Output::BodyMode,
    },
    HookSpec {
        name: "handle_lmtp_data",
        params: &[SESSION, ENVELOPE],
        output: Output::Replies,
    },
    hook("handle_rset", &[SESSION, ENVELOPE]),
    hook(
        "handle_noop",
        &[SESSION, ENVELOPE, ("arg", Param::OptionStr)],
    ),
    hook("handle_quit", &[SESSION, ENVELOPE]),
    hook("handle_vrfy", &[SESSION, ENVELOPE, ("address", Param::Str)]),
    hook(
        "handle_exception",
        &[("session", Param::Session), ("error", Param::HookError)],
    ),
    HookSpec {
        name: "handle_proxy",
        params: &[SESSION, ("proxy_data", Param::ProxyData)],
        output: Output::Bool,
    },
    HookSpec {
        name: "handle_starttls",
        params: &[SESSION, ENVELOPE],
        output: Output::Bool,
    },
    HookSpec {
        name: "handle_auth",
        params: &[("server", Param::AuthServer), ("args", Param::AuthArgsRef)],
        output: Output::Auth,
    },
];

const SESSION: (&str, Param) = ("session", Param::MutSession);
const ENVELOPE: (&str, Param) = ("envelope", Param::Envelope);

/// The parameters of a mechanism method, after `&self`.
pub const MECHANISM_PARAMS: &[(&str, Param)] =
    &[("server", Param::AuthServer), ("args", Param::AuthArgs)];

const fn hook(name: &'static str, params: &'static [(&'static str, Param)]) -> HookSpec {
    HookSpec {
        name,
        params,
        output: Output::Reply,
    }
}

pub fn find(name: &str) -> Option<&'static HookSpec> {
    HOOKS.iter().find(|hook| hook.name == name)
}

impl Param {
    pub fn tokens(self, krate: &syn::Path) -> TokenStream {
        match self {
            Param::MutSession => quote!(&mut #krate::Session),
            Param::Session => quote!(&#krate::Session),
            Param::Envelope => quote!(&mut #krate::Envelope),
            Param::Str => quote!(&::core::primitive::str),
            Param::OptionStr => quote!(::core::option::Option<&::core::primitive::str>),
            Param::MailParams => quote!(&#krate::MailParams),
            Param::RcptParams => quote!(&#krate::RcptParams),
            Param::Reply => quote!(#krate::Reply),
            Param::HookError => quote!(&#krate::HookError),
            Param::AuthServer => quote!(&mut #krate::AuthServer<'_>),
            Param::AuthArgs => quote!(#krate::AuthArgs),
            Param::AuthArgsRef => quote!(&#krate::AuthArgs),
            Param::ProxyData => quote!(&#krate::ProxyData),
        }
    }

    fn display(self) -> &'static str {
        match self {
            Param::MutSession => "&mut Session",
            Param::Session => "&Session",
            Param::Envelope => "&mut Envelope",
            Param::Str => "&str",
            Param::OptionStr => "Option<&str>",
            Param::MailParams => "&MailParams",
            Param::RcptParams => "&RcptParams",
            Param::Reply => "Reply",
            Param::HookError => "&HookError",
            Param::AuthServer => "&mut AuthServer<'_>",
            Param::AuthArgs => "AuthArgs",
            Param::AuthArgsRef => "&AuthArgs",
            Param::ProxyData => "&ProxyData",
        }
    }
}

/// `async fn name(&self, a: A, b: B) -> R`, as shown in diagnostics.
pub fn signature(name: &str, params: &[(&str, Param)], output: &str) -> String {
    let params: String = params
        .iter()
        .map(|(name, ty)| format!(", {name}: {}", ty.display()))
        .collect();
    format!("async fn {name}(&self{params}) -> {output}")
}

impl HookSpec {
    pub fn signature(&self) -> String {
        let output = match self.output {
            Output::Reply => "Reply",
            Output::Auth => "AuthResult",
            Output::Bool => "bool",
            Output::BodyMode => "BodyMode",
            Output::Replies => "Option<Vec<Reply>>",
        };
        signature(self.name, self.params, output)
    }
}
