//! Saved runs as untrusted input: `restore` of damaged or hand-crafted
//! bytes gives an error or a run that is safe to execute — never a panic.
//!
//! Valid snapshots are taken of runs paused in interesting places (deep
//! recursion with `try` and `defer`, nested coroutines, blocked tasks,
//! channels, I/O in flight), then mutated thousands of times: bit flips,
//! byte overwrites, truncations, insertions and copies of one stretch over
//! another. Every mutated input is restored; a run that restores is then
//! executed for a bounded number of instructions with any I/O answered.
//! Three cases in four re-seal the damaged body with a correct header and
//! checksum, as a hand-crafted file would, so that the decoder and
//! `spool_vm::validate` are what stands between the bytes and the VM.
//! `SPOOL_SNAPSHOT_FUZZ_CASES` sets the number of cases (default 4000).

use spool::{CaptureHost, Data, Limits, Step};

use crate::tasks::engine;
use spool_tests::XorShift;

use crate::support::catch_panic;

/// Scripts paused at a budget inside interesting states.
const SCRIPTS: &[&str] = &[
    "
fn depth(n: int) -> int {
    defer print(\"leaving ${n}\")
    if n == 0 {
        try {
            throw Error(kind: \"Deep\", message: \"bottom\")
        } catch e {
            return len(e.message)
        }
    }
    return depth(n - 1) + 1
}
struct P { x: float, tags: [str] }
enum Shape { Circle(float), Empty }
let m = [\"a\": P(x: 1.5, tags: [\"t\"]), \"b\": P(x: 2.5, tags: [])]
let s = [Shape.Circle(1.0), Shape.Empty]
print(depth(30))
print(m[\"a\"].x)
",
    "
fn inner() {
    for i in 0..5 { yield i }
}
let outer = coroutine(fn() {
    let c = coroutine(fn() { inner() })
    for v in c { yield v * 10 }
})
let total = 0
for v in outer { total += v }
print(total)
",
    "
fn worker(id: int, c: Chan<int>, m: Mutex, wg: WaitGroup) {
    for i in 0..3 {
        m.with(fn() { c.send(id * 10 + i) })
        fetch(i)
    }
    wg.done()
}
let c: Chan<int> = chan(2)
let m = Mutex()
let wg = WaitGroup()
let tasks = []
for id in 0..4 {
    wg.add(1)
    tasks.push(spawn worker(id, c, m, wg))
}
let got = 0
for _ in 0..12 { got += c.recv()! }
wg.wait()
print(got)
",
];

/// Snapshots of each script at several budget pauses and I/O phases.
fn valid_snapshots() -> Vec<Vec<u8>> {
    let engine = engine();
    let mut snapshots = Vec::new();
    for (index, source) in SCRIPTS.iter().enumerate() {
        let program = engine
            .compile(&format!("fuzz{index}.spl"), source)
            .expect("the seed scripts compile");
        let mut run = program.start(Vec::new());
        run.set_limits(Limits {
            budget: Some(97),
            ..Limits::default()
        });
        let mut host = CaptureHost::default();
        let mut steps = 0;
        loop {
            steps += 1;
            if steps % 3 == 0 {
                snapshots.push(spool::snapshot(&run));
            }
            match run.resume(&mut host).expect("the seed scripts run") {
                Step::Done(_) => break,
                Step::Paused | Step::Yield(_) => {}
                Step::Io(batch) => {
                    snapshots.push(spool::snapshot(&run));
                    for request in batch {
                        run.complete(request.id, Ok(Data::Int(1)));
                    }
                }
            }
        }
    }
    snapshots
}

/// One random change to `bytes`.
fn mutate(rng: &mut XorShift, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let len = out.len().max(1);
    match rng.below(6) {
        0 => {
            for _ in 0..=rng.below(4) {
                let at = rng.below(len).min(out.len().saturating_sub(1));
                out[at] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let at = rng.below(len).min(out.len().saturating_sub(1));
            out[at] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)];
        }
        2 => out.truncate(rng.below(len)),
        3 => {
            let at = rng.below(len);
            let junk: Vec<u8> = (0..rng.below(16) + 1)
                .map(|_| rng.next_u64() as u8)
                .collect();
            out.splice(at..at, junk);
        }
        4 => {
            let from = rng.below(len);
            let to = rng.below(len);
            let n = rng.below(32).min(len - from).min(len - to);
            let stretch = out[from..from + n].to_vec();
            out[to..to + n].copy_from_slice(&stretch);
        }
        _ => {
            // A varint made huge: a length or index far out of range.
            let at = rng.below(len).min(out.len().saturating_sub(1));
            let big = [0xff, 0xff, 0xff, 0xff, 0x0f];
            let end = (at + big.len()).min(out.len());
            out.splice(at..end, big);
        }
    }
    out
}

/// `bytes` with its body mutated and its header written again to match.
fn resealed(rng: &mut XorShift, bytes: &[u8]) -> Vec<u8> {
    let header = spool::snapshot::HEADER_LEN;
    let fingerprint = spool::snapshot::open(bytes)
        .expect("seeds are valid")
        .0
        .fingerprint;
    let mut out = vec![0; header];
    out.extend(mutate(rng, &bytes[header..]));
    spool::snapshot::seal(&mut out, fingerprint);
    out
}

/// Restores `bytes` and, if that works, runs the result a little.
fn exercise(bytes: &[u8]) -> bool {
    let Ok(mut run) = spool::restore(bytes) else {
        return false;
    };
    run.set_limits(Limits {
        budget: Some(2_000),
        max_heap_objects: 200_000,
        max_call_depth: 10_000,
        max_tasks: 10_000,
    });
    let mut host = CaptureHost::default();
    for _ in 0..50 {
        match run.resume(&mut host) {
            Ok(Step::Done(_)) | Err(_) => break,
            Ok(Step::Paused) => {}
            Ok(Step::Yield(_)) => run.send(spool::Value::Nil),
            Ok(Step::Io(_)) => {
                for request in run.pending_io() {
                    run.complete(request.id, Ok(Data::Int(2)));
                }
            }
        }
    }
    let _ = spool::snapshot(&run);
    true
}

#[test]
fn valid_snapshots_restore_and_finish() {
    for bytes in valid_snapshots() {
        assert!(exercise(&bytes), "a valid snapshot must restore");
    }
}

#[test]
fn damaged_snapshots_never_panic() {
    let seeds = valid_snapshots();
    let cases: usize = std::env::var("SPOOL_SNAPSHOT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let mut rng = XorShift::new(0xD0_5AFE);
    let mut restored = 0;
    let mut failures = Vec::new();
    let hook = std::panic::take_hook();
    // SPOOL_SNAPSHOT_FUZZ_LOUD=1 keeps panic messages and backtraces.
    if std::env::var_os("SPOOL_SNAPSHOT_FUZZ_LOUD").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let first: usize = std::env::var("SPOOL_SNAPSHOT_FUZZ_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for case in 0..cases {
        let seed = rng.below(seeds.len());
        let bytes = if case % 4 == 0 {
            // Damage anywhere: the header and checksum catch it.
            mutate(&mut rng, &seeds[seed])
        } else {
            // Hand-crafted: a changed body with a correct checksum, so the
            // decoder and the validator see it.
            resealed(&mut rng, &seeds[seed])
        };
        if case < first {
            continue;
        }
        match catch_panic(|| exercise(&bytes)) {
            Ok(true) => restored += 1,
            Ok(false) => {}
            Err(message) => failures.push(format!("case {case} (seed {seed}): {message}")),
        }
    }
    std::panic::set_hook(hook);
    assert!(
        failures.is_empty(),
        "{} of {cases} damaged snapshots panicked:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("damaged snapshots: {cases} cases, {restored} restored and ran, none panicked");
}

#[test]
fn garbage_is_refused_with_a_message() {
    for bytes in [
        &b""[..],
        b"SPOOLRUN",
        b"SPOOLRUN\x04\x00\x00\x00",
        b"not a run at all",
    ] {
        let error = spool::restore(bytes).expect_err("garbage is refused");
        assert!(
            error.to_string().starts_with("cannot restore the run: "),
            "{error}"
        );
    }
}

/// A workflow of 40 rounds of three tasks that each sleep 5 ms.
const CRASH_SCRIPT: &str = "
fn work(i: int) -> int {
    sleep(5)
    return i * i
}
let total = 0
for round in 0..40 {
    let ts = [0, 1, 2].map(fn(k) => spawn work(round * 3 + k))
    for t in ts { total += await t }
}
print(\"total ${total}\")
";

/// Starts `spool ARGS` in `dir`, kills it with SIGKILL after `after`
/// (unless it ends first); gives what it printed and whether it was killed.
fn run_and_kill(
    dir: &std::path::Path,
    args: &[&str],
    after: std::time::Duration,
) -> (String, bool) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(crate::cli::spool_binary())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spool starts");
    let deadline = std::time::Instant::now() + after;
    let mut ended = false;
    while std::time::Instant::now() < deadline {
        if child.try_wait().expect("wait works").is_some() {
            ended = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("output");
    (String::from_utf8_lossy(&output.stdout).into_owned(), !ended)
}

#[test]
fn kill_9_at_random_moments_then_resume_finishes_with_the_right_output() {
    let dir = crate::cli::scratch("kill9", &[("crash.spl", CRASH_SCRIPT)]);
    let mut rng = XorShift::new(0x0C0F_FEE5);
    let ms = |n: usize| std::time::Duration::from_millis(n as u64);
    let mut kills = 0;
    for trial in 0..6 {
        let _ = std::fs::remove_file(dir.join("crash.run"));
        let mut printed = String::new();
        let start = ["run", "crash.spl", "--state", "crash.run"];
        let (out, killed) = run_and_kill(&dir, &start, ms(20 + rng.below(250)));
        printed += &out;
        kills += usize::from(killed);
        // Kill the resumed run too, at random moments, then let it finish.
        for _ in 0..2 {
            let (out, killed) =
                run_and_kill(&dir, &["resume", "crash.run"], ms(10 + rng.below(120)));
            printed += &out;
            kills += usize::from(killed);
        }
        let (out, killed) = run_and_kill(&dir, &["resume", "crash.run"], ms(60_000));
        assert!(
            !killed,
            "trial {trial}: the last resume did not finish in a minute"
        );
        printed += &out;
        assert_eq!(
            printed.lines().last(),
            Some("total 568820"),
            "trial {trial}: printed {printed:?}"
        );
        assert!(
            printed.lines().all(|line| line == "total 568820"),
            "trial {trial}: {printed:?}"
        );
        let state = std::fs::read(dir.join("crash.run")).expect("the state file exists");
        let run = spool::restore(&state).expect("the final state restores");
        assert!(
            matches!(run.status(), spool::Status::Done(_)),
            "trial {trial}"
        );
    }
    assert!(kills >= 6, "only {kills} of 18 kills hit a running process");
    eprintln!("kill -9: {kills} of 18 kills hit a running process; every run finished right");
}

/// A script that waits for two answers.
const APPROVAL_SCRIPT: &str = "
fn total() -> int {
    let ts = [1, 2, 3].map(fn(n) => spawn double(n))
    return ts.fold(0, fn(acc, t) => acc + await t)
}
fn double(n: int) -> int {
    sleep(5)
    return n * 2
}
print(\"total ${total()}\")
let who: str = yield \"who approves?\"
print(\"approved by ${who}\")
let again: str = yield \"sure?\"
print(\"done: ${again}\")
";

#[test]
fn step_mode_saves_at_each_yield_and_resume_answers_it() {
    use crate::cli::{assert_exit, scratch, spool, stderr, stdout};
    let dir = scratch("step", &[("flow.spl", APPROVAL_SCRIPT)]);
    let output = spool(&dir, &["run", "flow.spl", "--state", "flow.run", "--step"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "total 12\nwho approves?\n");

    let output = spool(&dir, &["inspect", "flow.run"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(
        text.contains("waiting for the answer to a top-level yield"),
        "{text}"
    );
    assert!(text.contains("task 0 (main)"), "{text}");
    assert!(text.contains("at main (flow.spl:11:"), "{text}");
    assert!(text.contains("pending I/O: 0"), "{text}");

    let output = spool(&dir, &["resume", "flow.run", "--send", "42"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("is not a `str`"),
        "{}",
        stderr(&output)
    );
    let output = spool(&dir, &["resume", "flow.run", "--send", "\"ada"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("not valid JSON"),
        "{}",
        stderr(&output)
    );

    let output = spool(&dir, &["resume", "flow.run", "--send", "\"ada\""]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "approved by ada\nsure?\n");
    let output = spool(&dir, &["resume", "flow.run", "--send", "\"yes\""]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "done: yes\n");

    let output = spool(&dir, &["resume", "flow.run", "--send", "\"again\""]);
    assert_exit(&output, 0);
    assert!(
        stderr(&output).contains("already finished"),
        "{}",
        stderr(&output)
    );
    let output = spool(&dir, &["inspect", "flow.run"]);
    assert!(stdout(&output).contains("status: finished"));
}

#[test]
fn resume_refuses_bad_state_files_and_changed_live_code() {
    use crate::cli::{assert_exit, scratch, spool, stderr};
    let changed = APPROVAL_SCRIPT.replace("approved by", "signed off by");
    let dir = scratch(
        "resume_errors",
        &[
            ("flow.spl", APPROVAL_SCRIPT),
            ("changed.spl", &changed),
            ("junk.run", "this is not a saved run"),
        ],
    );
    let output = spool(&dir, &["resume", "missing.run"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("cannot read `missing.run`"));
    let output = spool(&dir, &["resume", "junk.run"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("not a saved Spool run"),
        "{}",
        stderr(&output)
    );

    let output = spool(&dir, &["run", "flow.spl", "--state", "flow.run", "--step"]);
    assert_exit(&output, 0);
    let mut bytes = std::fs::read(dir.join("flow.run")).expect("saved");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(dir.join("damaged.run"), &bytes).expect("written");
    let output = spool(&dir, &["resume", "damaged.run"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("checksum"), "{}", stderr(&output));

    // `main` is suspended at the yield and its code changed: refused, by name.
    let output = spool(
        &dir,
        &[
            "resume",
            "flow.run",
            "--program",
            "changed.spl",
            "--send",
            "\"x\"",
        ],
    );
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert!(err.contains("`main` (suspended at flow.spl:11:"), "{err}");
    // The same program is accepted.
    let output = spool(
        &dir,
        &[
            "resume",
            "flow.run",
            "--program",
            "flow.spl",
            "--send",
            "\"x\"",
        ],
    );
    assert_exit(&output, 0);
}

#[test]
fn resume_continues_on_a_program_whose_live_functions_are_unchanged() {
    use crate::cli::{assert_exit, scratch, spool, stdout};
    let original = "
fn greet(who: str) -> str {
    return \"hello ${who}\"
}
let who: str = yield \"name?\"
print(greet(who))
";
    let fixed = original.replace("hello", "hi there");
    let reshaped = format!("{original}fn extra() {{}}\n");
    let dir = scratch(
        "upgrade",
        &[
            ("g.spl", original),
            ("fixed.spl", &fixed),
            ("reshaped.spl", &reshaped),
        ],
    );
    let output = spool(&dir, &["run", "g.spl", "--state", "g.run", "--step"]);
    assert_exit(&output, 0);
    let saved = std::fs::read(dir.join("g.run")).expect("saved");

    // Only `greet`, which the run is not inside, changed: it continues on
    // the new code.
    let output = spool(
        &dir,
        &[
            "resume",
            "g.run",
            "--program",
            "fixed.spl",
            "--send",
            "\"ada\"",
        ],
    );
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "hi there ada\n");

    std::fs::write(dir.join("g.run"), &saved).expect("restored the file");
    let output = spool(
        &dir,
        &[
            "resume",
            "g.run",
            "--program",
            "reshaped.spl",
            "--send",
            "\"ada\"",
        ],
    );
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "hello ada\n");
}

#[test]
fn runs_saved_without_their_program_restore_with_it() {
    let engine = engine();
    let program = engine.compile("deep.spl", SCRIPTS[2]).expect("compiles");
    let other = engine.compile("other.spl", SCRIPTS[1]).expect("compiles");
    let mut run = program.start(Vec::new());
    let mut host = CaptureHost::default();
    let Ok(Step::Io(batch)) = run.resume(&mut host) else {
        panic!("expected an I/O step");
    };
    let whole = spool::snapshot(&run);
    let lean = spool::snapshot_without_program(&mut run);
    assert!(
        lean.len() * 3 < whole.len(),
        "{} vs {}",
        lean.len(),
        whole.len()
    );
    let error = spool::restore(&lean).expect_err("needs its program");
    assert!(error.message.contains("without its program"), "{error}");
    let error = spool::restore_with_program(&lean, &other).expect_err("another program");
    assert!(error.message.contains("belongs to program"), "{error}");

    let mut restored = spool::restore_with_program(&lean, &program).expect("restores");
    for request in batch {
        restored.complete(request.id, Ok(Data::Int(1)));
    }
    let mut host = CaptureHost::default();
    loop {
        match restored.resume(&mut host).expect("runs") {
            Step::Done(_) => break,
            Step::Io(batch) => {
                for request in batch {
                    restored.complete(request.id, Ok(Data::Int(1)));
                }
            }
            step => panic!("unexpected {step:?}"),
        }
    }
    assert_eq!(host.lines, ["192"]);
}
