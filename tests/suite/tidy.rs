//! The layout rules, checked: every Rust file of the repository opens with
//! a `//!` paragraph saying what it is for, and every file appears in
//! ARCHITECTURE.md's code map (by name; each crate's `lib.rs`, `main.rs`,
//! `build.rs` and a folder's `mod.rs` are covered by their crate's or
//! folder's entry).

use std::path::{Path, PathBuf};

/// The repository's root (this package lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, outside build output and version control.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "corpus" {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_file_opens_with_its_purpose_and_is_in_the_code_map() {
    let root = root();
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 50, "only {} files found", files.len());
    let mut problems = Vec::new();
    for path in &files {
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if !text.starts_with("//!") {
            problems.push(format!("{shown}: does not open with a `//!` paragraph"));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let covered = ["lib.rs", "main.rs", "build.rs", "mod.rs"].contains(&name.as_str());
        // `name.rs` or a path ending in it (`tests/natives.rs`).
        let named = map.contains(&format!("`{name}`")) || map.contains(&format!("/{name}`"));
        if !covered && !named && !map.contains(&shown) {
            problems.push(format!("{shown}: not in ARCHITECTURE.md's code map"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
