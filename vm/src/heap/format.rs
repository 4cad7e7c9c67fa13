//! How values print (LANGUAGE.md §8), compare for equality and order.
//!
//! One function, [`display`], serves `print`, `str`, string interpolation,
//! the REPL and `spool inspect`, so every place shows a value the same way.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt::Write;

use crate::heap::value::{ObjRef, Value};
use crate::heap::{Heap, Key, Object};
use crate::program::Program;

/// Containers nested deeper than this print as `...`, which bounds the
/// printer's recursion. A container inside itself prints as `...` at the
/// point where it repeats, at any depth.
const MAX_DEPTH: usize = 2_000;

/// The longest text printing a value may produce (64 MiB): a value shared
/// many times over (`a = [a, a]` thirty times) would print exponentially
/// long; printing stops there.
pub const MAX_OUTPUT: usize = 64 << 20;

/// `str(value)`: strings at the top level print as themselves, everything
/// else as [`write_value`] shows it. Text past [`MAX_OUTPUT`] is cut off;
/// [`display_checked`] says so instead.
pub fn display(value: Value, heap: &Heap, program: &Program) -> String {
    if let Some(text) = heap.str(value) {
        return text.to_string();
    }
    let mut out = String::new();
    write_value(&mut out, value, heap, program, 0);
    out
}

/// [`display`] for `print`, `str` and interpolation: a `Limit` error when
/// the text would pass [`MAX_OUTPUT`], found after producing at most that
/// much (the time taken is linear in it).
pub fn display_checked(
    value: Value,
    heap: &Heap,
    program: &Program,
) -> Result<String, crate::exec::error::VmError> {
    let text = display(value, heap, program);
    if text.len() > MAX_OUTPUT {
        return Err(output_limit());
    }
    Ok(text)
}

/// The error of a value whose text would pass [`MAX_OUTPUT`].
pub fn output_limit() -> crate::exec::error::VmError {
    crate::exec::error::VmError::new(
        crate::exec::error::ErrorKind::Limit,
        format!("output limit exceeded: the value prints as more than {MAX_OUTPUT} bytes"),
    )
}

/// Appends `value` as it prints inside a container (strings quoted).
pub fn write_value(out: &mut String, value: Value, heap: &Heap, program: &Program, depth: usize) {
    let mut path = Vec::new();
    write_nested(out, value, heap, program, depth, &mut path);
}

/// [`write_value`] with the containers being printed on `path`.
fn write_nested(
    out: &mut String,
    value: Value,
    heap: &Heap,
    program: &Program,
    depth: usize,
    path: &mut Vec<ObjRef>,
) {
    if depth > MAX_DEPTH {
        out.push_str("...");
        return;
    }
    if out.len() > MAX_OUTPUT {
        return;
    }
    match value {
        Value::Nil => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(x) => write_float(out, x),
        Value::Func(func) => {
            let name = program
                .functions
                .get(func.index())
                .map_or("?", |f| f.name.as_str());
            let _ = write!(out, "<fn {name}>");
        }
        Value::Native(native) => {
            let name = program
                .natives
                .get(native.index())
                .map_or("?", |n| n.name.as_str());
            let _ = write!(out, "<fn {name}>");
        }
        Value::Obj(obj) => match heap.get(obj) {
            Some(_) if path.contains(&obj) => out.push_str("..."),
            Some(object) => {
                path.push(obj);
                write_object(out, object, heap, program, depth, path);
                path.pop();
            }
            None => out.push_str("<freed>"),
        },
    }
}

/// Appends a float in shortest round-trip form that always shows a fraction
/// or an exponent, as Rust's `{:?}` prints `f64`.
pub fn write_float(out: &mut String, x: f64) {
    let _ = write!(out, "{x:?}");
}

fn write_object(
    out: &mut String,
    object: &Object,
    heap: &Heap,
    program: &Program,
    depth: usize,
    path: &mut Vec<ObjRef>,
) {
    match object {
        Object::Str(text) => write_quoted(out, text),
        Object::List(items) => {
            out.push('[');
            write_list(out, items, heap, program, depth, path);
            out.push(']');
        }
        Object::BoolList(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                out.push_str(if index > 0 { ", " } else { "" });
                out.push_str(if *item { "true" } else { "false" });
            }
            out.push(']');
        }
        Object::Map(map) => {
            if map.is_empty() {
                out.push_str("[:]");
                return;
            }
            out.push('[');
            for (index, (key, value)) in map.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_key(out, &key);
                out.push_str(": ");
                write_nested(out, value, heap, program, depth + 1, path);
            }
            out.push(']');
        }
        Object::Record { ty, fields } => {
            let layout = program.structs.get(ty.index());
            out.push_str(layout.map_or("?", |l| l.name.as_str()));
            out.push('(');
            for (index, value) in fields.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                let name = layout
                    .and_then(|l| l.fields.get(index))
                    .map_or("?", |n| n.as_str());
                let _ = write!(out, "{name}: ");
                write_nested(out, *value, heap, program, depth + 1, path);
            }
            out.push(')');
        }
        Object::Variant {
            ty,
            variant,
            fields,
        } => {
            let name = program
                .enums
                .get(ty.index())
                .and_then(|e| e.variants.get(*variant as usize))
                .map_or("?", |v| v.name.as_str());
            out.push_str(name);
            if !fields.is_empty() {
                out.push('(');
                write_list(out, fields, heap, program, depth, path);
                out.push(')');
            }
        }
        Object::Closure { func, .. } => {
            let name = program
                .functions
                .get(func.index())
                .map_or("?", |f| f.name.as_str());
            let _ = write!(out, "<fn {name}>");
        }
        Object::Cell(value) => write_value(out, *value, heap, program, depth + 1),
        Object::Coro(coro) => {
            let _ = write!(out, "<coro {}>", coro.status.as_str());
        }
        Object::Task(task) => {
            let _ = write!(out, "<task {}>", task.id);
        }
        Object::Chan(_) => out.push_str("<chan>"),
        Object::Mutex(_) => out.push_str("<mutex>"),
        Object::Group(group) if group.errgroup => out.push_str("<errgroup>"),
        Object::Group(_) => out.push_str("<waitgroup>"),
    }
}

fn write_list(
    out: &mut String,
    items: &[Value],
    heap: &Heap,
    program: &Program,
    depth: usize,
    path: &mut Vec<ObjRef>,
) {
    for (index, value) in items.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        write_nested(out, *value, heap, program, depth + 1, path);
    }
}

fn write_key(out: &mut String, key: &Key) {
    match key {
        Key::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Key::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Key::Str(text) => write_quoted(out, text),
    }
}

/// Appends `text` in double quotes with `"`, `\` and control characters
/// escaped as in Spool source.
pub fn write_quoted(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `a == b`: structural for strings, lists, maps (order-insensitive),
/// records and variants; identity for closures and cells. Works through a
/// stack of pending pairs, so depth costs no Rust stack; a pair met again
/// while it is being compared (values that contain themselves) is taken as
/// equal.
pub fn values_equal(a: Value, b: Value, heap: &Heap) -> bool {
    let mut pending = vec![(a, b)];
    let mut assumed: HashSet<(ObjRef, ObjRef)> = HashSet::new();
    while let Some((a, b)) = pending.pop() {
        let (Value::Obj(x), Value::Obj(y)) = (a, b) else {
            if a != b {
                return false;
            }
            continue;
        };
        if x == y || !assumed.insert((x, y)) {
            continue;
        }
        let (Some(left), Some(right)) = (heap.get(x), heap.get(y)) else {
            return false;
        };
        if !push_children(left, right, &mut pending) {
            return false;
        }
    }
    true
}

/// Compares what can be compared at once and queues the pairs of children;
/// false when the two objects already differ.
fn push_children(left: &Object, right: &Object, pending: &mut Vec<(Value, Value)>) -> bool {
    let mut pairs = |xs: &[Value], ys: &[Value]| {
        pending.extend(xs.iter().copied().zip(ys.iter().copied()));
        xs.len() == ys.len()
    };
    match (left, right) {
        (Object::Str(x), Object::Str(y)) => x == y,
        (Object::List(xs), Object::List(ys)) => pairs(xs, ys),
        (Object::BoolList(xs), Object::BoolList(ys)) => xs == ys,
        (Object::BoolList(bools), Object::List(values))
        | (Object::List(values), Object::BoolList(bools)) => {
            bools.len() == values.len()
                && bools.iter().zip(values).all(|(&b, &v)| v == Value::Bool(b))
        }
        (Object::Map(xs), Object::Map(ys)) => {
            xs.len() == ys.len()
                && xs.iter().all(|(key, x)| match ys.get(&key) {
                    Some(y) => {
                        pending.push((x, *y));
                        true
                    }
                    None => false,
                })
        }
        (
            Object::Record { ty: tx, fields: xs },
            Object::Record {
                ty: ty_,
                fields: ys,
            },
        ) => tx == ty_ && pairs(xs, ys),
        (
            Object::Variant {
                ty: tx,
                variant: vx,
                fields: xs,
            },
            Object::Variant {
                ty: ty_,
                variant: vy,
                fields: ys,
            },
        ) => tx == ty_ && vx == vy && pairs(xs, ys),
        _ => false,
    }
}

/// The order `sort` uses: ints, floats (NaN after every number), strings
/// (by Unicode scalar values), bools (`false < true`), and lists of those
/// lexicographically. `None` for values with no order, and for lists
/// nested deeper than printing goes (or inside themselves, which only a
/// damaged saved run can make).
pub fn compare(a: Value, b: Value, heap: &Heap) -> Option<Ordering> {
    compare_at(a, b, heap, 0)
}

fn compare_at(a: Value, b: Value, heap: &Heap, depth: usize) -> Option<Ordering> {
    if depth > MAX_DEPTH {
        return None;
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(&y)),
        (Value::Float(x), Value::Float(y)) => Some(x.total_cmp(&y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(&y)),
        (Value::Obj(_), Value::Obj(_)) => {
            if let (Some(x), Some(y)) = (heap.str(a), heap.str(b)) {
                return Some(x.cmp(y));
            }
            let (xs, ys) = (heap.list_view(a)?, heap.list_view(b)?);
            for (x, y) in xs.iter().zip(ys.iter()) {
                match compare_at(x, y, heap, depth + 1)? {
                    Ordering::Equal => continue,
                    other => return Some(other),
                }
            }
            Some(xs.len().cmp(&ys.len()))
        }
        _ => None,
    }
}

/// What kind of value this is, for error messages: "`str`", "`Point`".
pub fn kind_of(value: Value, heap: &Heap, program: &Program) -> String {
    let name = match value {
        Value::Nil => "nil",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Func(_) | Value::Native(_) => "function",
        Value::Obj(obj) => match heap.get(obj) {
            Some(Object::Str(_)) => "str",
            Some(Object::List(_) | Object::BoolList(_)) => "list",
            Some(Object::Map(_)) => "map",
            Some(Object::Record { ty, .. }) => program
                .structs
                .get(ty.index())
                .map_or("record", |s| s.name.as_str()),
            Some(Object::Variant { ty, .. }) => program
                .enums
                .get(ty.index())
                .map_or("enum value", |e| e.name.as_str()),
            Some(Object::Closure { .. }) => "function",
            Some(Object::Coro(_)) => "coroutine",
            Some(Object::Task(_)) => "task",
            Some(Object::Chan(_)) => "channel",
            Some(Object::Mutex(_)) => "Mutex",
            Some(Object::Group(group)) if group.errgroup => "ErrGroup",
            Some(Object::Group(_)) => "WaitGroup",
            _ => "value",
        },
    };
    format!("`{name}`")
}
