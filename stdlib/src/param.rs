//! Reading native functions' parameters (the argument values of a call) and
//! building the errors natives raise. (Not `args()`, the script's command-line
//! arguments, which `core.rs` provides.)
//!
//! The compiler has type-checked every call, so a wrong variant here is an
//! internal error: it becomes a `Type` runtime error, never a panic.

use spool_vm::heap::ListView;
use spool_vm::{ErrorKind, Heap, Value, ValueMap, VmError};

/// The error for an argument of the wrong shape, which the checker should
/// have made impossible.
pub(crate) fn internal(expected: &str) -> VmError {
    VmError::new(ErrorKind::Type, format!("internal: expected {expected}"))
}

/// Argument `index`, or an internal error when the call passed too few.
pub(crate) fn arg(args: &[Value], index: usize) -> Result<Value, VmError> {
    args.get(index)
        .copied()
        .ok_or_else(|| internal("another argument"))
}

/// Argument `index` as an `int`.
pub(crate) fn int(args: &[Value], index: usize) -> Result<i64, VmError> {
    match arg(args, index)? {
        Value::Int(n) => Ok(n),
        _ => Err(internal("an int")),
    }
}

/// Argument `index` as a `float`.
pub(crate) fn float(args: &[Value], index: usize) -> Result<f64, VmError> {
    match arg(args, index)? {
        Value::Float(x) => Ok(x),
        _ => Err(internal("a float")),
    }
}

/// Argument `index` as a `bool`.
pub(crate) fn bool(args: &[Value], index: usize) -> Result<bool, VmError> {
    match arg(args, index)? {
        Value::Bool(b) => Ok(b),
        _ => Err(internal("a bool")),
    }
}

/// Argument `index` as a string in `heap`.
pub(crate) fn str<'h>(heap: &'h Heap, args: &[Value], index: usize) -> Result<&'h str, VmError> {
    heap.str(arg(args, index)?)
        .ok_or_else(|| internal("a string"))
}

/// Argument `index` as a list in `heap`, its items read where they are.
pub(crate) fn list<'h>(
    heap: &'h Heap,
    args: &[Value],
    index: usize,
) -> Result<ListView<'h>, VmError> {
    heap.list_view(arg(args, index)?)
        .ok_or_else(|| internal("a list"))
}

/// Argument `index` as a list of values in `heap`: for a list whose type
/// rules out bools (`[str]`), which is never stored as bytes.
pub(crate) fn list_of_values<'h>(
    heap: &'h Heap,
    args: &[Value],
    index: usize,
) -> Result<&'h Vec<Value>, VmError> {
    heap.list(arg(args, index)?)
        .ok_or_else(|| internal("a list"))
}

/// Argument `index` as a list in `heap`, to change in place.
pub(crate) fn list_mut<'h>(
    heap: &'h mut Heap,
    args: &[Value],
    index: usize,
) -> Result<&'h mut Vec<Value>, VmError> {
    heap.list_mut(arg(args, index)?)
        .ok_or_else(|| internal("a list"))
}

/// Argument `index` as a map in `heap`.
pub(crate) fn map<'h>(
    heap: &'h Heap,
    args: &[Value],
    index: usize,
) -> Result<&'h ValueMap, VmError> {
    heap.map(arg(args, index)?).ok_or_else(|| internal("a map"))
}

/// Argument `index` as a map in `heap`, to change in place.
pub(crate) fn map_mut<'h>(
    heap: &'h mut Heap,
    args: &[Value],
    index: usize,
) -> Result<&'h mut ValueMap, VmError> {
    heap.map_mut(arg(args, index)?)
        .ok_or_else(|| internal("a map"))
}

/// An `Index` error for `index` outside a container of `len` items.
pub(crate) fn index_error(index: i64, what: &str, len: usize) -> VmError {
    VmError::new(
        ErrorKind::Index,
        format!("index {index} out of range for {what} of length {len}"),
    )
}

/// Checks `from..to` against a container of `len` items and converts it to
/// `usize` bounds; `Index` error when it does not fit or runs backwards.
pub(crate) fn range(from: i64, to: i64, what: &str, len: usize) -> Result<(usize, usize), VmError> {
    let in_range = |n: i64| usize::try_from(n).ok().filter(|&n| n <= len);
    match (in_range(from), in_range(to)) {
        (Some(start), Some(end)) if start <= end => Ok((start, end)),
        _ => Err(VmError::new(
            ErrorKind::Index,
            format!("range {from}..{to} out of range for {what} of length {len}"),
        )),
    }
}

/// Converts a length or position to a Spool `int`.
pub(crate) fn int_value(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}
