//! Comparing code modulo numbering: a function the run is inside must be
//! the same in the new program, instruction by instruction, with every
//! index operand naming the same thing.

use super::*;

/// Compares functions of two programs modulo numbering.
pub(super) struct Compare<'a> {
    pub(super) old: &'a Program,
    pub(super) new: &'a Program,
    pub(super) old_ids: &'a Identities,
    pub(super) new_ids: &'a Identities,
}

impl Compare<'_> {
    /// Is old function `a` the same code as new function `b`: the same
    /// shape, and the same instructions with every index operand naming
    /// the same thing?
    pub(super) fn same_function(&self, a: usize, b: usize) -> bool {
        let (Some(f), Some(g)) = (self.old.functions.get(a), self.new.functions.get(b)) else {
            return false;
        };
        f.name == g.name
            && f.arity == g.arity
            && f.register_count == g.register_count
            && f.capture_count == g.capture_count
            && f.code.len() == g.code.len()
            && f.code.iter().zip(&g.code).all(|(x, y)| self.same_op(x, y))
    }

    /// The same instruction with the same operands, index operands naming
    /// the same thing.
    pub(super) fn same_op(&self, x: &Op, y: &Op) -> bool {
        let (mut p, mut q) = (Vec::with_capacity(4), Vec::with_capacity(4));
        x.for_each_operand(|operand| p.push(operand));
        y.for_each_operand(|operand| q.push(operand));
        x.name() == y.name()
            && p.len() == q.len()
            && p.iter().zip(&q).all(|(&p, &q)| {
                if p.is_index() {
                    self.same_operand(p, q)
                } else {
                    p == q
                }
            })
    }

    pub(super) fn same_operand(&self, p: Operand, q: Operand) -> bool {
        let (old, new) = (self.old, self.new);
        match (p, q) {
            (Operand::Const(p), Operand::Const(q))
            | (Operand::IntConst(p), Operand::IntConst(q)) => {
                match (old.constants.get(p.index()), new.constants.get(q.index())) {
                    (Some(Constant::Int(a)), Some(Constant::Int(b))) => a == b,
                    (Some(Constant::Float(a)), Some(Constant::Float(b))) => {
                        a.to_bits() == b.to_bits()
                    }
                    (Some(Constant::Str(a)), Some(Constant::Str(b))) => a == b,
                    (Some(Constant::Type(a)), Some(Constant::Type(b))) => a == b,
                    _ => false,
                }
            }
            (Operand::Func(p), Operand::Func(q)) => {
                let a = self.old_ids.functions.get(p.index());
                a.is_some() && a == self.new_ids.functions.get(q.index())
            }
            (Operand::Native(p), Operand::Native(q)) => {
                match (old.natives.get(p.index()), new.natives.get(q.index())) {
                    (Some(a), Some(b)) => a.key == b.key && a.io == b.io,
                    _ => false,
                }
            }
            (Operand::Global(p), Operand::Global(q)) => {
                let a = self.old_ids.globals.get(p.index());
                a.is_some() && a == self.new_ids.globals.get(q.index())
            }
            (Operand::Struct { ty: p, fields: m }, Operand::Struct { ty: q, fields: n }) => {
                match (old.structs.get(p.index()), new.structs.get(q.index())) {
                    (Some(a), Some(b)) => a.name == b.name && m == n,
                    _ => false,
                }
            }
            (
                Operand::Variant {
                    ty: p,
                    variant: v,
                    fields: m,
                },
                Operand::Variant {
                    ty: q,
                    variant: w,
                    fields: n,
                },
            ) => match (old.enums.get(p.index()), new.enums.get(q.index())) {
                (Some(a), Some(b)) => a.name == b.name && v == w && m == n,
                _ => false,
            },
            _ => false,
        }
    }
}
