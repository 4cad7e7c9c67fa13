//! The `spool` command line (`spool run`, `resume`, `inspect`, `check`,
//! `disasm`) and the interactive prompt, built on the embedding library
//! [`spool`]: the command line's I/O operations, durable state files, the
//! trace of a run, and the REPL's line editor.

pub mod cli;
pub mod cli_io;
pub mod durable;
pub mod editor;
mod io_signatures;
pub mod process;
pub mod repl;
pub mod store_cli;
pub mod trace;

/// An engine with the standard library and the command line's I/O
/// operations (LANGUAGE.md §6): `read_file`, `write_file`, `list_dir`,
/// `exec`, `http`, `http_get`, `sleep`, `now`, `env`, `input`. Their
/// signatures ([`cli_io::SIGNATURES`]) were parsed when this crate was
/// built (`build.rs`), which saves parsing them on every start.
pub fn engine() -> spool::Engine {
    let mut engine = spool::Engine::new();
    for decl in io_decls() {
        engine
            .register_io_decl(decl)
            .expect("the command line's signatures name known types");
    }
    engine
}

/// [`cli_io::SIGNATURES`] as `build.rs` parsed them, in their order.
fn io_decls() -> Vec<spool_lang::ast::FnDecl> {
    let bytes = include_bytes!(concat!(env!("OUT_DIR"), "/io_signatures.bin"));
    postcard::from_bytes(bytes).expect("the signatures parsed at build time decode")
}

#[cfg(test)]
mod tests {
    /// `build.rs` links GCC's unwinder statically into this crate's
    /// executables, this test's among them: a panic must still unwind to
    /// `catch_unwind` (as a host's I/O handler's does in
    /// `spool::dispatch`), running the destructors on its way, and a
    /// backtrace must still walk the stack.
    #[test]
    fn panics_unwind_through_the_static_unwinder() {
        struct Dropped<'a>(&'a std::cell::Cell<bool>);
        impl Drop for Dropped<'_> {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = std::cell::Cell::new(false);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = Dropped(&dropped);
            std::panic::panic_any(42_u32)
        }));
        let payload = caught.expect_err("the panic reaches catch_unwind");
        assert_eq!(payload.downcast_ref::<u32>(), Some(&42));
        assert!(dropped.get(), "unwinding ran the destructor");
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        assert!(
            trace.contains("panics_unwind_through_the_static_unwinder"),
            "the backtrace names this test: {trace}"
        );
    }
}
