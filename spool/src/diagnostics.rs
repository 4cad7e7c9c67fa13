//! Compile errors as users see them: the diagnostics of one file, rendered
//! with miette against the file's text.

use miette::{GraphicalReportHandler, GraphicalTheme, NamedSource};
use spool_lang::Diagnostic;

/// Every compile error of one file, with the text they point into.
#[derive(Clone, Debug)]
pub struct CompileError {
    name: String,
    source: String,
    diagnostics: Vec<Diagnostic>,
}

impl CompileError {
    pub(crate) fn new(name: &str, source: &str, mut diagnostics: Vec<Diagnostic>) -> CompileError {
        diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
        diagnostics.dedup_by(|a, b| a.span == b.span && a.message == b.message);
        CompileError {
            name: name.to_string(),
            source: source.to_string(),
            diagnostics,
        }
    }

    /// The front end itself failed: reported as a diagnostic, never a crash.
    pub(crate) fn internal(name: &str, source: &str) -> CompileError {
        let diagnostic = Diagnostic::new(
            "spool::E000",
            "internal compiler error",
            spool_lang::ast::Span::default(),
            "the compiler failed on this file",
        )
        .with_help("this is a bug in Spool; please report it with the file");
        CompileError::new(name, source, vec![diagnostic])
    }

    /// The diagnostics, in source order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The file's name.
    pub fn file_name(&self) -> &str {
        &self.name
    }

    /// The 1-based line of a diagnostic's primary span.
    pub fn line_of(&self, diagnostic: &Diagnostic) -> usize {
        let end = (diagnostic.span.start as usize).min(self.source.len());
        self.source.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
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
        for diagnostic in &self.diagnostics {
            let report = miette::Report::new(diagnostic.clone())
                .with_source_code(NamedSource::new(&self.name, self.source.clone()));
            if handler.render_report(&mut out, report.as_ref()).is_err() {
                out.push_str(&format!("error: {}\n", diagnostic.message));
            }
        }
        let count = self.diagnostics.len();
        let plural = if count == 1 { "" } else { "s" };
        out.push_str(&format!(
            "error: could not compile `{}` due to {count} error{plural}\n",
            self.name
        ));
        out
    }
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for diagnostic in &self.diagnostics {
            writeln!(
                f,
                "{}:{}: {}",
                self.name,
                self.line_of(diagnostic),
                diagnostic.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for CompileError {}
