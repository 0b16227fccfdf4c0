//! The macros' own attributes and arguments, parsed into typed values.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Attribute, Ident, Lit, LitStr, Meta, Path};

use crate::ctxt::Ctxt;

/// What `#[hooks]` leaves in place of an `#[auth_mechanism(…)]` it has read: the user's own
/// path, so that their `use` of the attribute counts as used, and an argument telling the
/// attribute that it has nothing left to do.
const READ_BY_HOOKS: &str = "__read_by_hooks";

/// `#[smtp(crate = "…")]` on the derive input.
pub fn derive_crate(attrs: &[Attribute], cx: &mut Ctxt) -> Option<Path> {
    let mut krate = None;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("smtp")) {
        if let Err(error) = attr.parse_nested_meta(|meta| crate_argument(&meta, "smtp", &mut krate))
        {
            cx.syn_error(error);
        }
    }
    krate
}

/// `#[hooks(crate = "…")]`.
pub fn hooks_crate(args: TokenStream, cx: &mut Ctxt) -> Option<Path> {
    let mut krate = None;
    let parser = syn::meta::parser(|meta| crate_argument(&meta, "hooks", &mut krate));
    if let Err(error) = parser.parse2(args) {
        cx.syn_error(error);
    }
    krate
}

fn crate_argument(
    meta: &ParseNestedMeta,
    attribute: &str,
    krate: &mut Option<Path>,
) -> syn::Result<()> {
    if !meta.path.is_ident("crate") {
        let name = meta.path.to_token_stream().to_string().replace(' ', "");
        return Err(meta.error(format!(
            "unknown `{attribute}` argument `{name}`; expected `crate = \"…\"`"
        )));
    }
    let lit: LitStr = meta.value()?.parse()?;
    if krate.is_some() {
        return Err(syn::Error::new_spanned(
            &meta.path,
            "duplicate `crate` argument",
        ));
    }
    *krate = Some(lit.parse()?);
    Ok(())
}

pub fn default_crate() -> Path {
    syn::parse_quote!(::smtp_core)
}

pub fn is_auth_mechanism(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "auth_mechanism")
}

/// The name in `#[auth_mechanism("NAME")]`, or `None` once the malformed attribute is reported.
pub fn mechanism_name(attr: &Attribute, cx: &mut Ctxt) -> Option<LitStr> {
    let result = match &attr.meta {
        Meta::List(list) if list.tokens.is_empty() => Err(syn::Error::new(
            list.delimiter.span().join(),
            "expected a mechanism name, as in `#[auth_mechanism(\"X-TOKEN\")]`",
        )),
        Meta::List(list) => {
            syn::parse2::<NameArgument>(list.tokens.clone()).map(|argument| argument.0)
        }
        Meta::Path(_) | Meta::NameValue(_) => Err(syn::Error::new_spanned(
            attr,
            "expected a mechanism name, as in `#[auth_mechanism(\"X-TOKEN\")]`",
        )),
    };
    result.map_err(|error| cx.syn_error(error)).ok()
}

struct NameArgument(LitStr);

impl Parse for NameArgument {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let name = input.parse()?;
            if !input.is_empty() {
                let rest: TokenStream = input.parse()?;
                let message = "unexpected tokens after the mechanism name; a method registers one";
                return Err(syn::Error::new_spanned(rest, message));
            }
            return Ok(NameArgument(name));
        }
        let tokens: TokenStream = input.parse()?;
        let text = match syn::parse2::<Lit>(tokens.clone()) {
            Ok(Lit::ByteStr(lit)) => Some(String::from_utf8_lossy(&lit.value()).into_owned()),
            Ok(Lit::Char(lit)) => Some(lit.value().to_string()),
            Ok(Lit::Int(lit)) => Some(lit.base10_digits().to_owned()),
            Ok(_) => None,
            Err(_) => syn::parse2::<Ident>(tokens.clone())
                .ok()
                .map(|ident| ident.to_string()),
        };
        let message = match text {
            Some(text) => format!(
                "the mechanism name must be a string literal: `#[auth_mechanism({text:?})]`"
            ),
            None => "expected a string literal, as in `#[auth_mechanism(\"X-TOKEN\")]`".to_owned(),
        };
        Err(syn::Error::new_spanned(tokens, message))
    }
}

/// The attribute that replaces an `#[auth_mechanism(…)]` read by `#[hooks]`.
pub fn read_by_hooks(attr: &Attribute) -> Attribute {
    let path = attr.path();
    let marker = Ident::new(READ_BY_HOOKS, proc_macro2::Span::call_site());
    syn::parse_quote!(#[#path(#marker)])
}

pub fn is_read_by_hooks(args: &TokenStream) -> bool {
    syn::parse2::<Ident>(args.clone()).is_ok_and(|ident| ident == READ_BY_HOOKS)
}
