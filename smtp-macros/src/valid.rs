//! The checks of a `#[hooks]` impl block that the compiler would not make, or would make with
//! a worse message.

use syn::{FnArg, ImplItemFn, ReceiverKind, Type};

use crate::ast::{Hook, HooksImpl, Mechanism};
use crate::ctxt::Ctxt;
use crate::name;
use crate::spec::{self, HOOKS, MECHANISM_PARAMS, Param};

pub fn check(model: &HooksImpl, cx: &mut Ctxt) {
    for hook in &model.hooks {
        check_hook(hook, cx);
    }
    check_mechanisms(&model.mechanisms, cx);
    for attr in &model.misplaced {
        cx.error_spanned_by(attr, "`#[auth_mechanism]` only applies to methods");
    }
}

fn check_hook(hook: &Hook, cx: &mut Ctxt) {
    let name = hook.name();
    let Some(spec) = hook.spec else {
        let ident = &hook.func.sig.ident;
        match name::closest(&name, HOOKS.iter().map(|hook| hook.name)) {
            Some(suggestion) => cx.error_spanned_by(
                ident,
                format!("unknown hook `{name}`; did you mean `{suggestion}`?"),
            ),
            None => {
                let known: Vec<String> = HOOKS
                    .iter()
                    .map(|hook| format!("`{}`", hook.name))
                    .collect();
                cx.error_spanned_by(
                    ident,
                    format!(
                        "unknown hook `{name}`; expected one of {}",
                        known.join(", ")
                    ),
                );
            }
        }
        return;
    };
    for attr in &hook.mechanism_attrs {
        cx.error_spanned_by(
            attr,
            format!("`{name}` is a hook; it cannot also be an AUTH mechanism"),
        );
    }
    check_signature(hook.func, "hook", spec.params, &spec.signature(), cx);
}

fn check_mechanisms(mechanisms: &[Mechanism], cx: &mut Ctxt) {
    let mut registered: Vec<(String, &Mechanism)> = Vec::new();
    for mechanism in mechanisms {
        let method = mechanism.method_name();
        let expected = spec::signature(&method, MECHANISM_PARAMS, "AuthResult");
        check_signature(mechanism.func, "mechanism", MECHANISM_PARAMS, &expected, cx);
        for attr in &mechanism.extra_attrs {
            cx.error_spanned_by(
                attr,
                "a method registers one mechanism; remove this `#[auth_mechanism]`",
            );
        }
        let name = match mechanism.name.resolve() {
            Ok(Some(name)) => name,
            Ok(None) => continue,
            Err(error) => {
                cx.syn_error(error);
                continue;
            }
        };
        let same = |(other_name, other): &&(String, &Mechanism)| {
            *other_name == name && mechanism.coexists_with(other)
        };
        match registered.iter().find(same) {
            Some((_, first)) => {
                let first = first.method_name();
                let message = format!("mechanism `{name}` is already registered by `{first}`");
                cx.error_at(mechanism.name.span(), message);
            }
            None => registered.push((name, mechanism)),
        }
    }
}

fn check_signature(
    func: &ImplItemFn,
    role: &str,
    params: &[(&str, Param)],
    expected: &str,
    cx: &mut Ctxt,
) {
    let sig = &func.sig;
    let name = &sig.ident;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!("{role} `{name}` must be an `async fn`"),
        );
    }
    let takes_ref_self = match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => match &receiver.kind {
            ReceiverKind::Reference(_, _, mutability) => mutability.is_none(),
            ReceiverKind::Typed(_, ty) => {
                matches!(&**ty, Type::Reference(ty) if ty.mutability.is_none())
            }
            _ => false,
        },
        _ => false,
    };
    let parens = sig.paren_token.span.join();
    if !takes_ref_self {
        let message = format!("{role} `{name}` must take `&self`; expected `{expected}`");
        match sig.inputs.first() {
            Some(FnArg::Receiver(receiver)) => cx.error_spanned_by(receiver, message),
            _ => cx.error_at(parens, message),
        }
        return;
    }
    let found = sig.inputs.len() - 1;
    if found != params.len() {
        let takes = params.len();
        let message = format!(
            "{role} `{name}` takes {takes} parameters after `&self`, found {found}; \
             expected `{expected}`"
        );
        cx.error_at(parens, message);
    }
}
