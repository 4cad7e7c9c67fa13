//! The `spool` command line: argument parsing, running scripts, and how
//! results and errors are shown.
//!
//! Exit codes: 0 when the run finished, 1 for a runtime error, 2 for a
//! usage or compile error.

use std::io::{IsTerminal, Write};

use crate::{CompileError, Engine, Host, RunError, Step};

/// Exit code of a finished run.
pub const EXIT_OK: i32 = 0;
/// Exit code of a run that ended with an uncaught error.
pub const EXIT_RUNTIME: i32 = 1;
/// Exit code of a usage or compile error.
pub const EXIT_USAGE: i32 = 2;

const USAGE: &str = "\
usage: spool FILE [ARGS...]            run a script
       spool run FILE [-- ARGS...]     run a script with arguments
       spool check FILE                report compile errors without running
       spool disasm FILE               print the compiled bytecode
       spool --help | --version
";

/// A parsed command line.
#[derive(Debug, PartialEq)]
enum Command {
    Run { file: String, args: Vec<String> },
    Check { file: String },
    Disasm { file: String },
    Help,
    Version,
}

/// Runs the command line `args` (without the program name) and returns the
/// process's exit code.
pub fn main(args: Vec<String>) -> i32 {
    let command = match parse_args(args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            EXIT_OK
        }
        Command::Version => {
            println!("spool {}", env!("CARGO_PKG_VERSION"));
            EXIT_OK
        }
        Command::Run { file, args } => run_file(&file, args),
        Command::Check { file } => match compile_file(&file) {
            Ok(_) => EXIT_OK,
            Err(code) => code,
        },
        Command::Disasm { file } => match compile_file(&file) {
            Ok(program) => {
                print!("{}", program.disassemble());
                EXIT_OK
            }
            Err(code) => code,
        },
    }
}

fn parse_args(args: Vec<String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Err(
            "no script given (the interactive prompt is not available in this version)".into(),
        );
    };
    let file_arg = |args: &mut std::vec::IntoIter<String>, command: &str| {
        let file = args
            .next()
            .ok_or_else(|| format!("`spool {command}` needs a FILE"))?;
        reject_flag(&file)?;
        Ok::<String, String>(file)
    };
    match first.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "-V" | "--version" => Ok(Command::Version),
        "run" => {
            let file = file_arg(&mut args, "run")?;
            Ok(Command::Run {
                file,
                args: script_args(args)?,
            })
        }
        "check" | "disasm" => {
            let file = file_arg(&mut args, &first)?;
            if let Some(extra) = args.next() {
                return Err(format!("unexpected argument `{extra}`"));
            }
            Ok(if first == "check" {
                Command::Check { file }
            } else {
                Command::Disasm { file }
            })
        }
        _ => {
            reject_flag(&first)?;
            let rest: Vec<String> = args.collect();
            let rest = if rest.first().map(String::as_str) == Some("--") {
                rest[1..].to_vec()
            } else {
                rest
            };
            Ok(Command::Run {
                file: first,
                args: rest,
            })
        }
    }
}

/// Arguments after `spool run FILE`: script arguments follow `--`.
fn script_args(mut args: std::vec::IntoIter<String>) -> Result<Vec<String>, String> {
    match args.next() {
        None => Ok(Vec::new()),
        Some(separator) if separator == "--" => Ok(args.collect()),
        Some(flag) if flag.starts_with('-') => Err(format!("unknown option `{flag}`")),
        Some(other) => Err(format!(
            "unexpected argument `{other}` (script arguments go after `--`)"
        )),
    }
}

fn reject_flag(arg: &str) -> Result<(), String> {
    if arg.starts_with('-') && arg != "-" {
        return Err(format!("unknown option `{arg}`"));
    }
    Ok(())
}

/// Reads and compiles a file, printing what went wrong; `Err` holds the
/// exit code.
fn compile_file(path: &str) -> Result<crate::Program, i32> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("error: cannot read `{path}`: {error}");
            return Err(EXIT_USAGE);
        }
    };
    Engine::new().compile_bytes(path, &bytes).map_err(|error| {
        print_compile_error(&error);
        EXIT_USAGE
    })
}

fn print_compile_error(error: &CompileError) {
    let text = if std::io::stderr().is_terminal() {
        error.render_colored()
    } else {
        error.render()
    };
    eprint!("{text}");
}

fn run_file(path: &str, args: Vec<String>) -> i32 {
    let program = match compile_file(path) {
        Ok(program) => program,
        Err(code) => return code,
    };
    let mut run = program.start(args);
    let mut host = StdoutHost::new();
    let mut stdin = std::io::stdin().lock();
    let outcome = loop {
        match run.resume(&mut host) {
            Ok(Step::Paused) => continue,
            // LANGUAGE.md §6: print each top-level yield and answer nil.
            Ok(Step::Yield(value)) => {
                host.print(&run.display(value));
                host.flush();
                match answer_yield(&mut run, &mut stdin) {
                    Ok(answer) => run.send(answer),
                    Err(message) => {
                        eprintln!("error: {message}");
                        return EXIT_RUNTIME;
                    }
                }
            }
            Ok(Step::Done(_)) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    host.flush();
    match outcome {
        Ok(()) => EXIT_OK,
        Err(error) => {
            eprint!("{}", format_runtime_error(&error));
            EXIT_RUNTIME
        }
    }
}

/// The answer to a top-level `yield`: nothing for a script that receives
/// `nil`; otherwise one line of standard input, taken as it is for `str`
/// and parsed as JSON for `int`, `float` and `bool`.
fn answer_yield(
    run: &mut crate::Run,
    stdin: &mut impl std::io::BufRead,
) -> Result<crate::Value, String> {
    let receives = run.program().main_receives.clone();
    if receives == "nil" || receives.is_empty() {
        return Ok(crate::Value::Nil);
    }
    let mut line = String::new();
    match stdin.read_line(&mut line) {
        Ok(0) => {
            return Err(
                "standard input ended while the script waited for an answer to `yield`".into(),
            )
        }
        Ok(_) => {}
        Err(error) => return Err(format!("cannot read standard input: {error}")),
    }
    let line = line.trim_end_matches(['\n', '\r']);
    let bad = || format!("`{line}` is not a valid `{receives}` answer to `yield`");
    match receives.as_str() {
        "str" => Ok(run.heap_mut().alloc_str(line)),
        "int" => line
            .trim()
            .parse()
            .map(crate::Value::Int)
            .map_err(|_| bad()),
        "float" => line
            .trim()
            .parse()
            .map(crate::Value::Float)
            .map_err(|_| bad()),
        "bool" => line
            .trim()
            .parse()
            .map(crate::Value::Bool)
            .map_err(|_| bad()),
        other => Err(format!(
            "the command line cannot answer a `yield` that receives `{other}`"
        )),
    }
}

/// An uncaught runtime error as the command line prints it: kind, message
/// and one `at function (file:line:col)` line per frame. A frame repeated
/// many times in a row (deep recursion) is shown once with a count, and a
/// very long trace keeps its innermost and outermost frames.
pub fn format_runtime_error(error: &RunError) -> String {
    const KEEP: usize = 20;
    let mut out = format!("error: {}: {}\n", error.kind, error.message);
    let mut lines: Vec<String> = Vec::new();
    let mut frames = error.trace.iter().peekable();
    while let Some(frame) = frames.next() {
        let mut repeats = 0;
        while frames.peek() == Some(&frame) {
            frames.next();
            repeats += 1;
        }
        lines.push(format!(
            "  at {} ({}:{}:{})",
            frame.function, frame.file, frame.line, frame.col
        ));
        if repeats > 0 {
            lines.push(format!("  ... repeated {repeats} more time(s)"));
        }
    }
    if lines.len() > 2 * KEEP {
        let hidden = lines.len() - 2 * KEEP;
        lines.splice(
            KEEP..lines.len() - KEEP,
            [format!("  ... {hidden} more line(s)")],
        );
    }
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Prints to standard output through a buffer, flushed when the run
/// stops; a closed pipe ends output quietly.
struct StdoutHost {
    out: std::io::BufWriter<std::io::Stdout>,
    broken: bool,
}

impl StdoutHost {
    fn new() -> StdoutHost {
        StdoutHost {
            out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
            broken: false,
        }
    }

    fn flush(&mut self) {
        if !self.broken && self.out.flush().is_err() {
            self.broken = true;
        }
    }
}

impl Host for StdoutHost {
    fn print(&mut self, text: &str) {
        if self.broken {
            return;
        }
        let written = self
            .out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"));
        self.broken = written.is_err();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn long_traces_are_shortened() {
        let frame = |function: &str, line| crate::TraceFrame {
            function: function.into(),
            file: "f.spl".into(),
            line,
            col: 1,
        };
        let mut trace = vec![frame("depth", 3); 1000];
        trace.push(frame("main", 9));
        let error = RunError {
            kind: "Limit".into(),
            message: "deep".into(),
            trace,
        };
        let text = format_runtime_error(&error);
        assert_eq!(
            text,
            "error: Limit: deep\n  at depth (f.spl:3:1)\n  ... repeated 999 more time(s)\n  at main (f.spl:9:1)\n"
        );
        let trace: Vec<_> = (0..100).map(|i| frame("f", i)).collect();
        let error = RunError {
            kind: "K".into(),
            message: "m".into(),
            trace,
        };
        let text = format_runtime_error(&error);
        assert_eq!(text.lines().count(), 1 + 20 + 1 + 20);
        assert!(text.contains("  ... 60 more line(s)\n"));
    }

    #[test]
    fn parses_the_documented_forms() {
        let run = |file: &str, args: &[&str]| Command::Run {
            file: file.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(parse(&["a.spl"]), Ok(run("a.spl", &[])));
        assert_eq!(parse(&["a.spl", "x", "y"]), Ok(run("a.spl", &["x", "y"])));
        assert_eq!(
            parse(&["run", "a.spl", "--", "x"]),
            Ok(run("a.spl", &["x"]))
        );
        assert_eq!(
            parse(&["check", "a.spl"]),
            Ok(Command::Check {
                file: "a.spl".into()
            })
        );
        assert_eq!(
            parse(&["disasm", "a.spl"]),
            Ok(Command::Disasm {
                file: "a.spl".into()
            })
        );
        assert!(parse(&["run", "a.spl", "--bogus"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["check"]).is_err());
        assert!(parse(&[]).is_err());
    }
}
