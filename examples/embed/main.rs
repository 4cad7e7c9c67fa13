//! Embedding Spool: register a host I/O operation, compile a script, drive
//! its run step by step with an instruction budget, answer its batches of
//! I/O requests and its top-level `yield`s, save the run to bytes halfway
//! and finish it from the restored copy.
//!
//! Run with `cargo run -p spool-examples --example embed`.

use spool::{CaptureOutput, Data, Engine, Limits, Step, Value};

const SCRIPT: &str = r#"
fn fib(n: int) -> int {
  if n < 2 { return n }
  return fib(n - 1) + fib(n - 2)
}
let name: str = yield "who is asking?"
print("hello, ${name}: fib(20) = ${fib(20)}")
// Three tasks, one batch of three `load_user` requests.
let users = [1, 2, 3].map(fn(id) => spawn load_user(id))
print(users.map(fn(t) => await t).join(", "))
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut engine = Engine::new();
    // An I/O operation the host answers: scripts call it like a function.
    engine.register_io("fn load_user(id: int) -> str")?;
    let program = engine.compile("embedded.spl", SCRIPT)?;
    let mut run = program.start(Vec::new());
    run.set_limits(Limits {
        budget: Some(10_000),
        ..Limits::default()
    });
    let mut host = CaptureOutput::default();
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
            Step::Io(batch) => {
                println!("one batch of {} request(s)", batch.len());
                for request in batch {
                    let id = request.args[0].as_int().unwrap_or(0);
                    run.complete(request.id, Ok(Data::str(format!("user{id}"))));
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
