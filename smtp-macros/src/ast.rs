//! The model of a `#[hooks]` impl block. It borrows the syn nodes so that diagnostics can point
//! at them.

use proc_macro2::Span;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{Attribute, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr};

use crate::attr;
use crate::ctxt::Ctxt;
use crate::name;
use crate::spec::{self, HookSpec};

pub struct HooksImpl<'a> {
    pub item: &'a ItemImpl,
    pub hooks: Vec<Hook<'a>>,
    pub mechanisms: Vec<Mechanism<'a>>,
    /// `#[auth_mechanism]` on impl items that are not methods.
    pub misplaced: Vec<&'a Attribute>,
}

pub struct Hook<'a> {
    pub func: &'a ImplItemFn,
    /// `None` for a `handle_*` method that is not a hook.
    pub spec: Option<&'static HookSpec>,
    /// `#[auth_mechanism]` on a hook, which cannot be both.
    pub mechanism_attrs: Vec<&'a Attribute>,
}

pub struct Mechanism<'a> {
    pub func: &'a ImplItemFn,
    pub name: MechanismName<'a>,
    /// Every `#[auth_mechanism]` after the first.
    pub extra_attrs: Vec<&'a Attribute>,
}

pub enum MechanismName<'a> {
    /// `#[auth_mechanism("NAME")]`.
    Literal(LitStr),
    /// `#[auth_mechanism(…)]` that was malformed, and already reported.
    Malformed,
    /// `auth_NAME`.
    Method { ident: &'a Ident, remainder: String },
}

impl<'a> HooksImpl<'a> {
    pub fn from_syn(item: &'a ItemImpl, cx: &mut Ctxt) -> Self {
        let mut model = HooksImpl {
            item,
            hooks: Vec::new(),
            mechanisms: Vec::new(),
            misplaced: Vec::new(),
        };
        for impl_item in &item.items {
            match impl_item {
                ImplItem::Fn(func) => model.add_method(func, cx),
                other => model.misplaced.extend(
                    item_attrs(other)
                        .iter()
                        .filter(|attr| attr::is_auth_mechanism(attr)),
                ),
            }
        }
        model
    }

    fn add_method(&mut self, func: &'a ImplItemFn, cx: &mut Ctxt) {
        let mut mechanism_attrs: Vec<&Attribute> = func
            .attrs
            .iter()
            .filter(|attr| attr::is_auth_mechanism(attr))
            .collect();
        let name = func.sig.ident.unraw().to_string();
        if name.starts_with("handle_") {
            self.hooks.push(Hook {
                func,
                spec: spec::find(&name),
                mechanism_attrs,
            });
        } else if !mechanism_attrs.is_empty() {
            let first = mechanism_attrs.remove(0);
            let name = match attr::mechanism_name(first, cx) {
                Some(lit) => MechanismName::Literal(lit),
                None => MechanismName::Malformed,
            };
            self.mechanisms.push(Mechanism {
                func,
                name,
                extra_attrs: mechanism_attrs,
            });
        } else if let Some(remainder) = name.strip_prefix("auth_") {
            let name = MechanismName::Method {
                ident: &func.sig.ident,
                remainder: remainder.to_owned(),
            };
            self.mechanisms.push(Mechanism {
                func,
                name,
                extra_attrs: Vec::new(),
            });
        }
    }
}

impl MechanismName<'_> {
    /// The registered name, or why it is invalid. `Ok(None)` when the attribute was malformed.
    pub fn resolve(&self) -> syn::Result<Option<String>> {
        match self {
            MechanismName::Literal(lit) => {
                let value = lit.value();
                name::check(&value).map_err(|message| syn::Error::new(lit.span(), message))?;
                Ok(Some(value))
            }
            MechanismName::Malformed => Ok(None),
            MechanismName::Method { ident, remainder } => name::from_method(remainder)
                .map(Some)
                .map_err(|message| syn::Error::new(ident.span(), message)),
        }
    }

    pub fn span(&self) -> Span {
        match self {
            MechanismName::Literal(lit) => lit.span(),
            MechanismName::Malformed => Span::call_site(),
            MechanismName::Method { ident, .. } => ident.span(),
        }
    }
}

impl<'a> Hook<'a> {
    pub fn name(&self) -> String {
        self.func.sig.ident.unraw().to_string()
    }

    pub fn cfgs(&self) -> impl Iterator<Item = &'a Attribute> {
        cfgs(self.func)
    }

    /// Two hooks of the same key are one method defined twice, which rustc reports.
    pub fn key(&self) -> (String, String) {
        (self.name(), cfg_key(self.func))
    }
}

impl<'a> Mechanism<'a> {
    pub fn method_name(&self) -> String {
        self.func.sig.ident.unraw().to_string()
    }

    pub fn cfgs(&self) -> impl Iterator<Item = &'a Attribute> {
        cfgs(self.func)
    }

    /// Whether both can be compiled in at once, as far as their `#[cfg]`s tell.
    pub fn coexists_with(&self, other: &Mechanism) -> bool {
        cfg_key(self.func) == cfg_key(other.func)
    }
}

/// A method's `#[cfg]`s, which apply to what is generated for it too.
fn cfgs(func: &ImplItemFn) -> impl Iterator<Item = &Attribute> {
    func.attrs.iter().filter(|attr| attr.path().is_ident("cfg"))
}

fn cfg_key(func: &ImplItemFn) -> String {
    cfgs(func)
        .map(|attr| attr.to_token_stream().to_string())
        .collect()
}

fn item_attrs(item: &ImplItem) -> &[Attribute] {
    match item {
        ImplItem::Const(item) => &item.attrs,
        ImplItem::Fn(item) => &item.attrs,
        ImplItem::Type(item) => &item.attrs,
        ImplItem::Macro(item) => &item.attrs,
        _ => &[],
    }
}
