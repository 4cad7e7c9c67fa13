//! Fuzz target: `spool::restore` of arbitrary bytes never panics, and a run
//! it accepts executes (briefly, with any I/O answered) without panicking.
//!
//! Bytes are taken both as a whole file and as a body that gets a correct
//! header and checksum, so the fuzzer reaches the decoder and the validator.
//! Run with `cargo +nightly fuzz run restore` from the repository root.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spool::{CaptureHost, Data, Limits, Step};

fn exercise(bytes: &[u8]) {
    let Ok(mut run) = spool::restore(bytes) else {
        return;
    };
    run.set_limits(Limits {
        budget: Some(1_000),
        max_heap_objects: 100_000,
        max_call_depth: 1_000,
        max_tasks: 1_000,
    });
    let mut host = CaptureHost::default();
    for _ in 0..20 {
        match run.resume(&mut host) {
            Ok(Step::Done(_)) | Err(_) => break,
            Ok(Step::Paused) => {}
            Ok(Step::Yield(_)) => run.send(spool::Value::Nil),
            Ok(Step::Io(_)) => {
                for request in run.pending_io() {
                    run.complete(request.id, Ok(Data::Int(1)));
                }
            }
        }
    }
    let _ = spool::snapshot(&run);
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    let mut sealed = vec![0; spool::snapshot::HEADER_LEN];
    sealed.extend_from_slice(data);
    spool::snapshot::seal(&mut sealed, 0);
    exercise(&sealed);
});
