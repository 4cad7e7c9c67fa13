//! Answers to top-level `yield`s from outside the run: the JSON of
//! `spool resume --send JSON`, or a line of standard input, turned into a
//! value of the type the script's top level receives (LANGUAGE.md §6).
//!
//! The receive type comes from the program as Spool writes types (`int`,
//! `[str: Point]`, `Shape?`), and struct and enum layouts carry their
//! fields' types, so any type a script can receive is built from JSON:
//! numbers for `int` and `float`, strings, `true`/`false`, `null` for an
//! optional, arrays for lists, objects for maps (keys converted to the
//! map's key type) and structs (fields by name), `"Variant"` or
//! `{"Variant": payload}` for enums (serde's form: one payload value, or an
//! array of them), and any document for `Json`. Functions, coroutines,
//! tasks and channels cannot come from outside a run. A text that does not
//! fit is refused with where and what was expected.

use spool_vm::{Data, Program, Run, Value};

/// The value the JSON `text` gives a top-level `yield` of `run` (the
/// `--send` of `spool resume`).
pub fn from_json(run: &mut Run, text: &str) -> Result<Value, String> {
    let receives = receive_type(run);
    let ty = parse_type(&receives)?;
    if ty == Ty::Nil {
        return Ok(Value::Nil);
    }
    let program = std::sync::Arc::clone(run.program());
    let json = spool_stdlib::parse_json(run.heap_mut(), &program, text).map_err(|e| {
        let short = shorten(text);
        format!(
            "`{short}` is not valid JSON for the `{receives}` the pending `yield` receives: {}",
            e.message
        )
    })?;
    if matches!(&ty, Ty::Named(name, _) if name == "Json") {
        return Ok(json);
    }
    let data = Data::from_value(json, run.heap(), &program)?;
    let converted = convert(&data, &ty, &program, 0).map_err(|mismatch| {
        let short = shorten(text);
        format!("`{short}` is not a `{receives}`, which the pending `yield` receives: {mismatch}")
    })?;
    converted.into_value(run.heap_mut(), &program)
}

/// The value a line of standard input gives a top-level `yield` of `run`:
/// the line as it is for `str`, its JSON for every other type.
pub fn from_line(run: &mut Run, line: &str) -> Result<Value, String> {
    if receive_type(run) == "str" {
        return Ok(run.heap_mut().alloc_str(line));
    }
    from_json(run, line)
}

/// Does the top level of `run` receive something other than `nil` (so an
/// answer must be read)?
pub fn needs_answer(run: &Run) -> bool {
    let receives = receive_type(run);
    receives != "nil"
}

/// The type the script's top-level `yield`s receive, as Spool writes it.
pub fn receive_type(run: &Run) -> String {
    match run.program().main_receives.trim() {
        "" => "nil".to_string(),
        other => other.to_string(),
    }
}

/// A type as Spool writes it, as far as answers need to tell.
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    Nil,
    Int,
    Float,
    Bool,
    Str,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Optional(Box<Ty>),
    /// A struct or enum (or `Json`) with its type arguments, or a type
    /// parameter of one.
    Named(String, Vec<Ty>),
    /// Functions, coroutines, tasks, channels and the like: never given
    /// from outside a run. Holds the type as written.
    Opaque(String),
}

/// How deep a written type may nest; types come from saved runs, which
/// are untrusted.
const MAX_TYPE_DEPTH: usize = 64;

/// Parses a type as the checker prints it.
fn parse_type(text: &str) -> Result<Ty, String> {
    let mut parser = TypeParser { text, at: 0 };
    let ty = parser.ty(0)?;
    parser.skip_space();
    if parser.at != text.len() {
        return Err(format!("cannot read the type `{text}`"));
    }
    Ok(ty)
}

struct TypeParser<'a> {
    text: &'a str,
    at: usize,
}

impl TypeParser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn fail(&self) -> String {
        format!("cannot read the type `{}`", self.text)
    }

    fn ty(&mut self, depth: usize) -> Result<Ty, String> {
        if depth > MAX_TYPE_DEPTH {
            return Err(self.fail());
        }
        let mut ty = self.primary(depth)?;
        while self.eat("?") {
            ty = Ty::Optional(Box::new(ty));
        }
        Ok(ty)
    }

    fn primary(&mut self, depth: usize) -> Result<Ty, String> {
        if self.eat("(") {
            let inner = self.ty(depth + 1)?;
            return if self.eat(")") {
                Ok(inner)
            } else {
                Err(self.fail())
            };
        }
        if self.eat("[") {
            let first = self.ty(depth + 1)?;
            let ty = if self.eat(":") {
                Ty::Map(Box::new(first), Box::new(self.ty(depth + 1)?))
            } else {
                Ty::List(Box::new(first))
            };
            return if self.eat("]") {
                Ok(ty)
            } else {
                Err(self.fail())
            };
        }
        self.skip_space();
        if self.rest().starts_with("fn(") || self.rest().starts_with("fn ") {
            // A function type runs to the end of its enclosing group.
            let start = self.at;
            let end = self.group_end();
            self.at = end;
            return Ok(Ty::Opaque(self.text[start..end].trim().to_string()));
        }
        let name = self.name()?;
        let mut args = Vec::new();
        if self.eat("<") {
            loop {
                args.push(self.ty(depth + 1)?);
                if self.eat(">") {
                    break;
                }
                if !self.eat(",") {
                    return Err(self.fail());
                }
            }
        }
        Ok(match (name.as_str(), args.is_empty()) {
            ("nil", true) => Ty::Nil,
            ("int", true) => Ty::Int,
            ("float", true) => Ty::Float,
            ("bool", true) => Ty::Bool,
            ("str", true) => Ty::Str,
            ("Coro" | "Task" | "Chan" | "Mutex" | "WaitGroup" | "ErrGroup" | "any", _) => {
                Ty::Opaque(name)
            }
            _ => Ty::Named(name, args),
        })
    }

    fn name(&mut self) -> Result<String, String> {
        self.skip_space();
        let length = self
            .rest()
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        if length == 0 {
            return Err(self.fail());
        }
        let name = self.rest()[..length].to_string();
        self.at += length;
        Ok(name)
    }

    /// Where the innermost group around the parser's position closes (or
    /// the end of the text).
    fn group_end(&self) -> usize {
        let mut depth = 0i32;
        let mut previous = ' ';
        for (offset, ch) in self.rest().char_indices() {
            let arrow = previous == '-' && ch == '>';
            previous = ch;
            match ch {
                _ if arrow => {}
                '(' | '[' | '<' => depth += 1,
                ')' | ']' | '>' if depth == 0 => return self.at + offset,
                ')' | ']' | '>' => depth -= 1,
                ',' | ':' if depth == 0 => return self.at + offset,
                _ => {}
            }
        }
        self.text.len()
    }
}

/// Where in the answer something did not fit, and why.
struct Mismatch {
    path: String,
    why: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.why)
        } else {
            write!(f, "at {}: {}", self.path, self.why)
        }
    }
}

/// The JSON `json` (a `Json` value copied out of the heap) as data of type
/// `ty`.
fn convert(json: &Data, ty: &Ty, program: &Program, depth: usize) -> Result<Data, Mismatch> {
    let (variant, payload) = json_parts(json);
    let expected = |what: &str| Mismatch {
        path: String::new(),
        why: format!("expected {what}, found {}", describe_json(json)),
    };
    if depth > MAX_TYPE_DEPTH * 16 {
        return Err(expected("less deeply nested data"));
    }
    match (ty, variant, payload) {
        (Ty::Nil, "Null", _) => Ok(Data::Nil),
        (Ty::Nil, ..) => Err(expected("`null`")),
        (Ty::Optional(_), "Null", _) => Ok(Data::Nil),
        (Ty::Optional(inner), ..) => convert(json, inner, program, depth + 1),
        (Ty::Bool, "Bool", Some(Data::Bool(b))) => Ok(Data::Bool(*b)),
        (Ty::Bool, ..) => Err(expected("`true` or `false`")),
        (Ty::Str, "Str", Some(Data::Str(text))) => Ok(Data::Str(text.clone())),
        (Ty::Str, ..) => Err(expected("a string")),
        (Ty::Float, "Num", Some(Data::Float(x))) => Ok(Data::Float(*x)),
        (Ty::Float, ..) => Err(expected("a number")),
        (Ty::Int, "Num", Some(Data::Float(x))) => whole(*x).ok_or_else(|| expected("an integer")),
        (Ty::Int, ..) => Err(expected("an integer")),
        (Ty::List(element), "Arr", Some(Data::List(items))) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                convert(item, element, program, depth + 1)
                    .map_err(|m| m.inside(&format!("[{index}]")))
            })
            .collect::<Result<_, _>>()
            .map(Data::List),
        (Ty::List(_), ..) => Err(expected("an array")),
        (Ty::Map(key, value), "Obj", Some(Data::Map(pairs))) => pairs
            .iter()
            .map(|(name, item)| {
                let name = name.as_str().unwrap_or_default();
                let at = format!("[{name:?}]");
                let key = map_key(name, key).map_err(|m| m.inside(&at))?;
                let item = convert(item, value, program, depth + 1).map_err(|m| m.inside(&at))?;
                Ok((key, item))
            })
            .collect::<Result<_, _>>()
            .map(Data::Map),
        (Ty::Map(..), ..) => Err(expected("an object")),
        (Ty::Named(name, args), ..) => named(json, name, args, program, depth),
        (Ty::Opaque(written), ..) => Err(Mismatch {
            path: String::new(),
            why: format!("a `{written}` cannot be given from outside the run"),
        }),
    }
}

impl Mismatch {
    /// The same mismatch, one level further in (`step` is `.field` or `[i]`).
    fn inside(mut self, step: &str) -> Mismatch {
        self.path = format!("{step}{}", self.path);
        self
    }
}

/// A `Json` value's variant name and payload.
fn json_parts(json: &Data) -> (&str, Option<&Data>) {
    match json {
        Data::Variant {
            variant, fields, ..
        } => (variant.as_str(), fields.first()),
        _ => ("", None),
    }
}

/// What a piece of JSON is, for messages.
fn describe_json(json: &Data) -> String {
    match json_parts(json) {
        ("Null", _) => "`null`".to_string(),
        ("Bool", Some(Data::Bool(b))) => format!("`{b}`"),
        ("Num", Some(Data::Float(x))) => format!("the number {}", shorten(&json_number(*x))),
        ("Str", Some(Data::Str(text))) => format!("the string {}", shorten(&format!("{text:?}"))),
        ("Arr", _) => "an array".to_string(),
        ("Obj", _) => "an object".to_string(),
        _ => "something else".to_string(),
    }
}

fn json_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// The text, cut short for a message.
fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() > MAX {
        text.chars().take(MAX - 3).collect::<String>() + "..."
    } else {
        text.to_string()
    }
}

/// A JSON number as an int, when it is a whole number an `f64` holds
/// exactly.
fn whole(x: f64) -> Option<Data> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    (x.fract() == 0.0 && x.abs() <= EXACT).then_some(Data::Int(x as i64))
}

/// An object's key as a key of type `ty`.
fn map_key(name: &str, ty: &Ty) -> Result<Data, Mismatch> {
    let bad = |what: &str| Mismatch {
        path: String::new(),
        why: format!("the key {name:?} is not {what}"),
    };
    match ty {
        Ty::Str => Ok(Data::Str(name.to_string())),
        Ty::Int => name
            .trim()
            .parse()
            .map(Data::Int)
            .map_err(|_| bad("an integer")),
        Ty::Bool => name
            .parse()
            .map(Data::Bool)
            .map_err(|_| bad("`true` or `false`")),
        _ => Err(bad("a valid key")),
    }
}

/// A struct or enum named `name` with type arguments `args`, from JSON.
fn named(
    json: &Data,
    name: &str,
    args: &[Ty],
    program: &Program,
    depth: usize,
) -> Result<Data, Mismatch> {
    if name == "Json" {
        return Ok(json.clone());
    }
    let unknown = || Mismatch {
        path: String::new(),
        why: format!("the program has no struct or enum `{name}`"),
    };
    if let Some(layout) = program.structs.iter().find(|s| s.name == name) {
        let substitute = Substitution::new(&layout.params, args);
        return record(json, layout, &substitute, program, depth);
    }
    if let Some(layout) = program.enums.iter().find(|e| e.name == name) {
        let substitute = Substitution::new(&layout.params, args);
        return variant(json, layout, &substitute, program, depth);
    }
    Err(unknown())
}

/// Type parameters of a struct or enum bound to the arguments it is used
/// with.
struct Substitution<'a> {
    params: &'a [String],
    args: &'a [Ty],
}

impl<'a> Substitution<'a> {
    fn new(params: &'a [String], args: &'a [Ty]) -> Substitution<'a> {
        Substitution { params, args }
    }

    /// The type of a field written `written`, with the parameters bound.
    fn field_type(&self, written: &str) -> Result<Ty, Mismatch> {
        let ty = parse_type(written).map_err(|why| Mismatch {
            path: String::new(),
            why,
        })?;
        Ok(self.apply(ty))
    }

    fn apply(&self, ty: Ty) -> Ty {
        match ty {
            Ty::Named(name, args) if args.is_empty() => {
                match self.params.iter().position(|p| *p == name) {
                    Some(index) => self.args.get(index).cloned().unwrap_or(Ty::Opaque(name)),
                    None => Ty::Named(name, args),
                }
            }
            Ty::Named(name, args) => {
                Ty::Named(name, args.into_iter().map(|a| self.apply(a)).collect())
            }
            Ty::List(element) => Ty::List(Box::new(self.apply(*element))),
            Ty::Map(key, value) => {
                Ty::Map(Box::new(self.apply(*key)), Box::new(self.apply(*value)))
            }
            Ty::Optional(inner) => Ty::Optional(Box::new(self.apply(*inner))),
            other => other,
        }
    }
}

/// A record from a JSON object with a member per field.
fn record(
    json: &Data,
    layout: &spool_vm::StructLayout,
    substitute: &Substitution<'_>,
    program: &Program,
    depth: usize,
) -> Result<Data, Mismatch> {
    let Some(Data::Map(members)) = json_parts(json).1.filter(|_| json_parts(json).0 == "Obj")
    else {
        return Err(Mismatch {
            path: String::new(),
            why: format!(
                "expected an object with the fields of `{}`, found {}",
                layout.name,
                describe_json(json)
            ),
        });
    };
    let member = |field: &str| {
        members
            .iter()
            .find(|(key, _)| key.as_str() == Some(field))
            .map(|(_, value)| value)
    };
    if let Some((key, _)) = members.iter().find(|(key, _)| {
        !layout
            .fields
            .iter()
            .any(|field| Some(field.as_str()) == key.as_str())
    }) {
        return Err(Mismatch {
            path: String::new(),
            why: format!(
                "`{}` has no field {:?}",
                layout.name,
                key.as_str().unwrap_or_default()
            ),
        });
    }
    let mut fields = Vec::with_capacity(layout.fields.len());
    for (index, field) in layout.fields.iter().enumerate() {
        let at = format!(".{field}");
        let value = member(field).ok_or_else(|| Mismatch {
            path: String::new(),
            why: format!("the field `{field}` of `{}` is missing", layout.name),
        })?;
        let written = layout.field_types.get(index).map_or("", String::as_str);
        let ty = substitute.field_type(written).map_err(|m| m.inside(&at))?;
        let value = convert(value, &ty, program, depth + 1).map_err(|m| m.inside(&at))?;
        fields.push((field.clone(), value));
    }
    Ok(Data::Record {
        name: layout.name.clone(),
        fields,
    })
}

/// An enum value from `"Variant"` or `{"Variant": payload}`.
fn variant(
    json: &Data,
    layout: &spool_vm::EnumLayout,
    substitute: &Substitution<'_>,
    program: &Program,
    depth: usize,
) -> Result<Data, Mismatch> {
    let (name, payload) = match json_parts(json) {
        ("Str", Some(Data::Str(name))) => (name.as_str(), None),
        ("Obj", Some(Data::Map(members))) if members.len() == 1 => {
            let (key, value) = &members[0];
            (key.as_str().unwrap_or_default(), Some(value))
        }
        _ => {
            return Err(Mismatch {
                path: String::new(),
                why: format!(
                    "expected a variant of `{}` (\"Name\" or {{\"Name\": payload}}), found {}",
                    layout.name,
                    describe_json(json)
                ),
            })
        }
    };
    let Some(which) = layout.variants.iter().find(|v| v.name == name) else {
        let known: Vec<&str> = layout.variants.iter().map(|v| v.name.as_str()).collect();
        return Err(Mismatch {
            path: String::new(),
            why: format!(
                "`{}` has no variant {name:?} (it has {})",
                layout.name,
                known.join(", ")
            ),
        });
    };
    let values: Vec<&Data> = match (which.arity, payload) {
        (0, None) => Vec::new(),
        (1, Some(value)) => vec![value],
        (_, Some(value)) => match json_parts(value) {
            ("Arr", Some(Data::List(items))) if items.len() == usize::from(which.arity) => {
                items.iter().collect()
            }
            _ => return Err(wrong_payload(layout, which)),
        },
        _ => return Err(wrong_payload(layout, which)),
    };
    let at = format!(".{name}");
    let mut fields = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let written = which.field_types.get(index).map_or("", String::as_str);
        let ty = substitute.field_type(written).map_err(|m| m.inside(&at))?;
        fields.push(convert(value, &ty, program, depth + 1).map_err(|m| m.inside(&at))?);
    }
    Ok(Data::Variant {
        name: layout.name.clone(),
        variant: which.name.clone(),
        fields,
    })
}

fn wrong_payload(layout: &spool_vm::EnumLayout, which: &spool_vm::VariantLayout) -> Mismatch {
    let form = match which.arity {
        0 => format!("\"{}\"", which.name),
        1 => format!("{{\"{}\": value}}", which.name),
        n => format!("{{\"{}\": [{n} values]}}", which.name),
    };
    Mismatch {
        path: String::new(),
        why: format!("`{}.{}` is written {form}", layout.name, which.name),
    }
}

/// The heap object behind a value, for tests.
#[cfg(test)]
fn object(run: &Run, value: Value) -> Option<&spool_vm::Object> {
    run.heap().get(value.as_obj()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spool_vm::Object;

    fn run_of(source: &str) -> Run {
        let program = crate::Engine::new().compile("t.spl", source).unwrap();
        program.start(vec![])
    }

    fn answer(receives: &str, prelude: &str, text: &str) -> Result<String, String> {
        let source = format!("{prelude}\nlet x: {receives} = yield 1\nprint(x)\n");
        let mut run = run_of(&source);
        let value = from_json(&mut run, text)?;
        Ok(run.display(value))
    }

    #[test]
    fn types_parse_as_the_checker_prints_them() {
        assert_eq!(parse_type("int"), Ok(Ty::Int));
        assert_eq!(
            parse_type("[str: [int?]]"),
            Ok(Ty::Map(
                Box::new(Ty::Str),
                Box::new(Ty::List(Box::new(Ty::Optional(Box::new(Ty::Int)))))
            ))
        );
        assert_eq!(
            parse_type("Box<int>?"),
            Ok(Ty::Optional(Box::new(Ty::Named(
                "Box".into(),
                vec![Ty::Int]
            ))))
        );
        assert_eq!(
            parse_type("(fn(int) -> int)?"),
            Ok(Ty::Optional(Box::new(Ty::Opaque("fn(int) -> int".into()))))
        );
        assert!(parse_type("[int").is_err());
        assert!(parse_type(&"[".repeat(10_000)).is_err());
    }

    #[test]
    fn every_receivable_type_is_built_from_json() {
        assert_eq!(answer("[int]", "", "[1, 2, 3]"), Ok("[1, 2, 3]".into()));
        assert_eq!(
            answer("[str: float]", "", r#"{"a": 1, "b": 2.5}"#),
            Ok(r#"["a": 1.0, "b": 2.5]"#.into())
        );
        assert_eq!(
            answer("[int: bool]", "", r#"{"7": true}"#),
            Ok("[7: true]".into())
        );
        assert_eq!(answer("int?", "", "null"), Ok("nil".into()));
        let point = "struct Point { x: float, y: float }";
        assert_eq!(
            answer("Point", point, r#"{"x": 1, "y": 2}"#),
            Ok("Point(x: 1.0, y: 2.0)".into())
        );
        let shape = "enum Shape { Circle(float), Rect(float, float), Empty }";
        assert_eq!(answer("Shape", shape, r#""Empty""#), Ok("Empty".into()));
        assert_eq!(
            answer("[Shape]", shape, r#"[{"Circle": 1}, {"Rect": [2, 3]}]"#),
            Ok("[Circle(1.0), Rect(2.0, 3.0)]".into())
        );
        let boxed = "struct Box<T> { value: T }";
        assert_eq!(
            answer("Box<[int]>", boxed, r#"{"value": [4]}"#),
            Ok("Box(value: [4])".into())
        );
        assert_eq!(
            answer("Json", "", r#"{"a": [1]}"#),
            Ok(r#"Obj(["a": Arr([Num(1.0)])])"#.into())
        );
    }

    #[test]
    fn a_misfit_names_the_type_and_the_place() {
        let error = answer("[int]", "", r#"[1, "two"]"#).unwrap_err();
        assert_eq!(
            error,
            r#"`[1, "two"]` is not a `[int]`, which the pending `yield` receives: at [1]: expected an integer, found the string "two""#
        );
        let point = "struct Point { x: float, y: float }";
        let error = answer("Point", point, r#"{"x": 1}"#).unwrap_err();
        assert!(
            error.ends_with("the field `y` of `Point` is missing"),
            "{error}"
        );
        let error = answer("Point", point, r#"{"x": 1, "y": 2, "z": 3}"#).unwrap_err();
        assert!(error.ends_with("`Point` has no field \"z\""), "{error}");
        let error = answer("int", "", "1.5").unwrap_err();
        assert!(
            error.ends_with("expected an integer, found the number 1.5"),
            "{error}"
        );
        let error = answer("int", "", "{").unwrap_err();
        assert!(error.starts_with("`{` is not valid JSON"), "{error}");
    }

    #[test]
    fn lines_are_strings_for_str_and_json_otherwise() {
        let mut run = run_of("let x: str = yield 1\nprint(x)");
        let value = from_line(&mut run, "a line, not JSON").unwrap();
        assert!(matches!(object(&run, value), Some(Object::Str(s)) if s == "a line, not JSON"));
        let mut run = run_of("let x: [str] = yield 1\nprint(x)");
        let value = from_line(&mut run, r#"["a", "b"]"#).unwrap();
        assert_eq!(run.display(value), r#"["a", "b"]"#);
    }
}
