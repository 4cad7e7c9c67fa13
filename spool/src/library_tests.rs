//! The library compiled at build time gives the same programs and the same
//! diagnostics as the library compiled from source with every script:
//! every conformance script and example, with the command line's I/O
//! operations registered, and a host function and a host type on top.

use std::path::{Path, PathBuf};

use crate::Engine;

/// The I/O operations of the `spool` command line, which most
/// conformance scripts use: `spool-cli`'s own list (`cli_io::SIGNATURES`),
/// read from its file (that crate depends on this one).
#[path = "../../repl/src/io_signatures.rs"]
#[allow(rustdoc::broken_intra_doc_links)]
mod cli_io;

/// Every script of `dir` and its folders, `lib` folders (imported files)
/// left out.
fn scripts(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("a scripts folder")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name != "lib") {
                scripts(&path, found);
            }
        } else if path.extension().is_some_and(|ext| ext == "spl") {
            found.push(path);
        }
    }
}

/// What compiling `path` with `engine` gives: the program's bytes, or the
/// diagnostics.
fn outcome(engine: &Engine, path: &Path) -> Result<Vec<u8>, String> {
    match engine.compile_path(path) {
        Ok(program) => Ok(postcard::to_allocvec(&**program.bytecode()).expect("serializes")),
        Err(error) => Err(format!("{:?}", error.diagnostics())),
    }
}

/// `engine` as it is and compiling the library from source agree on
/// every script.
fn check_every_script(engine: Engine) {
    let mut from_source = engine.clone();
    from_source.from_source = true;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("a parent");
    let mut found = Vec::new();
    scripts(&root.join("tests/scripts"), &mut found);
    scripts(&root.join("examples"), &mut found);
    assert!(found.len() > 100, "only {} scripts", found.len());
    let mut differ = Vec::new();
    for path in &found {
        if outcome(&engine, path) != outcome(&from_source, path) {
            differ.push(path.display().to_string());
        }
    }
    assert!(differ.is_empty(), "compiled differently: {differ:#?}");
}

fn cli_engine() -> Engine {
    let mut engine = Engine::new();
    for signature in cli_io::SIGNATURES {
        engine.register_io(signature).expect("parses");
    }
    engine
}

#[test]
fn the_compiled_library_compiles_every_script_as_the_source_does() {
    let engine = cli_engine();
    assert!(matches!(
        engine.library_in(),
        crate::LibraryIn::Compiled(..)
    ));
    check_every_script(engine);
}

#[test]
fn host_types_and_replaced_functions_compile_the_library_from_source() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i64,
        y: i64,
    }
    let mut engine = cli_engine();
    engine.register_type::<Point>().expect("declares");
    assert!(matches!(engine.library_in(), crate::LibraryIn::Source(..)));
    let mut engine = cli_engine();
    engine
        .register_fn("upper", |s: String| s.to_lowercase())
        .expect("registers");
    assert!(matches!(engine.library_in(), crate::LibraryIn::Source(..)));
    let mut engine = cli_engine();
    engine
        .register_io("fn map(x: int) -> int")
        .expect("registers");
    assert!(matches!(engine.library_in(), crate::LibraryIn::Source(..)));
}

#[test]
fn a_session_starts_from_the_compiled_library_as_from_source() {
    let engine = cli_engine();
    let mut from_source = engine.clone();
    from_source.from_source = true;
    let inputs = [
        "let xs = [3, 1, 2].sort_by(fn(a: int, b: int) => a < b)",
        "fn twice(x: int) -> int { return x * 2 }",
        "print(xs.map(twice))",
        "xs.fold(0, fn(a: int, b: int) => a + b)",
    ];
    let mut fast = crate::Session::new(&engine);
    let mut slow = crate::Session::new(&from_source);
    for input in inputs {
        fast.prepare("input", input).expect("compiles");
        slow.prepare("input", input).expect("compiles");
        let bytes = |session: &mut crate::Session| {
            postcard::to_allocvec(&**session.run().program()).expect("serializes")
        };
        assert_eq!(bytes(&mut fast), bytes(&mut slow), "after {input}");
    }
}
