//! String functions. Strings are UTF-8, but every length and index a script
//! sees counts Unicode scalar values (chars), never bytes, so slicing can
//! never split a character.

use spool_vm::{NativeCtx, Value, VmError};

use crate::param;
use crate::NativeDef;

/// The natives of this module.
pub const DEFS: &[NativeDef] = &[
    NativeDef {
        key: "str.len",
        sig: "fn len(s: str) -> int",
        func: len,
    },
    NativeDef {
        key: "str.split",
        sig: "fn split(s: str, sep: str) -> [str]",
        func: split,
    },
    NativeDef {
        key: "str.trim",
        sig: "fn trim(s: str) -> str",
        func: trim,
    },
    NativeDef {
        key: "str.upper",
        sig: "fn upper(s: str) -> str",
        func: upper,
    },
    NativeDef {
        key: "str.lower",
        sig: "fn lower(s: str) -> str",
        func: lower,
    },
    NativeDef {
        key: "str.contains",
        sig: "fn contains(s: str, sub: str) -> bool",
        func: contains,
    },
    NativeDef {
        key: "str.starts_with",
        sig: "fn starts_with(s: str, prefix: str) -> bool",
        func: starts_with,
    },
    NativeDef {
        key: "str.ends_with",
        sig: "fn ends_with(s: str, suffix: str) -> bool",
        func: ends_with,
    },
    NativeDef {
        key: "str.replace",
        sig: "fn replace(s: str, from: str, to: str) -> str",
        func: replace,
    },
    NativeDef {
        key: "str.find",
        sig: "fn find(s: str, sub: str) -> int?",
        func: find,
    },
    NativeDef {
        key: "str.slice",
        sig: "fn slice(s: str, from: int, to: int) -> str",
        func: slice,
    },
    NativeDef {
        key: "str.chars",
        sig: "fn chars(s: str) -> [str]",
        func: chars,
    },
    NativeDef {
        key: "str.parse_int",
        sig: "fn parse_int(s: str) -> int?",
        func: parse_int,
    },
    NativeDef {
        key: "str.parse_float",
        sig: "fn parse_float(s: str) -> float?",
        func: parse_float,
    },
    NativeDef {
        key: "list.join",
        sig: "fn join(xs: [str], sep: str) -> str",
        func: join,
    },
];

/// `s.len()`: the number of chars.
pub fn len(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    Ok(param::int_value(
        param::str(ctx.heap, args, 0)?.chars().count(),
    ))
}

/// `s.split(sep)`: the pieces between occurrences of `sep`; an empty `sep`
/// splits into chars (where Rust would add empty pieces at both ends).
pub fn split(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = param::str(ctx.heap, args, 0)?;
    let sep = param::str(ctx.heap, args, 1)?;
    let count = if sep.is_empty() {
        text.chars().count()
    } else {
        text.matches(sep).count() + 1
    };
    ctx.heap.charge(pieces_bytes(text.len(), count))?;
    let pieces: Vec<String> = if sep.is_empty() {
        text.chars().map(String::from).collect()
    } else {
        text.split(sep).map(String::from).collect()
    };
    Ok(alloc_str_list(ctx, pieces))
}

/// `s.trim()`: without leading and trailing Unicode whitespace.
pub fn trim(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    map_str(ctx, args, |text| text.trim().to_string())
}

/// `s.upper()`: Unicode uppercase (may change the length: `ß` → `SS`).
pub fn upper(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    map_str(ctx, args, str::to_uppercase)
}

/// `s.lower()`: Unicode lowercase.
pub fn lower(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    map_str(ctx, args, str::to_lowercase)
}

/// `s.contains(sub)`: does `sub` occur in `s`? (Always for an empty `sub`.)
pub fn contains(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    ctx.work(param::str(ctx.heap, args, 0)?.len() / 16);
    test_str(ctx, args, |text, sub| text.contains(sub))
}

/// `s.starts_with(prefix)`.
pub fn starts_with(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    test_str(ctx, args, |text, prefix| text.starts_with(prefix))
}

/// `s.ends_with(suffix)`.
pub fn ends_with(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    test_str(ctx, args, |text, suffix| text.ends_with(suffix))
}

/// `s.replace(from, to)`: every non-overlapping `from`, left to right,
/// becomes `to`. An empty `from` matches between every two chars and at both
/// ends, as in Rust and Python.
pub fn replace(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = param::str(ctx.heap, args, 0)?;
    let from = param::str(ctx.heap, args, 1)?;
    let to = param::str(ctx.heap, args, 2)?;
    let matches = if from.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(from).count()
    };
    let length = text.len().saturating_add(matches.saturating_mul(to.len()));
    ctx.heap.charge(length)?;
    let replaced = text.replace(from, to);
    Ok(ctx.heap.alloc_str(replaced))
}

/// `s.find(sub)`: the char index of the first occurrence, or nil.
pub fn find(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    ctx.work(param::str(ctx.heap, args, 0)?.len() / 16);
    let text = param::str(ctx.heap, args, 0)?;
    let sub = param::str(ctx.heap, args, 1)?;
    Ok(match text.find(sub) {
        Some(byte) => param::int_value(text[..byte].chars().count()),
        None => Value::Nil,
    })
}

/// `s.slice(from, to)`: chars `from` up to but not including `to`; `Index`
/// error unless `0 <= from <= to <= s.len()`.
pub fn slice(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = param::str(ctx.heap, args, 0)?;
    let (from, to) = (param::int(args, 1)?, param::int(args, 2)?);
    let (start, end) = param::range(from, to, "string", text.chars().count())?;
    let byte_at = |char_index: usize| {
        text.char_indices()
            .nth(char_index)
            .map_or(text.len(), |(b, _)| b)
    };
    let piece = text[byte_at(start)..byte_at(end)].to_string();
    Ok(ctx.heap.alloc_str(piece))
}

/// `s.chars()`: each char as a one-char string.
pub fn chars(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = param::str(ctx.heap, args, 0)?;
    ctx.heap
        .charge(pieces_bytes(text.len(), text.chars().count()))?;
    let pieces = text.chars().map(String::from).collect();
    Ok(alloc_str_list(ctx, pieces))
}

/// `s.parse_int()`: a decimal int with an optional sign, or nil when `s` is
/// anything else (whitespace included) or does not fit in 64 bits.
pub fn parse_int(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = param::str(ctx.heap, args, 0)?;
    Ok(text.parse::<i64>().map_or(Value::Nil, Value::Int))
}

/// `s.parse_float()`: a decimal number (`-1.5`, `2`, `.5`, `1e-3`), or nil.
/// The words `inf` and `NaN` that Rust would accept are refused: they are
/// not numbers a script's input should produce by accident.
pub fn parse_float(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = param::str(ctx.heap, args, 0)?;
    let is_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    Ok(match text.parse::<f64>() {
        Ok(x) if is_numeric => Value::Float(x),
        _ => Value::Nil,
    })
}

/// `xs.join(sep)`: the strings with `sep` between them, built in one
/// allocation.
pub fn join(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let items = param::list(ctx.heap, args, 0)?;
    let sep = param::str(ctx.heap, args, 1)?;
    let pieces: Vec<&str> = items
        .iter()
        .map(|item| {
            ctx.heap
                .str(*item)
                .ok_or_else(|| param::internal("a list of strings"))
        })
        .collect::<Result<_, _>>()?;
    let total =
        pieces.iter().map(|p| p.len()).sum::<usize>() + sep.len() * pieces.len().saturating_sub(1);
    ctx.heap.charge(total)?;
    let mut joined = String::with_capacity(total);
    for (index, piece) in pieces.iter().enumerate() {
        if index > 0 {
            joined.push_str(sep);
        }
        joined.push_str(piece);
    }
    Ok(ctx.heap.alloc_str(joined))
}

/// What splitting `bytes` of text into `count` strings is counted as in the
/// heap's byte accounting (each string an object, and the list).
fn pieces_bytes(bytes: usize, count: usize) -> usize {
    bytes.saturating_add(count.saturating_mul(80))
}

/// Allocates each string and a list holding them.
fn alloc_str_list(ctx: &mut NativeCtx<'_>, pieces: Vec<String>) -> Value {
    let items = pieces
        .into_iter()
        .map(|piece| ctx.heap.alloc_str(piece))
        .collect();
    ctx.heap.alloc_list(items)
}

/// A new string computed from the string argument.
fn map_str(
    ctx: &mut NativeCtx<'_>,
    args: &[Value],
    change: impl FnOnce(&str) -> String,
) -> Result<Value, VmError> {
    let changed = change(param::str(ctx.heap, args, 0)?);
    Ok(ctx.heap.alloc_str(changed))
}

/// A bool computed from the two string arguments.
fn test_str(
    ctx: &mut NativeCtx<'_>,
    args: &[Value],
    test: impl FnOnce(&str, &str) -> bool,
) -> Result<Value, VmError> {
    let text = param::str(ctx.heap, args, 0)?;
    let other = param::str(ctx.heap, args, 1)?;
    Ok(Value::Bool(test(text, other)))
}
