//! The `spool` command line: exit codes (0 done, 1 script error, 2 usage or
//! compile error), the subcommands `run`, `check` and `disasm`, arguments
//! after `--`, the format of uncaught runtime errors on stderr, and
//! programs of several files (imports read beside the main file).
//!
//! The binary is built once per test run with `cargo build -p spool --bin
//! spool` into the same target directory as this test binary. Each test
//! writes its scripts into its own scratch directory and runs `spool` there,
//! so file names in traces are short and relative.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use spool_tests::workspace_root;

#[test]
fn run_prints_and_exits_0() {
    let dir = scratch(
        "run_ok",
        &[("hello.spl", "print(\"hello\")\nprint(1 + 2)\n")],
    );
    let output = spool(&dir, &["run", "hello.spl"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "hello\n3\n");
}

/// On Linux with glibc the executable loads the C library alone (beside
/// the dynamic loader, which runs it): the unwinder is linked in
/// (`repl/build.rs`), `pow` is Rust's own (`spool_stdlib::pow`), SQLite is
/// built without the one part that calls the math library
/// (`.cargo/config.toml`) and tokio without its multi-threaded scheduler,
/// whose statistics call `powf` (the workspace's `Cargo.toml`). Each
/// library more costs every start its loading (`examples/bench/README.md`:
/// W0).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_executable_loads_only_the_c_library() {
    let output = Command::new("readelf")
        .arg("--dynamic")
        .arg(spool_binary())
        .output()
        .expect("readelf (binutils, installed with the C compiler) runs");
    assert!(
        output.status.success(),
        "readelf failed: {}",
        stderr(&output)
    );
    let needed: Vec<String> = stdout(&output)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| Some(line.split_once('[')?.1.trim_end_matches(']').to_string()))
        .filter(|name| !name.starts_with("ld-linux"))
        .collect();
    assert_eq!(needed, ["libc.so.6"], "the executable's libraries");
}

#[test]
fn file_alone_works_like_run() {
    let dir = scratch("file_alone", &[("hello.spl", "print(\"hello\")\n")]);
    let output = spool(&dir, &["hello.spl"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "hello\n");
}

#[test]
fn run_passes_arguments_after_double_dash() {
    let dir = scratch(
        "args",
        &[("args.spl", "print(args())\nprint(args().len())\n")],
    );
    let output = spool(&dir, &["run", "args.spl", "--", "a", "b c"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "[\"a\", \"b c\"]\n2\n");
    let output = spool(&dir, &["run", "args.spl"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "[]\n0\n");
}

/// The script of [`runtime_error_exits_1_with_a_trace`]: an index error two
/// calls deep, after some output.
const TRACE_SCRIPT: &str = "\
// An index error two calls deep.
fn get_item(xs: [int], i: int) -> int {
  return xs[i]
}
fn show(xs: [int]) {
  print(get_item(xs, 5))
}
print(\"before\")
show([1, 2, 3])
print(\"never\")
";

#[test]
fn runtime_error_exits_1_with_a_trace() {
    let dir = scratch("trace", &[("trace.spl", TRACE_SCRIPT)]);
    let output = spool(&dir, &["run", "trace.spl"]);
    assert_exit(&output, 1);
    assert_eq!(
        stdout(&output),
        "before\n",
        "output before the error is kept"
    );
    let err = stderr(&output);
    let mut lines = err.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with("error: Index: "),
        "first stderr line {first:?} in:\n{err}"
    );
    let frames: Vec<(String, String, usize, usize)> = lines.filter_map(parse_frame).collect();
    let summary: Vec<(&str, &str, usize)> = frames
        .iter()
        .map(|(function, file, line, _)| (function.as_str(), file.as_str(), *line))
        .collect();
    assert_eq!(
        summary,
        [
            ("get_item", "trace.spl", 3),
            ("show", "trace.spl", 6),
            ("main", "trace.spl", 9)
        ],
        "frames in:\n{err}"
    );
    for (_, _, line, col) in &frames {
        let text = TRACE_SCRIPT.lines().nth(line - 1).unwrap_or_default();
        assert!(
            (1..=text.len()).contains(col),
            "column {col} outside line {line} {text:?}:\n{err}"
        );
    }
}

/// `  at NAME (FILE:LINE:COL)` as `(NAME, FILE, LINE, COL)`.
fn parse_frame(line: &str) -> Option<(String, String, usize, usize)> {
    let rest = line.strip_prefix("  at ")?;
    let (function, place) = rest.split_once(" (")?;
    let place = place.strip_suffix(')')?;
    let mut parts = place.rsplitn(3, ':');
    let col = parts.next()?.parse().ok()?;
    let line_number = parts.next()?.parse().ok()?;
    let file = parts.next()?;
    Some((function.to_string(), file.to_string(), line_number, col))
}

#[test]
fn uncaught_throw_reports_its_kind_and_message() {
    let source = "// A custom error.\nthrow Error(kind: \"Invalid\", message: \"bad input\")\n";
    let dir = scratch("throw", &[("throw.spl", source)]);
    let output = spool(&dir, &["throw.spl"]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.starts_with("error: Invalid: bad input\n"),
        "stderr:\n{err}"
    );
    assert!(err.contains("  at main (throw.spl:2:"), "stderr:\n{err}");
}

#[test]
fn compile_error_exits_2_with_a_diagnostic() {
    let dir = scratch(
        "compile_error",
        &[("bad.spl", "let x: int = \"s\"\nprint(x)\n")],
    );
    let output = spool(&dir, &["run", "bad.spl"]);
    assert_exit(&output, 2);
    assert_eq!(stdout(&output), "", "nothing runs");
    assert!(
        stderr(&output).contains("spool::E0"),
        "stderr:\n{}",
        stderr(&output)
    );
}

#[test]
fn check_accepts_good_and_rejects_bad() {
    let dir = scratch(
        "check",
        &[
            ("good.spl", "print(\"ran\")\n"),
            ("bad.spl", "print(undefined_name)\n"),
        ],
    );
    let good = spool(&dir, &["check", "good.spl"]);
    assert_exit(&good, 0);
    assert!(
        !stdout(&good).contains("ran"),
        "check must not run the script"
    );
    let bad = spool(&dir, &["check", "bad.spl"]);
    assert_exit(&bad, 2);
    let err = stderr(&bad);
    assert!(
        err.contains("spool::E0") && err.contains("bad.spl"),
        "stderr:\n{err}"
    );
}

#[test]
fn disasm_prints_the_bytecode() {
    let source = "fn add(a: int, b: int) -> int {\n  return a + b\n}\nprint(add(1, 2))\n";
    let dir = scratch("disasm", &[("add.spl", source)]);
    let output = spool(&dir, &["disasm", "add.spl"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(text.lines().count() >= 3, "disassembly:\n{text}");
    assert!(text.contains("add"), "the function's name appears:\n{text}");
    assert!(
        !text.lines().any(|line| line == "3"),
        "disasm must not run the script"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = scratch("missing", &[]);
    for args in [
        &["run", "no_such_file.spl"][..],
        &["no_such_file.spl"],
        &["check", "no_such_file.spl"],
    ] {
        let output = spool(&dir, args);
        assert_exit(&output, 2);
        let err = stderr(&output);
        assert!(
            err.contains("no_such_file.spl"),
            "`spool {}` stderr:\n{err}",
            args.join(" ")
        );
    }
}

#[test]
fn unknown_flag_prints_usage() {
    let dir = scratch("usage", &[]);
    let output = spool(&dir, &["--no-such-flag"]);
    assert_exit(&output, 2);
    let all = format!("{}{}", stdout(&output), stderr(&output)).to_lowercase();
    assert!(all.contains("usage"), "output:\n{all}");
}

/// Runs the `spool` binary in `dir` with `args`.
pub(crate) fn spool(dir: &Path, args: &[&str]) -> Output {
    Command::new(spool_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .env("NO_COLOR", "1")
        .output()
        .expect("cannot run the spool binary")
}

#[track_caller]
pub(crate) fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fresh directory for one test, holding `files` (name, contents).
pub(crate) fn scratch(test: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = profile_dir().join("spool-cli-tests").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
    for (name, contents) in files {
        let path = dir.join(name);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).expect("cannot create a scratch folder");
        }
        std::fs::write(path, contents).expect("cannot write a scratch script");
    }
    dir
}

/// `<target>/<profile>`: this test binary lives in its `deps/`.
pub(crate) fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("no current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary outside <target>/<profile>/deps")
        .to_path_buf()
}

/// The `spool` binary, built on first use.
pub(crate) fn spool_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_spool)
}

fn build_spool() -> PathBuf {
    // The whole workspace's features (as `cargo test --workspace` builds
    // them), so the libraries the tests were built with are reused rather
    // than built again without the examples' features.
    cargo_build(&["--workspace", "--bins"]);
    profile_dir().join(format!("spool{}", std::env::consts::EXE_SUFFIX))
}

/// Runs `cargo build ARGS` for the profile this test binary was built in,
/// into its target directory; fails the test if the build fails.
pub(crate) fn cargo_build(args: &[&str]) {
    let profile = profile_dir();
    let target = profile.parent().expect("profile dir has a parent");
    let cargo = std::env::var("CARGO")
        .unwrap_or_else(|_| option_env!("CARGO").unwrap_or("cargo").to_string());
    let mut command = Command::new(cargo);
    command.arg("build").args(args);
    if profile.file_name().is_some_and(|name| name == "release") {
        command.arg("--release");
    }
    let output = command
        .env("CARGO_TARGET_DIR", target)
        .current_dir(workspace_root())
        .output()
        .expect("cannot run cargo");
    assert!(
        output.status.success(),
        "`cargo build {}` failed:\n{}",
        args.join(" "),
        stderr(&output)
    );
}

#[test]
fn top_level_yield_prints_and_reads_answers_from_stdin() {
    let ask = "let name: str = yield \"name?\"\nprint(\"hi ${name}\")\nlet n = yield \"count?\"\nprint(n.parse_int()! + 1)\n";
    let count = "let n: int = yield \"count?\"\nprint(n + 1)\n";
    let silent = "let ignored = yield 3\nprint(ignored)\n";
    let dir = scratch(
        "yield_stdin",
        &[
            ("ask.spl", ask),
            ("count.spl", count),
            ("silent.spl", silent),
        ],
    );
    let output = spool_with_stdin(&dir, &["ask.spl"], "Ada\n41\n");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "name?\nhi Ada\ncount?\n42\n");
    let output = spool_with_stdin(&dir, &["count.spl"], "many\n");
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("`many` is not valid JSON for the `int`"),
        "{}",
        stderr(&output)
    );
    let output = spool_with_stdin(&dir, &["ask.spl"], "");
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("standard input ended"),
        "{}",
        stderr(&output)
    );
    // A script whose yields receive nothing does not read standard input.
    let output = spool_with_stdin(&dir, &["silent.spl"], "");
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "3\nnil\n");
}

/// Runs `spool` in `dir` with `input` on its standard input.
pub(crate) fn spool_with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(spool_binary())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spool starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // The run may stop reading early (end of input is an error), so a
    // broken pipe here is expected.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().expect("spool finishes")
}

/// A script that calls `exit(3)` with a task running: the defers of both
/// tasks print, then the process exits with the script's status and
/// nothing on stderr.
const EXIT_SCRIPT: &str = "\
// exit ends the run with a status.
fn worker(ch: Chan<int>) {
  defer print(\"worker defer\")
  ch.recv()
}
let ch: Chan<int> = chan(0)
let t = spawn worker(ch)
sleep(1)
defer print(\"main defer\")
exit(3)
print(\"never\")
";

#[test]
fn exit_ends_the_process_with_the_status_after_the_defers() {
    let dir = scratch("exit", &[("exit.spl", EXIT_SCRIPT)]);
    let output = spool(&dir, &["run", "exit.spl"]);
    assert_exit(&output, 3);
    assert_eq!(stdout(&output), "main defer\nworker defer\n");
    assert_eq!(stderr(&output), "");
    // With --state the saved run is finished: resuming it says so and
    // exits with the same status; a new run may overwrite it.
    let output = spool(&dir, &["run", "exit.spl", "--state", "exit.run"]);
    assert_exit(&output, 3);
    let inspected = stdout(&spool(&dir, &["inspect", "exit.run"]));
    assert!(
        inspected.contains("status: finished with exit(3)"),
        "{inspected}"
    );
    let output = spool(&dir, &["resume", "exit.run"]);
    assert_exit(&output, 3);
    assert!(stderr(&output).contains("exit(3)"), "{}", stderr(&output));
    let output = spool(&dir, &["run", "exit.spl", "--state", "exit.run"]);
    assert_exit(&output, 3);
    let zero = scratch(
        "exit_zero",
        &[("zero.spl", "print(1)\nexit(0)\nprint(2)\n")],
    );
    let output = spool(&zero, &["run", "zero.spl"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "1\n");
}

/// Prints a random number, yields (answered with nil at once, or a stop
/// under `--step`), and prints another.
const RANDOM_SCRIPT: &str = "\
// random() around a top-level yield.
print(random())
yield 0
print(random())
";

#[test]
fn random_is_seeded_from_entropy_or_by_seed_and_saved_with_the_run() {
    let dir = scratch("random", &[("random.spl", RANDOM_SCRIPT)]);
    let first = spool(&dir, &["run", "random.spl"]);
    let second = spool(&dir, &["run", "random.spl"]);
    assert_exit(&first, 0);
    assert_exit(&second, 0);
    assert_ne!(
        stdout(&first),
        stdout(&second),
        "two fresh runs drew the same numbers"
    );
    let seeded = spool(&dir, &["run", "random.spl", "--seed", "7"]);
    let again = spool(&dir, &["run", "random.spl", "--seed=7"]);
    assert_exit(&seeded, 0);
    assert_eq!(stdout(&seeded), stdout(&again), "--seed 7 twice differs");
    let lines: Vec<String> = stdout(&seeded).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_ne!(lines[0], lines[2]);
    // Saved at the yield and resumed in another process, the run goes on
    // with the same sequence.
    let stepped = spool(
        &dir,
        &[
            "run",
            "random.spl",
            "--seed",
            "7",
            "--state",
            "r.run",
            "--step",
        ],
    );
    assert_exit(&stepped, 0);
    assert_eq!(stdout(&stepped), format!("{}\n{}\n", lines[0], lines[1]));
    let resumed = spool(&dir, &["resume", "r.run"]);
    assert_exit(&resumed, 0);
    assert_eq!(stdout(&resumed), format!("{}\n", lines[2]));
    let bad = spool(&dir, &["run", "random.spl", "--seed", "-1"]);
    assert_exit(&bad, 2);
}

/// A program of three files: imports are relative to the importing file,
/// wherever `spool` runs.
const IMPORT_FILES: [(&str, &str); 3] = [
    (
        "app/main.spl",
        "import \"steps/billing.spl\" as billing\n\
         let invoice = billing.charge(4)\n\
         print(invoice.describe())\n\
         print(billing.fail(invoice))\n",
    ),
    (
        "app/steps/billing.spl",
        "import \"../lib/money.spl\"\n\
         struct Invoice { cents: int }\n\
         fn charge(n: int) -> Invoice { return Invoice(cents: n * 250) }\n\
         fn describe(i: Invoice) -> str { return \"due ${dollars(i.cents)}\" }\n\
         fn fail(i: Invoice) -> int {\n\
         \x20 let parts = [i.cents]\n\
         \x20 return parts[2]\n\
         }\n",
    ),
    (
        "app/lib/money.spl",
        "fn dollars(cents: int) -> str { return \"$${cents / 100}\" }\n",
    ),
];

#[test]
fn run_follows_imports_and_traces_name_the_imported_file() {
    let dir = scratch("imports_run", &IMPORT_FILES);
    let output = spool(&dir, &["run", "app/main.spl"]);
    assert_exit(&output, 1);
    assert_eq!(stdout(&output), "due $10\n");
    let errors = stderr(&output);
    assert!(
        errors.contains("  at fail (steps/billing.spl:7:10)\n  at main (app/main.spl:4:7)"),
        "{errors}"
    );
}

#[test]
fn a_compile_error_in_an_imported_file_shows_that_file() {
    let mut files = IMPORT_FILES;
    files[2].1 = "fn dollars(cents: int) -> str { return cents }\n";
    let dir = scratch("imports_error", &files);
    let output = spool(&dir, &["check", "app/main.spl"]);
    assert_exit(&output, 2);
    let errors = stderr(&output);
    assert!(errors.contains("mismatched types"), "{errors}");
    assert!(errors.contains("╭─[lib/money.spl:1:40]"), "{errors}");
    assert!(errors.contains("1 │ fn dollars(cents: int)"), "{errors}");
    files[0].1 = "import \"steps/missing.spl\"\nprint(1)\n";
    let dir = scratch("imports_missing", &files);
    let output = spool(&dir, &["run", "app/main.spl"]);
    assert_exit(&output, 2);
    let errors = stderr(&output);
    assert!(
        errors.contains("cannot import `steps/missing.spl`: no such file"),
        "{errors}"
    );
    assert!(errors.contains("╭─[app/main.spl:1:8]"), "{errors}");
}

/// A script that prints a number it computes (so that its digits are in
/// no saved program), then waits at a top-level `yield`.
const PRINT_THEN_WAIT: &str = "\
// Prints, then waits for an answer.
print(6 * 7 * 1000003)
let answer: str = yield \"waiting\"
print(answer)
";

/// Started with its standard output closed, `spool` opens `/dev/null` in
/// its place, so the saved run it writes next does not take descriptor 1
/// and what the script prints does not end up inside it.
#[test]
fn a_closed_standard_output_does_not_become_the_saved_run() {
    let dir = scratch("closed_stdout", &[("wait.spl", PRINT_THEN_WAIT)]);
    let status = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" run wait.spl --step --state wait.run >&-")
        .arg(spool_binary())
        .current_dir(&dir)
        .status()
        .expect("sh starts");
    assert_eq!(status.code(), Some(0), "{status:?}");
    let saved = std::fs::read(dir.join("wait.run")).expect("the run was saved");
    let marker = b"42000126";
    assert!(
        !saved.windows(marker.len()).any(|window| window == marker),
        "the printed line went into the saved run"
    );
    let output = spool(&dir, &["resume", "wait.run", "--send", "\"answered\""]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "answered\n");
}

/// Output larger than the command line's buffer (64 KiB) arrives whole and
/// in order, lines printed before a runtime error included, before the
/// error on standard error.
#[test]
fn output_past_the_buffer_arrives_whole_and_in_order() {
    let dir = scratch(
        "much_output",
        &[(
            "much.spl",
            "// Prints about 1.2 MB, then fails.
\
             for i in 0..150000 { print(\"line ${i}\") }
\
             let xs: [int] = []
print(xs[1])
",
        )],
    );
    let output = spool(&dir, &["run", "much.spl"]);
    assert_exit(&output, 1);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 150000);
    assert!(lines
        .iter()
        .enumerate()
        .all(|(i, line)| *line == format!("line {i}")));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Index"));
}

/// A reader that goes away early (`spool run … | head -1`) does not end
/// `spool` with `SIGPIPE`: the write fails and `spool` exits with a status.
#[test]
fn a_closed_pipe_on_standard_output_is_not_a_signal() {
    use std::io::BufRead;
    use std::process::Stdio;
    let dir = scratch(
        "closed_pipe",
        &[(
            "many.spl",
            "// Prints many lines.\nfor i in 0..200000 { print(i) }\n",
        )],
    );
    let mut child = Command::new(spool_binary())
        .args(["run", "many.spl"])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spool starts");
    let mut first = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("piped"));
    reader.read_line(&mut first).expect("a first line");
    assert_eq!(first, "0\n");
    drop(reader);
    let status = child.wait().expect("spool finishes");
    assert!(status.code().is_some(), "ended by a signal: {status:?}");
}
