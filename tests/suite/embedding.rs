//! The embedding API as a Rust host uses it: Rust functions and types
//! registered with an `Engine`, values crossing through serde both ways,
//! answers checked against the script's types and refused with the place
//! that does not fit, registrations checked when made, runs restored into
//! an engine with their functions bound again by name, an interrupt
//! from another thread, and programs of several files from memory.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use spool::miette;
use spool::{CaptureOutput, Data, Engine, Error, HostError, Step};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct User {
    id: i64,
    name: String,
    tags: Vec<String>,
    manager: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Plan {
    Free,
    Paid(f64),
}

/// Runs `program` to its end with no I/O; the printed lines and the
/// result, or the error's kind and message.
fn run_to_end(program: &spool::Program) -> Result<(Vec<String>, spool::Run, spool::Value), String> {
    let mut run = program.start(vec![]);
    let mut output = CaptureOutput::default();
    match run.resume(&mut output) {
        Ok(Step::Done(value)) => Ok((output.lines, run, value)),
        Ok(other) => Err(format!("stopped at {other:?}")),
        Err(error) => Err(format!("{}: {}", error.kind, error.message)),
    }
}

fn engine_with_functions() -> Engine {
    let mut engine = Engine::new();
    engine
        .register_fn("load_user", |id: i64| User {
            id,
            name: format!("user {id}"),
            tags: vec!["a".into()],
            manager: (id > 1).then_some(1),
        })
        .expect("load_user");
    engine
        .register_fn("total", |xs: Vec<f64>| xs.iter().sum::<f64>())
        .expect("total");
    engine
        .register_fn("first_word", |s: String| {
            s.split(' ').next().map(str::to_string)
        })
        .expect("first_word");
    engine
        .register_fn("counts", |words: Vec<String>| {
            let mut counts: BTreeMap<String, i64> = BTreeMap::new();
            for word in words {
                *counts.entry(word).or_default() += 1;
            }
            counts
        })
        .expect("counts");
    engine
        .register_fn("by_id", |users: HashMap<i64, User>, id: i64| {
            users.get(&id).cloned()
        })
        .expect("by_id");
    engine
        .register_fn(
            "plan_of",
            |paid: bool| if paid { Plan::Paid(9.5) } else { Plan::Free },
        )
        .expect("plan_of");
    engine
        .register_fn("checked_div", |a: i64, b: i64| {
            if b == 0 {
                Err(HostError::new("DivByZero", format!("{a} / 0")))
            } else {
                Ok(a / b)
            }
        })
        .expect("checked_div");
    engine
        .register_fn("parse_num", |s: String| {
            s.parse::<i64>().map_err(|e| e.to_string())
        })
        .expect("parse_num");
    engine
}

#[test]
fn rust_functions_take_and_return_every_kind_of_value() {
    let engine = engine_with_functions();
    let source = r#"
let u = load_user(7)
print("${u.name} ${u.tags} ${u.manager}")
print(total([1.5, 2.5]))
print(first_word("hello world"))
print(first_word(""))
print(counts(["a", "b", "a"]))
let m: [int: User] = [:]
m[3] = u
print(by_id(m, 3)!.id)
print(by_id(m, 4) == nil)
match plan_of(true) {
    Plan.Paid(x) => print("paid ${x}"),
    Plan.Free => print("free"),
}
return [load_user(1), load_user(2)]
"#;
    let program = engine.compile("host.spl", source).expect("compiles");
    let (lines, run, value) = run_to_end(&program).expect("runs");
    assert_eq!(
        lines,
        [
            "user 7 [\"a\"] 1",
            "4.0",
            "hello",
            "",
            "[\"a\": 2, \"b\": 1]",
            "7",
            "true",
            "paid 9.5",
        ]
    );
    let users: Vec<User> = run.get(value).expect("reads the result");
    assert_eq!(users[0].name, "user 1");
    assert_eq!(users[1].manager, Some(1));
}

#[test]
fn a_rust_error_is_raised_in_the_script_with_the_hosts_kind() {
    let engine = engine_with_functions();
    let source = r#"
try { print(checked_div(7, 0)) } catch e { print("${e.kind}: ${e.message}") }
print(checked_div(7, 2))
try { print(parse_num("x")) } catch e { print("${e.kind}: ${e.message}") }
print(checked_div(1, 0))
"#;
    let program = engine.compile("errors.spl", source).expect("compiles");
    let mut run = program.start(vec![]);
    let mut output = CaptureOutput::default();
    let error = run.resume(&mut output).expect_err("the last call fails");
    assert_eq!(
        output.lines,
        [
            "DivByZero: 7 / 0",
            "3",
            "Host: invalid digit found in string"
        ]
    );
    assert_eq!(error.kind, "DivByZero");
    assert_eq!(error.trace[0].line, 5);
}

#[test]
fn calls_of_rust_functions_are_checked_when_scripts_compile() {
    let engine = engine_with_functions();
    for bad in [
        "load_user(\"7\")",
        "total([1, 2])",
        "checked_div(1)",
        "let s: str = load_user(1)",
    ] {
        let error = engine.compile("bad.spl", bad).expect_err(bad);
        assert!(!error.diagnostics().is_empty(), "{bad}");
    }
}

#[test]
fn registrations_are_checked_when_made_and_a_refused_one_changes_nothing() {
    let mut engine = Engine::new();
    let error = engine
        .register_io("fn load(id: int) -> Userr")
        .expect_err("unknown type");
    assert!(matches!(error, Error::Register(_)));
    assert!(error.to_string().contains("`Userr`"), "{error}");
    let error = engine.register_io("fn broken(").expect_err("bad signature");
    assert!(error.to_string().contains("bad signature"), "{error}");
    // Nothing was poisoned.
    assert!(engine.compile("ok.spl", "print(1)").is_ok());
    // A registered type makes the signature good.
    engine.register_type::<User>().expect("declares User");
    engine
        .register_io("fn load(id: int) -> User")
        .expect("now it is known");
    assert!(engine
        .compile("ok.spl", "let u = load(1)\nprint(u.name)")
        .is_ok());
    // A type clashing with the library's is refused.
    #[derive(Serialize, Deserialize)]
    struct Request {
        x: i64,
    }
    let error = engine.register_type::<Request>().expect_err("clash");
    assert!(error.to_string().contains("Request"), "{error}");
    assert!(engine.compile("ok.spl", "print(1)").is_ok());
}

#[test]
fn answers_that_do_not_fit_are_refused_to_the_host_naming_the_place() {
    let mut engine = Engine::new();
    engine.register_type::<User>().expect("User");
    engine
        .register_io("fn load_all() -> [User]")
        .expect("load_all");
    let program = engine
        .compile("io.spl", "let users = load_all()\nprint(users[1].name)")
        .expect("compiles");
    let mut run = program.start(vec![]);
    let mut output = CaptureOutput::default();
    let Ok(Step::Io(batch)) = run.resume(&mut output) else {
        panic!("expected I/O")
    };
    // Named otherwise on the host's side: matched by shape.
    #[derive(Serialize)]
    struct UserRow {
        id: i64,
        name: i64,
        tags: Vec<String>,
        manager: Option<i64>,
    }
    let wrong = vec![UserRow {
        id: 1,
        name: 5,
        tags: vec![],
        manager: None,
    }];
    let error = run
        .complete_with(batch[0].id, Ok(&wrong))
        .expect_err("refused");
    assert_eq!(
        error.to_string(),
        "the answer to `load_all` does not fit its type `[User]`: at [0].name: \
         expected `str`, found the int 5"
    );
    // The request is still outstanding; a good answer goes through.
    let users = vec![UserRow {
        id: 1,
        name: 1,
        tags: vec![],
        manager: None,
    }];
    let error = run
        .complete_with(batch[0].id, Ok(&users))
        .expect_err("still refused");
    assert!(error.to_string().contains("at [0].name"), "{error}");
    let users = vec![
        User {
            id: 1,
            name: "ada".into(),
            tags: vec![],
            manager: None,
        },
        User {
            id: 2,
            name: "bob".into(),
            tags: vec!["x".into()],
            manager: Some(1),
        },
    ];
    assert!(run.complete_with(batch[0].id, Ok(&users)).expect("fits"));
    assert!(matches!(run.resume(&mut output), Ok(Step::Done(_))));
    assert_eq!(output.lines, ["bob"]);
}

#[test]
fn requests_arguments_and_yield_answers_cross_as_rust_values() {
    let mut engine = Engine::new();
    engine
        .register_io("fn put(key: str, values: [int]) -> bool")
        .expect("put");
    let source = "let ok = put(\"k\", [1, 2])\nlet n: [str: int] = yield ok\nprint(n[\"a\"])";
    let program = engine.compile("args.spl", source).expect("compiles");
    let mut run = program.start(vec![]);
    let mut output = CaptureOutput::default();
    let Ok(Step::Io(batch)) = run.resume(&mut output) else {
        panic!("expected I/O")
    };
    let (key, values): (String, Vec<i64>) = batch[0].args().expect("args");
    assert_eq!((key.as_str(), values.as_slice()), ("k", &[1, 2][..]));
    assert_eq!(batch[0].arg::<String>(0).expect("arg 0"), "k");
    assert!(batch[0].arg::<i64>(0).is_err());
    run.complete_with(batch[0].id, Ok(&true)).expect("fits");
    let Ok(Step::Yield(value)) = run.resume(&mut output) else {
        panic!("expected a yield")
    };
    assert!(run.get::<bool>(value).expect("a bool"));
    let error = run.send_with(&vec![1, 2]).expect_err("not a map");
    assert!(error.to_string().contains("[str: int]"), "{error}");
    let answer: HashMap<String, i64> = [("a".to_string(), 5)].into();
    run.send_with(&answer).expect("fits");
    assert!(matches!(run.resume(&mut output), Ok(Step::Done(_))));
    assert_eq!(output.lines, ["5"]);
}

/// A list of bools, stored a byte an element, crosses to the host as a
/// list like any other: a request's argument, a yielded value; what comes
/// back from the host is a list the script changes the same way.
#[test]
fn a_list_of_bools_crosses_to_the_host_as_a_list() {
    let mut engine = Engine::new();
    engine
        .register_io("fn put(flags: [bool]) -> [bool]")
        .expect("put");
    let source = "let flags = [true, false]\nflags.push(true)\nlet back = put(flags)\nback[0] = false\nlet seen: [bool] = yield flags\nseen.push(true)\nprint(seen)\nprint(back)";
    let program = engine.compile("bools.spl", source).expect("compiles");
    let mut run = program.start(vec![]);
    let mut output = CaptureOutput::default();
    let Ok(Step::Io(batch)) = run.resume(&mut output) else {
        panic!("expected I/O")
    };
    let (flags,): (Vec<bool>,) = batch[0].args().expect("args");
    assert_eq!(flags, [true, false, true]);
    run.complete_with(batch[0].id, Ok(&vec![true, true]))
        .expect("fits");
    let Ok(Step::Yield(value)) = run.resume(&mut output) else {
        panic!("expected a yield")
    };
    assert_eq!(
        run.get::<Vec<bool>>(value).expect("bools"),
        [true, false, true]
    );
    let mut restored = spool::restore(&spool::snapshot(&run)).expect("restores");
    restored.send_with(&vec![false]).expect("fits");
    assert!(matches!(restored.resume(&mut output), Ok(Step::Done(_))));
    assert_eq!(output.lines, ["[false, true]", "[false, true]"]);
}

#[test]
fn a_restored_run_gets_its_rust_functions_back_by_name() {
    let engine = engine_with_functions();
    let program = engine
        .compile("r.spl", "let n: int = yield 0\nprint(load_user(n).name)")
        .expect("compiles");
    let mut run = program.start(vec![]);
    let mut output = CaptureOutput::default();
    assert!(matches!(run.resume(&mut output), Ok(Step::Yield(_))));
    let saved = engine.snapshot(&run);
    let mut restored = engine.restore(&saved).expect("restores");
    restored.send_with(&4).expect("an int");
    assert!(matches!(restored.resume(&mut output), Ok(Step::Done(_))));
    assert_eq!(output.lines, ["user 4"]);
    let error = Engine::new().restore(&saved).expect_err("no load_user");
    assert!(error.to_string().contains("host.load_user"), "{error}");
}

#[test]
fn an_interrupt_from_another_thread_pauses_a_run_that_can_continue() {
    let program = Engine::new()
        .compile("spin.spl", "let i = 0\nwhile i >= 0 { i += 1 }")
        .expect("compiles");
    let mut run = program.start(vec![]);
    let stop = run.interrupt_handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        stop.interrupt();
    });
    let mut output = CaptureOutput::default();
    assert!(matches!(run.resume(&mut output), Ok(Step::Paused)));
    stopper.join().expect("joins");
    // Saved and restored where it stopped, it runs on.
    let mut restored = spool::restore(&spool::snapshot(&run)).expect("restores");
    restored.set_limits(spool::Limits {
        budget: Some(1000),
        ..spool::Limits::default()
    });
    assert!(matches!(restored.resume(&mut output), Ok(Step::Paused)));
}

#[test]
fn a_compile_error_reports_through_miette() {
    fn check() -> miette::Result<()> {
        Engine::new().compile("bad.spl", "let x: int = \"s\"\nlet y: str = 1")?;
        Ok(())
    }
    let report = check().expect_err("does not compile");
    let mut rendered = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .render_report(&mut rendered, report.as_ref())
        .expect("renders");
    assert!(rendered.contains("bad.spl:1:"), "{rendered}");
    assert!(rendered.contains("let y: str = 1"), "{rendered}");
    let _ = Data::Nil;
}

/// A program of several files given from memory: the loader is asked for
/// each imported file by its name relative to the main file's folder, the
/// trace names the imported file, and a compile error in an imported file
/// is shown against that file's text.
#[test]
fn programs_of_several_files_load_through_the_host() {
    let mut files = HashMap::from([
        (
            "steps/work.spl".to_string(),
            "import \"../lib/util.spl\"\nfn work(n: int) -> int { return twice(n) / (n - 2) }\n"
                .to_string(),
        ),
        (
            "lib/util.spl".to_string(),
            "fn twice(n: int) -> int { return n * 2 }\n".to_string(),
        ),
    ]);
    let main = "import \"steps/work.spl\" as steps\nprint(steps.work(3))\nprint(steps.work(2))\n";
    let asked = std::sync::Mutex::new(Vec::new());
    let loader = |files: &HashMap<String, String>, name: &str| {
        asked.lock().unwrap().push(name.to_string());
        files
            .get(name)
            .map(|text| text.clone().into_bytes())
            .ok_or_else(|| "no such file".to_string())
    };
    let program = Engine::new()
        .compile_with("app/main.spl", main.as_bytes(), |name: &str| {
            loader(&files, name)
        })
        .expect("compiles");
    assert_eq!(*asked.lock().unwrap(), ["steps/work.spl", "lib/util.spl"]);
    let error = run_to_end(&program).unwrap_err();
    assert!(error.contains("DivByZero"), "{error}");
    let mut output = CaptureOutput::default();
    let failure = program.start(vec![]).resume(&mut output).unwrap_err();
    assert_eq!(output.lines, ["6"]);
    let frames: Vec<String> = failure
        .trace
        .iter()
        .map(|frame| format!("{}:{}", frame.file, frame.line))
        .collect();
    assert_eq!(frames, ["steps/work.spl:2", "app/main.spl:3"]);
    assert!(program.explain(&failure).contains("2 | fn work(n: int)"));

    files.insert(
        "lib/util.spl".to_string(),
        "fn twice(n: int) -> int { return true }\n".to_string(),
    );
    let error = Engine::new()
        .compile_with("app/main.spl", main.as_bytes(), |name: &str| {
            loader(&files, name)
        })
        .unwrap_err();
    assert_eq!(error.file_of(&error.diagnostics()[0]), "lib/util.spl");
    assert!(
        error
            .to_string()
            .starts_with("lib/util.spl:1: mismatched types"),
        "{error}"
    );
    let rendered = error.render();
    assert!(rendered.contains("[lib/util.spl:1:34]"), "{rendered}");
    assert!(
        rendered.contains("fn twice(n: int) -> int { return true }"),
        "{rendered}"
    );
}
