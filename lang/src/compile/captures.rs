//! A syntactic pre-pass over a function body: which variables closures
//! capture, and which of those are ever assigned.
//!
//! A captured variable that is assigned anywhere (in the function or in a
//! closure) lives in a cell, so every closure shares it by reference; one
//! that is never assigned is copied into the closure, which is cheaper and
//! behaves the same. The pass goes by name, so shadowing can only make it
//! choose a cell where a copy would do, never the reverse.

use std::collections::HashSet;

use crate::ast::{
    Block, Expr, ExprKind, File, ForIter, Item, LambdaBody, Param, Stmt, StmtKind, StrPart,
};

/// Names a closure may capture by reference in a function with these
/// statements.
pub(super) fn cell_names_in_stmts<'a>(
    stmts: impl IntoIterator<Item = &'a Stmt>,
) -> HashSet<String> {
    let mut walker = Walker::default();
    for stmt in stmts {
        walker.stmt(stmt);
    }
    walker.cells()
}

/// [`cell_names_in_stmts`] for a function's parameters and body.
pub(super) fn cell_names_in_fn(_params: &[Param], body: &Block) -> HashSet<String> {
    cell_names_in_stmts(&body.stmts)
}

/// [`cell_names_in_stmts`] for a lambda's body.
pub(super) fn cell_names_in_lambda(body: &LambdaBody) -> HashSet<String> {
    let mut walker = Walker::default();
    match body {
        LambdaBody::Expr(expr) => walker.expr(expr),
        LambdaBody::Block(block) => walker.block(block),
    }
    walker.cells()
}

/// Every name used inside the file's top-level functions: the top-level
/// `let`s among them must be globals rather than locals of the main body.
pub(super) fn names_used_in_functions(file: &File) -> HashSet<String> {
    let mut walker = Walker {
        nested: 1,
        ..Walker::default()
    };
    for item in &file.items {
        if let Item::Fn(decl) = item {
            if let Some(body) = &decl.body {
                walker.block(body);
            }
        }
    }
    walker.nested_refs
}

#[derive(Default)]
struct Walker {
    /// How many closures deep the walk is.
    nested: u32,
    nested_refs: HashSet<String>,
    assigned: HashSet<String>,
}

impl Walker {
    fn cells(self) -> HashSet<String> {
        self.nested_refs
            .intersection(&self.assigned)
            .cloned()
            .collect()
    }

    fn block(&mut self, block: &Block) {
        block.stmts.iter().for_each(|stmt| self.stmt(stmt));
    }

    fn nested<T>(&mut self, body: impl FnOnce(&mut Walker) -> T) -> T {
        self.nested += 1;
        let result = body(self);
        self.nested -= 1;
        result
    }

    fn assign_target(&mut self, target: &Expr) {
        if let ExprKind::Name(name) = &target.kind {
            self.assigned.insert(name.name.clone());
        }
        self.expr(target);
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match &stmt.kind {
            StmtKind::Let { value, .. } | StmtKind::Expr(value) | StmtKind::Throw(value) => {
                self.expr(value)
            }
            StmtKind::Assign { target, value } | StmtKind::CompoundAssign { target, value, .. } => {
                self.assign_target(target);
                self.expr(value);
            }
            StmtKind::While { cond, body } => {
                self.expr(cond);
                self.block(body);
            }
            StmtKind::For { iter, body, .. } => {
                match iter {
                    ForIter::Range { lo, hi, .. } => {
                        self.expr(lo);
                        self.expr(hi);
                    }
                    ForIter::Expr(expr) => self.expr(expr),
                }
                self.block(body);
            }
            StmtKind::Break | StmtKind::Continue => {}
            StmtKind::Return(value) => value.iter().for_each(|v| self.expr(v)),
            StmtKind::Defer(inner) => self.nested(|w| w.stmt(inner)),
            StmtKind::Try { body, handler, .. } => {
                self.block(body);
                self.block(handler);
            }
            StmtKind::If { cond, then, els } => {
                self.expr(cond);
                self.block(then);
                els.iter().for_each(|b| self.block(b));
            }
            StmtKind::IfLet {
                value, then, els, ..
            } => {
                self.expr(value);
                self.block(then);
                els.iter().for_each(|b| self.block(b));
            }
            StmtKind::Block(block) => self.block(block),
            StmtKind::WhileLet { value, body, .. } => {
                self.expr(value);
                self.block(body);
            }
            StmtKind::Select(arms) => {
                for arm in arms {
                    arm.op.iter().for_each(|op| self.expr(op));
                    self.block(&arm.body);
                }
            }
            StmtKind::Fn(decl) => {
                self.assigned.insert(decl.name.name.clone());
                if let Some(body) = &decl.body {
                    self.nested(|w| w.block(body));
                }
            }
        }
    }

    fn expr(&mut self, expr: &Expr) {
        match &expr.kind {
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::Nil => {}
            ExprKind::Str(parts) => {
                for part in parts {
                    if let StrPart::Expr(inner) = part {
                        self.expr(inner);
                    }
                }
            }
            ExprKind::Name(name) => {
                if self.nested > 0 {
                    self.nested_refs.insert(name.name.clone());
                }
            }
            ExprKind::List(items) => items.iter().for_each(|e| self.expr(e)),
            ExprKind::Map(entries) => entries.iter().for_each(|(k, v)| {
                self.expr(k);
                self.expr(v);
            }),
            ExprKind::Unary(_, inner)
            | ExprKind::Unwrap(inner)
            | ExprKind::Field(inner, _)
            | ExprKind::Spawn(inner)
            | ExprKind::Await(inner) => self.expr(inner),
            ExprKind::Binary(_, lhs, rhs) | ExprKind::Index(lhs, rhs) => {
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Call(callee, args) => {
                self.expr(callee);
                args.iter().for_each(|a| self.expr(&a.value));
            }
            ExprKind::MethodCall { receiver, args, .. } => {
                self.expr(receiver);
                args.iter().for_each(|a| self.expr(&a.value));
            }
            ExprKind::Lambda(lambda) => self.nested(|w| match &lambda.body {
                LambdaBody::Expr(body) => w.expr(body),
                LambdaBody::Block(body) => w.block(body),
            }),
            ExprKind::Match(scrutinee, arms) => {
                self.expr(scrutinee);
                arms.iter().for_each(|arm| self.expr(&arm.body));
            }
            ExprKind::Yield(value) => value.iter().for_each(|v| self.expr(v)),
            ExprKind::Block(block) => self.block(block),
            ExprKind::If(stmt) => self.stmt(stmt),
        }
    }
}
