//! The `spool` executable: a thin wrapper over [`spool::cli::main`].
//!
//! It allocates with mimalloc: a run allocates and frees many small
//! objects (strings, tasks, I/O requests), which the system allocator
//! handles markedly slower.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(spool::cli::main(args));
}
