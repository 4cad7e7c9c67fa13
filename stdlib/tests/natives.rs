//! Tests of every native function of the standard library, called directly
//! with a heap, a hand-built program and a capturing host: results, edge
//! cases (Unicode, empty inputs, ranges) and the error kind of each failure.

use spool_stdlib::{native_set, natives};
use spool_vm::{
    format, Builtins, CaptureOutput, EnumIdx, EnumLayout, ErrorKind, Heap, Key, NativeCtx, Object,
    Program, StructIdx, StructLayout, Value, ValueMap, VariantLayout, VmError,
};

/// A heap, program, host and generator state to call natives against.
struct Fixture {
    heap: Heap,
    program: Program,
    output: CaptureOutput,
    rng: u64,
    args: Vec<String>,
    sched: spool_vm::Sched,
}

/// Enum 0 is `Json`, in the prelude's order; enum 1 a user's `Shape`.
fn program() -> Program {
    let variant = |name: &str, arity| VariantLayout {
        name: name.into(),
        arity,
        ..VariantLayout::default()
    };
    let record = |name: &str, fields: &[&str]| StructLayout {
        name: name.into(),
        fields: fields.iter().map(|f| f.to_string()).collect(),
        ..StructLayout::default()
    };
    let json = ["Null", "Bool", "Num", "Str", "Arr", "Obj"];
    Program {
        structs: vec![
            record("Error", &["kind", "message"]),
            record("Point", &["x", "y"]),
        ],
        enums: vec![
            EnumLayout {
                name: "Json".into(),
                variants: json
                    .iter()
                    .map(|n| variant(n, u16::from(*n != "Null")))
                    .collect(),
                ..EnumLayout::default()
            },
            EnumLayout {
                name: "Shape".into(),
                variants: vec![
                    variant("Circle", 1),
                    variant("Rect", 2),
                    variant("Empty", 0),
                ],
                ..EnumLayout::default()
            },
        ],
        builtins: Builtins {
            error: StructIdx(0),
            json: EnumIdx(0),
        },
        ..Program::default()
    }
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            heap: Heap::new(),
            program: program(),
            output: CaptureOutput::default(),
            rng: 42,
            args: vec!["one".into(), "two".into()],
            sched: spool_vm::Sched::default(),
        }
    }

    /// Calls the native bound to `key`.
    fn call(&mut self, key: &str, args: &[Value]) -> Result<Value, VmError> {
        let def = natives()
            .iter()
            .find(|d| d.key == key)
            .unwrap_or_else(|| panic!("no {key}"));
        let mut ctx = NativeCtx {
            heap: &mut self.heap,
            program: &self.program,
            output: &mut self.output,
            rng: &mut self.rng,
            exit: &mut None,
            args: &self.args,
            sched: &mut self.sched,
            suspend: None,
            work: 0,
        };
        (def.func)(&mut ctx, args)
    }

    #[track_caller]
    fn ok(&mut self, key: &str, args: &[Value]) -> Value {
        self.call(key, args)
            .unwrap_or_else(|e| panic!("{key} failed: {e:?}"))
    }

    /// Calls `key` and shows the result as it prints inside a container
    /// (strings quoted), so `"1"` and `1` differ.
    #[track_caller]
    fn show(&mut self, key: &str, args: &[Value]) -> String {
        let value = self.ok(key, args);
        self.quote(value)
    }

    /// Calls `key`, expecting an error of `kind`; returns its message.
    #[track_caller]
    fn err(&mut self, key: &str, args: &[Value], kind: ErrorKind) -> String {
        match self.call(key, args) {
            Ok(value) => panic!("{key} returned {}, expected {kind:?}", self.quote(value)),
            Err(error) => {
                assert_eq!(error.kind, kind, "{key}: {}", error.message);
                error.message
            }
        }
    }

    fn quote(&self, value: Value) -> String {
        let mut out = String::new();
        format::write_value(&mut out, value, &self.heap, &self.program, 0);
        out
    }

    fn s(&mut self, text: &str) -> Value {
        self.heap.alloc_str(text)
    }

    fn list(&mut self, items: Vec<Value>) -> Value {
        self.heap.alloc_list(items)
    }

    fn ints(&mut self, items: &[i64]) -> Value {
        self.list(items.iter().map(|n| Value::Int(*n)).collect())
    }

    fn strs(&mut self, items: &[&str]) -> Value {
        let items = items.iter().map(|t| self.heap.alloc_str(*t)).collect();
        self.list(items)
    }

    fn map(&mut self, entries: &[(&str, i64)]) -> Value {
        let map: ValueMap = entries
            .iter()
            .map(|(k, v)| (Key::Str((*k).into()), Value::Int(*v)))
            .collect();
        Value::Obj(self.heap.alloc(Object::Map(map)))
    }

    fn str_of(&self, value: Value) -> &str {
        self.heap.str(value).expect("a string")
    }
}

fn int(n: i64) -> Value {
    Value::Int(n)
}

fn float(x: f64) -> Value {
    Value::Float(x)
}

// ---- the table ----

/// The name and the first parameter's type of a signature, for checking
/// that overloads are distinguishable.
fn name_and_first_param(sig: &str) -> (&str, &str) {
    let rest = sig.strip_prefix("fn ").expect("sig starts with `fn `");
    let name_end = rest.find(['<', '(']).expect("a parameter list");
    let params = &rest[rest.find('(').unwrap() + 1..];
    let first = params.split_once(':').map_or("", |(_, ty)| ty);
    let mut depth = 0;
    let end = first
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' if depth > 0 => depth -= 1,
                ',' | ')' => return true,
                _ => {}
            }
            false
        })
        .map_or(first.len(), |(i, _)| i);
    (&rest[..name_end], first[..end].trim())
}

/// The number of parameters of a signature: the `:`s outside brackets in
/// its parameter list.
fn arity(sig: &str) -> usize {
    let params = &sig[sig.find('(').map_or(0, |i| i + 1)..];
    let mut depth = 0;
    let mut count = 0;
    for c in params.chars() {
        match c {
            '[' | '(' => depth += 1,
            ')' if depth == 0 => break,
            ']' | ')' => depth -= 1,
            ':' if depth == 0 => count += 1,
            _ => {}
        }
    }
    count
}

#[test]
fn keys_and_signatures_are_unique() {
    let defs = natives();
    for (index, def) in defs.iter().enumerate() {
        for other in &defs[index + 1..] {
            assert_ne!(def.key, other.key, "duplicate key");
            assert_ne!(def.sig, other.sig, "duplicate sig");
            assert_ne!(
                (name_and_first_param(def.sig), arity(def.sig)),
                (name_and_first_param(other.sig), arity(other.sig)),
                "{} and {} cannot be told apart by their first parameter or arity",
                def.key,
                other.key
            );
        }
    }
}

#[test]
fn native_set_binds_every_key() {
    let set = native_set();
    for def in natives() {
        assert!(set.get(def.key).is_some(), "{} unbound", def.key);
    }
}

#[test]
fn signature_shapes() {
    assert_eq!(
        name_and_first_param("fn get<K, V>(m: [K: V], key: K) -> V?"),
        ("get", "[K: V]")
    );
    assert_eq!(name_and_first_param("fn random() -> float"), ("random", ""));
    let has = |sig: &str| natives().iter().any(|d| d.sig == sig);
    assert!(has("fn len<T>(xs: [T]) -> int"));
    assert!(has("fn print(v: any)"));
    assert!(has("fn get<K, V>(m: [K: V], key: K) -> V?"));
    assert!(has("fn assert(cond: bool, msg: str)"));
}

// ---- core ----

#[test]
fn print_and_str() {
    let mut f = Fixture::new();
    let text = f.s("hi");
    let items = f.ints(&[1, 2]);
    assert_eq!(f.ok("core.print", &[text]), Value::Nil);
    f.ok("core.print", &[items]);
    f.ok("core.print", &[float(3.0)]);
    f.ok("core.print", &[Value::Nil]);
    assert_eq!(f.output.lines, ["hi", "[1, 2]", "3.0", "nil"]);
    // A string is its own `str`, with no copy.
    assert_eq!(f.ok("core.str", &[text]), text);
    assert_eq!(f.show("core.str", &[int(-42)]), "\"-42\"");
    assert_eq!(f.show("core.str", &[float(0.1)]), "\"0.1\"");
    assert_eq!(f.show("core.str", &[Value::Bool(true)]), "\"true\"");
    let nested = f.strs(&["a"]);
    assert_eq!(f.show("core.str", &[nested]), r#""[\"a\"]""#);
}

#[test]
fn int_conversions() {
    let mut f = Fixture::new();
    assert_eq!(f.ok("float.int", &[float(3.9)]), int(3));
    assert_eq!(f.ok("float.int", &[float(-3.9)]), int(-3));
    assert_eq!(f.ok("float.int", &[float(-0.5)]), int(0));
    assert_eq!(
        f.ok("float.int", &[float(-9_223_372_036_854_775_808.0)]),
        int(i64::MIN)
    );
    f.err(
        "float.int",
        &[float(9_223_372_036_854_775_808.0)],
        ErrorKind::Overflow,
    );
    f.err("float.int", &[float(f64::NAN)], ErrorKind::Overflow);
    f.err(
        "float.int",
        &[float(f64::NEG_INFINITY)],
        ErrorKind::Overflow,
    );
    assert_eq!(f.ok("int.int", &[int(7)]), int(7));
    assert_eq!(f.ok("int.float", &[int(-2)]), float(-2.0));
    assert_eq!(f.ok("float.float", &[float(2.5)]), float(2.5));
}

#[test]
fn assert_raises_with_its_message() {
    let mut f = Fixture::new();
    let msg = f.s("x must be positive");
    assert_eq!(f.ok("core.assert", &[Value::Bool(true), msg]), Value::Nil);
    let message = f.err("core.assert", &[Value::Bool(false), msg], ErrorKind::Assert);
    assert_eq!(message, "x must be positive");
}

#[test]
fn random_is_deterministic_and_in_range() {
    let draw = |seed: u64, count: usize| {
        let mut f = Fixture::new();
        f.rng = seed;
        (0..count)
            .map(|_| match f.ok("core.random", &[]) {
                Value::Float(x) => x,
                other => panic!("{other:?}"),
            })
            .collect::<Vec<f64>>()
    };
    assert_eq!(draw(7, 100), draw(7, 100));
    assert_ne!(draw(7, 10), draw(8, 10));
    let many = draw(0, 10_000);
    assert!(many.iter().all(|x| (0.0..1.0).contains(x)));
    let mean = many.iter().sum::<f64>() / many.len() as f64;
    assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
}

#[test]
fn args_lists_the_script_arguments() {
    let mut f = Fixture::new();
    assert_eq!(f.show("core.args", &[]), r#"["one", "two"]"#);
}

// ---- strings ----

#[test]
fn string_length_counts_chars() {
    let mut f = Fixture::new();
    let (text, empty) = (f.s("héllo😀"), f.s(""));
    assert_eq!(f.ok("str.len", &[text]), int(6));
    assert_eq!(f.ok("str.len", &[empty]), int(0));
}

#[test]
fn split_and_chars() {
    let mut f = Fixture::new();
    let (text, comma, empty) = (f.s("a,b,,c"), f.s(","), f.s(""));
    assert_eq!(
        f.show("str.split", &[text, comma]),
        r#"["a", "b", "", "c"]"#
    );
    assert_eq!(f.show("str.split", &[empty, comma]), r#"[""]"#);
    let word = f.s("hé😀");
    assert_eq!(f.show("str.split", &[word, empty]), r#"["h", "é", "😀"]"#);
    assert_eq!(f.show("str.split", &[empty, empty]), "[]");
    assert_eq!(f.show("str.chars", &[word]), r#"["h", "é", "😀"]"#);
    assert_eq!(f.show("str.chars", &[empty]), "[]");
    let multi = f.s("a::b");
    let sep = f.s("::");
    assert_eq!(f.show("str.split", &[multi, sep]), r#"["a", "b"]"#);
}

#[test]
fn trim_and_case() {
    let mut f = Fixture::new();
    let text = f.s(" \t Straße \n");
    assert_eq!(f.show("str.trim", &[text]), r#""Straße""#);
    let word = f.s("Straße");
    assert_eq!(f.show("str.upper", &[word]), r#""STRASSE""#);
    assert_eq!(f.show("str.lower", &[word]), r#""straße""#);
    let empty = f.s("");
    assert_eq!(f.show("str.trim", &[empty]), r#""""#);
}

#[test]
fn substring_tests() {
    let mut f = Fixture::new();
    let (text, sub, empty, other) = (f.s("héllo"), f.s("hé"), f.s(""), f.s("llo"));
    assert_eq!(f.ok("str.contains", &[text, other]), Value::Bool(true));
    assert_eq!(f.ok("str.contains", &[text, empty]), Value::Bool(true));
    assert_eq!(f.ok("str.contains", &[empty, other]), Value::Bool(false));
    assert_eq!(f.ok("str.starts_with", &[text, sub]), Value::Bool(true));
    assert_eq!(f.ok("str.starts_with", &[text, other]), Value::Bool(false));
    assert_eq!(f.ok("str.ends_with", &[text, other]), Value::Bool(true));
    assert_eq!(f.ok("str.ends_with", &[text, sub]), Value::Bool(false));
}

#[test]
fn replace_every_occurrence() {
    let mut f = Fixture::new();
    let (text, from, to) = (f.s("a-b-c"), f.s("-"), f.s("--"));
    assert_eq!(f.show("str.replace", &[text, from, to]), r#""a--b--c""#);
    let (empty, x) = (f.s(""), f.s("x"));
    let ab = f.s("ab");
    assert_eq!(f.show("str.replace", &[ab, empty, x]), r#""xaxbx""#);
    assert_eq!(f.show("str.replace", &[text, x, empty]), r#""a-b-c""#);
}

#[test]
fn find_gives_a_char_index() {
    let mut f = Fixture::new();
    let (text, sub, missing, empty) = (f.s("héllo wörld"), f.s("wö"), f.s("xyz"), f.s(""));
    assert_eq!(f.ok("str.find", &[text, sub]), int(6));
    assert_eq!(f.ok("str.find", &[text, missing]), Value::Nil);
    assert_eq!(f.ok("str.find", &[text, empty]), int(0));
    assert_eq!(f.ok("str.find", &[empty, sub]), Value::Nil);
}

#[test]
fn string_slice_counts_chars_and_checks_range() {
    let mut f = Fixture::new();
    let text = f.s("héllo😀");
    assert_eq!(f.show("str.slice", &[text, int(1), int(3)]), r#""él""#);
    assert_eq!(f.show("str.slice", &[text, int(5), int(6)]), r#""😀""#);
    assert_eq!(f.show("str.slice", &[text, int(0), int(6)]), r#""héllo😀""#);
    assert_eq!(f.show("str.slice", &[text, int(6), int(6)]), r#""""#);
    f.err("str.slice", &[text, int(0), int(7)], ErrorKind::Index);
    f.err("str.slice", &[text, int(-1), int(2)], ErrorKind::Index);
    let message = f.err("str.slice", &[text, int(3), int(2)], ErrorKind::Index);
    assert_eq!(message, "range 3..2 out of range for string of length 6");
    let empty = f.s("");
    assert_eq!(f.show("str.slice", &[empty, int(0), int(0)]), r#""""#);
}

#[test]
fn parse_numbers() {
    let mut f = Fixture::new();
    let cases: &[(&str, &str)] = &[
        ("42", "42"),
        ("-7", "-7"),
        ("+3", "3"),
        ("9223372036854775807", "9223372036854775807"),
        ("9223372036854775808", "nil"),
        (" 1", "nil"),
        ("1.0", "nil"),
        ("", "nil"),
        ("0x1f", "nil"),
    ];
    for (text, expected) in cases {
        let value = f.s(text);
        assert_eq!(
            f.show("str.parse_int", &[value]),
            *expected,
            "parse_int({text:?})"
        );
    }
    let cases: &[(&str, &str)] = &[
        ("1.5", "1.5"),
        ("2", "2.0"),
        ("-.5", "-0.5"),
        ("1e3", "1000.0"),
        ("inf", "nil"),
        ("NaN", "nil"),
        ("abc", "nil"),
        ("", "nil"),
        (" 1.5", "nil"),
    ];
    for (text, expected) in cases {
        let value = f.s(text);
        assert_eq!(
            f.show("str.parse_float", &[value]),
            *expected,
            "parse_float({text:?})"
        );
    }
}

#[test]
fn join_strings() {
    let mut f = Fixture::new();
    let (items, sep) = (f.strs(&["a", "é", "c"]), f.s(", "));
    assert_eq!(f.show("list.join", &[items, sep]), r#""a, é, c""#);
    let (none, one) = (f.strs(&[]), f.strs(&["solo"]));
    assert_eq!(f.show("list.join", &[none, sep]), r#""""#);
    assert_eq!(f.show("list.join", &[one, sep]), r#""solo""#);
}

// ---- lists ----

#[test]
fn push_pop_len() {
    let mut f = Fixture::new();
    let xs = f.ints(&[]);
    assert_eq!(f.ok("list.pop", &[xs]), Value::Nil);
    f.ok("list.push", &[xs, int(1)]);
    f.ok("list.push", &[xs, int(2)]);
    assert_eq!(f.ok("list.len", &[xs]), int(2));
    assert_eq!(f.ok("list.pop", &[xs]), int(2));
    assert_eq!(f.quote(xs), "[1]");
}

#[test]
fn insert_and_remove_check_the_index() {
    let mut f = Fixture::new();
    let xs = f.ints(&[1, 3]);
    f.ok("list.insert", &[xs, int(1), int(2)]);
    f.ok("list.insert", &[xs, int(3), int(4)]);
    f.ok("list.insert", &[xs, int(0), int(0)]);
    assert_eq!(f.quote(xs), "[0, 1, 2, 3, 4]");
    f.err("list.insert", &[xs, int(6), int(9)], ErrorKind::Index);
    f.err("list.insert", &[xs, int(-1), int(9)], ErrorKind::Index);
    assert_eq!(f.ok("list.remove", &[xs, int(0)]), int(0));
    assert_eq!(f.ok("list.remove", &[xs, int(3)]), int(4));
    let message = f.err("list.remove", &[xs, int(3)], ErrorKind::Index);
    assert_eq!(message, "index 3 out of range for list of length 3");
    f.err("list.remove", &[xs, int(-1)], ErrorKind::Index);
    assert_eq!(f.quote(xs), "[1, 2, 3]");
}

#[test]
fn contains_and_index_of_compare_structurally() {
    let mut f = Fixture::new();
    let (a, b, c) = (f.strs(&["x"]), f.strs(&["y"]), f.strs(&["y"]));
    let xs = f.list(vec![a, b, b]);
    assert_eq!(f.ok("list.contains", &[xs, c]), Value::Bool(true));
    assert_eq!(f.ok("list.index_of", &[xs, c]), int(1));
    let d = f.strs(&[]);
    assert_eq!(f.ok("list.contains", &[xs, d]), Value::Bool(false));
    assert_eq!(f.ok("list.index_of", &[xs, d]), Value::Nil);
    let empty = f.ints(&[]);
    assert_eq!(f.ok("list.index_of", &[empty, int(1)]), Value::Nil);
}

#[test]
fn sort_returns_a_new_sorted_list() {
    let mut f = Fixture::new();
    let xs = f.ints(&[3, -1, 2, 2, 10, 0]);
    assert_eq!(f.show("list.sort", &[xs]), "[-1, 0, 2, 2, 3, 10]");
    assert_eq!(f.quote(xs), "[3, -1, 2, 2, 10, 0]");
    let words = f.strs(&["pear", "Apple", "äpple", "apple"]);
    assert_eq!(
        f.show("list.sort", &[words]),
        r#"["Apple", "apple", "pear", "äpple"]"#
    );
    let floats = f.list(vec![float(f64::NAN), float(1.5), float(-0.5)]);
    assert_eq!(f.show("list.sort", &[floats]), "[-0.5, 1.5, NaN]");
    let (p, q, r) = (f.ints(&[1, 2]), f.ints(&[1]), f.ints(&[0, 9]));
    let lists = f.list(vec![p, q, r]);
    assert_eq!(f.show("list.sort", &[lists]), "[[0, 9], [1], [1, 2]]");
    let empty = f.ints(&[]);
    assert_eq!(f.show("list.sort", &[empty]), "[]");
}

#[test]
fn sort_is_stable() {
    let mut f = Fixture::new();
    // Equal strings in distinct objects: stability shows in which object
    // comes first.
    let keys = ["b", "a", "b", "a", "c", "a", "b"];
    let items: Vec<Value> = keys.iter().map(|k| f.s(k)).collect();
    let xs = f.list(items.clone());
    let sorted = f.ok("list.sort", &[xs]);
    let sorted = f.heap.list(sorted).unwrap().clone();
    let expected: Vec<Value> = [1, 3, 5, 0, 2, 6, 4].iter().map(|&i| items[i]).collect();
    assert_eq!(sorted, expected);
}

#[test]
fn sort_agrees_with_std_on_many_items() {
    let mut f = Fixture::new();
    let mut state = 1u64;
    let numbers: Vec<i64> = (0..1000)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as i64 % 100
        })
        .collect();
    let xs = f.ints(&numbers);
    let sorted = f.ok("list.sort", &[xs]);
    let mut expected = numbers.clone();
    expected.sort();
    let expected: Vec<Value> = expected.into_iter().map(Value::Int).collect();
    assert_eq!(f.heap.list(sorted).unwrap(), &expected);
}

#[test]
fn sort_of_unordered_values_is_a_type_error() {
    let mut f = Fixture::new();
    let point = |f: &mut Fixture| {
        Value::Obj(f.heap.alloc(Object::Record {
            ty: StructIdx(1),
            fields: vec![float(0.0), float(1.0)],
        }))
    };
    let (p, q) = (point(&mut f), point(&mut f));
    let xs = f.list(vec![p, q]);
    f.err("list.sort", &[xs], ErrorKind::Type);
    let ys = f.list(vec![int(1), Value::Nil]);
    f.err("list.sort", &[ys], ErrorKind::Type);
    let one = f.list(vec![p]);
    // One item needs no comparison, so even a record sorts.
    let sorted = f.ok("list.sort", &[one]);
    assert_eq!(f.ok("list.len", &[sorted]), int(1));
}

#[test]
fn reverse_and_slice_make_new_lists() {
    let mut f = Fixture::new();
    let xs = f.ints(&[1, 2, 3, 4]);
    assert_eq!(f.show("list.reverse", &[xs]), "[4, 3, 2, 1]");
    assert_eq!(f.show("list.slice", &[xs, int(1), int(3)]), "[2, 3]");
    assert_eq!(f.show("list.slice", &[xs, int(4), int(4)]), "[]");
    assert_eq!(f.show("list.slice", &[xs, int(0), int(4)]), "[1, 2, 3, 4]");
    f.err("list.slice", &[xs, int(0), int(5)], ErrorKind::Index);
    f.err("list.slice", &[xs, int(2), int(1)], ErrorKind::Index);
    f.err("list.slice", &[xs, int(i64::MIN), int(1)], ErrorKind::Index);
    assert_eq!(f.quote(xs), "[1, 2, 3, 4]");
    let empty = f.ints(&[]);
    assert_eq!(f.show("list.reverse", &[empty]), "[]");
}

#[test]
fn wrong_argument_shapes_are_type_errors_not_panics() {
    let mut f = Fixture::new();
    let text = f.s("x");
    let message = f.err("list.len", &[text], ErrorKind::Type);
    assert!(message.starts_with("internal: expected"), "{message}");
    f.err("str.len", &[int(1)], ErrorKind::Type);
    f.err("map.len", &[Value::Nil], ErrorKind::Type);
    f.err("list.push", &[], ErrorKind::Type);
    f.err("int.abs", &[float(1.0)], ErrorKind::Type);
    let items = f.list(vec![int(1)]);
    let sep = f.s(",");
    f.err("list.join", &[items, sep], ErrorKind::Type);
}

// ---- maps ----

#[test]
fn map_get_set_contains() {
    let mut f = Fixture::new();
    let m = f.map(&[("a", 1), ("b", 2)]);
    let (a, b, z) = (f.s("a"), f.s("b"), f.s("z"));
    assert_eq!(f.ok("map.len", &[m]), int(2));
    assert_eq!(f.ok("map.get", &[m, b]), int(2));
    assert_eq!(f.ok("map.get", &[m, z]), Value::Nil);
    assert_eq!(f.ok("map.contains", &[m, a]), Value::Bool(true));
    assert_eq!(f.ok("map.contains", &[m, z]), Value::Bool(false));
    f.ok("map.set", &[m, z, int(26)]);
    f.ok("map.set", &[m, a, int(10)]);
    assert_eq!(f.quote(m), r#"["a": 10, "b": 2, "z": 26]"#);
}

#[test]
fn map_remove_keeps_the_order_of_the_rest() {
    let mut f = Fixture::new();
    let m = f.map(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
    let (b, missing) = (f.s("b"), f.s("x"));
    assert_eq!(f.ok("map.remove", &[m, b]), int(2));
    assert_eq!(f.ok("map.remove", &[m, missing]), Value::Nil);
    assert_eq!(f.show("map.keys", &[m]), r#"["a", "c", "d"]"#);
    assert_eq!(f.show("map.values", &[m]), "[1, 3, 4]");
}

#[test]
fn maps_with_int_and_bool_keys() {
    let mut f = Fixture::new();
    let m = Value::Obj(f.heap.alloc(Object::Map(ValueMap::default())));
    f.ok("map.set", &[m, int(3), Value::Bool(true)]);
    f.ok("map.set", &[m, int(-1), Value::Bool(false)]);
    assert_eq!(f.show("map.keys", &[m]), "[3, -1]");
    assert_eq!(f.ok("map.get", &[m, int(-1)]), Value::Bool(false));
    let b = Value::Obj(f.heap.alloc(Object::Map(ValueMap::default())));
    f.ok("map.set", &[b, Value::Bool(true), int(1)]);
    assert_eq!(
        f.ok("map.contains", &[b, Value::Bool(true)]),
        Value::Bool(true)
    );
    assert_eq!(
        f.ok("map.contains", &[b, Value::Bool(false)]),
        Value::Bool(false)
    );
    let empty = Value::Obj(f.heap.alloc(Object::Map(ValueMap::default())));
    assert_eq!(f.show("map.keys", &[empty]), "[]");
    assert_eq!(f.ok("map.len", &[empty]), int(0));
}

// ---- math ----

#[test]
fn int_math() {
    let mut f = Fixture::new();
    assert_eq!(f.ok("int.abs", &[int(-5)]), int(5));
    assert_eq!(f.ok("int.abs", &[int(i64::MAX)]), int(i64::MAX));
    f.err("int.abs", &[int(i64::MIN)], ErrorKind::Overflow);
    assert_eq!(f.ok("int.min", &[int(3), int(-2)]), int(-2));
    assert_eq!(f.ok("int.max", &[int(3), int(-2)]), int(3));
}

#[test]
fn float_math() {
    let mut f = Fixture::new();
    assert_eq!(f.ok("float.abs", &[float(-1.5)]), float(1.5));
    assert_eq!(f.ok("float.min", &[float(1.0), float(2.0)]), float(1.0));
    assert_eq!(f.ok("float.max", &[float(1.0), float(2.0)]), float(2.0));
    assert_eq!(
        f.ok("float.max", &[float(f64::NAN), float(2.0)]),
        float(2.0)
    );
    assert_eq!(f.ok("float.floor", &[float(-1.5)]), float(-2.0));
    assert_eq!(f.ok("float.ceil", &[float(-1.5)]), float(-1.0));
    assert_eq!(f.ok("float.sqrt", &[float(9.0)]), float(3.0));
    assert_eq!(f.show("float.sqrt", &[float(-1.0)]), "NaN");
    assert_eq!(f.ok("float.pow", &[float(2.0), float(10.0)]), float(1024.0));
    assert_eq!(f.ok("float.pow", &[float(4.0), float(0.5)]), float(2.0));
}

// ---- json ----

fn json_str(f: &mut Fixture, value: Value) -> String {
    let text = f.ok("json.str", &[value]);
    f.str_of(text).to_string()
}

/// Parses `text` and writes it back.
fn round_trip(text: &str) -> String {
    let mut f = Fixture::new();
    let source = f.s(text);
    let parsed = f.ok("json.parse", &[source]);
    json_str(&mut f, parsed)
}

#[track_caller]
fn parse_error(text: &str) -> String {
    let mut f = Fixture::new();
    let source = f.s(text);
    f.err("json.parse", &[source], ErrorKind::Type)
}

#[test]
fn json_str_of_plain_values() {
    let mut f = Fixture::new();
    let numbers = f.ints(&[1, 2]);
    let m = f.map(&[]);
    let key = f.s("a");
    f.ok("map.set", &[m, key, numbers]);
    assert_eq!(json_str(&mut f, m), r#"{"a":[1,2]}"#);
    assert_eq!(json_str(&mut f, Value::Nil), "null");
    assert_eq!(json_str(&mut f, Value::Bool(false)), "false");
    assert_eq!(json_str(&mut f, float(2.5)), "2.5");
    assert_eq!(json_str(&mut f, float(3.0)), "3");
    assert_eq!(json_str(&mut f, float(1e100)), "1e100");
    let tricky = f.s("q\"b\\n\né\u{1}\u{1F600}");
    assert_eq!(json_str(&mut f, tricky), r#""q\"b\\n\né\u0001😀""#);
    let empty_map = f.map(&[]);
    assert_eq!(json_str(&mut f, empty_map), "{}");
    let int_keys = Value::Obj(f.heap.alloc(Object::Map(ValueMap::default())));
    f.ok("map.set", &[int_keys, int(1), Value::Bool(true)]);
    assert_eq!(json_str(&mut f, int_keys), r#"{"1":true}"#);
}

#[test]
fn json_str_of_records_and_enums() {
    let mut f = Fixture::new();
    let point = Object::Record {
        ty: StructIdx(1),
        fields: vec![float(1.0), float(-2.5)],
    };
    let point = Value::Obj(f.heap.alloc(point));
    assert_eq!(json_str(&mut f, point), r#"{"x":1,"y":-2.5}"#);
    let rect = Object::Variant {
        ty: EnumIdx(1),
        variant: 1,
        fields: vec![float(2.0), float(3.0)],
    };
    let rect = Value::Obj(f.heap.alloc(rect));
    assert_eq!(json_str(&mut f, rect), r#"{"Rect":[2,3]}"#);
    let empty = Value::Obj(f.heap.alloc(Object::Variant {
        ty: EnumIdx(1),
        variant: 2,
        fields: vec![],
    }));
    assert_eq!(json_str(&mut f, empty), r#""Empty""#);
    let shapes = f.list(vec![rect, empty]);
    assert_eq!(json_str(&mut f, shapes), r#"[{"Rect":[2,3]},"Empty"]"#);
}

#[test]
fn json_str_errors() {
    let mut f = Fixture::new();
    f.err("json.str", &[float(f64::NAN)], ErrorKind::Type);
    f.err("json.str", &[float(f64::INFINITY)], ErrorKind::Type);
    f.err(
        "json.str",
        &[Value::Func(spool_vm::FuncIdx(0))],
        ErrorKind::Type,
    );
    // A list that contains itself.
    let xs = f.ints(&[]);
    f.ok("list.push", &[xs, xs]);
    let message = f.err("json.str", &[xs], ErrorKind::Type);
    assert!(message.contains("contains itself"), "{message}");
    // Sharing without a cycle is fine.
    let inner = f.ints(&[1]);
    let twice = f.list(vec![inner, inner]);
    assert_eq!(json_str(&mut f, twice), "[[1],[1]]");
}

#[test]
fn json_parse_builds_json_values() {
    let mut f = Fixture::new();
    let source = f.s(r#" {"a": [1, 2.5e1, true, null], "b": {"c": "d"}} "#);
    let parsed = f.ok("json.parse", &[source]);
    assert_eq!(
        f.quote(parsed),
        r#"Obj(["a": Arr([Num(1.0), Num(25.0), Bool(true), Null]), "b": Obj(["c": Str("d")])])"#
    );
    let Some(Object::Variant { ty, variant, .. }) = f.heap.get(parsed.as_obj().unwrap()) else {
        panic!("not a variant")
    };
    assert_eq!((*ty, *variant), (EnumIdx(0), 5));
}

#[test]
fn json_round_trips() {
    let cases = [
        ("null", "null"),
        ("true", "true"),
        ("-0", "-0.0"),
        ("0.5", "0.5"),
        ("1E+2", "100"),
        ("[]", "[]"),
        ("{}", "{}"),
        (r#"[1, [2, [3, {}]]]"#, "[1,[2,[3,{}]]]"),
        (r#"{"b": 1, "a": 2, "b": 3}"#, r#"{"b":3,"a":2}"#),
        (
            r#""\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\""#,
            r#""é😀/\b\f\n\r\t\"\\""#,
        ),
        ("\"héllo\"", "\"héllo\""),
        (" \n\t[ 1 , 2 ]\r\n", "[1,2]"),
    ];
    for (text, expected) in cases {
        assert_eq!(round_trip(text), expected, "{text}");
        // Writing is canonical: a second round trip changes nothing.
        assert_eq!(round_trip(expected), expected, "{expected}");
    }
}

#[test]
fn json_parse_rejects_invalid_text_with_a_position() {
    let cases = [
        (
            "",
            "invalid JSON at byte 0: expected a value, found the end of the input",
        ),
        ("[1,]", "invalid JSON at byte 3: unexpected character ']'"),
        ("[1 2]", "invalid JSON at byte 3: expected ',' or ']'"),
        (r#"{"a" 1}"#, "invalid JSON at byte 5: expected ':'"),
        ("{1: 2}", "invalid JSON at byte 1: expected a string key"),
        (
            "01",
            "invalid JSON at byte 1: unexpected text after the value",
        ),
        ("1.", "invalid JSON at byte 2: expected a digit after '.'"),
        ("-", "invalid JSON at byte 1: expected a digit"),
        ("1e400", "invalid JSON at byte 0: number out of range"),
        ("tru", "invalid JSON at byte 0: expected true"),
        ("nul", "invalid JSON at byte 0: expected null"),
        ("\"abc", "invalid JSON at byte 4: unterminated string"),
        (
            "\"a\nb\"",
            "invalid JSON at byte 2: control character in a string",
        ),
        (r#""\x""#, "invalid JSON at byte 2: invalid escape"),
        (r#""\ud800""#, "invalid JSON at byte 1: unpaired surrogate"),
        (r#""\udc00""#, "invalid JSON at byte 1: unpaired surrogate"),
        (r#""\u12""#, "invalid JSON at byte 3: expected 4 hex digits"),
        (
            "[1] [2]",
            "invalid JSON at byte 4: unexpected text after the value",
        ),
        ("'a'", "invalid JSON at byte 0: unexpected character '\\''"),
        ("é", "invalid JSON at byte 0: unexpected character 'é'"),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_error(text), expected, "{text:?}");
    }
}

#[test]
fn json_parse_survives_hostile_nesting() {
    let message = parse_error(&"[".repeat(100_000));
    assert!(message.contains("nested more than 512 deep"), "{message}");
    let message = parse_error(&r#"{"a":"#.repeat(100_000));
    assert!(message.contains("nested more than 512 deep"), "{message}");
    let too_deep = format!("{}{}", "[".repeat(513), "]".repeat(513));
    assert!(parse_error(&too_deep).contains("nested more than 512 deep"));
}

#[test]
fn json_nesting_does_not_use_the_rust_stack() {
    // Both directions keep their open containers on the heap, so the
    // deepest document allowed, and far deeper hostile input, fit in a
    // small stack even in a debug build.
    let worker = std::thread::Builder::new().stack_size(128 << 10);
    let deepest = format!("{}{}", "[".repeat(512), "]".repeat(512));
    let result = worker.spawn(move || {
        assert_eq!(round_trip(&deepest), deepest);
        parse_error(&"[".repeat(1_000_000))
    });
    let message = result.unwrap().join().unwrap();
    assert!(message.contains("nested more than 512 deep"), "{message}");
}

#[test]
fn json_str_refuses_values_nested_too_deep() {
    let mut f = Fixture::new();
    let mut value = f.ints(&[]);
    for _ in 0..511 {
        value = f.list(vec![value]);
    }
    assert_eq!(json_str(&mut f, value).len(), 1024);
    let deeper = f.list(vec![value]);
    let message = f.err("json.str", &[deeper], ErrorKind::Type);
    assert!(message.contains("nested more than 512 deep"), "{message}");
}

#[test]
fn json_values_write_as_natural_json() {
    // A `Json` value and the plain value it stands for write the same.
    let mut f = Fixture::new();
    let source = f.s(r#"{"name": "spool", "tags": ["a", "b"], "n": 3, "ok": false, "x": null}"#);
    let parsed = f.ok("json.parse", &[source]);
    assert_eq!(
        json_str(&mut f, parsed),
        r#"{"name":"spool","tags":["a","b"],"n":3,"ok":false,"x":null}"#
    );
}
