//! Compile-time diagnostics: data with spans, rendered at the edge.
//!
//! `lang` never prints: every problem it finds becomes a [`Diagnostic`]
//! with a stable code (`spool::E0xx`), a primary labelled span and, where it
//! helps, a hint. The `spool` crate attaches the source text and renders
//! them with miette.

use crate::ast::Span;

/// A secondary label: another place that explains the error.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there.
    pub text: String,
}

/// One compile error.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// A stable code such as `spool::E003`; see [`codes`].
    pub code: &'static str,
    /// The one-line message.
    pub message: String,
    /// The primary span.
    pub span: Span,
    /// The text of the primary label.
    pub label: String,
    /// Further labelled spans.
    pub secondary: Vec<Label>,
    /// A hint on how to fix it.
    pub help: Option<String>,
    /// The file the spans point into, by its name in the program; `None`
    /// for the file being compiled (a program's main file, a session's
    /// input). Every span of one diagnostic is in one file.
    pub file: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with `code`, `message` and a primary label.
    pub fn new(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            code,
            message: message.into(),
            span,
            label: label.into(),
            secondary: Vec::new(),
            help: None,
            file: None,
        }
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label {
            span,
            text: text.into(),
        });
        self
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn std::fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let primary = miette::LabeledSpan::new_primary_with_span(
            Some(self.label.clone()),
            self.span.start as usize..self.span.end as usize,
        );
        let secondary = self.secondary.iter().map(|label| {
            miette::LabeledSpan::new_with_span(
                Some(label.text.clone()),
                label.span.start as usize..label.span.end as usize,
            )
        });
        Some(Box::new(std::iter::once(primary).chain(secondary)))
    }
}

/// The diagnostic codes. Each kind of compile error has one.
pub mod codes {
    /// A character or token the lexer does not accept (including invalid
    /// UTF-8, unterminated strings and comments, bad escapes).
    pub const LEX: &str = "spool::E001";
    /// The parser met a token it did not expect.
    pub const SYNTAX: &str = "spool::E002";
    /// An integer literal that does not fit in 64 bits, or a bad float.
    pub const LITERAL: &str = "spool::E003";
    /// Nesting too deep for the front end.
    pub const TOO_DEEP: &str = "spool::E004";
    /// A name that is not in scope.
    pub const UNKNOWN_NAME: &str = "spool::E010";
    /// An unknown type name.
    pub const UNKNOWN_TYPE: &str = "spool::E011";
    /// A name declared twice in the same scope.
    pub const DUPLICATE: &str = "spool::E012";
    /// Two types that should agree do not.
    pub const MISMATCH: &str = "spool::E020";
    /// A call with the wrong number of arguments.
    pub const ARITY: &str = "spool::E021";
    /// An operator applied to types it does not accept.
    pub const OPERATOR: &str = "spool::E022";
    /// No function of that name accepts the arguments' types.
    pub const NO_OVERLOAD: &str = "spool::E023";
    /// A field or method that does not exist on the type.
    pub const NO_FIELD: &str = "spool::E024";
    /// A type that could not be inferred.
    pub const CANNOT_INFER: &str = "spool::E025";
    /// Something assigned that is not a variable, field or index.
    pub const NOT_A_PLACE: &str = "spool::E026";
    /// A value called that is not a function.
    pub const NOT_CALLABLE: &str = "spool::E027";
    /// A struct field's default that is not a literal, `nil`, `[]` or `[:]`.
    pub const FIELD_DEFAULT: &str = "spool::E028";
    /// A `match` that does not cover every case.
    pub const NON_EXHAUSTIVE: &str = "spool::E030";
    /// A pattern that does not fit the matched type.
    pub const BAD_PATTERN: &str = "spool::E031";
    /// `break` or `continue` outside a loop, `return` at the REPL's prompt.
    pub const MISPLACED: &str = "spool::E040";
    /// A function with a return type whose end can be reached.
    pub const MISSING_RETURN: &str = "spool::E041";
    /// A `yield` whose type conflicts with another in the same coroutine.
    pub const YIELD_TYPE: &str = "spool::E050";
    /// A `yield` where nothing can receive it.
    pub const YIELD_PLACE: &str = "spool::E051";
    /// Type arguments or generic parameters used wrongly.
    pub const GENERIC: &str = "spool::E060";
    /// `spawn` of something that is not a function call.
    pub const SPAWN: &str = "spool::E070";
    /// A `select` case that is not one of its forms, or a second `else`.
    pub const SELECT_CASE: &str = "spool::E071";
    /// An import that cannot be loaded, or a statement in an imported file.
    pub const IMPORT: &str = "spool::E080";
}
