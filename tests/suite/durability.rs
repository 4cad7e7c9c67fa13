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

use spool::{CaptureOutput, Data, Limits, Step};

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
        let mut host = CaptureOutput::default();
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
        max_heap_bytes: 64 << 20,
        max_call_depth: 10_000,
        max_tasks: 10_000,
    });
    let mut host = CaptureOutput::default();
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
    let loud = std::env::var_os("SPOOL_SNAPSHOT_FUZZ_LOUD").is_some();
    if !loud {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let first: usize = std::env::var("SPOOL_SNAPSHOT_FUZZ_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SPOOL_SNAPSHOT_FUZZ_SAVE=PATH writes each case there before it runs,
    // so the input of a case that hangs or exhausts memory is at hand.
    let save = std::env::var_os("SPOOL_SNAPSHOT_FUZZ_SAVE");
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
        if loud {
            eprintln!("case {case} (seed {seed}, {} bytes)", bytes.len());
        }
        if let Some(path) = &save {
            std::fs::write(path, &bytes).expect("the case is saved");
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
    let mut host = CaptureOutput::default();
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
    let mut host = CaptureOutput::default();
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

/// A saved run's body taken apart: the fields of `spool_vm::Run` in their
/// order, so a test can damage one precisely and encode the run again.
type Parts = (
    spool_vm::Program,
    spool_vm::Heap,
    Vec<spool::Value>,
    Vec<spool::Value>,
    spool_vm::Context,
    bool,
    u64,
    spool_vm::Sched,
    Vec<String>,
    std::collections::BTreeMap<String, String>,
    std::collections::BTreeMap<spool::IoId, i64>,
    spool::Status,
    Option<i64>,
);

/// `run`'s fields, checked to encode back to exactly what `snapshot`
/// writes (so a change of the run's layout shows here first).
fn take_apart(run: &spool::Run) -> Parts {
    let bytes = spool::snapshot(run);
    let body = &bytes[spool::snapshot::HEADER_LEN..];
    let parts: Parts = postcard::from_bytes(body).expect("a run decodes as its parts");
    let again = postcard::to_allocvec(&parts).expect("parts encode");
    assert!(again == body, "Parts no longer matches the layout of Run");
    parts
}

/// A correctly sealed saved run made of `parts`.
fn seal_parts(parts: &Parts) -> Vec<u8> {
    let mut bytes = vec![0; spool::snapshot::HEADER_LEN];
    bytes.extend(postcard::to_allocvec(parts).expect("parts encode"));
    spool::snapshot::seal(&mut bytes, parts.0.fingerprint);
    bytes
}

/// The restore error of `bytes`, which must be refused.
fn refused(bytes: &[u8]) -> String {
    match spool::restore(bytes) {
        Ok(_) => panic!("the damaged run was accepted"),
        Err(error) => error.to_string(),
    }
}

/// SCRIPTS[2] at its first I/O phase: four tasks blocked on a channel,
/// on `fetch` and on the mutex, requests in flight.
fn tasks_run() -> spool::Run {
    let program = engine()
        .compile("tasks.spl", SCRIPTS[2])
        .expect("the seed scripts compile");
    let mut run = program.start(Vec::new());
    let mut host = CaptureOutput::default();
    match run.resume(&mut host).expect("runs") {
        Step::Io(batch) => assert!(!batch.is_empty()),
        step => panic!("expected I/O, got {step:?}"),
    }
    run
}

/// The heap slots holding tasks, in slot order (the main task first).
fn task_slots(heap: &spool_vm::Heap) -> Vec<spool_vm::ObjRef> {
    (0..heap.capacity() as u32)
        .map(spool_vm::ObjRef)
        .filter(|&obj| heap.task(spool::Value::Obj(obj)).is_some())
        .collect()
}

fn task_mut(parts: &mut Parts, obj: spool_vm::ObjRef) -> &mut spool_vm::Task {
    parts.1.task_mut(obj).expect("a task")
}

#[test]
fn a_run_taken_apart_and_sealed_again_restores() {
    let parts = take_apart(&tasks_run());
    let run = spool::restore(&seal_parts(&parts)).expect("an intact run restores");
    assert!(run.pending_io().len() >= 4);
}

/// A task that is its own parent (or its grandparent) made finishing it
/// walk up the parents forever; a child listed twice was cancelled once
/// per listing, exponentially; a child in a cycle of lists grew the
/// deadlock report's stack without end.
#[test]
fn task_trees_with_cycles_or_shared_children_are_refused() {
    let run = tasks_run();
    let original = take_apart(&run);
    let tasks = task_slots(&original.1);
    let (main, first, second) = (tasks[0], tasks[1], tasks[2]);

    let mut parts = original.clone();
    task_mut(&mut parts, main)
        .children
        .list
        .retain(|&t| t != first);
    task_mut(&mut parts, first).parent = Some(first);
    assert!(refused(&seal_parts(&parts)).contains("is its own ancestor"));

    let mut parts = original.clone();
    task_mut(&mut parts, first).parent = Some(second);
    task_mut(&mut parts, second).parent = Some(first);
    let message = refused(&seal_parts(&parts));
    assert!(message.contains("is not its own"), "{message}");

    // The cycle without the lists that contradict it.
    let mut parts = original.clone();
    task_mut(&mut parts, main).children.list.clear();
    task_mut(&mut parts, first).parent = Some(second);
    task_mut(&mut parts, second).parent = Some(first);
    assert!(refused(&seal_parts(&parts)).contains("is its own ancestor"));

    let mut parts = original.clone();
    task_mut(&mut parts, main).children.list.push(first);
    assert!(refused(&seal_parts(&parts)).contains("lists a child twice"));

    let mut parts = original.clone();
    task_mut(&mut parts, first).children.list.push(second);
    assert!(refused(&seal_parts(&parts)).contains("is not its own"));

    let mut parts = original;
    task_mut(&mut parts, first).children.list.push(main);
    assert!(refused(&seal_parts(&parts)).contains("is not its own"));
}

/// The table of requests in flight is a window of ids ending at the next
/// id: a next id far past it made the next request fill the gap with
/// empty slots (2^40 of them here, terabytes).
#[test]
fn an_io_table_with_a_gap_before_the_next_id_is_refused() {
    let mut parts = take_apart(&tasks_run());
    assert!(!parts.7.in_flight.is_empty());
    parts.7.next_io += 1 << 40;
    let message = refused(&seal_parts(&parts));
    assert!(message.contains("I/O requests"), "{message}");
}

/// Requests in flight carry `Data`, which nests: decoding, dropping and
/// converting it recurse, so data nested deeper than the heap can convert
/// is refused instead of overflowing the stack.
#[test]
fn deeply_nested_request_data_is_refused() {
    // Encoding nested data recurses too: a marker is replaced by the bytes
    // of `depth` nested one-element lists around an int.
    // Paused inside a CPU phase, just after a request was issued.
    let program = engine()
        .compile("tasks.spl", SCRIPTS[2])
        .expect("the seed scripts compile");
    let mut run = program.start(Vec::new());
    run.set_limits(Limits {
        budget: Some(1),
        ..Limits::default()
    });
    while run.sched().outbox.is_empty() {
        assert_eq!(run.resume(&mut CaptureOutput::default()), Ok(Step::Paused));
    }
    let nested = |depth: usize, claimed: u32| {
        let mut parts = take_apart(&run);
        let marker = 0x0123_4567_89ab_cdef;
        parts.7.outbox[0].args = vec![Data::Int(marker)].into();
        let bytes = seal_parts(&parts);
        let encoded = postcard::to_allocvec(&Data::Int(marker)).expect("encodes");
        let at = bytes
            .windows(encoded.len())
            .position(|w| w == encoded)
            .expect("the marker is there");
        // A list is its tag, its length, then its elements.
        let list = postcard::to_allocvec(&Data::List(Vec::new())).expect("encodes");
        let mut prefix = list[..list.len() - 1].to_vec();
        prefix.extend(postcard::to_allocvec(&claimed).expect("encodes"));
        let mut out = bytes[..at].to_vec();
        for _ in 0..depth {
            out.extend_from_slice(&prefix);
        }
        out.extend(&bytes[at..]);
        spool::snapshot::seal(&mut out, parts.0.fingerprint);
        out
    };
    let message = refused(&nested(1_000_000, 1));
    assert!(message.contains("nested too deeply"), "{message}");
    // As deep as a conversion from the heap goes is accepted.
    let run = spool::restore(&nested(1_000, 1)).expect("nesting of 1000 restores");
    drop(run);
    // Each level claiming a million elements: serde would reserve 1 MiB
    // per level (a gigabyte in all) before finding the bytes missing; the
    // lists grow as elements arrive instead (the fuzz target checks what
    // `restore` allocates).
    let message = refused(&nested(1_000, 1 << 20));
    assert!(message.contains("does not decode"), "{message}");
}

/// The interpreter pops `try` handlers, defers and unwinds from the end of
/// their lists by frame depth; out of order, an entry would outlive its
/// frame and be found by another function's frame at that depth.
#[test]
fn fiber_bookkeeping_out_of_order_or_out_of_its_frames_is_refused() {
    let engine = engine();
    let program = engine
        .compile("deep.spl", SCRIPTS[0])
        .expect("the seed scripts compile");
    let mut run = program.start(Vec::new());
    run.set_limits(Limits {
        budget: Some(400),
        ..Limits::default()
    });
    let mut host = CaptureOutput::default();
    assert_eq!(run.resume(&mut host), Ok(Step::Paused));
    let mut original = take_apart(&run);
    // Kept in its saved encoding until unpacked.
    assert!(original.4.fiber.frames.is_empty());
    original.4.unpack().expect("the saved stack decodes");
    assert!(original.4.fiber.frames.len() > 5, "recursing");
    assert!(!original.4.fiber.defers.is_empty(), "with defers");

    let mut parts = original.clone();
    let fiber = &mut parts.4.fiber;
    let last = fiber.defers.len() - 1;
    fiber.defers[last].frame_depth = 1;
    let message = refused(&seal_parts(&parts));
    assert!(message.contains("defers out of order"), "{message}");

    let mut parts = original.clone();
    let fiber = &mut parts.4.fiber;
    let handler = spool_vm::Handler {
        frame_depth: 3,
        catch_pc: 0,
        dst: spool_vm::Reg(0),
    };
    fiber.handlers.extend([
        handler,
        spool_vm::Handler {
            frame_depth: 1,
            ..handler
        },
    ]);
    let message = refused(&seal_parts(&parts));
    assert!(message.contains("handlers out of order"), "{message}");

    // A frame returning above its caller's window: the registers there may
    // be dropped while the run is suspended.
    let mut parts = original;
    let fiber = &mut parts.4.fiber;
    let top = fiber.frames.len() - 1;
    fiber.frames[top].ret = fiber.frames[top].base + 1_000;
    fiber
        .registers
        .resize(fiber.frames[top].base as usize + 2_000, spool::Value::Nil);
    let message = refused(&seal_parts(&parts));
    assert!(
        message.contains("outside its caller's registers"),
        "{message}"
    );
}

/// A type description from a saved run (an I/O operation's result type)
/// that nests as deep as allowed is checked in a loop, not by recursion;
/// one larger than allowed, or whose parts do not come first, is refused.
#[test]
fn result_types_of_any_depth_are_checked_without_recursion() {
    use spool_vm::{TypeDesc, TypeNode};
    let deep = |count: usize| {
        let mut nodes = vec![TypeNode::Int];
        nodes.extend((0..count).map(|at| TypeNode::Optional(at as u32)));
        TypeDesc { nodes }
    };
    let with_fetch_type = |ty: TypeDesc| {
        let mut parts = take_apart(&tasks_run());
        let fetch = parts
            .0
            .natives
            .iter_mut()
            .find(|native| native.name == "fetch")
            .expect("fetch is declared");
        fetch.io = Some(ty);
        // A consistent forgery: the program's fingerprint recomputed.
        parts.0.fingerprint = spool::snapshot::fingerprint(&parts.0);
        seal_parts(&parts)
    };
    let allowed = spool_vm::types::MAX_NODES - 1;
    let mut run = spool::restore(&with_fetch_type(deep(allowed))).expect("restores");
    for request in run.pending_io() {
        run.complete(request.id, Ok(Data::Int(1)));
    }
    let mut output = CaptureOutput::default();
    run.resume(&mut output).expect("runs on");
    let message = refused(&with_fetch_type(deep(1_000_000)));
    assert!(message.contains("too large"), "{message}");
    let forward = TypeDesc {
        nodes: vec![TypeNode::Optional(1), TypeNode::Int],
    };
    let message = refused(&with_fetch_type(forward));
    assert!(message.contains("refers forward"), "{message}");
}

/// Lengths that claim more than the input holds are refused at once,
/// without allocating for them: register files, lists, strings, heaps.
#[test]
fn claimed_lengths_beyond_the_input_are_refused_without_allocating_them() {
    let bytes = spool::snapshot(&tasks_run());
    let header = spool::snapshot::HEADER_LEN;
    let started = std::time::Instant::now();
    let mut checked = 0;
    // Every position: the varint there made 2^62 (or as large as fits in
    // ten bytes), the rest of the body kept.
    for at in header..bytes.len() {
        let mut body = bytes[header..at].to_vec();
        body.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
        body.extend(&bytes[at + 1..]);
        let mut damaged = vec![0; header];
        damaged.extend(body);
        spool::snapshot::seal(&mut damaged, 0);
        if let Ok(mut run) = spool::restore(&damaged) {
            run.set_limits(Limits {
                budget: Some(1_000),
                ..Limits::default()
            });
            let _ = run.resume(&mut CaptureOutput::default());
        }
        checked += 1;
    }
    eprintln!(
        "huge lengths: {checked} positions in {:?}",
        started.elapsed()
    );
}

/// `sort` on a list that contains itself (only a damaged run can make
/// one) is a clean error, not an endless recursion.
#[test]
fn sorting_a_list_inside_itself_is_an_error() {
    let program = engine()
        .compile(
            "sort.spl",
            "let xs = [[1], [2]]\nlet n = yield 0\nprint(xs.sort())\n",
        )
        .expect("compiles");
    let mut run = program.start(Vec::new());
    let mut host = CaptureOutput::default();
    assert_eq!(run.resume(&mut host), Ok(Step::Yield(spool::Value::Int(0))));
    let mut parts = take_apart(&run);
    let heap = &mut parts.1;
    let lists: Vec<spool_vm::ObjRef> = (0..heap.capacity() as u32)
        .map(spool_vm::ObjRef)
        .filter(|&obj| {
            heap.list(spool::Value::Obj(obj))
                .is_some_and(|l| l.len() == 1)
        })
        .collect();
    assert_eq!(lists.len(), 2);
    for &list in &lists {
        let items = heap.list_mut(spool::Value::Obj(list)).expect("a list");
        items[0] = spool::Value::Obj(list);
    }
    let mut run = spool::restore(&seal_parts(&parts)).expect("restores");
    let error = run.resume(&mut host).expect_err("sorting fails");
    assert_eq!(error.kind, "Type", "{error:?}");
}

/// The header's fingerprint is checked against the program, and the
/// program against its fingerprint: flipping header bytes, or editing the
/// program inside (a string constant) and recomputing only the checksum,
/// is refused.
#[test]
fn fingerprints_in_the_header_and_the_program_are_checked() {
    let bytes = spool::snapshot(&tasks_run());
    let mut flipped = bytes.clone();
    flipped[12] ^= 0x01;
    let message = refused(&flipped);
    assert!(message.contains("fingerprint"), "{message}");
    let mut parts = take_apart(&tasks_run());
    parts
        .0
        .constants
        .push(spool_vm::Constant::Str("attacker's text".into()));
    let message = refused(&seal_parts(&parts));
    assert!(
        message.contains("does not match its fingerprint"),
        "{message}"
    );
}

/// Tasks that hold strings and lists while they wait on a channel, and a
/// main task that makes garbage for several collections after the run is
/// restored and before it wakes them.
const PARKED_WITH_OBJECTS: &str = r#"
let go: Chan<int> = chan(0)
fn hold(n: int) -> int {
    let name = "task ${n}"
    let items = [n, n * 10]
    let k = go.recv()!
    print("${name}: ${items[1] + k}")
    return k
}
let tasks: [Task<int>] = []
for i in 0..20 {
    tasks.push(spawn hold(i))
}
let first = fetch(1)
let garbage = 0
for i in 0..200000 {
    garbage += "${i}".len()
}
for i in 0..20 {
    go.send(first)
}
for t in tasks {
    garbage += await t
}
print(garbage)
"#;

/// A restored run's parked tasks keep their stacks in the saved encoding
/// until they run; what those stacks refer to survives the collections
/// that happen meanwhile.
#[test]
fn objects_held_by_parked_restored_tasks_survive_collections() {
    let program = engine()
        .compile("parked.spl", PARKED_WITH_OBJECTS)
        .expect("compiles");
    let mut run = program.start(Vec::new());
    let mut host = CaptureOutput::default();
    match run.resume(&mut host).expect("runs") {
        Step::Io(batch) => assert_eq!(batch.len(), 1),
        step => panic!("expected I/O, got {step:?}"),
    }
    let mut run = spool::restore(&spool::snapshot(&run)).expect("restores");
    for request in run.pending_io() {
        run.complete(request.id, Ok(Data::Int(2)));
    }
    assert!(matches!(run.resume(&mut host), Ok(Step::Done(_))));
    let mut expected: Vec<String> = (0..20)
        .map(|n| format!("task {n}: {}", n * 10 + 2))
        .collect();
    expected.push("1088930".to_string());
    assert_eq!(host.lines, expected);
}

/// A parked task's stack, kept in its saved encoding, is checked by
/// `restore` like the active one: a frame past its function's end is
/// refused before anything runs.
#[test]
fn a_damaged_stack_of_a_parked_task_is_refused() {
    let mut parts = take_apart(&tasks_run());
    let mut damaged = 0;
    for obj in task_slots(&parts.1) {
        let task = task_mut(&mut parts, obj);
        if !task.context.is_packed() {
            continue;
        }
        task.context.unpack().expect("the saved stack decodes");
        let top = task.context.fiber.frames.len() - 1;
        task.context.fiber.frames[top].pc = 1_000_000;
        damaged += 1;
    }
    assert!(damaged >= 3, "the blocked tasks are packed");
    let message = refused(&seal_parts(&parts));
    assert!(message.contains("heap object"), "{message}");
}
