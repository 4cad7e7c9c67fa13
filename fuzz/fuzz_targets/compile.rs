//! Fuzz target: compiling arbitrary bytes never panics.
//! Run with `cargo +nightly fuzz run compile` from the repository root.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = spool::Engine::new().compile_bytes("fuzz.spl", data);
});
