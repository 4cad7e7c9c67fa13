//! Expressions: literals, names, operators, collections, fields, indexing
//! and lambdas. Calls live in `call.rs`, `match` in `pattern.rs`.
//!
//! `expected` is a hint that flows into an expression (the element type of
//! an empty list, a lambda's parameter types); callers that need the result
//! to fit a type check it themselves with `check_into`.

use spool_vm::{ConstIdx, EnumIdx, Op, Reg};

use super::builder::{self, nth};
use super::builder::{FnBuilder, VarRef};
use super::{captures, Callee, Compiler, ConstKey, TypeName};
use crate::ast::{BinOp, Block, Expr, ExprKind, Ident, Lambda, LambdaBody, Span, StrPart, UnaryOp};
use crate::diag::{codes, Diagnostic};
use crate::types::{FnType, Type};

impl Compiler {
    /// Compiles `expr` into some register: a local's own register when the
    /// expression is a plain local, or a literal's a loop hoisted (the
    /// caller must not write to either), else a fresh temporary.
    pub(super) fn expr(&mut self, expr: &Expr, expected: Option<&Type>) -> (Type, Reg) {
        if let ExprKind::Name(name) = &expr.kind {
            if let Some(VarRef::Local {
                reg,
                cell: false,
                ty,
            }) = self.lookup_var(&name.name)
            {
                return (ty, reg);
            }
        }
        if let Some(hoisted) = self.hoisted(expr) {
            return hoisted;
        }
        let dst = self.alloc();
        let ty = self.expr_into(expr, dst, expected);
        (ty, dst)
    }

    /// Compiles `expr` and checks that it fits `ty`.
    pub(super) fn check(&mut self, expr: &Expr, ty: &Type) -> Reg {
        let (actual, reg) = self.expr(expr, Some(ty));
        self.expect_type(expr.span, ty, &actual);
        reg
    }

    /// Compiles `expr` into `dst` and checks that it fits `ty`.
    pub(super) fn check_into(&mut self, expr: &Expr, dst: Reg, ty: &Type) {
        let actual = self.expr_into(expr, dst, Some(ty));
        self.expect_type(expr.span, ty, &actual);
    }

    /// Compiles `expr` so its value ends up in `dst`; returns its type.
    /// Temporaries used on the way are freed.
    pub(super) fn expr_into(&mut self, expr: &Expr, dst: Reg, expected: Option<&Type>) -> Type {
        let mark = self.mark();
        let span = expr.span;
        let ty = match &expr.kind {
            ExprKind::Int(Some(value)) => self.load_int(*value, dst, span),
            ExprKind::Int(None) => {
                // Reported here rather than by the parser, so that the
                // file's other errors are reported with it.
                self.error(crate::parser::int_too_large(span));
                self.load_int(0, dst, span)
            }
            ExprKind::Float(value) => {
                if !value.is_finite() {
                    self.error(crate::parser::float_too_large(span));
                }
                let idx = self.constant(ConstKey::Float(value.to_bits()));
                self.emit(Op::LoadConst { dst, idx }, span);
                Type::Float
            }
            ExprKind::Bool(value) => {
                self.emit(Op::LoadBool { dst, value: *value }, span);
                Type::Bool
            }
            ExprKind::Nil => {
                self.emit(Op::LoadNil { dst }, span);
                Type::Nil
            }
            ExprKind::Str(parts) => self.string(parts, dst, span),
            ExprKind::Name(name) => self.name(name, dst, expected),
            ExprKind::List(items) => self.list(items, dst, expected, span),
            ExprKind::Map(entries) => self.map(entries, dst, expected, span),
            ExprKind::Unary(op, operand) => self.unary(*op, operand, dst, span),
            ExprKind::Binary(BinOp::Coalesce, lhs, rhs) => {
                self.coalesce(lhs, rhs, dst, expected, span)
            }
            ExprKind::Binary(..) => self.binary_chain(expr, dst),
            ExprKind::Unwrap(inner) => self.unwrap(inner, dst, expected, span),
            ExprKind::Call(callee, args) => self.call(callee, args, dst, expected, span),
            ExprKind::MethodCall {
                receiver,
                method,
                args,
            } => self.method_call(receiver, method, args, dst, expected, span),
            ExprKind::Field(object, field) => self.field(object, field, dst, span),
            ExprKind::Index(object, index) => self.index(object, index, dst, span),
            ExprKind::Lambda(lambda) => self.lambda(lambda, dst, expected, "lambda"),
            ExprKind::Match(scrutinee, arms) => {
                self.match_expr(scrutinee, arms, Some(dst), expected, span)
            }
            ExprKind::Block(block) => self.block_expr(block, dst, span),
            ExprKind::Yield(value) => self.yield_expr(value.as_deref(), dst, span),
            ExprKind::Spawn(call) => self.spawn_expr(call, dst, span),
            ExprKind::Await(task) => self.await_expr(task, dst, span),
            ExprKind::If(stmt) => self.if_expr(stmt, dst, expected),
        };
        self.free_to(mark);
        ty
    }

    /// `yield value`: the value must fit what this function yields; the
    /// expression is what the resumer sends back.
    fn yield_expr(&mut self, value: Option<&Expr>, dst: Reg, span: Span) -> Type {
        let (yields, receives) = self.b().effects.clone();
        let (ty, src) = match value {
            Some(value) => self.expr(value, Some(&yields)),
            None => {
                let reg = self.alloc();
                self.emit(Op::LoadNil { dst: reg }, span);
                (Type::Nil, reg)
            }
        };
        if !self.unifier.coerce(&yields, &ty) {
            let (expected, found) = (self.show(&yields), self.show(&ty));
            let mut diag = Diagnostic::new(
                codes::YIELD_TYPE,
                format!("mismatched yield types: this yields `{found}`, but the coroutine yields `{expected}`"),
                value.map_or(span, |v| v.span),
                format!("yields `{found}`"),
            );
            if let Some(first) = self.b().first_yield {
                diag = diag.with_label(first, format!("yields `{expected}` here"));
            }
            self.error(diag.with_help("every yield reaching one coroutine must yield one type"));
        }
        if self.b().first_yield.is_none() {
            self.b().first_yield = Some(value.map_or(span, |v| v.span));
        }
        self.emit(Op::Yield { dst, src }, span);
        receives
    }

    /// A call of a function that yields: its yields reach whatever runs
    /// this function, so the two must agree.
    pub(super) fn link_effects(&mut self, callee: &str, effects: &(Type, Type), span: Span) {
        let (yields, receives) = self.b().effects.clone();
        let yields_ok = self.unifier.unify(&yields, &effects.0);
        let receives_ok = self.unifier.unify(&receives, &effects.1);
        if yields_ok && receives_ok {
            return;
        }
        let (mine, theirs) = if yields_ok {
            (self.show(&receives), self.show(&effects.1))
        } else {
            (self.show(&yields), self.show(&effects.0))
        };
        let what = if yields_ok { "receives" } else { "yields" };
        let mut diag = Diagnostic::new(
            codes::YIELD_TYPE,
            format!("mismatched yield types: {callee} {what} `{theirs}`, but the caller {what} `{mine}`"),
            span,
            format!("{callee} {what} `{theirs}`"),
        );
        if let Some(first) = self.b().first_yield {
            diag = diag.with_label(first, format!("{what} `{mine}` here"));
        }
        self.error(
            diag.with_help(
                "a function's yields go to the coroutine that runs it, so they must agree",
            ),
        );
    }

    pub(super) fn load_int(&mut self, value: i64, dst: Reg, span: Span) -> Type {
        match i32::try_from(value) {
            Ok(small) => self.emit(Op::LoadInt { dst, value: small }, span),
            Err(_) => {
                let idx = self.constant(ConstKey::Int(value));
                self.emit(Op::LoadConst { dst, idx }, span)
            }
        };
        Type::Int
    }

    pub(super) fn load_str(&mut self, text: &str, dst: Reg, span: Span) {
        let idx = self.constant(ConstKey::Str(text.to_string()));
        self.emit(Op::LoadConst { dst, idx }, span);
    }

    /// An interpolated string: each piece converted with `ToStr` and joined
    /// with `Concat`.
    fn string(&mut self, parts: &[StrPart], dst: Reg, span: Span) -> Type {
        let mut first = true;
        for part in parts {
            let piece = if first { dst } else { self.alloc() };
            match part {
                StrPart::Lit(text) => self.load_str(text, piece, span),
                StrPart::Expr(inner) => {
                    let (ty, reg) = self.expr(inner, None);
                    if self.unifier.shallow(&ty) == Type::Str {
                        if reg != piece {
                            self.emit(
                                Op::Move {
                                    dst: piece,
                                    src: reg,
                                },
                                inner.span,
                            );
                        }
                    } else {
                        self.emit(
                            Op::ToStr {
                                dst: piece,
                                src: reg,
                            },
                            inner.span,
                        );
                    }
                }
            }
            if !first {
                self.emit(
                    Op::Concat {
                        dst,
                        lhs: dst,
                        rhs: piece,
                    },
                    span,
                );
            }
            first = false;
        }
        if first {
            self.load_str("", dst, span);
        }
        Type::Str
    }

    fn name(&mut self, name: &Ident, dst: Reg, expected: Option<&Type>) -> Type {
        if let Some(var) = self.lookup_var(&name.name) {
            self.load_var(&var, dst, name.span);
            return var.ty().clone();
        }
        if let Some(ty) = self.file_constant(&name.name, dst, expected) {
            return ty;
        }
        if self.fn_names.contains_key(&name.name) {
            return self.function_value(name, dst, expected);
        }
        let message = match self.type_names.get(&name.name) {
            Some(TypeName::Struct(_)) => {
                format!("`{}` is a struct: call it to build a value", name.name)
            }
            Some(TypeName::Enum(_)) => format!(
                "`{}` is an enum: name a variant, as in `{}.Variant`",
                name.name, name.name
            ),
            None => {
                self.unknown_name(name);
                return Type::Error;
            }
        };
        self.error(Diagnostic::new(
            codes::UNKNOWN_NAME,
            message,
            name.span,
            "a type, not a value",
        ));
        Type::Error
    }

    pub(super) fn unknown_name(&mut self, name: &Ident) {
        let mut diag = Diagnostic::new(
            codes::UNKNOWN_NAME,
            format!("unknown name `{}`", name.name),
            name.span,
            "not found in this scope",
        );
        if let Some(hint) = self.similar_name(&name.name) {
            diag = diag.with_help(hint);
        }
        self.error(diag);
    }

    /// The hint for an unknown `name`: the closest of the names in scope
    /// (locals, globals, functions, structs).
    fn similar_name(&self, name: &str) -> Option<String> {
        let locals = self
            .builders
            .iter()
            .flat_map(|b| b.scopes.iter().flatten().map(|l| l.name.as_str()));
        let structs = self.structs.iter().map(|s| s.name.as_str());
        let names = locals
            .chain(self.global_names.keys().map(String::as_str))
            .chain(self.fn_names.keys().map(String::as_str))
            .chain(structs);
        crate::suggest::did_you_mean(name, names)
    }

    /// A named function used as a value; an overloaded name picks the
    /// overload that fits the expected type.
    fn function_value(&mut self, name: &Ident, dst: Reg, expected: Option<&Type>) -> Type {
        let mut candidates = self.fn_names[&name.name].clone();
        // Script functions before library ones, as for calls.
        candidates.sort_by_key(|&index| !self.fns[index].user);
        let mut chosen = candidates[0];
        if let (Some(expected), true) = (expected, candidates.len() > 1) {
            for &candidate in &candidates {
                let ty = self.instantiate_fn_type(candidate);
                let snapshot = self.unifier.snapshot();
                let fits = self.unifier.unify(expected, &ty);
                self.unifier.rollback(snapshot);
                if fits {
                    chosen = candidate;
                    break;
                }
            }
        }
        let op = match self.fns[chosen].callee {
            Callee::Script(func) => Op::LoadFunc { dst, func },
            Callee::Native(native) => Op::LoadNative { dst, native },
        };
        self.emit(op, name.span);
        self.instantiate_fn_type(chosen)
    }

    /// The type of a named function with fresh variables for its generics.
    pub(super) fn instantiate_fn_type(&mut self, entry: usize) -> Type {
        let (params, ret) = self.instantiate(entry);
        let (yields, receives) = match &self.fns[entry].effects {
            Some((yields, receives)) => (Some(yields.clone()), Some(receives.clone())),
            None => (None, None),
        };
        Type::Fn(Box::new(FnType {
            params,
            ret,
            yields,
            receives,
        }))
    }

    fn list(&mut self, items: &[Expr], dst: Reg, expected: Option<&Type>, span: Span) -> Type {
        let element = match expected.map(|t| self.unifier.shallow(t)) {
            Some(Type::List(element)) => *element,
            _ => self.unifier.fresh(),
        };
        let start = self.alloc_n(items.len());
        for (offset, item) in items.iter().enumerate() {
            let reg = nth(start, offset);
            self.check_into(item, reg, &element);
        }
        let count = items.len() as u16;
        // A list the compiler knows holds bools stores a byte an element.
        let op = match self.unifier.shallow(&element) {
            Type::Bool => Op::NewBoolList { dst, start, count },
            _ => Op::NewList { dst, start, count },
        };
        self.emit(op, span);
        Type::List(Box::new(element))
    }

    fn map(
        &mut self,
        entries: &[(Expr, Expr)],
        dst: Reg,
        expected: Option<&Type>,
        span: Span,
    ) -> Type {
        let (key, value) = match expected.map(|t| self.unifier.shallow(t)) {
            Some(Type::Map(key, value)) => (*key, *value),
            _ => (self.unifier.fresh(), self.unifier.fresh()),
        };
        let start = self.alloc_n(entries.len() * 2);
        for (offset, (key_expr, value_expr)) in entries.iter().enumerate() {
            let reg = nth(start, 2 * offset);
            self.check_into(key_expr, reg, &key);
            self.check_into(value_expr, Reg(reg.0 + 1), &value);
        }
        let resolved = self.unifier.shallow(&key);
        if !resolved.is_key() && !matches!(resolved, Type::Var(_) | Type::Param(_)) {
            let shown = self.show(&resolved);
            self.error(Diagnostic::new(
                codes::MISMATCH,
                format!("map keys must be `int`, `str` or `bool`, not `{shown}`"),
                span,
                "not a key type",
            ));
        }
        self.emit(
            Op::NewMap {
                dst,
                start,
                count: entries.len() as u16,
            },
            span,
        );
        Type::Map(Box::new(key), Box::new(value))
    }

    fn unary(&mut self, op: UnaryOp, operand: &Expr, dst: Reg, span: Span) -> Type {
        if let (UnaryOp::Neg, ExprKind::Int(Some(value))) = (op, &operand.kind) {
            return self.load_int(value.wrapping_neg(), dst, span);
        }
        let (ty, src) = self.expr(operand, None);
        let ty = self.unifier.shallow(&ty);
        match (op, &ty) {
            (UnaryOp::Neg, Type::Int) => self.emit(Op::NegInt { dst, src }, span),
            (UnaryOp::Neg, Type::Float) => self.emit(Op::NegFloat { dst, src }, span),
            (UnaryOp::Not, Type::Bool) => self.emit(Op::Not { dst, src }, span),
            (_, Type::Error) => return Type::Error,
            _ => {
                self.unary_mismatch(op, &ty, span);
                return Type::Error;
            }
        };
        ty
    }

    /// Reports that the prefix operator `op` does not apply to `ty`.
    pub(super) fn unary_mismatch(&mut self, op: UnaryOp, ty: &Type, span: Span) {
        let symbol = if op == UnaryOp::Neg { "-" } else { "!" };
        let shown = self.show(ty);
        self.error(Diagnostic::new(
            codes::OPERATOR,
            format!("operator `{symbol}` cannot be applied to `{shown}`"),
            span,
            format!("`{shown}` has no `{symbol}`"),
        ));
    }

    /// A binary operator (not `??`) with the chain of operators on its left,
    /// `a + b - c < d && e`, compiled in a loop from the leftmost operand
    /// out, so that a chain of any length (the parser does not count it as
    /// nesting) takes constant stack and a constant number of registers.
    /// Each operator's result is the next one's left operand: `&&` and `||`
    /// test it in their own destination, so an operand of theirs is
    /// computed right there; the other operators read it from one shared
    /// temporary. Only the outermost operator writes `dst`, and only last
    /// unless it is `&&` or `||` (see `writes_dst_last`).
    fn binary_chain(&mut self, expr: &Expr, dst: Reg) -> Type {
        // Registers from here on are temporaries of this expression.
        let temps_from = self.mark();
        let spine = left_spine(expr);
        let mut shared = None;
        let mut dsts: Vec<Reg> = Vec::with_capacity(spine.len());
        for index in 0..spine.len() {
            let node_dst = match index.checked_sub(1).map(|parent| spine[parent].0) {
                None => dst,
                Some(BinOp::And | BinOp::Or) => dsts[index - 1],
                Some(_) => *shared.get_or_insert_with(|| self.alloc()),
            };
            dsts.push(node_dst);
        }
        let step_mark = self.mark();
        let innermost = spine.len() - 1;
        let (op, leftmost, _, _) = spine[innermost];
        let mut left = if is_logical(op) {
            self.check_into(leftmost, dsts[innermost], &Type::Bool);
            (Type::Bool, dsts[innermost])
        } else {
            self.expr(leftmost, None)
        };
        for (index, &(op, lhs, rhs, node)) in spine.iter().enumerate().rev() {
            let node_dst = dsts[index];
            left = if is_logical(op) {
                if index != innermost {
                    // The operand is already in `node_dst` (see above).
                    self.expect_type(lhs.span, &Type::Bool, &left.0);
                }
                self.logical(op, rhs, node_dst, node.span);
                (Type::Bool, node_dst)
            } else {
                let ty = self.arithmetic(op, left, rhs, (node_dst, temps_from), node.span);
                (ty, node_dst)
            };
            self.free_to(step_mark);
        }
        left.0
    }

    /// Turns the instruction just emitted, `AddInt sum, a, b`, into
    /// `AddRemIntConst dst, a, b, divisor` when `sum` (the left operand of
    /// a `%` by `divisor`) is a temporary, read by nothing else, and no
    /// jump leads to where the `%` would go (as the other branches of
    /// `(if c { a - b } else { a + b }) % 7` do: they would skip it). The
    /// instruction keeps the sum's position, where its one possible error
    /// (an overflow of the sum) is.
    fn fuse_sum_rem(&mut self, sum: Reg, temps_from: u16, dst: Reg, divisor: ConstIdx) -> bool {
        let code = &self.b().code;
        if builder::jumps_to(code, code.len()) {
            return false;
        }
        let Some(last) = self.b().code.last_mut() else {
            return false;
        };
        match *last {
            Op::AddInt { dst: to, lhs, rhs } if to == sum && sum.0 >= temps_from => {
                *last = Op::AddRemIntConst {
                    dst,
                    lhs,
                    rhs,
                    divisor,
                };
                true
            }
            _ => false,
        }
    }

    /// `&&` or `||` whose left operand is in `dst`: the right operand is
    /// evaluated into `dst` only when the left one does not decide.
    fn logical(&mut self, op: BinOp, rhs: &Expr, dst: Reg, span: Span) {
        let target = spool_vm::Pc(0);
        let jump = match op {
            BinOp::And => self.emit(Op::JumpIfFalse { cond: dst, target }, span),
            _ => self.emit(Op::JumpIfTrue { cond: dst, target }, span),
        };
        self.check_into(rhs, dst, &Type::Bool);
        self.patch_here(jump);
    }

    /// An arithmetic or comparison operator whose left operand is already
    /// in a register. `x + 1`, `x - 1`, `x * 3` and `x % -1` on ints use
    /// the immediate forms; `x / 10` and `x % 7` (a literal divisor of at
    /// least 2) divide by a prepared constant, and `(a + b) % 7`, whose sum
    /// is a temporary (a register from `temps_from` on), is one
    /// instruction.
    fn arithmetic(
        &mut self,
        op: BinOp,
        left: (Type, Reg),
        rhs: &Expr,
        (dst, temps_from): (Reg, u16),
        span: Span,
    ) -> Type {
        if let Some(value) = constant_divisor(op, rhs) {
            if self.unifier.shallow(&left.0) == Type::Int {
                let (lhs, divisor) = (left.1, self.constant(ConstKey::Int(value)));
                if op == BinOp::Rem && self.fuse_sum_rem(lhs, temps_from, dst, divisor) {
                    return Type::Int;
                }
                let instruction = match op {
                    BinOp::Div => Op::DivIntConst { dst, lhs, divisor },
                    _ => Op::RemIntConst { dst, lhs, divisor },
                };
                self.emit(instruction, span);
                return Type::Int;
            }
        }
        if let Some(imm) = immediate(op, rhs) {
            if self.unifier.shallow(&left.0) == Type::Int {
                let lhs = left.1;
                let instruction = match op {
                    BinOp::Mul => Op::MulIntImm { dst, lhs, imm },
                    BinOp::Rem => Op::RemIntImm { dst, lhs, imm },
                    _ => Op::AddIntImm { dst, lhs, imm },
                };
                self.emit(instruction, span);
                return Type::Int;
            }
        }
        let right = self.expr(rhs, Some(&left.0));
        self.binary_op(op, left, right, dst, span)
    }

    /// Emits the instruction for an arithmetic or comparison operator once
    /// both operands are in registers.
    pub(super) fn binary_op(
        &mut self,
        op: BinOp,
        left: (Type, Reg),
        right: (Type, Reg),
        dst: Reg,
        span: Span,
    ) -> Type {
        let ((lt, lhs), (rt, rhs)) = (left, right);
        if matches!(op, BinOp::Eq | BinOp::Ne) {
            return self.equality(op, (lt, lhs), (rt, rhs), dst, span);
        }
        if !self.unifier.unify(&lt, &rt) {
            return self.operator_error(op, &lt, &rt, span);
        }
        let ty = self.unifier.shallow(&lt);
        // `a > b` is `b < a`, and `a >= b` is `b <= a`.
        let (ordered, lhs, rhs) = match op {
            BinOp::Gt => (BinOp::Lt, rhs, lhs),
            BinOp::Ge => (BinOp::Le, rhs, lhs),
            _ => (op, lhs, rhs),
        };
        let instruction = match (ordered, &ty) {
            (BinOp::Add, Type::Int) => Op::AddInt { dst, lhs, rhs },
            (BinOp::Sub, Type::Int) => Op::SubInt { dst, lhs, rhs },
            (BinOp::Mul, Type::Int) => Op::MulInt { dst, lhs, rhs },
            (BinOp::Div, Type::Int) => Op::DivInt { dst, lhs, rhs },
            (BinOp::Rem, Type::Int) => Op::RemInt { dst, lhs, rhs },
            (BinOp::Add, Type::Float) => Op::AddFloat { dst, lhs, rhs },
            (BinOp::Sub, Type::Float) => Op::SubFloat { dst, lhs, rhs },
            (BinOp::Mul, Type::Float) => Op::MulFloat { dst, lhs, rhs },
            (BinOp::Div, Type::Float) => Op::DivFloat { dst, lhs, rhs },
            (BinOp::Rem, Type::Float) => Op::RemFloat { dst, lhs, rhs },
            (BinOp::Add, Type::Str) => Op::Concat { dst, lhs, rhs },
            (BinOp::Lt, Type::Int) => Op::LtInt { dst, lhs, rhs },
            (BinOp::Le, Type::Int) => Op::LeInt { dst, lhs, rhs },
            (BinOp::Lt, Type::Float) => Op::LtFloat { dst, lhs, rhs },
            (BinOp::Le, Type::Float) => Op::LeFloat { dst, lhs, rhs },
            (BinOp::Lt, Type::Str) => Op::LtStr { dst, lhs, rhs },
            (BinOp::Le, Type::Str) => Op::LeStr { dst, lhs, rhs },
            (_, Type::Error) => {
                return if is_comparison(op) {
                    Type::Bool
                } else {
                    Type::Error
                }
            }
            _ => return self.operator_error(op, &lt, &rt, span),
        };
        self.emit(instruction, span);
        if is_comparison(op) {
            Type::Bool
        } else {
            ty
        }
    }

    fn equality(
        &mut self,
        op: BinOp,
        left: (Type, Reg),
        right: (Type, Reg),
        dst: Reg,
        span: Span,
    ) -> Type {
        let ((lt, lhs), (rt, rhs)) = (left, right);
        if !self.unifier.coerce(&lt, &rt) && !self.unifier.coerce(&rt, &lt) {
            self.operator_error(op, &lt, &rt, span);
            return Type::Bool;
        }
        let instruction = match self.unifier.shallow(&lt) {
            Type::Int if self.unifier.shallow(&rt) == Type::Int => Op::EqInt { dst, lhs, rhs },
            Type::Float if self.unifier.shallow(&rt) == Type::Float => {
                Op::EqFloat { dst, lhs, rhs }
            }
            _ => Op::Eq { dst, lhs, rhs },
        };
        self.emit(instruction, span);
        if op == BinOp::Ne {
            self.emit(Op::Not { dst, src: dst }, span);
        }
        Type::Bool
    }

    fn operator_error(&mut self, op: BinOp, lt: &Type, rt: &Type, span: Span) -> Type {
        let (left, right) = (self.show(lt), self.show(rt));
        let symbol = op.symbol();
        let label = format!("`{left}` {symbol} `{right}`");
        let accepts = |ty: &str| match op {
            BinOp::Add => matches!(ty, "int" | "float" | "str"),
            BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => matches!(ty, "int" | "float"),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => matches!(ty, "int" | "float" | "str"),
            _ => true,
        };
        // Two operands the operator takes one at a time, but not together.
        let mut diag = if accepts(&left) && accepts(&right) && left != right {
            Diagnostic::new(
                codes::MISMATCH,
                format!("mismatched types: `{symbol}` cannot be applied to `{left}` and `{right}`"),
                span,
                label,
            )
        } else {
            Diagnostic::new(
                codes::OPERATOR,
                format!("operator `{symbol}` cannot be applied to `{left}` and `{right}`"),
                span,
                label,
            )
        };
        let numeric = |s: &str| s == "int" || s == "float";
        if numeric(&left) && numeric(&right) && left != right {
            diag = diag.with_help("convert one side: `float(i)` or `int(f)`");
        } else if left.ends_with('?') || right.ends_with('?') {
            diag = diag.with_help(
                "an optional may be nil: unwrap it with `!`, give a default with `??`, or test it with `if let`",
            );
        }
        self.error(diag);
        if is_comparison(op) {
            Type::Bool
        } else {
            Type::Error
        }
    }

    /// `a ?? b`: `a` unless it is nil.
    fn coalesce(
        &mut self,
        lhs: &Expr,
        rhs: &Expr,
        dst: Reg,
        expected: Option<&Type>,
        span: Span,
    ) -> Type {
        let hint = expected.map(|t| Type::optional(t.clone()));
        let lt = self.expr_into(lhs, dst, hint.as_ref());
        let inner = match self.unifier.shallow(&lt) {
            Type::Opt(inner) => *inner,
            Type::Error => Type::Error,
            other => {
                let shown = self.show(&other);
                self.error(
                    Diagnostic::new(
                        codes::MISMATCH,
                        format!("`??` needs an optional on its left, found `{shown}`"),
                        lhs.span,
                        "never nil",
                    )
                    .with_help("`??` supplies a default for a `T?` value"),
                );
                other
            }
        };
        let jump = self.emit(
            Op::JumpIfNotNil {
                src: dst,
                target: spool_vm::Pc(0),
            },
            span,
        );
        let rt = self.expr_into(rhs, dst, Some(&inner));
        self.patch_here(jump);
        if let Type::Opt(_) | Type::Nil = self.unifier.shallow(&rt) {
            self.expect_type(rhs.span, &Type::optional(inner.clone()), &rt);
            return Type::optional(inner);
        }
        self.expect_type(rhs.span, &inner, &rt);
        inner
    }

    fn unwrap(&mut self, inner: &Expr, dst: Reg, expected: Option<&Type>, span: Span) -> Type {
        let hint = expected.map(|t| Type::optional(t.clone()));
        let (ty, src) = self.expr(inner, hint.as_ref());
        self.emit(Op::Unwrap { dst, src }, span);
        self.optional_inner(&ty, "`!`", span, "this value is never nil")
    }

    /// The type inside the optional type `ty`, for the construct `what`
    /// that needs an optional; any other type is reported (with `label` at
    /// `span`) and returned as it is.
    pub(super) fn optional_inner(
        &mut self,
        ty: &Type,
        what: &str,
        span: Span,
        label: &str,
    ) -> Type {
        match self.unifier.shallow(ty) {
            Type::Opt(inner) => *inner,
            Type::Error => Type::Error,
            other => {
                let shown = self.show(&other);
                self.error(Diagnostic::new(
                    codes::MISMATCH,
                    format!("{what} needs an optional, found `{shown}`"),
                    span,
                    label,
                ));
                other
            }
        }
    }

    /// `object.field`, or `Enum.Variant` for a variant without payload.
    fn field(&mut self, object: &Expr, field: &Ident, dst: Reg, span: Span) -> Type {
        if let Some(enum_id) = self.enum_named_by(object) {
            return self.construct_variant(enum_id, field, &[], dst, None, span);
        }
        if let Some(file) = self.space_named_by(object) {
            return self.qualified_value(file, field, dst);
        }
        let (ty, obj) = self.expr(object, None);
        let ty = self.unifier.shallow(&ty);
        match self.struct_field(&ty, field) {
            Some((index, field_ty)) => {
                self.emit(
                    Op::GetField {
                        dst,
                        obj,
                        field: index,
                    },
                    span,
                );
                field_ty
            }
            None => Type::Error,
        }
    }

    /// `NAME.f` for a file imported `as NAME`: its function as a value.
    fn qualified_value(&mut self, file: usize, name: &Ident, dst: Reg) -> Type {
        let (_, entries) = self.declared_in(file, &name.name);
        if entries.is_empty() {
            let file = self.file_name(file).to_string();
            self.error(Diagnostic::new(
                codes::UNKNOWN_NAME,
                format!("`{file}` declares no function `{}`", name.name),
                name.span,
                "not a function of the imported file",
            ));
            return Type::Error;
        }
        self.with_fns(&name.name, entries, |c| c.function_value(name, dst, None))
    }

    /// The enum an expression names, when it is an enum's name and not a
    /// variable.
    pub(super) fn enum_named_by(&mut self, expr: &Expr) -> Option<EnumIdx> {
        if let ExprKind::Field(space, name) = &expr.kind {
            let file = self.space_named_by(space)?;
            let (Some(TypeName::Enum(id)), _) = self.declared_in(file, &name.name) else {
                return None;
            };
            return Some(id);
        }
        let ExprKind::Name(name) = &expr.kind else {
            return None;
        };
        let Some(TypeName::Enum(id)) = self.type_names.get(&name.name).copied() else {
            return None;
        };
        self.lookup_var(&name.name).is_none().then_some(id)
    }

    /// The index and type of a struct's field, reporting a missing one.
    pub(super) fn struct_field(&mut self, ty: &Type, field: &Ident) -> Option<(u16, Type)> {
        if *ty == Type::Error {
            return None;
        }
        if let Type::Struct(id, args) = ty {
            let def = &self.structs[id.index()];
            if let Some(index) = def.fields.iter().position(|(name, _)| *name == field.name) {
                let map = def
                    .generics
                    .iter()
                    .copied()
                    .zip(args.iter().cloned())
                    .collect();
                return Some((index as u16, def.fields[index].1.subst(&map)));
            }
        }
        let shown = self.show(ty);
        let mut diag = Diagnostic::new(
            codes::NO_FIELD,
            format!("no field `{}` on type `{shown}`", field.name),
            field.span,
            "unknown field",
        );
        if let Type::Struct(id, _) = ty {
            let fields = &self.structs[id.index()].fields;
            let names: Vec<String> = fields.iter().map(|(n, _)| format!("`{n}`")).collect();
            let closest =
                crate::suggest::did_you_mean(&field.name, fields.iter().map(|(n, _)| n.as_str()));
            diag = diag.with_help(
                closest.unwrap_or_else(|| format!("the fields are {}", names.join(", "))),
            );
        }
        if let Type::Opt(inner) = ty {
            if let Type::Struct(id, _) = **inner {
                if self.structs[id.index()]
                    .fields
                    .iter()
                    .any(|(n, _)| *n == field.name)
                {
                    diag = diag.with_help(
                        "the value may be nil: unwrap it with `!`, or test it with `if let`",
                    );
                }
            }
        }
        self.error(diag);
        None
    }

    /// Are a map's keys, of type `key`, known to be ints (after the key
    /// expression was checked against it)? Its entries are then read and
    /// written with `MapGetInt` and `MapSetInt`, which read the key as an
    /// int operand.
    pub(super) fn int_keys(&mut self, key: &Type) -> bool {
        matches!(self.unifier.shallow(key), Type::Int)
    }

    fn index(&mut self, object: &Expr, index: &Expr, dst: Reg, span: Span) -> Type {
        let compiled = self.expr(object, None);
        self.index_of(compiled, object.span, index, dst, span)
    }

    /// `object[index]` into `dst`, the object (of type `ty`, written at
    /// `object_span`) already in the register `obj`; returns the
    /// element's type.
    pub(super) fn index_of(
        &mut self,
        (ty, obj): (Type, Reg),
        object_span: Span,
        index: &Expr,
        dst: Reg,
        span: Span,
    ) -> Type {
        match self.unifier.shallow(&ty) {
            Type::List(element) => {
                let index = self.check(index, &Type::Int);
                self.emit(
                    Op::ListGet {
                        dst,
                        list: obj,
                        index,
                    },
                    span,
                );
                *element
            }
            Type::Map(key, value) => {
                let key_reg = self.check(index, &key);
                let op = if self.int_keys(&key) {
                    Op::MapGetInt {
                        dst,
                        map: obj,
                        key: key_reg,
                    }
                } else {
                    Op::MapGet {
                        dst,
                        map: obj,
                        key: key_reg,
                    }
                };
                self.emit(op, span);
                *value
            }
            Type::Error => Type::Error,
            other => {
                let shown = self.show(&other);
                let mut diag = Diagnostic::new(
                    codes::OPERATOR,
                    format!("cannot index into a value of type `{shown}`"),
                    object_span,
                    "not a list or map",
                );
                if other == Type::Str {
                    diag =
                        diag.with_help("use `s.slice(i, i + 1)` or `s.chars()` to get characters");
                }
                self.error(diag);
                Type::Error
            }
        }
    }

    /// A lambda (or nested function): compiles its body as a new function
    /// and builds a closure of the variables it captures.
    pub(super) fn lambda(
        &mut self,
        lambda: &Lambda,
        dst: Reg,
        expected: Option<&Type>,
        name: &str,
    ) -> Type {
        let expected_fn = match expected.map(|t| self.unifier.shallow(t)) {
            Some(Type::Fn(fn_type)) if fn_type.params.len() == lambda.params.len() => {
                Some(*fn_type)
            }
            _ => None,
        };
        let generics = self.b().generics.clone();
        let params: Vec<Type> = lambda
            .params
            .iter()
            .enumerate()
            .map(|(index, param)| match (&param.ty, &expected_fn) {
                (Some(ty), _) => self.resolve_type(ty, &generics),
                (None, Some(fn_type)) => fn_type.params[index].clone(),
                (None, None) => {
                    self.error(
                        Diagnostic::new(
                            codes::CANNOT_INFER,
                            format!("cannot infer the type of parameter `{}`", param.name.name),
                            param.name.span,
                            "needs a type",
                        )
                        .with_help(format!("write it: `{}: int`", param.name.name)),
                    );
                    Type::Error
                }
            })
            .collect();
        let ret = match (&lambda.ret, &expected_fn) {
            (Some(ty), _) => self.resolve_type(ty, &generics),
            (None, Some(fn_type)) => fn_type.ret.clone(),
            (None, None) => self.unifier.fresh(),
        };
        let func = self.reserve_function(name);
        let mut builder = FnBuilder::new(func, ret.clone(), true);
        builder.generics = generics;
        builder.cells = captures::cell_names_in_lambda(&lambda.body);
        let effects = match &expected_fn {
            Some(FnType {
                yields: Some(yields),
                receives: Some(receives),
                ..
            }) => {
                // Unbound at the end, they too default to nil.
                self.effect_vars.push(yields.clone());
                self.effect_vars.push(receives.clone());
                (yields.clone(), receives.clone())
            }
            _ => self.fresh_effects(),
        };
        builder.effects = effects.clone();
        self.builders.push(builder);
        for (param, ty) in lambda.params.iter().zip(&params) {
            self.declare_param(&param.name, ty.clone());
        }
        match &lambda.body {
            LambdaBody::Expr(body) => {
                let (ty, reg) = self.expr(body, Some(&ret));
                self.expect_type(body.span, &ret, &ty);
                self.emit(Op::Return { src: reg }, body.span);
            }
            LambdaBody::Block(body) => {
                self.block_stmts(body);
                if !super::stmt::block_terminates(body) {
                    // A block lambda without `return` on its last path returns nil.
                    self.unifier.coerce(&ret, &Type::Nil);
                }
                self.finish_body(body, &ret, lambda.span, name);
            }
        }
        let builder = self.finish_builder(lambda.params.len() as u16);
        self.make_closure(&builder, dst, lambda.span);
        if self.unifier.has_unbound(&ret) {
            self.unifier.unify(&ret, &Type::Nil);
        }
        Type::Fn(Box::new(FnType {
            params,
            ret,
            yields: Some(effects.0),
            receives: Some(effects.1),
        }))
    }

    /// Copies a finished function's captures into consecutive registers and
    /// builds the closure (a plain function value when it captures nothing).
    pub(super) fn make_closure(&mut self, builder: &FnBuilder, dst: Reg, span: Span) {
        if builder.captures.is_empty() {
            self.emit(
                Op::LoadFunc {
                    dst,
                    func: builder.func,
                },
                span,
            );
            return;
        }
        let count = builder.captures.len() as u16;
        let start = self.alloc_n(usize::from(count));
        for (offset, capture) in builder.captures.iter().enumerate() {
            let reg = nth(start, offset);
            let op = match capture.from {
                super::builder::CaptureFrom::Local(src) => Op::Move { dst: reg, src },
                super::builder::CaptureFrom::Capture(index) => Op::LoadCapture { dst: reg, index },
            };
            self.emit(op, span);
        }
        self.emit(
            Op::MakeClosure {
                dst,
                func: builder.func,
                start,
                count,
            },
            span,
        );
    }

    /// A block used as an expression (a `match` arm's body): `nil`, or
    /// `never` when it always returns or throws.
    fn block_expr(&mut self, block: &Block, dst: Reg, span: Span) -> Type {
        self.scoped_block(block);
        if super::stmt::block_terminates(block) {
            return Type::Never;
        }
        self.emit(Op::LoadNil { dst }, span);
        Type::Nil
    }
}

/// The operators along the left spine of a chain, outermost first: each
/// node's operator, left and right operands and the node itself. The spine
/// stops at an operand that is not a binary operator, or is `??` (which
/// groups to the right, so only parentheses put it on the left).
fn left_spine(expr: &Expr) -> Vec<(BinOp, &Expr, &Expr, &Expr)> {
    let mut spine = Vec::new();
    let mut node = expr;
    while let ExprKind::Binary(op, lhs, rhs) = &node.kind {
        if *op == BinOp::Coalesce {
            break;
        }
        spine.push((*op, lhs.as_ref(), rhs.as_ref(), node));
        node = lhs;
    }
    spine
}

/// The immediate operand of `x + k`, `x - k`, `x * k` or `x % k` with an
/// int literal `k` that fits (negated for `-`).
fn immediate(op: BinOp, rhs: &Expr) -> Option<i32> {
    let ExprKind::Int(Some(value)) = rhs.kind else {
        return None;
    };
    match op {
        BinOp::Add | BinOp::Mul | BinOp::Rem => i32::try_from(value).ok(),
        BinOp::Sub => i32::try_from(value).ok()?.checked_neg(),
        _ => None,
    }
}

/// The divisor of `x / k` or `x % k` when `k` is an int literal of at
/// least 2 (smaller ones keep the operators' general forms, whose errors
/// and overflow they need).
fn constant_divisor(op: BinOp, rhs: &Expr) -> Option<i64> {
    match (op, &rhs.kind) {
        (BinOp::Div | BinOp::Rem, ExprKind::Int(Some(value))) if *value >= 2 => Some(*value),
        _ => None,
    }
}

fn is_logical(op: BinOp) -> bool {
    matches!(op, BinOp::And | BinOp::Or)
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne
    )
}
