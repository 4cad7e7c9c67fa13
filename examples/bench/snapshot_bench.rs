//! The durable-run benchmark of BENCHMARKS.md: a run with 10 000 tasks,
//! each suspended on an I/O request 20 frames deep, saved to bytes and
//! restored (with the validation every restore does); and a small run like
//! a REPL session's. Reports bytes per task and MB/s each way.
//!
//! Run with `cargo run --release -p spool-examples --example snapshot_bench`.
//! After each run's figures a `bench: key=value ...` line repeats them for
//! `run.sh`.

use std::time::Instant;

use spool::{CaptureOutput, Engine, Step};

const DEEP: &str = "
fn down(depth: int, id: int) -> int {
    if depth == 0 {
        return fetch(id)
    }
    let here = depth * 2
    return down(depth - 1, id) + here - here
}
let tasks: [Task<int>] = []
for id in 0..10000 {
    tasks.push(spawn down(19, id))
}
let total = 0
for t in tasks { total += await t }
print(total)
";

const SMALL: &str = "
let names = [\"ada\", \"alan\", \"grace\"]
let ages = [\"ada\": 36, \"alan\": 41]
struct Point { x: float, y: float }
let p = Point(x: 1.0, y: 2.0)
let answer: str = yield \"ready\"
print(answer)
";

/// Best time of `rounds` runs of `f`, in seconds.
fn best(rounds: usize, mut f: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// Prints the figures for `run`; `key` names them on the `bench:` line.
fn report(name: &str, key: &str, run: &spool::Run, units: Option<(u64, &str)>) {
    let bytes = spool::snapshot(run);
    let save = best(5, || {
        std::hint::black_box(spool::snapshot(run));
    });
    // Restored runs are dropped outside the timed part.
    let mut restored = Vec::new();
    let load = best(5, || {
        restored.push(spool::restore(&bytes).expect("restores"));
    });
    drop(restored);
    let mb = bytes.len() as f64 / 1e6;
    println!("{name}: {} bytes", bytes.len());
    if let Some((count, unit)) = units {
        println!("  {} bytes per {unit}", bytes.len() as u64 / count);
    }
    println!(
        "  snapshot {:.2} ms ({:.0} MB/s), restore {:.2} ms ({:.0} MB/s) (targets >= 300 MB/s)",
        save * 1e3,
        mb / save,
        load * 1e3,
        mb / load
    );
    // One line for scripts (`run.sh`): the figures above as key=value.
    let per_unit = units.map_or(String::new(), |(count, _)| {
        format!(" {key}_bytes_per_task={}", bytes.len() as u64 / count)
    });
    println!(
        "bench: {key}_bytes={} {key}_snapshot_mb_s={:.0} {key}_restore_mb_s={:.0}{per_unit}",
        bytes.len(),
        mb / save,
        mb / load
    );
}

/// Restores `run` and runs it to the end, every request answered at
/// once: what a worker that resumes every task at once pays in all (a
/// parked task's stack is decoded when it first runs, not by `restore`).
fn finish_after_restore(run: &spool::Run) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = spool::snapshot(run);
    let mut restore_only = f64::MAX;
    let mut whole = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let mut restored = spool::restore(&bytes)?;
        restore_only = restore_only.min(started.elapsed().as_secs_f64());
        for request in restored.pending_io() {
            let n = request.args[0].as_int().unwrap_or(0);
            restored.complete(request.id, Ok(spool::Data::Int(n)));
        }
        let mut host = CaptureOutput::default();
        match restored.resume(&mut host)? {
            Step::Done(_) => {}
            step => return Err(format!("unexpected step {step:?}").into()),
        }
        whole = whole.min(started.elapsed().as_secs_f64());
        drop(restored);
    }
    println!(
        "  restore, answer every request and run to the end: {:.2} ms (restore alone {:.2} ms)",
        whole * 1e3,
        restore_only * 1e3
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut engine = Engine::new();
    engine.register_io("fn fetch(n: int) -> int")?;
    let program = engine.compile("deep.spl", DEEP)?;
    let mut run = program.start(Vec::new());
    let mut host = CaptureOutput::default();
    match run.resume(&mut host)? {
        Step::Io(batch) => assert_eq!(batch.len(), 10_000),
        step => return Err(format!("unexpected step {step:?}").into()),
    }
    report(
        "10 000 tasks suspended 20 frames deep",
        "deep",
        &run,
        Some((10_000, "task")),
    );
    finish_after_restore(&run)?;

    let program = engine.compile("small.spl", SMALL)?;
    let mut run = program.start(Vec::new());
    assert!(matches!(run.resume(&mut host)?, Step::Yield(_)));
    report("a small run paused at a yield", "small", &run, None);
    Ok(())
}
