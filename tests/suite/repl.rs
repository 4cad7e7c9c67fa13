//! The REPL, through the real `spool` binary: piped input (no prompts, no
//! colours) and a pseudo-terminal (line editing, continuation prompts,
//! completion, Ctrl-C, Ctrl-D, history), sessions saved with `:save` and
//! continued with `:load` in a new process.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::cli::spool_binary;

/// What a piped REPL printed and its exit code.
struct Piped {
    stdout: String,
    stderr: String,
    code: i32,
}

/// Runs `spool` with `input` on standard input.
fn piped(input: &str) -> Piped {
    piped_bytes(input.as_bytes())
}

/// Runs `spool` with `input`, which need not be text, on standard input.
fn piped_bytes(input: &[u8]) -> Piped {
    let mut child = Command::new(spool_binary())
        .env("SPOOL_HISTORY", scratch("unused-history"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start spool");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input).expect("cannot write");
    drop(stdin);
    let output = child.wait_with_output().expect("spool did not finish");
    Piped {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code().unwrap_or(-1),
    }
}

/// A fresh path in the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spool-repl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cannot make a scratch directory");
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

// Regression: `input` waited forever for the standard input the prompt's
// own loop held.
#[test]
fn input_at_the_prompt_reads_the_next_line_and_fails_at_the_end() {
    let out = piped("let name = input(\"name? \")\nada\nname.upper()\ninput(\"more? \")\n");
    assert_eq!(out.stdout, "name? = \"ADA\" : str\nmore? ");
    assert!(
        out.stderr.contains("error: Io: end of input"),
        "{}",
        out.stderr
    );
    assert_eq!(out.code, 1);
}

#[test]
fn piped_input_prints_values_and_types_without_prompts() {
    let out = piped(
        "let x = 40\n\
         x + 2\n\
         fn double(n: int) -> int {\n\
         \x20 return n * 2\n\
         }\n\
         double(x)\n\
         \"text\"\n\
         [1, 2].map(fn(v) => v * 10)\n\
         [\"a\": 1.5]\n\
         let maybe: int? = nil\n\
         maybe\n\
         print(\"printed\")\n\
         enum Shape { Circle(float), Empty }\n\
         Shape.Circle(1.0)\n",
    );
    assert_eq!(out.stderr, "");
    assert_eq!(
        out.stdout,
        "= 42 : int\n= 80 : int\n= \"text\" : str\n= [10, 20] : [int]\n\
         = [\"a\": 1.5] : [str: float]\n= nil : int?\nprinted\n= Circle(1.0) : Shape\n"
    );
    assert_eq!(out.code, 0);
    assert!(!out.stdout.contains('\x1b'), "no colours when piped");
}

#[test]
fn errors_are_shown_and_the_session_goes_on() {
    let out = piped(
        "let x = 1\n\
         let y: str = x\n\
         1 / 0\n\
         x + 1\n\
         let z = [1][5]\n\
         z\n\
         :type x * 2.0\n\
         :type [x]\n\
         :bogus\n\
         x\n",
    );
    assert_eq!(out.stdout, "= 2 : int\n[x] : [int]\n= 1 : int\n");
    for expected in [
        "mismatched types: expected `str`, found `int`",
        "[2]:1:",
        "error: DivByZero: division by zero\n  at main ([3]:1:1)",
        "error: Index:",
        "global `z` was read before its `let` ran",
        "unknown command `:bogus`",
    ] {
        assert!(
            out.stderr.contains(expected),
            "stderr lacks {expected:?}:\n{}",
            out.stderr
        );
    }
    assert_eq!(out.code, 1, "a piped session with errors exits 1");
}

#[test]
fn later_inputs_replace_earlier_declarations() {
    let out = piped(
        "fn f() -> int { return 1 }\n\
         fn g() -> int { return f() }\n\
         fn f() -> int { return 2 }\n\
         f()\n\
         g()\n\
         struct P { a: int }\n\
         struct P { a: int, b: int }\n\
         P(a: 1, b: 2)\n\
         let x = 1\n\
         let x = \"now text\"\n\
         x\n\
         fn h() { }\n\
         fn h() { }\n",
    );
    // Calls are bound when compiled: `g` keeps the `f` it was compiled with.
    assert_eq!(
        out.stdout,
        "= 2 : int\n= 1 : int\n= P(a: 1, b: 2) : P\n= \"now text\" : str\n"
    );
    assert_eq!(out.stderr, "", "redefinitions are not errors");
}

#[test]
fn unfinished_input_continues_on_the_next_line() {
    let out = piped(
        "let total = 1 +\n\
         2 +\n\
         3\n\
         total\n\
         let xs = [\n\
         \x20 1,\n\
         \x20 2,\n\
         ]\n\
         xs\n\
         \"${\n\
         total}\"\n\
         /* a comment\n\
         still */ total\n",
    );
    assert_eq!(out.stderr, "");
    assert_eq!(
        out.stdout,
        "= 6 : int\n= [1, 2] : [int]\n= \"6\" : str\n= 6 : int\n"
    );
}

#[test]
fn tasks_io_and_coroutines_work_at_the_prompt() {
    let file = scratch("data.txt");
    std::fs::write(&file, "from a file").expect("cannot write");
    let out = piped(&format!(
        "fn work(n: int) -> int {{ sleep(5); return n * n }}\n\
         let tasks = [spawn work(2), spawn work(3)]\n\
         await tasks[0] + await tasks[1]\n\
         read_file(\"{}\")\n\
         let gen = coroutine(fn() {{ yield 1; yield 2 }})\n\
         gen.resume(nil)\n\
         gen.resume(nil)\n\
         gen.resume(nil)\n\
         gen.status()\n\
         read_file(\"/no/such/file\")\n\
         1\n",
        file.display()
    ));
    assert_eq!(
        out.stdout,
        "= 13 : int\n= \"from a file\" : str\n= 1 : int?\n= 2 : int?\n= nil : int?\n\
         = \"done\" : str\n= 1 : int\n"
    );
    assert!(out.stderr.contains("error: Io:"), "{}", out.stderr);
}

#[test]
fn a_saved_session_continues_in_a_new_process() {
    let state = scratch("session.run");
    let first = piped(&format!(
        "struct Counter {{ n: int }}\n\
         let c = Counter(n: 10)\n\
         fn bump(c: Counter) -> int {{ c.n += 1; return c.n }}\n\
         let gen = coroutine(fn() {{ for i in 0..3 {{ yield i * 100 }} }})\n\
         gen.resume(nil)\n\
         bump(c)\n\
         let add = fn(k: int) => k + c.n\n\
         :save {}\n",
        state.display()
    ));
    assert_eq!(first.stderr, "");
    assert_eq!(
        first.stdout.lines().take(2).collect::<Vec<_>>(),
        ["= 0 : int?", "= 11 : int"]
    );
    assert!(first.stdout.contains("saved the session to"));
    let second = piped(&format!(
        ":load {}\n\
         bump(c)\n\
         gen.resume(nil)\n\
         add(1)\n\
         Counter(n: 1)\n",
        state.display()
    ));
    assert_eq!(second.stderr, "");
    assert_eq!(
        second.stdout.lines().skip(1).collect::<Vec<_>>(),
        [
            "= 12 : int",
            "= 100 : int?",
            "= 13 : int",
            "= Counter(n: 1) : Counter"
        ]
    );
    assert!(second.stdout.starts_with("loaded the session saved in"));
}

#[test]
fn loading_what_is_not_a_session_is_an_error() {
    let damaged = scratch("damaged.run");
    std::fs::write(&damaged, b"SPOOL\x00not really").expect("cannot write");
    let script = scratch("script.spl");
    std::fs::write(&script, "let x = yield 1\n").expect("cannot write");
    let saved_run = scratch("script.run");
    let status = Command::new(spool_binary())
        .args(["run", "--step", "--state"])
        .arg(&saved_run)
        .arg(&script)
        .output()
        .expect("cannot run spool");
    assert!(status.status.success());
    let out = piped(&format!(
        "let kept = 5\n:load {}\n:load {}\n:load /no/such/session\n:load\nkept\n",
        damaged.display(),
        saved_run.display()
    ));
    assert_eq!(out.stdout, "= 5 : int\n", "a failed load keeps the session");
    assert!(
        out.stderr.contains("not a saved REPL session"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("/no/such/session"), "{}", out.stderr);
    assert!(
        out.stderr.contains("`:load` needs a file path"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        4
    );
}

#[test]
fn help_and_disasm_commands() {
    let out =
        piped(":help\nfn twice(n: int) -> int { return n + n }\n:disasm twice\n:disasm nothing\n");
    for command in [
        ":help",
        ":type EXPR",
        ":disasm NAME",
        ":save PATH",
        ":load PATH",
        ":reset",
        ":quit",
    ] {
        assert!(out.stdout.contains(command), "{command} is not in :help");
    }
    assert!(out.stdout.contains("fn twice (arity 1"), "{}", out.stdout);
    assert!(out.stdout.contains("AddInt"), "{}", out.stdout);
    assert!(
        out.stderr.contains("no function `nothing`"),
        "{}",
        out.stderr
    );
}

#[test]
fn bytes_that_are_not_text_do_not_end_the_session() {
    let mut rng = spool_tests::XorShift::new(0xB17E5);
    let noise: Vec<u8> = (0..4000).map(|_| rng.next_u64() as u8).collect();
    let mut input = b"let a = \"\xff\xfe\"\n\x00\n".to_vec();
    input.extend_from_slice(&noise);
    input.extend_from_slice(b"\n}\n]\n)\n\"\n\nlet kept = 7\nkept\n");
    let out = piped_bytes(&input);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, 1);
    let stdout = out.stdout;
    assert!(stdout.ends_with("= 7 : int\n"), "stdout: {stdout}");
}

#[test]
fn reset_forgets_everything() {
    let out = piped("let x = 1\n:reset\nx\nlet x = 2\nx\n");
    assert_eq!(out.stdout, "the session is empty again\n= 2 : int\n");
    assert!(out.stderr.contains("unknown name `x`") || out.stderr.contains("`x`"));
}

/// Runs one prepared input of `session` to its end, answering I/O with an
/// error and yields with nil, giving up after a few million instructions.
fn run_input(session: &mut spool::Session) {
    let run = session.run();
    let mut limits = run.limits();
    limits.budget = Some(100_000);
    run.set_limits(limits);
    let mut host = spool::CaptureOutput::default();
    for _ in 0..50 {
        match run.resume(&mut host) {
            Ok(spool::Step::Done(_)) | Err(_) => return,
            Ok(spool::Step::Paused) => {}
            Ok(spool::Step::Yield(_)) => run.send(spool::Value::Nil),
            Ok(spool::Step::Io(_)) => {
                for request in run.pending_io() {
                    run.complete(request.id, Err("no I/O here".into()));
                }
            }
        }
    }
}

/// The front end runs on a thread of its own: a panic there comes back as
/// an internal-error diagnostic, which is a bug as much as a panic.
fn assert_no_internal_error(error: &spool::CompileError) {
    let internal = error.diagnostics().iter().any(|d| d.code == "spool::E000");
    assert!(!internal, "internal compiler error:\n{}", error.render());
}

/// Every conformance script typed at the prompt, then lines of all of them
/// in a random order into one long session: each input compiles or is
/// refused, runs or fails, and nothing panics. (In process, through
/// `spool::Session`, the REPL's engine.)
#[test]
fn nothing_typed_at_the_prompt_crashes_it() {
    crate::support::with_big_stack(|| {
        let engine = spool_cli::engine();
        let scripts: Vec<String> = spool_tests::conformance_scripts()
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .collect();
        let mut inputs_run = 0;
        for (index, script) in scripts.iter().enumerate().step_by(4) {
            let mut session = spool::Session::new(&engine);
            let mut buffer = String::new();
            for line in script.lines() {
                buffer.push_str(line);
                buffer.push('\n');
                if spool_cli::repl::is_incomplete(&buffer) {
                    continue;
                }
                let input = std::mem::take(&mut buffer);
                let name = format!("[{index}]");
                let outcome =
                    crate::support::catch_panic(|| match session.prepare(&name, &input) {
                        Ok(_) => run_input(&mut session),
                        Err(error) => assert_no_internal_error(&error),
                    });
                assert!(outcome.is_ok(), "input {input:?} panicked: {outcome:?}");
                inputs_run += 1;
            }
        }
        let lines: Vec<&str> = scripts.iter().flat_map(|s| s.lines()).collect();
        let mut rng = spool_tests::XorShift::new(0x00C0_FFEE);
        let mut session = spool::Session::new(&engine);
        for case in 0..1500 {
            let input = lines[rng.below(lines.len())];
            let outcome = crate::support::catch_panic(|| {
                match session.prepare(&format!("[{case}]"), input) {
                    Ok(_) => run_input(&mut session),
                    Err(error) => assert_no_internal_error(&error),
                }
                if let Err(error) = session.type_of(input) {
                    assert_no_internal_error(&error);
                }
                let _ = session.members(input);
            });
            assert!(outcome.is_ok(), "input {input:?} panicked: {outcome:?}");
        }
        let saved = session.save();
        spool::Session::load(&engine, &saved).expect("the long session reloads");
        assert!(inputs_run > 500, "only {inputs_run} inputs were tried");
    });
}

#[cfg(unix)]
mod terminal {
    //! Through a pseudo-terminal, as a person types.

    use std::process::Command;

    use rexpect::session::{spawn_with_options, Options, PtySession};

    use super::{scratch, spool_binary};

    const TIMEOUT_MS: u64 = 20_000;

    fn start(history: &std::path::Path) -> PtySession {
        let mut command = Command::new(spool_binary());
        command.env("SPOOL_HISTORY", history).env("TERM", "xterm");
        let options = Options {
            timeout_ms: Some(TIMEOUT_MS),
            strip_ansi_escape_codes: true,
        };
        let mut session = spawn_with_options(command, options).expect("cannot start spool");
        session.exp_string(":help for help").expect("no banner");
        session.exp_string(FRESH).expect("no prompt");
        session
    }

    /// A fresh, empty prompt as it appears with colours stripped: the
    /// prompt, then the cursor put back at its end. (A redraw while typing
    /// shows the prompt followed by the text typed so far.)
    const FRESH: &str = ">> \r";
    const FRESH_CONTINUATION: &str = ".. \r";

    /// Types `line` and Enter, waits for `expected` (if not empty) and then
    /// for the fresh prompt `prompt`: input typed before the prompt would be
    /// discarded by the terminal, as it is for a person.
    fn enter(session: &mut PtySession, line: &str, expected: &str, prompt: &str) {
        session.send(line).expect("cannot type");
        session.send("\r").expect("cannot type");
        session.flush().expect("cannot type");
        if !expected.is_empty() {
            session
                .exp_string(expected)
                .unwrap_or_else(|e| panic!("after {line:?}, no {expected:?}: {e}"));
        }
        if !prompt.is_empty() {
            session
                .exp_string(prompt)
                .unwrap_or_else(|e| panic!("after {line:?}, no prompt {prompt:?}: {e}"));
        }
    }

    /// Types `text` and Tab, and waits for `completed` on the screen.
    fn complete(session: &mut PtySession, text: &str, completed: &str) {
        session.send(text).expect("cannot type");
        session.send("\t").expect("cannot type");
        session.flush().expect("cannot type");
        session
            .exp_string(completed)
            .unwrap_or_else(|e| panic!("{text:?} was not completed to {completed:?}: {e}"));
    }

    #[test]
    fn typing_completion_continuation_errors_and_keys() {
        let history = scratch("history-1");
        let state = scratch("terminal.run");
        let mut s = start(&history);
        enter(&mut s, "let point = 41", "", FRESH);
        // An open brace continues with the continuation prompt.
        enter(&mut s, "fn inc(n: int) -> int {", "", FRESH_CONTINUATION);
        enter(&mut s, "  return n + 1", "", FRESH_CONTINUATION);
        enter(&mut s, "}", "", FRESH);
        // Tab completes a name in scope.
        complete(&mut s, "inc(poi", "inc(point");
        enter(&mut s, ")", "= 42 : int", FRESH);
        // Tab after `.` completes fields and methods.
        enter(&mut s, "struct Pos { left: int, right: int }", "", FRESH);
        enter(&mut s, "let pos = Pos(left: 1, right: 2)", "", FRESH);
        complete(&mut s, "pos.le", "pos.left");
        enter(&mut s, "", "= 1 : int", FRESH);
        complete(&mut s, "[1, 2].rev", "[1, 2].reverse");
        enter(&mut s, "()", "= [2, 1] : [int]", FRESH);
        // A compile error points into the line; the session goes on.
        enter(&mut s, "let bad: str = point", "mismatched types", FRESH);
        enter(&mut s, "point", "= 41 : int", FRESH);
        // Ctrl-C clears an unfinished input.
        enter(&mut s, "1 +", "", FRESH_CONTINUATION);
        s.send_control('c').unwrap();
        s.exp_string(FRESH).unwrap();
        enter(&mut s, "2", "= 2 : int", FRESH);
        // Ctrl-C stops a running input; the state is intact.
        enter(&mut s, "let spins = 0", "", FRESH);
        enter(&mut s, "while true { spins += 1 }", "", "");
        std::thread::sleep(std::time::Duration::from_millis(500));
        s.send_control('c').unwrap();
        s.exp_string("interrupted")
            .expect("the loop was not stopped");
        s.exp_string(FRESH).unwrap();
        enter(&mut s, "spins > 0", "= true : bool", FRESH);
        // Ctrl-C stops an input waiting on I/O too, long before the sleep
        // ends (the pseudo-terminal's timeout is shorter than the sleep).
        enter(&mut s, "sleep(600000)", "", "");
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.send_control('c').unwrap();
        s.exp_string("interrupted")
            .expect("the sleep was not stopped");
        s.exp_string(FRESH).unwrap();
        enter(&mut s, "spins > 1", "= true : bool", FRESH);
        enter(&mut s, ":type inc", "inc : fn(int) -> int", FRESH);
        let save = format!(":save {}", state.display());
        enter(&mut s, &save, "saved the session", FRESH);
        // Ctrl-D on an empty line leaves.
        s.send_control('d').unwrap();
        s.exp_eof().expect("Ctrl-D did not end the session");

        let saved = std::fs::read_to_string(&history).expect("no history file");
        assert!(saved.contains("let point = 41"), "history: {saved}");

        // A new process: the saved session, and hints from history.
        let mut s = start(&history);
        let load = format!(":load {}", state.display());
        enter(&mut s, &load, "loaded the session", FRESH);
        enter(&mut s, "inc(point) + pos.right", "= 44 : int", FRESH);
        s.send("let poi").unwrap();
        s.flush().unwrap();
        s.exp_string("let point = 41")
            .expect("no hint from history");
        s.send_control('c').unwrap();
        s.exp_string(FRESH).unwrap();
        s.send(":quit\r").unwrap();
        s.flush().unwrap();
        s.exp_eof().expect(":quit did not end the session");
    }
}

#[test]
fn exit_ends_the_input_and_the_session_goes_on() {
    let out = piped(
        "let x = 1\n\
         exit(0)\n\
         x + 1\n\
         exit(3)\n\
         x + 2\n",
    );
    assert_eq!(out.stdout, "= 2 : int\n= 3 : int\n");
    assert!(out.stderr.contains("exit(0)"), "stderr: {}", out.stderr);
    assert!(out.stderr.contains("exit(3)"), "stderr: {}", out.stderr);
    assert_eq!(out.code, 1, "a non-zero exit counts as a failed input");
    let clean = piped("print(1)\nexit(0)\nprint(2)\n");
    assert_eq!(clean.stdout, "1\n2\n");
    assert_eq!(clean.code, 0);
}

/// `import` at the prompt reads files relative to the current directory;
/// the imported names, and `as` names, stay in scope for later inputs.
#[test]
fn imports_at_the_prompt_are_relative_to_the_current_directory() {
    let dir = std::env::temp_dir().join(format!("spool-repl-imports-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("lib")).expect("cannot make a scratch directory");
    std::fs::write(
        dir.join("lib/shapes.spl"),
        "struct Square { side: int }\n\
         enum Kind { Small, Big(int) }\n\
         fn area(s: Square) -> int { return s.side * s.side }\n\
         fn kind(s: Square) -> Kind { if s.side > 2 { return Kind.Big(s.side) }; return Kind.Small }\n",
    )
    .expect("cannot write");
    let mut child = Command::new(spool_binary())
        .env("SPOOL_HISTORY", scratch("unused-history"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start spool");
    let input = "import \"lib/shapes.spl\" as shapes\n\
                 let s = shapes.Square(side: 3)\n\
                 s.area()\n\
                 shapes.kind(s)\n\
                 import \"./lib/../lib/shapes.spl\"\n\
                 area(Square(side: 2))\n\
                 import \"lib/missing.spl\"\n\
                 area(s)\n";
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input.as_bytes()).expect("cannot write");
    drop(stdin);
    let output = child.wait_with_output().expect("spool did not finish");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["= 9 : int", "= Big(3) : Kind", "= 4 : int", "= 9 : int"],
        "{stderr}"
    );
    assert!(
        stderr.contains("cannot import `lib/missing.spl`: no such file"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(1));
}
