//! `Program::call`: a run that runs the script's top level, then calls
//! one of its functions with the host's arguments and finishes with the
//! function's result. Every successful call is driven three ways (at
//! once, one instruction per resume, and saved and restored at every
//! pause), which must agree; refused calls are checked by their messages.

use serde::{Deserialize, Serialize};
use spool::{CaptureOutput, Data, Engine, Error, Run, Step};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Point {
    x: i64,
    y: i64,
}

/// How a run is driven to its end.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Direct,
    OneInstruction,
    SavedAtEveryPause,
}

/// Compiles `source` with an I/O operation `fetch(id: int) -> str`.
#[track_caller]
fn compile(source: &str) -> (Engine, spool::Program) {
    let mut engine = Engine::new();
    engine
        .register_io("fn fetch(id: int) -> str")
        .expect("fetch registers");
    let program = engine
        .compile("call.spl", source)
        .unwrap_or_else(|error| panic!("does not compile:\n{}", error.render()));
    (engine, program)
}

/// Drives `run` to its end in `mode`: I/O is answered with `item {id}`,
/// yields with nothing. Gives the printed lines, what was yielded (as
/// strings) and the result as data.
fn drive(engine: &Engine, mut run: Run, mode: Mode) -> (Vec<String>, Vec<String>, Data) {
    let budget = match mode {
        Mode::Direct => None,
        Mode::OneInstruction => Some(1),
        Mode::SavedAtEveryPause => Some(7),
    };
    run.set_limits(spool::Limits {
        budget,
        ..spool::Limits::default()
    });
    let mut output = CaptureOutput::default();
    let mut yielded = Vec::new();
    loop {
        if let Mode::SavedAtEveryPause = mode {
            run = engine.restore(&engine.snapshot(&run)).expect("restores");
            run.set_limits(spool::Limits {
                budget,
                ..spool::Limits::default()
            });
        }
        match run.resume(&mut output) {
            Ok(Step::Done(value)) => {
                let result = Data::from_value(value, run.heap(), run.program()).expect("data");
                return (output.lines, yielded, result);
            }
            Ok(Step::Paused) => {}
            Ok(Step::Yield(value)) => yielded.push(run.display(value)),
            Ok(Step::Io(batch)) => {
                for request in batch {
                    let id: i64 = request.arg(0).expect("an int argument");
                    run.complete_with(request.id, Ok(&format!("item {id}")))
                        .expect("a str answers fetch");
                }
            }
            Err(error) => panic!("the run failed in {mode:?}: {error}"),
        }
    }
}

/// Calls `name` with `args` in every mode; gives the printed lines, the
/// yielded values and the result, the same in each.
#[track_caller]
fn check_call(source: &str, name: &str, args: Vec<Data>) -> (Vec<String>, Vec<String>, Data) {
    let (engine, program) = compile(source);
    let start = || {
        program
            .call(name, args.clone())
            .unwrap_or_else(|error| panic!("the call is refused: {error}"))
    };
    let direct = drive(&engine, start(), Mode::Direct);
    for mode in [Mode::OneInstruction, Mode::SavedAtEveryPause] {
        assert_eq!(drive(&engine, start(), mode), direct, "{mode:?} differs");
    }
    direct
}

/// The message a refused call gives.
#[track_caller]
fn refusal(source: &str, name: &str, args: Vec<Data>) -> String {
    let (_, program) = compile(source);
    match program.call(name, args) {
        Err(Error::Value(message)) => message,
        Err(other) => panic!("refused with another error: {other}"),
        Ok(_) => panic!("the call of `{name}` was accepted"),
    }
}

fn ints(values: &[i64]) -> Data {
    Data::List(values.iter().map(|&n| Data::Int(n)).collect())
}

#[test]
fn ints_and_strings_go_in_and_the_result_comes_back() {
    let source = "fn add(x: int, y: int) -> int {\n  return x + y\n}\nfn greet(name: str, times: int) -> str {\n  let words: [str] = []\n  for i in 0..times {\n    words.push(\"hi ${name}!\")\n  }\n  return words.join(\" \")\n}";
    let (_, _, sum) = check_call(source, "add", vec![Data::Int(40), Data::Int(2)]);
    assert_eq!(sum, Data::Int(42));
    let (_, _, text) = check_call(source, "greet", vec![Data::str("ada"), Data::Int(2)]);
    assert_eq!(text, Data::str("hi ada! hi ada!"));
}

#[test]
fn lists_go_in_and_come_back() {
    let source =
        "fn scaled(xs: [int], by: int) -> [int] {\n  return xs.map(fn(x: int) => x * by)\n}";
    let (_, _, result) = check_call(source, "scaled", vec![ints(&[1, 2, 3]), Data::Int(10)]);
    assert_eq!(result, ints(&[10, 20, 30]));
}

#[test]
fn a_struct_goes_in_and_a_struct_comes_back_as_a_rust_value() {
    let source = "struct Point { x: int, y: int }\nfn flip(p: Point) -> Point {\n  return Point(x: p.y, y: p.x)\n}";
    let (_, program) = compile(source);
    let arg = spool::to_data(&Point { x: 1, y: 2 }).expect("to data");
    let mut run = program.call("flip", vec![arg.clone()]).expect("accepted");
    let Ok(Step::Done(value)) = run.resume(&mut CaptureOutput::default()) else {
        panic!("the call finishes");
    };
    assert_eq!(run.get::<Point>(value).unwrap(), Point { x: 2, y: 1 });
    check_call(source, "flip", vec![arg]);
}

/// A Rust type named otherwise matches the script's struct by its fields.
#[test]
fn a_rust_struct_of_another_name_fits_by_its_fields() {
    #[derive(Serialize)]
    struct Coordinates {
        x: i64,
        y: i64,
    }
    let source = "struct Point { x: int, y: int }\nfn sum(points: [Point]) -> int {\n  return points.fold(0, fn(total: int, p: Point) => total + p.x + p.y)\n}";
    let arg = spool::to_data(&vec![
        Coordinates { x: 1, y: 2 },
        Coordinates { x: 3, y: 4 },
    ]);
    let (_, _, result) = check_call(source, "sum", vec![arg.expect("to data")]);
    assert_eq!(result, Data::Int(10));
}

#[test]
fn the_top_level_runs_first_and_its_globals_are_visible() {
    let source = "let prefix = \"v\" + \"${1 + 1}\"\nlet seen = [0]\nprint(\"top level\")\ndefer print(\"top level defer\")\nfn tag(name: str) -> str {\n  print(\"in tag\")\n  seen[0] = seen[0] + 1\n  return \"${prefix}:${name}:${seen[0]}\"\n}";
    let (lines, _, result) = check_call(source, "tag", vec![Data::str("x")]);
    assert_eq!(lines, ["top level", "top level defer", "in tag"]);
    assert_eq!(result, Data::str("v2:x:1"));
}

#[test]
fn a_top_level_return_ends_the_top_level_and_its_value_is_dropped() {
    let source = "let ready = true\nif ready {\n  return 99\n}\nprint(\"not reached\")\nfn answer() -> int {\n  return 42\n}";
    let (lines, _, result) = check_call(source, "answer", vec![]);
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(result, Data::Int(42));
}

#[test]
fn tasks_the_top_level_spawned_go_on_while_the_function_runs() {
    let source = "fn work(n: int) {\n  print(\"task ${fetch(n)}\")\n}\nspawn work(1)\nfn main_work() -> str {\n  return fetch(2)\n}";
    let (lines, _, result) = check_call(source, "main_work", vec![]);
    assert_eq!(lines, ["task item 1"]);
    assert_eq!(result, Data::str("item 2"));
}

#[test]
fn the_function_does_io_and_yields_to_the_host() {
    let source = "let names = [fetch(0)]\nfn load(ids: [int]) -> [str] {\n  let tasks = ids.map(fn(id: int) => spawn fetch(id))\n  yield \"fetching ${ids.len()}\"\n  let loaded = names\n  for t in tasks {\n    loaded.push(await t)\n  }\n  yield \"done\"\n  return loaded\n}";
    let (_, yielded, result) = check_call(source, "load", vec![ints(&[1, 2])]);
    assert_eq!(yielded, ["fetching 2", "done"]);
    assert_eq!(
        result,
        Data::List(vec![
            Data::str("item 0"),
            Data::str("item 1"),
            Data::str("item 2")
        ])
    );
}

#[test]
fn the_io_of_the_function_reaches_the_host_as_one_batch() {
    let source = "fn load(ids: [int]) -> [str] {\n  let tasks = ids.map(fn(id: int) => spawn fetch(id))\n  return tasks.map(fn(t: Task<str>) => await t)\n}";
    let (_, program) = compile(source);
    let mut run = program
        .call("load", vec![ints(&[1, 2, 3])])
        .expect("accepted");
    let Ok(Step::Io(batch)) = run.resume(&mut CaptureOutput::default()) else {
        panic!("the function asks for I/O");
    };
    assert_eq!(batch.len(), 3);
}

#[test]
fn a_run_saved_inside_the_call_finishes_after_a_restore() {
    let source = "let base = 100\nfn lookup(id: int) -> str {\n  let name = fetch(id)\n  return \"${name} of ${base + id}\"\n}";
    let (engine, program) = compile(source);
    let mut run = program
        .call("lookup", vec![Data::Int(7)])
        .expect("accepted");
    let Ok(Step::Io(batch)) = run.resume(&mut CaptureOutput::default()) else {
        panic!("the function asks for I/O");
    };
    let saved = engine.snapshot(&run);
    drop(run);
    let mut run = engine.restore(&saved).expect("restores");
    run.complete_with(batch[0].id, Ok("seven")).expect("fits");
    let Ok(Step::Done(value)) = run.resume(&mut CaptureOutput::default()) else {
        panic!("the restored call finishes");
    };
    assert_eq!(run.get::<String>(value).unwrap(), "seven of 107");
}

#[test]
fn a_run_saved_inside_the_top_level_calls_the_function_after_a_restore() {
    let source = "let first = fetch(1)\nfn show(suffix: str) -> str {\n  return first + suffix\n}";
    let (engine, program) = compile(source);
    let mut run = program
        .call("show", vec![Data::str("!")])
        .expect("accepted");
    let Ok(Step::Io(batch)) = run.resume(&mut CaptureOutput::default()) else {
        panic!("the top level asks for I/O");
    };
    let mut run = engine.restore(&engine.snapshot(&run)).expect("restores");
    run.complete_with(batch[0].id, Ok("one")).expect("fits");
    let Ok(Step::Done(value)) = run.resume(&mut CaptureOutput::default()) else {
        panic!("the restored call finishes");
    };
    assert_eq!(run.get::<String>(value).unwrap(), "one!");
}

#[test]
fn overloads_are_told_apart_by_their_arguments() {
    let source = "fn describe(n: int) -> str {\n  return \"int ${n}\"\n}\nfn describe(s: str) -> str {\n  return \"str ${s}\"\n}";
    assert_eq!(
        check_call(source, "describe", vec![Data::Int(1)]).2,
        Data::str("int 1")
    );
    assert_eq!(
        check_call(source, "describe", vec![Data::str("a")]).2,
        Data::str("str a")
    );
}

#[test]
fn an_error_in_the_function_fails_the_run_with_its_trace() {
    let source = "fn pick(xs: [int], at: int) -> int {\n  return xs[at]\n}";
    let (_, program) = compile(source);
    let mut run = program
        .call("pick", vec![ints(&[1]), Data::Int(5)])
        .expect("accepted");
    let error = run.resume(&mut CaptureOutput::default()).unwrap_err();
    assert_eq!(error.kind, "Index");
    assert_eq!(error.trace[0].function, "pick");
}

/// The function's frame waits under the top level's, but a call that has
/// not started is not part of the trace.
#[test]
fn an_error_in_the_top_level_fails_the_run_before_the_call() {
    let source = "let xs = [1]\nprint(xs[3])\nfn f() -> int {\n  return 1\n}";
    let (_, program) = compile(source);
    let mut run = program.call("f", vec![]).expect("accepted");
    let error = run.resume(&mut CaptureOutput::default()).unwrap_err();
    assert_eq!(error.kind, "Index");
    let trace: Vec<&str> = error.trace.iter().map(|f| f.function.as_str()).collect();
    assert_eq!(trace, ["main"]);
}

/// `send_with` checks answers against what the top level's `yield`s
/// receive (`nil` here); `send` answers a function that receives more.
#[test]
fn a_function_receiving_another_type_than_the_top_level_is_answered_with_send() {
    let source = "fn ask(question: str) -> int {\n  let n: int = yield question\n  return n * 2\n}";
    let (_, program) = compile(source);
    let signature = &program.bytecode().signatures[0];
    assert_eq!(signature.receives.to_string(), "int");
    let mut run = program
        .call("ask", vec![Data::str("how many?")])
        .expect("accepted");
    let mut output = CaptureOutput::default();
    let Ok(Step::Yield(question)) = run.resume(&mut output) else {
        panic!("the function yields");
    };
    assert_eq!(run.get::<String>(question).unwrap(), "how many?");
    assert!(run.send_with(&21).is_err());
    run.send(spool::Value::Int(21));
    let Ok(Step::Done(value)) = run.resume(&mut output) else {
        panic!("the call finishes");
    };
    assert_eq!(run.get::<i64>(value).unwrap(), 42);
}

#[test]
fn an_unknown_name_is_refused_with_the_functions_there_are() {
    let source = "fn add(x: int, y: int) -> int {\n  return x + y\n}";
    assert_eq!(
        refusal(source, "sub", vec![]),
        "the script has no top-level function `sub` (it has `add`)"
    );
    // The library's functions are not the script's.
    assert_eq!(
        refusal(source, "map", vec![ints(&[]), Data::Nil]),
        "the script has no top-level function `map` (it has `add`)"
    );
    assert_eq!(
        refusal("print(1)", "main", vec![]),
        "the script has no top-level function `main` (it has none)"
    );
}

#[test]
fn a_wrong_number_of_arguments_is_refused() {
    let source = "fn add(x: int, y: int) -> int {\n  return x + y\n}";
    assert_eq!(
        refusal(source, "add", vec![Data::Int(1)]),
        "`add` takes 2 arguments (x, y), not 1"
    );
}

#[test]
fn an_argument_of_the_wrong_type_is_refused_with_the_place_and_both_types() {
    let source = "struct Point { x: int, y: int }\nfn add(x: int, y: int) -> int {\n  return x + y\n}\nfn area(corners: [Point]) -> int {\n  return 0\n}";
    assert_eq!(
        refusal(source, "add", vec![Data::Int(1), Data::str("2")]),
        "argument 2 of `add` (`y: int`) does not fit: expected `int`, found the str \"2\""
    );
    let corner = |y: Data| Data::Record {
        name: "Point".into(),
        fields: vec![("x".into(), Data::Int(0)), ("y".into(), y)],
    };
    assert_eq!(
        refusal(
            source,
            "area",
            vec![Data::List(vec![corner(Data::Int(1)), corner(Data::Float(2.5))])]
        ),
        "argument 1 of `area` (`corners: [Point]`) does not fit: at [1].y: expected `int`, found the float 2.5"
    );
}
