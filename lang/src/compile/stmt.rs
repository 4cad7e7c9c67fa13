//! Statements: variables and assignment, control flow, loops, `try`,
//! `throw`, `defer` and nested functions.

use spool_vm::{Op, Pc, Reg};

use super::builder::{FnBuilder, LoopCtx, VarRef};
use super::{captures, Compiler, TypeName};
use crate::ast::{
    BinOp, Block, Expr, ExprKind, FnDecl, ForIter, Ident, Lambda, LambdaBody, Span, Stmt, StmtKind,
    TypeExpr, UnaryOp,
};
use crate::diag::{codes, Diagnostic};
use crate::types::Type;

/// Where an assignment writes, with its object and index already in
/// registers.
enum Place {
    /// A variable.
    Var(VarRef),
    /// Field `field` of the record in `obj`.
    Field { obj: Reg, field: u16 },
    /// Element `index` of the list in `list`.
    ListElement { list: Reg, index: Reg },
    /// The entry for `key` of the map in `map`; `int_key` when the map's
    /// keys are ints (`MapGetInt`, `MapSetInt`).
    MapEntry { map: Reg, key: Reg, int_key: bool },
}

impl Compiler {
    /// The statements of a block, in the current scope.
    pub(super) fn block_stmts(&mut self, block: &Block) {
        for stmt in &block.stmts {
            self.stmt(stmt);
        }
    }

    /// A block in a scope of its own.
    pub(super) fn scoped_block(&mut self, block: &Block) {
        self.push_scope();
        self.block_stmts(block);
        self.pop_scope();
    }

    pub(super) fn stmt(&mut self, stmt: &Stmt) {
        let mark = self.mark();
        let span = stmt.span;
        match &stmt.kind {
            StmtKind::Let { name, ty, value } => return self.let_stmt(name, ty.as_ref(), value),
            StmtKind::Fn(decl) => return self.fn_stmt(decl),
            StmtKind::Assign { target, value } => self.assign(target, value),
            StmtKind::CompoundAssign { target, op, value } => {
                self.compound_assign(target, *op, value, span)
            }
            StmtKind::Expr(expr) => self.expr_stmt(expr),
            StmtKind::If { cond, then, els } => self.if_stmt(cond, then, els.as_ref(), span),
            StmtKind::IfLet {
                name,
                value,
                then,
                els,
            } => self.if_let(name, value, then, els.as_ref(), span),
            StmtKind::While { cond, body } => {
                let hoisted = self.hoist(Some(cond), body, span);
                self.while_stmt(cond, body, span);
                self.unhoist(hoisted);
            }
            StmtKind::For {
                first,
                second,
                iter,
                body,
            } => {
                let hoisted = self.hoist(None, body, span);
                self.for_stmt(first, second.as_ref(), iter, body, span);
                self.unhoist(hoisted);
            }
            StmtKind::Break => self.break_stmt(span),
            StmtKind::Continue => self.continue_stmt(span),
            StmtKind::Return(value) => self.return_stmt(value.as_ref(), span),
            StmtKind::Defer(inner) => self.defer_stmt(inner, span),
            StmtKind::Throw(value) => {
                let error_ty = self.error_type();
                let src = self.check(value, &error_ty);
                self.emit(Op::Throw { src }, span);
            }
            StmtKind::Try {
                body,
                binding,
                handler,
            } => self.try_stmt(body, binding, handler, span),
            StmtKind::Block(block) => self.scoped_block(block),
            StmtKind::WhileLet { name, value, body } => self.while_let(name, value, body, span),
            StmtKind::Select(arms) => self.select_stmt(arms, span),
        }
        self.free_to(mark);
    }

    /// The type of `Error` records.
    pub(super) fn error_type(&self) -> Type {
        match self.type_names.get("Error") {
            Some(TypeName::Struct(id)) => Type::Struct(*id, Vec::new()),
            _ => Type::Error,
        }
    }

    fn expr_stmt(&mut self, expr: &Expr) {
        if let ExprKind::Match(scrutinee, arms) = &expr.kind {
            self.match_expr(scrutinee, arms, None, None, expr.span);
            return;
        }
        if let ExprKind::MethodCall {
            receiver,
            method,
            args,
        } = &expr.kind
        {
            if self.list_push_statement(receiver, method, args, expr.span) {
                return;
            }
        }
        let dst = self.alloc();
        self.expr_into(expr, dst, None);
    }

    fn let_stmt(&mut self, name: &Ident, ty: Option<&TypeExpr>, value: &Expr) {
        let generics = self.b().generics.clone();
        let declared = ty.map(|ty| self.resolve_type(ty, &generics));
        let reg = self.alloc();
        let ty = match &declared {
            Some(declared) => {
                self.check_into(value, reg, declared);
                declared.clone()
            }
            None => self.expr_into(value, reg, None),
        };
        if declared.is_none() && matches!(value.kind, ExprKind::Nil) {
            self.cannot_infer(name, &Type::Nil);
        } else if declared.is_none() {
            self.b().uninferred.push((name.clone(), ty.clone()));
        }
        if self.is_global_let(name) {
            let global = self.declare_global(&name.name, ty);
            self.emit(Op::StoreGlobal { global, src: reg }, name.span);
            self.free_to(reg.0);
            return;
        }
        self.bind_local(name, reg, ty);
    }

    pub(super) fn cannot_infer(&mut self, name: &Ident, ty: &Type) {
        let shown = self.show(ty);
        let help = if shown == "nil" {
            format!(
                "`nil` alone has no type: write one, as in `let {}: int? = nil`",
                name.name
            )
        } else {
            format!(
                "write the type in full, as in `let {}: {} = ...` with each `_` filled in",
                name.name, shown
            )
        };
        self.error(
            Diagnostic::new(
                codes::CANNOT_INFER,
                format!("cannot infer the type of `{}`", name.name),
                name.span,
                format!("its type is only known to be `{shown}`"),
            )
            .with_help(help),
        );
    }

    /// A `let` directly in the script's top level that some function
    /// uses is a global; other top-level `let`s stay in registers.
    fn is_global_let(&mut self, name: &Ident) -> bool {
        let shared = self.shared_names.contains(&name.name) || self.all_globals;
        let builder = self.b();
        builder.is_main && builder.scopes.len() == 1 && shared
    }

    /// `fn name(...) { }` inside a block: a closure in a local variable
    /// that its own body can call.
    fn fn_stmt(&mut self, decl: &FnDecl) {
        if !decl.generics.is_empty() {
            self.error(Diagnostic::new(
                codes::GENERIC,
                "nested functions cannot be generic",
                decl.span,
                "move it to the top level",
            ));
        }
        let generics = self.b().generics.clone();
        let params: Vec<Type> = decl
            .params
            .iter()
            .map(|p| {
                p.ty.as_ref()
                    .map_or(Type::Error, |ty| self.resolve_type(ty, &generics))
            })
            .collect();
        let ret = decl
            .ret
            .as_ref()
            .map_or(Type::Nil, |ty| self.resolve_type(ty, &generics));
        let fn_type = Type::func(params, ret);
        let reg = self.alloc();
        self.emit(Op::LoadNil { dst: reg }, decl.name.span);
        self.bind_local(&decl.name, reg, fn_type.clone());
        let lambda = Lambda {
            params: decl.params.clone(),
            ret: decl.ret.clone(),
            body: LambdaBody::Block(decl.body.clone().unwrap_or(Block {
                stmts: Vec::new(),
                span: decl.span,
            })),
            span: decl.span,
        };
        let mark = self.mark();
        let value = self.alloc();
        self.lambda(&lambda, value, Some(&fn_type), &decl.name.name);
        let var = self.lookup_var(&decl.name.name).expect("just declared");
        self.store_var(&var, value, decl.name.span);
        self.free_to(mark);
    }

    fn assign(&mut self, target: &Expr, value: &Expr) {
        let Some((place, ty)) = self.place(target) else {
            if let ExprKind::Name(_) = target.kind {
                // An unknown variable: the value may hold more mistakes.
                self.expr(value, None);
            }
            return;
        };
        if let Place::Var(VarRef::Local {
            reg, cell: false, ..
        }) = place
        {
            if writes_dst_last(value) {
                self.check_into(value, reg, &ty);
                return;
            }
        }
        let src = self.check(value, &ty);
        self.store_place(&place, src, target.span);
    }

    fn compound_assign(&mut self, target: &Expr, op: BinOp, value: &Expr, span: Span) {
        let Some((place, ty)) = self.place(target) else {
            return;
        };
        let current = match place {
            Place::Var(VarRef::Local {
                reg, cell: false, ..
            }) => reg,
            _ => {
                let tmp = self.alloc();
                self.load_place(&place, tmp, target.span);
                tmp
            }
        };
        self.apply_compound(op, (ty, current), value, span);
        self.store_place(&place, current, target.span);
    }

    /// The place an assignment's target denotes and the type of what it
    /// holds, with the target's object and index compiled into registers;
    /// `None` (reported) when the target is not a place.
    fn place(&mut self, target: &Expr) -> Option<(Place, Type)> {
        match &target.kind {
            ExprKind::Name(name) => {
                let var = self.assignable_var(name)?;
                let ty = var.ty().clone();
                Some((Place::Var(var), ty))
            }
            ExprKind::Field(object, field) => {
                let (object_ty, obj) = self.expr(object, None);
                let object_ty = self.unifier.shallow(&object_ty);
                let (field, ty) = self.struct_field(&object_ty, field)?;
                Some((Place::Field { obj, field }, ty))
            }
            ExprKind::Index(object, index) => {
                let (object_ty, obj) = self.expr(object, None);
                match self.unifier.shallow(&object_ty) {
                    Type::List(element) => {
                        let index = self.check(index, &Type::Int);
                        Some((Place::ListElement { list: obj, index }, *element))
                    }
                    Type::Map(key, element) => {
                        let key_reg = self.check(index, &key);
                        let place = Place::MapEntry {
                            map: obj,
                            key: key_reg,
                            int_key: self.int_keys(&key),
                        };
                        Some((place, *element))
                    }
                    Type::Error => None,
                    other => {
                        let shown = self.show(&other);
                        self.error(Diagnostic::new(
                            codes::NOT_A_PLACE,
                            format!("cannot assign to an element of `{shown}`"),
                            target.span,
                            "not a list or map",
                        ));
                        None
                    }
                }
            }
            _ => {
                self.not_a_place(target.span);
                None
            }
        }
    }

    /// Reads what `place` holds into `dst`.
    fn load_place(&mut self, place: &Place, dst: Reg, span: Span) {
        let op = match *place {
            Place::Var(ref var) => return self.load_var(var, dst, span),
            Place::Field { obj, field } => Op::GetField { dst, obj, field },
            Place::ListElement { list, index } => Op::ListGet { dst, list, index },
            Place::MapEntry {
                map,
                key,
                int_key: true,
            } => Op::MapGetInt { dst, map, key },
            Place::MapEntry { map, key, .. } => Op::MapGet { dst, map, key },
        };
        self.emit(op, span);
    }

    /// Writes `src` into `place`.
    fn store_place(&mut self, place: &Place, src: Reg, span: Span) {
        let op = match *place {
            Place::Var(ref var) => return self.store_var(var, src, span),
            Place::Field { obj, field } => Op::SetField { obj, field, src },
            Place::ListElement { list, index } => Op::ListSet { list, index, src },
            Place::MapEntry {
                map,
                key,
                int_key: true,
            } => Op::MapSetInt { map, key, src },
            Place::MapEntry { map, key, .. } => Op::MapSet { map, key, src },
        };
        self.emit(op, span);
    }

    fn not_a_place(&mut self, span: Span) {
        self.error(
            Diagnostic::new(codes::NOT_A_PLACE, "cannot assign to this expression", span, "not a variable, field or element")
                .with_help("assign to a variable (`x = ...`), a field (`p.x = ...`) or an element (`xs[i] = ...`)"),
        );
    }

    /// The variable a name assigns to, reporting functions and unknowns.
    fn assignable_var(&mut self, name: &Ident) -> Option<VarRef> {
        if let Some(var) = self.lookup_var(&name.name) {
            return Some(var);
        }
        if self.fn_names.contains_key(&name.name)
            || self.type_names.contains_key(&name.name)
            || self.scope.constants.contains_key(&name.name)
        {
            self.error(Diagnostic::new(
                codes::NOT_A_PLACE,
                format!("cannot assign to `{}`: it is not a variable", name.name),
                name.span,
                "a function or type",
            ));
        } else {
            self.unknown_name(name);
        }
        None
    }

    /// `current := current op value`, checking the result keeps its type.
    fn apply_compound(&mut self, op: BinOp, current: (Type, Reg), value: &Expr, span: Span) {
        let (ty, reg) = current;
        if let (ExprKind::Int(Some(n)), Type::Int, BinOp::Add | BinOp::Sub) =
            (&value.kind, self.unifier.shallow(&ty), op)
        {
            let imm = if op == BinOp::Add {
                i32::try_from(*n).ok()
            } else {
                i32::try_from(-*n).ok()
            };
            if let Some(imm) = imm {
                self.emit(
                    Op::AddIntImm {
                        dst: reg,
                        lhs: reg,
                        imm,
                    },
                    span,
                );
                return;
            }
        }
        let (value_ty, value_reg) = self.expr(value, Some(&ty));
        let result = self.binary_op(op, (ty.clone(), reg), (value_ty, value_reg), reg, span);
        self.expect_type(span, &ty, &result);
    }

    // ---- control flow ----

    /// Emits jumps taken when `cond` is false; returns them for patching.
    /// The operands of a chain `a && b && c` are tested one after the
    /// other, in a loop: a chain may be of any length.
    pub(super) fn jumps_if_false(&mut self, cond: &Expr) -> Vec<usize> {
        let mut operands = Vec::new();
        let mut node = cond;
        while let ExprKind::Binary(BinOp::And, lhs, rhs) = &node.kind {
            operands.push(rhs.as_ref());
            node = lhs;
        }
        operands.push(node);
        let mut jumps = Vec::new();
        for operand in operands.into_iter().rev() {
            jumps.extend(self.jumps_if_operand_false(operand));
        }
        jumps
    }

    /// [`Compiler::jumps_if_false`] for one operand of an `&&` chain (which
    /// may itself be a parenthesized `&&`).
    fn jumps_if_operand_false(&mut self, cond: &Expr) -> Vec<usize> {
        let mark = self.mark();
        let jumps = match &cond.kind {
            ExprKind::Binary(BinOp::And, ..) => self.jumps_if_false(cond),
            ExprKind::Binary(op @ (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge), lhs, rhs) => {
                vec![self.compare_jump(*op, (lhs, rhs), cond.span, false, Pc(0))]
            }
            // `!xs[i]` of a list of bools: one jump taken when it is true.
            ExprKind::Unary(UnaryOp::Not, operand) if is_index(operand) => {
                let jump = self.element_jump(operand, true, Pc(0), Some(cond.span));
                jump.into_iter().collect()
            }
            // `!b`: one jump taken when `b` is true.
            ExprKind::Unary(UnaryOp::Not, operand) => {
                let (ty, src) = self.expr(operand, None);
                match self.unifier.shallow(&ty) {
                    Type::Bool => vec![self.emit(
                        Op::JumpIfTrue {
                            cond: src,
                            target: Pc(0),
                        },
                        cond.span,
                    )],
                    Type::Error => Vec::new(),
                    other => {
                        self.unary_mismatch(UnaryOp::Not, &other, cond.span);
                        Vec::new()
                    }
                }
            }
            _ if is_index(cond) => {
                let jump = self.element_jump(cond, false, Pc(0), None);
                jump.into_iter().collect()
            }
            _ => {
                let reg = self.check(cond, &Type::Bool);
                vec![self.emit(
                    Op::JumpIfFalse {
                        cond: reg,
                        target: Pc(0),
                    },
                    cond.span,
                )]
            }
        };
        self.free_to(mark);
        jumps
    }

    /// Emits one jump to `target` taken when the condition `cond`, an
    /// index expression `object[index]`, is `when`: for an element of a
    /// list of bools, `JumpIfListTrue` or `JumpIfListFalse`, which test it
    /// where it is; for anything else (a map's value, a list whose element
    /// type is not known yet), the element read into a register and
    /// `JumpIfTrue` or `JumpIfFalse`, checked as any condition is, or, under
    /// a `!` (`negation`, the span of the `!` expression), as an operand of
    /// `!` is. Returns the jump's index (none after a `!` of a mistyped
    /// operand, as `!` of any other operand).
    fn element_jump(
        &mut self,
        cond: &Expr,
        when: bool,
        target: Pc,
        negation: Option<Span>,
    ) -> Option<usize> {
        let ExprKind::Index(object, index) = &cond.kind else {
            unreachable!("element_jump of a condition that is not an index");
        };
        let (ty, obj) = self.expr(object, None);
        let bools = match self.unifier.shallow(&ty) {
            Type::List(element) => self.unifier.shallow(&element) == Type::Bool,
            _ => false,
        };
        if !bools {
            let dst = self.alloc();
            let actual = self.index_of((ty, obj), object.span, index, dst, cond.span);
            match negation {
                None => self.expect_type(cond.span, &Type::Bool, &actual),
                Some(span) => match self.unifier.shallow(&actual) {
                    Type::Bool => {}
                    Type::Error => return None,
                    other => {
                        self.unary_mismatch(UnaryOp::Not, &other, span);
                        return None;
                    }
                },
            }
            let jump = match when {
                true => Op::JumpIfTrue { cond: dst, target },
                false => Op::JumpIfFalse { cond: dst, target },
            };
            return Some(self.emit(jump, cond.span));
        }
        let index = self.check(index, &Type::Int);
        let jump = match when {
            true => Op::JumpIfListTrue {
                list: obj,
                index,
                target,
            },
            false => Op::JumpIfListFalse {
                list: obj,
                index,
                target,
            },
        };
        Some(self.emit(jump, cond.span))
    }

    fn if_stmt(&mut self, cond: &Expr, then: &Block, els: Option<&Block>, span: Span) {
        let to_else = self.jumps_if_false(cond);
        self.scoped_block(then);
        match els {
            Some(els) => {
                let to_end = self.jump_forward(span);
                to_else.into_iter().for_each(|jump| self.patch_here(jump));
                self.scoped_block(els);
                self.patch_here(to_end);
            }
            None => to_else.into_iter().for_each(|jump| self.patch_here(jump)),
        }
    }

    fn if_let(
        &mut self,
        name: &Ident,
        value: &Expr,
        then: &Block,
        els: Option<&Block>,
        span: Span,
    ) {
        let (ty, src) = self.expr(value, None);
        let inner = self.optional_inner(&ty, "`if let`", value.span, "never nil");
        let to_else = self.emit(Op::JumpIfNil { src, target: Pc(0) }, value.span);
        self.push_scope();
        let reg = self.alloc();
        self.emit(Op::Move { dst: reg, src }, name.span);
        self.bind_local(name, reg, inner);
        self.block_stmts(then);
        self.pop_scope();
        match els {
            Some(els) => {
                let to_end = self.jump_forward(span);
                self.patch_here(to_else);
                self.scoped_block(els);
                self.patch_here(to_end);
            }
            None => self.patch_here(to_else),
        }
    }

    /// Emits one jump to `target` taken when the comparison `lhs op rhs`
    /// (`<`, `<=`, `>`, `>=`) is `when`: a fused compare and branch for
    /// ints (with an immediate for a small literal on the right), else the
    /// comparison's value and `JumpIfTrue`/`JumpIfFalse`. Returns the
    /// jump's index.
    fn compare_jump(
        &mut self,
        op: BinOp,
        (lhs, rhs): (&Expr, &Expr),
        span: Span,
        when: bool,
        target: Pc,
    ) -> usize {
        let (lt, l) = self.expr(lhs, None);
        let lhs_int = self.unifier.shallow(&lt) == Type::Int;
        if let (true, Some(bound)) = (lhs_int, immediate_bound(op, rhs)) {
            let jump = match (bound, when) {
                (Bound::Below(imm), false) => Op::JumpIfNotLtIntImm {
                    lhs: l,
                    imm,
                    target,
                },
                (Bound::Above(imm), false) => Op::JumpIfNotGtIntImm {
                    lhs: l,
                    imm,
                    target,
                },
                (Bound::Below(imm), true) => Op::JumpIfLtIntImm {
                    lhs: l,
                    imm,
                    target,
                },
                (Bound::Above(imm), true) => Op::JumpIfGtIntImm {
                    lhs: l,
                    imm,
                    target,
                },
            };
            return self.emit(jump, span);
        }
        let (rt, r) = self.expr(rhs, Some(&lt));
        if !(lhs_int && self.unifier.shallow(&rt) == Type::Int) {
            let cond = self.alloc();
            self.binary_op(op, (lt, l), (rt, r), cond, span);
            let jump = match when {
                true => Op::JumpIfTrue { cond, target },
                false => Op::JumpIfFalse { cond, target },
            };
            return self.emit(jump, span);
        }
        // `a > b` is `b < a`, and `a >= b` is `b <= a`.
        let (lhs, rhs, strict) = match op {
            BinOp::Lt => (l, r, true),
            BinOp::Le => (l, r, false),
            BinOp::Gt => (r, l, true),
            _ => (r, l, false),
        };
        let jump = match (strict, when) {
            (true, false) => Op::JumpIfNotLtInt { lhs, rhs, target },
            (false, false) => Op::JumpIfNotLeInt { lhs, rhs, target },
            (true, true) => Op::JumpIfLtInt { lhs, rhs, target },
            (false, true) => Op::JumpIfLeInt { lhs, rhs, target },
        };
        self.emit(jump, span)
    }

    /// `while cond { body }`, with the test at the bottom: a jump to it
    /// on entry, then one conditional jump back to the body a time round.
    fn while_stmt(&mut self, cond: &Expr, body: &Block, span: Span) {
        let to_test = self.jump_forward(span);
        let body_start = self.here();
        self.enter_loop();
        self.scoped_block(body);
        let test = self.here();
        self.patch(to_test, test);
        self.jump_if_true(cond, body_start);
        let end = self.here();
        self.exit_loop(test, end);
    }

    /// Emits a jump to `target` taken when `cond` is true: one fused
    /// compare and branch for a comparison of ints, `Jump` for `true`,
    /// else the condition's value and `JumpIfTrue`.
    fn jump_if_true(&mut self, cond: &Expr, target: Pc) {
        let mark = self.mark();
        match &cond.kind {
            ExprKind::Bool(true) => {
                self.emit(Op::Jump { target }, cond.span);
            }
            ExprKind::Binary(op @ (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge), lhs, rhs) => {
                self.compare_jump(*op, (lhs, rhs), cond.span, true, target);
            }
            _ if is_index(cond) => {
                self.element_jump(cond, true, target, None);
            }
            _ => {
                let reg = self.check(cond, &Type::Bool);
                self.emit(Op::JumpIfTrue { cond: reg, target }, cond.span);
            }
        }
        self.free_to(mark);
    }

    pub(super) fn enter_loop(&mut self) {
        let try_depth = self.b().try_depth;
        self.b().loops.push(LoopCtx {
            try_depth,
            ..LoopCtx::default()
        });
    }

    /// Closes the innermost loop: `continue` goes to `next`, `break` to `end`.
    pub(super) fn exit_loop(&mut self, next: Pc, end: Pc) {
        let ctx = self.b().loops.pop().expect("a loop is open");
        ctx.continues
            .into_iter()
            .for_each(|jump| self.patch(jump, next));
        ctx.breaks
            .into_iter()
            .for_each(|jump| self.patch(jump, end));
    }

    fn for_stmt(
        &mut self,
        first: &Ident,
        second: Option<&Ident>,
        iter: &ForIter,
        body: &Block,
        span: Span,
    ) {
        match iter {
            ForIter::Range { lo, hi, inclusive } => {
                if let Some(second) = second {
                    self.error(Diagnostic::new(
                        codes::MISMATCH,
                        "a range gives one value per iteration",
                        second.span,
                        "remove this name",
                    ));
                }
                self.for_range(first, lo, hi, *inclusive, body, span);
            }
            ForIter::Expr(expr) => {
                let (ty, src) = self.expr(expr, None);
                match self.unifier.shallow(&ty) {
                    Type::List(element) => self.for_list(first, second, src, *element, body, span),
                    Type::Coro(yields, _) => self.for_coro(first, second, src, *yields, body, span),
                    Type::Chan(element) => self.for_chan(first, second, src, *element, body, span),
                    Type::Map(key, value) => {
                        self.for_map(first, second, src, (*key, *value), body, span)
                    }
                    Type::Error => {}
                    other => {
                        let shown = self.show(&other);
                        self.error(Diagnostic::new(
                            codes::MISMATCH,
                            format!("cannot iterate over a value of type `{shown}`"),
                            expr.span,
                            "not a list, map, channel, coroutine or range",
                        ));
                    }
                }
            }
        }
    }

    fn for_range(
        &mut self,
        var: &Ident,
        lo: &Expr,
        hi: &Expr,
        inclusive: bool,
        body: &Block,
        span: Span,
    ) {
        let counter = self.alloc_n(3);
        self.check_into(lo, counter, &Type::Int);
        let end = Reg(counter.0 + 1);
        self.check_into(hi, end, &Type::Int);
        if inclusive {
            self.emit(
                Op::AddIntImm {
                    dst: end,
                    lhs: end,
                    imm: 1,
                },
                hi.span,
            );
        }
        let prep = self.emit(
            Op::ForRangePrep {
                counter,
                exit: Pc(0),
            },
            span,
        );
        let body_start = self.here();
        self.enter_loop();
        self.push_scope();
        let loop_var = Reg(counter.0 + 2);
        if self.b().cells.contains(&var.name) {
            let reg = self.alloc();
            self.emit(
                Op::Move {
                    dst: reg,
                    src: loop_var,
                },
                var.span,
            );
            self.bind_local(var, reg, Type::Int);
        } else {
            self.add_local(var, loop_var, Type::Int, false);
        }
        self.block_stmts(body);
        self.pop_scope();
        let next = self.here();
        let body_code = &self.b().code[body_start.index()..];
        let back_edge = if read_only_as_int(body_code, loop_var) {
            Op::ForRangeLoopInt {
                counter,
                body: body_start,
            }
        } else {
            Op::ForRangeLoop {
                counter,
                body: body_start,
            }
        };
        self.emit(back_edge, span);
        let exit = self.here();
        self.exit_loop(next, exit);
        self.patch(prep, exit);
    }

    /// `for x in xs` and `for i, x in xs`: one instruction a time round,
    /// `ForListNext` at the bottom, which reads the list's length each
    /// time (so a body that shrinks the list ends the loop early instead
    /// of failing).
    fn for_list(
        &mut self,
        first: &Ident,
        second: Option<&Ident>,
        list: Reg,
        element: Type,
        body: &Block,
        span: Span,
    ) {
        let (held, index, item) = self.container_loop_regs(list, span);
        let to_test = self.emit(Op::Jump { target: Pc(0) }, span);
        let body_start = self.here();
        self.enter_loop();
        self.push_scope();
        let (index_name, value_name) = match second {
            Some(second) => (Some(first), second),
            None => (None, first),
        };
        if let Some(index_name) = index_name {
            // The index was advanced past this element already.
            let reg = self.alloc();
            self.emit(
                Op::AddIntImm {
                    dst: reg,
                    lhs: index,
                    imm: -1,
                },
                index_name.span,
            );
            self.bind_local(index_name, reg, Type::Int);
        }
        // The variable lives in `item`, written afresh each time round
        // (a captured variable is boxed in place, a new cell each time).
        self.bind_local(value_name, item, element);
        self.block_stmts(body);
        self.pop_scope();
        let next = self.here();
        self.patch(to_test, next);
        self.emit(
            Op::ForListNext {
                index,
                list: held,
                item,
                body: body_start,
            },
            span,
        );
        let end = self.here();
        self.exit_loop(next, end);
    }

    /// The three registers of a loop over a list or a map: the container
    /// (copied, so that assigning the variable it came from does not change
    /// the loop), its index from 0, and a third for the loop's own use.
    fn container_loop_regs(&mut self, container: Reg, span: Span) -> (Reg, Reg, Reg) {
        let regs = self.alloc_n(3);
        let (held, index, third) = (regs, Reg(regs.0 + 1), Reg(regs.0 + 2));
        self.emit(
            Op::Move {
                dst: held,
                src: container,
            },
            span,
        );
        self.emit(
            Op::LoadInt {
                dst: index,
                value: 0,
            },
            span,
        );
        (held, index, third)
    }

    /// `for k in m` and `for k, v in m`, in insertion order.
    fn for_map(
        &mut self,
        first: &Ident,
        second: Option<&Ident>,
        map: Reg,
        types: (Type, Type),
        body: &Block,
        span: Span,
    ) {
        let length = |dst, map| Op::MapLen { dst, map };
        self.indexed_loop(map, length, body, span, |this, map, index| {
            let key = this.alloc();
            this.emit(
                Op::MapKeyAt {
                    dst: key,
                    map,
                    index,
                },
                first.span,
            );
            this.bind_local(first, key, types.0);
            if let Some(second) = second {
                let value = this.alloc();
                this.emit(
                    Op::MapValueAt {
                        dst: value,
                        map,
                        index,
                    },
                    second.span,
                );
                this.bind_local(second, value, types.1);
            }
        });
    }

    /// The loop over a list or a map: an index counts from 0 up to the
    /// container's length, read again each time round (so a body that
    /// shrinks the container ends the loop early instead of failing);
    /// `bind` declares the loop's variables from the container and index
    /// registers.
    fn indexed_loop(
        &mut self,
        container: Reg,
        length: fn(Reg, Reg) -> Op,
        body: &Block,
        span: Span,
        bind: impl FnOnce(&mut Self, Reg, Reg),
    ) {
        let (held, index, len) = self.container_loop_regs(container, span);
        let start = self.here();
        self.emit(length(len, held), span);
        let exit = self.emit(
            Op::JumpIfNotLtInt {
                lhs: index,
                rhs: len,
                target: Pc(0),
            },
            span,
        );
        self.enter_loop();
        self.push_scope();
        bind(self, held, index);
        self.block_stmts(body);
        self.pop_scope();
        let next = self.here();
        self.emit(
            Op::AddIntImm {
                dst: index,
                lhs: index,
                imm: 1,
            },
            span,
        );
        self.emit(Op::Jump { target: start }, span);
        let end = self.here();
        self.exit_loop(next, end);
        self.patch(exit, end);
    }

    /// `for v in coro`: resume until the body returns, binding each yielded
    /// value.
    fn for_coro(
        &mut self,
        first: &Ident,
        second: Option<&Ident>,
        coro: Reg,
        yields: Type,
        body: &Block,
        span: Span,
    ) {
        if let Some(second) = second {
            self.error(Diagnostic::new(
                codes::MISMATCH,
                "a coroutine gives one value per iteration",
                second.span,
                "remove this name",
            ));
        }
        let regs = self.alloc_n(2);
        let (coro_reg, more) = (regs, Reg(regs.0 + 1));
        self.emit(
            Op::Move {
                dst: coro_reg,
                src: coro,
            },
            span,
        );
        let start = self.here();
        self.emit(
            Op::CoroNext {
                dst: more,
                coro: coro_reg,
            },
            span,
        );
        let exit = self.emit(
            Op::JumpIfFalse {
                cond: more,
                target: Pc(0),
            },
            span,
        );
        self.enter_loop();
        self.push_scope();
        let value = self.alloc();
        self.emit(
            Op::Move {
                dst: value,
                src: coro_reg,
            },
            first.span,
        );
        let recv = self.native_by_key("coro.recv");
        self.emit(
            Op::CallNative {
                native: recv,
                base: value,
                argc: 1,
            },
            first.span,
        );
        self.bind_local(first, value, yields);
        self.block_stmts(body);
        self.pop_scope();
        self.emit(Op::Jump { target: start }, span);
        let end = self.here();
        self.exit_loop(start, end);
        self.patch(exit, end);
    }

    /// Closes the `try` blocks opened since `depth` before jumping out.
    fn close_tries(&mut self, depth: u16, span: Span) {
        let open = self.b().try_depth.saturating_sub(depth);
        for _ in 0..open {
            self.emit(Op::TryEnd, span);
        }
    }

    fn break_stmt(&mut self, span: Span) {
        self.leave_loop_body(span, true);
    }

    fn continue_stmt(&mut self, span: Span) {
        self.leave_loop_body(span, false);
    }

    /// `break` (to the loop's end) or `continue` (to its next round): close
    /// the `try` blocks opened inside the loop, then jump.
    fn leave_loop_body(&mut self, span: Span, is_break: bool) {
        let word = if is_break { "break" } else { "continue" };
        let Some(depth) = self.b().loops.last().map(|l| l.try_depth) else {
            return self.misplaced(span, word, "loop");
        };
        self.close_tries(depth, span);
        let jump = self.jump_forward(span);
        let ctx = self.b().loops.last_mut().expect("a loop is open");
        if is_break {
            ctx.breaks.push(jump);
        } else {
            ctx.continues.push(jump);
        }
    }

    fn return_stmt(&mut self, value: Option<&Expr>, span: Span) {
        if self.b().is_main {
            return self.script_return(value, span);
        }
        let ret = self.b().ret.clone();
        match value {
            Some(value) => {
                let src = self.check(value, &ret);
                self.close_tries(0, span);
                self.emit(Op::Return { src }, span);
            }
            None => {
                if !self.unifier.coerce(&ret, &Type::Nil) {
                    self.mismatch(span, &ret, &Type::Nil);
                }
                self.close_tries(0, span);
                self.emit(Op::ReturnNil, span);
            }
        }
    }

    /// `return` at the script's top level (outside any function): ends the
    /// main body, running its defers, and the value becomes the run's result
    /// (`Step::Done`). The script's result type is `T?`: the first `return`
    /// with a value that is not `nil` decides `T`, every other value must fit
    /// `T?`, and a bare `return` or the end of the script gives nil. An
    /// input at the REPL's prompt is not a script: `return` is refused there.
    fn script_return(&mut self, value: Option<&Expr>, span: Span) {
        if self.repl.is_some() {
            return self.return_at_prompt(span);
        }
        let src = value.map(|value| self.script_result(value));
        self.close_tries(0, span);
        match src {
            Some(src) => self.emit(Op::Return { src }, span),
            None => self.emit(Op::ReturnNil, span),
        };
    }

    /// Compiles the value of a top-level `return` and checks it against the
    /// script's result type `T?`, which its first value binds.
    fn script_result(&mut self, value: &Expr) -> Reg {
        let inner = self.b().ret.clone();
        let expected = Type::optional(inner.clone());
        let was_unbound = matches!(self.unifier.shallow(&inner), Type::Var(_));
        let (found, src) = self.expr(value, Some(&expected));
        if !self.unifier.coerce(&expected, &found) {
            self.script_result_mismatch(value.span, &inner, &found);
        } else if was_unbound && !matches!(self.unifier.shallow(&inner), Type::Var(_)) {
            self.b().first_return = Some(value.span);
        }
        src
    }

    /// Two top-level `return`s whose values disagree.
    fn script_result_mismatch(&mut self, span: Span, expected: &Type, found: &Type) {
        let (expected, found) = (self.show(expected), self.show(found));
        let mut diag = Diagnostic::new(
            codes::MISMATCH,
            format!(
                "mismatched types: this returns `{found}`, but the script returns `{expected}`"
            ),
            span,
            format!("returns `{found}`"),
        );
        if let Some(first) = self.b().first_return {
            diag = diag.with_label(first, format!("returns `{expected}` here"));
        }
        self.error(diag.with_help(
            "every top-level `return` gives the script's result, so their values must have one type (or be `nil`)",
        ));
    }

    /// `return` typed at the REPL's prompt.
    fn return_at_prompt(&mut self, span: Span) {
        self.error(
            Diagnostic::new(
                codes::MISPLACED,
                "`return` at the prompt",
                span,
                "`return` is only allowed inside a function or at a script's top level",
            )
            .with_help("to see a value, write it as the input's last expression"),
        );
    }

    /// `defer stmt`: the statement becomes a closure run when the function
    /// exits.
    fn defer_stmt(&mut self, inner: &Stmt, span: Span) {
        let func = self.reserve_function("defer");
        let mut builder = FnBuilder::new(func, Type::Nil, true);
        builder.generics = self.b().generics.clone();
        builder.cells = captures::cell_names_in_stmts(std::iter::once(inner));
        // A defer runs as part of this function, wherever it yields to.
        builder.effects = self.b().effects.clone();
        self.builders.push(builder);
        self.stmt(inner);
        self.emit(Op::ReturnNil, span);
        let builder = self.finish_builder(0);
        let reg = self.alloc();
        self.make_closure(&builder, reg, span);
        self.emit(Op::Defer { src: reg }, span);
    }

    fn try_stmt(&mut self, body: &Block, binding: &Ident, handler: &Block, span: Span) {
        let error = self.alloc();
        let begin = self.emit(
            Op::TryBegin {
                handler: Pc(0),
                dst: error,
            },
            span,
        );
        self.b().try_depth += 1;
        self.scoped_block(body);
        self.b().try_depth -= 1;
        self.emit(Op::TryEnd, span);
        let to_end = self.jump_forward(span);
        self.patch_here(begin);
        self.push_scope();
        let reg = self.alloc();
        self.emit(
            Op::Move {
                dst: reg,
                src: error,
            },
            binding.span,
        );
        let error_ty = self.error_type();
        self.bind_local(binding, reg, error_ty);
        self.block_stmts(handler);
        self.pop_scope();
        self.patch_here(to_end);
    }
}

/// Does compiling `expr` into a register write it only at the very end, so
/// the register may be a variable the expression itself reads?
fn writes_dst_last(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Nil
        | ExprKind::Name(_) => true,
        ExprKind::Binary(op, _, _) => !matches!(op, BinOp::And | BinOp::Or | BinOp::Coalesce),
        ExprKind::Unary(..) | ExprKind::Unwrap(_) | ExprKind::Field(..) | ExprKind::Index(..) => {
            true
        }
        _ => false,
    }
}

/// Does every path through the block end in `return` or `throw` (so its
/// end cannot be reached)?
pub(super) fn block_terminates(block: &Block) -> bool {
    block.stmts.last().is_some_and(stmt_terminates)
}

fn stmt_terminates(stmt: &Stmt) -> bool {
    match &stmt.kind {
        StmtKind::Return(_) | StmtKind::Throw(_) => true,
        StmtKind::If {
            then,
            els: Some(els),
            ..
        }
        | StmtKind::IfLet {
            then,
            els: Some(els),
            ..
        } => block_terminates(then) && block_terminates(els),
        StmtKind::Try { body, handler, .. } => block_terminates(body) && block_terminates(handler),
        StmtKind::Block(block) => block_terminates(block),
        StmtKind::While { cond, body } => {
            matches!(cond.kind, ExprKind::Bool(true)) && !has_break(body)
        }
        StmtKind::Select(arms) => arms.iter().all(|arm| block_terminates(&arm.body)),
        StmtKind::Expr(Expr {
            kind: ExprKind::Match(_, arms),
            ..
        }) => arms.iter().all(|arm| match &arm.body.kind {
            ExprKind::Block(block) => block_terminates(block),
            _ => false,
        }),
        _ => false,
    }
}

/// Does the loop body contain a `break` for this loop (not a nested one)?
fn has_break(block: &Block) -> bool {
    block.stmts.iter().any(|stmt| match &stmt.kind {
        StmtKind::Break => true,
        StmtKind::If { then, els, .. } | StmtKind::IfLet { then, els, .. } => {
            has_break(then) || els.as_ref().is_some_and(has_break)
        }
        StmtKind::Try { body, handler, .. } => has_break(body) || has_break(handler),
        StmtKind::Block(block) => has_break(block),
        StmtKind::Select(arms) => arms.iter().any(|arm| has_break(&arm.body)),
        StmtKind::Expr(Expr {
            kind: ExprKind::Match(_, arms),
            ..
        }) => arms.iter().any(|arm| match &arm.body.kind {
            ExprKind::Block(block) => has_break(block),
            _ => false,
        }),
        _ => false,
    })
}

/// A comparison of an int with a constant, as one strict bound.
#[derive(Clone, Copy)]
enum Bound {
    /// `x < imm`.
    Below(i32),
    /// `x > imm`.
    Above(i32),
}

/// `x op rhs` as a strict bound on `x`, when `rhs` is an int literal
/// that fits an immediate.
fn immediate_bound(op: BinOp, rhs: &Expr) -> Option<Bound> {
    let ExprKind::Int(Some(value)) = rhs.kind else {
        return None;
    };
    let bound = match op {
        BinOp::Lt => Bound::Below(i32::try_from(value).ok()?),
        BinOp::Le => Bound::Below(i32::try_from(value.checked_add(1)?).ok()?),
        BinOp::Gt => Bound::Above(i32::try_from(value).ok()?),
        _ => Bound::Above(i32::try_from(value.checked_sub(1)?).ok()?),
    };
    Some(bound)
}

/// Is `expr` an index expression (`object[index]`), which a condition
/// tests with [`Compiler::element_jump`]?
fn is_index(expr: &Expr) -> bool {
    matches!(expr.kind, ExprKind::Index(..))
}

/// Does every instruction of `code` that uses register `var` use it as an
/// int operand of an int instruction (arithmetic, a comparison, a list
/// index) or as its destination? Then a counted loop writes its variable
/// `var` in the form such instructions read at once (`ForRangeLoopInt`).
fn read_only_as_int(code: &[Op], var: Reg) -> bool {
    code.iter().all(|op| !uses(op, var) || int_use(op, var))
}

/// Does `op` read or write register `var`?
fn uses(op: &Op, var: Reg) -> bool {
    let mut used = false;
    op.for_each_operand(|operand| {
        used |= operand
            .registers()
            .is_some_and(|registers| registers.contains(&var.index()));
    });
    used
}

/// Is `op` an int instruction whose every register operand is an int it
/// reads or its destination (for a list's element, only the index)?
fn int_use(op: &Op, var: Reg) -> bool {
    match *op {
        Op::ListGet { list, .. } => list != var,
        Op::ListSet { list, src, .. } => list != var && src != var,
        Op::MapGetInt { map, .. } => map != var,
        Op::JumpIfListTrue { list, .. } | Op::JumpIfListFalse { list, .. } => list != var,
        Op::MapSetInt { map, src, .. } => map != var && src != var,
        Op::AddInt { .. }
        | Op::SubInt { .. }
        | Op::MulInt { .. }
        | Op::DivInt { .. }
        | Op::RemInt { .. }
        | Op::AddIntImm { .. }
        | Op::MulIntImm { .. }
        | Op::RemIntImm { .. }
        | Op::NegInt { .. }
        | Op::DivIntConst { .. }
        | Op::RemIntConst { .. }
        | Op::AddRemIntConst { .. }
        | Op::EqInt { .. }
        | Op::LtInt { .. }
        | Op::LeInt { .. }
        | Op::JumpIfNotLtInt { .. }
        | Op::JumpIfNotLeInt { .. }
        | Op::JumpIfNotLtIntImm { .. }
        | Op::JumpIfNotGtIntImm { .. }
        | Op::JumpIfLtInt { .. }
        | Op::JumpIfLeInt { .. }
        | Op::JumpIfLtIntImm { .. }
        | Op::JumpIfGtIntImm { .. } => true,
        _ => false,
    }
}
