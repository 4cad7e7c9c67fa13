//! The `spool` executable: a thin wrapper over [`spool_cli::cli::main`].
//!
//! It starts at a C `main` of its own rather than through the standard
//! library's start-up routine, and does what the command line needs of that
//! routine itself ([`spool_cli::process::start`]): an empty script starts
//! noticeably faster. Arguments still come from [`std::env::args`], and
//! [`std::process::exit`] flushes standard output on the way out.
#![no_main]

/// The process's entry point, called by the C runtime.
#[allow(unsafe_code)] // An unmangled symbol: the C runtime's `main`.
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    spool_cli::process::start();
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(spool_cli::cli::main(args));
}
