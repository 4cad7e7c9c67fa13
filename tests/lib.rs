//! Test support for Spool's integration suite: where the workspace is, which
//! scripts exist, and what a script expects of a run.
//!
//! A conformance script states its own expectations in comments
//! (DESIGN.md §Tests); [`Directives::parse`] reads them. The harness in
//! `suite/` decides what to do with them; nothing here runs a script.

use std::fmt;
use std::path::{Path, PathBuf};

/// The workspace root (the parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `path` relative to the workspace root, with `/` separators, as scripts
/// are named in reports, diagnostics and stack traces.
pub fn relative_name(path: &Path) -> String {
    let root = workspace_root();
    let relative = path.strip_prefix(&root).unwrap_or(path);
    relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every file under `dir` whose name ends in `extension` (without the dot),
/// recursively, sorted by path so reports come out in a stable order.
/// Directories named in `exclude` (relative to the workspace root) are not
/// entered.
pub fn find_files(dir: &Path, extension: &str, exclude: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    collect_files(dir, extension, exclude, &mut found);
    found.sort();
    found
}

fn collect_files(dir: &Path, extension: &str, exclude: &[&str], found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if !exclude.contains(&relative_name(&path).as_str()) {
                collect_files(&path, extension, exclude, found);
            }
        } else if path.extension().is_some_and(|ext| ext == extension) {
            found.push(path);
        }
    }
}

/// The conformance scripts: `tests/scripts/**/*.spl` and `examples/**/*.spl`
/// (not `examples/bench`, whose workloads are far too long for a test run,
/// nor `examples/store`, workflows that wait for `spool send` in a store).
/// A folder named `lib` holds files that the scripts beside it import
/// (declarations only), not scripts.
pub fn conformance_scripts() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut scripts = find_files(&root.join("tests/scripts"), "spl", &[]);
    scripts.extend(find_files(
        &root.join("examples"),
        "spl",
        &["examples/bench", "examples/store"],
    ));
    // Files in a `lib` folder are imported by the scripts beside it.
    scripts.retain(|path| {
        let name = relative_name(path);
        let folders: Vec<&str> = name.split('/').collect();
        !folders[..folders.len().saturating_sub(1)].contains(&"lib")
    });
    scripts
}

/// Whether `name` passes the `SPOOL_TEST_FILTER` environment variable (a
/// substring of the script's relative path); everything passes when unset.
pub fn selected(name: &str) -> bool {
    match std::env::var("SPOOL_TEST_FILTER") {
        Ok(filter) if !filter.is_empty() => name.contains(&filter),
        _ => true,
    }
}

/// A compile error a script expects: on `line`, with a message (or hint)
/// containing `text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedCompileError {
    /// 1-based line of the directive, where the error's primary span must be.
    pub line: usize,
    /// A substring of the diagnostic's message.
    pub text: String,
}

/// The uncaught error a script expects its run to end with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedRuntimeError {
    /// 1-based line of the directive (for reports only).
    pub line: usize,
    /// The error's kind, e.g. `Index` or a script's own kind.
    pub kind: String,
    /// A substring of the message, when the directive gives one.
    pub message: Option<String>,
}

impl fmt::Display for ExpectedRuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{}: ...{}...", self.kind, message),
            None => f.write_str(&self.kind),
        }
    }
}

/// Everything a script's comments ask of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// `// expect: LINE`: stdout lines, in order.
    pub stdout: Vec<String>,
    /// `// expect error: TEXT`: compile errors, by line.
    pub compile_errors: Vec<ExpectedCompileError>,
    /// `// expect runtime error: KIND[: message]`.
    pub runtime_error: Option<ExpectedRuntimeError>,
    /// `// stdin: LINE`: input lines, in order.
    pub stdin: Vec<String>,
    /// `// args: a b c`: the script's arguments.
    pub args: Vec<String>,
    /// `// skip: REASON`.
    pub skip: Option<String>,
    /// Directives that could not be understood (a typo such as
    /// `// expected: 1` or a second runtime error), as `line: problem`.
    pub defects: Vec<String>,
}

/// The directive markers, most specific first: `// expect:` must not
/// swallow `// expect error:`.
const RUNTIME_ERROR: &str = "// expect runtime error:";
const COMPILE_ERROR: &str = "// expect error:";
const EXPECT: &str = "// expect:";
const STDIN: &str = "// stdin:";
const ARGS: &str = "// args:";
const SKIP: &str = "// skip:";

impl Directives {
    /// Reads the directives of a script's source.
    pub fn parse(source: &str) -> Directives {
        let mut directives = Directives::default();
        for (index, line) in source.lines().enumerate() {
            directives.parse_line(index + 1, line);
        }
        directives
    }

    /// Whether the script is meant to fail compilation.
    pub fn expects_compile_error(&self) -> bool {
        !self.compile_errors.is_empty()
    }

    /// Whether a run of the script can fail this test: it states some
    /// output or an error.
    pub fn has_expectation(&self) -> bool {
        !self.stdout.is_empty() || self.runtime_error.is_some() || self.expects_compile_error()
    }

    fn parse_line(&mut self, number: usize, line: &str) {
        if let Some(rest) = after(line, RUNTIME_ERROR) {
            self.parse_runtime_error(number, rest);
        } else if let Some(rest) = after(line, COMPILE_ERROR) {
            let text = rest.trim().to_string();
            if text.is_empty() {
                self.defects
                    .push(format!("{number}: `expect error:` without a message"));
            }
            self.compile_errors
                .push(ExpectedCompileError { line: number, text });
        } else if let Some(rest) = after(line, EXPECT) {
            // The text after `expect: ` exactly; `// expect:` alone is an empty line.
            self.stdout
                .push(rest.strip_prefix(' ').unwrap_or(rest).to_string());
        } else if let Some(rest) = after(line, STDIN) {
            self.stdin
                .push(rest.strip_prefix(' ').unwrap_or(rest).to_string());
        } else if let Some(rest) = after(line, ARGS) {
            self.args
                .extend(rest.split_whitespace().map(str::to_string));
        } else if let Some(rest) = after(line, SKIP) {
            self.skip = Some(rest.trim().to_string());
        } else if looks_like_directive(line) {
            self.defects.push(format!(
                "{number}: unrecognised directive `{}`",
                line.trim()
            ));
        }
    }

    fn parse_runtime_error(&mut self, number: usize, rest: &str) {
        let rest = rest.trim();
        let (kind, message) = match rest.split_once(':') {
            Some((kind, message)) => (kind.trim(), Some(message.trim().to_string())),
            None => (rest, None),
        };
        if kind.is_empty() {
            self.defects
                .push(format!("{number}: `expect runtime error:` without a kind"));
        }
        if self.runtime_error.is_some() {
            self.defects
                .push(format!("{number}: a second `expect runtime error:`"));
        }
        self.runtime_error = Some(ExpectedRuntimeError {
            line: number,
            kind: kind.to_string(),
            message: message.filter(|m| !m.is_empty()),
        });
    }

    /// Contradictions between directives, plus the malformed ones found
    /// while parsing.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.defects.clone();
        if self.expects_compile_error() {
            if !self.stdout.is_empty() {
                problems.push("expects a compile error and also stdout lines".to_string());
            }
            if self.runtime_error.is_some() {
                problems.push("expects both a compile error and a runtime error".to_string());
            }
        }
        problems
    }
}

/// The text after `marker` in `line`, if the line contains it.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|at| &line[at + marker.len()..])
}

/// A comment that starts like a directive but matched none (`// expected:`,
/// `//expect:`, `// Skip:`), so a typo cannot silently disable a check: a
/// comment whose text before its first `:` is at most three words, the
/// first of them a directive word.
fn looks_like_directive(line: &str) -> bool {
    const WORDS: [&str; 7] = [
        "expect", "expected", "expects", "stdin", "args", "arg", "skip",
    ];
    let Some(at) = line.find("//") else {
        return false;
    };
    let comment = line[at + 2..].to_ascii_lowercase();
    let Some((head, _)) = comment.split_once(':') else {
        return false;
    };
    let words: Vec<&str> = head.split_whitespace().collect();
    words.len() <= 3 && words.first().is_some_and(|first| WORDS.contains(first))
}

/// A deterministic xorshift64* generator, for reproducible mutations.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (zero is replaced: xorshift never leaves 0).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_directive() {
        let source = "// what it checks\n\
                      print(1) // expect: 1\n\
                      // expect:\n\
                      let x: int = \"s\" // expect error: mismatched types\n\
                      // expect runtime error: Index: out of range\n\
                      // stdin: hello\n\
                      // args: a b  c\n\
                      // skip: needs tasks\n";
        let directives = Directives::parse(source);
        assert_eq!(directives.stdout, ["1", ""]);
        assert_eq!(
            directives.compile_errors,
            [ExpectedCompileError {
                line: 4,
                text: "mismatched types".into()
            }]
        );
        let runtime = directives.runtime_error.clone().unwrap();
        assert_eq!(
            (runtime.kind.as_str(), runtime.message.as_deref()),
            ("Index", Some("out of range"))
        );
        assert_eq!(directives.stdin, ["hello"]);
        assert_eq!(directives.args, ["a", "b", "c"]);
        assert_eq!(directives.skip.as_deref(), Some("needs tasks"));
        assert!(directives.defects.is_empty());
    }

    #[test]
    fn keeps_expected_text_exactly() {
        let directives = Directives::parse("print(\"  x \") // expect:   x \n");
        assert_eq!(directives.stdout, ["  x "]);
    }

    #[test]
    fn flags_typos() {
        let directives =
            Directives::parse("// expected: 1\n//expect: 2\n// Skip: x\n// expect eror: y\n");
        assert_eq!(directives.defects.len(), 4, "{:?}", directives.defects);
        let prose = Directives::parse("// Skips empty ranges: nothing runs\n// Checks: a, b\n");
        assert!(prose.defects.is_empty(), "{:?}", prose.defects);
    }

    #[test]
    fn runtime_error_kind_alone() {
        let directives = Directives::parse("// expect runtime error: DivByZero\n");
        let runtime = directives.runtime_error.unwrap();
        assert_eq!(
            (runtime.kind.as_str(), runtime.message),
            ("DivByZero", None)
        );
    }

    #[test]
    fn xorshift_is_deterministic() {
        let (mut a, mut b) = (XorShift::new(7), XorShift::new(7));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert!(a.below(10) < 10);
    }
}
