//! The conformance harness: every script of `tests/scripts/**` and
//! `examples/*.spl` is compiled and run in each [`Mode`], and whatever it
//! prints and however it ends is compared with the directives in its
//! comments. Every mismatch of every script is collected and reported at
//! once, by one failing test.
//!
//! `SPOOL_TEST_FILTER=substring` runs only the scripts whose path contains
//! it; `SPOOL_TEST_TIMEOUT=seconds` (default 300) bounds each script;
//! `SPOOL_TEST_TIMES=1` prints how long each script took in each mode
//! (visible with `--nocapture`).

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use spool_tests::{conformance_scripts, relative_name, selected, Directives};

use crate::runner::{self, End, Mode, Outcome};
use crate::support::{catch_panic, spawn_big_stack};

/// One script with its source and directives.
#[derive(Clone, Debug)]
struct Script {
    /// Its path relative to the workspace root, as reports and traces name it.
    name: String,
    /// The source text.
    source: String,
    /// What its comments ask.
    directives: Directives,
}

/// The judgement on one script.
#[derive(Debug)]
enum Verdict {
    /// Everything matched in every mode.
    Passed,
    /// Not run, for the reason given by `// skip:`.
    Skipped(String),
    /// One paragraph per problem.
    Failed(Vec<String>),
}

#[test]
fn conformance() {
    let scripts = load_scripts();
    assert!(
        !scripts.is_empty(),
        "no conformance script matches SPOOL_TEST_FILTER"
    );
    let verdicts = judge_all(&scripts);
    let mut report = String::new();
    let (mut passed, mut failed, mut skipped) = (0, 0, Vec::new());
    for (script, verdict) in scripts.iter().zip(&verdicts) {
        match verdict {
            Verdict::Passed => passed += 1,
            Verdict::Skipped(reason) => skipped.push(format!("  {}: {reason}", script.name)),
            Verdict::Failed(problems) => {
                failed += 1;
                for problem in problems {
                    report.push_str(&format!("\nFAIL {} {problem}\n", script.name));
                }
            }
        }
    }
    let summary = format!(
        "conformance: {passed} passed, {failed} failed, {} skipped",
        skipped.len()
    );
    if !skipped.is_empty() {
        println!("skipped:\n{}", skipped.join("\n"));
    }
    println!("{summary}");
    assert!(failed == 0, "{report}\n{summary}");
}

/// Every script must be able to fail: a runnable script states its output
/// or its error, and no directive is malformed.
#[test]
fn scripts_can_fail() {
    let mut defects = Vec::new();
    for script in load_scripts() {
        let mut problems = script.directives.problems();
        if script.directives.skip.is_none() && !script.directives.has_expectation() {
            problems
                .push("no `// expect:` or `// expect runtime error:` line: it cannot fail".into());
        }
        if !script.source.starts_with("//") {
            problems.push("does not open with a comment saying what it checks".into());
        }
        if script.name.starts_with("tests/scripts/") && script.name.matches('/').count() < 3 {
            problems.push(
                "is not in an area directory (tests/scripts/<area>/<subject>_<condition>.spl)"
                    .into(),
            );
        }
        defects.extend(
            problems
                .into_iter()
                .map(|problem| format!("{}: {problem}", script.name)),
        );
    }
    assert!(
        defects.is_empty(),
        "defective scripts:\n{}",
        defects.join("\n")
    );
}

fn load_scripts() -> Vec<Script> {
    conformance_scripts()
        .into_iter()
        .filter_map(load_script)
        .collect()
}

fn load_script(path: PathBuf) -> Option<Script> {
    let name = relative_name(&path);
    if !selected(&name) {
        return None;
    }
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {name}: {error}"));
    let directives = Directives::parse(&source);
    Some(Script {
        name,
        source,
        directives,
    })
}

/// Judges every script, a few at a time, each on its own thread so that one
/// that hangs is reported (after the timeout) instead of stalling the suite.
fn judge_all(scripts: &[Script]) -> Vec<Verdict> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let timeout = Duration::from_secs(env_number("SPOOL_TEST_TIMEOUT", 300));
    let (sender, receiver) = mpsc::channel::<(usize, Verdict)>();
    let mut verdicts: Vec<Option<Verdict>> = scripts.iter().map(|_| None).collect();
    let mut running: Vec<(usize, Instant)> = Vec::new();
    let mut next = 0;
    while next < scripts.len() || !running.is_empty() {
        while running.len() < workers && next < scripts.len() {
            let (script, sender) = (scripts[next].clone(), sender.clone());
            let index = next;
            spawn_big_stack(move || {
                let _ = sender.send((index, judge(&script)));
            });
            running.push((index, Instant::now()));
            next += 1;
        }
        match receiver.recv_timeout(Duration::from_millis(200)) {
            Ok((index, verdict)) => {
                running.retain(|(i, _)| *i != index);
                verdicts[index] = Some(verdict);
            }
            Err(_) => running.retain(|(index, started)| {
                let late = started.elapsed() > timeout;
                if late {
                    let why = format!(
                        "did not finish within {}s (SPOOL_TEST_TIMEOUT)",
                        timeout.as_secs()
                    );
                    verdicts[*index] = Some(Verdict::Failed(vec![why]));
                }
                !late
            }),
        }
    }
    verdicts
        .into_iter()
        .map(|v| v.unwrap_or(Verdict::Failed(vec!["lost".into()])))
        .collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Compiles and runs one script and compares with its directives.
fn judge(script: &Script) -> Verdict {
    if let Some(reason) = &script.directives.skip {
        return Verdict::Skipped(reason.clone());
    }
    let engine = spool_cli::engine();
    // Imported files are read from beside the script, named relative to it.
    let path = spool_tests::workspace_root().join(&script.name);
    let load = spool::files::beside(path);
    let compile = || engine.compile_with(&script.name, script.source.as_bytes(), load);
    let compiled = match catch_panic(compile) {
        Ok(compiled) => compiled,
        Err(panic) => {
            return Verdict::Failed(vec![format!("[compile] the compiler panicked: {panic}")])
        }
    };
    let problems = if script.directives.expects_compile_error() {
        check_compile_errors(&script.directives, compiled.err())
    } else {
        match compiled {
            Ok(program) => check_runs(&script.name, &script.directives, &program),
            Err(error) => vec![format!(
                "[compile] expected to compile, but:\n{}",
                indent(&error.render())
            )],
        }
    };
    if problems.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(problems)
    }
}

/// Every expected error is reported on its line, and nothing else is. The
/// text an `// expect error:` must be part of is `CODE: MESSAGE (help:
/// HINT)`. An error in an imported file is expected by a directive naming
/// its place first, on any line of the script: `// expect error:
/// lib/x.spl:2: text`.
fn check_compile_errors(
    directives: &Directives,
    error: Option<spool::CompileError>,
) -> Vec<String> {
    let Some(error) = error else {
        return vec!["[compile] compiled without errors, but errors were expected".into()];
    };
    let main = error.file_name().to_string();
    // (file, line, text) of each error; the script's own errors have no file.
    let found: Vec<(Option<String>, usize, String)> = error
        .diagnostics()
        .iter()
        .map(|diagnostic| {
            // The hint counts as part of the text, so a script can expect
            // `did you mean ...`.
            let help = match &diagnostic.help {
                Some(help) => format!(" (help: {help})"),
                None => String::new(),
            };
            let file = error.file_of(diagnostic);
            (
                (file != main).then(|| file.to_string()),
                error.line_of(diagnostic),
                format!("{}: {}{help}", diagnostic.code, diagnostic.message),
            )
        })
        .collect();
    let expected: Vec<(Option<String>, usize, &str)> = directives
        .compile_errors
        .iter()
        .map(|expected| match elsewhere(&expected.text) {
            Some((file, line, text)) => (Some(file.to_string()), line, text),
            None => (None, expected.line, expected.text.as_str()),
        })
        .collect();
    let mut problems = Vec::new();
    for (file, line, text) in &expected {
        let present = found
            .iter()
            .any(|(f, l, found)| f == file && l == line && found.contains(text));
        if !present {
            let place = file.as_ref().map_or(String::new(), |f| format!("{f} "));
            problems.push(format!(
                "missing error on {place}line {line} containing {text:?}"
            ));
        }
    }
    for (file, line, text) in &found {
        if !expected.iter().any(|(f, l, _)| f == file && l == line) {
            let place = file.as_ref().map_or(String::new(), |f| format!("{f} "));
            problems.push(format!("unexpected error on {place}line {line}: {text}"));
        }
    }
    let found: Vec<(usize, String)> = found
        .into_iter()
        .map(|(file, line, text)| match file {
            Some(file) => (line, format!("{file}: {text}")),
            None => (line, text),
        })
        .collect();
    if problems.is_empty() {
        return problems;
    }
    let reported: Vec<String> = found
        .iter()
        .map(|(line, text)| format!("line {line}: {text}"))
        .collect();
    vec![format!(
        "[compile]\n{}\n  reported:\n{}",
        indent(&problems.join("\n")),
        indent(&indent(&reported.join("\n")))
    )]
}

/// `FILE:LINE: text` of a directive expecting an error in an imported file.
fn elsewhere(text: &str) -> Option<(&str, usize, &str)> {
    let end = text.find(".spl:")? + ".spl".len();
    let (file, rest) = (&text[..end], &text[end + 1..]);
    if file.contains(' ') {
        return None;
    }
    let (line, text) = rest.split_once(':')?;
    Some((file, line.trim().parse().ok()?, text.trim()))
}

/// Runs the program in every mode; modes that went wrong the same way are
/// reported together.
fn check_runs(name: &str, directives: &Directives, program: &spool::Program) -> Vec<String> {
    let mut failures: Vec<(Vec<Mode>, String)> = Vec::new();
    for mode in Mode::ALL {
        let started = Instant::now();
        let outcome =
            catch_panic(|| runner::run(program, &directives.args, &directives.stdin, mode));
        if std::env::var_os("SPOOL_TEST_TIMES").is_some() {
            let counts = match &outcome {
                Ok(outcome) => format!(
                    " ({} pauses, {} round trips)",
                    outcome.pauses, outcome.snapshots
                ),
                Err(_) => String::new(),
            };
            println!(
                "time {name} [{mode}]: {:.2}s{counts}",
                started.elapsed().as_secs_f64()
            );
        }
        let Some(description) = mismatch(directives, &outcome) else {
            continue;
        };
        match failures.iter_mut().find(|(_, text)| *text == description) {
            Some((modes, _)) => modes.push(mode),
            None => failures.push((vec![mode], description)),
        }
    }
    failures
        .into_iter()
        .map(|(modes, text)| {
            let modes: Vec<String> = modes.iter().map(Mode::to_string).collect();
            format!("[{}]\n{text}", modes.join(", "))
        })
        .collect()
}

/// How `outcome` differs from what the directives ask, if it does.
fn mismatch(directives: &Directives, outcome: &Result<Outcome, String>) -> Option<String> {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(panic) => return Some(format!("  the VM panicked: {panic}")),
    };
    let mut text = String::new();
    if outcome.lines != directives.stdout {
        text.push_str(&stdout_difference(&directives.stdout, &outcome.lines));
    }
    if let Some(problem) = end_difference(directives, &outcome.end) {
        text.push_str(&problem);
    }
    (!text.is_empty()).then_some(text)
}

fn end_difference(directives: &Directives, end: &End) -> Option<String> {
    let ok = match (&directives.runtime_error, end) {
        (None, End::Done) => true,
        (Some(expected), End::Error { kind, message }) => {
            let message_ok = match &expected.message {
                Some(part) => message.contains(part.as_str()),
                None => true,
            };
            *kind == expected.kind && message_ok
        }
        _ => false,
    };
    if ok {
        return None;
    }
    let expected = match &directives.runtime_error {
        Some(error) => format!("uncaught error {error}"),
        None => "finished normally".to_string(),
    };
    Some(format!(
        "  expected end: {expected}\n  actual end:   {end}\n"
    ))
}

/// At most this many lines of each side are shown.
const SHOWN_LINES: usize = 40;

fn stdout_difference(expected: &[String], actual: &[String]) -> String {
    let first = expected
        .iter()
        .zip(actual)
        .position(|(e, a)| e != a)
        .unwrap_or(expected.len().min(actual.len()));
    let mut text = format!("  stdout differs at line {}:\n", first + 1);
    for (label, lines) in [("expected", expected), ("actual", actual)] {
        text.push_str(&format!("    {label} ({} lines):\n", lines.len()));
        let start = first.saturating_sub(3);
        if start > 0 {
            text.push_str("      ...\n");
        }
        for (number, line) in lines.iter().enumerate().skip(start).take(SHOWN_LINES) {
            let marker = if number == first { ">" } else { " " };
            text.push_str(&format!("     {marker}{:>4} | {line}\n", number + 1));
        }
        if lines.len() > start + SHOWN_LINES {
            text.push_str("      ...\n");
        }
    }
    text
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
