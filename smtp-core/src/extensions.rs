//! [`Extensions`]: a handler's own values on a session, one per type.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

/// A map from a type to one value of it (the pattern of `http::Extensions`), so that a handler
/// keeps per-session state without a global map keyed by connection. Private newtypes as keys
/// keep handlers from reading each other's values.
#[derive(Default)]
pub struct Extensions {
    map: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// Stores `value`, returning the previous value of its type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) -> Option<T> {
        self.map
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast().ok().map(|old| *old))
    }

    /// The value of type `T`.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.map.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The value of type `T`, to change.
    pub fn get_mut<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        self.map.get_mut(&TypeId::of::<T>())?.downcast_mut()
    }

    /// The value of type `T`, inserting `T::default()` first when there is none.
    pub fn get_or_default<T: Any + Send + Sync + Default>(&mut self) -> &mut T {
        self.map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("the entry of a type holds that type")
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Any + Send + Sync>(&mut self) -> Option<T> {
        self.map
            .remove(&TypeId::of::<T>())
            .and_then(|old| old.downcast().ok().map(|old| *old))
    }

    /// Whether no value is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Default)]
    struct Counter(u32);

    #[test]
    fn one_value_per_type() {
        let mut ext = Extensions::default();
        assert!(ext.is_empty());
        assert_eq!(ext.insert(Counter(1)), None);
        assert_eq!(ext.insert(Counter(2)), Some(Counter(1)));
        ext.get_or_default::<Counter>().0 += 1;
        assert_eq!(ext.get::<Counter>(), Some(&Counter(3)));
        ext.insert("text");
        assert_eq!(ext.remove::<Counter>(), Some(Counter(3)));
        assert_eq!(ext.get::<&str>(), Some(&"text"));
        assert_eq!(ext.get::<Counter>(), None);
    }
}
