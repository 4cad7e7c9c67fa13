//! Fuzz target: whatever compiles runs under tight limits without
//! panicking — a small heap, a shallow stack, few tasks and an
//! instruction budget, with every I/O request failed or answered with
//! `nil` and every top-level yield answered with `nil`; the run is also
//! saved and restored at each pause, so the saved form of whatever state a
//! script reaches must restore.
//! Run with `cargo +nightly fuzz run run` from the `fuzz/` directory.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spool::{CaptureOutput, Data, Limits, Step};

/// The command line's engine (its I/O operations are part of what scripts
/// may call), built once.
fn engine() -> &'static spool::Engine {
    static ENGINE: OnceLock<spool::Engine> = OnceLock::new();
    ENGINE.get_or_init(spool_cli::engine)
}

/// Pauses a run may take before the target moves on.
const MAX_PAUSES: usize = 20;

fuzz_target!(|data: &[u8]| {
    let Ok(program) = engine().compile_bytes("fuzz.spl", data) else {
        return;
    };
    let limits = Limits {
        budget: Some(2_000),
        max_heap_bytes: 16 << 20,
        max_call_depth: 2_000,
        max_tasks: 200,
    };
    let mut run = program.start(vec!["fuzz".into()]);
    run.set_limits(limits);
    let mut output = CaptureOutput::default();
    for pause in 0..MAX_PAUSES {
        match run.resume(&mut output) {
            Ok(Step::Io(batch)) => {
                for (i, request) in batch.into_iter().enumerate() {
                    let answer = if i % 2 == 0 {
                        Err("no I/O while fuzzing".into())
                    } else {
                        Ok(Data::Nil)
                    };
                    run.complete(request.id, answer);
                }
            }
            Ok(Step::Yield(_)) => run.send(spool::Value::Nil),
            Ok(Step::Paused) => {}
            Ok(Step::Done(_)) | Err(_) => return,
        }
        if pause % 4 == 3 {
            let bytes = spool::snapshot(&run);
            run = spool::restore(&bytes).expect("a run's own snapshot restores");
            run.set_limits(limits);
        }
    }
});
