//! How the `spool` executable is linked, for a quick start and little
//! memory on short scripts:
//!
//! - at a fixed address (`-no-pie`) on Linux with glibc: a
//!   position-independent one makes the dynamic loader patch some eleven
//!   thousand pointers in its read-only data at every start, copying those
//!   pages (a tenth of an empty script's start-up time and about a
//!   megabyte of memory). The executable's code is then not placed at a
//!   random address; the libraries, the heap and the stacks still are.
//! - with the functions a short run executes laid out together, followed
//!   by those the benchmark workloads go on to execute
//!   (`startup-order.txt`, written by `examples/bench/startup_order.sh`)
//!   when rustc links with its own lld, as it does on x86-64 Linux with
//!   glibc from Rust 1.90: the kernel maps code in 64 KiB blocks around
//!   each page first touched, and spread over the whole executable those
//!   functions made it map half of it.
//! - with GCC's unwinder linked in (`libgcc_eh.a`) rather than loaded from
//!   `libgcc_s.so.1` at every start, on Linux with glibc.
//!
//! It also parses the signatures of the command line's I/O operations
//! (`src/io_signatures.rs`) into `io_signatures.bin` in `OUT_DIR`
//! (postcard), which `spool_cli::engine` registers without parsing them
//! again on every start.

#[path = "src/io_signatures.rs"]
mod io_signatures;

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=spool=-no-pie");
        link_unwinder_statically();
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = std::path::Path::new(&dir).join("startup-order.txt");
    if order.is_file() && links_with_rust_lld() {
        println!(
            "cargo:rustc-link-arg-bin=spool=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // Names of another build (other hashes) are skipped quietly.
        println!("cargo:rustc-link-arg-bin=spool=-Wl,--no-warn-symbol-ordering");
    }
    write_io_signatures();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/io_signatures.rs");
    println!("cargo:rerun-if-changed=startup-order.txt");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    println!("cargo:rerun-if-env-changed=CC");
}

/// Links GCC's unwinder into the executable instead of loading
/// `libgcc_s.so.1` at every start (a library's mapping and relocation,
/// and its constructor probing the processor: some 40 microseconds, a
/// tenth of an empty script's start-up). Rust's standard library asks for
/// `-lgcc_s`; a `libgcc_s.so` in `OUT_DIR`, searched first, is a linker
/// script naming the static `libgcc_eh.a` instead, as `-static-libgcc`
/// does for C programs. Left as it is when the C compiler does not know
/// of a `libgcc_eh.a`.
fn link_unwinder_statically() {
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let Ok(output) = std::process::Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !std::path::Path::new(&path).is_absolute() || !std::path::Path::new(&path).is_file() {
        return;
    }
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("unwinder");
    std::fs::create_dir_all(&dir).expect("OUT_DIR is writable");
    std::fs::write(dir.join("libgcc_s.so"), format!("INPUT({path})\n"))
        .expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search=native={}", dir.display());
}

/// Does rustc link this executable with its own lld? It does for
/// x86_64-unknown-linux-gnu from Rust 1.90 on, unless a linker or its
/// flavour is chosen.
fn links_with_rust_lld() -> bool {
    let target = std::env::var("TARGET").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let linker_chosen = flags.contains("linker")
        || flags.contains("fuse-ld")
        || std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some();
    target == "x86_64-unknown-linux-gnu" && !linker_chosen && rustc_minor() >= Some(90)
}

/// The minor version of the rustc building this crate (`rustc 1.95.0 …`
/// gives 95).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    version.split('.').nth(1)?.parse().ok()
}

/// Parses [`io_signatures::SIGNATURES`] into `io_signatures.bin`.
fn write_io_signatures() {
    let decls: Vec<spool_lang::ast::FnDecl> = io_signatures::SIGNATURES
        .iter()
        .map(|signature| match spool_lang::parse_native_sig(signature) {
            Ok(decl) => decl,
            Err(diagnostics) => panic!("`{signature}` does not parse: {diagnostics:#?}"),
        })
        .collect();
    let bytes = postcard::to_allocvec(&decls).expect("a signature serializes");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("io_signatures.bin"), bytes).expect("OUT_DIR is writable");
}
