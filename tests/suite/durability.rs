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

use spool::{CaptureHost, Data, Engine, Limits, Step};
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

fn engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .register_io("fn fetch(n: int) -> int")
        .expect("the signature parses");
    engine
}

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
        b"SPOOLRUN\x03\x00\x00\x00",
        b"not a run at all",
    ] {
        let error = spool::restore(bytes).expect_err("garbage is refused");
        assert!(
            error.to_string().starts_with("cannot restore the run: "),
            "{error}"
        );
    }
}
