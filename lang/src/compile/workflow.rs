//! The workflow constructs of LANGUAGE.md §10 that are syntax: `if` as an
//! expression, `while let`, `for v in ch` and `select`.
//!
//! A `select` compiles to one call of the native `__select` with a flat
//! window of registers: each case's kind (`spool_vm::select::kind`) and
//! its operands, evaluated once, in source order, before waiting. The
//! native gives `[index, value]`; a chain of compare-and-branch picks the
//! case's body and binds its value. Waiting, waking and cancelling are the
//! VM's (`vm/src/tasks/select.rs`), so a run saved in a `select` resumes
//! waiting there.

use spool_vm::select::kind;
use spool_vm::{Op, Pc, Reg};

use super::Compiler;
use crate::ast::{Block, Expr, ExprKind, Ident, SelectArm, Span, Stmt, StmtKind};
use crate::diag::{codes, Diagnostic};
use crate::types::Type;

/// A `select` case once its operation is recognized.
enum CaseOp<'a> {
    /// `ch.recv()`.
    Recv(&'a Expr),
    /// `ch.send(value)`.
    Send(&'a Expr, &'a Expr),
    /// `await task`.
    Await(&'a Expr),
    /// `after(ms)`.
    After(&'a Expr),
    /// `else`.
    Else,
}

impl CaseOp<'_> {
    /// Registers the case takes in the native's window: its kind and
    /// operands.
    fn width(&self) -> usize {
        match self {
            CaseOp::Send(..) => 3,
            CaseOp::Else => 1,
            _ => 2,
        }
    }
}

impl Compiler {
    /// `if c { a } else { b }` as an expression: each branch is one
    /// expression (or a `return`, `throw`, `break` or `continue`), both of
    /// one type; `else` is required.
    pub(super) fn if_expr(&mut self, stmt: &Stmt, dst: Reg, expected: Option<&Type>) -> Type {
        let result = expected.cloned().unwrap_or_else(|| self.unifier.fresh());
        let mut saw_value = false;
        self.if_expr_into(stmt, dst, &result, &mut saw_value);
        if saw_value {
            result
        } else {
            Type::Never
        }
    }

    fn if_expr_into(&mut self, stmt: &Stmt, dst: Reg, result: &Type, saw_value: &mut bool) {
        let (then, els) = match &stmt.kind {
            StmtKind::If { cond, then, els } => {
                let to_else = self.jumps_if_false(cond);
                self.push_scope();
                self.branch_value(then, dst, result, saw_value);
                self.pop_scope();
                (to_else, els)
            }
            StmtKind::IfLet {
                name,
                value,
                then,
                els,
            } => {
                let (ty, src) = self.expr(value, None);
                let inner = self.optional_inner(&ty, "`if let`", value.span, "never nil");
                let to_else = self.emit(Op::JumpIfNil { src, target: Pc(0) }, value.span);
                self.push_scope();
                let reg = self.alloc();
                self.emit(Op::Move { dst: reg, src }, name.span);
                self.bind_local(name, reg, inner);
                self.branch_value(then, dst, result, saw_value);
                self.pop_scope();
                (vec![to_else], els)
            }
            _ => return,
        };
        let Some(els) = els else {
            self.error(
                Diagnostic::new(
                    codes::MISMATCH,
                    "an `if` used as a value needs an `else`",
                    stmt.span,
                    "no `else` branch",
                )
                .with_help("add `else { ... }` with a value of the same type"),
            );
            then.into_iter().for_each(|jump| self.patch_here(jump));
            return;
        };
        let to_end = self.jump_forward(stmt.span);
        then.into_iter().for_each(|jump| self.patch_here(jump));
        self.push_scope();
        self.branch_value(els, dst, result, saw_value);
        self.pop_scope();
        self.patch_here(to_end);
    }

    /// One branch of an `if` expression: its value goes to `dst`.
    fn branch_value(&mut self, block: &Block, dst: Reg, result: &Type, saw_value: &mut bool) {
        let [stmt] = block.stmts.as_slice() else {
            return self.not_one_expression(block.span);
        };
        match &stmt.kind {
            StmtKind::Expr(expr) => {
                let ty = self.expr_into(expr, dst, Some(result));
                if !self.unifier.coerce(result, &ty) {
                    self.branch_mismatch(expr.span, result, &ty);
                }
                *saw_value |= ty != Type::Never;
            }
            StmtKind::If { .. } | StmtKind::IfLet { .. } => {
                self.if_expr_into(stmt, dst, result, saw_value)
            }
            StmtKind::Return(_) | StmtKind::Throw(_) | StmtKind::Break | StmtKind::Continue => {
                self.stmt(stmt)
            }
            _ => self.not_one_expression(stmt.span),
        }
    }

    fn branch_mismatch(&mut self, span: Span, expected: &Type, found: &Type) {
        let (expected, found) = (self.show(expected), self.show(found));
        self.error(
            Diagnostic::new(
                codes::MISMATCH,
                format!(
                    "the branches of this `if` have different types: `{expected}` and `{found}`"
                ),
                span,
                format!("this is `{found}`"),
            )
            .with_help("both branches of an `if` expression must have the same type"),
        );
    }

    fn not_one_expression(&mut self, span: Span) {
        self.error(
            Diagnostic::new(
                codes::MISMATCH,
                "each branch of an `if` used as a value is one expression",
                span,
                "expected one expression here",
            )
            .with_help("write the statements before the `if`, or use an `if` statement"),
        );
    }

    /// `while let name = value { body }`: evaluates `value` before each
    /// round and stops at nil.
    pub(super) fn while_let(&mut self, name: &Ident, value: &Expr, body: &Block, span: Span) {
        let mark = self.mark();
        let start = self.here();
        let (ty, src) = self.expr(value, None);
        let inner = self.optional_inner(&ty, "`while let`", value.span, "never nil");
        let exit = self.emit(Op::JumpIfNil { src, target: Pc(0) }, value.span);
        self.loop_round(name, src, inner, body, (start, exit), span);
        self.free_to(mark);
    }

    /// The rest of a loop whose round starts at `start` and has just put
    /// its value in `src` (a nil one jumped out at `exit`): binds `name`
    /// to a fresh register for the round, runs `body`, and goes round.
    fn loop_round(
        &mut self,
        name: &Ident,
        src: Reg,
        ty: Type,
        body: &Block,
        (start, exit): (Pc, usize),
        span: Span,
    ) {
        self.enter_loop();
        self.push_scope();
        let reg = self.alloc();
        self.emit(Op::Move { dst: reg, src }, name.span);
        self.bind_local(name, reg, ty);
        self.block_stmts(body);
        self.pop_scope();
        self.emit(Op::Jump { target: start }, span);
        let end = self.here();
        self.exit_loop(start, end);
        self.patch(exit, end);
    }

    /// `for v in ch`: receives until the channel is closed and drained.
    pub(super) fn for_chan(
        &mut self,
        first: &Ident,
        second: Option<&Ident>,
        chan: Reg,
        element: Type,
        body: &Block,
        span: Span,
    ) {
        if let Some(second) = second {
            self.error(Diagnostic::new(
                codes::MISMATCH,
                "a channel gives one value per iteration",
                second.span,
                "remove this name",
            ));
        }
        let regs = self.alloc_n(2);
        let (chan_reg, value) = (regs, Reg(regs.0 + 1));
        self.emit(
            Op::Move {
                dst: chan_reg,
                src: chan,
            },
            span,
        );
        let start = self.here();
        self.emit(
            Op::Move {
                dst: value,
                src: chan_reg,
            },
            span,
        );
        let recv = self.native_by_key("chan.recv");
        self.emit(
            Op::CallNative {
                native: recv,
                base: value,
                argc: 1,
            },
            span,
        );
        let exit = self.emit(
            Op::JumpIfNil {
                src: value,
                target: Pc(0),
            },
            span,
        );
        self.loop_round(first, value, element, body, (start, exit), span);
    }

    /// `select { case => body ... }`.
    pub(super) fn select_stmt(&mut self, arms: &[SelectArm], span: Span) {
        let ops: Vec<Option<CaseOp<'_>>> = arms.iter().map(|arm| self.case_op(arm)).collect();
        if arms.is_empty() {
            self.error(
                Diagnostic::new(
                    codes::SELECT_CASE,
                    "a `select` needs at least one case",
                    span,
                    "no case",
                )
                .with_help("cases are `v = ch.recv()`, `ch.send(x)`, `v = await t`, `after(ms)` and `else`"),
            );
        }
        let elses: Vec<&SelectArm> = arms.iter().filter(|arm| arm.op.is_none()).collect();
        if let [first, second, ..] = elses.as_slice() {
            self.error(
                Diagnostic::new(
                    codes::SELECT_CASE,
                    "a `select` has at most one `else`",
                    second.span,
                    "a second `else`",
                )
                .with_label(first.span, "the first `else`"),
            );
        }
        let Some(ops) = ops.into_iter().collect::<Option<Vec<_>>>() else {
            return;
        };
        if ops.is_empty() {
            return;
        }
        let mark = self.mark();
        let width: usize = ops.iter().map(CaseOp::width).sum();
        let base = self.alloc_n(width);
        let mut bindings = Vec::with_capacity(ops.len());
        let mut reg = base.0;
        for (op, arm) in ops.iter().zip(arms) {
            bindings.push(self.case_operands(op, Reg(reg), arm.span));
            reg += op.width() as u16;
        }
        let native = self.native_by_key("task.select");
        self.emit(
            Op::CallNative {
                native,
                base,
                argc: width as u16,
            },
            span,
        );
        let (index, value, at) = (self.alloc(), self.alloc(), self.alloc());
        for (dst, item) in [(index, 0), (value, 1)] {
            self.emit(
                Op::LoadInt {
                    dst: at,
                    value: item,
                },
                span,
            );
            self.emit(
                Op::ListGet {
                    dst,
                    list: base,
                    index: at,
                },
                span,
            );
        }
        let mut to_end = Vec::new();
        for (i, (arm, binding)) in arms.iter().zip(bindings).enumerate() {
            let skip = self.emit(
                Op::JumpIfNotLtIntImm {
                    lhs: index,
                    imm: i as i32 + 1,
                    target: Pc(0),
                },
                arm.span,
            );
            self.push_scope();
            if let (Some(name), Some(ty)) = (&arm.binding, binding) {
                let var = self.alloc();
                self.emit(
                    Op::Move {
                        dst: var,
                        src: value,
                    },
                    name.span,
                );
                self.bind_local(name, var, ty);
            }
            self.block_stmts(&arm.body);
            self.pop_scope();
            to_end.push(self.jump_forward(arm.span));
            self.patch_here(skip);
        }
        to_end.into_iter().for_each(|jump| self.patch_here(jump));
        self.free_to(mark);
    }

    /// Recognizes a case's operation; reports one that is not a case form.
    fn case_op<'a>(&mut self, arm: &'a SelectArm) -> Option<CaseOp<'a>> {
        let Some(op) = &arm.op else {
            return Some(CaseOp::Else);
        };
        let case = match &op.kind {
            ExprKind::MethodCall {
                receiver,
                method,
                args,
            } if method.name == "recv" && args.is_empty() => Some(CaseOp::Recv(receiver)),
            ExprKind::MethodCall {
                receiver,
                method,
                args,
            } if method.name == "send" && args.len() == 1 && args[0].name.is_none() => {
                Some(CaseOp::Send(receiver, &args[0].value))
            }
            ExprKind::Await(task) => Some(CaseOp::Await(task)),
            ExprKind::Call(callee, args)
                if matches!(&callee.kind, ExprKind::Name(name) if name.name == "after")
                    && args.len() == 1
                    && args[0].name.is_none() =>
            {
                Some(CaseOp::After(&args[0].value))
            }
            _ => None,
        };
        let Some(case) = case else {
            self.error(
                Diagnostic::new(
                    codes::SELECT_CASE,
                    "this is not a `select` case",
                    op.span,
                    "not a receive, send, await or timer",
                )
                .with_help("cases are `v = ch.recv()`, `ch.send(x)`, `v = await t`, `after(ms)` and `else`"),
            );
            return None;
        };
        if let (Some(name), CaseOp::Send(..) | CaseOp::After(_)) = (&arm.binding, &case) {
            self.error(
                Diagnostic::new(
                    codes::SELECT_CASE,
                    "this case gives no value to bind",
                    name.span,
                    "nothing to bind",
                )
                .with_help("only `v = ch.recv()` and `v = await t` bind a value"),
            );
        }
        Some(case)
    }

    /// Evaluates a case's operands into the window at `at`; returns the
    /// type its binding gets.
    fn case_operands(&mut self, op: &CaseOp<'_>, at: Reg, span: Span) -> Option<Type> {
        let code = match op {
            CaseOp::Recv(_) => kind::RECV,
            CaseOp::Send(..) => kind::SEND,
            CaseOp::Await(_) => kind::AWAIT,
            CaseOp::After(_) => kind::AFTER,
            CaseOp::Else => kind::ELSE,
        };
        self.emit(
            Op::LoadInt {
                dst: at,
                value: code,
            },
            span,
        );
        let operand = Reg(at.0 + 1);
        match op {
            CaseOp::Recv(chan) => {
                let element = self.chan_operand(chan, operand);
                Some(Type::optional(element))
            }
            CaseOp::Send(chan, value) => {
                let element = self.chan_operand(chan, operand);
                self.check_into(value, Reg(at.0 + 2), &element);
                None
            }
            CaseOp::Await(task) => {
                let result = self.unifier.fresh();
                let expected = Type::Task(Box::new(result.clone()));
                let ty = self.expr_into(task, operand, Some(&expected));
                if !self.unifier.coerce(&expected, &ty) {
                    self.not_a(task.span, "task", &ty);
                }
                Some(result)
            }
            CaseOp::After(ms) => {
                self.check_into(ms, operand, &Type::Int);
                None
            }
            CaseOp::Else => None,
        }
    }

    /// A case's channel into `dst`; returns its element type.
    fn chan_operand(&mut self, chan: &Expr, dst: Reg) -> Type {
        let element = self.unifier.fresh();
        let expected = Type::Chan(Box::new(element.clone()));
        let ty = self.expr_into(chan, dst, Some(&expected));
        if !self.unifier.coerce(&expected, &ty) {
            self.not_a(chan.span, "channel", &ty);
        }
        element
    }

    fn not_a(&mut self, span: Span, what: &str, found: &Type) {
        if *found == Type::Error {
            return;
        }
        let shown = self.show(found);
        self.error(Diagnostic::new(
            codes::MISMATCH,
            format!("a `select` case needs a {what}, found `{shown}`"),
            span,
            format!("not a {what}"),
        ));
    }
}
