//! Resource limits hold against scripts that try to exhaust memory: the
//! heap is accounted in bytes and checked before each large allocation
//! (string concatenation, `join`, `replace`, `split`, list and map growth,
//! channel buffers) and before a call grows the stack, so a runaway script
//! ends with a clean `Limit` error instead of taking the machine's memory.
//! Each probe runs with a small heap limit and must end with `Limit` having
//! used memory on the order of that limit; a limit is the host's policy
//! and is not carried by a saved run.

use spool::{CaptureOutput, Limits, Step};

use crate::tasks::engine;

/// The heap limit every probe runs under.
const LIMIT: usize = 8 << 20;

/// Runs `source` under an 8 MiB heap limit to its end; gives the error
/// kind and message, or "done".
fn run_limited(source: &str) -> (String, String) {
    let program = engine().compile("probe.spl", source).expect("compiles");
    let mut run = program.start(vec![]);
    run.set_limits(Limits {
        max_heap_bytes: LIMIT,
        ..Limits::default()
    });
    let mut output = CaptureOutput::default();
    loop {
        match run.resume(&mut output) {
            Ok(Step::Done(_)) => return ("done".into(), String::new()),
            Ok(Step::Io(batch)) => {
                for request in batch {
                    run.complete(request.id, Ok(spool::Data::Nil));
                }
            }
            Ok(_) => {}
            Err(error) => return (error.kind, error.message),
        }
    }
}

#[track_caller]
fn assert_limit(source: &str) {
    let (kind, message) = run_limited(source);
    assert_eq!(kind, "Limit", "{source}: {message}");
    assert!(message.contains("limit exceeded"), "{source}: {message}");
}

#[test]
fn runaway_growth_ends_with_a_limit_error() {
    // Doubling a string.
    assert_limit("let s = \"x\"\nwhile true { s = s + s }");
    // Pushing to a list, inserting into a map.
    assert_limit("let xs: [int] = []\nwhile true { xs.push(1) }");
    assert_limit("let m: [int: int] = [:]\nlet i = 0\nwhile true { m[i * 7] = i; i += 1 }");
    assert_limit("let m: [str: int] = [:]\nlet i = 0\nwhile true { m.set(\"k${i}\", i); i += 1 }");
    // Library functions that build large results.
    assert_limit("let xs = [\"abcdefgh\"]\nwhile true { xs = [xs.join(\",\"), xs.join(\";\")] }");
    assert_limit(
        "let s = \"ab\"\nwhile true { s = s.replace(\"a\", \"aa\").replace(\"b\", \"bb\") }",
    );
    assert_limit(
        "let s = \"abcdefgh\"\nwhile s.len() < 100000000 { s = s + s }\nlet parts = s.split(\"\")",
    );
    // A channel filled without a reader.
    assert_limit("let c: Chan<int> = chan(1000000000000)\nwhile true { c.send(1) }");
}

#[test]
fn deep_recursion_with_large_frames_ends_with_a_limit_error() {
    // 3 000 locals a frame: the stack is bounded in bytes, not only frames.
    let locals: String = (0..3000)
        .map(|i| format!("  let v{i} = n + {i}\n"))
        .collect();
    let source =
        format!("fn deep(n: int) -> int {{\n{locals}  return deep(n + 1)\n}}\nprint(deep(0))\n");
    let (kind, message) = run_limited(&source);
    assert_eq!(kind, "Limit", "{message}");
    assert!(message.contains("stack limit exceeded"), "{message}");
}

#[test]
fn a_limit_is_the_hosts_and_not_read_from_a_saved_run() {
    let program = engine()
        .compile("y.spl", "let x: int = yield 1\nprint(x)")
        .expect("compiles");
    let mut run = program.start(vec![]);
    run.set_limits(Limits {
        max_heap_bytes: 12_345,
        max_tasks: 7,
        ..Limits::default()
    });
    let mut output = CaptureOutput::default();
    assert!(matches!(run.resume(&mut output), Ok(Step::Yield(_))));
    let restored = spool::restore(&spool::snapshot(&run)).expect("restores");
    assert_eq!(restored.limits(), Limits::default());
}

#[test]
fn printing_a_value_shared_many_times_over_is_bounded() {
    let dag = "struct Node { l: Node?, r: Node? }\nlet a = Node(l: nil, r: nil)\nfor i in 0..40 { a = Node(l: a, r: a) }\n";
    for use_it in [
        "print(a)",
        "let s = str(a)",
        "let s = \"${a}\"",
        "let s = json_str(a)",
    ] {
        let started = std::time::Instant::now();
        let (kind, message) = run_limited(&format!("{dag}{use_it}\n"));
        assert_eq!(kind, "Limit", "{use_it}: {message}");
        assert!(
            message.contains("output limit exceeded"),
            "{use_it}: {message}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{use_it} took {:?}",
            started.elapsed()
        );
    }
    // Equality of such values is linear too.
    let (kind, message) = run_limited(&format!(
        "{dag}assert(a == Node(l: a.l, r: a.r), \"equal\")\n"
    ));
    assert_eq!(kind, "done", "{message}");
}

#[test]
fn library_functions_charge_the_instruction_budget_for_their_work() {
    // A hundred instructions, but a split and a sort of 262 144 items.
    let source = "let s = \"ab\"\nfor i in 0..17 { s = s + s }\nlet xs = s.split(\"\")\nlet ys = xs.sort()\nprint(ys.len())\n";
    let program = engine().compile("work.spl", source).expect("compiles");
    let mut run = program.start(vec![]);
    run.set_limits(Limits {
        budget: Some(1_000),
        ..Limits::default()
    });
    let mut output = CaptureOutput::default();
    let mut pauses = 0;
    loop {
        match run.resume(&mut output) {
            Ok(Step::Done(_)) => break,
            Ok(Step::Paused) => pauses += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        pauses >= 2,
        "the split and the sort cost no budget ({pauses} pauses)"
    );
    assert_eq!(output.lines, ["262144"]);
}

#[test]
fn the_command_line_sets_limits_with_flags() {
    use crate::cli::{assert_exit, scratch, spool, stderr};
    let dir = scratch(
        "limit_flags",
        &[
            ("spin.spl", "let i = 0\nwhile true { i += 1 }\n"),
            ("double.spl", "let s = \"x\"\nwhile true { s = s + s }\n"),
            (
                "deep.spl",
                "fn f(n: int) -> int { return f(n + 1) }\nprint(f(0))\n",
            ),
            (
                "spawn.spl",
                "fn idle() { sleep(100) }\nwhile true { spawn idle() }\n",
            ),
        ],
    );
    // A runaway loop: a Limit error without --state ...
    let output = spool(&dir, &["run", "spin.spl", "--max-instructions", "100000"]);
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("error: Limit: instruction limit exceeded (100000"));
    // ... and with --state, saved where it stopped; resume continues it.
    let output = spool(
        &dir,
        &[
            "run",
            "spin.spl",
            "--state",
            "spin.run",
            "--max-instructions",
            "100000",
        ],
    );
    assert_exit(&output, 0);
    assert!(stderr(&output).contains("`spool resume spin.run` continues the run"));
    let output = spool(&dir, &["resume", "spin.run", "--max-instructions", "1000"]);
    assert_exit(&output, 0);
    assert!(stderr(&output).contains("paused after 1000 instructions"));
    // The heap, the depth and the task count.
    let output = spool(&dir, &["run", "double.spl", "--max-heap", "16M"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("error: Limit: heap limit exceeded"),
        "{}",
        stderr(&output)
    );
    let output = spool(&dir, &["run", "deep.spl", "--max-depth", "1000"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("call depth limit exceeded (1000 frames)"),
        "{}",
        stderr(&output)
    );
    let output = spool(&dir, &["run", "spawn.spl", "--max-tasks", "50"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("task limit exceeded (50 tasks)"),
        "{}",
        stderr(&output)
    );
    for bad in [
        ["--max-heap", "lots"],
        ["--max-depth", "0"],
        ["--max-instructions", "-1"],
    ] {
        let output = spool(&dir, &["run", "spin.spl", bad[0], bad[1]]);
        assert_exit(&output, 2);
    }
}

#[test]
fn saved_runs_signed_with_a_host_key_refuse_any_change() {
    use crate::cli::{assert_exit, scratch, spool, stderr, stdout};
    let dir = scratch(
        "state_key",
        &[
            (
                "flow.spl",
                "let who: str = yield \"who?\"\nprint(\"hi ${who}\")\n",
            ),
            ("host.key", "0123456789abcdef0123456789abcdef"),
            ("other.key", "fedcba9876543210fedcba9876543210"),
            ("short.key", "short"),
        ],
    );
    let signed = ["--state-key", "host.key"];
    let output = spool(
        &dir,
        &[
            &["run", "flow.spl", "--state", "f.run", "--step"][..],
            &signed,
        ]
        .concat(),
    );
    assert_exit(&output, 0);
    let bytes = std::fs::read(dir.join("f.run")).unwrap();
    assert!(bytes.starts_with(spool::snapshot::SIGNED_MAGIC));
    // Without the key, with another key, or changed: refused before decoding.
    let output = spool(&dir, &["resume", "f.run", "--send", "\"ada\""]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("signed with a host key"),
        "{}",
        stderr(&output)
    );
    let output = spool(
        &dir,
        &[
            "resume",
            "f.run",
            "--state-key",
            "other.key",
            "--send",
            "\"ada\"",
        ],
    );
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("signature does not match"),
        "{}",
        stderr(&output)
    );
    let mut changed = bytes.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    std::fs::write(dir.join("changed.run"), &changed).unwrap();
    let output = spool(&dir, &["inspect", "changed.run", "--state-key", "host.key"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("signature does not match"),
        "{}",
        stderr(&output)
    );
    let output = spool(&dir, &["resume", "f.run", "--state-key", "short.key"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("too short"), "{}", stderr(&output));
    // An unsigned run is refused when a key is required.
    let output = spool(&dir, &["run", "flow.spl", "--state", "plain.run", "--step"]);
    assert_exit(&output, 0);
    let output = spool(&dir, &["resume", "plain.run", "--state-key", "host.key"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("not signed"),
        "{}",
        stderr(&output)
    );
    // With the key it continues, and stays signed.
    let output = spool(
        &dir,
        &[&["resume", "f.run", "--send", "\"ada\""][..], &signed].concat(),
    );
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "hi ada\n");
    let output = spool(&dir, &["inspect", "f.run", "--state-key", "host.key"]);
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("status: finished"));
}
