//! When `spool run --state` writes its checkpoints, and what a crash at any
//! moment costs, through the real binary: the checkpoint that ends a CPU
//! phase is written before its I/O starts (write-ahead), so a process
//! killed during I/O resumes inside the call with the same request and no
//! script code re-run; a `sleep` keeps its deadline across the crash, and
//! so do a `select` waiting with `after` and a `timeout`; an
//! uncaught error leaves the last good checkpoint resumable (also on a
//! fixed script) with the failure recorded beside it; a saved run is never
//! thrown away by starting over. Also the answers to top-level `yield`s
//! (any type, from standard input or `--send`), `input`, and what `spool
//! inspect` shows.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{assert_exit, scratch, spool, spool_binary, spool_with_stdin, stderr, stdout};

/// The script of the write-ahead report: the run is inside `pause` for
/// three seconds.
const PAUSE_SCRIPT: &str = "fn report(n: int) -> str { return \"v1 report ${n}\" }
fn pause() { sleep(3000) }
print(\"before\")
pause()
print(report(7))
";

/// Starts `spool ARGS` in `dir` in the background.
fn start(dir: &Path, args: &[&str]) -> Child {
    Command::new(spool_binary())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spool starts")
}

/// Waits until `spool inspect PATH` shows `text` (the checkpoint is on
/// the disk), at most ten seconds.
fn wait_for_checkpoint(dir: &Path, path: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let output = spool(dir, &["inspect", path]);
        let shown = stdout(&output);
        if shown.contains(text) {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint showing {text:?}; last:\n{shown}{}",
            stderr(&output)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills `child` with SIGKILL and gives what it printed.
fn kill(mut child: Child) -> String {
    child.kill().expect("kill works");
    let output = child.wait_with_output().expect("output");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_run_killed_during_io_resumes_inside_the_call_and_its_sleep_keeps_its_deadline() {
    let changed = PAUSE_SCRIPT.replace("sleep(3000)", "sleep(3000)\n  print(\"changed\")");
    let fixed = PAUSE_SCRIPT.replace("v1 report", "v2 report");
    let dir = scratch(
        "write_ahead",
        &[
            ("x.spl", PAUSE_SCRIPT),
            ("changed.spl", &changed),
            ("fixed.spl", &fixed),
        ],
    );
    let child = start(&dir, &["run", "x.spl", "--state", "x.run"]);
    // The checkpoint written before the sleep started shows the run
    // inside `pause`, waiting for it.
    let shown = wait_for_checkpoint(&dir, "x.run", "pending I/O: 1");
    assert!(
        shown.contains("task 0 (main): waits for sleep(3000) (I/O request #1)"),
        "{shown}"
    );
    assert!(shown.contains("at pause (x.spl:2:14)"), "{shown}");
    assert!(shown.contains("at main (x.spl:4:1)"), "{shown}");
    assert!(
        shown.contains("#1 sleep(3000) for task 0, due in"),
        "{shown}"
    );
    // Kill it at least 1.5 s into the three-second sleep (the checkpoint
    // is written before the sleep starts).
    std::thread::sleep(Duration::from_millis(1500));
    let printed = kill(child);
    assert_eq!(
        printed, "before\n",
        "output is flushed before the checkpoint"
    );

    // The run is inside `pause`: a program that changed it is refused.
    let output = spool(&dir, &["resume", "x.run", "--program", "changed.spl"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("`pause` (suspended at x.spl:2:"),
        "{}",
        stderr(&output)
    );
    // Resumed on a fix of a function it is not inside: the sleep goes on
    // for what is left of it (at most 1.5 s, not three), and nothing
    // before the call runs again.
    let resumed = Instant::now();
    let output = spool(&dir, &["resume", "x.run", "--program", "fixed.spl"]);
    let took = resumed.elapsed();
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "v2 report 7\n");
    assert!(
        took < Duration::from_millis(2600),
        "the resumed sleep took {took:?}: it started over"
    );
}

/// A run waiting in a `select` (a channel nobody sends to, and a
/// three-second `after`), then in a `timeout` of the same length.
const SELECT_SCRIPT: &str = "let inbox: Chan<str> = chan(0)
fn wait_for_mail(c: Chan<str>) -> str {
  select {
    msg = c.recv() => return msg ?? \"closed\"
    after(3000) => return \"nothing for 3 s\"
  }
}
print(\"waiting\")
print(wait_for_mail(inbox))
let r = timeout(3000, fn() -> str {
  defer print(\"child's defer\")
  sleep(60_000)
  return \"late\"
})
print(r ?? \"timed out\")
";

#[test]
fn a_run_killed_while_waiting_in_select_or_timeout_resumes_waiting_with_its_deadline() {
    let dir = scratch("select_deadline", &[("x.spl", SELECT_SCRIPT)]);
    let started = Instant::now();
    let child = start(&dir, &["run", "x.spl", "--state", "x.run"]);
    let shown = wait_for_checkpoint(&dir, "x.run", "pending I/O: 1");
    assert!(
        shown.contains("task 0 (main): waits in a select on a receive, timer (I/O request 1)"),
        "{shown}"
    );
    assert!(shown.contains("at wait_for_mail (x.spl:3:3)"), "{shown}");
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(started.elapsed()));
    assert_eq!(kill(child), "waiting\n");
    // Resumed, it waits in the select for what is left of the timer.
    let resumed = Instant::now();
    let child = start(&dir, &["resume", "x.run"]);
    let shown = wait_for_checkpoint(&dir, "x.run", "timeout");
    let took = resumed.elapsed();
    assert!(
        took < Duration::from_millis(2600),
        "the select's timer took {took:?} after the resume: it started over"
    );
    assert!(shown.contains("pending I/O: 2"), "{shown}");
    // Killed again inside the timeout, and resumed: the timeout's own
    // timer keeps its deadline too, and the child's defers run.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(kill(child), "nothing for 3 s\n");
    let resumed = Instant::now();
    let output = spool(&dir, &["resume", "x.run"]);
    let took = resumed.elapsed();
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "child's defer\ntimed out\n");
    assert!(
        took < Duration::from_millis(2600),
        "the timeout took {took:?} after the resume: it started over"
    );
}

#[test]
fn a_sleep_whose_deadline_passed_while_the_process_was_down_ends_at_once() {
    let dir = scratch("deadline_passed", &[("x.spl", PAUSE_SCRIPT)]);
    let child = start(&dir, &["run", "x.spl", "--state", "x.run"]);
    wait_for_checkpoint(&dir, "x.run", "pending I/O: 1");
    kill(child);
    std::thread::sleep(Duration::from_millis(3100));
    let shown = stdout(&spool(&dir, &["inspect", "x.run"]));
    assert!(
        shown.contains("due now (the deadline has passed)"),
        "{shown}"
    );
    let resumed = Instant::now();
    let output = spool(&dir, &["resume", "x.run"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "v1 report 7\n");
    assert!(resumed.elapsed() < Duration::from_millis(1500));
}

/// Fails dividing by zero after an I/O phase; `FIXED` does not.
const FAILING_SCRIPT: &str = "fn step(n: int) -> int {
  sleep(10)
  return n * 2
}
fn later(n: int) -> int { return 100 / n }
let a = step(1)
print(\"a = ${a}\")
print(\"b = ${later(0)}\")
";

#[test]
fn a_failed_run_keeps_its_last_checkpoint_and_continues_on_a_fix() {
    let fixed = FAILING_SCRIPT.replace(
        "{ return 100 / n }",
        "{ if n == 0 { return -1 }; return 100 / n }",
    );
    let dir = scratch(
        "failed_run",
        &[("f.spl", FAILING_SCRIPT), ("fixed.spl", &fixed)],
    );
    let output = spool(&dir, &["run", "f.spl", "--state", "f.run"]);
    assert_exit(&output, 1);
    assert_eq!(stdout(&output), "a = 2\n");
    assert!(
        stderr(&output).starts_with("error: DivByZero"),
        "{}",
        stderr(&output)
    );

    // The failure is recorded where `inspect` shows it, with its trace,
    // beside the last good checkpoint (inside `step`'s sleep).
    let shown = stdout(&spool(&dir, &["inspect", "f.run"]));
    assert!(
        shown.contains("status: failed; what follows is its last checkpoint"),
        "{shown}"
    );
    assert!(
        shown.contains("  error: DivByZero: division by zero"),
        "{shown}"
    );
    assert!(shown.contains("    at later (f.spl:5:"), "{shown}");
    assert!(shown.contains("at step (f.spl:2:3)"), "{shown}");

    // Starting over over it is refused; resuming on the fix continues
    // from the checkpoint (lines printed after it come again).
    let output = spool(&dir, &["run", "f.spl", "--state", "f.run"]);
    assert_exit(&output, 2);
    let output = spool(&dir, &["resume", "f.run", "--program", "fixed.spl"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "a = 2\nb = -1\n");
    assert!(
        stderr(&output).contains("the last attempt of this run failed (DivByZero"),
        "{}",
        stderr(&output)
    );
    let shown = stdout(&spool(&dir, &["inspect", "f.run"]));
    assert!(shown.contains("status: finished"), "{shown}");
}

#[test]
fn starting_over_never_throws_a_saved_run_away() {
    let dir = scratch(
        "no_overwrite",
        &[
            ("x.spl", "let who: str = yield \"who?\"\nprint(who)\n"),
            ("notes.txt", "my notes"),
        ],
    );
    let output = spool(&dir, &["run", "x.spl", "--state", "x.run", "--step"]);
    assert_exit(&output, 0);
    let output = spool(&dir, &["run", "x.spl", "--state", "x.run"]);
    assert_exit(&output, 2);
    assert_eq!(
        stderr(&output),
        "error: `x.run` holds an unfinished run of x.spl; `spool resume x.run` continues it \
         (to start over, delete `x.run` first)\n"
    );
    let output = spool(&dir, &["run", "x.spl", "--state", "notes.txt"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("is not a saved run"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "my notes"
    );
    let output = spool(&dir, &["run", "x.spl", "--state", "."]);
    assert_exit(&output, 2);
    // A finished run may be started over.
    let output = spool(&dir, &["resume", "x.run", "--send", "\"ada\""]);
    assert_exit(&output, 0);
    let output = spool(&dir, &["run", "x.spl", "--state", "x.run", "--step"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "who?\n");
}

#[test]
fn yields_of_any_type_are_answered_from_stdin_and_send() {
    let script = "struct Order { id: int, items: [str], rush: bool? }
let order: Order = yield \"order?\"
print(order)
let next: Order = yield \"next?\"
print(next.items.len())
";
    let dir = scratch("typed_answers", &[("o.spl", script)]);
    let input = "{\"id\": 7, \"items\": [\"tea\"], \"rush\": null}\n{\"id\": 8, \"items\": [], \"rush\": true}\n";
    let output = spool_with_stdin(&dir, &["o.spl"], input);
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        "order?\nOrder(id: 7, items: [\"tea\"], rush: nil)\nnext?\n0\n"
    );
    let output = spool(&dir, &["run", "o.spl", "--state", "o.run", "--step"]);
    assert_exit(&output, 0);
    let output = spool(
        &dir,
        &["resume", "o.run", "--send", "{\"id\": 1, \"items\": [2]}"],
    );
    assert_exit(&output, 2);
    assert_eq!(
        stderr(&output),
        "error: `{\"id\": 1, \"items\": [2]}` is not a `Order`, which the pending `yield` \
         receives: at .items[0]: expected a string, found the number 2\n"
    );
    let output = spool(
        &dir,
        &[
            "resume",
            "o.run",
            "--send",
            "{\"id\": 1, \"items\": [\"a\"], \"rush\": false}",
        ],
    );
    assert_exit(&output, 0);
    assert_eq!(
        stdout(&output),
        "Order(id: 1, items: [\"a\"], rush: false)\nnext?\n"
    );
}

#[test]
fn input_reads_a_line_and_the_end_of_input_is_an_io_error() {
    let script = "let name = input(\"name? \")\nprint(\"hi ${name}\")\ntry {\n  input(\"more? \")\n} catch e {\n  print(\"${e.kind}: ${e.message}\")\n}\n";
    let dir = scratch("input", &[("in.spl", script)]);
    let output = spool_with_stdin(&dir, &["in.spl"], "ada\n");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "name? hi ada\nmore? Io: end of input\n");
}

#[test]
fn inspect_shows_strings_on_one_line_coroutine_stacks_and_io_as_written() {
    let script = "fn gen(label: str) {
  let note = \"two\\nlines\"
  yield 1
  print(note)
}
let c = coroutine(fn() { gen(\"a\\\"b\") })
c.next()
let text = \"first\\nsecond\"
let args = [\"5\"]
exec(\"sleep\", args)
print(text)
";
    let dir = scratch("inspect", &[("i.spl", script)]);
    let child = start(&dir, &["run", "i.spl", "--state", "i.run"]);
    let shown = wait_for_checkpoint(&dir, "i.run", "pending I/O: 1");
    let _ = child.wait_with_output();
    assert!(shown.contains("text = \"first\\nsecond\""), "{shown}");
    assert!(
        shown.contains("#1 exec(\"sleep\", [\"5\"]) for task 0"),
        "{shown}"
    );
    assert!(shown.contains("coroutines: 1 (1 suspended)"), "{shown}");
    assert!(shown.contains("    at gen (i.spl:3:3)"), "{shown}");
    assert!(
        shown.contains("label = \"a\\\"b\", note = \"two\\nlines\""),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .all(|line| !line.starts_with("lines") && !line.starts_with("second")),
        "{shown}"
    );
}
