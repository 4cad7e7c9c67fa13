//! The parser's public entry points: source text to [`ast::File`] (or a
//! native signature to an [`ast::FnDecl`]), with every lexical, syntax and
//! literal error turned into a [`Diagnostic`].
//!
//! The grammar itself lives in `grammar.lalrpop`; its actions build nodes
//! through [`Ctx`], which hands out [`ExprId`]s, range-checks literals and
//! tracks how deep each expression is. Depth is enforced while the tree is
//! built (a node deeper than [`MAX_DEPTH`] is reported and replaced by a
//! leaf), so no tree that reaches later passes, or gets dropped, is deep
//! enough to overflow the stack; bracket nesting is bounded by the lexer.
//! One shape is exempt: the left operand of a binary operator does not
//! count, so `1 + 1 + ... + 1` may have any number of terms; the code
//! generator walks such a chain's left spine in a loop.

use crate::ast::{
    self, BinOp, Block, Expr, ExprId, ExprKind, ForIter, Ident, LambdaBody, LitPattern, Param,
    Pattern, PatternKind, Span, Stmt, StmtKind, StrPart, TypeExpr, TypeExprKind,
};
use crate::diag::{codes, Diagnostic};
use crate::lexer::{self, Tok};
use lalrpop_util::{ErrorRecovery, ParseError};
use std::cell::{Cell, RefCell};

lalrpop_util::lalrpop_mod!(
    #[allow(
        clippy::all,
        clippy::pedantic,
        missing_docs,
        unused_qualifications,
        unreachable_pub,
        dead_code
    )]
    grammar
);

/// How deep expressions (and, separately, types and `else if` chains) may
/// nest. Deeper input gets a `TOO_DEEP` diagnostic. Later passes that
/// recurse over the tree can rely on this bound, except along the left
/// operands of binary operators, which do not count (see [`Ctx::mk`]).
pub const MAX_DEPTH: u32 = 1000;

/// How many binary operators one chain `a + b + c ...` may have (they do not
/// count as nesting, but the compiler's syntactic pre-pass and dropping the
/// tree still recurse along them). A million terms take about a tenth of
/// the front end's 256 MiB stack; a longer chain gets a `TOO_DEEP`
/// diagnostic.
pub const MAX_CHAIN: u32 = 1_000_000;

/// Parses a whole source file. [`ExprId`]s are handed out densely starting
/// at `first_expr_id`; `File::expr_count` is set to one past the last id
/// used, so a second file can start there.
///
/// A literal out of range (an integer beyond 64 bits, a float beyond `f64`)
/// does not fail the parse on its own: it stays in the tree
/// (`ExprKind::Int(None)`, an infinite `ExprKind::Float`) and the checker
/// reports it along with the file's type errors. When the file has syntax
/// or lexical errors, the literals are reported here with them.
pub fn parse(source: &str, first_expr_id: u32) -> Result<ast::File, Vec<Diagnostic>> {
    let (parsed, next_id) = run(source, None, first_expr_id)?;
    match parsed {
        Parsed::File(items) => Ok(ast::File {
            items,
            expr_count: next_id,
        }),
        Parsed::Sig(decl) => Err(vec![unexpected_signature(decl.span)]),
    }
}

/// Parses a file given as raw bytes, reporting invalid UTF-8 as `LEX`
/// diagnostics at the offending byte offsets.
pub fn parse_bytes(bytes: &[u8], first_expr_id: u32) -> Result<ast::File, Vec<Diagnostic>> {
    match std::str::from_utf8(bytes) {
        Ok(source) => parse(source, first_expr_id),
        Err(_) => Err(utf8_errors(bytes)),
    }
}

/// Parses a native function signature with no body, such as
/// `fn len<T>(xs: [T]) -> int` or `fn print(v: any)`; the result's `body`
/// is `None`.
pub fn parse_native_sig(sig: &str) -> Result<ast::FnDecl, Vec<Diagnostic>> {
    let (parsed, _) = run(sig, Some((0, Tok::NativeSigStart, 0)), 0)?;
    match parsed {
        Parsed::Sig(decl) => Ok(decl),
        Parsed::File(_) => Err(vec![unexpected_signature(Span::new(0, sig.len()))]),
    }
}

/// What the grammar's start symbol produces.
pub(crate) enum Parsed {
    /// The items of a source file.
    File(Vec<ast::Item>),
    /// A native signature.
    Sig(ast::FnDecl),
}

/// A written type with its nesting depth.
pub(crate) type Ty = (TypeExpr, u32);

/// Appends an element of a separated list whose elements may be empty
/// (`a;;b`), skipping an empty one.
pub(crate) fn push_some<T>(mut items: Vec<T>, item: Option<T>) -> Vec<T> {
    items.extend(item);
    items
}

/// Lexes, parses and gathers every diagnostic; `prefix` is a marker token
/// that selects the grammar's entry point. Tokens are lexed as the parser
/// asks for them, so they are never all held at once.
fn run(
    source: &str,
    prefix: Option<lexer::Spanned>,
    first_expr_id: u32,
) -> Result<(Parsed, u32), Vec<Diagnostic>> {
    let ctx = Ctx::new(first_expr_id);
    let mut stream = lexer::Tokens::new(source);
    let tokens = prefix.into_iter().chain(&mut stream).map(Ok::<_, ()>);
    let result = grammar::StartParser::new().parse(&ctx, tokens);
    // A parse that gave up early leaves tokens unread: lex them for their
    // errors.
    stream.by_ref().for_each(drop);
    let (mut errors, aborted) = stream.finish();
    if aborted {
        return Err(errors);
    }
    errors.extend(
        ctx.recovered
            .take()
            .into_iter()
            .map(|error| syntax_error(source, error)),
    );
    let parsed = result
        .map_err(|error| errors.push(syntax_error(source, error)))
        .ok();
    errors.extend(ctx.errors.take());
    match parsed {
        Some(parsed) if errors.is_empty() => Ok((parsed, ctx.next_id.get())),
        _ => {
            // The checker will not run: report the literals out of range
            // in the tree here, with the other errors.
            errors.extend(ctx.literal_errors());
            errors.sort_by_key(|diag| diag.span.start);
            errors.dedup();
            Err(errors)
        }
    }
}

/// The diagnostic for a signature where a file was expected or the reverse
/// (only reachable through a marker token a user cannot write).
fn unexpected_signature(span: Span) -> Diagnostic {
    Diagnostic::new(codes::SYNTAX, "expected a function signature", span, "here")
}

/// One `LEX` diagnostic per invalid UTF-8 sequence (at most 100).
fn utf8_errors(bytes: &[u8]) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() && errors.len() < 100 {
        let Err(error) = std::str::from_utf8(&bytes[offset..]) else {
            break;
        };
        let at = offset + error.valid_up_to();
        let len = error.error_len().unwrap_or(bytes.len() - at).max(1);
        errors.push(Diagnostic::new(
            codes::LEX,
            "invalid UTF-8 in source",
            Span::new(at, at + len),
            "these bytes are not UTF-8",
        ));
        offset = at + len;
    }
    errors
}

/// State shared by the grammar's actions during one parse.
pub(crate) struct Ctx {
    /// The first id of this parse; ids index `shapes` relative to it.
    first_id: u32,
    /// The next [`ExprId`] to hand out.
    next_id: Cell<u32>,
    /// The shape of every expression built so far, by id.
    shapes: RefCell<Vec<Shape>>,
    /// Literal and depth errors found by actions.
    errors: RefCell<Vec<Diagnostic>>,
    /// Syntax errors the grammar recovered from.
    recovered: RefCell<Vec<ParseError<usize, Tok, ()>>>,
    /// Literals out of range in the tree, kept apart because a minus sign
    /// applied directly to `9223372036854775808` makes it valid, and
    /// because they are the checker's to report when the file parses.
    overflow: RefCell<Vec<Overflow>>,
    /// Whether `TOO_DEEP` has been reported (once is enough).
    too_deep_reported: Cell<bool>,
}

/// What the parser keeps of a built expression to bound the tree.
#[derive(Clone, Copy, Default)]
struct Shape {
    /// How deeply it nests (a leaf is 1; see [`Ctx::children_depth`]).
    depth: u32,
    /// How many binary operators its left spine has (`a + b + c` has 2).
    chain: u32,
}

/// A literal out of range: an integer that does not fit in `i64`, or a
/// float too large for `f64`.
struct Overflow {
    /// The literal's node.
    id: ExprId,
    /// Its span.
    span: Span,
    /// Whether it is the integer `2^63`, which fits once negated.
    is_min_magnitude: bool,
    /// Whether it is a float.
    is_float: bool,
}

impl Ctx {
    /// A context handing out ids from `first_id`.
    fn new(first_id: u32) -> Ctx {
        Ctx {
            first_id,
            next_id: Cell::new(first_id),
            shapes: RefCell::new(Vec::new()),
            errors: RefCell::new(Vec::new()),
            recovered: RefCell::new(Vec::new()),
            overflow: RefCell::new(Vec::new()),
            too_deep_reported: Cell::new(false),
        }
    }

    /// The diagnostics of the literals in the tree that are out of range.
    fn literal_errors(&self) -> Vec<Diagnostic> {
        let overflow = self.overflow.take();
        let diagnostic = |overflow: Overflow| match overflow.is_float {
            true => float_too_large(overflow.span),
            false => int_too_large(overflow.span),
        };
        overflow.into_iter().map(diagnostic).collect()
    }

    /// Builds an expression node with a fresh id. A node nested deeper than
    /// [`MAX_DEPTH`], or ending a chain of more than [`MAX_CHAIN`] binary
    /// operators, is reported and replaced by `nil`, dropping its (still
    /// shallow enough) children.
    pub(crate) fn mk(&self, kind: ExprKind, l: usize, r: usize) -> Expr {
        let span = Span::new(l, r);
        let mut shape = Shape {
            depth: 1 + self.children_depth(&kind),
            chain: match &kind {
                ExprKind::Binary(_, lhs, _) => self.shape(lhs).chain + 1,
                _ => 0,
            },
        };
        let mut kind = kind;
        if shape.depth > MAX_DEPTH || shape.chain > MAX_CHAIN {
            let message = if shape.depth > MAX_DEPTH {
                format!("expression nested more than {MAX_DEPTH} levels deep")
            } else {
                format!("more than {MAX_CHAIN} operators in one chain")
            };
            self.too_deep(span, message);
            kind = ExprKind::Nil;
            shape = Shape { depth: 1, chain: 0 };
        }
        let id = self.next_id.get();
        self.next_id.set(id.saturating_add(1));
        self.shapes.borrow_mut().push(shape);
        Expr {
            id: ExprId(id),
            kind,
            span,
        }
    }

    /// Reports nesting beyond [`MAX_DEPTH`] (or a chain beyond
    /// [`MAX_CHAIN`]), once per parse.
    fn too_deep(&self, span: Span, message: String) {
        if self.too_deep_reported.replace(true) {
            return;
        }
        self.errors.borrow_mut().push(
            Diagnostic::new(codes::TOO_DEEP, message, span, "too deeply nested")
                .with_help("split it into smaller pieces with `let` or functions"),
        );
    }

    /// The recorded shape of an already built expression.
    fn shape(&self, expr: &Expr) -> Shape {
        let index = expr.id.0.wrapping_sub(self.first_id) as usize;
        self.shapes.borrow().get(index).copied().unwrap_or_default()
    }

    /// The recorded depth of an already built expression.
    fn depth(&self, expr: &Expr) -> u32 {
        self.shape(expr).depth
    }

    /// The deepest direct child of a node about to be built. Blocks inside
    /// expressions are walked statement by statement; expressions inside
    /// them are looked up, so each statement is walked once per enclosing
    /// lambda, match or block expression.
    fn children_depth(&self, kind: &ExprKind) -> u32 {
        let max = |exprs: &mut dyn Iterator<Item = &Expr>| {
            exprs.map(|expr| self.depth(expr)).max().unwrap_or(0)
        };
        match kind {
            ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Nil
            | ExprKind::Name(_)
            | ExprKind::Yield(None) => 0,
            ExprKind::Str(parts) => max(&mut parts.iter().filter_map(|part| match part {
                StrPart::Expr(expr) => Some(expr),
                StrPart::Lit(_) => None,
            })),
            ExprKind::List(items) => max(&mut items.iter()),
            ExprKind::Map(entries) => {
                max(&mut entries.iter().flat_map(|(key, value)| [key, value]))
            }
            ExprKind::Unary(_, operand)
            | ExprKind::Unwrap(operand)
            | ExprKind::Field(operand, _)
            | ExprKind::Yield(Some(operand))
            | ExprKind::Spawn(operand)
            | ExprKind::Await(operand) => self.depth(operand),
            // The left operand of a binary operator adds no level: a chain
            // `a + b + c + ...` is as deep as its deepest operand, however
            // long (generated code writes sums of thousands of terms). The
            // passes that follow such a chain's left spine do it in a loop.
            ExprKind::Binary(_, lhs, rhs) => self.depth(lhs).saturating_sub(1).max(self.depth(rhs)),
            ExprKind::Index(lhs, rhs) => self.depth(lhs).max(self.depth(rhs)),
            ExprKind::Call(callee, args) => self
                .depth(callee)
                .max(max(&mut args.iter().map(|arg| &arg.value))),
            ExprKind::MethodCall { receiver, args, .. } => self
                .depth(receiver)
                .max(max(&mut args.iter().map(|arg| &arg.value))),
            ExprKind::Lambda(lambda) => match &lambda.body {
                LambdaBody::Expr(body) => self.depth(body),
                LambdaBody::Block(block) => self.block_depth(block),
            },
            ExprKind::Match(scrutinee, arms) => self
                .depth(scrutinee)
                .max(max(&mut arms.iter().map(|arm| &arm.body))),
            ExprKind::Block(block) => self.block_depth(block),
            ExprKind::If(stmt) => self.stmt_depth(stmt),
        }
    }

    /// The deepest expression in a block.
    fn block_depth(&self, block: &Block) -> u32 {
        block
            .stmts
            .iter()
            .map(|stmt| self.stmt_depth(stmt))
            .max()
            .unwrap_or(0)
    }

    /// The deepest expression in a statement. Recursion here follows
    /// blocks (bounded by the lexer's bracket limit), `else if` chains and
    /// one `defer` level (both bounded by the grammar).
    fn stmt_depth(&self, stmt: &Stmt) -> u32 {
        let opt_block =
            |block: &Option<Block>| block.as_ref().map_or(0, |block| self.block_depth(block));
        match &stmt.kind {
            StmtKind::Let { value, .. } | StmtKind::Expr(value) | StmtKind::Throw(value) => {
                self.depth(value)
            }
            StmtKind::Assign { target, value } | StmtKind::CompoundAssign { target, value, .. } => {
                self.depth(target).max(self.depth(value))
            }
            StmtKind::While { cond, body } => self.depth(cond).max(self.block_depth(body)),
            StmtKind::For { iter, body, .. } => {
                let iter_depth = match iter {
                    ForIter::Range { lo, hi, .. } => self.depth(lo).max(self.depth(hi)),
                    ForIter::Expr(iter) => self.depth(iter),
                };
                iter_depth.max(self.block_depth(body))
            }
            StmtKind::Break | StmtKind::Continue | StmtKind::Return(None) => 0,
            StmtKind::Return(Some(value)) => self.depth(value),
            StmtKind::Defer(inner) => self.stmt_depth(inner),
            StmtKind::Try { body, handler, .. } => {
                self.block_depth(body).max(self.block_depth(handler))
            }
            StmtKind::If {
                cond: value,
                then,
                els,
            }
            | StmtKind::IfLet {
                value, then, els, ..
            } => self
                .depth(value)
                .max(self.block_depth(then))
                .max(opt_block(els)),
            StmtKind::Fn(decl) => opt_block(&decl.body),
            StmtKind::Block(block) => self.block_depth(block),
            StmtKind::WhileLet { value, body, .. } => self.depth(value).max(self.block_depth(body)),
            StmtKind::Select(arms) => arms
                .iter()
                .map(|arm| {
                    let op = arm.op.as_ref().map_or(0, |op| self.depth(op));
                    op.max(self.block_depth(&arm.body))
                })
                .max()
                .unwrap_or(0),
        }
    }

    /// Builds a type node of depth `child_depth + 1`, or reports it.
    pub(crate) fn ty(&self, kind: TypeExprKind, l: usize, r: usize, child_depth: u32) -> Ty {
        let span = Span::new(l, r);
        if child_depth >= MAX_DEPTH {
            self.too_deep(
                span,
                format!("type nested more than {MAX_DEPTH} levels deep"),
            );
            return (
                TypeExpr {
                    kind: TypeExprKind::Nil,
                    span,
                },
                1,
            );
        }
        (TypeExpr { kind, span }, child_depth + 1)
    }

    /// Builds `fn(params) -> ret yields Y receives S`.
    pub(crate) fn fn_type(
        &self,
        params: Vec<Ty>,
        (ret, yields, receives): (Option<Ty>, Option<Ty>, Option<Ty>),
        l: usize,
        r: usize,
    ) -> Ty {
        let depth = params
            .iter()
            .chain(&ret)
            .chain(&yields)
            .chain(&receives)
            .map(|ty| ty.1)
            .max()
            .unwrap_or(0);
        let boxed = |ty: Option<Ty>| ty.map(|ty| Box::new(ty.0));
        let kind = TypeExprKind::Fn {
            params: params.into_iter().map(|ty| ty.0).collect(),
            ret: boxed(ret),
            yields: boxed(yields),
            receives: boxed(receives),
        };
        self.ty(kind, l, r, depth)
    }

    /// Builds a lambda from its head (params, return type, head span).
    pub(crate) fn lambda(
        &self,
        (params, ret, span): (Vec<Param>, Option<TypeExpr>, Span),
        body: LambdaBody,
        l: usize,
        r: usize,
    ) -> Expr {
        let lambda = ast::Lambda {
            params,
            ret,
            body,
            span,
        };
        self.mk(ExprKind::Lambda(Box::new(lambda)), l, r)
    }

    /// Builds `lhs op rhs`.
    pub(crate) fn binary(&self, op: BinOp, lhs: Expr, rhs: Expr, l: usize, r: usize) -> Expr {
        self.mk(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), l, r)
    }

    /// Builds `-operand`; a minus written directly before the literal
    /// `9223372036854775808` makes the literal `i64::MIN` instead.
    pub(crate) fn negate(&self, operand: Expr, l: usize, r: usize) -> Expr {
        if let ExprKind::Int(None) = operand.kind {
            let mut overflow = self.overflow.borrow_mut();
            // The literal was built just before its minus, so it is the last
            // overflow recorded, and its span is untouched by parentheses.
            let is_min = overflow.last().is_some_and(|last| {
                last.id == operand.id && last.span == operand.span && last.is_min_magnitude
            });
            if is_min {
                overflow.pop();
                return Expr {
                    id: operand.id,
                    kind: ExprKind::Int(Some(i64::MIN)),
                    span: Span::new(l, r),
                };
            }
        }
        self.mk(ExprKind::Unary(ast::UnaryOp::Neg, Box::new(operand)), l, r)
    }

    /// Builds an integer literal, remembering it when it is out of range.
    pub(crate) fn int(&self, value: u128, l: usize, r: usize) -> Expr {
        let fits = i64::try_from(value).ok();
        let expr = self.mk(ExprKind::Int(fits), l, r);
        if fits.is_none() {
            self.overflow.borrow_mut().push(Overflow {
                id: expr.id,
                span: expr.span,
                is_min_magnitude: value == 1u128 << 63,
                is_float: false,
            });
        }
        expr
    }

    /// Builds a float literal, remembering one that overflowed to infinity.
    pub(crate) fn float(&self, value: f64, l: usize, r: usize) -> Expr {
        let expr = self.mk(ExprKind::Float(value), l, r);
        if !value.is_finite() {
            self.overflow.borrow_mut().push(Overflow {
                id: expr.id,
                span: expr.span,
                is_min_magnitude: false,
                is_float: true,
            });
        }
        expr
    }

    /// Builds a string expression; a string without parts is one empty
    /// literal part.
    pub(crate) fn string(&self, mut parts: Vec<StrPart>, l: usize, r: usize) -> Expr {
        if parts.is_empty() {
            parts.push(StrPart::Lit(String::new()));
        }
        self.mk(ExprKind::Str(parts), l, r)
    }

    /// Builds a match arm's block body.
    pub(crate) fn block_expr(&self, block: Block, l: usize, r: usize) -> Expr {
        self.mk(ExprKind::Block(block), l, r)
    }

    /// An expression statement; an `if` expression there is the `if`
    /// statement itself, whose branches may hold any statements.
    pub(crate) fn expr_stmt(&self, expr: Expr, l: usize, r: usize) -> Stmt {
        match expr.kind {
            ExprKind::If(stmt) => *stmt,
            kind => Stmt {
                kind: StmtKind::Expr(Expr { kind, ..expr }),
                span: Span::new(l, r),
            },
        }
    }

    /// Builds an `if` statement whose `else if` chain below it is `chain`
    /// links long, cutting off chains longer than [`MAX_DEPTH`].
    pub(crate) fn if_stmt(&self, kind: StmtKind, chain: u32, l: usize, r: usize) -> (Stmt, u32) {
        let span = Span::new(l, r);
        if chain >= MAX_DEPTH {
            self.too_deep(
                span,
                format!("`else if` chain nested more than {MAX_DEPTH} levels deep"),
            );
            return (
                Stmt {
                    kind: StmtKind::Break,
                    span,
                },
                1,
            );
        }
        (Stmt { kind, span }, chain + 1)
    }

    /// Records a recovered syntax error; the bad statement becomes a
    /// placeholder (the parse fails anyway).
    pub(crate) fn recover(
        &self,
        recovery: ErrorRecovery<usize, Tok, ()>,
        l: usize,
        r: usize,
    ) -> Stmt {
        self.recovered.borrow_mut().push(recovery.error);
        Stmt {
            kind: StmtKind::Break,
            span: Span::new(l, r),
        }
    }

    /// `import "PATH"` with an optional `as NAME`. `import` and `as` are
    /// contextual keywords: any other word in their place is a syntax error.
    pub(crate) fn import(
        &self,
        keyword: Ident,
        path: String,
        path_span: Span,
        alias: Option<(Ident, Ident)>,
        span: Span,
    ) -> ast::ImportDecl {
        let mut errors = self.errors.borrow_mut();
        if keyword.name != "import" {
            errors.push(Diagnostic::new(
                codes::SYNTAX,
                "unexpected string literal",
                path_span,
                "a name followed by a string",
            ));
        }
        let alias = alias.map(|(word, name)| {
            if word.name != "as" {
                errors.push(Diagnostic::new(
                    codes::SYNTAX,
                    format!("unexpected `{}` after an import's path", word.name),
                    word.span,
                    "expected `as NAME` or the end of the line",
                ));
            }
            name
        });
        ast::ImportDecl {
            path,
            path_span,
            alias,
            span,
        }
    }

    /// `_` is the wildcard; any other name is left for the checker to
    /// resolve as a binding or a unit variant.
    pub(crate) fn name_pattern(&self, name: Ident, l: usize, r: usize) -> Pattern {
        let kind = if name.name == "_" {
            PatternKind::Wildcard
        } else {
            PatternKind::Name(name)
        };
        Pattern {
            kind,
            span: Span::new(l, r),
        }
    }

    /// Builds an integer pattern, `-` included when `negative`.
    pub(crate) fn int_pattern(
        &self,
        magnitude: u128,
        negative: bool,
        l: usize,
        r: usize,
    ) -> Pattern {
        let span = Span::new(l, r);
        let value = if negative {
            i128::try_from(magnitude)
                .ok()
                .and_then(|value| i64::try_from(-value).ok())
        } else {
            i64::try_from(magnitude).ok()
        };
        let value = value.unwrap_or_else(|| {
            self.errors.borrow_mut().push(int_too_large(span));
            0
        });
        Pattern {
            kind: PatternKind::Lit(LitPattern::Int(value)),
            span,
        }
    }

    /// Builds a float pattern.
    pub(crate) fn float_pattern(&self, value: f64, l: usize, r: usize) -> Pattern {
        let span = Span::new(l, r);
        if !value.is_finite() {
            self.errors.borrow_mut().push(float_too_large(span));
        }
        Pattern {
            kind: PatternKind::Lit(LitPattern::Float(value)),
            span,
        }
    }
}

/// The diagnostic for an integer literal outside `i64`.
pub(crate) fn int_too_large(span: Span) -> Diagnostic {
    Diagnostic::new(
        codes::LITERAL,
        "integer literal out of range: it does not fit in 64 bits",
        span,
        "out of range",
    )
    .with_help("integers range from -9223372036854775808 to 9223372036854775807")
}

/// The diagnostic for a float literal outside `f64`.
pub(crate) fn float_too_large(span: Span) -> Diagnostic {
    Diagnostic::new(
        codes::LITERAL,
        "float literal is out of range",
        span,
        "too large for a 64-bit float",
    )
}

/// Converts a lalrpop error into a `SYNTAX` diagnostic. An error at the end
/// of the input always has a message starting "unexpected end of input", so
/// a REPL can tell incomplete input from wrong input.
fn syntax_error(source: &str, error: ParseError<usize, Tok, ()>) -> Diagnostic {
    match error {
        ParseError::UnrecognizedEof { location, expected } => {
            let message = match expected_list(&expected) {
                Some(list) => format!("unexpected end of input, expected {list}"),
                None => "unexpected end of input".to_string(),
            };
            Diagnostic::new(
                codes::SYNTAX,
                message,
                Span::new(location, location),
                "input ends here",
            )
        }
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => {
            let found = describe(source, &tok, l, r);
            let message = match expected_list(&expected) {
                Some(list) => format!("expected {list}, found {found}"),
                None => format!("unexpected {found}"),
            };
            let diagnostic =
                Diagnostic::new(codes::SYNTAX, message, Span::new(l, r), "unexpected here");
            match syntax_hint(&tok) {
                Some(hint) => diagnostic.with_help(hint),
                None => diagnostic,
            }
        }
        ParseError::ExtraToken { token: (l, tok, r) } => {
            let found = describe(source, &tok, l, r);
            Diagnostic::new(
                codes::SYNTAX,
                format!("unexpected {found}"),
                Span::new(l, r),
                "unexpected here",
            )
        }
        ParseError::InvalidToken { location } => Diagnostic::new(
            codes::SYNTAX,
            "invalid token",
            Span::new(location, location),
            "here",
        ),
        ParseError::User { .. } => {
            Diagnostic::new(codes::SYNTAX, "syntax error", Span::default(), "here")
        }
    }
}

/// Advice for the syntax mistakes users of other languages make most.
fn syntax_hint(tok: &Tok) -> Option<&'static str> {
    match tok.to_string().as_str() {
        "`{`" => Some("braces only open blocks: lists are `[1, 2]` and maps are `[\"a\": 1]`"),
        "`<`" | "`<=`" | "`>`" | "`>=`" | "`==`" | "`!=`" => Some(
            "comparisons do not chain: write `a < b && b < c`; and calls take no type arguments: `f(x)`, not `f<int>(x)`",
        ),
        "`.`" => Some(
            "a line cannot start with `.`: the newline before it ended the statement, so end the previous line with the `.` instead",
        ),
        _ => None,
    }
}

/// How a found token is named in a message; a `;` that stands for a
/// newline is called "end of line".
fn describe(source: &str, tok: &Tok, l: usize, r: usize) -> String {
    if *tok == Tok::Semi && source.get(l..r) == Some("\n") {
        return "end of line".to_string();
    }
    tok.to_string()
}

/// Terminals that can start an expression; when most of them are
/// expected, the message says "expression" instead of listing them.
const EXPRESSION_STARTS: &[&str] = &[
    "IntLit",
    "FloatLit",
    "StrOpen",
    "Ident",
    "\"(\"",
    "\"[\"",
    "\"-\"",
    "\"!\"",
    "\"await\"",
    "\"fn\"",
    "\"match\"",
    "\"if\"",
    "\"true\"",
    "\"false\"",
    "\"nil\"",
    "\"yield\"",
    "\"spawn\"",
];

/// Terminals that start a statement but not an expression.
const STATEMENT_STARTS: &[&str] = &[
    "\"let\"",
    "\"while\"",
    "\"for\"",
    "\"return\"",
    "\"break\"",
    "\"continue\"",
    "\"defer\"",
    "\"throw\"",
    "\"try\"",
    "\"select\"",
    "\"struct\"",
    "\"enum\"",
];

/// Terminals that continue an expression: binary operators and postfix forms.
const OPERATORS: &[&str] = &[
    "\"+\"", "\"-\"", "\"*\"", "\"/\"", "\"%\"", "\"==\"", "\"!=\"", "\"<\"", "\"<=\"", "\">\"",
    "\">=\"", "\"&&\"", "\"||\"", "\"??\"", "\".\"", "\"[\"", "\"(\"", "\"!\"", "\"=\"", "\"+=\"",
    "\"-=\"", "\"*=\"", "\"/=\"", "\"%=\"",
];

/// A short human list of the expected terminals: "`)` or `,`",
/// "expression", ...; `None` when nothing useful can be said.
fn expected_list(expected: &[String]) -> Option<String> {
    let has = |name: &str| expected.iter().any(|item| item == name);
    let mut words = Vec::new();
    let mut skip: Vec<&str> = Vec::new();
    if has("\"let\"") && has("\"while\"") {
        words.push("statement".to_string());
        skip.extend(STATEMENT_STARTS);
        skip.extend(EXPRESSION_STARTS);
        skip.push("\";\"");
    } else if has("IntLit") && has("Ident") && has("\"(\"") {
        words.push("expression".to_string());
        skip.extend(EXPRESSION_STARTS);
    }
    // A long list is mostly the operators that could continue an
    // expression; leave them out so the tokens that close it stand out.
    if expected.len() > 6 {
        skip.extend(OPERATORS);
    }
    for item in expected {
        if !skip.contains(&item.as_str()) {
            words.extend(human_terminal(item));
        }
    }
    if words.is_empty() && expected.len() > 6 {
        words.push("operator".to_string());
    }
    match words.len() {
        0 => None,
        1 => Some(words.remove(0)),
        len if len <= 6 => {
            let last = words.pop().unwrap_or_default();
            Some(format!("{} or {last}", words.join(", ")))
        }
        _ => Some(format!("one of {}, ...", words[..6].join(", "))),
    }
}

/// A terminal's name as lalrpop reports it, in human form.
fn human_terminal(name: &str) -> Option<String> {
    if name == "\";\"" {
        return Some("`;` or newline".to_string());
    }
    if let Some(symbol) = name
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        return Some(format!("`{}`", symbol.replace("\\\"", "\"")));
    }
    let text = match name {
        "Ident" => "identifier",
        "IntLit" => "integer",
        "FloatLit" => "float",
        "StrOpen" => "string",
        "StrText" => "string text",
        "InterpOpen" => "`${`",
        "InterpClose" => "`}`",
        "StrClose" => "`\"`",
        _ => return None,
    };
    Some(text.to_string())
}
