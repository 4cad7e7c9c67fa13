//! The scheduler benchmark of BENCHMARKS.md: 100 000 tasks, each issuing 3
//! I/O requests one after the other, against a host that answers every
//! request at once. Reports the scheduler's overhead per request (the
//! whole run's time divided by the number of requests: spawning, switching
//! tasks, building each request and delivering its result) and the memory
//! per suspended task (resident memory while all 100 000 wait on their
//! first request, over the tasks). It also runs the same script with
//! `fetch` as a plain function instead of an I/O operation: the difference
//! between the two, per request, is what suspending for I/O adds
//! (batching, switching tasks, converting arguments and results), without
//! the cost of spawning and awaiting the tasks themselves.
//!
//! Run with `cargo run --release -p spool-examples --example io_bench
//! [TASKS]`. The last line repeats the figures as `bench: key=value ...`
//! for `run.sh`.

use std::time::Instant;

use spool::{CaptureOutput, Data, Engine, Step};

const SCRIPT: &str = "
fn work(n: int) -> int {
    let a = fetch(n)
    let b = fetch(a)
    return fetch(b)
}
let count = int(args()[0].parse_int()!)
let tasks: [Task<int>] = []
for i in 0..count {
    tasks.push(spawn work(i))
}
let total = 0
for t in tasks {
    total += await t
}
print(total)
";

/// Resident memory of this process in bytes (Linux), or 0.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:"));
    let kib = line.and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    kib.unwrap_or(0) * 1024
}

/// The same work with `fetch` an ordinary function: no I/O at all.
fn baseline(tasks: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let source = format!("fn fetch(n: int) -> int {{\n    return n + 1\n}}\n{SCRIPT}");
    let program = Engine::new().compile("baseline.spl", &source)?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut run = program.start(vec![tasks.to_string()]);
        let mut host = CaptureOutput::default();
        let started = Instant::now();
        let step = run.resume(&mut host)?;
        best = best.min(started.elapsed().as_secs_f64());
        assert!(matches!(step, Step::Done(_)));
    }
    Ok(best)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tasks: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let mut engine = Engine::new();
    engine.register_io("fn fetch(n: int) -> int")?;
    let program = engine.compile("io_bench.spl", SCRIPT)?;
    let mut best = f64::MAX;
    let mut per_task = 0.0;
    for round in 0..5 {
        let before = resident_bytes();
        let mut run = program.start(vec![tasks.to_string()]);
        let mut host = CaptureOutput::default();
        let mut requests = 0u64;
        let mut batches = 0u64;
        let started = Instant::now();
        loop {
            match run.resume(&mut host)? {
                Step::Done(_) => break,
                Step::Io(batch) => {
                    if batches == 0 && round == 0 {
                        per_task = resident_bytes().saturating_sub(before) as f64 / tasks as f64;
                    }
                    batches += 1;
                    requests += batch.len() as u64;
                    for request in batch {
                        let n = request.args[0].as_int().unwrap_or(0);
                        run.complete(request.id, Ok(Data::Int(n + 1)));
                    }
                }
                step => return Err(format!("unexpected step {step:?}").into()),
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        best = best.min(elapsed);
        assert_eq!(batches, 3, "one batch per I/O phase");
        assert_eq!(requests, 3 * tasks);
        let expected = (0..tasks).map(|i| i + 3).sum::<u64>();
        assert_eq!(host.lines, [expected.to_string()]);
    }
    let requests = 3 * tasks;
    let base = baseline(tasks)?;
    println!("{tasks} tasks x 3 requests: best of 5 runs {best:.3} s");
    println!("the same tasks calling a plain function instead: {base:.3} s");
    println!(
        "whole run per request: {:.0} ns; I/O's share per request: {:.0} ns (target <= 200 ns)",
        best * 1e9 / requests as f64,
        (best - base).max(0.0) * 1e9 / requests as f64
    );
    println!("memory per suspended task: {per_task:.0} bytes (target <= 1024)");
    // One line for scripts (`run.sh`): the figures above as key=value.
    println!(
        "bench: io_ns_per_request={:.0} io_share_ns_per_request={:.0} bytes_per_suspended_task={per_task:.0}",
        best * 1e9 / requests as f64,
        (best - base).max(0.0) * 1e9 / requests as f64
    );
    Ok(())
}
