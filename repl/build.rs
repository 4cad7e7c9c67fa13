//! Links the `spool` executable at a fixed address (`-no-pie`) on Linux
//! with glibc: a position-independent one makes the dynamic loader patch
//! some eleven thousand pointers in its read-only data at every start,
//! copying those pages, which cost a short script a tenth of its start-up
//! time and about a megabyte of memory. The executable's code is then not
//! placed at a random address (the libraries, the heap and the stacks
//! still are).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=spool=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
