//! Stress: every way a script or a source file was found to take a host
//! down, run through the real binary under `ulimit -v`, so an aborted
//! allocation (exit 134) or a runaway fails the test instead of passing
//! quietly. Each probe must end, in bounded time, with success or a clean
//! error of a named kind — and what the script printed before it stays
//! printed.

use std::path::Path;
use std::process::{Command, Output};

use crate::cli::{scratch, spool_binary, stderr, stdout};
use crate::cli_security::finish_within;

/// Address space each probe may use, in KiB: well above what a limited run
/// needs (the compiler's thread reserves a 256 MiB stack), far below what
/// an unaccounted allocation would reach.
const ADDRESS_SPACE_KB: u64 = 1536 << 10;

/// Runs `spool ARGS` in `dir` under `ulimit -v kb`, within `seconds`.
#[track_caller]
fn spool_under_ulimit(dir: &Path, kb: u64, args: &[&str], seconds: u64) -> Output {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {kb} && exec \"$0\" \"$@\""))
        .arg(spool_binary())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE");
    finish_within(&mut command, &format!("spool {}", args.join(" ")), seconds)
}

/// Asserts that `output` ended with exit `code` and its error output holds
/// `expected`.
#[track_caller]
fn assert_clean(probe: &str, output: &Output, code: i32, expected: &str) {
    let err = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(code),
        "{probe}: status {:?}\nstderr:\n{}",
        output.status,
        err.chars().take(2000).collect::<String>()
    );
    assert!(!err.contains("panicked"), "{probe}: {err}");
    assert!(
        err.contains(expected),
        "{probe}: no `{expected}` in\n{}",
        err.chars().take(2000).collect::<String>()
    );
}

/// The runtime probes: (name, script, expected message). Each prints
/// `started` first, which must survive the error.
const RUNAWAY_SCRIPTS: &[(&str, &str, &str)] = &[
    (
        "double",
        "let s = \"x\"\nwhile true { s = s + s }",
        "heap limit exceeded",
    ),
    (
        "push",
        "let xs: [int] = []\nwhile true { xs.push(1) }",
        "heap limit exceeded",
    ),
    (
        "insert",
        "let m: [int: int] = [:]\nlet i = 0\nwhile true { m[i] = i; i += 1 }",
        "heap limit exceeded",
    ),
    (
        "join",
        "let xs = [\"abcdefgh\"]\nwhile true { xs = [xs.join(\",\"), xs.join(\";\")] }",
        "heap limit exceeded",
    ),
    (
        "replace",
        "let s = \"ab\"\nwhile true { s = s.replace(\"a\", \"aa\").replace(\"b\", \"bb\") }",
        "heap limit exceeded",
    ),
    (
        "split",
        "let s = \"abcdefgh\"\nwhile s.len() < 100000000 { s = s + s }\nlet parts = s.split(\"\")",
        "heap limit exceeded",
    ),
    (
        "channel",
        "let c: Chan<int> = chan(1000000000000)\nwhile true { c.send(1) }",
        "heap limit exceeded",
    ),
    (
        "dag_print",
        "struct Node { l: Node?, r: Node? }\nlet a = Node(l: nil, r: nil)\nfor i in 0..30 { a = Node(l: a, r: a) }\nprint(a)",
        "output limit exceeded",
    ),
    (
        "dag_json",
        "struct Node { l: Node?, r: Node? }\nlet a = Node(l: nil, r: nil)\nfor i in 0..30 { a = Node(l: a, r: a) }\nlet s = json_str(a)",
        "output limit exceeded",
    ),
    (
        "spin",
        "let i = 0\nwhile true { i += 1 }",
        "instruction limit exceeded",
    ),
    (
        "tasks",
        "fn idle() { sleep(100000) }\nwhile true { spawn idle() }",
        "task limit exceeded",
    ),
];

#[test]
fn runaway_scripts_end_with_a_limit_error_in_bounded_memory() {
    let mut files: Vec<(String, String)> = RUNAWAY_SCRIPTS
        .iter()
        .map(|(name, body, _)| {
            (
                format!("{name}.spl"),
                format!("print(\"started\")\n{body}\n"),
            )
        })
        .collect();
    // Recursion with 3 000 locals a frame: the stack is counted in bytes.
    let locals: String = (0..3000)
        .map(|i| format!("  let v{i} = n + {i}\n"))
        .collect();
    files.push((
        "frames.spl".into(),
        format!("print(\"started\")\nfn deep(n: int) -> int {{\n{locals}  return deep(n + 1)\n}}\nprint(deep(0))\n"),
    ));
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    let dir = scratch("stress_runaway", &borrowed);
    let limits = ["--max-heap", "64M", "--max-tasks", "10000"];
    let probes = RUNAWAY_SCRIPTS
        .iter()
        .map(|(name, _, expected)| (*name, *expected))
        .chain([("frames", "stack limit exceeded")]);
    for (name, expected) in probes {
        let file = format!("{name}.spl");
        let mut args = vec!["run", file.as_str()];
        args.extend(limits);
        // The loop that only counts meets the instruction limit first.
        args.extend([
            "--max-instructions",
            if name == "spin" {
                "10000000"
            } else {
                "unlimited"
            },
        ]);
        let output = spool_under_ulimit(&dir, ADDRESS_SPACE_KB, &args, 120);
        assert_clean(name, &output, 1, &format!("error: Limit: {expected}"));
        assert_eq!(
            stdout(&output),
            "started\n",
            "{name}: what was printed is kept"
        );
    }
}

#[test]
fn the_default_limits_end_a_runaway_before_the_machine_is_in_trouble() {
    // No flags: the default 2 GiB heap holds under a 4 GiB address space.
    let dir = scratch(
        "stress_defaults",
        &[(
            "double.spl",
            "print(\"started\")\nlet s = \"x\"\nwhile true { s = s + s }\n",
        )],
    );
    let output = spool_under_ulimit(&dir, 4 << 20, &["run", "double.spl"], 120);
    assert_clean(
        "default heap",
        &output,
        1,
        "error: Limit: heap limit exceeded",
    );
    assert_eq!(stdout(&output), "started\n");
}

#[test]
fn hostile_sources_get_diagnostics_in_bounded_memory() {
    let semicolons = ";".repeat(12 << 20);
    let long_line = format!("let x = 1{}\n", " + 1".repeat(700_000));
    let many_errors = "print(1 + \"s\")\n".repeat(40_000);
    let far_column = format!("{}let x: int = \"s\"\n", " ".repeat(70_000));
    let dir = scratch(
        "stress_sources",
        &[
            ("semicolons.spl", &semicolons),
            ("long_line.spl", &long_line),
            ("many_errors.spl", &many_errors),
            ("far_column.spl", &far_column),
        ],
    );
    let output = spool_under_ulimit(&dir, ADDRESS_SPACE_KB, &["check", "semicolons.spl"], 60);
    assert!(
        matches!(output.status.code(), Some(0 | 2)) && !stderr(&output).contains("panicked"),
        "12 MiB of `;`: {:?}\n{}",
        output.status,
        stderr(&output)
    );
    let output = spool_under_ulimit(&dir, ADDRESS_SPACE_KB, &["check", "long_line.spl"], 60);
    assert!(
        output.status.success(),
        "a 3.5 MB line: {}",
        stderr(&output)
    );
    let output = spool_under_ulimit(&dir, ADDRESS_SPACE_KB, &["check", "many_errors.spl"], 60);
    assert_clean("40 000 errors", &output, 2, "more errors");
    let output = spool_under_ulimit(&dir, ADDRESS_SPACE_KB, &["check", "far_column.spl"], 60);
    assert_clean("column 70 001", &output, 2, "far_column.spl:1:70");
}

#[test]
fn a_compiler_without_room_for_its_stack_says_so() {
    // A program with imports is compiled on the front end's thread.
    let dir = scratch(
        "stress_no_stack",
        &[
            ("hi.spl", "import \"greet.spl\" as g\nprint(g.hi())\n"),
            ("greet.spl", "fn hi() -> str { return \"hi\" }\n"),
        ],
    );
    let output = spool_under_ulimit(&dir, 200 << 10, &["run", "hi.spl"], 30);
    assert_clean("ulimit -v 200M", &output, 2, "the compiler could not start");
}

#[test]
fn a_small_script_needs_no_room_for_the_compilers_thread() {
    // Compiled on the main thread (`Engine::compile_with_here`).
    let dir = scratch("stress_small_no_stack", &[("hi.spl", "print(\"hi\")\n")]);
    let output = spool_under_ulimit(&dir, 200 << 10, &["run", "hi.spl"], 30);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hi\n");
}
