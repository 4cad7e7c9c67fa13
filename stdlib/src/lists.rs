//! List functions. `push`, `pop`, `insert` and `remove` change the list in
//! place (lists are shared by reference); `sort`, `reverse` and `slice`
//! return a new list and leave their argument alone.

use std::cmp::Ordering;

use spool_vm::{format, ErrorKind, Heap, NativeCtx, Value, VmError};

use crate::param;
use crate::NativeDef;

/// The natives of this module.
pub const DEFS: &[NativeDef] = &[
    NativeDef {
        key: "list.len",
        sig: "fn len<T>(xs: [T]) -> int",
        func: len,
    },
    NativeDef {
        key: "list.push",
        sig: "fn push<T>(xs: [T], x: T)",
        func: push,
    },
    NativeDef {
        key: "list.pop",
        sig: "fn pop<T>(xs: [T]) -> T?",
        func: pop,
    },
    NativeDef {
        key: "list.insert",
        sig: "fn insert<T>(xs: [T], i: int, x: T)",
        func: insert,
    },
    NativeDef {
        key: "list.remove",
        sig: "fn remove<T>(xs: [T], i: int) -> T",
        func: remove,
    },
    NativeDef {
        key: "list.contains",
        sig: "fn contains<T>(xs: [T], x: T) -> bool",
        func: contains,
    },
    NativeDef {
        key: "list.index_of",
        sig: "fn index_of<T>(xs: [T], x: T) -> int?",
        func: index_of,
    },
    NativeDef {
        key: "list.sort",
        sig: "fn sort<T>(xs: [T]) -> [T]",
        func: sort,
    },
    NativeDef {
        key: "list.reverse",
        sig: "fn reverse<T>(xs: [T]) -> [T]",
        func: reverse,
    },
    NativeDef {
        key: "list.slice",
        sig: "fn slice<T>(xs: [T], from: int, to: int) -> [T]",
        func: slice,
    },
];

/// `xs.len()`.
pub fn len(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    Ok(param::int_value(param::list(ctx.heap, args, 0)?.len()))
}

/// `xs.push(x)`: appends `x`.
pub fn push(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let item = param::arg(args, 1)?;
    grow(ctx, ITEM_BYTES)?;
    param::list_mut(ctx.heap, args, 0)?.push(item);
    Ok(Value::Nil)
}

/// `xs.pop()`: removes and returns the last item, or nil when empty.
pub fn pop(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    Ok(param::list_mut(ctx.heap, args, 0)?
        .pop()
        .unwrap_or(Value::Nil))
}

/// `xs.insert(i, x)`: puts `x` at index `i`, shifting the rest right;
/// `i == xs.len()` appends, anything outside `0..=len` is an `Index` error.
pub fn insert(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let (index, item) = (param::int(args, 1)?, param::arg(args, 2)?);
    grow(ctx, ITEM_BYTES)?;
    let items = param::list_mut(ctx.heap, args, 0)?;
    match usize::try_from(index).ok().filter(|&i| i <= items.len()) {
        Some(position) => items.insert(position, item),
        None => return Err(param::index_error(index, "list", items.len())),
    }
    Ok(Value::Nil)
}

/// `xs.remove(i)`: removes and returns the item at `i`, shifting the rest
/// left; `Index` error when there is none.
pub fn remove(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let index = param::int(args, 1)?;
    let items = param::list_mut(ctx.heap, args, 0)?;
    match usize::try_from(index).ok().filter(|&i| i < items.len()) {
        Some(position) => Ok(items.remove(position)),
        None => Err(param::index_error(index, "list", items.len())),
    }
}

/// `xs.contains(x)`: is some item `== x`?
pub fn contains(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    ctx.work(param::list(ctx.heap, args, 0)?.len());
    Ok(Value::Bool(position(ctx.heap, args)?.is_some()))
}

/// `xs.index_of(x)`: the index of the first item `== x`, or nil.
pub fn index_of(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    ctx.work(param::list(ctx.heap, args, 0)?.len());
    Ok(position(ctx.heap, args)?.map_or(Value::Nil, param::int_value))
}

/// `xs.sort()`: a new list in ascending order (`format::compare`), equal
/// items kept in their original order. Items with no order (records,
/// functions, nil) are a `Type` error.
pub fn sort(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let mut items: Vec<Value> = param::list(ctx.heap, args, 0)?.iter().collect();
    let count = items.len();
    ctx.work(count.saturating_mul(count.max(2).ilog2() as usize));
    let heap: &Heap = ctx.heap;
    merge_sort(&mut items, |a, b| {
        format::compare(a, b, heap)
            .ok_or_else(|| VmError::new(ErrorKind::Type, "sort: these values have no order"))
    })?;
    Ok(ctx.heap.alloc_list(items))
}

/// `xs.reverse()`: a new list, last item first.
pub fn reverse(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let items = param::list(ctx.heap, args, 0)?.iter().rev().collect();
    Ok(ctx.heap.alloc_list(items))
}

/// `xs.slice(from, to)`: a new list of items `from` up to but not including
/// `to`; `Index` error unless `0 <= from <= to <= xs.len()`.
pub fn slice(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let items = param::list(ctx.heap, args, 0)?;
    let (from, to) = (param::int(args, 1)?, param::int(args, 2)?);
    let (start, end) = param::range(from, to, "list", items.len())?;
    let piece = items.iter().skip(start).take(end - start).collect();
    Ok(ctx.heap.alloc_list(piece))
}

/// The index of the first item of list argument 0 equal to argument 1.
fn position(heap: &Heap, args: &[Value]) -> Result<Option<usize>, VmError> {
    let needle = param::arg(args, 1)?;
    let items = param::list(heap, args, 0)?;
    Ok(items
        .iter()
        .position(|item| format::values_equal(item, needle, heap)))
}

/// A stable, bottom-up merge sort whose comparison may fail.
///
/// `slice::sort_by` cannot stop at the first failed comparison, and since
/// Rust 1.81 it may panic on a comparison that is not a total order, which a
/// fallback `Equal` would produce; this sort does neither.
fn merge_sort(
    items: &mut Vec<Value>,
    mut compare: impl FnMut(Value, Value) -> Result<Ordering, VmError>,
) -> Result<(), VmError> {
    let len = items.len();
    let mut buffer = Vec::with_capacity(len);
    let mut width = 1;
    while width < len {
        buffer.clear();
        for start in (0..len).step_by(2 * width) {
            let middle = (start + width).min(len);
            let end = (start + 2 * width).min(len);
            merge(
                &items[start..middle],
                &items[middle..end],
                &mut buffer,
                &mut compare,
            )?;
        }
        std::mem::swap(items, &mut buffer);
        width *= 2;
    }
    Ok(())
}

/// Appends the merge of two sorted runs to `out`, taking from `left` on
/// ties so equal items keep their order.
fn merge(
    left: &[Value],
    right: &[Value],
    out: &mut Vec<Value>,
    compare: &mut impl FnMut(Value, Value) -> Result<Ordering, VmError>,
) -> Result<(), VmError> {
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        if compare(right[j], left[i])? == Ordering::Less {
            out.push(right[j]);
            j += 1;
        } else {
            out.push(left[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&left[i..]);
    out.extend_from_slice(&right[j..]);
    Ok(())
}

pub(crate) use spool_vm::heap::ITEM_BYTES;

/// Counts `bytes` of growth of an existing object against the heap limit,
/// before it happens (`Limit` when it does not fit).
pub(crate) fn grow(ctx: &mut NativeCtx<'_>, bytes: usize) -> Result<(), VmError> {
    ctx.heap.charge(bytes)?;
    ctx.heap.grew(bytes);
    Ok(())
}
