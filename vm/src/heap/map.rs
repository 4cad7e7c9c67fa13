//! Spool's map: entries in insertion order, looked up by key.
//!
//! A map whose keys are exactly `0, 1, 2, ...` in insertion order (a very
//! common shape: counters, memo tables, `m[i] = ...` in a loop) is kept
//! dense, as a plain vector indexed by the key, the way Lua keeps an array
//! part. The first insertion that breaks the shape converts it to a hashed
//! map; the two forms behave identically.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::heap::value::Value;
use crate::heap::{Key, KeyHasher};

/// An insertion-ordered map from [`Key`] to [`Value`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValueMap {
    repr: Repr,
}

/// The two representations. The hashed one is boxed: a map is one of the
/// heap's object kinds, and every heap slot is as large as the largest
/// kind, so an unboxed hash table would double the size of all of them
/// (asserted below). Boxing serializes the same.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Repr {
    /// Key `i` holds `values[i]`; inserted in key order.
    Dense(Vec<Value>),
    /// Any keys.
    Hashed(Box<IndexMap<Key, Value, KeyHasher>>),
}

const _: () = assert!(std::mem::size_of::<ValueMap>() <= 24);

impl Default for ValueMap {
    fn default() -> ValueMap {
        ValueMap::new()
    }
}

impl ValueMap {
    /// An empty map.
    pub fn new() -> ValueMap {
        ValueMap {
            repr: Repr::Dense(Vec::new()),
        }
    }

    /// An empty map with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> ValueMap {
        ValueMap {
            repr: Repr::Dense(Vec::with_capacity(capacity)),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Dense(values) => values.len(),
            Repr::Hashed(map) => map.len(),
        }
    }

    /// Is the map empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value stored under `key`.
    #[inline]
    pub fn get(&self, key: &Key) -> Option<&Value> {
        match &self.repr {
            Repr::Dense(values) => match key {
                Key::Int(index) => usize::try_from(*index).ok().and_then(|i| values.get(i)),
                _ => None,
            },
            Repr::Hashed(map) => map.get(key),
        }
    }

    /// The value of the int key `key`: [`ValueMap::get`] without building
    /// a [`Key`].
    #[inline]
    pub fn get_int(&self, key: i64) -> Option<&Value> {
        match &self.repr {
            Repr::Dense(values) => usize::try_from(key).ok().and_then(|i| values.get(i)),
            Repr::Hashed(map) => map.get(&Key::Int(key)),
        }
    }

    /// Is `key` present?
    pub fn contains_key(&self, key: &Key) -> bool {
        self.get(key).is_some()
    }

    /// Stores `value` under `key`: in place when the key exists, else at the
    /// end. Returns the value it replaced.
    #[inline]
    pub fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        if let (Repr::Dense(values), Key::Int(index)) = (&mut self.repr, &key) {
            match usize::try_from(*index) {
                Ok(i) if i < values.len() => return Some(std::mem::replace(&mut values[i], value)),
                Ok(i) if i == values.len() => {
                    values.push(value);
                    return None;
                }
                _ => {}
            }
        }
        self.hashed().insert(key, value)
    }

    /// Sets the value of int key `key`, as [`ValueMap::insert`] does
    /// with `Key::Int(key)`; returns whether the key is new.
    #[inline]
    pub fn insert_int(&mut self, key: i64, value: Value) -> bool {
        if let Repr::Dense(values) = &mut self.repr {
            match usize::try_from(key) {
                Ok(i) if i < values.len() => {
                    values[i] = value;
                    return false;
                }
                Ok(i) if i == values.len() => {
                    values.push(value);
                    return true;
                }
                _ => {}
            }
        }
        self.hashed().insert(Key::Int(key), value).is_none()
    }

    /// Removes `key`, keeping the order of the other entries.
    pub fn shift_remove(&mut self, key: &Key) -> Option<Value> {
        if let (Repr::Dense(values), Key::Int(index)) = (&mut self.repr, key) {
            if usize::try_from(*index).ok() == values.len().checked_sub(1) {
                return values.pop();
            }
        }
        if !self.contains_key(key) {
            return None;
        }
        self.hashed().shift_remove(key)
    }

    /// The key of the entry at insertion position `index`.
    pub fn key_at(&self, index: usize) -> Option<Key> {
        match &self.repr {
            Repr::Dense(values) => (index < values.len()).then_some(Key::Int(index as i64)),
            Repr::Hashed(map) => map.get_index(index).map(|(key, _)| key.clone()),
        }
    }

    /// The value of the entry at insertion position `index`.
    pub fn value_at(&self, index: usize) -> Option<Value> {
        match &self.repr {
            Repr::Dense(values) => values.get(index).copied(),
            Repr::Hashed(map) => map.get_index(index).map(|(_, value)| *value),
        }
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, Value)> + '_ {
        (0..self.len()).filter_map(|index| Some((self.key_at(index)?, self.value_at(index)?)))
    }

    /// The keys in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        (0..self.len()).filter_map(|index| self.key_at(index))
    }

    /// The values in insertion order.
    pub fn values(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.len()).filter_map(|index| self.value_at(index))
    }

    /// The hashed form, converting a dense map first.
    fn hashed(&mut self) -> &mut IndexMap<Key, Value, KeyHasher> {
        if let Repr::Dense(values) = &mut self.repr {
            let entries = std::mem::take(values).into_iter().enumerate();
            let map = entries
                .map(|(index, value)| (Key::Int(index as i64), value))
                .collect();
            self.repr = Repr::Hashed(Box::new(map));
        }
        match &mut self.repr {
            Repr::Hashed(map) => map,
            Repr::Dense(_) => unreachable!("converted above"),
        }
    }
}

impl FromIterator<(Key, Value)> for ValueMap {
    fn from_iter<I: IntoIterator<Item = (Key, Value)>>(entries: I) -> ValueMap {
        let mut map = ValueMap::new();
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_hashed_forms_agree() {
        let mut dense = ValueMap::new();
        for i in 0..5 {
            dense.insert(Key::Int(i), Value::Int(i * 10));
        }
        assert!(matches!(dense.repr, Repr::Dense(_)));
        assert_eq!(dense.get(&Key::Int(3)), Some(&Value::Int(30)));
        assert_eq!(dense.get(&Key::Int(-1)), None);
        assert_eq!(dense.get(&Key::Str("3".into())), None);
        dense.insert(Key::Int(9), Value::Int(90));
        assert!(matches!(dense.repr, Repr::Hashed(_)));
        let keys: Vec<Key> = dense.keys().collect();
        assert_eq!(keys, [0, 1, 2, 3, 4, 9].map(Key::Int));
        assert_eq!(dense.shift_remove(&Key::Int(2)), Some(Value::Int(20)));
        assert_eq!(dense.value_at(2), Some(Value::Int(30)));
        assert_eq!(dense.len(), 5);
    }

    #[test]
    fn removing_the_last_key_stays_dense() {
        let mut map = ValueMap::new();
        map.insert(Key::Int(0), Value::Nil);
        map.insert(Key::Int(1), Value::Bool(true));
        assert_eq!(map.shift_remove(&Key::Int(1)), Some(Value::Bool(true)));
        assert_eq!(map.shift_remove(&Key::Int(7)), None);
        assert!(matches!(map.repr, Repr::Dense(_)));
        assert_eq!(map.len(), 1);
    }
}
