//! Compiles the standard library (the prelude and the natives' signatures)
//! once, when this crate is built, into `library.bin` in `OUT_DIR`:
//! [`spool_lang::Library::to_bytes`], which every engine without host
//! changes to the library starts its compiles from instead of parsing and
//! checking the library on every start.

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
    println!("cargo:rerun-if-changed=build.rs");
}
