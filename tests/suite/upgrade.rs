//! Continuing a saved run on a changed program (`spool resume --program`,
//! `spool::upgrade::upgrade`): functions added, edited, removed or
//! reordered, new types, globals and I/O operations are fine as long as
//! nothing the run is inside changed; every index the run holds is
//! translated to the new numbering. Changes to live code, and values the
//! new program cannot hold the same way, are refused with what and where.
//!
//! The scripts are under `tests/upgrade/`: `flow.spl` and `held.spl` and
//! later versions of each.

use std::path::PathBuf;

use spool::{Data, Engine, Run, Step};
use spool_tests::workspace_root;

use crate::cli::{assert_exit, scratch, spool, stderr, stdout};

fn script(name: &str) -> String {
    let path = workspace_root().join("tests/upgrade").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A scratch directory with every script of `tests/upgrade/`, and
/// `first` run in step mode to its first yield, saved as `state.run`.
fn suspended(test: &str, first: &str, prompt: &str) -> PathBuf {
    let names = [
        "flow.spl",
        "helper_added.spl",
        "edited.spl",
        "reordered.spl",
        "types_added.spl",
        "global_added.spl",
        "live_changed.spl",
        "live_removed.spl",
        "held.spl",
        "held_reordered.spl",
        "held_closure_changed.spl",
        "held_coroutine_changed.spl",
        "scaled.spl",
        "scaled_edited.spl",
    ];
    let files: Vec<(&str, String)> = names.iter().map(|&n| (n, script(n))).collect();
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(n, s)| (*n, s.as_str())).collect();
    let dir = scratch(&format!("upgrade_{test}"), &borrowed);
    let output = spool(&dir, &["run", first, "--state", "state.run", "--step"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), prompt);
    dir
}

const FLOW_PROMPT: &str = "loaded 7\napprove order 7 at corner shop?\n";

/// `spool resume state.run --program FILE --send "yes"` in `dir`.
fn resume_on(dir: &std::path::Path, file: &str) -> std::process::Output {
    spool(
        dir,
        &[
            "resume",
            "state.run",
            "--program",
            file,
            "--send",
            "\"yes\"",
        ],
    )
}

#[test]
fn a_helper_added_before_the_live_functions_is_called_after_the_resume() {
    let dir = suspended("helper", "flow.spl", FLOW_PROMPT);
    let output = resume_on(&dir, "helper_added.spl");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "order 7: 42 (YES!)\n");
    assert_eq!(stderr(&output), "");
}

#[test]
fn functions_the_run_is_not_inside_may_be_edited() {
    let dir = suspended("edited", "flow.spl", FLOW_PROMPT);
    let output = resume_on(&dir, "edited.spl");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "order 7 closed: total 84, answer yes\n");
}

#[test]
fn functions_may_be_reordered() {
    let dir = suspended("reordered", "flow.spl", FLOW_PROMPT);
    let output = resume_on(&dir, "reordered.spl");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "order 7: 42 (yes)\n");
}

#[test]
fn new_structs_and_enums_may_be_declared_before_the_old_ones() {
    let dir = suspended("types", "flow.spl", FLOW_PROMPT);
    let output = resume_on(&dir, "types_added.spl");
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        "Receipt(order: 7, total: 42, verdict: Approved)\n"
    );
}

#[test]
fn a_new_top_level_let_changes_the_top_level_the_run_is_inside() {
    // Every top-level statement is code of `main`, which a step-mode run
    // is always inside: a new global is refused while `main` runs (see
    // `tasks_continue_on_new_globals_types_and_operations` for a run whose
    // top level has finished).
    let dir = suspended("global", "flow.spl", FLOW_PROMPT);
    let output = resume_on(&dir, "global_added.spl");
    assert_exit(&output, 2);
    assert_eq!(
        stderr(&output),
        "error: `--program global_added.spl`: the run cannot continue on the new program:\n  \
         `main` (suspended at flow.spl:26:14) changed\n"
    );
}

#[test]
fn a_changed_live_function_is_refused_with_where_the_run_is_in_it() {
    let dir = suspended("live_changed", "flow.spl", FLOW_PROMPT);
    let before = std::fs::read(dir.join("state.run")).expect("saved");
    let output = resume_on(&dir, "live_changed.spl");
    assert_exit(&output, 2);
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "error: `--program live_changed.spl`: the run cannot continue on the new program:\n  \
         `approve` (suspended at flow.spl:16:23) changed\n"
    );
    // The saved run is untouched and still continues on its own program.
    assert_eq!(std::fs::read(dir.join("state.run")).expect("saved"), before);
    let output = spool(&dir, &["resume", "state.run", "--send", "\"no\""]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "order 7: 42 (no)\n");
}

#[test]
fn a_removed_live_function_is_refused() {
    let dir = suspended("live_removed", "flow.spl", FLOW_PROMPT);
    let output = resume_on(&dir, "live_removed.spl");
    assert_exit(&output, 2);
    assert_eq!(
        stderr(&output),
        "error: `--program live_removed.spl`: the run cannot continue on the new program:\n  \
         `approve` (suspended at flow.spl:16:23) is not in the new program\n  \
         `main` (suspended at flow.spl:26:14) changed\n"
    );
}

const HELD_PROMPT: &str = "11 100\nfirst?\n";

#[test]
fn a_closure_and_a_coroutine_in_globals_survive_a_reorder() {
    let dir = suspended("held", "held.spl", HELD_PROMPT);
    let output = spool(
        &dir,
        &[
            "resume",
            "state.run",
            "--program",
            "held_reordered.spl",
            "--send",
            "\"one\"",
        ],
    );
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "12 200 one\nsecond?\n");
    // The saved run now carries the new program: no `--program` needed.
    let output = spool(&dir, &["resume", "state.run", "--send", "\"two\""]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "13 300 -1 two\n");
    let output = spool(&dir, &["inspect", "state.run"]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("status: finished"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn changed_code_of_a_held_closure_or_a_suspended_coroutine_is_refused() {
    let dir = suspended("held_changed", "held.spl", HELD_PROMPT);
    let output = resume_on(&dir, "held_closure_changed.spl");
    assert_exit(&output, 2);
    assert_eq!(
        stderr(&output),
        "error: `--program held_closure_changed.spl`: the run cannot continue on the new program:\n  \
         `lambda` in `counter` (held by a closure, defined at held.spl:5:12) changed\n"
    );
    let output = resume_on(&dir, "held_coroutine_changed.spl");
    assert_exit(&output, 2);
    assert_eq!(
        stderr(&output),
        "error: `--program held_coroutine_changed.spl`: the run cannot continue on the new program:\n  \
         `hundreds` (suspended at held.spl:13:9) changed\n"
    );
}

#[test]
fn a_closure_left_over_in_a_register_does_not_count_as_held() {
    // `scaled`'s closure stays in a register of the top level after the
    // call returns; nothing reads that register again, so the lambda may
    // change.
    let dir = suspended("leftover", "scaled.spl", "[10, 20]\ngo?\n");
    let output = resume_on(&dir, "scaled_edited.spl");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "[11, 21]\n");
}

// ---- through the Rust API ----

/// Jobs that wait for `fetch`: by the time the first batch of requests
/// goes out, the top level has finished and only the tasks are live.
const JOBS: &str = "\
struct Job { id: int, name: str }
enum State { Waiting, Done(int) }
let label = \"jobs\"
let current = Job(id: 1, name: \"first\")
let state = State.Waiting
fn work(id: int) {
    let body = fetch(id)
    report(id, body)
}
fn report(id: int, body: str) {
    print(\"${label}: ${current.name} ${id} ${body} ${state}\")
}
spawn work(1)
spawn work(2)
";

/// JOBS, later: a new struct and a new global before the old ones, the
/// fields of `Job` in another order, the functions reordered, and `report`
/// calling a new I/O operation.
const JOBS_V2: &str = "\
struct Stamp { at: str }
enum State { Waiting, Done(int) }
struct Job { name: str, id: int }
let prefix = \"#\"
let label = \"jobs\"
let current = Job(id: 1, name: \"first\")
let state = State.Waiting
fn tag() -> str {
    return prefix
}
fn report(id: int, body: str) {
    let stamp = Stamp(at: stamp())
    print(\"${label}: ${current.name} ${id} ${body} ${state} at ${stamp.at}\")
}
fn work(id: int) {
    let body = fetch(id)
    report(id, body)
}
spawn work(1)
spawn work(2)
";

fn old_engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .register_io("fn fetch(id: int) -> str")
        .expect("declares");
    engine
}

/// An engine that declares one more operation, before `fetch`: every
/// operation after it gets another number.
fn new_engine() -> Engine {
    let mut engine = Engine::new();
    engine.register_io("fn stamp() -> str").expect("declares");
    engine
        .register_io("fn fetch(id: int) -> str")
        .expect("declares");
    engine
}

/// A run of JOBS at its first I/O batch (the two fetches in flight).
fn jobs_waiting() -> Run {
    let program = old_engine().compile("jobs.spl", JOBS).expect("compiles");
    let mut run = program.start(Vec::new());
    let mut host = spool::CaptureOutput::default();
    match run.resume(&mut host).expect("runs") {
        Step::Io(batch) => assert_eq!(batch.len(), 2),
        other => panic!("expected the fetches, got {other:?}"),
    }
    run
}

/// Answers every request (`fetch(n)` with `body<n>`, `stamp()` with
/// `noon`) until the run ends; returns what it printed.
fn finish(run: &mut Run) -> Vec<String> {
    let mut host = spool::CaptureOutput::default();
    let mut pending = run.pending_io();
    loop {
        for request in std::mem::take(&mut pending) {
            let answer = match (&*request.op, &request.args[..]) {
                ("fetch", [Data::Int(n)]) => Data::str(format!("body{n}")),
                ("stamp", []) => Data::str("noon"),
                other => panic!("unexpected request {other:?}"),
            };
            assert!(run.complete(request.id, Ok(answer)));
        }
        match run.resume(&mut host).expect("runs") {
            Step::Done(_) => return host.lines,
            Step::Io(batch) => pending = batch,
            other => panic!("unexpected step {other:?}"),
        }
    }
}

#[test]
fn tasks_continue_on_new_globals_types_and_operations() {
    let mut run = jobs_waiting();
    let new = new_engine()
        .compile("jobs2.spl", JOBS_V2)
        .expect("compiles");
    spool::upgrade::upgrade(&mut run, &new).expect("continues");
    // The moved run is consistent: it saves, restores (which validates it)
    // and carries the new program.
    let bytes = spool::snapshot(&run);
    let mut run = spool::restore(&bytes).expect("restores");
    assert_eq!(run.program().fingerprint, new.bytecode().fingerprint);
    assert_eq!(run.pending_io().len(), 2);
    assert_eq!(
        finish(&mut run),
        [
            "jobs: first 1 body1 Waiting at noon",
            "jobs: first 2 body2 Waiting at noon"
        ]
    );
}

#[test]
fn refusals_name_the_type_or_global_the_run_holds() {
    let cases: [(&str, &str, String); 4] = [
        (
            "a field added to a struct the run holds",
            "struct Job { name: str, id: int }",
            "struct Job { name: str, id: int, note: str }".into(),
        ),
        (
            "a variant the run holds removed",
            "enum State { Waiting, Done(int) }",
            "enum State { Ready, Done(int) }".into(),
        ),
        (
            "a global given another type",
            "let label = \"jobs\"",
            "let label = 42".into(),
        ),
        (
            "a live function changed",
            "let body = fetch(id)",
            "let body = fetch(id + 1)".into(),
        ),
    ];
    let expected = [
        "  struct `Job` has values in the run, and the new program changes its fields from (id, name) to (name, id, note)",
        "  enum `State` has `Waiting` values (0 field(s)) in the run, which the new program does not declare",
        "  global `label` holds a str, and the new program stores an int in it (jobs2.spl:5:5)",
        "  `work` (suspended at jobs.spl:7:16) changed",
    ];
    for ((what, from, to), reason) in cases.iter().zip(expected) {
        let mut source = JOBS_V2.replace(from, to);
        if what.contains("variant") {
            source = source.replace("State.Waiting", "State.Ready");
        }
        if what.contains("field") {
            source = source.replace("name: \"first\")", "name: \"first\", note: \"\")");
        }
        let new = new_engine()
            .compile("jobs2.spl", &source)
            .unwrap_or_else(|e| panic!("{what}: {}", e.render()));
        let mut run = jobs_waiting();
        let error = spool::upgrade::upgrade(&mut run, &new).expect_err(what);
        assert_eq!(
            error,
            format!("the run cannot continue on the new program:\n{reason}"),
            "{what}"
        );
        assert_eq!(
            spool::upgrade::check(&run, new.bytecode()),
            [reason],
            "{what}"
        );
        // Refused: the run is as it was, and finishes on its own program.
        assert_eq!(
            finish(&mut run),
            ["jobs: first 1 body1 Waiting", "jobs: first 2 body2 Waiting"],
            "{what}"
        );
    }
}

#[test]
fn without_a_new_program_the_embedded_one_is_used() {
    let mut run = jobs_waiting();
    let same = old_engine().compile("jobs.spl", JOBS).expect("compiles");
    spool::upgrade::upgrade(&mut run, &same).expect("the same program");
    let bytes = spool::snapshot(&run);
    let mut run = spool::restore(&bytes).expect("restores");
    assert_eq!(
        finish(&mut run),
        ["jobs: first 1 body1 Waiting", "jobs: first 2 body2 Waiting"]
    );
}

// ---- every conformance script, moved between two numberings ----

/// What a run printed and how it ended (`Ok` with the printed lines, or
/// the error's kind and message).
type Ending = (Vec<String>, Result<(), String>);

/// Runs `program` with budget `budget`; at the pauses `switch_at` picks,
/// and at every I/O phase and top-level yield, moves the run to the other
/// of `programs` (through the full `Run::upgrade`, never its fast
/// path). `None` as the budget: a plain run.
fn run_moving(
    programs: [(&spool::Program, &Engine); 2],
    args: &[String],
    budget: Option<u64>,
) -> Result<(Ending, u64), String> {
    let mut run = programs[0].0.start(args.to_vec());
    run.set_limits(spool::Limits {
        budget,
        ..Default::default()
    });
    let mut host = spool::CaptureOutput::default();
    let mut io = crate::io::TestDispatcher::new();
    let (mut pauses, mut moves) = (0u64, 0u64);
    let mut on = 0;
    let mut move_run = |run: &mut Run, moves: &mut u64| -> Result<(), String> {
        on = 1 - on;
        let (program, engine) = programs[on];
        run.upgrade(std::sync::Arc::clone(program.bytecode()), engine.natives())
            .map_err(|why| format!("move {moves} refused: {why}"))?;
        *moves += 1;
        Ok(())
    };
    let end = loop {
        let step = run.resume(&mut host);
        if budget.is_some() && matches!(step, Ok(Step::Io(_) | Step::Yield(_))) {
            move_run(&mut run, &mut moves)?;
        }
        match step {
            Ok(Step::Done(_)) => break Ok(()),
            Ok(Step::Io(batch)) => {
                use spool::Dispatcher as _;
                if !batch.is_empty() {
                    io.submit(batch);
                }
                let finished = io.wait();
                if finished.is_empty() {
                    return Err("waits for I/O nothing answers".into());
                }
                for completion in finished {
                    run.complete(completion.id, completion.result);
                }
            }
            Ok(Step::Yield(value)) => host.lines.push(run.display(value)),
            Ok(Step::Paused) => {
                pauses += 1;
                // Every pause early on (every instruction, with a budget of
                // one), then ever more sparsely.
                if pauses <= 400 || pauses.is_power_of_two() {
                    move_run(&mut run, &mut moves)?;
                }
            }
            Err(error) => break Err(format!("{}: {}", error.kind, error.message)),
        }
    };
    Ok(((host.lines, end), moves))
}

#[test]
fn every_script_ends_the_same_when_moved_between_numberings_as_it_runs() {
    // The second numbering: one more function (and lambda) and type at
    // the script's end, so its top level and lambdas get other numbers,
    // and one more I/O operation declared before the command line's, so
    // every one of those gets another number.
    let plain = spool_cli::engine();
    let mut shifted = Engine::new();
    shifted
        .register_io("fn upgrade_pad_op() -> int")
        .expect("declares");
    for signature in spool_cli::cli_io::SIGNATURES {
        shifted.register_io(signature).expect("declares");
    }
    let pad = "\nfn upgrade_pad_fn() -> [int] {\n    return [1].map(fn(upgrade_pad_x) => upgrade_pad_x)\n}\n\
               struct UpgradePadStruct { upgrade_pad_field: int }\nenum UpgradePadEnum { A, B(int) }\n";
    let mut failures = Vec::new();
    let mut total_moves = 0;
    for path in spool_tests::conformance_scripts() {
        let name = spool_tests::relative_name(&path);
        if !spool_tests::selected(&name) {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("reads");
        let directives = spool_tests::Directives::parse(&source);
        if directives.skip.is_some() || directives.expects_compile_error() {
            continue;
        }
        let padded = format!("{source}{pad}");
        let (Ok(first), Ok(second)) = (
            plain.compile_with(&name, source.as_bytes(), spool::files::beside(&path)),
            shifted.compile_with(&name, padded.as_bytes(), spool::files::beside(&path)),
        ) else {
            failures.push(format!("{name}: does not compile with the padding"));
            continue;
        };
        let programs = [(&first, &plain), (&second, &shifted)];
        let expected = run_moving(programs, &directives.args, None);
        for budget in [1, 97] {
            let moved = run_moving(programs, &directives.args, Some(budget));
            match (expected.as_ref(), moved.as_ref()) {
                (Ok((expected, _)), Ok((moved, moves))) => {
                    total_moves += *moves;
                    if expected != moved {
                        failures.push(format!(
                            "{name} (budget {budget}, {moves} moves): expected {expected:?}, got {moved:?}"
                        ));
                    }
                }
                (_, Err(why)) | (Err(why), _) => {
                    failures.push(format!("{name} (budget {budget}): {why}"))
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(total_moves > 10_000, "only {total_moves} moves");
}

/// The files of a program whose run waits in an imported function.
fn imported_program(ask: &str) -> [(&'static str, String); 2] {
    [
        (
            "flow.spl",
            "import \"steps/work.spl\"\n\
             let total = step(1)\n\
             let answer = ask(\"go on?\")\n\
             print(\"${answer} ${total + step(2)}\")\n"
                .to_string(),
        ),
        (
            "steps/work.spl",
            format!(
                "fn step(n: int) -> int {{ return n * 10 }}\n\
                 fn ask(question: str) -> str {{\n\
                 \x20 let got: str = yield question\n\
                 \x20 return {ask}\n\
                 }}\n"
            ),
        ),
    ]
}

/// `flow.spl` of [`imported_program`] saved at its yield in `test`'s
/// scratch folder, then its imported file replaced by `changed`.
fn suspended_in_import(test: &str, changed: &str, ask: &str) -> PathBuf {
    let files = imported_program("got");
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(n, s)| (*n, s.as_str())).collect();
    let dir = scratch(test, &borrowed);
    let output = spool(&dir, &["run", "flow.spl", "--state", "state.run", "--step"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "go on?\n");
    let [_, (name, text)] = imported_program(ask);
    std::fs::write(dir.join(name), text.replace("n * 10", changed)).expect("writes");
    dir
}

#[test]
fn a_function_of_an_imported_file_the_run_is_not_inside_may_change() {
    let dir = suspended_in_import("upgrade_import_edit", "n * 100", "got");
    let output = resume_on(&dir, "flow.spl");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "yes 210\n");
}

#[test]
fn a_changed_live_function_of_an_imported_file_is_refused_naming_file_and_function() {
    let dir = suspended_in_import("upgrade_import_live", "n * 10", "got + \"!\"");
    let output = resume_on(&dir, "flow.spl");
    assert_exit(&output, 2);
    let errors = stderr(&output);
    assert!(
        errors.contains("`ask` (suspended at steps/work.spl:3:18) changed"),
        "{errors}"
    );
}
