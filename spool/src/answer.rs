//! Answers to top-level `yield`s from outside the run: the JSON of
//! `spool resume --send JSON`, or a line of standard input, turned into a
//! value of the type the script's top level receives (LANGUAGE.md §6).
//!
//! The receive type comes from the program as a [`TypeDesc`], and struct
//! and enum layouts carry their fields' types, so any type a script can
//! receive is built from JSON:
//! numbers for `int` and `float`, strings, `true`/`false`, `null` for an
//! optional, arrays for lists, objects for maps (keys converted to the
//! map's key type) and structs (fields by name), `"Variant"` or
//! `{"Variant": payload}` for enums (serde's form: one payload value, or an
//! array of them), and any document for `Json`. Functions, coroutines,
//! tasks and channels cannot come from outside a run. A text that does not
//! fit is refused with where and what was expected.

use spool_vm::types::TypeAt as At;
use spool_vm::{Data, Program, Run, TypeDesc, TypeNode, Value};

/// The value the JSON `text` gives a top-level `yield` of `run` (the
/// `--send` of `spool resume`).
pub fn from_json(run: &mut Run, text: &str) -> Result<Value, String> {
    let program = std::sync::Arc::clone(run.program());
    let receives = &program.main_receives;
    let shown = receive_type(run);
    let Some(top) = At::root(receives, &[]) else {
        return Ok(Value::Nil);
    };
    if matches!(top.node(), Some(TypeNode::Nil)) {
        return Ok(Value::Nil);
    }
    let json = spool_stdlib::parse_json(run.heap_mut(), &program, text).map_err(|e| {
        let short = shorten(text);
        format!(
            "`{short}` is not valid JSON for the `{shown}` the pending `yield` receives: {}",
            e.message
        )
    })?;
    if matches!(top.node(), Some(TypeNode::Enum(name, _)) if name == "Json") {
        return Ok(json);
    }
    let data = Data::from_value(json, run.heap(), &program)?;
    let converted = convert(&data, top, &program, 0).map_err(|mismatch| {
        let short = shorten(text);
        format!("`{short}` is not a `{shown}`, which the pending `yield` receives: {mismatch}")
    })?;
    converted.into_value(run.heap_mut(), &program)
}

/// The value a line of standard input gives a top-level `yield` of `run`:
/// the line as it is for `str`, its JSON for every other type.
pub fn from_line(run: &mut Run, line: &str) -> Result<Value, String> {
    if matches!(run.program().main_receives.root(), Some(TypeNode::Str)) {
        return Ok(run.heap_mut().alloc_str(line));
    }
    from_json(run, line)
}

/// Does the top level of `run` receive something other than `nil` (so an
/// answer must be read)?
pub fn needs_answer(run: &Run) -> bool {
    !matches!(
        run.program().main_receives.root(),
        None | Some(TypeNode::Nil)
    )
}

/// The type the script's top-level `yield`s receive, as Spool writes it.
pub fn receive_type(run: &Run) -> String {
    match run.program().main_receives.root() {
        None => "nil".to_string(),
        Some(_) => run.program().main_receives.to_string(),
    }
}

/// How deep conversion goes (JSON documents are bounded by the parser; this
/// bounds chains of optionals and type parameters too).
const MAX_DEPTH: usize = 4096;

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

impl Mismatch {
    fn new(why: String) -> Mismatch {
        Mismatch {
            path: String::new(),
            why,
        }
    }

    /// The same mismatch, one level further in (`step` is `.field` or `[i]`).
    fn inside(mut self, step: &str) -> Mismatch {
        self.path = format!("{step}{}", self.path);
        self
    }
}

/// The JSON `json` (a `Json` value copied out of the heap) as data of type
/// `ty`.
fn convert(json: &Data, ty: At<'_>, program: &Program, depth: usize) -> Result<Data, Mismatch> {
    let (variant, payload) = json_parts(json);
    let expected =
        |what: &str| Mismatch::new(format!("expected {what}, found {}", describe_json(json)));
    if depth > MAX_DEPTH {
        return Err(expected("less deeply nested data"));
    }
    let Some(node) = ty.node() else {
        return Err(Mismatch::new(
            "a value of an unknown type cannot be given from outside the run".into(),
        ));
    };
    match (node, variant, payload) {
        (TypeNode::Param(index), ..) => match ty.args.get(usize::from(*index)) {
            Some(&arg) => convert(json, arg, program, depth + 1),
            None => Err(expected("a value of a known type")),
        },
        (TypeNode::Nil, "Null", _) => Ok(Data::Nil),
        (TypeNode::Nil, ..) => Err(expected("`null`")),
        (TypeNode::Optional(_), "Null", _) => Ok(Data::Nil),
        (TypeNode::Optional(inner), ..) => convert(json, ty.part(*inner), program, depth + 1),
        (TypeNode::Bool, "Bool", Some(Data::Bool(b))) => Ok(Data::Bool(*b)),
        (TypeNode::Bool, ..) => Err(expected("`true` or `false`")),
        (TypeNode::Str, "Str", Some(Data::Str(text))) => Ok(Data::Str(text.clone())),
        (TypeNode::Str, ..) => Err(expected("a string")),
        (TypeNode::Float, "Num", Some(Data::Float(x))) => Ok(Data::Float(*x)),
        (TypeNode::Float, ..) => Err(expected("a number")),
        (TypeNode::Int, "Num", Some(Data::Float(x))) => {
            whole(*x).ok_or_else(|| expected("an integer"))
        }
        (TypeNode::Int, ..) => Err(expected("an integer")),
        (TypeNode::List(element), "Arr", Some(Data::List(items))) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                convert(item, ty.part(*element), program, depth + 1)
                    .map_err(|m| m.inside(&format!("[{index}]")))
            })
            .collect::<Result<_, _>>()
            .map(Data::List),
        (TypeNode::List(_), ..) => Err(expected("an array")),
        (TypeNode::Map(key, value), "Obj", Some(Data::Map(pairs))) => pairs
            .iter()
            .map(|(name, item)| {
                let name = name.as_str().unwrap_or_default();
                let at = format!("[{name:?}]");
                let key = map_key(name, ty.part(*key)).map_err(|m| m.inside(&at))?;
                let item = convert(item, ty.part(*value), program, depth + 1)
                    .map_err(|m| m.inside(&at))?;
                Ok((key, item))
            })
            .collect::<Result<_, _>>()
            .map(Data::Map),
        (TypeNode::Map(..), ..) => Err(expected("an object")),
        (TypeNode::Enum(name, _), ..) if name == "Json" => Ok(json.clone()),
        (TypeNode::Struct(name, args) | TypeNode::Enum(name, args), ..) => {
            let args: Vec<At<'_>> = args.iter().map(|&arg| ty.part(arg)).collect();
            named(json, name, &args, program, depth)
        }
        (TypeNode::Any, ..) => Err(Mismatch::new(
            "a value of an unknown type cannot be given from outside the run".into(),
        )),
        (TypeNode::Func(_) | TypeNode::Coro(..) | TypeNode::Task(_), ..)
        | (TypeNode::Chan(_) | TypeNode::Handle(_), ..) => Err(Mismatch::new(format!(
            "a `{}` cannot be given from outside the run",
            ty.shown()
        ))),
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
fn map_key(name: &str, ty: At<'_>) -> Result<Data, Mismatch> {
    let bad = |what: &str| Mismatch::new(format!("the key {name:?} is not {what}"));
    let mut ty = ty;
    // A key type given as a type parameter: look through to its argument.
    for _ in 0..MAX_DEPTH {
        match ty.node() {
            Some(TypeNode::Param(index)) => match ty.args.get(usize::from(*index)) {
                Some(&arg) => ty = arg,
                None => break,
            },
            _ => break,
        }
    }
    match ty.node() {
        Some(TypeNode::Str) => Ok(Data::Str(name.to_string())),
        Some(TypeNode::Int) => name
            .trim()
            .parse()
            .map(Data::Int)
            .map_err(|_| bad("an integer")),
        Some(TypeNode::Bool) => name
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
    args: &[At<'_>],
    program: &Program,
    depth: usize,
) -> Result<Data, Mismatch> {
    if let Some(layout) = program.structs.iter().find(|s| s.name == name) {
        return record(json, layout, args, program, depth);
    }
    if let Some(layout) = program.enums.iter().find(|e| e.name == name) {
        return variant(json, layout, args, program, depth);
    }
    Err(Mismatch::new(format!(
        "the program has no struct or enum `{name}`"
    )))
}

/// One field of a record or a variant payload, whose type is written
/// `desc` in a layout whose parameters stand for `args`.
fn convert_field(
    json: &Data,
    desc: Option<&TypeDesc>,
    args: &[At<'_>],
    program: &Program,
    depth: usize,
) -> Result<Data, Mismatch> {
    let ty = desc
        .and_then(|desc| At::root(desc, args))
        .ok_or_else(|| Mismatch::new("a field of an unknown type".into()))?;
    convert(json, ty, program, depth + 1)
}

/// A record from a JSON object with a member per field.
fn record(
    json: &Data,
    layout: &spool_vm::StructLayout,
    args: &[At<'_>],
    program: &Program,
    depth: usize,
) -> Result<Data, Mismatch> {
    let Some(Data::Map(members)) = json_parts(json).1.filter(|_| json_parts(json).0 == "Obj")
    else {
        return Err(Mismatch::new(format!(
            "expected an object with the fields of `{}`, found {}",
            layout.name,
            describe_json(json)
        )));
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
        return Err(Mismatch::new(format!(
            "`{}` has no field {:?}",
            layout.name,
            key.as_str().unwrap_or_default()
        )));
    }
    let mut fields = Vec::with_capacity(layout.fields.len());
    for (index, field) in layout.fields.iter().enumerate() {
        let at = format!(".{field}");
        let value = member(field).ok_or_else(|| {
            Mismatch::new(format!(
                "the field `{field}` of `{}` is missing",
                layout.name
            ))
        })?;
        let value = convert_field(value, layout.field_types.get(index), args, program, depth)
            .map_err(|m| m.inside(&at))?;
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
    args: &[At<'_>],
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
            return Err(Mismatch::new(format!(
                "expected a variant of `{}` (\"Name\" or {{\"Name\": payload}}), found {}",
                layout.name,
                describe_json(json)
            )))
        }
    };
    let Some(which) = layout.variants.iter().find(|v| v.name == name) else {
        let known: Vec<&str> = layout.variants.iter().map(|v| v.name.as_str()).collect();
        return Err(Mismatch::new(format!(
            "`{}` has no variant {name:?} (it has {})",
            layout.name,
            known.join(", ")
        )));
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
        fields.push(
            convert_field(value, which.field_types.get(index), args, program, depth)
                .map_err(|m| m.inside(&at))?,
        );
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
    Mismatch::new(format!(
        "`{}.{}` is written {form}",
        layout.name, which.name
    ))
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
