//! What a call from a script into Rust costs, three ways: (a) a Rust
//! closure registered with `Engine::register_fn` (`inc(x)`, its argument
//! and result converted through serde), (b) a native of the standard
//! library doing similar work (`abs(x)`), and (c) the same as an I/O
//! operation (`inc_io(x)`), where every call suspends the script, reaches
//! the host as a batch of one request and is answered before the run
//! resumes: a whole round trip through the host.
//!
//! Each variant runs `acc += CALL(i)` in a loop; the same loop with
//! `acc += i` is the baseline, and "net" figures subtract it, leaving the
//! call itself. Times are the best of 3 runs.
//!
//! Run with `cargo run --release -p spool-examples --example host_fn_bench
//! [ITERATIONS]` (2 000 000 by default).

use std::error::Error;
use std::time::Instant;

use spool::{CaptureOutput, Data, Engine, Program, Step};

/// Runs of each variant; the fastest counts.
const RUNS: usize = 3;

/// The loop, with `CALL` replaced by each variant's expression.
const LOOP: &str = "
let count = args()[0].parse_int()!
let acc = 0
for i in 0..count {
    acc += CALL
}
print(acc)
";

/// One way of doing the loop's work.
struct Variant {
    label: &'static str,
    call: &'static str,
}

const BASELINE: Variant = Variant {
    label: "loop alone (acc += i)",
    call: "i",
};
const REGISTERED: Variant = Variant {
    label: "(a) register_fn inc(i)",
    call: "inc(i)",
};
const NATIVE: Variant = Variant {
    label: "(b) library native abs(i)",
    call: "abs(i)",
};
const IO: Variant = Variant {
    label: "(c) I/O operation inc_io(i)",
    call: "inc_io(i)",
};

fn main() -> Result<(), Box<dyn Error>> {
    let iterations: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000_000);
    let engine = engine()?;
    println!("{iterations} iterations per run, best of {RUNS}");
    let baseline = measure(&engine, &BASELINE, iterations)?;
    report(&BASELINE, baseline, None, iterations);
    let mut raw = Vec::new();
    for variant in [REGISTERED, NATIVE, IO] {
        let seconds = measure(&engine, &variant, iterations)?;
        report(&variant, seconds, Some(baseline), iterations);
        raw.push(seconds);
    }
    let net: Vec<f64> = raw.iter().map(|s| (s - baseline).max(0.0)).collect();
    println!(
        "(a) / (b): {:.1}x per iteration, {:.1}x net",
        raw[0] / raw[1],
        ratio(net[0], net[1])
    );
    println!(
        "(c) / (a): {:.1}x per iteration, {:.1}x net",
        raw[2] / raw[0],
        ratio(net[2], net[0])
    );
    Ok(())
}

/// `numerator / denominator`, without dividing by zero.
fn ratio(numerator: f64, denominator: f64) -> f64 {
    numerator / denominator.max(f64::MIN_POSITIVE)
}

/// An engine with `inc` as a Rust function and `inc_io` as an I/O
/// operation.
fn engine() -> Result<Engine, spool::Error> {
    let mut engine = Engine::new();
    engine.register_fn("inc", |x: i64| x + 1)?;
    engine.register_io("fn inc_io(x: int) -> int")?;
    Ok(engine)
}

/// The best time of [`RUNS`] runs of `variant`'s loop, in seconds.
fn measure(engine: &Engine, variant: &Variant, iterations: u64) -> Result<f64, Box<dyn Error>> {
    let source = LOOP.replace("CALL", variant.call);
    let program = engine.compile("host_fn_bench.spl", &source)?;
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        let started = Instant::now();
        let printed = run_to_end(&program, iterations)?;
        best = best.min(started.elapsed().as_secs_f64());
        check_sum(variant, iterations, &printed)?;
    }
    Ok(best)
}

/// Runs `program` to its end, answering each `inc_io` request as soon as
/// it arrives; returns what it printed.
fn run_to_end(program: &Program, iterations: u64) -> Result<Vec<String>, Box<dyn Error>> {
    let mut run = program.start(vec![iterations.to_string()]);
    let mut output = CaptureOutput::default();
    loop {
        match run.resume(&mut output)? {
            Step::Done(_) => return Ok(output.lines),
            Step::Io(batch) => {
                for request in batch {
                    let x = request.args[0].as_int().ok_or("inc_io takes an int")?;
                    run.complete(request.id, Ok(Data::Int(x + 1)));
                }
            }
            step => return Err(format!("unexpected step {step:?}").into()),
        }
    }
}

/// Fails unless the loop printed the sum its calls should add up to.
fn check_sum(variant: &Variant, iterations: u64, printed: &[String]) -> Result<(), String> {
    let sum_of_i = (iterations * iterations.saturating_sub(1) / 2) as i64;
    let calls_add_one = variant.call.starts_with("inc");
    let expected = sum_of_i + if calls_add_one { iterations as i64 } else { 0 };
    if printed != [expected.to_string()] {
        return Err(format!(
            "{}: printed {printed:?}, not {expected}",
            variant.label
        ));
    }
    Ok(())
}

/// Prints ns per call and calls per second, raw and (after the baseline
/// loop's time is taken off) net.
fn report(variant: &Variant, seconds: f64, baseline: Option<f64>, iterations: u64) {
    let per_call = seconds * 1e9 / iterations as f64;
    let mut line = format!(
        "{:<30} {:>8.1} ns/iteration {:>12.0} iterations/s",
        variant.label,
        per_call,
        iterations as f64 / seconds
    );
    if let Some(baseline) = baseline {
        let net = (seconds - baseline).max(0.0);
        let net_per_call = net * 1e9 / iterations as f64;
        let calls_per_second = iterations as f64 / net.max(f64::MIN_POSITIVE);
        line.push_str(&format!(
            "   net {net_per_call:>7.1} ns/call {calls_per_second:>12.0} calls/s"
        ));
    }
    println!("{line}");
}
