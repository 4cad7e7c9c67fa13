//! Compile errors as users see them: the diagnostics of a program's files,
//! each rendered with miette against the text of the file it points into
//! (a diagnostic's [`Diagnostic::file`] names an imported file; the others
//! are the main file's).
//!
//! Rendering costs time in proportion to what is shown, never to the size
//! of the file: at most [`MAX_RENDERED`] diagnostics are rendered (a line
//! counts the rest), and each is rendered against an [`Excerpt`] of the
//! file holding only the lines it shows, found by binary search over the
//! file's line starts. A line longer than [`LONG_LINE`] bytes is shown as
//! windows around the labels' ends, so a label far to the right of a very
//! long line (miette panics on a column beyond 65 535) renders like any
//! other.

use miette::{GraphicalReportHandler, GraphicalTheme, MietteError, SourceCode, SourceSpan};
use spool_lang::ast::Span;
use spool_lang::Diagnostic;

/// How many diagnostics are rendered; the others are counted in one line.
pub const MAX_RENDERED: usize = 100;

/// A shown line longer than this many bytes is cut to windows around the
/// labels on it.
const LONG_LINE: usize = 200;

/// How many bytes either side of a label's end a window of a long line
/// shows.
const WINDOW: usize = 40;

/// A label spanning more lines than this is shortened to its first line.
const MAX_LABEL_LINES: usize = 40;

/// Lines between two labels' snippets are shown when there are at most
/// this many of them (more are left out and the snippets shown apart).
const MAX_GAP_LINES: usize = 8;

/// Every compile error of a program, with the texts they point into.
#[derive(Debug)]
pub struct CompileError {
    /// The main file's name.
    name: String,
    /// The program's files, the main file first.
    files: Vec<SourceText>,
    diagnostics: Vec<Diagnostic>,
    /// The diagnostics as `miette` shows them, made on first use.
    shown: Box<std::sync::OnceLock<Vec<Shown>>>,
}

/// One file's text and where its lines start.
#[derive(Clone, Debug)]
struct SourceText {
    name: String,
    source: String,
    /// The byte offset where each line starts (the first is 0).
    line_starts: Vec<usize>,
}

impl Clone for CompileError {
    fn clone(&self) -> CompileError {
        CompileError {
            name: self.name.clone(),
            files: self.files.clone(),
            diagnostics: self.diagnostics.clone(),
            shown: Box::default(),
        }
    }
}

impl CompileError {
    pub(crate) fn new(name: &str, source: &str, diagnostics: Vec<Diagnostic>) -> CompileError {
        CompileError::of_files(vec![(name.to_string(), source.to_string())], diagnostics)
    }

    /// The errors of a program of several files (`files[0]` the main file,
    /// each with its text). Diagnostics are sorted by file, main first,
    /// then by place.
    pub(crate) fn of_files(
        files: Vec<(String, String)>,
        mut diagnostics: Vec<Diagnostic>,
    ) -> CompileError {
        let files: Vec<SourceText> = files
            .into_iter()
            .map(|(name, source)| SourceText {
                line_starts: std::iter::once(0)
                    .chain(source.match_indices('\n').map(|(at, _)| at + 1))
                    .collect(),
                name,
                source,
            })
            .collect();
        let order = |d: &Diagnostic| {
            let file = d
                .file
                .as_ref()
                .and_then(|name| files.iter().position(|f| f.name == *name))
                .unwrap_or(0);
            (file, d.span.start, d.span.end)
        };
        diagnostics.sort_by_key(order);
        diagnostics.dedup_by(|a, b| a.span == b.span && a.message == b.message && a.file == b.file);
        CompileError {
            name: files.first().map_or_else(String::new, |f| f.name.clone()),
            files,
            diagnostics,
            shown: Box::default(),
        }
    }

    /// The text `diagnostic` points into: its file's, or the main file's.
    fn text_of(&self, diagnostic: &Diagnostic) -> &SourceText {
        diagnostic
            .file
            .as_ref()
            .and_then(|name| self.files.iter().find(|f| f.name == *name))
            .unwrap_or(&self.files[0])
    }

    /// The name of the file `diagnostic` points into.
    pub fn file_of(&self, diagnostic: &Diagnostic) -> &str {
        &self.text_of(diagnostic).name
    }

    /// The front end itself failed: reported as a diagnostic, never a crash.
    pub(crate) fn internal(
        name: &str,
        source: &str,
        failure: crate::FrontEndFailure,
    ) -> CompileError {
        let span = spool_lang::ast::Span::default();
        let diagnostic = match failure {
            crate::FrontEndFailure::Panicked => Diagnostic::new(
                "spool::E000",
                "internal compiler error",
                span,
                "the compiler failed on this file",
            )
            .with_help("this is a bug in Spool; please report it with the file"),
            crate::FrontEndFailure::NoThread(why) => Diagnostic::new(
                "spool::E000",
                format!("the compiler could not start: {why}"),
                span,
                "not compiled",
            )
            .with_help(
                "the compiler runs on a thread with a 256 MiB stack; \
                 allow the process that much address space",
            ),
        };
        CompileError::new(name, source, vec![diagnostic])
    }

    /// The diagnostics, in source order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The main file's name.
    pub fn file_name(&self) -> &str {
        &self.name
    }

    /// The 1-based line of a diagnostic's primary span in its file.
    pub fn line_of(&self, diagnostic: &Diagnostic) -> usize {
        self.text_of(diagnostic)
            .line_index(diagnostic.span.start as usize)
            + 1
    }

    /// All diagnostics rendered as text without colour.
    pub fn render(&self) -> String {
        self.render_with(GraphicalTheme::unicode_nocolor())
    }

    /// All diagnostics rendered with colour, for a terminal.
    pub fn render_colored(&self) -> String {
        self.render_with(GraphicalTheme::unicode())
    }

    fn render_with(&self, theme: GraphicalTheme) -> String {
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
        let mut out = String::new();
        for diagnostic in self.diagnostics.iter().take(MAX_RENDERED) {
            let (shown, excerpt) = self.text_of(diagnostic).excerpt(diagnostic);
            let report = miette::Report::new(shown).with_source_code(excerpt);
            if handler.render_report(&mut out, report.as_ref()).is_err() {
                out.push_str(&format!("error: {}\n", diagnostic.message));
            }
        }
        let count = self.diagnostics.len();
        if count > MAX_RENDERED {
            let more = count - MAX_RENDERED;
            let plural = if more == 1 { "" } else { "s" };
            out.push_str(&format!("... and {more} more error{plural}\n"));
        }
        let plural = if count == 1 { "" } else { "s" };
        out.push_str(&format!(
            "error: could not compile `{}` due to {count} error{plural}\n",
            self.name
        ));
        out
    }
}

impl SourceText {
    /// The 0-based line holding byte `offset`.
    fn line_index(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset) - 1
    }

    /// Where line `line` ends: the offset of its newline, or of the end of
    /// the file.
    fn line_end(&self, line: usize) -> usize {
        self.line_starts
            .get(line + 1)
            .map_or(self.source.len(), |&next| next - 1)
    }

    /// `offset` moved into the file and back to a char boundary.
    fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.source.len());
        while !self.source.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// A label's span inside the file, cut to its first line when it spans
    /// more than [`MAX_LABEL_LINES`].
    fn label_range(&self, span: Span) -> (usize, usize) {
        let start = self.clamp(span.start as usize);
        let end = self.clamp(span.end as usize).max(start);
        let first = self.line_index(start);
        if self.line_index(end) > first + MAX_LABEL_LINES {
            return (start, self.line_end(first));
        }
        (start, end)
    }

    /// The lines `diagnostic` shows and the diagnostic with its spans moved
    /// into them.
    fn excerpt(&self, diagnostic: &Diagnostic) -> (Diagnostic, Excerpt) {
        let primary = self.label_range(diagnostic.span);
        let secondary: Vec<(usize, usize)> = diagnostic
            .secondary
            .iter()
            .map(|label| self.label_range(label.span))
            .collect();
        let ranges: Vec<(usize, usize)> = std::iter::once(primary)
            .chain(secondary.iter().copied())
            .collect();
        let last_line = self.line_starts.len() - 1;
        let mut lines: Vec<usize> = Vec::new();
        for &(start, end) in &ranges {
            let first = self.line_index(start).saturating_sub(1);
            let last = (self.line_index(end.saturating_sub(1).max(start)) + 1).min(last_line);
            lines.extend(first..=last);
        }
        lines.sort_unstable();
        lines.dedup();
        let mut filled = Vec::with_capacity(lines.len());
        for (index, &line) in lines.iter().enumerate() {
            if let Some(&previous) = index.checked_sub(1).and_then(|i| lines.get(i)) {
                if line - previous <= MAX_GAP_LINES + 1 {
                    filled.extend(previous + 1..line);
                }
            }
            filled.push(line);
        }
        let excerpt = Excerpt::build(self, &filled, &ranges);
        let mut shown = diagnostic.clone();
        shown.span = excerpt.span(primary);
        for (label, range) in shown.secondary.iter_mut().zip(secondary) {
            label.span = excerpt.span(range);
        }
        (shown, excerpt)
    }
}

/// The lines of a file one diagnostic shows, long ones cut to windows,
/// with what is needed to name their lines and columns in the file.
#[derive(Debug)]
struct Excerpt {
    name: String,
    /// The shown text: each line with its newline (if it had one), long
    /// lines as windows joined by `…`.
    text: String,
    lines: Vec<ExcerptLine>,
}

/// One line of an [`Excerpt`].
#[derive(Debug)]
struct ExcerptLine {
    /// Its 0-based number in the file.
    number: usize,
    /// Where it starts in the file.
    file_start: usize,
    /// Where it starts in the excerpt's text.
    start: usize,
    /// Where it ends in the excerpt's text, after its newline.
    end: usize,
    /// The parts of the file's line shown: (file start, file end, excerpt
    /// start), in order.
    pieces: Vec<(usize, usize, usize)>,
}

impl Excerpt {
    /// The excerpt of `error`'s file showing `lines` (sorted), with windows
    /// around the ends of `labels` on long lines.
    fn build(error: &SourceText, lines: &[usize], labels: &[(usize, usize)]) -> Excerpt {
        let mut text = String::new();
        let mut shown = Vec::with_capacity(lines.len());
        for &number in lines {
            let file_start = error.line_starts[number];
            let file_end = error.line_end(number);
            let start = text.len();
            let mut pieces = Vec::new();
            for (from, to) in windows(error, file_start, file_end, labels) {
                if from > pieces.last().map_or(file_start, |&(_, end, _)| end) {
                    text.push('…');
                }
                pieces.push((from, to, text.len()));
                text.push_str(&error.source[from..to]);
            }
            if pieces.last().map_or(file_start, |&(_, end, _)| end) < file_end {
                text.push('…');
            }
            if file_end < error.source.len() {
                text.push('\n');
            }
            shown.push(ExcerptLine {
                number,
                file_start,
                start,
                end: text.len(),
                pieces,
            });
        }
        Excerpt {
            name: error.name.clone(),
            text,
            lines: shown,
        }
    }

    /// The excerpt's span for the file's `start..end`.
    fn span(&self, (start, end): (usize, usize)) -> Span {
        Span::new(self.offset(start), self.offset(end))
    }

    /// The excerpt's offset for the file's `offset` (the nearest shown
    /// place when that byte is not shown).
    fn offset(&self, offset: usize) -> usize {
        let index = self
            .lines
            .partition_point(|line| line.file_start <= offset)
            .saturating_sub(1);
        let Some(line) = self.lines.get(index) else {
            return 0;
        };
        let piece = line
            .pieces
            .partition_point(|&(from, _, _)| from <= offset)
            .saturating_sub(1);
        match line.pieces.get(piece) {
            Some(&(from, to, at)) => at + offset.clamp(from, to) - from,
            None => line.start,
        }
    }

    /// The line of the excerpt holding its offset `offset`.
    fn line_at(&self, offset: usize) -> usize {
        self.lines
            .partition_point(|line| line.start <= offset)
            .saturating_sub(1)
    }

    /// The byte column in the file of the excerpt's `offset`.
    fn column(&self, offset: usize) -> usize {
        let line = &self.lines[self.line_at(offset)];
        let piece = line
            .pieces
            .partition_point(|&(_, _, at)| at <= offset)
            .saturating_sub(1);
        match line.pieces.get(piece) {
            Some(&(from, to, at)) => (from + (offset - at)).min(to) - line.file_start,
            None => 0,
        }
    }
}

/// The parts of the file's line `start..end` to show: all of it when it is
/// short, else windows around the ends of `labels` on it (or its
/// beginning), merged where they touch.
fn windows(
    error: &SourceText,
    start: usize,
    end: usize,
    labels: &[(usize, usize)],
) -> Vec<(usize, usize)> {
    if end - start <= LONG_LINE {
        return vec![(start, end)];
    }
    let mut points: Vec<usize> = labels
        .iter()
        .flat_map(|&(from, to)| [from, to])
        .filter(|&at| (start..=end).contains(&at))
        .collect();
    if points.is_empty() {
        points.push(start + WINDOW);
    }
    points.sort_unstable();
    let mut windows: Vec<(usize, usize)> = Vec::new();
    for at in points {
        let from = error.clamp(at.saturating_sub(WINDOW).max(start));
        let mut to = (at + WINDOW).min(end);
        while !error.source.is_char_boundary(to) {
            to += 1;
        }
        match windows.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => windows.push((from, to)),
        }
    }
    windows
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, MietteError> {
        let start = span.offset();
        let end = start + span.len();
        if end > self.text.len() || self.lines.is_empty() {
            return Err(MietteError::OutOfBounds);
        }
        let mut first = self.line_at(start);
        let mut last = self.line_at(end.saturating_sub(1).max(start));
        let follows = |line: usize| self.lines[line].number == self.lines[line - 1].number + 1;
        // A span across lines left out cannot be shown as one snippet.
        if (first + 1..=last).any(|line| !follows(line)) {
            return Err(MietteError::OutOfBounds);
        }
        for _ in 0..context_lines_before {
            if first == 0 || !follows(first) {
                break;
            }
            first -= 1;
        }
        for _ in 0..context_lines_after {
            if last + 1 >= self.lines.len() || !follows(last + 1) {
                break;
            }
            last += 1;
        }
        let (data_start, column) = if context_lines_before == 0 {
            (start, self.column(start))
        } else {
            (self.lines[first].start, 0)
        };
        let data_end = self.lines[last].end.max(data_start);
        // Snippets are merged whenever the merged span can be read, which
        // is exactly when no line between them was left out.
        let line_count = self.lines.last().map_or(0, |line| line.number + 1);
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            &self.text.as_bytes()[data_start..data_end],
            (data_start, data_end - data_start).into(),
            self.lines[first].number,
            column,
            line_count,
        )))
    }
}

impl std::fmt::Display for CompileError {
    /// The first error as `file:line: message`, and how many follow.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(first) = self.diagnostics.first() else {
            return write!(f, "{}: could not compile", self.name);
        };
        write!(
            f,
            "{}:{}: {}",
            self.file_of(first),
            self.line_of(first),
            first.message
        )?;
        match self.diagnostics.len() {
            1 => Ok(()),
            2 => write!(f, " (and 1 more error)"),
            n => write!(f, " (and {} more errors)", n - 1),
        }
    }
}

/// One diagnostic with the excerpt of the file it points into, as a
/// `miette` diagnostic of its own.
#[derive(Debug)]
struct Shown {
    diagnostic: Diagnostic,
    excerpt: Excerpt,
}

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Shown {}

impl miette::Diagnostic for Shown {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.diagnostic.code()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.diagnostic.help()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.diagnostic.labels()
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.excerpt)
    }
}

impl CompileError {
    /// The diagnostics `miette` shows (at most [`MAX_RENDERED`]), each
    /// with its excerpt.
    fn shown(&self) -> &[Shown] {
        self.shown.get_or_init(|| {
            self.diagnostics
                .iter()
                .take(MAX_RENDERED)
                .map(|diagnostic| {
                    let (diagnostic, excerpt) = self.text_of(diagnostic).excerpt(diagnostic);
                    Shown {
                        diagnostic,
                        excerpt,
                    }
                })
                .collect()
        })
    }
}

/// A compile error is a `miette` diagnostic: the first error with its
/// code, labels, help and source lines, the others as related
/// diagnostics, so `?` into `miette::Result` reports them all.
///
/// ```
/// fn check() -> miette::Result<()> {
///     spool::Engine::new().compile("bad.spl", "let x: int = \"s\"")?;
///     Ok(())
/// }
/// let report = check().unwrap_err();
/// assert!(report.to_string().contains("bad.spl:1"));
/// ```
impl miette::Diagnostic for CompileError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.shown().first()?.code()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.shown().first()?.help()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.shown().first()?.labels()
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.shown().first()?.source_code()
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        let rest = self.shown().get(1..)?;
        Some(Box::new(
            rest.iter().map(|shown| shown as &dyn miette::Diagnostic),
        ))
    }
}

impl std::error::Error for CompileError {}
