//! The JSON parser behind `json_parse` (RFC 8259, strict: no comments, no
//! trailing commas, no leading zeros). It builds values of the program's
//! `enum Json` in the heap as it reads.
//!
//! It keeps the arrays and objects it is inside in a `Vec` rather than on
//! the Rust stack, so hostile input such as a hundred thousand `[` is a
//! clean error at [`MAX_DEPTH`], never a stack overflow.

use spool_vm::{EnumIdx, ErrorKind, Heap, Key, Object, Program, Value, ValueMap, VmError};

use crate::json::MAX_DEPTH;
use crate::param;

/// Reads one JSON document.
pub(crate) struct Parser<'t, 'h> {
    /// The whole input.
    text: &'t str,
    /// The next byte to read.
    pos: usize,
    /// Where the values go.
    heap: &'h mut Heap,
    /// The `Json` enum to build.
    layout: JsonLayout,
    /// The arrays and objects the parser is inside, outermost first.
    open: Vec<Partial>,
}

/// An array or object whose closing bracket has not been read yet.
enum Partial {
    /// The items so far.
    Array(Vec<Value>),
    /// The members so far, and the key of the value being read.
    Object(ValueMap, Key),
}

/// Where each `Json` variant is in the program's `enum Json`, found by name
/// so the parser does not depend on the declaration order.
#[derive(Clone, Copy)]
struct JsonLayout {
    ty: EnumIdx,
    null: u16,
    bool: u16,
    num: u16,
    str: u16,
    arr: u16,
    obj: u16,
}

impl JsonLayout {
    fn of(program: &Program) -> Result<JsonLayout, VmError> {
        let ty = program.builtins.json;
        let layout = program
            .enums
            .get(ty.index())
            .ok_or_else(|| param::internal("enum Json"))?;
        let find = |name: &str| {
            let position = layout.variants.iter().position(|v| v.name == name);
            position
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| param::internal("enum Json"))
        };
        Ok(JsonLayout {
            ty,
            null: find("Null")?,
            bool: find("Bool")?,
            num: find("Num")?,
            str: find("Str")?,
            arr: find("Arr")?,
            obj: find("Obj")?,
        })
    }
}

impl<'t, 'h> Parser<'t, 'h> {
    /// A parser of `text` building `program`'s `Json` values in `heap`.
    pub(crate) fn new(
        text: &'t str,
        heap: &'h mut Heap,
        program: &Program,
    ) -> Result<Parser<'t, 'h>, VmError> {
        let layout = JsonLayout::of(program)?;
        Ok(Parser {
            text,
            pos: 0,
            heap,
            layout,
            open: Vec::new(),
        })
    }

    /// Parses the whole text as one value.
    pub(crate) fn parse(mut self) -> Result<Value, VmError> {
        let value = self.value()?;
        self.skip_whitespace();
        if self.pos < self.text.len() {
            return Err(self.error("unexpected text after the value"));
        }
        Ok(value)
    }

    /// Reads a value, nested arrays and objects included.
    fn value(&mut self) -> Result<Value, VmError> {
        loop {
            let Some(mut value) = self.start_value()? else {
                continue; // A container opened: read its first item.
            };
            // Hand the finished value to the containers it closes, until one
            // needs another item.
            loop {
                match self.open.last_mut() {
                    None => return Ok(value),
                    Some(Partial::Array(items)) => items.push(value),
                    Some(Partial::Object(members, key)) => {
                        // A repeated key keeps its first place, its last value.
                        members.insert(std::mem::replace(key, Key::Bool(false)), value);
                    }
                }
                match self.after_item()? {
                    Some(closed) => value = closed,
                    None => break,
                }
            }
        }
    }

    /// Reads a scalar whole, or opens an array or object and returns
    /// `None`; an empty `[]` or `{}` is returned whole.
    fn start_value(&mut self) -> Result<Option<Value>, VmError> {
        self.skip_whitespace();
        let layout = self.layout;
        let value = match self.peek() {
            None => return Err(self.error("expected a value, found the end of the input")),
            Some(b'n') => self.word("null", layout.null, Vec::new())?,
            Some(b't') => self.word("true", layout.bool, vec![Value::Bool(true)])?,
            Some(b'f') => self.word("false", layout.bool, vec![Value::Bool(false)])?,
            Some(b'"') => {
                let text = self.string()?;
                let payload = self.heap.alloc_str(text);
                self.json(layout.str, payload)
            }
            Some(b'-' | b'0'..=b'9') => {
                let number = self.number()?;
                self.json(layout.num, Value::Float(number))
            }
            Some(b'[') => {
                self.enter()?;
                if !self.eat_after_whitespace(b']') {
                    self.open.push(Partial::Array(Vec::new()));
                    return Ok(None);
                }
                let list = self.heap.alloc_list(Vec::new());
                self.json(layout.arr, list)
            }
            Some(b'{') => {
                self.enter()?;
                if !self.eat_after_whitespace(b'}') {
                    let key = self.key()?;
                    self.open.push(Partial::Object(ValueMap::default(), key));
                    return Ok(None);
                }
                let map = Value::Obj(self.heap.alloc(Object::Map(ValueMap::default())));
                self.json(layout.obj, map)
            }
            Some(_) => {
                let found = self.text[self.pos..].chars().next().unwrap_or('\0');
                return Err(self.error(&format!("unexpected character {found:?}")));
            }
        };
        Ok(Some(value))
    }

    /// After an item of the innermost container: on `,` reads up to the
    /// next item and returns `None`; on the closing bracket closes the
    /// container and returns it as a value.
    fn after_item(&mut self) -> Result<Option<Value>, VmError> {
        self.skip_whitespace();
        let is_array = matches!(self.open.last(), Some(Partial::Array(_)));
        if self.eat(b',') {
            if !is_array {
                let key = self.key()?;
                if let Some(Partial::Object(_, pending)) = self.open.last_mut() {
                    *pending = key;
                }
            }
            return Ok(None);
        }
        let (close, expected) = if is_array {
            (b']', "expected ',' or ']'")
        } else {
            (b'}', "expected ',' or '}'")
        };
        if !self.eat(close) {
            return Err(self.error(expected));
        }
        let layout = self.layout;
        Ok(Some(match self.open.pop() {
            Some(Partial::Array(items)) => {
                let list = self.heap.alloc_list(items);
                self.json(layout.arr, list)
            }
            Some(Partial::Object(members, _)) => {
                let map = Value::Obj(self.heap.alloc(Object::Map(members)));
                self.json(layout.obj, map)
            }
            None => return Err(param::internal("an open JSON container")),
        }))
    }

    /// Steps over an opening bracket, refusing to nest past [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), VmError> {
        if self.open.len() >= MAX_DEPTH {
            return Err(self.error(&format!("nested more than {MAX_DEPTH} deep")));
        }
        self.pos += 1;
        Ok(())
    }

    /// Reads an object member's key and the `:` after it.
    fn key(&mut self) -> Result<Key, VmError> {
        self.skip_whitespace();
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string key"));
        }
        let key = self.string()?;
        self.skip_whitespace();
        self.expect(b':', "expected ':'")?;
        Ok(Key::Str(key.into()))
    }

    /// Reads a string literal, the opening quote next.
    fn string(&mut self) -> Result<String, VmError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b != b'"' && b != b'\\' && b >= 0x20)
            {
                self.pos += 1;
            }
            // The run ends at an ASCII byte or the end, so it is whole chars.
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => out.push(self.escape()?),
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// Reads one escape sequence, the backslash next.
    fn escape(&mut self) -> Result<char, VmError> {
        self.pos += 1;
        let escaped = match self.peek() {
            None => return Err(self.error("unterminated string")),
            Some(b'u') => {
                self.pos += 1;
                return self.unicode_escape();
            }
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(_) => return Err(self.error("invalid escape")),
        };
        self.pos += 1;
        Ok(escaped)
    }

    /// Reads the hex digits of `\uXXXX`, and the low half that must follow
    /// a high surrogate.
    fn unicode_escape(&mut self) -> Result<char, VmError> {
        let start = self.pos - 2;
        let high = self.hex4()?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !self.text[self.pos..].starts_with("\\u") {
                    return Err(self.error_at(start, "unpaired surrogate"));
                }
                self.pos += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error_at(start, "unpaired surrogate"));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error_at(start, "unpaired surrogate")),
            _ => high,
        };
        char::from_u32(code).ok_or_else(|| self.error_at(start, "invalid escape"))
    }

    fn hex4(&mut self) -> Result<u32, VmError> {
        let digits = self.text.get(self.pos..self.pos + 4);
        let digits = digits.filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let code = digits.and_then(|d| u32::from_str_radix(d, 16).ok());
        let code = code.ok_or_else(|| self.error("expected 4 hex digits"))?;
        self.pos += 4;
        Ok(code)
    }

    /// Reads a number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<f64, VmError> {
        let start = self.pos;
        self.eat(b'-');
        if !self.eat(b'0') && self.digits() == 0 {
            return Err(self.error("expected a digit"));
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.error("expected a digit after '.'"));
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _ = self.eat(b'+') || self.eat(b'-');
            if self.digits() == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        match self.text[start..self.pos].parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(self.error_at(start, "number out of range")),
        }
    }

    /// Skips ASCII digits, returning how many.
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Reads the literal `word` and builds the variant for it.
    fn word(&mut self, word: &str, variant: u16, fields: Vec<Value>) -> Result<Value, VmError> {
        if !self.text[self.pos..].starts_with(word) {
            return Err(self.error(&format!("expected {word}")));
        }
        self.pos += word.len();
        let ty = self.layout.ty;
        Ok(Value::Obj(self.heap.alloc(Object::Variant {
            ty,
            variant,
            fields,
        })))
    }

    /// A `Json` variant with one payload value.
    fn json(&mut self, variant: u16, payload: Value) -> Value {
        let ty = self.layout.ty;
        Value::Obj(self.heap.alloc(Object::Variant {
            ty,
            variant,
            fields: vec![payload],
        }))
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Steps over `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn eat_after_whitespace(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        self.eat(byte)
    }

    fn expect(&mut self, byte: u8, message: &str) -> Result<(), VmError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.error(message))
        }
    }

    fn error(&self, message: &str) -> VmError {
        self.error_at(self.pos, message)
    }

    fn error_at(&self, pos: usize, message: &str) -> VmError {
        VmError::new(
            ErrorKind::Type,
            format!("invalid JSON at byte {pos}: {message}"),
        )
    }
}
