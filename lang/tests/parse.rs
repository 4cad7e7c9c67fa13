//! Parser tests: every construct of LANGUAGE.md §1-§3 parses to the
//! expected AST shape (checked through a compact S-expression rendering),
//! every error case gives the right diagnostic, and mutated scripts never
//! make the parser panic.

use spool_lang::ast::*;
use spool_lang::diag::{codes, Diagnostic};
use spool_lang::parser::{parse, parse_bytes, parse_native_sig};

// ---------------------------------------------------------------- helpers

/// Parses `src`, failing the test with the diagnostics if it does not parse.
#[track_caller]
fn parse_ok(src: &str) -> File {
    match parse(src, 0) {
        Ok(file) => file,
        Err(errors) => panic!("{src:?} failed to parse: {errors:#?}"),
    }
}

/// Parses `src`, failing the test if it parses.
#[track_caller]
fn parse_err(src: &str) -> Vec<Diagnostic> {
    match parse(src, 0) {
        Ok(file) => panic!("{src:?} parsed but should not: {:#?}", file.items),
        Err(errors) => errors,
    }
}

/// Asserts that `src` fails with a diagnostic of `code` whose message
/// contains `text`.
#[track_caller]
fn check_error(src: &str, code: &str, text: &str) -> Diagnostic {
    let errors = parse_err(src);
    match errors
        .iter()
        .find(|error| error.code == code && error.message.contains(text))
    {
        Some(error) => error.clone(),
        None => panic!("{src:?}: no {code} error containing {text:?} in {errors:#?}"),
    }
}

/// Asserts that `src` parses but does not compile (without a library), with
/// a diagnostic of `code` whose message contains `text`.
#[track_caller]
fn check_compile_error(src: &str, code: &str, text: &str) {
    let errors = compile_alone(src.to_string()).expect_err("a compile error");
    assert!(
        errors
            .iter()
            .any(|error| error.code == code && error.message.contains(text)),
        "{src:?}: no {code} error containing {text:?} in {errors:#?}"
    );
}

/// The statements of a file that has only statements.
#[track_caller]
fn stmts(src: &str) -> Vec<Stmt> {
    parse_ok(src)
        .items
        .into_iter()
        .map(|item| match item {
            Item::Stmt(stmt) => stmt,
            other => panic!("expected a statement, found {other:?}"),
        })
        .collect()
}

/// The single expression statement `src`, rendered.
#[track_caller]
fn expr(src: &str) -> String {
    let mut all = stmts(src);
    assert_eq!(all.len(), 1, "{src:?}: expected one statement");
    match all.remove(0).kind {
        StmtKind::Expr(expr) => sexp(&expr),
        other => panic!("expected an expression statement, found {other:?}"),
    }
}

/// Checks that the expression `src` renders as `expected`.
#[track_caller]
fn check_expr(src: &str, expected: &str) {
    assert_eq!(expr(src), expected, "for {src:?}");
}

/// A compact rendering of an expression that shows its structure.
fn sexp(expr: &Expr) -> String {
    let list = |items: &[Expr]| items.iter().map(sexp).collect::<Vec<_>>().join(" ");
    let args = |args: &[Arg]| {
        args.iter()
            .map(|arg| match &arg.name {
                Some(name) => format!("{}: {}", name, sexp(&arg.value)),
                None => sexp(&arg.value),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    match &expr.kind {
        ExprKind::Int(Some(value)) => value.to_string(),
        ExprKind::Int(None) => "<int out of range>".into(),
        ExprKind::Float(value) => format!("{value:?}"),
        ExprKind::Str(parts) => {
            let parts: Vec<String> = parts
                .iter()
                .map(|part| match part {
                    StrPart::Lit(text) => format!("{text:?}"),
                    StrPart::Expr(expr) => format!("${{{}}}", sexp(expr)),
                })
                .collect();
            format!("(str {})", parts.join(" "))
        }
        ExprKind::Bool(value) => value.to_string(),
        ExprKind::Nil => "nil".into(),
        ExprKind::Name(name) => name.name.clone(),
        ExprKind::List(items) => format!("[{}]", list(items)),
        ExprKind::Map(entries) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(key, value)| format!("{}: {}", sexp(key), sexp(value)))
                .collect();
            format!("[map {}]", entries.join(", "))
        }
        ExprKind::Unary(op, operand) => {
            format!(
                "({} {})",
                if *op == UnaryOp::Neg { "neg" } else { "not" },
                sexp(operand)
            )
        }
        ExprKind::Binary(op, lhs, rhs) => format!("({} {} {})", op.symbol(), sexp(lhs), sexp(rhs)),
        ExprKind::Unwrap(operand) => format!("(unwrap {})", sexp(operand)),
        ExprKind::Call(callee, call_args) => format!("(call {} {})", sexp(callee), args(call_args)),
        ExprKind::MethodCall {
            receiver,
            method,
            args: call_args,
        } => {
            format!("(method {} {} {})", sexp(receiver), method, args(call_args))
        }
        ExprKind::Field(object, field) => format!("(field {} {})", sexp(object), field),
        ExprKind::Index(object, index) => format!("(index {} {})", sexp(object), sexp(index)),
        ExprKind::Lambda(lambda) => {
            let params: Vec<String> = lambda
                .params
                .iter()
                .map(|param| match &param.ty {
                    Some(ty) => format!("{}: {}", param.name, type_sexp(ty)),
                    None => param.name.name.clone(),
                })
                .collect();
            let ret = lambda
                .ret
                .as_ref()
                .map(|ty| format!(" -> {}", type_sexp(ty)))
                .unwrap_or_default();
            match &lambda.body {
                LambdaBody::Expr(body) => {
                    format!("(fn ({}){} => {})", params.join(", "), ret, sexp(body))
                }
                LambdaBody::Block(block) => {
                    format!(
                        "(fn ({}){} {{{} stmts}})",
                        params.join(", "),
                        ret,
                        block.stmts.len()
                    )
                }
            }
        }
        ExprKind::Match(scrutinee, arms) => {
            format!("(match {} {} arms)", sexp(scrutinee), arms.len())
        }
        ExprKind::Yield(None) => "(yield)".into(),
        ExprKind::Yield(Some(value)) => format!("(yield {})", sexp(value)),
        ExprKind::Spawn(call) => format!("(spawn {})", sexp(call)),
        ExprKind::Await(task) => format!("(await {})", sexp(task)),
        ExprKind::Block(block) => format!("{{{} stmts}}", block.stmts.len()),
        ExprKind::If(stmt) => match &stmt.kind {
            StmtKind::If { cond, els, .. } => {
                format!("(if {} else={})", sexp(cond), els.is_some())
            }
            StmtKind::IfLet { name, value, .. } => format!("(if-let {} {})", name, sexp(value)),
            other => format!("(if {other:?})"),
        },
    }
}

/// A compact rendering of a type.
fn type_sexp(ty: &TypeExpr) -> String {
    match &ty.kind {
        TypeExprKind::Named(name, args) if args.is_empty() => name.name.clone(),
        TypeExprKind::Named(name, args) => {
            format!(
                "{}<{}>",
                name,
                args.iter().map(type_sexp).collect::<Vec<_>>().join(", ")
            )
        }
        TypeExprKind::Nil => "nil".into(),
        TypeExprKind::List(item) => format!("[{}]", type_sexp(item)),
        TypeExprKind::Map(key, value) => format!("[{}: {}]", type_sexp(key), type_sexp(value)),
        TypeExprKind::Optional(inner) => format!("opt({})", type_sexp(inner)),
        TypeExprKind::Fn {
            params,
            ret,
            yields,
            receives,
        } => {
            let mut text = format!(
                "fn({})",
                params.iter().map(type_sexp).collect::<Vec<_>>().join(", ")
            );
            for (word, part) in [("->", ret), ("yields", yields), ("receives", receives)] {
                if let Some(part) = part {
                    text.push_str(&format!(" {word} {}", type_sexp(part)));
                }
            }
            format!("<{text}>")
        }
    }
}

/// The type written in `let x: <ty> = nil`, rendered.
#[track_caller]
fn ty(src: &str) -> String {
    let src = format!("let x: {src} = nil");
    match stmts(&src).remove(0).kind {
        StmtKind::Let { ty: Some(ty), .. } => type_sexp(&ty),
        other => panic!("{other:?}"),
    }
}

/// The text of `span` in `src`.
fn text(src: &str, span: Span) -> &str {
    &src[span.range()]
}

// ---------------------------------------------------------------- expressions

#[test]
fn literals() {
    check_expr("42", "42");
    check_expr("1_000", "1000");
    check_expr("0xff", "255");
    check_expr("0b101", "5");
    check_expr("3.5", "3.5");
    check_expr("1e-3", "0.001");
    check_expr("2.5e10", "25000000000.0");
    check_expr("true", "true");
    check_expr("false", "false");
    check_expr("nil", "nil");
    check_expr("9223372036854775807", "9223372036854775807");
}

#[test]
fn i64_min_literal() {
    check_expr("-9223372036854775808", "-9223372036854775808");
    check_expr("-5", "(neg 5)");
    check_expr("1 - 9223372036854775807", "(- 1 9223372036854775807)");
    // A literal out of range stays in the tree for the checker, which
    // reports it with the file's other errors.
    check_expr("9223372036854775808", "<int out of range>");
    check_expr("-(9223372036854775808)", "(neg <int out of range>)");
    check_expr("-9223372036854775809", "(neg <int out of range>)");
    check_expr("0xffffffffffffffffff", "<int out of range>");
    check_expr("1e999", "inf");
    for src in [
        "let x = 99999999999999999999999999999999999999999999",
        "let x = -(9223372036854775808)",
        "let x = 1 + 0xffffffffffffffffff",
    ] {
        check_compile_error(src, codes::LITERAL, "does not fit in 64 bits");
    }
    check_compile_error("let x = 1e999", codes::LITERAL, "out of range");
    // With a syntax error in the file, the parser reports them itself.
    let errors = parse_err("let x = 99999999999999999999\nlet y = )\nlet z = 1e999");
    let literal = |text| {
        errors
            .iter()
            .any(|error| error.code == codes::LITERAL && error.message.contains(text))
    };
    assert!(
        literal("does not fit") && literal("float literal"),
        "{errors:#?}"
    );
}

// Regression: an integer literal too large for 64 bits hid every other
// error of the file (the parser failed, so the checker never ran).
#[test]
fn literal_out_of_range_is_reported_with_type_errors() {
    let errors = compile_alone(
        "let a = 99999999999999999999\nlet b: str = 1\nlet c: float = 1e999 + 1.0".to_string(),
    )
    .unwrap_err();
    let codes: Vec<&str> = errors.iter().map(|error| error.code).collect();
    assert_eq!(
        codes,
        [codes::LITERAL, codes::MISMATCH, codes::LITERAL],
        "{errors:#?}"
    );
}

#[test]
fn precedence() {
    check_expr("1 + 2 * 3", "(+ 1 (* 2 3))");
    check_expr("1 - 2 - 3", "(- (- 1 2) 3)");
    check_expr("a / b % c", "(% (/ a b) c)");
    check_expr("a || b && c", "(|| a (&& b c))");
    check_expr("a ?? b || c", "(?? a (|| b c))");
    check_expr("a ?? b ?? c", "(?? a (?? b c))");
    check_expr("a == b + 1", "(== a (+ b 1))");
    check_expr("a < b && c >= d", "(&& (< a b) (>= c d))");
    check_expr("-a * b", "(* (neg a) b)");
    check_expr("!a.b", "(not (field a b))");
    check_expr("-x!", "(neg (unwrap x))");
    check_expr("(1 + 2) * 3", "(* (+ 1 2) 3)");
    check_expr("await t + 1", "(+ (await t) 1)");
    check_expr("(await t).body", "(field (await t) body)");
    check_expr("a != b", "(!= a b)");
    check_expr("a <= b", "(<= a b)");
    check_expr("a > b", "(> a b)");
}

#[test]
fn comparisons_do_not_chain() {
    check_error("a < b < c", codes::SYNTAX, "found `<`");
    check_error("a == b == c", codes::SYNTAX, "found `==`");
}

#[test]
fn postfix_forms() {
    check_expr("f(a, b)", "(call f a b)");
    check_expr("f()", "(call f )");
    check_expr("f(a,)", "(call f a)");
    check_expr("a.b.c", "(field (field a b) c)");
    check_expr("a.f(x)", "(method a f x)");
    check_expr("a.b.f(x).g()", "(method (method (field a b) f x) g )");
    check_expr("(a.f)(x)", "(call (field a f) x)");
    check_expr("f(x)(y)", "(call (call f x) y)");
    check_expr("xs[0][1]", "(index (index xs 0) 1)");
    check_expr("m[\"k\"]!.x", "(field (unwrap (index m (str \"k\"))) x)");
    check_expr("Point(x: 1.0, y: 2.0)", "(call Point x: 1.0 y: 2.0)");
    check_expr("Shape.Rect(2.0, 3.0)", "(method Shape Rect 2.0 3.0)");
    check_expr("Shape.Empty", "(field Shape Empty)");
}

#[test]
fn lists_and_maps() {
    check_expr("[]", "[]");
    check_expr("[:]", "[map ]");
    check_expr("[1, 2, 3]", "[1 2 3]");
    check_expr("[1, 2,]", "[1 2]");
    check_expr(
        "[\"a\": 1, \"b\": 2]",
        "[map (str \"a\"): 1, (str \"b\"): 2]",
    );
    check_expr("[\"a\": 1,]", "[map (str \"a\"): 1]");
    check_expr("[[1], [2]]", "[[1] [2]]");
}

#[test]
fn lambdas() {
    check_expr("fn(x) => x * 2", "(fn (x) => (* x 2))");
    check_expr("fn(a: int, b) -> int => a", "(fn (a: int, b) -> int => a)");
    check_expr(
        "fn(x: int) -> int { return x }",
        "(fn (x: int) -> int {1 stmts})",
    );
    check_expr("fn() {}", "(fn () {0 stmts})");
    check_expr(
        "xs.map(fn(x) => x * 2)",
        "(method xs map (fn (x) => (* x 2)))",
    );
    check_expr("fn(x) => fn(y) => x + y", "(fn (x) => (fn (y) => (+ x y)))");
    check_expr("fn(x) => x ?? 1", "(fn (x) => (?? x 1))");
    check_expr("f(fn(x) => x, 2)", "(call f (fn (x) => x) 2)");
    check_expr("fn(x,) => x", "(fn (x) => x)");
}

#[test]
fn lambda_spans() {
    let src = "fn(x: int) -> int { return x }";
    let file = parse_ok(src);
    let Item::Stmt(Stmt {
        kind: StmtKind::Expr(expr),
        ..
    }) = &file.items[0]
    else {
        panic!()
    };
    let ExprKind::Lambda(lambda) = &expr.kind else {
        panic!()
    };
    assert_eq!(text(src, lambda.span), "fn(x: int) -> int");
    assert_eq!(text(src, expr.span), src);
}

#[test]
fn yield_spawn_and_await() {
    check_expr("yield", "(yield)");
    check_expr("yield x + 1", "(yield (+ x 1))");
    check_expr("yield sum / n", "(yield (/ sum n))");
    check_expr("f(yield)", "(call f (yield))");
    check_expr("[yield, 1]", "[(yield) 1]");
    check_expr("spawn f(x)", "(spawn (call f x))");
    check_expr("spawn f(x) ?? y", "(spawn (?? (call f x) y))");
    check_expr("yield fn(x) => x", "(yield (fn (x) => x))");
    check_expr(
        "fn(u) => spawn http_get(u)",
        "(fn (u) => (spawn (call http_get u)))",
    );
    check_expr("await await t", "(await (await t))");
    // `await` is a unary operator, and `spawn` (like `yield` and a
    // lambda) takes the whole expression to its right, also as the last
    // operand of another operator, as `return` does in Rust.
    check_expr("await spawn f(x)", "(await (spawn (call f x)))");
    check_expr("await spawn f(x) + 1", "(await (spawn (+ (call f x) 1)))");
    check_expr("1 + await spawn f(x)", "(+ 1 (await (spawn (call f x))))");
    check_expr("-await spawn f(x)", "(neg (await (spawn (call f x))))");
    check_expr("a && await spawn f(x)", "(&& a (await (spawn (call f x))))");
    check_expr("a ?? await spawn f(x)", "(?? a (await (spawn (call f x))))");
    check_expr("a * yield b + c", "(* a (yield (+ b c)))");
    check_expr("a == yield", "(== a (yield))");
    check_expr("x ?? fn(y) => y + 1", "(?? x (fn (y) => (+ y 1)))");
    check_expr("[await spawn f(), 2]", "[(await (spawn (call f ))) 2]");
    let all = stmts("let x = await spawn f(1)");
    let StmtKind::Let { value, .. } = &all[0].kind else {
        panic!()
    };
    assert_eq!(sexp(value), "(await (spawn (call f 1)))");
    let all = stmts("x = yield sum / n");
    let StmtKind::Assign { value, .. } = &all[0].kind else {
        panic!()
    };
    assert_eq!(sexp(value), "(yield (/ sum n))");
    let all = stmts("total += await t");
    let StmtKind::CompoundAssign { op, value, .. } = &all[0].kind else {
        panic!()
    };
    assert_eq!(*op, BinOp::Add);
    assert_eq!(sexp(value), "(await t)");
    parse_ok("fn f() {\n  yield\n}");
}

#[test]
fn strings_and_escapes() {
    check_expr(r#""text""#, r#"(str "text")"#);
    check_expr(r#""""#, r#"(str "")"#);
    check_expr(r#""a\n\t\r\\\"\$\0b""#, r#"(str "a\n\t\r\\\"$\0b")"#);
    check_expr(r#""\u{1F600}""#, "(str \"\u{1F600}\")");
    check_expr(r#""$5 and $x""#, r#"(str "$5 and $x")"#);
    check_expr(r#""é ü""#, r#"(str "é ü")"#);
}

#[test]
fn interpolation() {
    check_expr(r#""sum = ${a + b}""#, r#"(str "sum = " ${(+ a b)})"#);
    check_expr(r#""${x}""#, "(str ${x})");
    check_expr(r#""${a}${b}c""#, r#"(str ${a} ${b} "c")"#);
    check_expr(r#""${f("x", [1])}""#, r#"(str ${(call f (str "x") [1])})"#);
    check_expr(r#""${m["k"]}""#, r#"(str ${(index m (str "k"))})"#);
    check_expr(
        r#""a${"b${c}d"}e""#,
        r#"(str "a" ${(str "b" ${c} "d")} "e")"#,
    );
    check_expr(
        r#""${xs.map(fn(x) { return x })}""#,
        "(str ${(method xs map (fn (x) {1 stmts}))})",
    );
    check_expr("\"${f(\n1,\n2)}\"", "(str ${(call f 1 2)})");
}

#[test]
fn interpolation_spans_are_absolute() {
    let src = "let s = 1\nprint(\"x = ${a + b} and ${\"q${c}\"}\")";
    let file = parse_ok(src);
    let Item::Stmt(Stmt {
        kind: StmtKind::Expr(call),
        ..
    }) = &file.items[1]
    else {
        panic!()
    };
    let ExprKind::Call(_, args) = &call.kind else {
        panic!()
    };
    let ExprKind::Str(parts) = &args[0].value.kind else {
        panic!()
    };
    let StrPart::Expr(sum) = &parts[1] else {
        panic!()
    };
    assert_eq!(text(src, sum.span), "a + b");
    let ExprKind::Binary(_, lhs, rhs) = &sum.kind else {
        panic!()
    };
    assert_eq!(text(src, lhs.span), "a");
    assert_eq!(text(src, rhs.span), "b");
    let StrPart::Expr(inner) = &parts[3] else {
        panic!()
    };
    assert_eq!(text(src, inner.span), "\"q${c}\"");
    let ExprKind::Str(inner_parts) = &inner.kind else {
        panic!()
    };
    let StrPart::Expr(c) = &inner_parts[1] else {
        panic!()
    };
    assert_eq!(text(src, c.span), "c");
    assert_eq!(
        text(src, args[0].value.span),
        "\"x = ${a + b} and ${\"q${c}\"}\""
    );
}

#[test]
fn string_errors() {
    let src = r#"let s = "a\qb""#;
    let error = check_error(src, codes::LEX, "unknown escape");
    assert_eq!(text(src, error.span), r"\q");
    let src = r#"let s = "\u{110000}""#;
    let error = check_error(src, codes::LEX, "invalid unicode");
    assert_eq!(text(src, error.span), r"\u{110000}");
    let src = r#"let s = "\u{12""#;
    check_error(src, codes::LEX, "unterminated `\\u");
    check_error(r#"let s = "\u12""#, codes::LEX, "`\\u` must be followed");
    let src = "let s = \"abc\nlet t = 1";
    let error = check_error(src, codes::LEX, "unterminated string");
    assert_eq!(text(src, error.span), "\"abc");
    check_error("let s = \"abc", codes::LEX, "unterminated string");
    check_error("let s = \"${a", codes::LEX, "unterminated string");
    check_error("let s = \"\\", codes::LEX, "unterminated string");
    // Two bad escapes in one file are both reported.
    let errors = parse_err(r#"let s = "\q\w""#);
    assert_eq!(
        errors
            .iter()
            .filter(|error| error.message.contains("unknown escape"))
            .count(),
        2
    );
}

#[test]
fn match_expressions() {
    let src = "let area = match s {\n  Circle(r) => 3.14159 * r * r,          // comment\n  Rect(w, h) => w * h,\n  Empty => 0.0,\n}";
    let all = stmts(src);
    let StmtKind::Let { value, .. } = &all[0].kind else {
        panic!()
    };
    let ExprKind::Match(scrutinee, arms) = &value.kind else {
        panic!()
    };
    assert_eq!(sexp(scrutinee), "s");
    assert_eq!(arms.len(), 3);
    assert_eq!(sexp(&arms[0].body), "(* (* 3.14159 r) r)");
    assert_eq!(text(src, arms[1].span), "Rect(w, h) => w * h");
    let PatternKind::Variant {
        enum_name: None,
        variant,
        args,
    } = &arms[0].patterns[0].kind
    else {
        panic!()
    };
    assert_eq!(variant.name, "Circle");
    assert!(matches!(args[0].kind, PatternKind::Name(_)));

    let src = r#"match n { 0 => print("zero"), 1 | 2 => print("small"), _ => { print("big") } }"#;
    let all = stmts(src);
    let StmtKind::Expr(Expr {
        kind: ExprKind::Match(_, arms),
        ..
    }) = &all[0].kind
    else {
        panic!()
    };
    assert_eq!(arms.len(), 3);
    assert_eq!(arms[1].patterns.len(), 2);
    assert!(matches!(arms[2].patterns[0].kind, PatternKind::Wildcard));
    assert!(matches!(arms[2].body.kind, ExprKind::Block(_)));
}

#[test]
fn match_arms_separated_by_newlines() {
    let src = "match x {\n  A => 1\n  B => {\n    f()\n  }\n  C => 3\n}";
    let all = stmts(src);
    let StmtKind::Expr(Expr {
        kind: ExprKind::Match(_, arms),
        ..
    }) = &all[0].kind
    else {
        panic!()
    };
    assert_eq!(arms.len(), 3);
}

#[test]
fn patterns() {
    let src = r#"match v { -1 => 0, 2.5 => 0, -2.5 => 0, "s" => 0, "" => 0, true => 0, false => 0, nil => 0, x => 0, Shape.Circle(r) => 0, Shape.Empty => 0, Some(Box(_), 3) => 0, -9223372036854775808 => 0 }"#;
    let all = stmts(src);
    let StmtKind::Expr(Expr {
        kind: ExprKind::Match(_, arms),
        ..
    }) = &all[0].kind
    else {
        panic!()
    };
    let kinds: Vec<&PatternKind> = arms.iter().map(|arm| &arm.patterns[0].kind).collect();
    assert!(matches!(kinds[0], PatternKind::Lit(LitPattern::Int(-1))));
    assert!(matches!(kinds[1], PatternKind::Lit(LitPattern::Float(value)) if *value == 2.5));
    assert!(matches!(kinds[2], PatternKind::Lit(LitPattern::Float(value)) if *value == -2.5));
    assert!(matches!(kinds[3], PatternKind::Lit(LitPattern::Str(text)) if text == "s"));
    assert!(matches!(kinds[4], PatternKind::Lit(LitPattern::Str(text)) if text.is_empty()));
    assert!(matches!(kinds[5], PatternKind::Lit(LitPattern::Bool(true))));
    assert!(matches!(
        kinds[6],
        PatternKind::Lit(LitPattern::Bool(false))
    ));
    assert!(matches!(kinds[7], PatternKind::Nil));
    assert!(matches!(kinds[8], PatternKind::Name(name) if name.name == "x"));
    assert!(
        matches!(kinds[9], PatternKind::Variant { enum_name: Some(e), variant, args } if e.name == "Shape" && variant.name == "Circle" && args.len() == 1)
    );
    assert!(
        matches!(kinds[10], PatternKind::Variant { enum_name: Some(_), args, .. } if args.is_empty())
    );
    assert!(
        matches!(kinds[11], PatternKind::Variant { enum_name: None, args, .. } if args.len() == 2)
    );
    assert!(matches!(
        kinds[12],
        PatternKind::Lit(LitPattern::Int(i64::MIN))
    ));
    check_error(r#"match v { "a${b}" => 0 }"#, codes::SYNTAX, "found `${`");
    check_error(
        "match v { 9223372036854775808 => 0 }",
        codes::LITERAL,
        "does not fit",
    );
}

// ---------------------------------------------------------------- statements

#[test]
fn let_and_assignment() {
    let all = stmts("let x = 1\nlet y: [int] = []\nx = 2\nxs[0] = 3\np.x = 3.0\nx += 2; x -= 1; x *= 2; x /= 2; x %= 2");
    assert_eq!(all.len(), 10);
    assert!(matches!(&all[0].kind, StmtKind::Let { name, ty: None, .. } if name.name == "x"));
    assert!(matches!(&all[1].kind, StmtKind::Let { ty: Some(_), .. }));
    assert!(
        matches!(&all[3].kind, StmtKind::Assign { target, .. } if sexp(target) == "(index xs 0)")
    );
    assert!(
        matches!(&all[4].kind, StmtKind::Assign { target, .. } if sexp(target) == "(field p x)")
    );
    let ops: Vec<BinOp> = all[5..]
        .iter()
        .map(|stmt| match &stmt.kind {
            StmtKind::CompoundAssign { op, .. } => *op,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ops,
        [BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div, BinOp::Rem]
    );
}

#[test]
fn control_flow() {
    let src = "if x > 2 { a() } else if x == 0 { b() } else { c() }\nwhile cond { break; continue }\nreturn\nreturn 1";
    let all = stmts(src);
    let StmtKind::If {
        cond,
        then,
        els: Some(els),
    } = &all[0].kind
    else {
        panic!()
    };
    assert_eq!(sexp(cond), "(> x 2)");
    assert_eq!(then.stmts.len(), 1);
    let StmtKind::If {
        els: Some(last), ..
    } = &els.stmts[0].kind
    else {
        panic!()
    };
    assert_eq!(last.stmts.len(), 1);
    let StmtKind::While { body, .. } = &all[1].kind else {
        panic!()
    };
    assert!(matches!(body.stmts[0].kind, StmtKind::Break));
    assert!(matches!(body.stmts[1].kind, StmtKind::Continue));
    assert!(matches!(all[2].kind, StmtKind::Return(None)));
    assert!(matches!(all[3].kind, StmtKind::Return(Some(_))));

    let all = stmts("if let v = m.get(k) { print(v) } else { print(0) }");
    assert!(matches!(&all[0].kind, StmtKind::IfLet { name, els: Some(_), .. } if name.name == "v"));
}

#[test]
fn else_and_catch_on_the_next_line() {
    let all = stmts("if a {\n  x()\n}\nelse {\n  y()\n}\ntry {\n  f()\n}\ncatch e {\n  g()\n}");
    assert_eq!(all.len(), 2);
    assert!(matches!(&all[0].kind, StmtKind::If { els: Some(_), .. }));
    assert!(matches!(&all[1].kind, StmtKind::Try { binding, .. } if binding.name == "e"));
    let all = stmts("if a {\n}\n\n// comment\nelse if b {\n}\nelse {\n}");
    assert_eq!(all.len(), 1);
}

#[test]
fn for_loops() {
    let cases = [
        ("for i in 0..10 { }", "i", None, "0..10"),
        ("for i in 0..=10 { }", "i", None, "0..=10"),
        ("for x in xs { }", "x", None, "xs"),
        ("for i, x in xs { }", "i", Some("x"), "xs"),
        ("for k, v in m { }", "k", Some("v"), "m"),
        ("for i in 1..n + 1 { s += i }", "i", None, "1..(+ n 1)"),
    ];
    for (src, first_name, second_name, iter_text) in cases {
        let all = stmts(src);
        let StmtKind::For {
            first,
            second,
            iter,
            ..
        } = &all[0].kind
        else {
            panic!()
        };
        assert_eq!(first.name, first_name);
        assert_eq!(second.as_ref().map(|name| name.name.as_str()), second_name);
        let rendered = match iter {
            ForIter::Range { lo, hi, inclusive } => {
                format!(
                    "{}{}{}",
                    sexp(lo),
                    if *inclusive { "..=" } else { ".." },
                    sexp(hi)
                )
            }
            ForIter::Expr(iter) => sexp(iter),
        };
        assert_eq!(rendered, iter_text, "{src}");
    }
    check_error("let r = 0..10", codes::SYNTAX, "found `..`");
}

#[test]
fn defer_throw_try() {
    let all = stmts("defer close(f)\ndefer { a(); b() }\ndefer x = 1\nthrow Error(kind: \"Invalid\", message: \"bad\")");
    let StmtKind::Defer(inner) = &all[0].kind else {
        panic!()
    };
    assert!(matches!(inner.kind, StmtKind::Expr(_)));
    let StmtKind::Defer(inner) = &all[1].kind else {
        panic!()
    };
    assert!(matches!(&inner.kind, StmtKind::Block(block) if block.stmts.len() == 2));
    assert!(
        matches!(&all[2].kind, StmtKind::Defer(inner) if matches!(inner.kind, StmtKind::Assign { .. }))
    );
    assert!(matches!(all[3].kind, StmtKind::Throw(_)));
    check_error("defer defer f()", codes::SYNTAX, "found `defer`");
}

#[test]
fn semicolons_and_newlines() {
    assert_eq!(stmts("a(); b()\nc()").len(), 3);
    assert_eq!(stmts("\n\n\na()\n\n\nb()\n\n").len(), 2);
    assert_eq!(stmts("a();;b();").len(), 2);
    // A line ending in an operator or `,` continues.
    check_expr("a +\n  b", "(+ a b)");
    check_expr("a &&\n b", "(&& a b)");
    // Newlines inside `(` and `[` are ignored.
    check_expr("f(\n  a,\n  b\n)", "(call f a b)");
    check_expr("[\n  1,\n  2\n]", "[1 2]");
    check_expr("[\n  \"a\": 1\n]", "[map (str \"a\"): 1]");
    // Inside `{` in a call the rule applies again.
    check_expr(
        "xs.map(fn(x) {\n  let y = x\n  return y\n})",
        "(method xs map (fn (x) {2 stmts}))",
    );
    // `;` may be left out before `}`.
    let all = stmts("for i in 0..n { s += i }");
    let StmtKind::For { body, .. } = &all[0].kind else {
        panic!()
    };
    assert_eq!(body.stmts.len(), 1);
    // A newline after `)` ends the statement, so the next line is not a call.
    assert_eq!(stmts("f\n(a)").len(), 2);
    // Block comments spanning lines count as a newline; others do not.
    assert_eq!(stmts("a() /* x\n y */ b()").len(), 2);
    check_expr("a + /* inline */ b", "(+ a b)");
    check_expr("a /* /* nested */ still comment */ + b", "(+ a b)");
    // `x!` and `T?` can end a line.
    assert_eq!(stmts("let a = x!\nlet b = 1").len(), 2);
    assert_eq!(stmts("let a: int? = nil\nlet b = 1").len(), 2);
    assert_eq!(stmts("a()\r\nb()\r\n").len(), 2);
}

#[test]
fn missing_separator_is_an_error() {
    check_error("a() b()", codes::SYNTAX, "found identifier `b`");
}

// ---------------------------------------------------------------- declarations

#[test]
fn imports_and_contextual_keywords() {
    let src = "import \"steps/billing.spl\"\nimport \"lib/net.spl\" as net\nlet as = 1\nlet import = as\nlet r: net.Response = x";
    let file = parse_ok(src);
    assert_eq!(file.items.len(), 5);
    let Item::Import(plain) = &file.items[0] else {
        panic!()
    };
    assert_eq!(plain.path, "steps/billing.spl");
    assert_eq!(text(src, plain.path_span), "\"steps/billing.spl\"");
    assert!(plain.alias.is_none());
    let Item::Import(named) = &file.items[1] else {
        panic!()
    };
    assert_eq!(named.alias.as_ref().map(|a| a.name.as_str()), Some("net"));
    assert_eq!(ty("net.Response?"), "opt(net.Response)");
    check_error(
        "include \"x.spl\"",
        codes::SYNTAX,
        "unexpected string literal",
    );
    check_error(
        "import \"x.spl\" named y",
        codes::SYNTAX,
        "unexpected `named`",
    );
}

#[test]
fn declarations() {
    let src = "fn add(a: int, b: int) -> int { return a + b }\nfn first<T,>(xs: [T],) -> T? {\n  return nil\n}\nstruct Point { x: float, y: float }\nstruct Box<T> {\n  value: T\n  other: Box<Box<int>>\n  third: int?,\n}\nenum Shape { Circle(float), Rect(float, float), Empty }\nenum Json {\n  Null\n  Num(float)\n  Arr([Json]),\n}\nlet p = Point(x: 1.0, y: 2.0)";
    let file = parse_ok(src);
    assert_eq!(file.items.len(), 7);
    let Item::Fn(add) = &file.items[0] else {
        panic!()
    };
    assert_eq!(add.name.name, "add");
    assert_eq!(add.params.len(), 2);
    assert_eq!(text(src, add.span), "fn add(a: int, b: int) -> int");
    assert!(add.body.is_some());
    let Item::Fn(first) = &file.items[1] else {
        panic!()
    };
    assert_eq!(first.generics.len(), 1);
    assert_eq!(type_sexp(first.ret.as_ref().unwrap()), "opt(T)");
    let Item::Struct(boxed) = &file.items[3] else {
        panic!()
    };
    assert_eq!(boxed.fields.len(), 3);
    assert_eq!(type_sexp(&boxed.fields[1].ty), "Box<Box<int>>");
    let Item::Enum(shape) = &file.items[4] else {
        panic!()
    };
    assert_eq!(shape.variants.len(), 3);
    assert_eq!(shape.variants[1].fields.len(), 2);
    assert!(shape.variants[2].fields.is_empty());
    let Item::Enum(json) = &file.items[5] else {
        panic!()
    };
    assert_eq!(json.variants.len(), 3);
    assert!(matches!(file.items[6], Item::Stmt(_)));
}

#[test]
fn nested_functions() {
    let file = parse_ok("fn outer() {\n  fn inner(n: int) -> int { return n }\n  inner(1)\n}");
    let Item::Fn(outer) = &file.items[0] else {
        panic!()
    };
    let body = outer.body.as_ref().unwrap();
    assert!(matches!(&body.stmts[0].kind, StmtKind::Fn(inner) if inner.name.name == "inner"));
}

#[test]
fn types() {
    assert_eq!(ty("int"), "int");
    assert_eq!(ty("Box<int>"), "Box<int>");
    assert_eq!(ty("Coro<int, str>"), "Coro<int, str>");
    assert_eq!(ty("Box<Box<int>>"), "Box<Box<int>>");
    assert_eq!(ty("[T]"), "[T]");
    assert_eq!(ty("[str: [int]]"), "[str: [int]]");
    assert_eq!(ty("int?"), "opt(int)");
    assert_eq!(ty("nil"), "nil");
    assert_eq!(ty("(int)"), "int");
    assert_eq!(ty("fn(A, B) -> R"), "<fn(A, B) -> R>");
    assert_eq!(ty("fn() -> int?"), "<fn() -> opt(int)>");
    assert_eq!(ty("(fn() -> int)?"), "opt(<fn() -> int>)");
    assert_eq!(
        ty("fn(int) -> nil yields int"),
        "<fn(int) -> nil yields int>"
    );
    assert_eq!(
        ty("fn() yields int receives str"),
        "<fn() yields int receives str>"
    );
    assert_eq!(ty("fn() receives str"), "<fn() receives str>");
    assert_eq!(
        ty("fn() -> fn() -> int yields str"),
        "<fn() -> <fn() -> int yields str>>"
    );
    assert_eq!(
        ty("fn() -> (fn() -> int) yields str"),
        "<fn() -> <fn() -> int> yields str>"
    );
    assert_eq!(
        ty("fn() yields fn() receives int"),
        "<fn() yields <fn() receives int>>"
    );
    assert_eq!(ty("[fn(int) -> int]"), "[<fn(int) -> int>]");
    assert_eq!(
        ty("fn(fn(int) -> int,) -> [int]?"),
        "<fn(<fn(int) -> int>) -> opt([int])>"
    );
}

#[test]
fn native_signatures() {
    let decl = parse_native_sig("fn len<T>(xs: [T]) -> int").unwrap();
    assert_eq!(decl.name.name, "len");
    assert_eq!(decl.generics[0].name, "T");
    assert!(decl.body.is_none());
    assert_eq!(type_sexp(decl.ret.as_ref().unwrap()), "int");
    let decl = parse_native_sig("fn print(v: any)").unwrap();
    assert!(decl.ret.is_none());
    assert_eq!(decl.span, Span::new(0, 16));
    assert!(parse_native_sig("fn print(v: any) { }").is_err());
    assert!(parse_native_sig("let x = 1").is_err());
    assert!(parse_native_sig("").is_err());
}

// ---------------------------------------------------------------- ids and spans

#[test]
fn expr_ids_are_dense() {
    let file = parse(r#"let x = f(1 + 2, "a${b}")"#, 10).unwrap();
    // f, 1, 2, 1 + 2, b, the string, the call.
    assert_eq!(file.expr_count, 17);
    let mut ids = Vec::new();
    collect_ids(&file, &mut ids);
    ids.sort();
    assert_eq!(ids, (10..17).map(ExprId).collect::<Vec<_>>());
    let empty = parse("", 5).unwrap();
    assert_eq!(empty.expr_count, 5);
    assert!(empty.items.is_empty());
}

/// Every ExprId in a file of `let`s (enough for the test above).
fn collect_ids(file: &File, ids: &mut Vec<ExprId>) {
    fn walk(expr: &Expr, ids: &mut Vec<ExprId>) {
        ids.push(expr.id);
        match &expr.kind {
            ExprKind::Call(callee, args) => {
                walk(callee, ids);
                args.iter().for_each(|arg| walk(&arg.value, ids));
            }
            ExprKind::Binary(_, lhs, rhs) => {
                walk(lhs, ids);
                walk(rhs, ids);
            }
            ExprKind::Str(parts) => parts.iter().for_each(|part| {
                if let StrPart::Expr(expr) = part {
                    walk(expr, ids)
                }
            }),
            _ => {}
        }
    }
    for item in &file.items {
        if let Item::Stmt(Stmt {
            kind: StmtKind::Let { value, .. },
            ..
        }) = item
        {
            walk(value, ids);
        }
    }
}

#[test]
fn spans() {
    let src = "let total = a.b(c) + xs[1]!\nwhile x { y = 1 }";
    let all = stmts(src);
    assert_eq!(text(src, all[0].span), "let total = a.b(c) + xs[1]!");
    let StmtKind::Let { name, value, .. } = &all[0].kind else {
        panic!()
    };
    assert_eq!(text(src, name.span), "total");
    let ExprKind::Binary(_, lhs, rhs) = &value.kind else {
        panic!()
    };
    assert_eq!(text(src, lhs.span), "a.b(c)");
    assert_eq!(text(src, rhs.span), "xs[1]!");
    assert_eq!(text(src, all[1].span), "while x { y = 1 }");
    let StmtKind::While { body, .. } = &all[1].kind else {
        panic!()
    };
    assert_eq!(text(src, body.span), "{ y = 1 }");
    assert_eq!(text(src, body.stmts[0].span), "y = 1");
    let src = "let x: [str: int?] = [:]";
    let StmtKind::Let { ty: Some(ty), .. } = &stmts(src)[0].kind else {
        panic!()
    };
    assert_eq!(text(src, ty.span), "[str: int?]");
    let TypeExprKind::Map(_, value) = &ty.kind else {
        panic!()
    };
    assert_eq!(text(src, value.span), "int?");
}

// ---------------------------------------------------------------- errors

#[test]
fn syntax_error_messages() {
    let src = "f(a, b}";
    let error = check_error(src, codes::SYNTAX, "found `}`");
    assert_eq!(text(src, error.span), "}");
    assert!(error.message.contains("`)`"), "{}", error.message);
    check_error("let = 1", codes::SYNTAX, "expected identifier");
    check_error("let x = ", codes::SYNTAX, "unexpected end of input");
    check_error("if x {", codes::SYNTAX, "unexpected end of input");
    check_error("f(1,\n2", codes::SYNTAX, "unexpected end of input");
    check_error("let x = 1 +\n", codes::SYNTAX, "unexpected end of input");
    check_error("let x = )", codes::SYNTAX, "expected expression");
    check_error("let x = 1\nlet y = ]", codes::SYNTAX, "found `]`");
    check_error("x = 1 +\n\n)", codes::SYNTAX, "found `)`");
    check_error("let x = f(\n", codes::SYNTAX, "unexpected end of input");
    check_error("struct { }", codes::SYNTAX, "expected identifier");
}

#[test]
fn several_errors_are_reported() {
    let errors = parse_err("let x = )\nlet y = 1\nlet z = ]\nfn f() {\n  let a = +\n  ok()\n}\n");
    let syntax: Vec<&Diagnostic> = errors
        .iter()
        .filter(|error| error.code == codes::SYNTAX)
        .collect();
    assert_eq!(syntax.len(), 3, "{errors:#?}");
    let errors = parse_err("let a = 1 @ 2\nlet b = \"\\q\"\nlet c = 99999999999999999999");
    // (The literal is reported here because the file does not parse.)
    assert!(errors
        .iter()
        .any(|error| error.code == codes::LEX && error.message.contains('@')));
    assert!(errors
        .iter()
        .any(|error| error.code == codes::LEX && error.message.contains("escape")));
    assert!(errors.iter().any(|error| error.code == codes::LITERAL));
}

#[test]
fn lexical_errors() {
    let src = "let x = 1 # 2";
    let error = check_error(src, codes::LEX, "unexpected character");
    assert_eq!(text(src, error.span), "#");
    let src = "let x = é";
    let error = check_error(src, codes::LEX, "unexpected character");
    assert_eq!(text(src, error.span), "é");
    let error = check_error(
        "a()\n/* open /* nested */ still open",
        codes::LEX,
        "unterminated block comment",
    );
    assert!(error.message.starts_with("unexpected end of input"));
    check_expr("a /* a */ /* b */", "a");
}

#[test]
fn invalid_utf8() {
    let errors = parse_bytes(b"let x = \"ok\"\nlet y = \"\xff\xfe\"", 0).unwrap_err();
    assert_eq!(errors[0].code, codes::LEX);
    assert_eq!(errors[0].span.start, 22);
    let errors = parse_bytes(b"\xc3", 0).unwrap_err();
    assert_eq!(errors[0].span, Span::new(0, 1));
    assert_eq!(parse_bytes(b"let x = 1", 3).unwrap().expr_count, 4);
}

#[test]
fn deep_nesting_is_rejected() {
    let cases = [
        "(".repeat(10_000) + &")".repeat(10_000),
        "[".repeat(10_000) + &"]".repeat(10_000),
        "{".repeat(10_000) + &"}".repeat(10_000),
        "fn f() ".to_string() + &"{ if x ".repeat(5_000) + &"}".repeat(5_000),
        "let s = ".to_string() + &"\"${".repeat(5_000),
        "let x = ".to_string() + &"f(".repeat(10_000),
    ];
    for src in &cases {
        let errors = parse(src, 0).unwrap_err();
        assert!(
            errors.iter().any(|error| error.code == codes::TOO_DEEP),
            "{:?}",
            &src[..20]
        );
    }
}

#[test]
fn deep_chains_are_rejected_without_overflow() {
    let neg = "let x = ".to_string() + &"-".repeat(100_000) + "1";
    let not = "let x = ".to_string() + &"!".repeat(100_000) + "a";
    let unwrap = "let x = a".to_string() + &"!".repeat(100_000);
    let fields = "let x = a".to_string() + &".b".repeat(100_000);
    let calls = "let x = f".to_string() + &"()".repeat(100_000);
    let lambdas = "let x = ".to_string() + &"fn(x) => ".repeat(20_000) + "1";
    let yields = "let x = ".to_string() + &"yield ".repeat(100_000);
    let coalesce = "let x = a".to_string() + &" ?? a".repeat(100_000);
    let optional_types = "let x: ".to_string() + &"fn() -> ".repeat(20_000) + "int = nil";
    let generic_types =
        "let x: ".to_string() + &"Box<".repeat(20_000) + "int" + &">".repeat(20_000) + " = nil";
    let else_ifs = "if a { }".to_string() + &" else if a { }".repeat(20_000);
    for src in [
        neg,
        not,
        unwrap,
        fields,
        calls,
        lambdas,
        yields,
        coalesce,
        optional_types,
        generic_types,
        else_ifs,
    ] {
        let errors = parse(&src, 0).unwrap_err();
        assert!(
            errors.iter().any(|error| error.code == codes::TOO_DEEP),
            "{}",
            &src[..30]
        );
    }
    // Just under the limits is fine, also inside lambdas, whose depth is
    // measured through their statements.
    parse_ok(&("let x = ".to_string() + &"-".repeat(990) + "1"));
    parse_ok(&("let f = fn() { if a { }".to_string() + &" else if a { }".repeat(990) + " }"));
    parse_ok(&("let f = fn() { ".to_string() + &"if a { ".repeat(250) + &"}".repeat(250) + " }"));
    let nested = "let f = ".to_string() + &"fn() { return ".repeat(120) + "1" + &" }".repeat(120);
    parse_ok(&nested);
    // A lambda adds one level to the expressions in its body.
    let deep_body = "let f = fn() { return ".to_string() + &"-".repeat(999) + "1 }";
    check_error(&deep_body, codes::TOO_DEEP, "nested more than");
}

/// Runs `body` on a thread with the stack the `spool` crate gives the
/// front end (256 MiB): passes over a tree, and dropping it, recurse along
/// a chain of operators.
fn on_front_end_stack<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(body)
        .expect("a thread")
        .join()
        .expect("no panic")
}

/// `first op operand op operand ...` with `terms` terms, over lines of 40
/// as generated code writes it (a line ending in an operator continues).
fn chain(first: &str, op: &str, operand: &str, terms: usize) -> String {
    let mut text = first.to_string();
    for index in 1..terms {
        let line_break = if index % 40 == 0 { "\n" } else { " " };
        text.push_str(&format!(" {op}{line_break}{operand}"));
    }
    text
}

/// Parses a long source, failing with its first errors (not its text).
#[track_caller]
fn parse_long(src: &str) -> File {
    match parse(src, 0) {
        Ok(file) => file,
        Err(errors) => panic!(
            "{:?}... failed to parse: {:#?}",
            &src[..src.len().min(60)],
            &errors[..errors.len().min(3)]
        ),
    }
}

// Regression: a sum of more than a thousand terms (as generated code
// writes them) was refused as "expression nested more than 1000 levels
// deep", though only brackets and prefix operators nest.
#[test]
fn long_operator_chains_are_not_nesting() {
    on_front_end_stack(|| {
        let sources = [
            format!("let x = {}", chain("1", "+", "1", 100_000)),
            format!("let x = {}", chain("a", "&&", "a", 100_000)),
            format!("let x = {}", chain("a", "||", "b && c", 50_000)),
            format!("let s = {}", chain("\"a\"", "+", "\"b\"", 100_000)),
            format!("let x = {}", chain("a", "*", "2 + b - c / 3 % 4", 30_000)),
            format!("let x = f({})", chain("1", "+", "1", 100_000)),
            format!("let x = [{}]", chain("1", "+", "1", 100_000)),
            format!("let x = -({}) < 0", chain("1", "+", "1", 100_000)),
        ];
        for src in &sources {
            parse_long(src);
        }
        // The shape is kept: a left-leaning tree, the last term on top.
        check_expr(&chain("a", "-", "b", 5), "(- (- (- (- a b) b) b) b)");
        // Real nesting is still bounded: an operand's own depth counts, and
        // so does a chain inside brackets, prefix operators or a call.
        let deep_operand = "let x = 1 + ".to_string() + &"-".repeat(1_000) + "1";
        check_error(&deep_operand, codes::TOO_DEEP, "nested more than");
        let right_nested = "let x = a".to_string() + &" ?? a".repeat(1_000);
        check_error(&right_nested, codes::TOO_DEEP, "nested more than");
        // A chain is bounded too, far beyond what anyone writes: passes
        // other than the code generator still recurse along it.
        let limit = spool_lang::parser::MAX_CHAIN as usize;
        let too_long = format!("let x = {}", chain("1", "+", "1", limit + 2));
        let errors = parse(&too_long, 0).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].code, codes::TOO_DEEP);
        assert!(errors[0].message.contains("operators in one chain"));
        parse_long(&format!("let x = {}", chain("1", "+", "1", limit + 1)));
    });
}

/// Compiles `script` with no library, on the front end's stack.
fn compile_alone(script: String) -> Result<(), Vec<Diagnostic>> {
    on_front_end_stack(move || {
        let prelude = parse("", 0).expect("an empty prelude");
        let file = parse(&script, prelude.expr_count)?;
        let prelude = spool_lang::SourceFile {
            name: "prelude",
            text: "",
            ast: &prelude,
        };
        let script = spool_lang::SourceFile {
            name: "chain.spl",
            text: &script,
            ast: &file,
        };
        spool_lang::compile(prelude, script, &[]).map(|_| ())
    })
}

#[test]
fn long_operator_chains_compile() {
    let terms = 100_000;
    let script = [
        format!("fn sum(a: int) -> int {{\n  return {}\n}}", chain("a", "+", "a", terms)),
        format!("fn all(a: bool) -> bool {{\n  return {}\n}}", chain("a", "&&", "a", terms)),
        format!("fn any(a: bool) -> bool {{\n  return {}\n}}", chain("a", "||", "a && !a", terms)),
        format!("fn text(s: str) -> str {{\n  return {}\n}}", chain("s", "+", "s", terms)),
        format!(
            "fn mixed(a: int, b: float) -> bool {{\n  return {} > 0.5\n}}",
            chain("b", "*", "2.0 + to_float(a) - b / 3.0", terms / 4)
        ),
        format!(
            "fn assign(a: int) -> int {{\n  let x = 1\n  x = {}\n  x += {}\n  return x\n}}",
            chain("x", "+", "a", terms),
            chain("x", "-", "a", terms)
        ),
        format!(
            "fn test(a: int) {{\n  if {} {{\n    print(a)\n  }}\n  while {} {{\n    break\n  }}\n}}",
            chain("a > 0", "&&", "a < 10", terms),
            chain("a != 1", "&&", "a != 2", terms)
        ),
        format!("let t = {} == 3", chain("1", "+", "2 - 3 * 4 % 5", terms / 4)),
        "fn print(x: int) { }\nfn to_float(x: int) -> float {\n  return 1.0\n}".to_string(),
    ]
    .join("\n");
    if let Err(errors) = compile_alone(script) {
        panic!("{:#?}", &errors[..errors.len().min(3)]);
    }
    // Type errors inside a chain are still found, once each.
    let wrong = format!("let x = {} + \"s\"", chain("1", "+", "1", terms));
    let errors = compile_alone(wrong).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].message.contains("`+`"), "{errors:#?}");
}

#[test]
fn odd_but_valid_strings() {
    check_expr(r#""${a /* } */}""#, "(str ${a})");
    check_expr(r#""${"}"}""#, r#"(str ${(str "}")})"#);
    check_expr(
        r#""${ {a} }""#.replace("{a}", "[a]").as_str(),
        "(str ${[a]})",
    );
    check_expr(r#""a" + "b""#, r#"(+ (str "a") (str "b"))"#);
    check_expr(r#""$""#, r#"(str "$")"#);
    check_expr(r#""$${x}""#, r#"(str "$" ${x})"#);
}

#[test]
fn huge_first_expr_id_does_not_panic() {
    let file = parse("let x = 1 + 2", u32::MAX - 1).unwrap();
    assert_eq!(file.expr_count, u32::MAX);
}

// ---------------------------------------------------------------- a whole script

/// A script using every construct; also the seed corpus for the stress test.
const SCRIPT: &str = r#"// A tour of the syntax.
struct Point { x: float, y: float }
struct Box<T> { value: T }
enum Shape { Circle(float), Rect(float, float), Empty }

fn area(s: Shape) -> float {
  return match s {
    Circle(r) => 3.14159 * r * r,
    Shape.Rect(w, h) => w * h,
    Empty => 0.0,
  }
}

fn count(n: int) {
  for i in 0..n { yield i }
}

fn first<T>(xs: [T]) -> T? {
  if xs.len() == 0 { return nil }
  return xs[0]
}

fn fetch_all(urls: [str]) -> [str] {
  let tasks = urls.map(fn(u) => spawn http_get(u))
  return tasks.map(fn(t) => (await t).body)
}

let p = Point(x: 1.0, y: 2.0)
p.x = 3.0
let b = Box(value: "hi")
let s = Shape.Rect(2.0, 3.0)
let m: [str: int] = ["a": 1, "b": 2]
let empty: [str: int] = [:]
let xs: [int] = []
var_total := 0
let total = 0
for k, v in m { total += v }
for i, x in [10, 20] { print("${i}: ${x}") }
for i in 1..=3 {
  total *= i
}
let c = coroutine(fn() { count(3) })
while c.next() { print(c.recv()) }
let f: fn(int) -> nil yields int = fn(x: int) { yield x }
let g: (fn() -> int)? = nil
if let h = g { print(h()) } else { print("none") }
try {
  let data = read_file("missing.txt")
  defer print("done")
  throw Error(kind: "Invalid", message: "bad input")
}
catch e {
  print("failed: ${e.kind}: ${e.message}")
}
let opt = first([1, 2]) ?? -1
let n = opt!
let label = match n { 0 => "zero", 1 | 2 => "small", _ => { "big" } }
let x = -9223372036854775808
print("sum = ${x + 1} ${"nested ${[1, 2].len()}"}\u{1F600}")
"#;

#[test]
fn whole_script_reports_only_the_deliberate_error() {
    // `var_total := 0` is not Spool; everything else is.
    let errors = parse_err(SCRIPT);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(text(SCRIPT, errors[0].span), ":");
    let fixed = SCRIPT.replace("var_total := 0\n", "");
    let file = parse_ok(&fixed);
    assert_eq!(file.items.len(), 29);
}

// ---------------------------------------------------------------- robustness

/// A deterministic xorshift PRNG, so the stress test needs no crates.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Bytes worth inserting: the ones that change the structure.
const INTERESTING: &[u8] = b"(){}[]\"$\\\n;,.:=+-!?|<>/*0123456789abfnr_ \xff\xc3";

/// One random edit of `bytes`.
fn mutate(rng: &mut XorShift, bytes: &mut Vec<u8>) {
    let at = rng.below(bytes.len() + 1);
    match rng.below(5) {
        0 => bytes.truncate(at),
        1 if at < bytes.len() => {
            let len = rng.below(8).min(bytes.len() - at);
            bytes.drain(at..at + len);
        }
        2 => bytes.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
        3 if at < bytes.len() => {
            let len = rng.below(40).min(bytes.len() - at);
            let copy: Vec<u8> = bytes[at..at + len].to_vec();
            let to = rng.below(bytes.len() + 1);
            bytes.splice(to..to, copy);
        }
        _ => {
            if let Some(byte) = bytes.get_mut(at) {
                *byte = INTERESTING[rng.below(INTERESTING.len())];
            }
        }
    }
}

#[test]
fn mutated_scripts_never_panic() {
    let seeds: Vec<&str> = SCRIPT.split("\n\n").chain([SCRIPT]).collect();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..4000 {
        let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
        for _ in 0..=rng.below(6) {
            mutate(&mut rng, &mut bytes);
        }
        let outcome = std::panic::catch_unwind(|| {
            let _ = parse_bytes(&bytes, 0);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = parse_native_sig(text);
            }
        });
        assert!(
            outcome.is_ok(),
            "parser panicked on {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn if_is_an_expression_in_value_position_and_a_statement_at_the_start() {
    let all = stmts("let x = if a { 1 } else { 2 }");
    match &all[0].kind {
        StmtKind::Let { value, .. } => assert_eq!(sexp(value), "(if a else=true)"),
        other => panic!("expected a let, found {other:?}"),
    }
    // At the start of a statement it is the `if` statement itself.
    let all = stmts("if a { f() }\nif let v = m.get(1) { g(v) } else { h() }");
    assert!(matches!(all[0].kind, StmtKind::If { els: None, .. }));
    assert!(matches!(all[1].kind, StmtKind::IfLet { els: Some(_), .. }));
    check_expr("f(if a { 1 } else { 2 })", "(call f (if a else=true))");
}

#[test]
fn while_let_and_select_parse() {
    let all = stmts("while let job = q.pop() { run(job) }");
    assert!(matches!(&all[0].kind, StmtKind::WhileLet { name, .. } if name.name == "job"));
    let src = "select {\n  v = a.recv() => print(v)\n  b.send(1) => { print(1) }\n  r = await t => return r\n  after(5) => break\n  else => print(0)\n}";
    let all = stmts(src);
    let StmtKind::Select(arms) = &all[0].kind else {
        panic!("expected a select, found {:?}", all[0].kind);
    };
    let shape: Vec<(Option<String>, Option<String>)> = arms
        .iter()
        .map(|arm| {
            let binding = arm.binding.as_ref().map(|b| b.name.clone());
            (binding, arm.op.as_ref().map(sexp))
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (Some("v".into()), Some("(method a recv )".into())),
            (None, Some("(method b send 1)".into())),
            (Some("r".into()), Some("(await t)".into())),
            (None, Some("(call after 5)".into())),
            (None, None),
        ]
    );
    // `select` is a keyword.
    check_error("let select = 1", codes::SYNTAX, "expected");
}
