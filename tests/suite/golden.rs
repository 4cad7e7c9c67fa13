//! Golden files for what the compiler emits (CONVENTIONS.md point 8):
//! `tests/golden/disasm/X.spl` is compiled and its disassembly compared with
//! `X.disasm`; `tests/golden/diagnostics/X.spl` must fail to compile and its
//! rendered diagnostics are compared with `X.txt`.
//!
//! `UPDATE_GOLDEN=1 cargo test -p spool-tests` writes the expected files
//! from what the compiler produces now; review the diff before committing.

use std::path::{Path, PathBuf};

use spool_tests::{find_files, relative_name, selected, workspace_root};

use crate::support::{catch_panic, with_big_stack};

#[test]
fn disassembly_goldens() {
    check_goldens("tests/golden/disasm", "disasm", |name, source| {
        let engine = spool_cli::engine();
        match engine.compile(name, source) {
            Ok(program) => Ok(program.disassemble()),
            Err(error) => Err(format!("does not compile:\n{}", error.render())),
        }
    });
}

#[test]
fn diagnostic_goldens() {
    check_goldens("tests/golden/diagnostics", "txt", |name, source| {
        let engine = spool_cli::engine();
        match engine.compile(name, source) {
            Ok(_) => Err("compiles, but this golden expects compile errors".to_string()),
            Err(error) => Ok(error.render()),
        }
    });
}

/// Produces the actual text for each `.spl` under `dir` with `produce`
/// (given the script's relative name and source) and compares it with the
/// file of the same stem and extension `ext`. All mismatches fail at once.
fn check_goldens(dir: &str, ext: &str, produce: fn(&str, &str) -> Result<String, String>) {
    let inputs = find_files(&workspace_root().join(dir), "spl", &[]);
    assert!(!inputs.is_empty(), "no golden inputs in {dir}");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0");
    let mut failures = Vec::new();
    for input in inputs {
        let name = relative_name(&input);
        if !selected(&name) {
            continue;
        }
        if let Err(problem) = check_one(&input, &name, ext, produce, update) {
            failures.push(format!("{name}: {problem}"));
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches:\n\n{}",
        failures.join("\n\n")
    );
}

fn check_one(
    input: &Path,
    name: &str,
    ext: &str,
    produce: fn(&str, &str) -> Result<String, String>,
    update: bool,
) -> Result<(), String> {
    let source = std::fs::read_to_string(input).map_err(|error| format!("cannot read: {error}"))?;
    let owned_name = name.to_string();
    let actual = with_big_stack(move || catch_panic(|| produce(&owned_name, &source)))
        .map_err(|panic| format!("the compiler panicked: {panic}"))??;
    let golden: PathBuf = input.with_extension(ext);
    if update {
        return std::fs::write(&golden, &actual)
            .map_err(|error| format!("cannot write golden: {error}"));
    }
    let Ok(expected) = std::fs::read_to_string(&golden) else {
        return Err(format!(
            "missing golden file {}; run `UPDATE_GOLDEN=1 cargo test -p spool-tests` to create it",
            relative_name(&golden)
        ));
    };
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "differs from {} (UPDATE_GOLDEN=1 to accept):\n{}",
            relative_name(&golden),
            line_diff(&expected, &actual)
        ))
    }
}

/// A small line diff: the lines of each side from the first difference on,
/// marked `-` (expected) and `+` (actual).
fn line_diff(expected: &str, actual: &str) -> String {
    let (old, new): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let first = old
        .iter()
        .zip(&new)
        .position(|(a, b)| a != b)
        .unwrap_or(old.len().min(new.len()));
    let mut out = format!("  first difference at line {}\n", first + 1);
    for line in old.iter().skip(first).take(20) {
        out.push_str(&format!("  - {line}\n"));
    }
    for line in new.iter().skip(first).take(20) {
        out.push_str(&format!("  + {line}\n"));
    }
    if old.len() == new.len() && first == old.len() {
        out.push_str("  (only trailing newlines differ)\n");
    }
    out
}
