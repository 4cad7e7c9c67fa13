//! `spawn` and `await` (LANGUAGE.md §5).
//!
//! `spawn f(args)` compiles like the call it wraps, except that the function
//! goes into the register before the arguments and `Spawn` starts a task
//! with them instead of calling: the arguments are evaluated now, in the
//! spawning task. A spawned function cannot yield to its caller (a task's
//! top level has no coroutine to yield to), so its yield and receive types
//! are fixed to `nil`.

use spool_vm::{Op, Reg};

use super::Compiler;
use crate::ast::{Expr, ExprKind, Span};
use crate::diag::{codes, Diagnostic};
use crate::types::Type;

impl Compiler {
    /// `spawn call`: a `Task<T>` for a call returning `T`.
    pub(super) fn spawn_expr(&mut self, call: &Expr, dst: Reg, span: Span) -> Type {
        if !matches!(call.kind, ExprKind::Call(..) | ExprKind::MethodCall { .. }) {
            self.error(
                Diagnostic::new(
                    codes::SPAWN,
                    "`spawn` takes a function call",
                    call.span,
                    "not a call",
                )
                .with_help("write `spawn f(x)`; to run a block, `spawn (fn() { ... })()`"),
            );
            self.expr(call, None);
            return Type::Error;
        }
        self.spawning = true;
        let ret = self.expr_into(call, dst, None);
        self.spawning = false;
        let _ = span;
        Type::Task(Box::new(ret))
    }

    /// `await task`: the task's result.
    pub(super) fn await_expr(&mut self, task: &Expr, dst: Reg, span: Span) -> Type {
        let (ty, src) = self.expr(task, None);
        let inner = self.unifier.fresh();
        let wanted = Type::Task(Box::new(inner.clone()));
        if !self.unifier.unify(&wanted, &ty) {
            let shown = self.show(&ty);
            self.error(
                Diagnostic::new(
                    codes::MISMATCH,
                    format!("`await` takes a task, found `{shown}`"),
                    task.span,
                    format!("this is a `{shown}`"),
                )
                .with_help("`spawn f(x)` gives a `Task<T>` to await"),
            );
            return Type::Error;
        }
        self.emit(Op::Await { dst, src }, span);
        self.unifier.shallow(&inner)
    }

    /// A struct or variant construction used as `spawn`'s operand.
    pub(super) fn not_spawnable(&mut self, spawning: bool, span: Span) {
        if spawning {
            self.error(Diagnostic::new(
                codes::SPAWN,
                "`spawn` takes a function call, not a construction",
                span,
                "this builds a value",
            ));
        }
    }

    /// A spawned function must not yield (a task has nobody to yield to);
    /// what it yields is known only once every body is checked.
    pub(super) fn spawned_effects(
        &mut self,
        name: Option<&str>,
        effects: &(Type, Type),
        span: Span,
    ) {
        let file = self.file_label.clone();
        let check = (effects.0.clone(), name.map(str::to_string), span, file);
        self.spawn_checks.push(check);
    }

    /// Reports a spawned function whose yield type turned out not `nil`.
    pub(super) fn check_spawned_yields(&mut self, yields: &Type, name: Option<&str>, span: Span) {
        let resolved = self.unifier.shallow(yields);
        if matches!(resolved, Type::Nil | Type::Error | Type::Never)
            || self.unifier.has_unbound(&resolved)
        {
            return;
        }
        let name = name.map_or_else(|| "this function".to_string(), |n| format!("`{n}`"));
        let shown = self.show(&resolved);
        self.error(
            Diagnostic::new(
                codes::YIELD_PLACE,
                format!("{name} yields `{shown}`, so it cannot be spawned"),
                span,
                "a spawned task has no caller to yield to",
            )
            .with_help("run it in a coroutine inside the task: `spawn run_it()` where `run_it` drives `coroutine(...)`"),
        );
    }
}
