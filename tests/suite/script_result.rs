//! The value a script's top-level `return` hands its host: `Step::Done`
//! carries it, read through the heap as `Data`, in a direct run and after
//! the finished run went through a snapshot. The conformance scripts under
//! `tests/scripts/top_level_return/` cover what the script itself sees.

use spool::{CaptureOutput, Data, Run, Step, Value};

/// Compiles `source` and runs it to its end (it must not need I/O).
#[track_caller]
fn finish(source: &str) -> (Run, Value) {
    let engine = spool::Engine::new();
    let program = engine
        .compile("result.spl", source)
        .unwrap_or_else(|error| panic!("does not compile:\n{}", error.render()));
    let mut run = program.start(vec![]);
    let mut output = CaptureOutput::default();
    match run.resume(&mut output) {
        Ok(Step::Done(value)) => (run, value),
        other => panic!("expected the run to finish, got {other:?}"),
    }
}

/// The result of `source` as data.
#[track_caller]
fn check_result(source: &str, expected: Data) {
    let (run, value) = finish(source);
    let data = Data::from_value(value, run.heap(), run.program()).expect("plain data");
    assert_eq!(data, expected, "the result of:\n{source}");
}

#[test]
fn done_carries_an_int_returned_at_the_top_level() {
    let (_, value) = finish("return 42\nprint(\"not reached\")");
    assert_eq!(value, Value::Int(42));
}

#[test]
fn done_carries_nil_without_a_return_or_at_the_end() {
    check_result("print(1)", Data::Nil);
    check_result("if false {\n  return 1\n}", Data::Nil);
    check_result("return", Data::Nil);
}

#[test]
fn done_carries_heap_values_built_at_run_time() {
    check_result(
        "let name = \"spool\"\nfor i in 0..3 {\n  if i == 2 {\n    return \"${name} ${i}\"\n  }\n}",
        Data::str("spool 2"),
    );
    check_result(
        "return [1, 2, 3].map(fn(x) => x * 10)",
        Data::List(vec![Data::Int(10), Data::Int(20), Data::Int(30)]),
    );
}

/// A task that allocates after the main body returned forces collections
/// while the result waits in the main task.
#[test]
fn the_result_survives_collections_while_tasks_finish() {
    let source = "fn churn() {\n  for i in 0..200000 {\n    let item = [\"item ${i}\"]\n  }\n}\nspawn churn()\nreturn \"kept ${40 + 2}\"";
    check_result(source, Data::str("kept 42"));
}

#[test]
fn a_finished_run_keeps_its_result_through_a_snapshot() {
    let (run, _) = finish("defer print(\"bye\")\nreturn \"saved\"");
    let mut restored = spool::restore(&spool::snapshot(&run)).expect("restores");
    let Ok(Step::Done(value)) = restored.resume(&mut CaptureOutput::default()) else {
        panic!("a finished run stays finished");
    };
    let data = Data::from_value(value, restored.heap(), restored.program()).expect("plain data");
    assert_eq!(data, Data::str("saved"));
}

/// An input at the REPL's prompt is not a script: its `return` is refused,
/// and the session goes on (a `return` inside a function is fine there).
#[test]
fn return_at_the_prompt_is_refused() {
    let engine = spool::Engine::new();
    let mut session = spool::Session::new(&engine);
    let refused = |error: spool::CompileError| {
        let messages: Vec<String> = error
            .diagnostics()
            .iter()
            .map(|d| d.message.clone())
            .collect();
        assert_eq!(messages, ["`return` at the prompt"]);
    };
    refused(session.prepare("[1]", "return 1").expect_err("refused"));
    refused(
        session
            .prepare("[1]", "if true {\n  return\n}")
            .expect_err("refused"),
    );
    refused(session.type_of("return 2").expect_err("refused"));
    session
        .prepare("[2]", "fn f() -> int {\n  return 7\n}\nf()")
        .unwrap_or_else(|error| panic!("compiles:\n{}", error.render()));
    match session.run().resume(&mut CaptureOutput::default()) {
        Ok(Step::Done(value)) => assert_eq!(value, Value::Int(7)),
        other => panic!("expected the input to finish, got {other:?}"),
    }
}
