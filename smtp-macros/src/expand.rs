//! The generated code. It names only absolute paths, through `smtp_core::__private` where the
//! item is not public API.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{DeriveInput, FnArg, ImplItem, ImplItemFn, Item, ItemImpl, Path, ReturnType};

use crate::ast::{Hook, HooksImpl, Mechanism};
use crate::attr;
use crate::ctxt::Ctxt;
use crate::spec::{MECHANISM_PARAMS, Output, Param};
use crate::valid;

pub fn derive(input: &DeriveInput) -> TokenStream {
    let mut cx = Ctxt::default();
    let krate = attr::derive_crate(&input.attrs, &mut cx).unwrap_or_else(attr::default_crate);
    let ident = &input.ident;
    let mut generics = input.generics.clone();
    if !generics.params.is_empty() {
        // The autoref probe of `__forward_hooks!` only sees impls of concrete types; a generic
        // handler states the bound so that the probe can rely on it.
        let (_, ty_generics, _) = input.generics.split_for_impl();
        let bound = syn::parse_quote!(#ident #ty_generics: #krate::Hooks);
        generics.make_where_clause().predicates.push(bound);
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let errors = cx.to_compile_errors();
    quote! {
        #errors
        const _: () = {
            #[allow(unused_imports)]
            use #krate::__private::types::*;

            #[automatically_derived]
            impl #impl_generics #krate::Handler for #ident #ty_generics #where_clause {
                #krate::__forward_hooks!();
            }
        };
    }
}

pub fn hooks(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::default();
    let krate = attr::hooks_crate(args, &mut cx).unwrap_or_else(attr::default_crate);
    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Impl(item)) => item,
        Ok(_) => {
            cx.error_at(
                Span::call_site(),
                "`#[hooks]` applies to an impl block of the handler type",
            );
            return fallback(&cx, input);
        }
        Err(error) => {
            cx.syn_error(error);
            return fallback(&cx, input);
        }
    };
    if let Some((path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            "`#[hooks]` applies to an inherent impl block, not to a trait impl",
        );
        return fallback(&cx, user_impl(&item).into_token_stream());
    }
    let model = HooksImpl::from_syn(&item, &mut cx);
    valid::check(&model, &mut cx);
    let hooks_impl = if cx.has_errors() {
        hooks_stub(&item, &krate)
    } else {
        hooks_impl(&model, &krate)
    };
    let user_impl = user_impl(&item);
    let errors = cx.to_compile_errors();
    quote! {
        #user_impl
        #hooks_impl
        #errors
    }
}

pub fn auth_mechanism(args: TokenStream, input: TokenStream) -> TokenStream {
    if attr::is_read_by_hooks(&args) {
        return input;
    }
    let message = match syn::parse2::<ImplItem>(input.clone()) {
        Ok(ImplItem::Fn(_)) => {
            "`#[auth_mechanism]` must be inside an impl block annotated with `#[smtp_core::hooks]`"
        }
        _ => {
            "`#[auth_mechanism]` only applies to methods, inside an impl block annotated with `#[smtp_core::hooks]`"
        }
    };
    let error = syn::Error::new(Span::call_site(), message).to_compile_error();
    quote!(#error #input)
}

fn fallback(cx: &Ctxt, input: TokenStream) -> TokenStream {
    let errors = cx.to_compile_errors();
    quote!(#input #errors)
}

/// The user's impl block, minus what `#[hooks]` has taken care of.
fn user_impl(item: &ItemImpl) -> ItemImpl {
    let mut item = item.clone();
    for impl_item in &mut item.items {
        let attrs = match impl_item {
            ImplItem::Fn(func) => {
                if func.sig.ident.unraw().to_string().starts_with("auth_") {
                    func.attrs.push(syn::parse_quote!(#[allow(non_snake_case)]));
                }
                &mut func.attrs
            }
            ImplItem::Const(item) => &mut item.attrs,
            ImplItem::Type(item) => &mut item.attrs,
            ImplItem::Macro(item) => &mut item.attrs,
            _ => continue,
        };
        for attr in attrs
            .iter_mut()
            .filter(|attr| attr::is_auth_mechanism(attr))
        {
            *attr = attr::read_by_hooks(attr);
        }
    }
    item
}

/// After an error: the handler keeps its default behaviour instead of adding errors of its own.
fn hooks_stub(item: &ItemImpl, krate: &Path) -> TokenStream {
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    quote! {
        impl #impl_generics #krate::Hooks for #self_ty #where_clause {}
    }
}

fn hooks_impl(model: &HooksImpl, krate: &Path) -> TokenStream {
    let self_ty = &model.item.self_ty;
    let (impl_generics, _, where_clause) = model.item.generics.split_for_impl();
    let mut generated = Vec::new();
    let hooks = model.hooks.iter().filter(|hook| {
        // A method defined twice is rustc's to report; generating it twice would add an error.
        let key = hook.key();
        let first = !generated.contains(&key);
        generated.push(key);
        first
    });
    let hooks = hooks.map(|hook| hook_fn(hook, krate));
    let mechanisms =
        (!model.mechanisms.is_empty()).then(|| mechanisms_fn(&model.mechanisms, krate));
    quote! {
        impl #impl_generics #krate::Hooks for #self_ty #where_clause {
            #(#hooks)*
            #mechanisms
        }
    }
}

fn hook_fn(hook: &Hook, krate: &Path) -> TokenStream {
    let Some(spec) = hook.spec else {
        return TokenStream::new();
    };
    let name = format_ident!("{}", spec.name);
    let params = spec.params.iter().map(|(name, ty)| {
        let name = format_ident!("{name}");
        let ty = ty.tokens(krate);
        quote!(#name: #ty)
    });
    let call = call(hook.func, "self", spec.params);
    let span = output_span(hook.func);
    let (output, body) = match spec.output {
        Output::Reply => (quote!(#krate::Reply), call),
        Output::Bool => (quote!(::core::primitive::bool), call),
        Output::BodyMode => (quote!(#krate::BodyMode), call),
        Output::Replies => (
            quote!(::core::option::Option<::std::vec::Vec<#krate::Reply>>),
            call,
        ),
        Output::Auth => {
            let convert = converted(hook.func, call, krate, "IntoHandleAuth", "into_handle_auth");
            (
                quote!(::core::option::Option<#krate::AuthResult>),
                quote_spanned!(span=> async move { #convert }),
            )
        }
    };
    let cfgs = hook.cfgs();
    quote_spanned! {span=>
        #(#cfgs)*
        fn #name(&self, #(#params),*) -> impl ::core::future::Future<Output = #output> + ::core::marker::Send {
            #body
        }
    }
}

fn mechanisms_fn(mechanisms: &[Mechanism], krate: &Path) -> TokenStream {
    let entries = mechanisms.iter().filter_map(|mechanism| {
        let name = mechanism.name.resolve().ok().flatten()?;
        let call = call(mechanism.func, "h", MECHANISM_PARAMS);
        let convert = converted(
            mechanism.func,
            call,
            krate,
            "IntoAuthResult",
            "into_auth_result",
        );
        let cfgs = mechanism.cfgs();
        Some(quote! {
            #(#cfgs)*
            #krate::Mechanism {
                name: #name,
                run: |h, server, args| #krate::__private::Box::pin(async move { #convert }),
            }
        })
    });
    quote! {
        fn mechanisms() -> &'static [#krate::Mechanism<Self>] {
            const { &[#(#entries),*] }
        }
    }
}

/// `Self::method(receiver, params…)`, located at the user's method name.
fn call(func: &ImplItemFn, receiver: &str, params: &[(&str, Param)]) -> TokenStream {
    let method = &func.sig.ident;
    let receiver = format_ident!("{receiver}");
    let args = arguments(func, params);
    let span = located_at(method.span());
    quote_spanned!(span=> Self::#method(#receiver, #(#args),*))
}

/// The awaited result of `call` through `__private::<Trait>::<method>`, located at the user's
/// return type, so that an unsupported return type is reported there.
fn converted(
    func: &ImplItemFn,
    call: TokenStream,
    krate: &Path,
    trait_: &str,
    method: &str,
) -> TokenStream {
    let span = output_span(func);
    let krate = respan(krate.to_token_stream(), span);
    let (trait_, method) = (
        format_ident!("{trait_}", span = span),
        format_ident!("{method}", span = span),
    );
    quote_spanned! {span=>
        let result = #call.await;
        #krate::__private::#trait_::#method(result)
    }
}

/// The arguments of the call to the user's method, each located at the parameter it feeds, so
/// that a type mismatch points there.
fn arguments(func: &ImplItemFn, params: &[(&str, Param)]) -> Vec<TokenStream> {
    let user_params = func.sig.inputs.iter().filter_map(|input| match input {
        FnArg::Typed(param) => Some(param),
        FnArg::Receiver(_) => None,
    });
    params
        .iter()
        .zip(user_params)
        .map(|((name, _), param)| {
            let ident = syn::Ident::new(name, located_at(param.ty.span()));
            ident.into_token_stream()
        })
        .collect()
}

/// Where the result of the user's method is checked: its return type, or its name.
fn output_span(func: &ImplItemFn) -> Span {
    match &func.sig.output {
        ReturnType::Type(_, ty) => located_at(ty.span()),
        ReturnType::Default => located_at(func.sig.ident.span()),
    }
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                tree = Group::new(group.delimiter(), respan(group.stream(), span)).into();
            }
            tree.set_span(span);
            tree
        })
        .collect()
}

/// A span that resolves like the macro's own tokens but shows the user's code.
fn located_at(span: Span) -> Span {
    Span::call_site().located_at(span)
}
