//! The interactive prompt: `spool` alone or `spool repl`.
//!
//! Each input is compiled against the session's earlier declarations
//! ([`spool::Session`]) and run on the session's one run, with the command
//! line's I/O operations. An input the parser finds unfinished at its end
//! (an open brace, bracket or `${`, a trailing operator) continues on the
//! next line. On a terminal the line editor completes, hints, highlights
//! and keeps history; piped input is read the same way without prompts or
//! colours.

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::Editor;

use crate::cli::{Driver, StdoutOutput, EXIT_OK, EXIT_RUNTIME};
use crate::editor::{SpoolHelper, COMMANDS};
use spool::{Engine, Session};

/// Set by Ctrl-C while an input runs; the run stops at its next pause.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Instructions a run executes between checks for Ctrl-C.
const SLICE: u64 = 1 << 20;

/// The prompt for a new input and for its continuation lines.
const PROMPT: &str = ">> ";
const CONTINUE: &str = ".. ";

/// Runs the REPL on the terminal, or on piped standard input; returns the
/// exit code (piped: 1 when any input failed).
pub fn main() -> i32 {
    let engine = crate::engine();
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let mut repl = Repl::new(&engine, terminal);
    if terminal {
        repl.interactive()
    } else {
        repl.piped()
    }
}

/// What to do after an input.
#[derive(Debug, PartialEq)]
enum Flow {
    Continue,
    Quit,
}

/// Reads the files inputs import, relative to the current directory
/// (regular files of bounded size).
fn imports_loader() -> spool::session::Loader {
    Box::new(spool::files::beside("input"))
}

/// The REPL's state: the session, how runs are driven, and the counters.
struct Repl {
    engine: Engine,
    session: Rc<RefCell<Session>>,
    driver: Driver,
    /// Colours and the banner: only on a terminal.
    terminal: bool,
    /// Inputs run so far (they are named `[1]`, `[2]`, ...).
    counter: usize,
    /// Did any input fail?
    failed: bool,
}

impl Repl {
    fn new(engine: &Engine, terminal: bool) -> Repl {
        let mut session = Session::new(engine);
        session.run().seed(crate::durable::random_u64());
        limit_slices(&mut session);
        session.set_loader(imports_loader());
        Repl {
            engine: engine.clone(),
            session: Rc::new(RefCell::new(session)),
            driver: Driver::interactive(&INTERRUPTED),
            terminal,
            counter: 0,
            failed: false,
        }
    }

    /// The terminal loop: line editor, history, Ctrl-C and Ctrl-D.
    fn interactive(&mut self) -> i32 {
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
        let config = Config::builder()
            .auto_add_history(false)
            .completion_type(CompletionType::List)
            .build();
        let mut editor: Editor<SpoolHelper, DefaultHistory> = match Editor::with_config(config) {
            Ok(editor) => editor,
            Err(error) => {
                eprintln!("error: cannot open the line editor: {error}");
                return self.piped();
            }
        };
        editor.set_helper(Some(SpoolHelper::new(Rc::clone(&self.session))));
        let history = history_path();
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        println!(
            "Spool {} — type an expression or a statement; :help for help, Ctrl-D to leave",
            env!("CARGO_PKG_VERSION")
        );
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.is_empty() { PROMPT } else { CONTINUE };
            match editor.readline(prompt) {
                Ok(line) => {
                    buffer.push_str(&line);
                    buffer.push('\n');
                    if is_incomplete(&buffer) {
                        continue;
                    }
                    let input = std::mem::take(&mut buffer);
                    if !input.trim().is_empty() {
                        let _ = editor.add_history_entry(input.trim_end());
                        if let Some(path) = &history {
                            let _ = editor.save_history(path);
                        }
                    }
                    if self.eval(&input) == Flow::Quit {
                        break;
                    }
                }
                // Ctrl-C clears what is being typed.
                Err(ReadlineError::Interrupted) => buffer.clear(),
                Err(ReadlineError::Eof) => break,
                Err(error) => {
                    eprintln!("error: {error}");
                    break;
                }
            }
        }
        EXIT_OK
    }

    /// Piped input: the same inputs, no prompts, no colours.
    fn piped(&mut self) -> i32 {
        let mut buffer = String::new();
        loop {
            // Bytes that are not UTF-8 are replaced, not a reason to stop.
            let mut bytes = Vec::new();
            let read = std::io::stdin().lock().read_until(b'\n', &mut bytes);
            let ended = matches!(read, Ok(0) | Err(_));
            let line = String::from_utf8_lossy(&bytes);
            buffer.push_str(&line);
            if ended && !line.ends_with('\n') && !buffer.is_empty() {
                buffer.push('\n');
            }
            if !ended && is_incomplete(&buffer) {
                continue;
            }
            let input = std::mem::take(&mut buffer);
            if self.eval(&input) == Flow::Quit || ended {
                break;
            }
        }
        if self.failed {
            EXIT_RUNTIME
        } else {
            EXIT_OK
        }
    }

    /// Runs one complete input: a command or Spool code.
    fn eval(&mut self, input: &str) -> Flow {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Flow::Continue;
        }
        if let Some(command) = trimmed.strip_prefix(':') {
            return self.command(command);
        }
        self.counter += 1;
        let name = format!("[{}]", self.counter);
        let mut session = self.session.borrow_mut();
        let prepared = match session.prepare(&name, input) {
            Ok(prepared) => prepared,
            Err(error) => {
                drop(session);
                self.compile_error(&error);
                return Flow::Continue;
            }
        };
        let host = StdoutOutput::new();
        INTERRUPTED.store(false, Ordering::SeqCst);
        let outcome = self.driver.run_to_end(session.run(), &host);
        host.flush();
        if let Some(code) = session.run().exit_code() {
            // `exit` ends the input (its tasks cancelled), not the session.
            eprintln!("exit({code})");
            self.failed |= code != 0;
            return Flow::Continue;
        }
        match (outcome, prepared.result) {
            (Ok(Some(value)), Some(ty)) => println!("= {} : {ty}", session.show(value)),
            (Ok(_), _) => {}
            (Err(message), _) => {
                self.failed = true;
                eprint!("{message}");
            }
        }
        Flow::Continue
    }

    fn compile_error(&mut self, error: &spool::CompileError) {
        self.failed = true;
        let text = if self.terminal {
            error.render_colored()
        } else {
            error.render()
        };
        eprint!("{text}");
    }

    /// A `:command`.
    fn command(&mut self, command: &str) -> Flow {
        let (name, argument) = match command.split_once(char::is_whitespace) {
            Some((name, argument)) => (name, argument.trim()),
            None => (command, ""),
        };
        let needs_argument = |what: &str| {
            eprintln!("error: `:{name}` needs {what} (see :help)");
        };
        match (name, argument) {
            ("help" | "h" | "?", _) => print!("{}", help()),
            ("quit" | "q" | "exit", _) => return Flow::Quit,
            ("reset", _) => {
                let mut session = self.session.borrow_mut();
                session.reset();
                limit_slices(&mut session);
                self.counter = 0;
                println!("the session is empty again");
            }
            ("type" | "t", "") => needs_argument("an expression"),
            ("type" | "t", expr) => {
                let typed = self.session.borrow().type_of(expr);
                match typed {
                    Ok(ty) => println!("{expr} : {ty}"),
                    Err(error) => self.compile_error(&error),
                }
            }
            ("disasm", "") => needs_argument("a function name"),
            ("disasm", function) => {
                let text = self.session.borrow().disassemble(function);
                match text {
                    Some(text) => print!("{text}"),
                    None => self.fail(&format!("no function `{function}` in this session")),
                }
            }
            ("save", "") => needs_argument("a file path"),
            ("save", path) => {
                let bytes = self.session.borrow_mut().save();
                match crate::durable::write_atomically(path, &bytes) {
                    Ok(()) => println!("saved the session to {path}"),
                    Err(message) => self.fail(&message),
                }
            }
            ("load", "") => needs_argument("a file path"),
            ("load", path) => self.load(path),
            _ => self.fail(&format!("unknown command `:{name}` (:help lists them)")),
        }
        Flow::Continue
    }

    fn load(&mut self, path: &str) {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => return self.fail(&format!("cannot read `{path}`: {error}")),
        };
        match Session::load_with(&self.engine, &bytes, Some(imports_loader())) {
            Ok(mut session) => {
                limit_slices(&mut session);
                let inputs = session.input_count() - 1;
                self.counter = session.last_input_number();
                *self.session.borrow_mut() = session;
                println!("loaded the session saved in {path} ({inputs} inputs)");
            }
            Err(message) => self.fail(&format!("`{path}`: {message}")),
        }
    }

    fn fail(&mut self, message: &str) {
        self.failed = true;
        eprintln!("error: {message}");
    }
}

/// Runs pause every [`SLICE`] instructions so that Ctrl-C can stop them.
fn limit_slices(session: &mut Session) {
    let run = session.run();
    let mut limits = run.limits();
    limits.budget = Some(SLICE);
    run.set_limits(limits);
}

/// Does `text` end in the middle of something (an open brace, bracket,
/// parenthesis or `${`, a trailing operator, an unclosed block comment)?
/// Only then does more input complete it; any other error is shown at once.
pub fn is_incomplete(text: &str) -> bool {
    if text.trim_start().starts_with(':') {
        return false;
    }
    match spool_lang::parse(text, 0) {
        Ok(_) => false,
        Err(diagnostics) => diagnostics.iter().all(|d| {
            d.message.starts_with("unexpected end of input")
                || d.label.contains("`${` is never closed")
        }),
    }
}

/// The text of `:help`.
fn help() -> String {
    let mut out = String::from(
        "Type Spool code: declarations and `let`s stay for the next inputs, an\n\
         expression shows its value and type (`= 3 : int`). An unfinished input\n\
         (open brace, trailing operator) continues on the next line; Ctrl-C\n\
         clears it. Tab completes names, fields and methods.\n\n\
         Examples:\n\
         \x20 let xs = [3, 1, 2]\n\
         \x20 xs.sort()\n\
         \x20 fn square(n: int) -> int { return n * n }\n\
         \x20 struct Point { x: float, y: float }\n\
         \x20 let gen = coroutine(fn() { yield 1; yield 2 })\n\
         \x20 gen.resume(nil)\n\n\
         Commands:\n",
    );
    for (name, argument, what) in COMMANDS {
        let usage = format!("{name}{argument}");
        out.push_str(&format!("  {usage:<14} {what}\n"));
    }
    out
}

/// Where history is kept: `$SPOOL_HISTORY`, else `spool/history` in the
/// user's data directory (`$XDG_DATA_HOME`, or `~/.local/share`).
fn history_path() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("SPOOL_HISTORY") {
        return Some(path.into());
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".local/share"))
        })?;
    let dir = data.join("spool");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("history"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_input_is_told_from_wrong_input() {
        for text in [
            "fn f() {\n",
            "let x = 1 +\n",
            "print(\"a ${\n",
            "let xs = [1,\n",
            "/* note\n",
            "if x {\n  print(1)\n",
        ] {
            assert!(is_incomplete(text), "{text:?} should continue");
        }
        for text in [
            "let x = 1\n",
            "let = 3\n",
            "print(\"abc\n",
            ":help\n",
            "fn f() { }\n",
            ") {\n",
        ] {
            assert!(!is_incomplete(text), "{text:?} should not continue");
        }
    }
}
