//! Fuzz target: compiling arbitrary bytes never panics.
//! Run with `cargo +nightly fuzz run compile` from the `fuzz/` directory.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One engine for every input: building one parses the library, which
/// would otherwise cost more than most compiles.
fn engine() -> &'static spool::Engine {
    static ENGINE: OnceLock<spool::Engine> = OnceLock::new();
    ENGINE.get_or_init(spool::Engine::new)
}

fuzz_target!(|data: &[u8]| {
    let _ = engine().compile_bytes("fuzz.spl", data);
});
