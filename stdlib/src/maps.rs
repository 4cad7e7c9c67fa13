//! Map functions. Maps keep insertion order, and removing a key keeps the
//! order of the others, so iteration stays predictable.

use spool_vm::{Key, NativeCtx, Value, VmError};

use crate::param;
use crate::NativeDef;

/// The natives of this module.
pub const DEFS: &[NativeDef] = &[
    NativeDef {
        key: "map.len",
        sig: "fn len<K, V>(m: [K: V]) -> int",
        func: len,
    },
    NativeDef {
        key: "map.get",
        sig: "fn get<K, V>(m: [K: V], key: K) -> V?",
        func: get,
    },
    NativeDef {
        key: "map.set",
        sig: "fn set<K, V>(m: [K: V], key: K, value: V)",
        func: set,
    },
    NativeDef {
        key: "map.remove",
        sig: "fn remove<K, V>(m: [K: V], key: K) -> V?",
        func: remove,
    },
    NativeDef {
        key: "map.contains",
        sig: "fn contains<K, V>(m: [K: V], key: K) -> bool",
        func: contains,
    },
    NativeDef {
        key: "map.keys",
        sig: "fn keys<K, V>(m: [K: V]) -> [K]",
        func: keys,
    },
    NativeDef {
        key: "map.values",
        sig: "fn values<K, V>(m: [K: V]) -> [V]",
        func: values,
    },
];

/// `m.len()`: the number of entries.
pub fn len(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    Ok(param::int_value(param::map(ctx.heap, args, 0)?.len()))
}

/// `m.get(key)`: the value, or nil when the key is missing.
pub fn get(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let key = key_arg(ctx, args)?;
    Ok(param::map(ctx.heap, args, 0)?
        .get(&key)
        .copied()
        .unwrap_or(Value::Nil))
}

/// `m.set(key, value)`: adds or replaces; a replaced key keeps its place.
pub fn set(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let (key, value) = (key_arg(ctx, args)?, param::arg(args, 2)?);
    crate::lists::grow(ctx, spool_vm::heap::MAP_ENTRY_BYTES)?;
    param::map_mut(ctx.heap, args, 0)?.insert(key, value);
    Ok(Value::Nil)
}

/// `m.remove(key)`: removes the entry and returns its value, or nil when the
/// key is missing. The other entries keep their order.
pub fn remove(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let key = key_arg(ctx, args)?;
    Ok(param::map_mut(ctx.heap, args, 0)?
        .shift_remove(&key)
        .unwrap_or(Value::Nil))
}

/// `m.contains(key)`: is the key present?
pub fn contains(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let key = key_arg(ctx, args)?;
    Ok(Value::Bool(
        param::map(ctx.heap, args, 0)?.contains_key(&key),
    ))
}

/// `m.keys()`: a new list of the keys in insertion order.
pub fn keys(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let keys: Vec<Key> = param::map(ctx.heap, args, 0)?.keys().collect();
    let items = keys.iter().map(|key| ctx.heap.key_value(key)).collect();
    Ok(ctx.heap.alloc_list(items))
}

/// `m.values()`: a new list of the values in insertion order.
pub fn values(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let items = param::map(ctx.heap, args, 0)?.values().collect();
    Ok(ctx.heap.alloc_list(items))
}

/// Argument 1 as a map key.
fn key_arg(ctx: &NativeCtx<'_>, args: &[Value]) -> Result<Key, VmError> {
    ctx.heap
        .key(param::arg(args, 1)?)
        .ok_or_else(|| param::internal("an int, str or bool key"))
}
