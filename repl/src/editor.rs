//! The REPL's line editor helper (rustyline): tab completion of keywords,
//! names, fields, methods and commands; hints from history; syntax
//! highlighting of keywords, strings, numbers and comments.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hinter, HistoryHinter};
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use spool_lang::lexer::{tokenize, Tok};

use spool::Session;

/// The language's keywords (LANGUAGE.md §1), offered by completion.
pub const KEYWORDS: &[&str] = &[
    "fn", "let", "if", "else", "while", "for", "in", "break", "continue", "return", "match",
    "struct", "enum", "yield", "spawn", "await", "defer", "try", "catch", "throw", "true", "false",
    "nil", "select",
];

/// The REPL's commands, with their argument and what they do.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (":help", "", "show this help"),
    (":type", " EXPR", "show the type of EXPR without running it"),
    (":disasm", " NAME", "show the bytecode of function NAME"),
    (
        ":save",
        " PATH",
        "save the session (bindings, heap, coroutines) to PATH",
    ),
    (":load", " PATH", "continue a session saved with :save"),
    (":reset", "", "forget every binding and start afresh"),
    (":quit", "", "leave (Ctrl-D on an empty line does the same)"),
];

const BOLD_MAGENTA: &str = "\x1b[1;35m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const GREY: &str = "\x1b[90m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Completion, hints and highlighting for the REPL's editor.
pub struct SpoolHelper {
    session: Rc<RefCell<Session>>,
    hinter: HistoryHinter,
    files: FilenameCompleter,
}

impl SpoolHelper {
    /// A helper that completes against `session`'s names.
    pub fn new(session: Rc<RefCell<Session>>) -> SpoolHelper {
        SpoolHelper {
            session,
            hinter: HistoryHinter::new(),
            files: FilenameCompleter::new(),
        }
    }

    /// Candidates for the word before `pos` in `line`: where it starts and
    /// the words it may become.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
            .last()
            .map_or(pos, |(at, _)| at);
        let word = &before[start..];
        if let Some(command) = before.strip_prefix(':') {
            return (start, self.command_candidates(command, word));
        }
        let options: Vec<String> = if before[..start].ends_with('.') {
            let receiver = receiver_before(&before[..start - 1]);
            if receiver.is_empty() {
                Vec::new()
            } else {
                self.session.borrow().members(receiver)
            }
        } else {
            let names = self.session.borrow().names();
            KEYWORDS
                .iter()
                .map(|k| k.to_string())
                .chain(names)
                .collect()
        };
        let mut matching: Vec<String> = options
            .into_iter()
            .filter(|option| option.starts_with(word))
            .collect();
        matching.sort();
        matching.dedup();
        (start, matching)
    }

    fn command_candidates(&self, command: &str, word: &str) -> Vec<String> {
        match command.split_once(' ') {
            None => COMMANDS
                .iter()
                .map(|(name, _, _)| &name[1..])
                .filter(|name| name.starts_with(word))
                .map(str::to_string)
                .collect(),
            Some(("type", _)) => {
                let names = self.session.borrow().names();
                names.into_iter().filter(|n| n.starts_with(word)).collect()
            }
            Some(("disasm", _)) => {
                let session = self.session.borrow();
                let names = session.names().into_iter();
                names
                    .filter(|n| n.starts_with(word) && session.disassemble(n).is_some())
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// The expression a `.` follows: the longest run of names, dots, calls,
/// indexes and literals before it, such as `p.pos` or `xs[0]`.
fn receiver_before(text: &str) -> &str {
    let bytes = text.as_bytes();
    let mut start = bytes.len();
    let mut depth = 0usize;
    while start > 0 {
        let byte = bytes[start - 1];
        match byte {
            b')' | b']' => depth += 1,
            b'(' | b'[' if depth > 0 => depth -= 1,
            b'(' | b'[' => break,
            _ if depth > 0 => {}
            b'.' | b'_' | b'"' => {}
            _ if byte.is_ascii_alphanumeric() => {}
            _ => break,
        }
        start -= 1;
    }
    text[start..].trim_start_matches('.')
}

impl Completer for SpoolHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        if line.starts_with(":save ") || line.starts_with(":load ") {
            return self.files.complete(line, pos, ctx);
        }
        let (start, words) = self.candidates(line, pos);
        let pairs = words
            .into_iter()
            .map(|word| Pair {
                display: word.clone(),
                replacement: word,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for SpoolHelper {
    type Hint = String;

    /// The rest of the newest history entry that starts with the line, up
    /// to the end of its first line.
    fn hint(&self, line: &str, pos: usize, ctx: &Context<'_>) -> Option<String> {
        let hint = self.hinter.hint(line, pos, ctx)?;
        let first = hint.split('\n').next().unwrap_or_default();
        (!first.is_empty()).then(|| first.to_string())
    }
}

impl Highlighter for SpoolHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if line.starts_with(':') {
            return Cow::Borrowed(line);
        }
        Cow::Owned(highlight(line))
    }

    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Owned(format!("{BOLD}{prompt}{RESET}"))
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("{GREY}{hint}{RESET}"))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        true
    }
}

impl Validator for SpoolHelper {}

impl Helper for SpoolHelper {}

/// `line` with ANSI colours: keywords, strings, numbers and comments.
/// The text itself is unchanged (same display width).
pub fn highlight(line: &str) -> String {
    let lexed = tokenize(line);
    let mut spans: Vec<(usize, usize, &str)> = Vec::new();
    let mut string_start: Option<usize> = None;
    for (start, token, end) in &lexed.tokens {
        let colour = match token {
            Tok::StrOpen if string_start.is_none() => {
                string_start = Some(*start);
                None
            }
            Tok::InterpOpen => string_start.take().map(|s| (s, *end, GREEN)),
            Tok::InterpClose => {
                string_start = Some(*start);
                None
            }
            Tok::StrClose => string_start.take().map(|s| (s, *end, GREEN)),
            Tok::Int(_) | Tok::Float(_) => Some((*start, *end, YELLOW)),
            Tok::Ident(_) | Tok::Newline | Tok::StrText(_) | Tok::StrOpen => None,
            Tok::Comment(_) => Some((*start, *end, GREY)),
            other if is_keyword(other) => Some((*start, *end, BOLD_MAGENTA)),
            _ => None,
        };
        spans.extend(colour);
    }
    if let Some(start) = string_start {
        spans.push((start, line.len(), GREEN));
    }
    if let Some(start) = line_comment(line) {
        spans.retain(|&(s, _, _)| s < start);
        spans.push((start, line.len(), GREY));
    }
    let mut out = String::with_capacity(line.len() + spans.len() * 10);
    let mut at = 0;
    for (start, end, colour) in spans {
        let (start, end) = (start.max(at).min(line.len()), end.min(line.len()));
        if start >= end || !line.is_char_boundary(start) || !line.is_char_boundary(end) {
            continue;
        }
        out.push_str(&line[at..start]);
        out.push_str(colour);
        out.push_str(&line[start..end]);
        out.push_str(RESET);
        at = end;
    }
    out.push_str(&line[at..]);
    out
}

/// Where a `//` comment starts (outside strings): the first `//` that no
/// token covers.
fn line_comment(line: &str) -> Option<usize> {
    let lexed = tokenize(line);
    let covered = |at: usize| lexed.tokens.iter().any(|(s, _, e)| *s <= at && at < *e);
    line.match_indices("//")
        .map(|(at, _)| at)
        .find(|&at| !covered(at))
}

fn is_keyword(token: &Tok) -> bool {
    matches!(
        token,
        Tok::Fn
            | Tok::Let
            | Tok::If
            | Tok::Else
            | Tok::While
            | Tok::For
            | Tok::In
            | Tok::Break
            | Tok::Continue
            | Tok::Return
            | Tok::Match
            | Tok::Struct
            | Tok::Enum
            | Tok::Yield
            | Tok::Spawn
            | Tok::Await
            | Tok::Defer
            | Tok::Try
            | Tok::Catch
            | Tok::Throw
            | Tok::True
            | Tok::False
            | Tok::Nil
            | Tok::Yields
            | Tok::Receives
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlighting_keeps_the_text() {
        for line in [
            "let x = 1 + 2.5 // note",
            "print(\"a ${x + 1} b\")",
            "fn f() { return \"unterminated",
            "\"é\" + \"ü\"",
        ] {
            let shown = highlight(line);
            let plain: String = strip_ansi(&shown);
            assert_eq!(plain, line);
            assert!(shown.contains("\x1b["), "{line:?} was not coloured");
        }
    }

    fn strip_ansi(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn receivers_are_found() {
        assert_eq!(receiver_before("print(p"), "p");
        assert_eq!(receiver_before("let y = p.pos"), "p.pos");
        assert_eq!(receiver_before("xs[0]"), "xs[0]");
        assert_eq!(receiver_before("f(1, 2)"), "f(1, 2)");
        assert_eq!(receiver_before("a + "), "");
    }
}
