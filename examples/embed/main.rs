//! Embedding Spool: compile a script, drive its run step by step with an
//! instruction budget, answer its top-level `yield`s, save the run to bytes
//! halfway and finish it from the restored copy.
//!
//! Run with `cargo run -p spool-examples --example embed`.

use spool::{CaptureHost, Engine, Limits, Step, Value};

const SCRIPT: &str = r#"
fn fib(n: int) -> int {
  if n < 2 { return n }
  return fib(n - 1) + fib(n - 2)
}
let name: str = yield "who is asking?"
print("hello, ${name}: fib(20) = ${fib(20)}")
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new();
    let program = engine.compile("embedded.spl", SCRIPT)?;
    let mut run = program.start(Vec::new());
    run.set_limits(Limits {
        budget: Some(10_000),
        ..Limits::default()
    });
    let mut host = CaptureHost::default();
    let mut pauses = 0;
    loop {
        match run.resume(&mut host)? {
            Step::Done(_) => break,
            Step::Paused => {
                pauses += 1;
                // The whole run is plain data: save it and carry on from the copy.
                if pauses == 3 {
                    let bytes = spool::snapshot(&run);
                    println!("saved the run halfway: {} bytes", bytes.len());
                    run = spool::restore(&bytes)?;
                }
            }
            Step::Yield(question) => {
                println!("the script asks: {}", run.display(question));
                let answer: Value = run.heap_mut().alloc_str("embedder");
                run.send(answer);
            }
        }
    }
    for line in &host.lines {
        println!("script printed: {line}");
    }
    println!("paused {pauses} times on its instruction budget");
    Ok(())
}
