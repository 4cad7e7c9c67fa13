//! The lexer: source text to the token stream the grammar reads.
//!
//! Two layers. [`Tok`] is a logos-derived lexer for code. The wrapper,
//! [`tokenize`], drives it and adds what a regular lexer cannot do: it scans
//! string literals by hand (decoding escapes and splitting `${...}`
//! interpolations into their own tokens, so the grammar parses the inner
//! expression in place with absolute spans), applies Go's newline rule
//! (LANGUAGE.md §1) to turn qualifying newlines into `;`, tracks bracket
//! nesting (bounded by [`MAX_NESTING`], so no later pass recurses without
//! limit), and collects every lexical error as a [`Diagnostic`] instead of
//! stopping at the first.

use crate::ast::Span;
use crate::diag::{codes, Diagnostic};
use logos::Logos;
use std::fmt;

/// How deeply `(`, `[`, `{` and `${` may nest before the lexer gives up
/// with a `TOO_DEEP` diagnostic.
pub const MAX_NESTING: usize = 256;

/// A token with its byte offsets: `(start, token, end)`, as lalrpop wants it.
pub type Spanned = (usize, Tok, usize);

/// Why logos rejected some input.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LexError {
    /// A character that starts no token.
    #[default]
    Unexpected,
    /// A `/*` without its matching `*/`.
    UnterminatedComment,
}

/// One token. Most variants come from logos; `Semi` may also be inserted
/// for a newline, and the `Str*`/`Interp*` variants are produced by the
/// wrapper's string scanner.
#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(skip r"[ \t\r\x0C]+")]
#[logos(skip r"//[^\n]*")]
#[logos(error = LexError)]
pub enum Tok {
    /// A newline; the wrapper turns it into `;` or drops it.
    #[token("\n")]
    Newline,
    /// A block comment; `true` when it spans a newline (it then counts as one).
    #[token("/*", block_comment)]
    Comment(bool),

    /// `fn`.
    #[token("fn")]
    Fn,
    /// `let`.
    #[token("let")]
    Let,
    /// `if`.
    #[token("if")]
    If,
    /// `else`.
    #[token("else")]
    Else,
    /// `while`.
    #[token("while")]
    While,
    /// `for`.
    #[token("for")]
    For,
    /// `in`.
    #[token("in")]
    In,
    /// `break`.
    #[token("break")]
    Break,
    /// `continue`.
    #[token("continue")]
    Continue,
    /// `return`.
    #[token("return")]
    Return,
    /// `match`.
    #[token("match")]
    Match,
    /// `struct`.
    #[token("struct")]
    Struct,
    /// `enum`.
    #[token("enum")]
    Enum,
    /// `yield`.
    #[token("yield")]
    Yield,
    /// `spawn`.
    #[token("spawn")]
    Spawn,
    /// `await`.
    #[token("await")]
    Await,
    /// `defer`.
    #[token("defer")]
    Defer,
    /// `try`.
    #[token("try")]
    Try,
    /// `catch`.
    #[token("catch")]
    Catch,
    /// `throw`.
    #[token("throw")]
    Throw,
    /// `true`.
    #[token("true")]
    True,
    /// `false`.
    #[token("false")]
    False,
    /// `nil`.
    #[token("nil")]
    Nil,
    /// `yields`, only meaningful in function types.
    #[token("yields")]
    Yields,
    /// `receives`, only meaningful in function types.
    #[token("receives")]
    Receives,
    /// `select`.
    #[token("select")]
    Select,

    /// An identifier (including `_`).
    #[regex("[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice().to_string())]
    Ident(String),
    /// An integer literal's value, saturated at `u128::MAX`; the grammar
    /// range-checks it (so that `-9223372036854775808` can be accepted).
    #[regex("[0-9][0-9_]*", |lex| int_value(lex.slice(), 10))]
    #[regex("0[xX][0-9a-fA-F][0-9a-fA-F_]*", |lex| int_value(&lex.slice()[2..], 16))]
    #[regex("0[bB][01][01_]*", |lex| int_value(&lex.slice()[2..], 2))]
    Int(u128),
    /// A float literal; infinite when it overflows (the grammar reports it).
    #[regex(r"[0-9][0-9_]*\.[0-9][0-9_]*([eE][+-]?[0-9][0-9_]*)?", float_value)]
    #[regex(r"[0-9][0-9_]*[eE][+-]?[0-9][0-9_]*", float_value)]
    Float(f64),
    /// The `"` that opens a string literal.
    #[token("\"")]
    StrOpen,
    /// Literal text inside a string, escapes decoded.
    StrText(String),
    /// `${` inside a string.
    InterpOpen,
    /// The `}` that closes an interpolation.
    InterpClose,
    /// The `"` that closes a string literal.
    StrClose,

    /// `+`.
    #[token("+")]
    Plus,
    /// `-`.
    #[token("-")]
    Minus,
    /// `*`.
    #[token("*")]
    Star,
    /// `/`.
    #[token("/")]
    Slash,
    /// `%`.
    #[token("%")]
    Percent,
    /// `==`.
    #[token("==")]
    EqEq,
    /// `!=`.
    #[token("!=")]
    NotEq,
    /// `<`.
    #[token("<")]
    Lt,
    /// `<=`.
    #[token("<=")]
    Le,
    /// `>` (also closes generics; there is no `>>` token).
    #[token(">")]
    Gt,
    /// `>=`.
    #[token(">=")]
    Ge,
    /// `&&`.
    #[token("&&")]
    AndAnd,
    /// `||`.
    #[token("||")]
    OrOr,
    /// `??`.
    #[token("??")]
    Coalesce,
    /// `!`, prefix (not) or postfix (unwrap).
    #[token("!")]
    Bang,
    /// `=`.
    #[token("=")]
    Assign,
    /// `+=`.
    #[token("+=")]
    PlusEq,
    /// `-=`.
    #[token("-=")]
    MinusEq,
    /// `*=`.
    #[token("*=")]
    StarEq,
    /// `/=`.
    #[token("/=")]
    SlashEq,
    /// `%=`.
    #[token("%=")]
    PercentEq,
    /// `.`.
    #[token(".")]
    Dot,
    /// `..`.
    #[token("..")]
    DotDot,
    /// `..=`.
    #[token("..=")]
    DotDotEq,
    /// `,`.
    #[token(",")]
    Comma,
    /// `:`.
    #[token(":")]
    Colon,
    /// `;`, written or inserted for a newline.
    #[token(";")]
    Semi,
    /// `(`.
    #[token("(")]
    LParen,
    /// `)`.
    #[token(")")]
    RParen,
    /// `[`.
    #[token("[")]
    LBracket,
    /// `]`.
    #[token("]")]
    RBracket,
    /// `{`.
    #[token("{")]
    LBrace,
    /// `}`.
    #[token("}")]
    RBrace,
    /// `=>`.
    #[token("=>")]
    FatArrow,
    /// `->`.
    #[token("->")]
    Arrow,
    /// `|`.
    #[token("|")]
    Pipe,
    /// `?`.
    #[token("?")]
    Question,
    /// Never produced by the lexer: put in front of the tokens by
    /// [`crate::parse_native_sig`] so one grammar serves both entry points.
    NativeSigStart,
}

impl Tok {
    /// Whether a newline right after this token ends a statement (Go's rule).
    fn ends_statement(&self) -> bool {
        matches!(
            self,
            Tok::Ident(_)
                | Tok::Int(_)
                | Tok::Float(_)
                | Tok::StrClose
                | Tok::RParen
                | Tok::RBracket
                | Tok::RBrace
                | Tok::Bang
                | Tok::Question
                | Tok::Return
                | Tok::Break
                | Tok::Continue
                | Tok::Nil
                | Tok::True
                | Tok::False
        )
    }
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Tok::Ident(name) => return write!(f, "identifier `{name}`"),
            Tok::Int(_) => "integer literal",
            Tok::Float(_) => "float literal",
            Tok::StrOpen => "string literal",
            Tok::StrText(_) => "string text",
            Tok::StrClose => "end of string",
            Tok::InterpOpen => "`${`",
            Tok::InterpClose => "`}`",
            Tok::Newline => "end of line",
            Tok::Comment(_) => "comment",
            Tok::NativeSigStart => "start of signature",
            other => return write!(f, "`{}`", symbol(other)),
        };
        f.write_str(text)
    }
}

/// The source spelling of a fixed token (keywords, operators, punctuation).
fn symbol(tok: &Tok) -> &'static str {
    match tok {
        Tok::Fn => "fn",
        Tok::Let => "let",
        Tok::If => "if",
        Tok::Else => "else",
        Tok::While => "while",
        Tok::For => "for",
        Tok::In => "in",
        Tok::Break => "break",
        Tok::Continue => "continue",
        Tok::Return => "return",
        Tok::Match => "match",
        Tok::Struct => "struct",
        Tok::Enum => "enum",
        Tok::Yield => "yield",
        Tok::Spawn => "spawn",
        Tok::Await => "await",
        Tok::Defer => "defer",
        Tok::Try => "try",
        Tok::Catch => "catch",
        Tok::Throw => "throw",
        Tok::True => "true",
        Tok::False => "false",
        Tok::Nil => "nil",
        Tok::Yields => "yields",
        Tok::Receives => "receives",
        Tok::Select => "select",
        _ => operator_symbol(tok),
    }
}

/// The source spelling of an operator or punctuation token.
fn operator_symbol(tok: &Tok) -> &'static str {
    match tok {
        Tok::Plus => "+",
        Tok::Minus => "-",
        Tok::Star => "*",
        Tok::Slash => "/",
        Tok::Percent => "%",
        Tok::EqEq => "==",
        Tok::NotEq => "!=",
        Tok::Lt => "<",
        Tok::Le => "<=",
        Tok::Gt => ">",
        Tok::Ge => ">=",
        Tok::AndAnd => "&&",
        Tok::OrOr => "||",
        Tok::Coalesce => "??",
        Tok::Bang => "!",
        Tok::Assign => "=",
        Tok::PlusEq => "+=",
        Tok::MinusEq => "-=",
        Tok::StarEq => "*=",
        Tok::SlashEq => "/=",
        Tok::PercentEq => "%=",
        Tok::Dot => ".",
        Tok::DotDot => "..",
        Tok::DotDotEq => "..=",
        Tok::Comma => ",",
        Tok::Colon => ":",
        Tok::Semi => ";",
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::LBracket => "[",
        Tok::RBracket => "]",
        Tok::LBrace => "{",
        Tok::RBrace => "}",
        Tok::FatArrow => "=>",
        Tok::Arrow => "->",
        Tok::Pipe => "|",
        Tok::Question => "?",
        _ => "?token",
    }
}

/// The value of the digits of an integer literal (underscores ignored),
/// saturated at `u128::MAX` so any overflow is still visibly out of range.
fn int_value(digits: &str, radix: u32) -> u128 {
    let mut value: u128 = 0;
    for digit in digits.chars().filter_map(|c| c.to_digit(radix)) {
        value = value
            .saturating_mul(u128::from(radix))
            .saturating_add(u128::from(digit));
    }
    value
}

/// The value of a float literal; infinite when it does not fit in an `f64`.
fn float_value(lex: &mut logos::Lexer<Tok>) -> f64 {
    let text: String = lex.slice().chars().filter(|&c| c != '_').collect();
    text.parse().unwrap_or(f64::INFINITY)
}

/// Skips a nestable block comment whose `/*` was just read. Reports whether
/// it contained a newline.
fn block_comment(lex: &mut logos::Lexer<Tok>) -> Result<bool, LexError> {
    let rest = lex.remainder().as_bytes();
    let mut depth = 1usize;
    let mut index = 0;
    let mut newline = false;
    while index < rest.len() {
        match (rest[index], rest.get(index + 1)) {
            (b'*', Some(b'/')) => {
                depth -= 1;
                index += 2;
                if depth == 0 {
                    lex.bump(index);
                    return Ok(newline);
                }
            }
            (b'/', Some(b'*')) => {
                depth += 1;
                index += 2;
            }
            (byte, _) => {
                newline |= byte == b'\n';
                index += 1;
            }
        }
    }
    lex.bump(rest.len());
    Err(LexError::UnterminatedComment)
}

/// The result of lexing a whole source text.
#[derive(Debug, Default)]
pub struct Lexed {
    /// The tokens, with `;` already inserted for qualifying newlines.
    pub tokens: Vec<Spanned>,
    /// Every lexical problem found.
    pub errors: Vec<Diagnostic>,
    /// True when lexing stopped early (nesting too deep); the tokens are then
    /// incomplete and must not be parsed.
    pub aborted: bool,
}

/// Lexes a whole source text.
pub fn tokenize(source: &str) -> Lexed {
    let mut stream = Tokens::new(source);
    let tokens = stream.by_ref().collect();
    let (errors, aborted) = stream.finish();
    Lexed {
        tokens,
        errors,
        aborted,
    }
}

/// The tokens of a source text, lexed as they are asked for, so a parser
/// never holds more than a few at once (a file of millions of `;` costs no
/// memory for them). After the last token, [`Tokens::finish`] gives the
/// lexical errors.
pub struct Tokens<'src> {
    wrapper: Wrapper<'src>,
    next: Next,
    /// Tokens lexed and not yet handed out, from `taken` on.
    buffer: Vec<Spanned>,
    taken: usize,
}

impl<'src> Tokens<'src> {
    /// The tokens of `source`.
    pub fn new(source: &'src str) -> Tokens<'src> {
        Tokens {
            wrapper: Wrapper {
                source,
                out: Lexed::default(),
                stack: Vec::new(),
                pending_newline: None,
                last_ends_statement: false,
                after_select: false,
            },
            next: Next::Code(0),
            buffer: Vec::new(),
            taken: 0,
        }
    }

    /// Every lexical problem found so far, and whether lexing stopped early
    /// (nesting too deep; the tokens were then incomplete and a parse of
    /// them means nothing).
    pub fn finish(self) -> (Vec<Diagnostic>, bool) {
        (self.wrapper.out.errors, self.wrapper.out.aborted)
    }
}

impl Iterator for Tokens<'_> {
    type Item = Spanned;

    fn next(&mut self) -> Option<Spanned> {
        while self.taken == self.buffer.len() {
            self.buffer.clear();
            self.taken = 0;
            if matches!(self.next, Next::Stop) {
                return None;
            }
            self.wrapper.out.tokens = std::mem::take(&mut self.buffer);
            self.next = self
                .wrapper
                .step(std::mem::replace(&mut self.next, Next::Stop));
            self.buffer = std::mem::take(&mut self.wrapper.out.tokens);
        }
        let token = std::mem::replace(&mut self.buffer[self.taken], (0, Tok::Semi, 0));
        self.taken += 1;
        Some(token)
    }
}

/// An open bracket on the nesting stack.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Open {
    /// `(`: newlines inside are ignored.
    Paren,
    /// `[`: newlines inside are ignored.
    Bracket,
    /// `{`: the newline rule applies.
    Brace,
    /// The `{` of a `select`: as [`Open::Brace`], and a newline before
    /// `else` ends the case before it (the `else` is a case of its own).
    Select,
    /// `${` of the string that opened at this offset; newlines are ignored.
    Interp(usize),
}

/// Where the wrapper goes after a piece of work.
enum Next {
    /// Lex code from this offset.
    Code(usize),
    /// Continue the string opened at `quote` from offset `at`.
    Str { quote: usize, at: usize },
    /// Stop: end of input, or an abort.
    Stop,
}

/// The lexing state of one [`Tokens`] stream.
struct Wrapper<'src> {
    source: &'src str,
    /// Tokens of the current step (handed out by [`Tokens`]) and every
    /// error so far.
    out: Lexed,
    stack: Vec<Open>,
    /// The span of a newline that will become `;` unless the next token is
    /// `else` or `catch` (or there is no next token).
    pending_newline: Option<(usize, usize)>,
    /// Whether the last token emitted can end a statement.
    last_ends_statement: bool,
    /// Was the last token `select` (so a `{` now opens its cases)?
    after_select: bool,
}

impl<'src> Wrapper<'src> {
    /// One piece of work: a code token, or string text up to its end or
    /// next `${`. Returns where to go on.
    fn step(&mut self, next: Next) -> Next {
        match next {
            Next::Code(at) => self.code(at),
            Next::Str { quote, at } => self.string(quote, at),
            Next::Stop => Next::Stop,
        }
    }

    /// Lexes one code token from `start`; stops when the input ends or
    /// nesting gets too deep, and turns to string scanning when a string
    /// opens or an interpolation closes.
    fn code(&mut self, start: usize) -> Next {
        let mut lexer = Tok::lexer(&self.source[start..]);
        let Some(result) = lexer.next() else {
            self.unclosed_interpolations();
            return Next::Stop;
        };
        let span = lexer.span();
        let (lo, hi) = (start + span.start, start + span.end);
        match result {
            Ok(tok) => {
                if let Some(next) = self.code_token(tok, lo, hi) {
                    return next;
                }
            }
            Err(error) => self.lex_error(error, lo, hi),
        }
        Next::Code(hi)
    }

    /// At the end of the input, reports each string still open around an
    /// unclosed `${`.
    fn unclosed_interpolations(&mut self) {
        let end = self.source.len();
        for open in std::mem::take(&mut self.stack) {
            if let Open::Interp(quote) = open {
                self.out.errors.push(Diagnostic::new(
                    codes::LEX,
                    "unterminated string",
                    Span::new(quote, end),
                    "this string's `${` is never closed",
                ));
            }
        }
    }

    /// Handles one code token; returns where to go when code lexing must
    /// stop here.
    fn code_token(&mut self, tok: Tok, lo: usize, hi: usize) -> Option<Next> {
        match tok {
            Tok::Newline | Tok::Comment(true) => self.newline(lo, hi),
            Tok::Comment(false) => {}
            Tok::StrOpen => {
                self.emit(Tok::StrOpen, lo, hi);
                return Some(Next::Str { quote: lo, at: hi });
            }
            Tok::LParen | Tok::LBracket | Tok::LBrace => {
                let open = match tok {
                    Tok::LParen => Open::Paren,
                    Tok::LBracket => Open::Bracket,
                    _ if self.after_select => Open::Select,
                    _ => Open::Brace,
                };
                self.emit(tok, lo, hi);
                if !self.open(open, lo, hi) {
                    return Some(Next::Stop);
                }
            }
            Tok::RParen | Tok::RBracket | Tok::RBrace => return self.close(tok, lo, hi),
            tok => self.emit(tok, lo, hi),
        }
        None
    }

    /// Pushes an open bracket; false (after reporting) when nesting is too deep.
    fn open(&mut self, open: Open, lo: usize, hi: usize) -> bool {
        self.stack.push(open);
        if self.stack.len() <= MAX_NESTING {
            return true;
        }
        self.out.errors.push(
            Diagnostic::new(
                codes::TOO_DEEP,
                format!("brackets nested more than {MAX_NESTING} levels deep"),
                Span::new(lo, hi),
                "too deeply nested",
            )
            .with_help("split the expression or block into smaller functions"),
        );
        self.out.aborted = true;
        false
    }

    /// Handles a closing bracket. A `}` that closes an interpolation resumes
    /// its string; other closers pop whatever is open (a mismatch is left to
    /// the parser to report).
    fn close(&mut self, tok: Tok, lo: usize, hi: usize) -> Option<Next> {
        if tok == Tok::RBrace {
            // A `}` closes the innermost brace or interpolation, skipping
            // unclosed `(`/`[` so that a string is never left unresumed.
            while matches!(self.stack.last(), Some(Open::Paren | Open::Bracket)) {
                self.stack.pop();
            }
            if let Some(Open::Interp(quote)) = self.stack.last().copied() {
                self.stack.pop();
                self.emit(Tok::InterpClose, lo, hi);
                return Some(Next::Str { quote, at: hi });
            }
        }
        if matches!(
            self.stack.last(),
            Some(Open::Paren | Open::Bracket | Open::Brace | Open::Select)
        ) {
            self.stack.pop();
        }
        self.emit(tok, lo, hi);
        None
    }

    /// Applies the newline rule to a newline at `lo..hi`.
    fn newline(&mut self, lo: usize, hi: usize) {
        let ignored = matches!(
            self.stack.last(),
            Some(Open::Paren | Open::Bracket | Open::Interp(_))
        );
        if ignored || self.pending_newline.is_some() {
            return;
        }
        if self.last_ends_statement {
            self.pending_newline = Some((lo, hi));
        }
    }

    /// Appends a token, first turning a pending newline into `;` unless the
    /// token continues the previous statement (`else`, `catch`).
    fn emit(&mut self, tok: Tok, lo: usize, hi: usize) {
        if let Some((nl_lo, nl_hi)) = self.pending_newline.take() {
            let continues = matches!(tok, Tok::Else | Tok::Catch)
                && !(tok == Tok::Else && self.stack.last() == Some(&Open::Select));
            if !continues {
                self.push((nl_lo, Tok::Semi, nl_hi));
            }
        }
        self.push((lo, tok, hi));
    }

    /// Appends a token to the output.
    fn push(&mut self, token: Spanned) {
        self.last_ends_statement = token.1.ends_statement();
        self.after_select = token.1 == Tok::Select;
        self.out.tokens.push(token);
    }

    /// Records a logos error, merging runs of adjacent unexpected characters
    /// into one diagnostic.
    fn lex_error(&mut self, error: LexError, lo: usize, hi: usize) {
        let hi = self.char_end(hi);
        if error == LexError::UnterminatedComment {
            self.out.errors.push(Diagnostic::new(
                codes::LEX,
                "unexpected end of input: unterminated block comment",
                Span::new(lo, hi),
                "this comment is never closed with `*/`",
            ));
            return;
        }
        if let Some(last) = self.out.errors.last_mut() {
            if last.code == codes::LEX
                && last.label == UNEXPECTED_LABEL
                && last.span.end as usize == lo
            {
                last.span.end = hi as u32;
                last.message = format!(
                    "unexpected characters `{}`",
                    &self.source[last.span.range()]
                );
                return;
            }
        }
        let text = &self.source[lo..hi];
        self.out.errors.push(Diagnostic::new(
            codes::LEX,
            format!("unexpected character `{}`", text.escape_debug()),
            Span::new(lo, hi),
            UNEXPECTED_LABEL,
        ));
    }

    /// Extends `offset` to the next char boundary, so error spans never cut
    /// a multi-byte character.
    fn char_end(&self, mut offset: usize) -> usize {
        while offset < self.source.len() && !self.source.is_char_boundary(offset) {
            offset += 1;
        }
        offset
    }

    /// Scans string text from `at` (inside the string opened at `quote`) up
    /// to the closing quote or the next `${`.
    fn string(&mut self, quote: usize, at: usize) -> Next {
        let bytes = self.source.as_bytes();
        let mut text = String::new();
        let mut text_start = at;
        let mut index = at;
        loop {
            match bytes.get(index) {
                None | Some(b'\n') => {
                    self.flush_text(&mut text, text_start, index);
                    self.out.errors.push(
                        Diagnostic::new(
                            codes::LEX,
                            "unterminated string",
                            Span::new(quote, index),
                            "this string is not closed on its line",
                        )
                        .with_help("close it with `\"`; write a newline inside a string as `\\n`"),
                    );
                    // A zero-width close keeps the parser in step.
                    self.push((index, Tok::StrClose, index));
                    return if index < bytes.len() {
                        Next::Code(index)
                    } else {
                        Next::Stop
                    };
                }
                Some(b'"') => {
                    self.flush_text(&mut text, text_start, index);
                    self.push((index, Tok::StrClose, index + 1));
                    return Next::Code(index + 1);
                }
                Some(b'$') if bytes.get(index + 1) == Some(&b'{') => {
                    self.flush_text(&mut text, text_start, index);
                    self.push((index, Tok::InterpOpen, index + 2));
                    if !self.open(Open::Interp(quote), index, index + 2) {
                        return Next::Stop;
                    }
                    return Next::Code(index + 2);
                }
                Some(b'\\') => index = self.escape(index, &mut text),
                Some(_) => {
                    let ch = self.source[index..].chars().next().unwrap_or('\u{FFFD}');
                    text.push(ch);
                    index += ch.len_utf8();
                }
            }
            if text.is_empty() {
                text_start = index;
            }
        }
    }

    /// Emits pending string text (if any) spanning `lo..hi`.
    fn flush_text(&mut self, text: &mut String, lo: usize, hi: usize) {
        if !text.is_empty() {
            self.push((lo, Tok::StrText(std::mem::take(text)), hi));
        }
    }

    /// Decodes the escape starting at the backslash at `at` into `text`,
    /// reporting a bad one; returns the offset after it.
    fn escape(&mut self, at: usize, text: &mut String) -> usize {
        let Some(kind) = self.source[at + 1..].chars().next() else {
            return at + 1;
        };
        let decoded = match kind {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '$' => Some('$'),
            '0' => Some('\0'),
            'u' => return self.unicode_escape(at, text),
            // A raw newline after `\` is left for the unterminated-string check.
            '\n' => return at + 1,
            _ => None,
        };
        let end = at + 1 + kind.len_utf8();
        match decoded {
            Some(ch) => text.push(ch),
            None => self.bad_escape(
                at,
                end,
                format!("unknown escape `\\{}`", kind.escape_debug()),
            ),
        }
        end
    }

    /// Decodes `\u{XXXX}` at `at`; returns the offset after it.
    fn unicode_escape(&mut self, at: usize, text: &mut String) -> usize {
        let rest = &self.source.as_bytes()[at + 2..];
        if rest.first() != Some(&b'{') {
            self.bad_escape(
                at,
                at + 2,
                "`\\u` must be followed by `{hex digits}`".into(),
            );
            return at + 2;
        }
        let digits = rest[1..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        let closed = rest.get(1 + digits) == Some(&b'}');
        let end = at + 3 + digits + usize::from(closed);
        let code = std::str::from_utf8(&rest[1..1 + digits])
            .ok()
            .and_then(|hex| u32::from_str_radix(hex, 16).ok());
        match code.and_then(char::from_u32) {
            Some(ch) if closed && digits <= 6 => text.push(ch),
            _ if !closed => self.bad_escape(at, end, "unterminated `\\u{...}` escape".into()),
            _ => self.bad_escape(
                at,
                end,
                "invalid unicode code point in `\\u{...}` escape".into(),
            ),
        }
        end
    }

    /// Reports a bad escape at `lo..hi`.
    fn bad_escape(&mut self, lo: usize, hi: usize, message: String) {
        let hi = self.char_end(hi.min(self.source.len()));
        self.out.errors.push(
            Diagnostic::new(codes::LEX, message, Span::new(lo, hi), "bad escape")
                .with_help("valid escapes: \\n \\t \\r \\\\ \\\" \\$ \\0 \\u{1F600}"),
        );
    }
}

/// The label of "unexpected character" diagnostics, used to merge runs.
const UNEXPECTED_LABEL: &str = "not valid here";
