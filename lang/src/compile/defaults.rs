//! Struct field defaults (LANGUAGE.md §10): `struct Retry { attempts: int =
//! 3 }`. A default is checked once, where the struct is declared (its form
//! and its type), and compiled afresh into every named construction that
//! leaves its field out, so each construction gets its own `[]` or `[:]`.

use spool_vm::Reg;

use super::Compiler;
use crate::ast::{Expr, ExprKind, FieldDecl, Span, StrPart, UnaryOp};
use crate::diag::{codes, Diagnostic};
use crate::types::Type;

impl Compiler {
    /// The default of `field` (of type `ty`), if it has one that is a
    /// literal, `nil`, `[]` or `[:]` of a type that fits the field;
    /// anything else is reported and dropped.
    pub(super) fn field_default(&mut self, field: &FieldDecl, ty: &Type) -> Option<Expr> {
        let default = field.default.as_ref()?;
        let Some(actual) = self.default_type(default) else {
            self.error(
                Diagnostic::new(
                    codes::FIELD_DEFAULT,
                    format!(
                        "the default of field `{}` must be a literal, `nil`, `[]` or `[:]`",
                        field.name.name
                    ),
                    default.span,
                    "not a literal",
                )
                .with_help("leave the default out and give the value where the struct is built"),
            );
            return None;
        };
        // Only checked: a generic field's parameter stays unbound.
        let snapshot = self.unifier.snapshot();
        let fits = self.unifier.coerce(ty, &actual);
        self.unifier.rollback(snapshot);
        if !fits {
            self.mismatch(default.span, ty, &actual);
            return None;
        }
        Some(default.clone())
    }

    /// The type of a default of an accepted form; `None` for any other.
    fn default_type(&mut self, default: &Expr) -> Option<Type> {
        Some(match &default.kind {
            ExprKind::Int(Some(_)) => Type::Int,
            ExprKind::Float(value) if value.is_finite() => Type::Float,
            ExprKind::Str(parts) if parts.iter().all(|p| matches!(p, StrPart::Lit(_))) => Type::Str,
            ExprKind::Bool(_) => Type::Bool,
            ExprKind::Nil => Type::Nil,
            ExprKind::List(items) if items.is_empty() => Type::List(Box::new(self.unifier.fresh())),
            ExprKind::Map(entries) if entries.is_empty() => Type::Map(
                Box::new(self.unifier.fresh()),
                Box::new(self.unifier.fresh()),
            ),
            ExprKind::Unary(UnaryOp::Neg, operand) => match operand.kind {
                ExprKind::Int(Some(_)) => Type::Int,
                ExprKind::Float(value) if value.is_finite() => Type::Float,
                _ => return None,
            },
            _ => return None,
        })
    }

    /// Compiles the checked `default` of a field of type `ty` (its type
    /// arguments those of this construction) into `dst`, placed at the
    /// construction's `span` (the default may come from another file).
    pub(super) fn emit_field_default(&mut self, default: &Expr, dst: Reg, ty: &Type, span: Span) {
        let mut value = default.clone();
        value.span = span;
        if let ExprKind::Unary(_, operand) = &mut value.kind {
            operand.span = span;
        }
        self.check_into(&value, dst, ty);
    }
}
