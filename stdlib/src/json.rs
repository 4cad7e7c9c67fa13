//! `json_str` and `json_parse`: Spool values to compact JSON text, and JSON
//! text to values of the prelude's `enum Json { Null, Bool(bool), Num(float),
//! Str(str), Arr([Json]), Obj([str: Json]) }` (the parser is in
//! [`crate::json_parse`]).
//!
//! Neither direction recurses on the Rust stack: both keep their open
//! containers in a `Vec`, so deep input costs heap, not stack, and
//! [`MAX_DEPTH`] only bounds what a sane document needs.

use std::fmt::Write;

use spool_vm::{
    format, ErrorKind, Heap, Key, NativeCtx, ObjRef, Object, Program, Value, ValueMap, VmError,
};

use crate::json_parse::Parser;
use crate::param;
use crate::NativeDef;

/// The natives of this module.
pub const DEFS: &[NativeDef] = &[
    NativeDef {
        key: "json.str",
        sig: "fn json_str(v: any) -> str",
        func: json_str,
    },
    NativeDef {
        key: "json.parse",
        sig: "fn json_parse(text: str) -> Json",
        func: json_parse,
    },
];

/// Arrays and objects nested deeper than this are an error, in both
/// directions.
pub const MAX_DEPTH: usize = 512;

/// `json_str(v)`: compact JSON. Ints and floats are numbers (a non-finite
/// float is a `Type` error), lists arrays, maps objects (int and bool keys
/// become strings), records objects by field name, `nil` `null`; a `Json`
/// value is its natural JSON, any other enum value `"Variant"` when it has
/// no payload and `{"Variant":[payload...]}` when it has. A value that
/// contains itself, or a function, is a `Type` error.
pub fn json_str(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let writer = Writer {
        out: String::new(),
        heap: ctx.heap,
        program: ctx.program,
        open: Vec::new(),
    };
    let text = writer.write(param::arg(args, 0)?)?;
    Ok(ctx.heap.alloc_str(text))
}

/// `json_parse(text)`: a `Json` value; `Type` error `invalid JSON at byte N:
/// ...` for anything that is not exactly one JSON value (surrounding
/// whitespace allowed).
pub fn json_parse(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    // Copy the text out of the heap: the parser allocates into the heap as
    // it goes, which it could not do while borrowing the argument.
    let text = param::str(ctx.heap, args, 0)?.to_string();
    Parser::new(&text, ctx.heap, ctx.program)?.parse()
}

/// Serializes one value into `out`, depth-first, without recursion.
struct Writer<'h> {
    /// The JSON written so far.
    out: String,
    /// Where the values live.
    heap: &'h Heap,
    /// Field and variant names.
    program: &'h Program,
    /// The containers being written, outermost first.
    open: Vec<Open<'h>>,
}

/// A container whose opening bracket is written and whose items are not all.
struct Open<'h> {
    /// Its object, to notice a value that contains itself.
    obj: ObjRef,
    /// Its items.
    items: Items<'h>,
    /// The next item to write.
    next: usize,
}

/// The items of a container being written, and how it opens and closes.
#[derive(Clone, Copy)]
enum Items<'h> {
    /// A list: `[items]`.
    List(&'h [Value]),
    /// A list of bools stored as bytes: `[items]`.
    Bools(&'h [bool]),
    /// A map: `{"key":value}`.
    Map(&'h ValueMap),
    /// A record: `{"field":value}`, field names from its layout.
    Record(&'h [String], &'h [Value]),
    /// An enum value with a payload: `{"Variant":[payload]}`.
    Payload(&'h str, &'h [Value]),
}

/// How an item is introduced inside its container.
enum Label<'h> {
    /// By position only (arrays).
    None,
    /// By a field name.
    Field(&'h str),
    /// By a map key.
    Key(Key),
}

impl<'h> Items<'h> {
    /// Item `index` and its label, or `None` past the end.
    fn get(self, index: usize) -> Option<(Label<'h>, Value)> {
        match self {
            Items::List(items) | Items::Payload(_, items) => {
                items.get(index).map(|item| (Label::None, *item))
            }
            Items::Bools(items) => items.get(index).map(|&b| (Label::None, Value::Bool(b))),
            Items::Map(map) => {
                let value = map.value_at(index)?;
                map.key_at(index).map(|key| (Label::Key(key), value))
            }
            Items::Record(names, fields) => {
                let name = names.get(index).map_or("?", String::as_str);
                fields.get(index).map(|field| (Label::Field(name), *field))
            }
        }
    }

    fn close(self) -> &'static str {
        match self {
            Items::List(_) | Items::Bools(_) => "]",
            Items::Map(_) | Items::Record(..) => "}",
            Items::Payload(..) => "]}",
        }
    }
}

impl<'h> Writer<'h> {
    /// Writes `root` and returns the text.
    fn write(mut self, root: Value) -> Result<String, VmError> {
        self.start(root)?;
        while let Some(open) = self.open.last_mut() {
            let index = open.next;
            let Some((label, item)) = open.items.get(index) else {
                self.out.push_str(open.items.close());
                self.open.pop();
                continue;
            };
            open.next += 1;
            if self.out.len() > spool_vm::format::MAX_OUTPUT {
                return Err(spool_vm::format::output_limit());
            }
            if index > 0 {
                self.out.push(',');
            }
            self.label(label);
            self.start(item)?;
        }
        Ok(self.out)
    }

    /// Writes a scalar whole, or opens a container for [`Writer::write`]
    /// to fill.
    fn start(&mut self, value: Value) -> Result<(), VmError> {
        let text = match value {
            Value::Nil => "null",
            Value::Bool(true) => "true",
            Value::Bool(false) => "false",
            Value::Int(n) => {
                let _ = write!(self.out, "{n}");
                return Ok(());
            }
            Value::Float(x) => return self.float(x),
            Value::Func(_) | Value::Native(_) => return Err(unserializable("a function")),
            Value::Obj(obj) => return self.start_object(obj),
        };
        self.out.push_str(text);
        Ok(())
    }

    /// Writes a string or unit variant whole, or opens a container.
    fn start_object(&mut self, obj: ObjRef) -> Result<(), VmError> {
        let heap = self.heap;
        match heap
            .get(obj)
            .ok_or_else(|| param::internal("a live object"))?
        {
            Object::Str(text) => write_json_string(&mut self.out, text),
            Object::List(items) => self.open(obj, Items::List(items))?,
            Object::BoolList(items) => self.open(obj, Items::Bools(items))?,
            Object::Map(map) => self.open(obj, Items::Map(map))?,
            Object::Record { ty, fields } => {
                let layout = self.program.structs.get(ty.index());
                let layout = layout.ok_or_else(|| param::internal("a struct layout"))?;
                self.open(obj, Items::Record(&layout.fields, fields))?;
            }
            Object::Variant {
                ty,
                variant,
                fields,
            } => {
                if *ty == self.program.builtins.json {
                    return self.json_variant(fields);
                }
                let name = self
                    .program
                    .enums
                    .get(ty.index())
                    .and_then(|layout| layout.variants.get(usize::from(*variant)))
                    .ok_or_else(|| param::internal("an enum layout"))?
                    .name
                    .as_str();
                if fields.is_empty() {
                    write_json_string(&mut self.out, name);
                } else {
                    self.open(obj, Items::Payload(name, fields))?;
                }
            }
            Object::Closure { .. } => return Err(unserializable("a function")),
            Object::Coro(_) => return Err(unserializable("a coroutine")),
            Object::Task(_) => return Err(unserializable("a task")),
            Object::Chan(_) | Object::Mutex(_) | Object::Group(_) => {
                return Err(unserializable("a synchronization object"))
            }
            Object::Cell(_) => return Err(param::internal("a value, not a cell")),
        }
        Ok(())
    }

    /// A `Json` value is written as the JSON it stands for: its one
    /// payload, or `null` for `Null`, whatever the variants' order.
    fn json_variant(&mut self, fields: &[Value]) -> Result<(), VmError> {
        match fields.first() {
            // A payload is never itself a `Json` variant, so this recursion
            // is one level deep.
            Some(payload) if !self.is_json_variant(*payload) => self.start(*payload),
            Some(_) => Err(param::internal("a Json payload")),
            None => {
                self.out.push_str("null");
                Ok(())
            }
        }
    }

    fn is_json_variant(&self, value: Value) -> bool {
        let object = value.as_obj().and_then(|obj| self.heap.get(obj));
        matches!(object, Some(Object::Variant { ty, .. }) if *ty == self.program.builtins.json)
    }

    /// Writes a container's opening and pushes it, refusing a container that
    /// is already open (the value contains itself) or one too deep.
    fn open(&mut self, obj: ObjRef, items: Items<'h>) -> Result<(), VmError> {
        if self.open.iter().any(|open| open.obj == obj) {
            return Err(unserializable("a value that contains itself"));
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(unserializable(&format!(
                "a value nested more than {MAX_DEPTH} deep"
            )));
        }
        match items {
            Items::List(_) | Items::Bools(_) => self.out.push('['),
            Items::Map(_) | Items::Record(..) => self.out.push('{'),
            Items::Payload(name, _) => {
                self.out.push('{');
                write_json_string(&mut self.out, name);
                self.out.push_str(":[");
            }
        }
        self.open.push(Open {
            obj,
            items,
            next: 0,
        });
        Ok(())
    }

    /// Writes `"name":` before an object member.
    fn label(&mut self, label: Label<'_>) {
        match label {
            Label::None => return,
            Label::Field(name) => write_json_string(&mut self.out, name),
            Label::Key(Key::Str(text)) => write_json_string(&mut self.out, &text),
            Label::Key(Key::Int(n)) => {
                let _ = write!(self.out, "\"{n}\"");
            }
            Label::Key(Key::Bool(b)) => {
                let _ = write!(self.out, "\"{b}\"");
            }
        }
        self.out.push(':');
    }

    fn float(&mut self, x: f64) -> Result<(), VmError> {
        if !x.is_finite() {
            return Err(unserializable(&format!("the float {x:?}")));
        }
        // JSON has one number type: a whole float within the exactly
        // representable range is written as an integer (`3`, as JavaScript
        // does), so `json_str(json_parse("3"))` gives back `3`; others use
        // Rust's shortest round-trip form (`2.5`, `1e100`).
        if x.fract() == 0.0
            && x.abs() < 9_007_199_254_740_992.0
            && !(x == 0.0 && x.is_sign_negative())
        {
            self.out.push_str(&format!("{}", x as i64));
        } else {
            format::write_float(&mut self.out, x);
        }
        Ok(())
    }
}

/// The `Type` error for a value JSON cannot express.
fn unserializable(what: &str) -> VmError {
    VmError::new(
        ErrorKind::Type,
        format!("json_str: cannot write {what} as JSON"),
    )
}

/// Appends `text` as a JSON string: quotes, backslashes and control
/// characters escaped, everything else as UTF-8.
fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
