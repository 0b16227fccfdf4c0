//! Procedural macros of smtp-core. Use them through `smtp_core`.
use proc_macro::TokenStream;

/// Placeholder.
#[proc_macro_derive(SmtpHandler, attributes(smtp))]
pub fn derive_smtp_handler(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}

/// Placeholder.
#[proc_macro_attribute]
pub fn hooks(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}

/// Placeholder.
#[proc_macro_attribute]
pub fn auth_mechanism(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
