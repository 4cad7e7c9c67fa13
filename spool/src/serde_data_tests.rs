//! Tests of the serde bridge (`spool_vm::serde_data`) that need the whole
//! language: declarations compiled, values sent into runs and read back.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use serde::de::DeserializeOwned;
use spool_vm::serde_data::*;
use spool_vm::Data;
use std::fmt;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct User {
    id: i64,
    name: String,
    tags: Vec<String>,
    status: Status,
    manager: Option<Box<User>>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Status {
    Active,
    Banned(String),
    Suspended { days: u32, reason: String },
    Moved(i64, Option<String>),
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Customer {
    name: String,
    orders: Vec<Order>,
    scores: BTreeMap<String, i64>,
    flags: HashMap<i64, bool>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Order {
    id: u64,
    total: f64,
    note: Option<String>,
}

/// Recursive, and its first variant needs a value of its own enum.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Expr {
    Add(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Lit(i64),
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Tree {
    label: String,
    children: Vec<Tree>,
}

/// A struct reached again through an enum met while the struct is still
/// being traced.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Node {
    next: Option<Box<Node>>,
    kind: Kind,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Kind {
    Link(Option<Box<Node>>),
    Leaf(char),
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Meters(f64);

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Misc {
    unit: (),
    meters: Meters,
    pair: (i32, i32),
    grid: [[u8; 2]; 2],
    initial: char,
    small: f32,
    wide: i128,
    set: BTreeSet<String>,
    maybe: Option<Option<i64>>,
}

fn user(id: i64, status: Status, manager: Option<User>) -> User {
    User {
        id,
        name: format!("user {id}"),
        tags: vec!["a".into(), "b\"c".into()],
        status,
        manager: manager.map(Box::new),
    }
}

fn customer() -> Customer {
    let order = |id: u64| Order {
        id,
        total: id as f64 * 1.5,
        note: (id != 1).then(|| format!("note {id}")),
    };
    Customer {
        name: "ada".into(),
        orders: (0..4).map(order).collect(),
        scores: [("alice".to_string(), 3), ("bob".to_string(), -1)].into(),
        flags: [(7, true)].into(),
    }
}

fn misc() -> Misc {
    Misc {
        unit: (),
        meters: Meters(2.5),
        pair: (1, -2),
        grid: [[1, 2], [3, 4]],
        initial: 'λ',
        small: 0.5,
        wide: -(1 << 40),
        set: ["x".to_string(), "y".to_string()].into(),
        maybe: Some(Some(3)),
    }
}

#[track_caller]
fn check_round_trip<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(value: T) {
    let data = to_data(&value).unwrap_or_else(|e| panic!("to_data: {e}"));
    let back: T = from_data(&data).unwrap_or_else(|e| panic!("from_data: {e}\n{data:?}"));
    assert_eq!(back, value);
}

#[track_caller]
fn check_from_error<T: DeserializeOwned + fmt::Debug>(data: &Data, expected: &str) {
    let error = from_data::<T>(data).expect_err("the data should not convert");
    assert_eq!(error.to_string(), expected);
}

#[track_caller]
fn check_describe<T: DeserializeOwned>(expr: &str, declarations: &[&str]) {
    let shape = describe::<T>().unwrap_or_else(|e| panic!("describe: {e}"));
    assert_eq!(shape.ty, expr);
    let sources: Vec<&str> = shape.declarations.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(sources, declarations);
}

#[track_caller]
fn check_describe_error<T: DeserializeOwned>(expected: &str) {
    let error = describe::<T>().expect_err("the type should have no description");
    assert_eq!(error.to_string(), expected);
}

/// Compiles the declarations of `T` followed by `code`.
#[track_caller]
fn check_compiles<T: DeserializeOwned>(code: &str) -> crate::Program {
    let shape = describe::<T>().unwrap_or_else(|e| panic!("describe: {e}"));
    let script = format!("{}{code}\n", shape.source());
    crate::Engine::new()
        .compile("described.spl", &script)
        .unwrap_or_else(|error| panic!("{error}\n--- script:\n{script}"))
}

fn field_mut<'d>(data: &'d mut Data, name: &str) -> &'d mut Data {
    let Data::Record { fields, .. } = data else {
        panic!("not a record: {data:?}")
    };
    &mut fields.iter_mut().find(|(n, _)| n == name).expect("field").1
}

fn item_mut(data: &mut Data, index: usize) -> &mut Data {
    match data {
        Data::List(items) => &mut items[index],
        Data::Variant { fields, .. } => &mut fields[index],
        other => panic!("not a list: {other:?}"),
    }
}

// ------------------------------------------------------------ to_data

#[test]
fn structs_become_records_and_variants_carry_their_enum() {
    let data = to_data(&user(
        1,
        Status::Suspended {
            days: 3,
            reason: "x".into(),
        },
        None,
    ));
    let expected = Data::Record {
        name: "User".into(),
        fields: vec![
            ("id".into(), Data::Int(1)),
            ("name".into(), Data::str("user 1")),
            (
                "tags".into(),
                Data::List(vec![Data::str("a"), Data::str("b\"c")]),
            ),
            (
                "status".into(),
                Data::Variant {
                    name: "Status".into(),
                    variant: "Suspended".into(),
                    fields: vec![Data::Int(3), Data::str("x")],
                },
            ),
            ("manager".into(), Data::Nil),
        ],
    };
    assert_eq!(data, Ok(expected));
}

#[test]
fn scalars_tuples_and_newtypes_map_to_plain_data() {
    let data = to_data(&misc()).unwrap();
    let field = |name| data.field(name).cloned().unwrap();
    assert_eq!(field("unit"), Data::Nil);
    assert_eq!(field("meters"), Data::Float(2.5));
    assert_eq!(field("pair"), Data::List(vec![Data::Int(1), Data::Int(-2)]));
    assert_eq!(field("initial"), Data::str("λ"));
    assert_eq!(field("small"), Data::Float(0.5));
    assert_eq!(field("wide"), Data::Int(-(1 << 40)));
    assert_eq!(field("maybe"), Data::Int(3));
    let unit_variant = to_data(&Status::Active).unwrap();
    assert_eq!(
        unit_variant,
        Data::Variant {
            name: "Status".into(),
            variant: "Active".into(),
            fields: vec![],
        }
    );
}

#[test]
fn maps_keep_scalar_keys() {
    let data = to_data(&customer()).unwrap();
    assert_eq!(
        data.field("scores"),
        Some(&Data::Map(vec![
            (Data::str("alice"), Data::Int(3)),
            (Data::str("bob"), Data::Int(-1)),
        ]))
    );
    assert_eq!(
        data.field("flags"),
        Some(&Data::Map(vec![(Data::Int(7), Data::Bool(true))]))
    );
}

#[test]
fn integers_beyond_int_are_errors_with_their_place() {
    #[derive(Serialize)]
    struct Big {
        values: Vec<u64>,
    }
    let error = to_data(&Big {
        values: vec![1, u64::MAX],
    })
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "at .values[1]: the integer 18446744073709551615 does not fit in an int (64-bit signed)"
    );
    assert!(to_data(&(i64::MAX as u64)).is_ok());
    assert!(to_data(&(i128::from(i64::MIN) - 1)).is_err());
}

#[test]
fn map_keys_must_be_scalars() {
    let map: BTreeMap<Vec<i64>, i64> = [(vec![1], 2)].into();
    let error = to_data(&map).unwrap_err();
    assert_eq!(
        error.to_string(),
        "map keys must be int, str or bool, found a list"
    );
}

#[test]
fn skipped_fields_are_nil() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sparse {
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }
    let data = to_data(&Sparse { note: None }).unwrap();
    assert_eq!(data.field("note"), Some(&Data::Nil));
    check_round_trip(Sparse { note: None });
}

// ------------------------------------------------------------ round trips

#[test]
fn structs_and_every_kind_of_variant_round_trip() {
    let boss = user(1, Status::Active, None);
    check_round_trip(user(2, Status::Banned("spam".into()), Some(boss.clone())));
    let suspended = Status::Suspended {
        days: 3,
        reason: "x".into(),
    };
    check_round_trip(user(3, suspended, Some(boss.clone())));
    check_round_trip(vec![
        Status::Moved(4, None),
        Status::Moved(5, Some("there".into())),
    ]);
}

#[test]
fn maps_lists_and_nested_options_round_trip() {
    check_round_trip(customer());
    check_round_trip(misc());
    check_round_trip(vec![Some(vec![None, Some(1)]), None]);
    check_round_trip(HashMap::from([(true, vec![1.5]), (false, vec![])]));
}

#[test]
fn recursive_types_round_trip() {
    let leaf = |label: &str| Tree {
        label: label.into(),
        children: vec![],
    };
    check_round_trip(Tree {
        label: "root".into(),
        children: vec![leaf("a"), leaf("b")],
    });
    let lit = |n| Box::new(Expr::Lit(n));
    check_round_trip(Expr::Add(lit(1), Box::new(Expr::Neg(lit(2)))));
    check_round_trip(Node {
        next: Some(Box::new(Node {
            next: None,
            kind: Kind::Leaf('z'),
        })),
        kind: Kind::Link(None),
    });
}

#[test]
fn nested_options_flatten_to_nil() {
    let data = to_data(&Some(None::<i64>)).unwrap();
    assert_eq!(data, Data::Nil);
    assert_eq!(from_data::<Option<Option<i64>>>(&data), Ok(None));
}

// ------------------------------------------------------------ from_data errors

#[test]
fn errors_name_the_place_inside_the_value() {
    let mut data = to_data(&customer()).unwrap();
    let orders = field_mut(&mut data, "orders");
    *field_mut(item_mut(orders, 3), "total") = Data::str("12.0");
    check_from_error::<Customer>(
        &data,
        "at .orders[3].total: expected a float, found a string",
    );

    let mut data = to_data(&customer()).unwrap();
    let Data::Map(scores) = field_mut(&mut data, "scores") else {
        panic!("scores is a map")
    };
    scores[1].1 = Data::Float(1.0);
    check_from_error::<Customer>(&data, "at .scores[\"bob\"]: expected an int, found a float");

    let mut data = to_data(&user(1, Status::Moved(1, None), None)).unwrap();
    *item_mut(field_mut(&mut data, "status"), 1) = Data::Int(2);
    check_from_error::<User>(&data, "at .status.Moved.1: expected a string, found an int");
}

#[test]
fn errors_from_serde_get_the_place_too() {
    let mut data = to_data(&customer()).unwrap();
    let Data::Record { fields, .. } = item_mut(field_mut(&mut data, "orders"), 0) else {
        panic!("an order is a record")
    };
    fields.retain(|(name, _)| name != "total");
    check_from_error::<Customer>(&data, "at .orders[0]: missing field `total`");

    let mut data = to_data(&user(1, Status::Active, None)).unwrap();
    let Data::Variant { variant, .. } = field_mut(&mut data, "status") else {
        panic!("status is a variant")
    };
    *variant = "Gone".into();
    let error = from_data::<User>(&data).unwrap_err();
    assert_eq!(error.path(), ".status");
    assert!(
        error.message().starts_with("unknown variant `Gone`"),
        "{error}"
    );
}

#[test]
fn shapes_and_sizes_must_match() {
    let three = Data::List(vec![Data::Int(1), Data::Int(2), Data::Int(3)]);
    check_from_error::<(i64, i64)>(&three, "expected a list of 2 items, found 3");
    check_from_error::<(i64, i64, i64, i64)>(
        &three,
        "invalid length 3, expected a tuple of size 4",
    );
    let banned = Data::Variant {
        name: "Status".into(),
        variant: "Banned".into(),
        fields: vec![Data::str("a"), Data::str("b")],
    };
    check_from_error::<Status>(&banned, "expected 1 value in `Banned`, found 2");
    check_from_error::<Order>(&Data::Int(1), "expected a `Order` record, found an int");
    check_from_error::<char>(
        &Data::str("ab"),
        "expected a one-character string, found a string",
    );
    check_from_error::<u8>(&Data::Int(300), "invalid value: integer `300`, expected u8");
}

#[test]
fn lenient_inputs_are_accepted() {
    let active: Status = from_data(Data::str("Active")).unwrap();
    assert_eq!(active, Status::Active);
    let map = Data::Map(vec![
        (Data::str("id"), Data::Int(1)),
        (Data::str("total"), Data::Float(2.0)),
    ]);
    let order: Order = from_data(&map).unwrap();
    assert_eq!(order.note, None);
    let owned: Vec<String> = from_data(Data::List(vec![Data::str("x")])).unwrap();
    assert_eq!(owned, ["x"]);
}

// ------------------------------------------------------------ describe

#[test]
fn plain_types_have_type_expressions() {
    check_describe::<i64>("int", &[]);
    check_describe::<u8>("int", &[]);
    check_describe::<f32>("float", &[]);
    check_describe::<bool>("bool", &[]);
    check_describe::<char>("str", &[]);
    check_describe::<()>("nil", &[]);
    check_describe::<Option<Vec<f64>>>("[float]?", &[]);
    check_describe::<Option<Option<i64>>>("int?", &[]);
    check_describe::<BTreeMap<String, Option<bool>>>("[str: bool?]", &[]);
    check_describe::<HashMap<i64, Vec<String>>>("[int: [str]]", &[]);
    check_describe::<BTreeSet<i64>>("[int]", &[]);
    check_describe::<[u8; 4]>("[int]", &[]);
    check_describe::<(i64, i64)>("[int]", &[]);
    check_describe::<Meters>("float", &[]);
    check_describe::<Box<String>>("str", &[]);
}

#[test]
fn structs_and_enums_are_declared_dependencies_first() {
    check_describe::<Option<User>>(
        "User?",
        &[
            "enum Status { Active, Banned(str), Suspended(int, str), Moved(int, str?) }",
            "struct User { id: int, name: str, tags: [str], status: Status, manager: User? }",
        ],
    );
    check_describe::<Customer>(
            "Customer",
            &[
                "struct Order { id: int, total: float, note: str? }",
                "struct Customer { name: str, orders: [Order], scores: [str: int], flags: [int: bool] }",
            ],
        );
    check_describe::<Misc>(
        "Misc",
        &[
            "struct Misc { unit: nil, meters: float, pair: [int], grid: [[int]], \
               initial: str, small: float, wide: int, set: [str], maybe: int? }",
        ],
    );
}

#[test]
fn recursive_types_are_described() {
    check_describe::<Tree>("Tree", &["struct Tree { label: str, children: [Tree] }"]);
    check_describe::<Expr>(
        "Expr",
        &["enum Expr { Add(Expr, Expr), Neg(Expr), Lit(int) }"],
    );
    check_describe::<Vec<Node>>(
        "[Node]",
        &[
            "enum Kind { Link(Node?), Leaf(str) }",
            "struct Node { next: Node?, kind: Kind }",
        ],
    );
}

#[test]
fn enums_nested_anywhere_are_traced_completely() {
    #[derive(Deserialize)]
    #[allow(dead_code)] // Described, never built.
    struct Outer {
        shapes: Vec<Option<Shape>>,
        by_name: BTreeMap<String, (Shape, Shape)>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Shape {
        Circle(f64),
        Rect(f64, f64),
        Group(Vec<Shape>, Option<Box<Outer>>),
        Empty,
    }
    check_describe::<Outer>(
        "Outer",
        &[
            "enum Shape { Circle(float), Rect(float, float), Group([Shape], Outer?), Empty }",
            "struct Outer { shapes: [Shape?], by_name: [str: [Shape]] }",
        ],
    );
}

#[test]
fn spool_type_is_describe() {
    assert_eq!(User::spool_type(), describe::<User>());
    assert_eq!(<Vec<Expr>>::spool_type().unwrap().ty, "[Expr]");
}

#[test]
fn types_without_a_spool_type_are_refused() {
    check_describe_error::<(i64, String)>(
        "Spool has no tuples: `(int, str)` mixes types, and only a tuple or array whose \
             items share one type is a list",
    );
    check_describe_error::<BTreeMap<Vec<i64>, i64>>(
        "map keys must be int, str or bool, not `[int]`",
    );
    #[derive(Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Loose {
        Int(i64),
    }
    check_describe_error::<Loose>(UNTYPED);
    #[derive(Deserialize)]
    #[serde(tag = "type")]
    #[allow(dead_code)]
    enum Tagged {
        Point { x: i64 },
    }
    check_describe_error::<Tagged>(UNTYPED);
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Flat {
        #[serde(flatten)]
        order: Order,
    }
    check_describe_error::<Flat>(UNTYPED);
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Keyword {
        r#match: i64,
    }
    check_describe_error::<Keyword>("field `match` of `Keyword`: `match` is a Spool keyword");
    #[derive(Deserialize)]
    #[allow(non_camel_case_types)]
    struct int {}
    check_describe_error::<int>("`int` is a Spool built-in type and cannot be declared");
}

#[test]
fn one_name_for_two_types_is_refused() {
    #[derive(Deserialize)]
    struct Pair<T> {
        _value: T,
    }
    #[derive(Deserialize)]
    struct Both {
        _ints: Pair<i64>,
        _strs: Pair<String>,
    }
    let error = describe::<Both>().unwrap_err();
    assert_eq!(error.path(), "._strs._value");
    assert!(
        error
            .message()
            .starts_with("one place holds both int and str"),
        "{error}"
    );
    mod other {
        #[derive(serde::Deserialize)]
        pub struct Order {
            pub _code: String,
        }
    }
    #[derive(Deserialize)]
    struct Mixed {
        _mine: Order,
        _theirs: other::Order,
    }
    check_describe_error::<Mixed>(
        "at ._theirs: two different Rust types are both named `Order`; Spool needs one \
             declaration per name",
    );
}

#[test]
fn types_without_finite_values_are_refused() {
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Forever {
        More(Box<Forever>),
    }
    check_describe_error::<Forever>(
        "no value of `Forever` can be built: each variant contains another `Forever`",
    );
    #[derive(Deserialize)]
    struct Chain {
        _next: Box<Chain>,
    }
    let error = describe::<Chain>().unwrap_err();
    assert_eq!(
        error.message(),
        "values of `Chain` nest without end: each one contains another"
    );
}

// ------------------------------------------------------------ Spool accepts the declarations

#[test]
fn declarations_compile_with_values_built_in_spool() {
    check_compiles::<User>(
            "let boss = User(id: 1, name: \"a\", tags: [], status: Status.Active, manager: nil)\n\
             let u = User(id: 2, name: \"b\", tags: [\"x\"], status: Status.Moved(1, nil), manager: boss)\n\
             print(u.manager!.status)",
        );
    check_compiles::<Customer>(
        "let o = Order(id: 1, total: 2.5, note: nil)\n\
             let c = Customer(name: \"c\", orders: [o], scores: [\"a\": 1], flags: [1: true])\n\
             print(c.orders[0].total)",
    );
    check_compiles::<Vec<Node>>(
        "let n = Node(next: Node(next: nil, kind: Kind.Leaf(\"z\")), kind: Kind.Link(nil))\n\
             print(n)",
    );
    check_compiles::<Expr>(
        "fn eval(e: Expr) -> int {\n\
               return match e { Add(a, b) => eval(a) + eval(b), Neg(a) => -eval(a), Lit(n) => n }\n\
             }\n\
             print(eval(Expr.Add(Expr.Lit(1), Expr.Neg(Expr.Lit(2)))))",
    );
    check_compiles::<Tree>(
        "print(Tree(label: \"t\", children: [Tree(label: \"u\", children: [])]))",
    );
    check_compiles::<Misc>(
        "print(Misc(unit: nil, meters: 1.0, pair: [1, 2], grid: [[1]], initial: \"a\", \
             small: 0.5, wide: 1, set: [], maybe: nil))",
    );
}

#[test]
fn values_cross_between_spool_and_rust() {
    let program = check_compiles::<User>(
            "let boss = User(id: 1, name: \"user 1\", tags: [\"a\", \"b\\\"c\"], status: Status.Active, manager: nil)\n\
             let answer: User = yield User(id: 2, name: \"user 2\", tags: [\"a\", \"b\\\"c\"], \
               status: Status.Banned(\"spam\"), manager: boss)\n\
             print(answer.status)\n\
             print(answer.manager!.status)",
        );
    let mut run = program.start(vec![]);
    let mut host = crate::CaptureOutput::default();
    let Ok(crate::Step::Yield(value)) = run.resume(&mut host) else {
        panic!("the script yields")
    };
    let data = Data::from_value(value, run.heap(), run.program()).unwrap();
    let boss = user(1, Status::Active, None);
    let yielded: User = from_data(&data).unwrap();
    assert_eq!(
        yielded,
        user(2, Status::Banned("spam".into()), Some(boss.clone()))
    );

    let suspended = Status::Suspended {
        days: 3,
        reason: "x".into(),
    };
    let moved = Status::Moved(4, Some("there".into()));
    let reply = to_data(&user(5, suspended, Some(user(6, moved, None)))).unwrap();
    let program = std::sync::Arc::clone(run.program());
    let reply = reply.into_value(run.heap_mut(), &program).unwrap();
    run.send(reply);
    assert!(matches!(run.resume(&mut host), Ok(crate::Step::Done(_))));
    assert_eq!(host.lines, ["Suspended(3, \"x\")", "Moved(4, \"there\")"]);
}
