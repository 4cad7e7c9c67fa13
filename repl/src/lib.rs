//! The `spool` command line (`spool run`, `resume`, `inspect`, `check`,
//! `disasm`) and the interactive prompt, built on the embedding library
//! [`spool`]: the command line's I/O operations, durable state files, the
//! trace of a run, and the REPL's line editor.

pub mod cli;
pub mod cli_io;
pub mod durable;
pub mod editor;
pub mod repl;
pub mod store_cli;
pub mod trace;

/// An engine with the standard library and the command line's I/O
/// operations (LANGUAGE.md §6): `read_file`, `write_file`, `list_dir`,
/// `exec`, `http`, `http_get`, `sleep`, `now`, `env`, `input`.
pub fn engine() -> spool::Engine {
    let mut engine = spool::Engine::new();
    for signature in cli_io::SIGNATURES {
        engine
            .register_io(signature)
            .expect("the command line's signatures parse");
    }
    engine
}
