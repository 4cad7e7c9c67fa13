//! The abstract syntax tree the parser produces and the checker consumes.
//!
//! Every node that can be the subject of a diagnostic carries a [`Span`] of
//! byte offsets into its source file. Expressions carry an [`ExprId`] so later
//! passes can attach facts (types, resolutions) in side tables instead of
//! mutating the tree.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A half-open range of byte offsets `start..end` in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// First byte of the node.
    pub start: u32,
    /// One past the last byte of the node.
    pub end: u32,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The span as a `usize` range, for slicing source text.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// An identifier with its span.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ident {
    /// The identifier's text.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Identity of one expression node within a file, dense from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExprId(pub u32);

/// A whole source file: items and statements in source order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct File {
    /// Top-level items and statements, in order.
    pub items: Vec<Item>,
    /// Number of [`ExprId`]s handed out while parsing this file.
    pub expr_count: u32,
}

/// A top-level item, or a statement run as part of the script's main body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Item {
    /// `fn name<T>(params) -> R { body }`.
    Fn(FnDecl),
    /// `struct Name<T> { field: Type, ... }`.
    Struct(StructDecl),
    /// `enum Name<T> { Variant(Type, ...), ... }`.
    Enum(EnumDecl),
    /// A statement at the top level (a top-level `let` declares a global).
    Stmt(Stmt),
    /// `import "PATH"` or `import "PATH" as NAME` (LANGUAGE.md §11).
    Import(ImportDecl),
}

/// `import "PATH"` or `import "PATH" as NAME`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportDecl {
    /// The path as written, relative to the importing file.
    pub path: String,
    /// Where the path's string literal is written.
    pub path_span: Span,
    /// The name after `as`: the imported names are reached as `NAME.f`.
    pub alias: Option<Ident>,
    /// The whole import.
    pub span: Span,
}

/// A named function declaration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FnDecl {
    /// The function's name.
    pub name: Ident,
    /// Generic type parameters, `<T, U>`.
    pub generics: Vec<Ident>,
    /// Parameters; their types are always written.
    pub params: Vec<Param>,
    /// The written return type; `None` means `nil`.
    pub ret: Option<TypeExpr>,
    /// The body. `None` only for a native signature (`fn len(s: str) -> int`
    /// parsed by [`crate::parse_native_sig`]).
    pub body: Option<Block>,
    /// From `fn` to the end of the signature (not the body).
    pub span: Span,
}

/// One parameter of a function or lambda.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Param {
    /// The parameter's name.
    pub name: Ident,
    /// Its type; `None` only in lambdas, where it is inferred.
    pub ty: Option<TypeExpr>,
}

/// `struct Name<T> { fields }`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StructDecl {
    /// The struct's name.
    pub name: Ident,
    /// Generic type parameters.
    pub generics: Vec<Ident>,
    /// Fields in declaration order (which is also their runtime order).
    pub fields: Vec<FieldDecl>,
    /// The whole declaration.
    pub span: Span,
}

/// One field of a struct declaration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FieldDecl {
    /// The field's name.
    pub name: Ident,
    /// The field's type.
    pub ty: TypeExpr,
    /// `= value`: what a named construction that leaves the field out
    /// gives it (the checker accepts only a literal, `nil`, `[]` or `[:]`).
    pub default: Option<Expr>,
}

/// `enum Name<T> { Variants }`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnumDecl {
    /// The enum's name.
    pub name: Ident,
    /// Generic type parameters.
    pub generics: Vec<Ident>,
    /// Variants in declaration order.
    pub variants: Vec<VariantDecl>,
    /// The whole declaration.
    pub span: Span,
}

/// One variant: `Circle(float)` or `Empty`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VariantDecl {
    /// The variant's name.
    pub name: Ident,
    /// Payload types, empty for a unit variant.
    pub fields: Vec<TypeExpr>,
}

/// A type as written in source.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TypeExpr {
    /// What kind of type.
    pub kind: TypeExprKind,
    /// Where it is written.
    pub span: Span,
}

/// The shapes a written type can take.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TypeExprKind {
    /// A name with optional arguments: `int`, `str`, `Point`, `Box<int>`,
    /// `Coro<int, str>`, `Task<T>`, `T`.
    Named(Ident, Vec<TypeExpr>),
    /// `nil`.
    Nil,
    /// `[T]`.
    List(Box<TypeExpr>),
    /// `[K: V]`.
    Map(Box<TypeExpr>, Box<TypeExpr>),
    /// `T?`.
    Optional(Box<TypeExpr>),
    /// `fn(A, B) -> R yields Y receives S`; `ret` `None` means `nil`.
    Fn {
        /// Parameter types.
        params: Vec<TypeExpr>,
        /// Return type, `None` for `nil`.
        ret: Option<Box<TypeExpr>>,
        /// `yields Y`.
        yields: Option<Box<TypeExpr>>,
        /// `receives S`.
        receives: Option<Box<TypeExpr>>,
    },
}

/// A `{ ... }` block of statements.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Block {
    /// The statements in order.
    pub stmts: Vec<Stmt>,
    /// From `{` to `}`.
    pub span: Span,
}

/// A statement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stmt {
    /// What kind of statement.
    pub kind: StmtKind,
    /// The whole statement.
    pub span: Span,
}

/// The statements of LANGUAGE.md §3.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum StmtKind {
    /// `let name: T = value`.
    Let {
        /// The variable.
        name: Ident,
        /// The written type, if any.
        ty: Option<TypeExpr>,
        /// The initializer (always present).
        value: Expr,
    },
    /// `target = value`; the target is parsed as an expression and checked to
    /// be a place (variable, field or index) later.
    Assign {
        /// The place assigned.
        target: Expr,
        /// The value.
        value: Expr,
    },
    /// `target op= value` for `+= -= *= /= %=`.
    CompoundAssign {
        /// The place assigned.
        target: Expr,
        /// The arithmetic operator (`Add`, `Sub`, `Mul`, `Div`, `Rem`).
        op: BinOp,
        /// The right-hand side.
        value: Expr,
    },
    /// An expression evaluated for its effect.
    Expr(Expr),
    /// `while cond { body }`.
    While {
        /// The condition.
        cond: Expr,
        /// The loop body.
        body: Block,
    },
    /// `for a in iter { }` or `for a, b in iter { }`.
    For {
        /// First binding (the element, the index, the key).
        first: Ident,
        /// Second binding (`for i, x in xs`, `for k, v in m`).
        second: Option<Ident>,
        /// What is iterated.
        iter: ForIter,
        /// The loop body.
        body: Block,
    },
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `return` or `return value`.
    Return(Option<Expr>),
    /// `defer stmt` or `defer { block }` (a block is wrapped as a
    /// [`StmtKind::Block`]).
    Defer(Box<Stmt>),
    /// `throw value`.
    Throw(Expr),
    /// `try { } catch e { }`.
    Try {
        /// The protected block.
        body: Block,
        /// The name bound to the caught `Error`.
        binding: Ident,
        /// The handler.
        handler: Block,
    },
    /// `if cond { } else { }`.
    If {
        /// The condition.
        cond: Expr,
        /// The then-block.
        then: Block,
        /// `else { }` or `else if ...` (as a block holding one `If`).
        els: Option<Block>,
    },
    /// `if let name = value { } else { }`.
    IfLet {
        /// The name bound to the non-nil value.
        name: Ident,
        /// The optional value.
        value: Expr,
        /// Runs when the value is not nil.
        then: Block,
        /// Runs when it is nil.
        els: Option<Block>,
    },
    /// A named function declared inside a block: a closure bound to a local
    /// variable, visible from its own body (so it may recurse).
    Fn(Box<FnDecl>),
    /// A nested block `{ ... }` used as a statement (only produced for the
    /// body of `defer { }`).
    Block(Block),
    /// `while let name = value { }`: loops while the value is not nil.
    WhileLet {
        /// The name bound to the non-nil value in each round.
        name: Ident,
        /// The optional value, evaluated before each round.
        value: Expr,
        /// The loop body.
        body: Block,
    },
    /// `select { case => body ... }` (LANGUAGE.md §10).
    Select(Vec<SelectArm>),
}

/// One case of a `select` and what runs when it is taken.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SelectArm {
    /// `v` in `v = ch.recv()` or `v = await t`.
    pub binding: Option<Ident>,
    /// The operation (`ch.recv()`, `ch.send(x)`, `await t`, `after(ms)`);
    /// `None` for `else`.
    pub op: Option<Expr>,
    /// What runs when the case is taken.
    pub body: Block,
    /// The whole case.
    pub span: Span,
}

/// What a `for` loop iterates.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForIter {
    /// `lo..hi` or `lo..=hi` (ranges exist only here).
    Range {
        /// Lower bound, inclusive.
        lo: Expr,
        /// Upper bound.
        hi: Expr,
        /// `..=` rather than `..`.
        inclusive: bool,
    },
    /// A list, map or coroutine.
    Expr(Expr),
}

/// An expression.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Expr {
    /// This node's identity, for side tables.
    pub id: ExprId,
    /// What kind of expression.
    pub kind: ExprKind,
    /// The whole expression.
    pub span: Span,
}

/// One piece of an interpolated string.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum StrPart {
    /// Literal text, escapes already decoded.
    Lit(String),
    /// `${expr}`.
    Expr(Expr),
}

/// The expressions of LANGUAGE.md §3.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ExprKind {
    /// An integer literal; `None` for one that does not fit in 64 bits. The
    /// parser keeps such a literal in the tree so the checker reports it
    /// together with the file's other errors (one mistake in a literal does
    /// not hide the rest).
    Int(Option<i64>),
    /// A float literal; infinite for one too large for a 64-bit float (no
    /// literal spells infinity), which the checker reports.
    Float(f64),
    /// A string literal; a single `Lit` part when there is no interpolation.
    Str(Vec<StrPart>),
    /// `true` or `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// A name: a variable, function, struct (as constructor) or enum.
    Name(Ident),
    /// `[a, b, c]`.
    List(Vec<Expr>),
    /// `[k: v, ...]`; `[:]` is an empty map.
    Map(Vec<(Expr, Expr)>),
    /// `op operand`.
    Unary(UnaryOp, Box<Expr>),
    /// `lhs op rhs`, including `&&`, `||` and `??`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `x!`.
    Unwrap(Box<Expr>),
    /// `callee(args)`; also struct construction `Point(1.0, 2.0)` and
    /// variant construction `Shape.Rect(1.0, 2.0)`.
    Call(Box<Expr>, Vec<Arg>),
    /// `receiver.method(args)`: method-call sugar (or a variant
    /// constructor `Enum.Variant(args)`, or a call of a function-typed field).
    MethodCall {
        /// The value before the dot.
        receiver: Box<Expr>,
        /// The name after the dot.
        method: Ident,
        /// The arguments.
        args: Vec<Arg>,
    },
    /// `obj.field` (or a unit variant `Enum.Variant`).
    Field(Box<Expr>, Ident),
    /// `obj[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// `fn(params) -> R { body }` or `fn(params) => expr`.
    Lambda(Box<Lambda>),
    /// `match scrutinee { arms }`.
    Match(Box<Expr>, Vec<MatchArm>),
    /// `yield value` (`yield` alone yields `nil`).
    Yield(Option<Box<Expr>>),
    /// `spawn call`.
    Spawn(Box<Expr>),
    /// `await task`.
    Await(Box<Expr>),
    /// A block used as an expression (a match arm body `=> { ... }`), typed
    /// `nil`.
    Block(Block),
    /// `if c { a } else { b }` (or `if let`) in expression position: the
    /// statement ([`StmtKind::If`] or [`StmtKind::IfLet`]) whose branches
    /// each hold one expression. At the start of a statement the parser
    /// unwraps it into the statement itself.
    If(Box<Stmt>),
}

/// One argument of a call: positional `x` or named `x: 1.0`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Arg {
    /// The label for named arguments (struct construction).
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
}

/// A lambda expression.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lambda {
    /// Parameters; types may be left out.
    pub params: Vec<Param>,
    /// Written return type.
    pub ret: Option<TypeExpr>,
    /// The body.
    pub body: LambdaBody,
    /// From `fn` to the end of the parameter list and return type.
    pub span: Span,
}

/// A lambda's body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LambdaBody {
    /// `=> expr`: the value of `expr` is returned.
    Expr(Expr),
    /// `{ stmts }`.
    Block(Block),
}

/// One arm of a `match`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatchArm {
    /// Alternatives separated by `|`; at least one.
    pub patterns: Vec<Pattern>,
    /// The arm's value.
    pub body: Expr,
    /// The whole arm.
    pub span: Span,
}

/// A pattern.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pattern {
    /// What kind of pattern.
    pub kind: PatternKind,
    /// Where it is written.
    pub span: Span,
}

/// The patterns of LANGUAGE.md §3.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PatternKind {
    /// `_`.
    Wildcard,
    /// A lowercase-or-any name that is not a known variant binds the value.
    /// The checker decides whether a bare name is a binding or a unit variant.
    Name(Ident),
    /// `42`, `-1`, `"text"`, `true`, `3.5`.
    Lit(LitPattern),
    /// `nil`.
    Nil,
    /// `Variant(p, ...)` or `Enum.Variant(p, ...)` (`enum_name` set).
    Variant {
        /// `Shape` in `Shape.Circle(r)`.
        enum_name: Option<Ident>,
        /// The variant name.
        variant: Ident,
        /// Sub-patterns; empty for a unit variant written with parentheses
        /// omitted.
        args: Vec<Pattern>,
    },
}

/// A literal in a pattern.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LitPattern {
    /// An integer (negative literals allowed).
    Int(i64),
    /// A float.
    Float(f64),
    /// A string without interpolation.
    Str(String),
    /// A boolean.
    Bool(bool),
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `!x`.
    Not,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `&&`.
    And,
    /// `||`.
    Or,
    /// `??`.
    Coalesce,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Coalesce => "??",
        }
    }
}
