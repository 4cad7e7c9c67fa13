//! The `spool` executable: a thin wrapper over [`spool::cli::main`].

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(spool::cli::main(args));
}
