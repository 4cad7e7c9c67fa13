//! Literals hoisted out of loops: a `true`, a float or a plain string that a
//! loop's body uses as an operand (`xs[i] = true`, `x * 0.5`, `"k" + s`) is
//! loaded into a register once, before the loop, and every use in the
//! body reads that register instead of loading the literal again on each
//! pass.
//!
//! The registers are allocated before the loop and freed after it, like
//! locals no name can reach: nothing writes them, so `Compiler::expr` may
//! hand one out as it hands out a local's register. Nested loops hoist what
//! the outer loops have not; a function's body (a lambda in the loop) is
//! compiled by its own builder and hoists nothing from the loop around it.

use spool_vm::{Op, Reg};

use super::{Compiler, ConstKey};
use crate::ast::{BinOp, Block, Expr, ExprKind, ForIter, Span, Stmt, StmtKind, StrPart};
use crate::types::Type;

/// At most this many literals are hoisted for one loop (each takes a
/// register for the whole loop).
const MAX_PER_LOOP: usize = 4;

/// A literal that can be hoisted.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Literal {
    Bool(bool),
    /// A finite float, by its bits.
    Float(u64),
    /// A string without interpolation.
    Str(String),
}

impl Literal {
    /// The literal `expr` is, if it is one that can be hoisted.
    fn of(expr: &Expr) -> Option<Literal> {
        match &expr.kind {
            ExprKind::Bool(value) => Some(Literal::Bool(*value)),
            ExprKind::Float(value) if value.is_finite() => Some(Literal::Float(value.to_bits())),
            ExprKind::Str(parts) => match parts.as_slice() {
                [StrPart::Lit(text)] => Some(Literal::Str(text.clone())),
                _ => None,
            },
            _ => None,
        }
    }

    fn ty(&self) -> Type {
        match self {
            Literal::Bool(_) => Type::Bool,
            Literal::Float(_) => Type::Float,
            Literal::Str(_) => Type::Str,
        }
    }
}

impl Compiler {
    /// Loads the literals `body` (and a loop's condition) uses as operands
    /// into registers before the loop; returns the register mark and the
    /// number of literals to pass to [`Compiler::unhoist`] after it.
    pub(super) fn hoist(&mut self, cond: Option<&Expr>, body: &Block, span: Span) -> (u16, usize) {
        let mut found = Vec::new();
        if let Some(cond) = cond {
            operands_in_expr(cond, &mut found);
        }
        operands_in_block(body, &mut found);
        let mark = self.mark();
        let mut count = 0;
        for literal in found {
            if count == MAX_PER_LOOP {
                break;
            }
            if self.b().hoisted.iter().any(|(known, _)| *known == literal) {
                continue;
            }
            let reg = self.alloc();
            let op = match &literal {
                Literal::Bool(value) => Op::LoadBool {
                    dst: reg,
                    value: *value,
                },
                Literal::Float(bits) => Op::LoadConst {
                    dst: reg,
                    idx: self.constant(ConstKey::Float(*bits)),
                },
                Literal::Str(text) => Op::LoadConst {
                    dst: reg,
                    idx: self.constant(ConstKey::Str(text.clone())),
                },
            };
            self.emit(op, span);
            self.b().hoisted.push((literal, reg));
            count += 1;
        }
        (mark, count)
    }

    /// Ends what [`Compiler::hoist`] began, after the loop.
    pub(super) fn unhoist(&mut self, (mark, count): (u16, usize)) {
        let hoisted = &mut self.b().hoisted;
        hoisted.truncate(hoisted.len() - count);
        self.free_to(mark);
    }

    /// The register and type of `expr` when it is a literal hoisted by a
    /// loop being compiled.
    pub(super) fn hoisted(&mut self, expr: &Expr) -> Option<(Type, Reg)> {
        if self.b().hoisted.is_empty() {
            return None;
        }
        let literal = Literal::of(expr)?;
        let (_, reg) = self
            .b()
            .hoisted
            .iter()
            .find(|(known, _)| *known == literal)?;
        Some((literal.ty(), *reg))
    }
}

/// Adds each hoistable literal `block` uses as an operand, once, in order.
fn operands_in_block(block: &Block, found: &mut Vec<Literal>) {
    for stmt in &block.stmts {
        operands_in_stmt(stmt, found);
    }
}

fn operands_in_stmt(stmt: &Stmt, found: &mut Vec<Literal>) {
    let exprs = |exprs: &[&Expr], found: &mut Vec<Literal>| {
        for expr in exprs {
            operands_in_expr(expr, found);
        }
    };
    match &stmt.kind {
        StmtKind::Let { value, .. } | StmtKind::Throw(value) => exprs(&[value], found),
        StmtKind::Expr(value) => {
            // `xs.push(x)` as a statement may read `x` from any register
            // (`Compiler::list_push_statement`).
            if let ExprKind::MethodCall { method, args, .. } = &value.kind {
                if let ([arg], "push") = (args.as_slice(), method.name.as_str()) {
                    operand(&arg.value, found);
                }
            }
            exprs(&[value], found)
        }
        StmtKind::Return(value) => {
            if let Some(value) = value {
                operands_in_expr(value, found);
            }
        }
        // The value of an assignment to an element or a field is read from
        // a register; one to a variable is loaded straight into it.
        StmtKind::Assign { target, value } => {
            if matches!(target.kind, ExprKind::Index(..) | ExprKind::Field(..)) {
                operand(value, found);
            }
            exprs(&[target, value], found);
        }
        StmtKind::CompoundAssign { target, value, .. } => {
            operand(value, found);
            exprs(&[target, value], found);
        }
        StmtKind::While { cond, body } => {
            exprs(&[cond], found);
            operands_in_block(body, found);
        }
        StmtKind::For { iter, body, .. } => {
            match iter {
                ForIter::Range { lo, hi, .. } => exprs(&[lo, hi], found),
                ForIter::Expr(iter) => exprs(&[iter], found),
            }
            operands_in_block(body, found);
        }
        StmtKind::If { cond, then, els } => {
            exprs(&[cond], found);
            operands_in_block(then, found);
            if let Some(els) = els {
                operands_in_block(els, found);
            }
        }
        StmtKind::IfLet {
            value, then, els, ..
        } => {
            exprs(&[value], found);
            operands_in_block(then, found);
            if let Some(els) = els {
                operands_in_block(els, found);
            }
        }
        StmtKind::WhileLet { value, body, .. } => {
            exprs(&[value], found);
            operands_in_block(body, found);
        }
        StmtKind::Try { body, handler, .. } => {
            operands_in_block(body, found);
            operands_in_block(handler, found);
        }
        StmtKind::Block(block) => operands_in_block(block, found),
        StmtKind::Defer(inner) => operands_in_stmt(inner, found),
        StmtKind::Select(arms) => {
            for arm in arms {
                if let Some(op) = &arm.op {
                    operands_in_expr(op, found);
                }
                operands_in_block(&arm.body, found);
            }
        }
        StmtKind::Break | StmtKind::Continue | StmtKind::Fn(_) => {}
    }
}

/// Records `expr` if it is a hoistable literal not yet found.
fn operand(expr: &Expr, found: &mut Vec<Literal>) {
    if let Some(literal) = Literal::of(expr) {
        if !found.contains(&literal) {
            found.push(literal);
        }
    }
}

/// Adds the literals `expr` uses as operands of an arithmetic, comparison
/// or string operator (the operands that are read from a register).
fn operands_in_expr(expr: &Expr, found: &mut Vec<Literal>) {
    match &expr.kind {
        ExprKind::Binary(op, left, right) => {
            if !matches!(op, BinOp::And | BinOp::Or | BinOp::Coalesce) {
                operand(left, found);
                operand(right, found);
            }
            operands_in_expr(left, found);
            operands_in_expr(right, found);
        }
        ExprKind::Unary(_, inner)
        | ExprKind::Unwrap(inner)
        | ExprKind::Field(inner, _)
        | ExprKind::Await(inner)
        | ExprKind::Spawn(inner) => operands_in_expr(inner, found),
        ExprKind::Index(object, index) => {
            operands_in_expr(object, found);
            operands_in_expr(index, found);
        }
        ExprKind::Call(callee, args) => {
            operands_in_expr(callee, found);
            for arg in args {
                operands_in_expr(&arg.value, found);
            }
        }
        ExprKind::MethodCall { receiver, args, .. } => {
            operands_in_expr(receiver, found);
            for arg in args {
                operands_in_expr(&arg.value, found);
            }
        }
        ExprKind::List(items) => items.iter().for_each(|item| operands_in_expr(item, found)),
        ExprKind::Map(entries) => {
            for (key, value) in entries {
                operands_in_expr(key, found);
                operands_in_expr(value, found);
            }
        }
        ExprKind::Str(parts) => {
            for part in parts {
                if let StrPart::Expr(inner) = part {
                    operands_in_expr(inner, found);
                }
            }
        }
        ExprKind::Match(scrutinee, arms) => {
            operands_in_expr(scrutinee, found);
            for arm in arms {
                operands_in_expr(&arm.body, found);
            }
        }
        ExprKind::Block(block) => operands_in_block(block, found),
        ExprKind::If(stmt) => operands_in_stmt(stmt, found),
        ExprKind::Yield(value) => {
            if let Some(value) = value {
                operands_in_expr(value, found);
            }
        }
        // A lambda's body belongs to another function.
        ExprKind::Lambda(_)
        | ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Nil
        | ExprKind::Name(_) => {}
    }
}
