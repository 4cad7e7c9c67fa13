//! Compiles the standard library (the prelude and the natives' signatures)
//! once, when this crate is built, into `library.bin` in `OUT_DIR`:
//! [`spool_lang::Library::to_bytes`], which every engine without host
//! changes to the library starts its compiles from instead of parsing and
//! checking the library on every start; and `library_names.rs`, the
//! names of the library's types, natives and functions and its prelude's
//! expression count as constants, so registering a host function or
//! operation needs no decoded library.

fn main() {
    let specs: Vec<spool_lang::NativeSpec> = spool_stdlib::natives()
        .iter()
        .map(|native| spool_lang::NativeSpec {
            key: native.key.to_string(),
            decl: spool_lang::parse_native_sig(native.sig).expect("library signatures parse"),
            io: false,
        })
        .collect();
    let prelude = spool_lang::parse(spool_stdlib::PRELUDE, 0).expect("the prelude parses");
    let source = spool_lang::SourceFile {
        name: "prelude.spl",
        text: spool_stdlib::PRELUDE,
        ast: &prelude,
    };
    let library = match spool_lang::Library::new(source, &specs) {
        Ok(library) => library,
        Err(diagnostics) => panic!("the prelude does not compile: {diagnostics:#?}"),
    };
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("library.bin"), library.to_bytes()).expect("OUT_DIR is writable");
    std::fs::write(out.join("library_names.rs"), names_source(&library))
        .expect("OUT_DIR is writable");
    println!("cargo:rerun-if-changed=build.rs");
}

/// The Rust source of the constants `library_names.rs` holds (strings
/// written with `{:?}`, which Rust reads back as the same string).
fn names_source(library: &spool_lang::Library) -> String {
    let mut functions: Vec<&str> = library.function_names().collect();
    functions.sort_unstable();
    let types: Vec<&str> = library.type_names().collect();
    let mut natives: Vec<(&str, &str)> = library.natives().map(|(key, name)| (name, key)).collect();
    natives.sort_unstable();
    let mut keys: Vec<&str> = library.natives().map(|(key, _)| key).collect();
    keys.sort_unstable();
    format!(
        "/// The names of the structs and enums the library declares.\n\
         const LIBRARY_TYPES: &[&str] = &{types:?};\n\
         /// The library's natives as `(name, key)`, sorted.\n\
         const LIBRARY_NATIVES: &[(&str, &str)] = &{natives:?};\n\
         /// The keys of the library's natives, sorted.\n\
         const LIBRARY_NATIVE_KEYS: &[&str] = &{keys:?};\n\
         /// The names of the library's functions, sorted.\n\
         const LIBRARY_FUNCTIONS: &[&str] = &{functions:?};\n\
         /// The number of the prelude's expressions.\n\
         const LIBRARY_EXPR_COUNT: u32 = {};\n",
        library.expr_count()
    )
}
