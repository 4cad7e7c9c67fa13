//! Calls: named functions with overloads chosen by the first argument's
//! type, method-call sugar, function values, and struct and variant
//! construction.

use std::collections::HashMap;

use spool_vm::{EnumIdx, Op, Reg, StructIdx};

use super::builder::{nth, VarRef};
use super::{Callee, Compiler, TypeName};
use crate::ast::{Arg, Expr, ExprKind, Ident, Span, StrPart};
use crate::diag::{codes, Diagnostic};
use crate::types::{ParamId, Type};

/// The arguments of a call, with the receiver of a method call first.
struct CallArgs<'a> {
    receiver: Option<&'a Expr>,
    args: &'a [Arg],
}

impl<'a> CallArgs<'a> {
    fn len(&self) -> usize {
        self.args.len() + usize::from(self.receiver.is_some())
    }

    fn get(&self, index: usize) -> &'a Expr {
        match (self.receiver, index) {
            (Some(receiver), 0) => receiver,
            (Some(_), i) => &self.args[i - 1].value,
            (None, i) => &self.args[i].value,
        }
    }
}

impl Compiler {
    /// `callee(args)`.
    pub(super) fn call(
        &mut self,
        callee: &Expr,
        args: &[Arg],
        dst: Reg,
        expected: Option<&Type>,
        span: Span,
    ) -> Type {
        let spawning = std::mem::take(&mut self.spawning);
        if let ExprKind::Name(name) = &callee.kind {
            if self.lookup_var(&name.name).is_none() {
                if let Some(TypeName::Struct(id)) = self.type_names.get(&name.name).copied() {
                    self.not_spawnable(spawning, span);
                    return self.construct_struct(id, args, dst, expected, span);
                }
                if self.fn_names.contains_key(&name.name) {
                    let call_args = CallArgs {
                        receiver: None,
                        args,
                    };
                    self.spawning = spawning;
                    return self.call_named(name, call_args, dst, span, false);
                }
                if self.type_names.contains_key(&name.name) {
                    self.error(Diagnostic::new(
                        codes::NOT_CALLABLE,
                        format!("`{}` is not a function", name.name),
                        name.span,
                        "an enum: build a value with `Enum.Variant(...)`",
                    ));
                } else {
                    self.unknown_name(name);
                }
                self.args_for_errors(args);
                return Type::Error;
            }
        }
        let (ty, reg) = self.expr(callee, None);
        let callee_name = match &callee.kind {
            ExprKind::Name(name) => Some(name.name.clone()),
            _ => None,
        };
        self.spawning = spawning;
        self.call_value(reg, &ty, (callee.span, callee_name), args, dst, span)
    }

    /// `NAME.f(args)` or `NAME.Type(args)` for a file imported `as NAME`.
    fn qualified_call(
        &mut self,
        file: usize,
        name: &Ident,
        args: &[Arg],
        dst: Reg,
        expected: Option<&Type>,
        span: Span,
    ) -> Type {
        match self.declared_in(file, &name.name) {
            (Some(TypeName::Struct(id)), _) => {
                let spawning = std::mem::take(&mut self.spawning);
                self.not_spawnable(spawning, span);
                self.construct_struct(id, args, dst, expected, span)
            }
            (_, entries) if !entries.is_empty() => {
                let call_args = CallArgs {
                    receiver: None,
                    args,
                };
                self.with_fns(&name.name, entries, |c| {
                    c.call_named(name, call_args, dst, span, false)
                })
            }
            _ => {
                let file = self.file_name(file).to_string();
                self.error(Diagnostic::new(
                    codes::UNKNOWN_NAME,
                    format!("`{file}` declares no function or struct `{}`", name.name),
                    name.span,
                    "not declared in the imported file",
                ));
                self.args_for_errors(args);
                Type::Error
            }
        }
    }

    /// Compiles arguments only to report the errors inside them.
    fn args_for_errors(&mut self, args: &[Arg]) {
        for arg in args {
            let mark = self.mark();
            self.expr(&arg.value, None);
            self.free_to(mark);
        }
    }

    /// `receiver.method(args)`.
    pub(super) fn method_call(
        &mut self,
        receiver: &Expr,
        method: &Ident,
        args: &[Arg],
        dst: Reg,
        expected: Option<&Type>,
        span: Span,
    ) -> Type {
        let spawning = std::mem::take(&mut self.spawning);
        if let Some(enum_id) = self.enum_named_by(receiver) {
            self.not_spawnable(spawning, span);
            return self.construct_variant(enum_id, method, args, dst, expected, span);
        }
        if let Some(file) = self.space_named_by(receiver) {
            self.spawning = spawning;
            return self.qualified_call(file, method, args, dst, expected, span);
        }
        let imported = self.scope.methods.get(&method.name).cloned();
        if self.fn_names.contains_key(&method.name) || imported.is_some() {
            let call_args = CallArgs {
                receiver: Some(receiver),
                args,
            };
            self.spawning = spawning;
            let mut entries = self.fn_names.get(&method.name).cloned().unwrap_or_default();
            entries.extend(imported.unwrap_or_default());
            return self.with_fns(&method.name, entries, |c| {
                c.call_named(method, call_args, dst, span, true)
            });
        }
        let (ty, obj) = self.expr(receiver, None);
        let ty = self.unifier.shallow(&ty);
        if let Type::Struct(id, _) = &ty {
            if self.structs[id.index()]
                .fields
                .iter()
                .any(|(name, _)| *name == method.name)
            {
                let (index, field_ty) = self.struct_field(&ty, method).expect("field exists");
                let callee = self.alloc();
                self.spawning = spawning;
                self.emit(
                    Op::GetField {
                        dst: callee,
                        obj,
                        field: index,
                    },
                    method.span,
                );
                return self.call_value(
                    callee,
                    &field_ty,
                    (method.span, Some(method.name.clone())),
                    args,
                    dst,
                    span,
                );
            }
        }
        if ty != Type::Error {
            let shown = self.show(&ty);
            let mut diag = Diagnostic::new(
                codes::NO_FIELD,
                format!("no method `{}` for type `{shown}`", method.name),
                method.span,
                "no function of this name takes it as its first argument",
            );
            if let Some(hint) = self.similar_method(&method.name, &ty) {
                diag = diag.with_help(hint);
            }
            self.error(diag);
        }
        self.args_for_errors(args);
        Type::Error
    }

    /// The register the call's arguments start at: `dst` itself when it is
    /// the newest register, which saves a move of the result. The result
    /// lands at the base, so even a call without arguments owns it.
    fn call_base(&mut self, dst: Reg, argc: usize) -> Reg {
        if dst.0 + 1 == self.mark() {
            self.alloc_n(argc.saturating_sub(1));
            dst
        } else {
            self.alloc_n(argc.max(1))
        }
    }

    fn finish_call(&mut self, base: Reg, dst: Reg, span: Span) {
        if base != dst {
            self.emit(Op::Move { dst, src: base }, span);
        }
    }

    /// Calls the function value in `callee`.
    fn call_value(
        &mut self,
        callee: Reg,
        ty: &Type,
        (callee_span, callee_name): (Span, Option<String>),
        args: &[Arg],
        dst: Reg,
        span: Span,
    ) -> Type {
        let spawning = std::mem::take(&mut self.spawning);
        let fn_type = match self.unifier.shallow(ty) {
            Type::Fn(fn_type) => *fn_type,
            Type::Error => {
                self.args_for_errors(args);
                return Type::Error;
            }
            other => {
                let shown = self.show(&other);
                self.error(Diagnostic::new(
                    codes::NOT_CALLABLE,
                    format!("this is not a function: it has type `{shown}`"),
                    callee_span,
                    "not a function",
                ));
                self.args_for_errors(args);
                return Type::Error;
            }
        };
        self.reject_named_args(args);
        if !self.check_arity(fn_type.params.len(), args.len(), span) {
            self.args_for_errors(args);
            return fn_type.ret;
        }
        if spawning {
            let base = self.alloc_n(args.len() + 1);
            self.emit(
                Op::Move {
                    dst: base,
                    src: callee,
                },
                span,
            );
            for (index, (arg, param)) in args.iter().zip(&fn_type.params).enumerate() {
                self.check_into(&arg.value, nth(base, index + 1), param);
            }
            if let Some(yields) = &fn_type.yields {
                let effects = (yields.clone(), self.unifier.fresh());
                self.spawned_effects(callee_name.as_deref(), &effects, span);
            }
            let argc = args.len() as u16;
            self.emit(Op::Spawn { dst, base, argc }, span);
            return fn_type.ret;
        }
        let base = self.call_base(dst, args.len());
        for (index, (arg, param)) in args.iter().zip(&fn_type.params).enumerate() {
            self.check_into(&arg.value, nth(base, index), param);
        }
        if fn_type.yields.is_some() || fn_type.receives.is_some() {
            // A side the type leaves out is unconstrained.
            let mut either = |ty: &Option<Type>| ty.clone().unwrap_or_else(|| self.unifier.fresh());
            let effects = (either(&fn_type.yields), either(&fn_type.receives));
            let name = match &callee_name {
                Some(name) => format!("`{name}`"),
                None => "this function".to_string(),
            };
            self.link_effects(&name, &effects, span);
        }
        self.emit(
            Op::CallValue {
                callee,
                base,
                argc: args.len() as u16,
            },
            span,
        );
        self.finish_call(base, dst, span);
        fn_type.ret
    }

    fn reject_named_args(&mut self, args: &[Arg]) {
        for arg in args {
            if let Some(name) = &arg.name {
                self.error(Diagnostic::new(
                    codes::ARITY,
                    format!("unexpected argument label `{}`", name.name),
                    name.span,
                    "only struct construction takes labelled arguments",
                ));
            }
        }
    }

    fn check_arity(&mut self, expected: usize, found: usize, span: Span) -> bool {
        if expected == found {
            return true;
        }
        let plural = if expected == 1 { "" } else { "s" };
        self.error(Diagnostic::new(
            codes::ARITY,
            format!("expected {expected} argument{plural}, found {found}"),
            span,
            format!("takes {expected} argument{plural}"),
        ));
        false
    }

    /// Fresh type variables for a named function's generics: its parameter
    /// and result types.
    pub(super) fn instantiate(&mut self, entry: usize) -> (Vec<Type>, Type) {
        let entry = &self.fns[entry];
        let generics = entry.generics.clone();
        let (params, ret) = (entry.params.clone(), entry.ret.clone());
        let map: HashMap<ParamId, Type> = generics
            .into_iter()
            .map(|id| (id, self.unifier.fresh()))
            .collect();
        (
            params.iter().map(|p| p.subst(&map)).collect(),
            ret.subst(&map),
        )
    }

    /// A call of a named function (or a method call, with `args.receiver`).
    fn call_named(
        &mut self,
        name: &Ident,
        args: CallArgs<'_>,
        dst: Reg,
        span: Span,
        is_method: bool,
    ) -> Type {
        let spawning = std::mem::take(&mut self.spawning);
        self.reject_named_args(args.args);
        let mut candidates = self.fn_names[&name.name].clone();
        candidates.sort_by_key(|&index| !self.fns[index].user);
        let argc = args.len();
        // A spawn keeps the function in the first register, before the
        // arguments.
        let (callee_reg, base) = if spawning {
            let callee_reg = self.alloc_n(argc + 1);
            (Some(callee_reg), nth(callee_reg, 1))
        } else {
            (None, self.call_base(dst, argc))
        };
        let mut first_done = None;
        let chosen = if (candidates.len() == 1 && !is_method) || argc == 0 {
            let arity_fits = |&&c: &&usize| self.fns[c].params.len() == argc;
            *candidates.iter().find(arity_fits).unwrap_or(&candidates[0])
        } else {
            let first = args.get(0);
            let (first_ty, _) = (self.expr_into(first, base, None), ());
            first_done = Some(first_ty.clone());
            match self.choose_overload(&candidates, &first_ty, argc) {
                Some(chosen) => chosen,
                None => {
                    self.no_overload(name, &first_ty, first.span, is_method);
                    for index in 1..argc {
                        self.expr_into(args.get(index), nth(base, index), None);
                    }
                    return Type::Error;
                }
            }
        };
        let (params, ret) = self.instantiate(chosen);
        if !self.check_arity(
            params.len() - usize::from(is_method),
            argc - usize::from(is_method),
            span,
        ) {
            return ret;
        }
        for (index, param) in params.iter().enumerate() {
            let arg = args.get(index);
            match (&first_done, index) {
                (Some(first_ty), 0) => self.expect_type(arg.span, param, first_ty),
                _ => self.check_into(arg, nth(base, index), param),
            }
        }
        if let Some(effects) = self.fns[chosen].effects.clone() {
            if spawning {
                self.spawned_effects(Some(&name.name), &effects, span);
            } else {
                self.link_effects(&format!("`{}`", name.name), &effects, span);
            }
        }
        let argc = argc + self.hidden_yield_type(chosen, &ret, base, argc, span);
        if let Some(callee_reg) = callee_reg {
            self.emit_spawn(chosen, callee_reg, argc, dst, span);
            return ret;
        }
        let op = match self.fns[chosen].callee {
            // `next` switches to the coroutine's fiber: an instruction, not a call.
            Callee::Native(native) if self.natives[native.index()].key == "coro.next" => {
                Op::CoroNext {
                    dst: base,
                    coro: base,
                }
            }
            // Library functions with an instruction of their own.
            Callee::Native(native) if self.natives[native.index()].key == "float.sqrt" => {
                Op::SqrtFloat {
                    dst: base,
                    src: base,
                }
            }
            Callee::Native(native) if self.natives[native.index()].key == "list.push" => {
                Op::ListPush { base }
            }
            Callee::Native(native) if self.natives[native.index()].key == "list.len" => {
                Op::ListLen {
                    dst: base,
                    list: base,
                }
            }
            Callee::Script(func) => Op::Call {
                func,
                base,
                argc: argc as u16,
            },
            Callee::Native(native) => Op::CallNative {
                native,
                base,
                argc: argc as u16,
            },
        };
        self.emit(op, span);
        self.finish_call(base, dst, span);
        ret
    }

    /// `xs.push(x)` as a statement, where `xs` is a local list (not a
    /// captured one) and `push` is the library's: one `ListPushValue` on
    /// the local's register and the value's, without a call window.
    /// Returns false, having emitted nothing, for any other statement.
    /// The value must not contain a statement (a block, `if` or `match`),
    /// which could assign `xs` before the push reads it.
    pub(super) fn list_push_statement(
        &mut self,
        receiver: &Expr,
        method: &Ident,
        args: &[Arg],
        span: Span,
    ) -> bool {
        let ([arg], ExprKind::Name(name)) = (args, &receiver.kind) else {
            return false;
        };
        if method.name != "push" || arg.name.is_some() || !without_statements(&arg.value) {
            return false;
        }
        if self.scope.methods.contains_key("push") {
            return false;
        }
        let library_push = match self.fn_names.get("push").map(Vec::as_slice) {
            Some(&[only]) => matches!(self.fns[only].callee,
                Callee::Native(native) if self.natives[native.index()].key == "list.push"),
            _ => false,
        };
        let Some(VarRef::Local {
            reg: list,
            cell: false,
            ty,
        }) = library_push.then(|| self.lookup_var(&name.name)).flatten()
        else {
            return false;
        };
        let Type::List(item) = self.unifier.shallow(&ty) else {
            return false;
        };
        let mark = self.mark();
        let value = self.check(&arg.value, &item);
        self.emit(Op::ListPushValue { list, value }, span);
        self.free_to(mark);
        true
    }

    /// Loads the chosen function into `callee_reg` and spawns it with the
    /// arguments after it.
    fn emit_spawn(&mut self, chosen: usize, callee_reg: Reg, argc: usize, dst: Reg, span: Span) {
        let load = match self.fns[chosen].callee {
            Callee::Native(native) if self.natives[native.index()].key == "coro.next" => {
                self.error(Diagnostic::new(
                    codes::NOT_CALLABLE,
                    "`next` cannot be spawned: it resumes a coroutine in the current task",
                    span,
                    "not a function to start a task with",
                ));
                return;
            }
            Callee::Script(func) => Op::LoadFunc {
                dst: callee_reg,
                func,
            },
            Callee::Native(native) => Op::LoadNative {
                dst: callee_reg,
                native,
            },
        };
        self.emit(load, span);
        let argc = argc as u16;
        self.emit(
            Op::Spawn {
                dst,
                base: callee_reg,
                argc,
            },
            span,
        );
    }

    /// `coroutine(f)` also receives the coroutine's yield type, filled in
    /// once every type is known, for the VM's run-time check of yields the
    /// checker cannot see. Returns the number of hidden arguments.
    fn hidden_yield_type(
        &mut self,
        chosen: usize,
        ret: &Type,
        base: Reg,
        argc: usize,
        span: Span,
    ) -> usize {
        let Callee::Native(native) = self.fns[chosen].callee else {
            return 0;
        };
        let Type::Coro(yields, _) = ret else { return 0 };
        if self.natives[native.index()].key != "coro.new" {
            return 0;
        }
        let reg = self.alloc();
        debug_assert_eq!(reg, nth(base, argc), "arguments are consecutive");
        let idx = spool_vm::ConstIdx(self.constants.len() as u32);
        self.constants
            .push(spool_vm::Constant::Type(spool_vm::TypeDesc::default()));
        self.late_type_names.push((idx, (**yields).clone()));
        self.emit(Op::LoadConst { dst: reg, idx }, span);
        1
    }

    /// The first overload (script functions before library ones) whose
    /// first parameter accepts `first` and whose arity fits.
    fn choose_overload(
        &mut self,
        candidates: &[usize],
        first: &Type,
        argc: usize,
    ) -> Option<usize> {
        let fits = |compiler: &mut Compiler, candidate: usize, check_arity: bool| {
            (!check_arity || compiler.fns[candidate].params.len() == argc)
                && compiler.first_param_accepts(candidate, first)
        };
        let exact = candidates.iter().copied().find(|&c| fits(self, c, true));
        exact.or_else(|| candidates.iter().copied().find(|&c| fits(self, c, false)))
    }

    /// Does the first parameter of function `entry` accept a value of type
    /// `first`? Binds nothing.
    pub(super) fn first_param_accepts(&mut self, entry: usize, first: &Type) -> bool {
        let (params, _) = self.instantiate(entry);
        let Some(param) = params.first() else {
            return false;
        };
        let snapshot = self.unifier.snapshot();
        let accepts = self.unifier.coerce(param, first);
        self.unifier.rollback(snapshot);
        accepts
    }

    fn no_overload(&mut self, name: &Ident, first: &Type, first_span: Span, is_method: bool) {
        if *first == Type::Error {
            return;
        }
        let shown = self.show(first);
        let message = if is_method {
            format!("no method `{}` for type `{shown}`", name.name)
        } else {
            format!(
                "no function `{}` accepts `{shown}` as its first argument",
                name.name
            )
        };
        let accepted: Vec<String> = self.fn_names[&name.name]
            .clone()
            .into_iter()
            .filter_map(|index| self.fns[index].params.first().cloned())
            .map(|ty| format!("`{}`", self.show(&ty)))
            .collect();
        let similar = if is_method {
            self.similar_method(&name.name, first)
        } else {
            None
        };
        let help = similar.unwrap_or_else(|| self.overload_help(name, first, &accepted));
        self.error(
            Diagnostic::new(
                codes::NO_OVERLOAD,
                message,
                name.span,
                format!("called on `{shown}`"),
            )
            .with_label(first_span, format!("this has type `{shown}`"))
            .with_help(help),
        );
    }

    /// The hint for an unknown method `name` of a value of type `ty`: the
    /// closest of the functions whose first parameter accepts it (and, for
    /// a struct, of its fields).
    fn similar_method(&mut self, name: &str, ty: &Type) -> Option<String> {
        let mut names: Vec<String> = Vec::new();
        for entry in 0..self.fns.len() {
            if self.fns[entry].name != name && self.first_param_accepts(entry, ty) {
                names.push(self.fns[entry].name.clone());
            }
        }
        if let Type::Struct(id, _) = self.unifier.resolve(ty) {
            names.extend(
                self.structs[id.index()]
                    .fields
                    .iter()
                    .map(|(n, _)| n.clone()),
            );
        }
        crate::suggest::did_you_mean(name, names.iter().map(String::as_str))
    }

    /// The hint for a call no overload accepts: an optional that would fit
    /// once unwrapped gets told how; otherwise the accepted types are listed.
    fn overload_help(&mut self, name: &Ident, first: &Type, accepted: &[String]) -> String {
        if let Type::Opt(inner) = self.unifier.resolve(first) {
            let candidates = self.fn_names[&name.name].clone();
            if self
                .choose_overload(&candidates, &inner, usize::MAX)
                .is_some()
            {
                return "the value may be nil: unwrap it with `!`, give a default with `??`, or test it with `if let`"
                    .to_string();
            }
        }
        format!(
            "`{}` takes {} as its first argument",
            name.name,
            accepted.join(" or ")
        )
    }

    /// `Point(x: 1.0, y: 2.0)` or `Point(1.0, 2.0)`.
    fn construct_struct(
        &mut self,
        id: StructIdx,
        args: &[Arg],
        dst: Reg,
        expected: Option<&Type>,
        span: Span,
    ) -> Type {
        let def = self.structs[id.index()].clone();
        let (result, type_args) =
            self.constructed_type(&def.generics, expected, |args| Type::Struct(id, args));
        let field_types: Vec<Type> = def
            .fields
            .iter()
            .map(|(_, ty)| ty.subst(&type_args))
            .collect();
        let start = self.alloc_n(def.fields.len());
        let named = args.iter().filter(|a| a.name.is_some()).count();
        if named > 0 && named < args.len() {
            self.error(Diagnostic::new(
                codes::ARITY,
                "mix of labelled and positional fields",
                span,
                "label every field or none",
            ));
            return Type::Error;
        }
        // `Retry()` of a struct with defaults leaves every field out, as a
        // named construction; positional construction gives every field.
        let all_defaults = args.is_empty() && def.defaults.iter().any(Option::is_some);
        if named == 0 && !all_defaults {
            if !self.positional_fields(args, &field_types, start, span) {
                return result;
            }
        } else {
            self.named_fields(&def, &field_types, args, start, span);
        }
        self.emit(
            Op::NewRecord {
                dst,
                ty: id,
                start,
                count: def.fields.len() as u16,
            },
            span,
        );
        result
    }

    /// The type a struct or variant constructor builds, with fresh type
    /// arguments for the declaration's `generics`, and the substitution that
    /// gives its fields' types. An expected type binds the arguments before
    /// the fields are checked, so `nil`, `[]` and lambdas among them take
    /// their types from it. It binds them by the rule the finished value is
    /// checked with, `coerce`, which looks through an expected optional:
    /// `Box(nil)` where `Box<int?>?` is expected is a `Box<int?>`, not a
    /// `Box<nil>`. An expected type that does not fit binds nothing; the
    /// mismatch is reported when the value is checked.
    fn constructed_type(
        &mut self,
        generics: &[ParamId],
        expected: Option<&Type>,
        make: impl FnOnce(Vec<Type>) -> Type,
    ) -> (Type, HashMap<ParamId, Type>) {
        let type_args: Vec<Type> = generics.iter().map(|_| self.unifier.fresh()).collect();
        let result = make(type_args.clone());
        if let Some(expected) = expected {
            let snapshot = self.unifier.snapshot();
            if !self.unifier.coerce(expected, &result) {
                self.unifier.rollback(snapshot);
            }
        }
        let substitution = generics.iter().copied().zip(type_args).collect();
        (result, substitution)
    }

    /// Compiles a constructor's positional arguments into consecutive
    /// registers from `start`, each checked against its field's type; false
    /// (reported) when their number is wrong.
    fn positional_fields(
        &mut self,
        args: &[Arg],
        field_types: &[Type],
        start: Reg,
        span: Span,
    ) -> bool {
        if !self.check_arity(field_types.len(), args.len(), span) {
            self.args_for_errors(args);
            return false;
        }
        for (index, (arg, ty)) in args.iter().zip(field_types).enumerate() {
            self.check_into(&arg.value, nth(start, index), ty);
        }
        true
    }

    /// Compiles a constructor's labelled arguments into their fields'
    /// registers from `start`; a field left out takes its default.
    fn named_fields(
        &mut self,
        def: &super::StructDef,
        field_types: &[Type],
        args: &[Arg],
        start: Reg,
        span: Span,
    ) {
        let (struct_name, fields) = (def.name.as_str(), &def.fields);
        let mut given = vec![false; fields.len()];
        for arg in args {
            let label = arg.name.as_ref().expect("every argument is labelled");
            match fields.iter().position(|(name, _)| *name == label.name) {
                Some(index) if !given[index] => {
                    given[index] = true;
                    self.check_into(&arg.value, nth(start, index), &field_types[index]);
                }
                Some(_) => self.error(Diagnostic::new(
                    codes::DUPLICATE,
                    format!("field `{}` given twice", label.name),
                    label.span,
                    "already given",
                )),
                None => {
                    let mut diag = Diagnostic::new(
                        codes::NO_FIELD,
                        format!("no field `{}` on type `{struct_name}`", label.name),
                        label.span,
                        "unknown field",
                    );
                    let names = fields.iter().map(|(n, _)| n.as_str());
                    if let Some(hint) = crate::suggest::did_you_mean(&label.name, names) {
                        diag = diag.with_help(hint);
                    }
                    self.error(diag)
                }
            }
        }
        let mut missing: Vec<String> = Vec::new();
        for (index, (name, _)) in fields.iter().enumerate() {
            match def.defaults.get(index) {
                _ if given[index] => {}
                Some(Some(default)) => {
                    self.emit_field_default(default, nth(start, index), &field_types[index], span)
                }
                _ => missing.push(format!("`{name}`")),
            }
        }
        if !missing.is_empty() {
            self.error(Diagnostic::new(
                codes::ARITY,
                format!("missing field {} in `{struct_name}`", missing.join(", ")),
                span,
                "every field without a default needs a value",
            ));
        }
    }

    /// `Enum.Variant(args)` or `Enum.Variant`.
    pub(super) fn construct_variant(
        &mut self,
        enum_id: EnumIdx,
        variant: &Ident,
        args: &[Arg],
        dst: Reg,
        expected: Option<&Type>,
        span: Span,
    ) -> Type {
        let def = self.enums[enum_id.index()].clone();
        let Some(index) = def
            .variants
            .iter()
            .position(|(name, _)| *name == variant.name)
        else {
            let names: Vec<String> = def.variants.iter().map(|(n, _)| format!("`{n}`")).collect();
            self.error(
                Diagnostic::new(
                    codes::NO_FIELD,
                    format!("no variant `{}` in enum `{}`", variant.name, def.name),
                    variant.span,
                    "unknown variant",
                )
                .with_help(
                    crate::suggest::did_you_mean(
                        &variant.name,
                        def.variants.iter().map(|(n, _)| n.as_str()),
                    )
                    .unwrap_or_else(|| format!("the variants are {}", names.join(", "))),
                ),
            );
            self.args_for_errors(args);
            return Type::Error;
        };
        let (result, type_args) =
            self.constructed_type(&def.generics, expected, |args| Type::Enum(enum_id, args));
        let payload: Vec<Type> = def.variants[index]
            .1
            .iter()
            .map(|ty| ty.subst(&type_args))
            .collect();
        self.reject_named_args(args);
        let start = self.alloc_n(payload.len());
        if !self.positional_fields(args, &payload, start, span) {
            return result;
        }
        let count = payload.len() as u16;
        self.emit(
            Op::NewVariant {
                dst,
                ty: enum_id,
                variant: index as u16,
                start,
                count,
            },
            span,
        );
        result
    }
}

/// Does `expr` contain no statement (no block, `if`, `match` or lambda
/// body), so that evaluating it cannot assign a local of the function?
fn without_statements(expr: &Expr) -> bool {
    let all = |exprs: &[Expr]| exprs.iter().all(without_statements);
    match &expr.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Nil
        | ExprKind::Name(_) => true,
        ExprKind::Str(parts) => parts.iter().all(|part| match part {
            StrPart::Lit(_) => true,
            StrPart::Expr(inner) => without_statements(inner),
        }),
        ExprKind::List(items) => all(items),
        ExprKind::Map(entries) => entries
            .iter()
            .all(|(key, value)| without_statements(key) && without_statements(value)),
        ExprKind::Unary(_, inner)
        | ExprKind::Unwrap(inner)
        | ExprKind::Field(inner, _)
        | ExprKind::Await(inner) => without_statements(inner),
        ExprKind::Binary(_, left, right) | ExprKind::Index(left, right) => {
            without_statements(left) && without_statements(right)
        }
        ExprKind::Call(callee, args) => {
            without_statements(callee) && args.iter().all(|arg| without_statements(&arg.value))
        }
        ExprKind::MethodCall { receiver, args, .. } => {
            without_statements(receiver) && args.iter().all(|arg| without_statements(&arg.value))
        }
        ExprKind::Yield(value) => value.as_deref().is_none_or(without_statements),
        ExprKind::Lambda(_)
        | ExprKind::Match(..)
        | ExprKind::Spawn(_)
        | ExprKind::Block(_)
        | ExprKind::If(_) => false,
    }
}
