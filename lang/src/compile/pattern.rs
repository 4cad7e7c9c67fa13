//! `match`: arms tried in order, patterns compiled to tests that jump to
//! the next arm on failure, and the exhaustiveness check.

use std::collections::HashMap;

use spool_vm::{EnumIdx, Op, Pc, Reg};

use super::Compiler;
use crate::ast::{Expr, LitPattern, MatchArm, Pattern, PatternKind, Span};
use crate::diag::{codes, Diagnostic};
use crate::types::{ParamId, Type};

/// What the arms seen so far cover.
#[derive(Default)]
struct Coverage {
    everything: bool,
    nil: bool,
    variants: Vec<bool>,
    bools: [bool; 2],
}

impl Compiler {
    /// Compiles a `match`. With `dst` the arms' values must agree and the
    /// result is stored there; without, the match is a statement and its
    /// arms' values are dropped.
    pub(super) fn match_expr(
        &mut self,
        scrutinee: &Expr,
        arms: &[MatchArm],
        dst: Option<Reg>,
        expected: Option<&Type>,
        span: Span,
    ) -> Type {
        let (ty, subject) = self.expr(scrutinee, None);
        let ty = self.unifier.resolve(&ty);
        let result = expected.cloned().unwrap_or_else(|| self.unifier.fresh());
        let mut coverage = Coverage {
            variants: vec![false; self.variant_count(&ty)],
            ..Coverage::default()
        };
        let mut to_end = Vec::new();
        let mut saw_value = false;
        for arm in arms {
            self.push_scope();
            let body_start = self.arm_patterns(arm, subject, &ty, &mut coverage);
            let mark = self.mark();
            let target = dst.unwrap_or_else(|| self.alloc());
            let arm_ty = self.expr_into(&arm.body, target, dst.map(|_| &result));
            if dst.is_some() && !self.unifier.coerce(&result, &arm_ty) {
                self.mismatch(arm.body.span, &result, &arm_ty);
            }
            saw_value |= arm_ty != Type::Never;
            self.free_to(mark);
            self.pop_scope();
            to_end.push(self.jump_forward(arm.span));
            body_start
                .into_iter()
                .for_each(|jump| self.patch_here(jump));
        }
        to_end.into_iter().for_each(|jump| self.patch_here(jump));
        self.check_exhaustive(&ty, &coverage, span);
        match (dst, saw_value) {
            (None, _) => Type::Nil,
            (Some(_), false) => Type::Never,
            (Some(_), true) => result,
        }
    }

    fn variant_count(&self, ty: &Type) -> usize {
        match ty {
            Type::Enum(id, _) => self.enums[id.index()].variants.len(),
            Type::Opt(inner) => self.variant_count(inner),
            _ => 0,
        }
    }

    /// Tests an arm's alternatives; returns the jumps to take when none
    /// matches (to the next arm).
    fn arm_patterns(
        &mut self,
        arm: &MatchArm,
        subject: Reg,
        ty: &Type,
        coverage: &mut Coverage,
    ) -> Vec<usize> {
        let alternatives = arm.patterns.len();
        let mut to_body = Vec::new();
        let mut failed = Vec::new();
        for (index, pattern) in arm.patterns.iter().enumerate() {
            failed.into_iter().for_each(|jump| self.patch_here(jump));
            let bind = alternatives == 1;
            if !bind && binds_names(pattern, self, ty) {
                self.error(Diagnostic::new(
                    codes::BAD_PATTERN,
                    "patterns joined with `|` cannot bind names",
                    pattern.span,
                    "binds a name",
                ));
            }
            failed = self.pattern(pattern, subject, ty, coverage, true);
            if index + 1 < alternatives {
                to_body.push(self.jump_forward(pattern.span));
            }
        }
        to_body.into_iter().for_each(|jump| self.patch_here(jump));
        failed
    }

    /// Compiles one pattern against the value in `subject`; returns the
    /// jumps taken when it does not match. `top` marks a whole arm's
    /// pattern, whose coverage counts for exhaustiveness.
    fn pattern(
        &mut self,
        pattern: &Pattern,
        subject: Reg,
        ty: &Type,
        coverage: &mut Coverage,
        top: bool,
    ) -> Vec<usize> {
        let span = pattern.span;
        match &pattern.kind {
            PatternKind::Wildcard => {
                if top {
                    coverage.everything = true;
                }
                Vec::new()
            }
            PatternKind::Name(name) => {
                if let Some(index) = self.variant_index(ty, &name.name) {
                    return self.variant_pattern(ty, index, &[], subject, coverage, top, span);
                }
                let bound_ty = match ty {
                    Type::Opt(inner) if coverage.nil => (**inner).clone(),
                    other => other.clone(),
                };
                let reg = self.alloc();
                self.emit(
                    Op::Move {
                        dst: reg,
                        src: subject,
                    },
                    span,
                );
                self.bind_local(name, reg, bound_ty);
                if top {
                    coverage.everything = true;
                }
                Vec::new()
            }
            PatternKind::Nil => {
                if !matches!(ty, Type::Opt(_) | Type::Error) {
                    self.bad_pattern(span, "`nil` can only match an optional", ty);
                }
                if top {
                    coverage.nil = true;
                }
                vec![self.emit(
                    Op::JumpIfNotNil {
                        src: subject,
                        target: Pc(0),
                    },
                    span,
                )]
            }
            PatternKind::Lit(lit) => self.literal_pattern(lit, subject, ty, coverage, top, span),
            PatternKind::Variant {
                enum_name,
                variant,
                args,
            } => {
                let enum_ty = strip_optional(ty);
                if let (Some(enum_name), Type::Enum(id, _)) = (enum_name, &enum_ty) {
                    let written = enum_name.name.rsplit('.').next().unwrap_or_default();
                    if self.enums[id.index()].name != written {
                        self.bad_pattern(enum_name.span, "this pattern names another enum", ty);
                    }
                }
                match self.variant_index(ty, &variant.name) {
                    Some(index) => {
                        self.variant_pattern(ty, index, args, subject, coverage, top, span)
                    }
                    None => {
                        if *ty != Type::Error {
                            let message =
                                format!("no variant `{}` in the matched type", variant.name);
                            self.bad_pattern(variant.span, &message, ty);
                        }
                        Vec::new()
                    }
                }
            }
        }
    }

    fn bad_pattern(&mut self, span: Span, message: &str, ty: &Type) {
        let shown = self.show(ty);
        self.error(Diagnostic::new(
            codes::BAD_PATTERN,
            format!("{message} (the matched value has type `{shown}`)"),
            span,
            "does not fit",
        ));
    }

    /// The index of the variant `name` in the matched enum type.
    fn variant_index(&self, ty: &Type, name: &str) -> Option<usize> {
        match strip_optional(ty) {
            Type::Enum(id, _) => self.enums[id.index()]
                .variants
                .iter()
                .position(|(n, _)| n == name),
            _ => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn variant_pattern(
        &mut self,
        ty: &Type,
        index: usize,
        args: &[Pattern],
        subject: Reg,
        coverage: &mut Coverage,
        top: bool,
        span: Span,
    ) -> Vec<usize> {
        let Type::Enum(id, type_args) = strip_optional(ty) else {
            return Vec::new();
        };
        let def = self.enums[id.index()].clone();
        let map: HashMap<ParamId, Type> = def.generics.iter().copied().zip(type_args).collect();
        let payload: Vec<Type> = def.variants[index]
            .1
            .iter()
            .map(|t| t.subst(&map))
            .collect();
        if payload.len() != args.len() && !args.is_empty() {
            self.error(Diagnostic::new(
                codes::BAD_PATTERN,
                format!(
                    "variant `{}` has {} field(s), the pattern has {}",
                    def.variants[index].0,
                    payload.len(),
                    args.len()
                ),
                span,
                "wrong number of fields",
            ));
            return Vec::new();
        }
        let mut failed = self.nil_guard(ty, subject, span);
        failed.push(self.emit(
            Op::JumpIfNotVariant {
                src: subject,
                variant: index as u16,
                target: Pc(0),
            },
            span,
        ));
        let mut irrefutable = true;
        for (field, (sub, sub_ty)) in args.iter().zip(&payload).enumerate() {
            if matches!(sub.kind, PatternKind::Wildcard) {
                continue;
            }
            irrefutable &= is_binding(sub, self, sub_ty);
            let reg = self.alloc();
            self.emit(
                Op::GetVariantField {
                    dst: reg,
                    src: subject,
                    index: field as u16,
                },
                sub.span,
            );
            let mut inner = Coverage::default();
            failed.extend(self.pattern(sub, reg, sub_ty, &mut inner, false));
        }
        if top && irrefutable {
            coverage.variants[index] = true;
        }
        failed
    }

    /// Against an optional, a pattern for a value first fails on nil.
    fn nil_guard(&mut self, ty: &Type, subject: Reg, span: Span) -> Vec<usize> {
        if !matches!(ty, Type::Opt(_)) {
            return Vec::new();
        }
        vec![self.emit(
            Op::JumpIfNil {
                src: subject,
                target: Pc(0),
            },
            span,
        )]
    }

    fn literal_pattern(
        &mut self,
        lit: &LitPattern,
        subject: Reg,
        ty: &Type,
        coverage: &mut Coverage,
        top: bool,
        span: Span,
    ) -> Vec<usize> {
        let literal_ty = match lit {
            LitPattern::Int(_) => Type::Int,
            LitPattern::Float(_) => Type::Float,
            LitPattern::Str(_) => Type::Str,
            LitPattern::Bool(_) => Type::Bool,
        };
        if !self.unifier.coerce(ty, &literal_ty) {
            self.bad_pattern(span, "this literal cannot match", ty);
            return Vec::new();
        }
        if let (LitPattern::Bool(value), true) = (lit, top) {
            coverage.bools[usize::from(*value)] = true;
        }
        let value = self.alloc();
        let test = self.alloc();
        let op = match lit {
            LitPattern::Int(n) => {
                self.load_int(*n, value, span);
                Op::EqInt {
                    dst: test,
                    lhs: subject,
                    rhs: value,
                }
            }
            LitPattern::Float(x) => {
                let idx = self.constant(super::ConstKey::Float(x.to_bits()));
                self.emit(Op::LoadConst { dst: value, idx }, span);
                Op::EqFloat {
                    dst: test,
                    lhs: subject,
                    rhs: value,
                }
            }
            LitPattern::Str(text) => {
                self.load_str(text, value, span);
                Op::Eq {
                    dst: test,
                    lhs: subject,
                    rhs: value,
                }
            }
            LitPattern::Bool(b) => {
                self.emit(
                    Op::LoadBool {
                        dst: value,
                        value: *b,
                    },
                    span,
                );
                Op::Eq {
                    dst: test,
                    lhs: subject,
                    rhs: value,
                }
            }
        };
        // A literal against an optional must not compare nil as an int.
        let mut failed = self.nil_guard(ty, subject, span);
        let op = match op {
            Op::EqInt { dst, lhs, rhs } | Op::EqFloat { dst, lhs, rhs } if !failed.is_empty() => {
                Op::Eq { dst, lhs, rhs }
            }
            other => other,
        };
        self.emit(op, span);
        failed.push(self.emit(
            Op::JumpIfFalse {
                cond: test,
                target: Pc(0),
            },
            span,
        ));
        failed
    }

    fn check_exhaustive(&mut self, ty: &Type, coverage: &Coverage, span: Span) {
        if coverage.everything || *ty == Type::Error {
            return;
        }
        let missing: Vec<String> = match ty {
            Type::Enum(id, _) => self.missing_variants(*id, coverage),
            Type::Opt(inner) => {
                let mut missing = Vec::new();
                if !coverage.nil {
                    missing.push("`nil`".to_string());
                }
                match &**inner {
                    Type::Enum(id, _) => missing.extend(self.missing_variants(*id, coverage)),
                    _ => missing.push("a non-nil value".to_string()),
                }
                missing
            }
            Type::Bool => [(false, "`false`"), (true, "`true`")]
                .iter()
                .filter(|(value, _)| !coverage.bools[usize::from(*value)])
                .map(|(_, name)| name.to_string())
                .collect(),
            _ => vec!["other values".to_string()],
        };
        if missing.is_empty() {
            return;
        }
        self.error(
            Diagnostic::new(
                codes::NON_EXHAUSTIVE,
                format!("non-exhaustive match: {} not covered", missing.join(", ")),
                span,
                "some values match no arm",
            )
            .with_help("add the missing arms, or a `_ => ...` arm"),
        );
    }

    fn missing_variants(&self, id: EnumIdx, coverage: &Coverage) -> Vec<String> {
        self.enums[id.index()]
            .variants
            .iter()
            .zip(&coverage.variants)
            .filter(|(_, covered)| !**covered)
            .map(|((name, _), _)| format!("`{name}`"))
            .collect()
    }
}

fn strip_optional(ty: &Type) -> Type {
    match ty {
        Type::Opt(inner) => (**inner).clone(),
        other => other.clone(),
    }
}

/// Does the pattern match every value (a binding or `_`, not a variant)?
fn is_binding(pattern: &Pattern, compiler: &Compiler, ty: &Type) -> bool {
    match &pattern.kind {
        PatternKind::Wildcard => true,
        PatternKind::Name(name) => compiler.variant_index(ty, &name.name).is_none(),
        _ => false,
    }
}

/// Does the pattern bind a name anywhere?
fn binds_names(pattern: &Pattern, compiler: &Compiler, ty: &Type) -> bool {
    match &pattern.kind {
        PatternKind::Name(name) => compiler.variant_index(ty, &name.name).is_none(),
        PatternKind::Variant { args, .. } => args
            .iter()
            .any(|arg| matches!(arg.kind, PatternKind::Name(_))),
        _ => false,
    }
}
