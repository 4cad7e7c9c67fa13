//! String functions. Strings are UTF-8, but every length and index a script
//! sees counts Unicode scalar values (chars), never bytes, so slicing can
//! never split a character.

use spool_vm::{ErrorKind, NativeCtx, Value, VmError};

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
        key: "str.repeat",
        sig: "fn repeat(s: str, n: int) -> str",
        func: repeat,
    },
    NativeDef {
        key: "str.pad_left",
        sig: "fn pad_left(s: str, width: int) -> str",
        func: pad_left,
    },
    NativeDef {
        key: "str.pad_left_with",
        sig: "fn pad_left(s: str, width: int, fill: str) -> str",
        func: pad_left_with,
    },
    NativeDef {
        key: "str.pad_right",
        sig: "fn pad_right(s: str, width: int) -> str",
        func: pad_right,
    },
    NativeDef {
        key: "str.pad_right_with",
        sig: "fn pad_right(s: str, width: int, fill: str) -> str",
        func: pad_right_with,
    },
    NativeDef {
        key: "str.lines",
        sig: "fn lines(s: str) -> [str]",
        func: lines,
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

/// `s.repeat(n)`: `n` copies of `s` end to end; `n == 0` gives `""`. A
/// negative `n` is a `Type` error; the result is charged against the heap
/// limit before it is built, so a giant one is a `Limit` error.
pub fn repeat(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = param::str(ctx.heap, args, 0)?;
    let count = param::int(args, 1)?;
    let Ok(count) = usize::try_from(count) else {
        return Err(VmError::new(
            ErrorKind::Type,
            format!("repeat count must not be negative, got {count}"),
        ));
    };
    ctx.heap.charge(text.len().saturating_mul(count))?;
    let repeated = text.repeat(count);
    Ok(ctx.heap.alloc_str(repeated))
}

/// `s.pad_left(width)`: spaces before `s` up to `width` chars.
pub fn pad_left(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    pad(ctx, args, " ", Side::Left)
}

/// `s.pad_left(width, fill)`: `fill` repeated before `s` up to `width`
/// chars (a fill of several chars is cut where the width is reached).
pub fn pad_left_with(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let fill = param::str(ctx.heap, args, 2)?.to_string();
    pad(ctx, args, &fill, Side::Left)
}

/// `s.pad_right(width)`: spaces after `s` up to `width` chars.
pub fn pad_right(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    pad(ctx, args, " ", Side::Right)
}

/// `s.pad_right(width, fill)`: `fill` repeated after `s` up to `width`
/// chars.
pub fn pad_right_with(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let fill = param::str(ctx.heap, args, 2)?.to_string();
    pad(ctx, args, &fill, Side::Right)
}

/// `s.lines()`: the lines of `s`, split at `\n` or `\r\n`, without the
/// line ends; a final line end adds no empty line (Rust's `str::lines`).
pub fn lines(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let text = param::str(ctx.heap, args, 0)?;
    ctx.heap
        .charge(pieces_bytes(text.len(), text.lines().count()))?;
    let pieces = text.lines().map(String::from).collect();
    Ok(alloc_str_list(ctx, pieces))
}

/// Which end of a string padding goes to.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Left,
    Right,
}

/// Pads the string argument with `fill` (repeated, cut to fit) to the
/// width in the second argument, counted in chars. A string already that
/// wide, and any width below its length (negative included), leave it as it
/// is; an empty `fill` is a `Type` error.
fn pad(ctx: &mut NativeCtx<'_>, args: &[Value], fill: &str, side: Side) -> Result<Value, VmError> {
    let text = param::str(ctx.heap, args, 0)?;
    let width = param::int(args, 1)?;
    if fill.is_empty() {
        return Err(VmError::new(
            ErrorKind::Type,
            "the fill string of pad_left and pad_right must not be empty",
        ));
    }
    let length = text.chars().count();
    let missing = usize::try_from(width).map_or(0, |width| width.saturating_sub(length));
    if missing == 0 {
        return param::arg(args, 0);
    }
    let longest_char = fill.chars().map(char::len_utf8).max().unwrap_or(1);
    ctx.heap.charge(
        text.len()
            .saturating_add(missing.saturating_mul(longest_char)),
    )?;
    let padding: String = fill.chars().cycle().take(missing).collect();
    let padded = match side {
        Side::Left => padding + text,
        Side::Right => format!("{text}{padding}"),
    };
    Ok(ctx.heap.alloc_str(padded))
}

/// `xs.join(sep)`: the strings with `sep` between them, built in one
/// allocation.
pub fn join(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let items = param::list_of_values(ctx.heap, args, 0)?;
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
