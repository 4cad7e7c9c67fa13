//! The `spool` executable: a thin wrapper over [`spool_cli::cli::main`].

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(spool_cli::cli::main(args));
}
