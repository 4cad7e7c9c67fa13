//! Which registers of a function may still be read: a backward dataflow
//! over its bytecode.
//!
//! A suspended frame's register window holds, besides the values its code
//! will read, leftovers: temporaries of finished statements and the
//! windows of calls that returned. Moving a run to a changed program
//! (`remap.rs`) must not count a leftover as something the run holds (a
//! closure of a lambda that has since been edited, a function value of a
//! function since removed), so it clears the registers no path from the
//! frame's position reads before writing.
//!
//! The analysis errs on the side of liveness: every instruction is assumed
//! able to raise and reach every handler of its function, whose entry
//! writes nothing; a register an instruction writes only on some outcome
//! (a loop variable, a handler's error register) is not killed.

use crate::op::Op;
use crate::program::Function;

/// Registers read before written from each instruction of a function on:
/// `live_in(pc)` as a bit set.
pub(crate) struct Liveness {
    words: usize,
    bits: Vec<u64>,
}

/// Past this many bits (instructions times registers) a function is not
/// analysed: every register counts as live.
const MAX_BITS: usize = 1 << 28;

impl Liveness {
    /// Analyses `function`; `None` when it is too large to bother.
    pub(crate) fn of(function: &Function) -> Option<Liveness> {
        let registers = usize::from(function.register_count);
        let words = registers.div_ceil(64).max(1);
        let count = function.code.len();
        if count.checked_mul(words * 64)? > MAX_BITS {
            return None;
        }
        let handlers: Vec<usize> = function
            .code
            .iter()
            .filter_map(|op| match *op {
                Op::TryBegin { handler, .. } => Some(handler.index()),
                _ => None,
            })
            .filter(|&target| target < count)
            .collect();
        let mut table = Liveness {
            words,
            bits: vec![0; (count + 1) * words],
        };
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        let mut out = vec![0u64; words];
        let mut raised = vec![0u64; words];
        let mut changed = true;
        while changed {
            changed = false;
            // Whatever any handler reads is live wherever an error may
            // arise.
            raised.iter_mut().for_each(|w| *w = 0);
            for &handler in &handlers {
                for (w, x) in raised.iter_mut().zip(table.row(handler)) {
                    *w |= x;
                }
            }
            for pc in (0..count).rev() {
                let op = function.code[pc];
                out.iter_mut().for_each(|w| *w = 0);
                for next in successors(&op, pc) {
                    if next < count {
                        for (w, x) in out.iter_mut().zip(table.row(next)) {
                            *w |= x;
                        }
                    }
                }
                reads.clear();
                writes.clear();
                effects(&op, &mut reads, &mut writes);
                for &reg in &writes {
                    clear(&mut out, reg);
                }
                for &reg in &reads {
                    set(&mut out, reg, registers);
                }
                for (w, x) in out.iter_mut().zip(&raised) {
                    *w |= x;
                }
                let row = &mut table.bits[pc * words..(pc + 1) * words];
                if row != out.as_slice() {
                    row.copy_from_slice(&out);
                    changed = true;
                }
            }
        }
        Some(table)
    }

    fn row(&self, pc: usize) -> &[u64] {
        &self.bits[pc * self.words..(pc + 1) * self.words]
    }

    /// May register `reg` be read from instruction `pc` on (before it is
    /// written)? Past the end of the code nothing is live.
    pub(crate) fn live(&self, pc: usize, reg: usize) -> bool {
        let Some(row) = self.bits.get(pc * self.words..(pc + 1) * self.words) else {
            return false;
        };
        row.get(reg / 64)
            .is_some_and(|w| w & (1 << (reg % 64)) != 0)
    }
}

fn set(bits: &mut [u64], reg: usize, registers: usize) {
    if reg < registers {
        bits[reg / 64] |= 1 << (reg % 64);
    }
}

fn clear(bits: &mut [u64], reg: usize) {
    if let Some(word) = bits.get_mut(reg / 64) {
        *word &= !(1 << (reg % 64));
    }
}

/// Where control may go after `op` at `pc` (errors aside).
fn successors(op: &Op, pc: usize) -> impl Iterator<Item = usize> {
    let (fall, target) = match *op {
        Op::Jump { target } => (false, Some(target.index())),
        Op::JumpIfTrue { target, .. }
        | Op::JumpIfFalse { target, .. }
        | Op::JumpIfNil { target, .. }
        | Op::JumpIfNotNil { target, .. }
        | Op::JumpIfNotLtInt { target, .. }
        | Op::JumpIfNotLeInt { target, .. }
        | Op::JumpIfNotVariant { target, .. }
        | Op::JumpIfNotLtIntImm { target, .. }
        | Op::JumpIfNotGtIntImm { target, .. } => (true, Some(target.index())),
        Op::ForRangePrep { exit, .. } => (true, Some(exit.index())),
        Op::ForRangeLoop { body, .. } => (true, Some(body.index())),
        Op::TryBegin { handler, .. } => (true, Some(handler.index())),
        Op::Return { .. } | Op::ReturnNil | Op::Throw { .. } => (false, None),
        _ => (true, None),
    };
    fall.then_some(pc + 1).into_iter().chain(target)
}

/// The registers `op` reads, and those it surely writes when it completes.
fn effects(op: &Op, reads: &mut Vec<usize>, writes: &mut Vec<usize>) {
    let range = |reads: &mut Vec<usize>, start: usize, count: usize| {
        reads.extend(start..start + count);
    };
    match *op {
        Op::Move { dst, src }
        | Op::NegInt { dst, src }
        | Op::NegFloat { dst, src }
        | Op::ToStr { dst, src }
        | Op::Not { dst, src }
        | Op::NewCell { dst, src }
        | Op::Unwrap { dst, src }
        | Op::Await { dst, src }
        | Op::GetVariantField { dst, src, .. } => {
            reads.push(src.index());
            writes.push(dst.index());
        }
        Op::LoadNil { dst }
        | Op::LoadBool { dst, .. }
        | Op::LoadInt { dst, .. }
        | Op::LoadConst { dst, .. }
        | Op::LoadFunc { dst, .. }
        | Op::LoadNative { dst, .. }
        | Op::LoadGlobal { dst, .. }
        | Op::LoadCapture { dst, .. }
        | Op::CaptureGet { dst, .. } => writes.push(dst.index()),
        Op::StoreGlobal { src, .. }
        | Op::CaptureSet { src, .. }
        | Op::Throw { src }
        | Op::Defer { src }
        | Op::Return { src }
        | Op::JumpIfNil { src, .. }
        | Op::JumpIfNotNil { src, .. }
        | Op::JumpIfNotVariant { src, .. } => reads.push(src.index()),
        Op::MakeClosure {
            dst, start, count, ..
        }
        | Op::NewList { dst, start, count }
        | Op::NewRecord {
            dst, start, count, ..
        }
        | Op::NewVariant {
            dst, start, count, ..
        } => {
            range(reads, start.index(), usize::from(count));
            writes.push(dst.index());
        }
        Op::NewMap { dst, start, count } => {
            range(reads, start.index(), 2 * usize::from(count));
            writes.push(dst.index());
        }
        Op::CellGet { dst, cell } => {
            reads.push(cell.index());
            writes.push(dst.index());
        }
        Op::CellSet { cell, src } => reads.extend([cell.index(), src.index()]),
        Op::AddInt { dst, lhs, rhs }
        | Op::SubInt { dst, lhs, rhs }
        | Op::MulInt { dst, lhs, rhs }
        | Op::DivInt { dst, lhs, rhs }
        | Op::RemInt { dst, lhs, rhs }
        | Op::AddFloat { dst, lhs, rhs }
        | Op::SubFloat { dst, lhs, rhs }
        | Op::MulFloat { dst, lhs, rhs }
        | Op::DivFloat { dst, lhs, rhs }
        | Op::RemFloat { dst, lhs, rhs }
        | Op::Concat { dst, lhs, rhs }
        | Op::EqInt { dst, lhs, rhs }
        | Op::LtInt { dst, lhs, rhs }
        | Op::LeInt { dst, lhs, rhs }
        | Op::EqFloat { dst, lhs, rhs }
        | Op::LtFloat { dst, lhs, rhs }
        | Op::LeFloat { dst, lhs, rhs }
        | Op::LtStr { dst, lhs, rhs }
        | Op::LeStr { dst, lhs, rhs }
        | Op::Eq { dst, lhs, rhs } => {
            reads.extend([lhs.index(), rhs.index()]);
            writes.push(dst.index());
        }
        Op::AddIntImm { dst, lhs, .. }
        | Op::MulIntImm { dst, lhs, .. }
        | Op::RemIntImm { dst, lhs, .. } => {
            reads.push(lhs.index());
            writes.push(dst.index());
        }
        Op::Jump { .. } | Op::ReturnNil | Op::TryEnd => {}
        // The handler's register is written only when an error is caught.
        Op::TryBegin { .. } => {}
        Op::JumpIfTrue { cond, .. } | Op::JumpIfFalse { cond, .. } => reads.push(cond.index()),
        Op::JumpIfNotLtInt { lhs, rhs, .. } | Op::JumpIfNotLeInt { lhs, rhs, .. } => {
            reads.extend([lhs.index(), rhs.index()])
        }
        Op::JumpIfNotLtIntImm { lhs, .. } | Op::JumpIfNotGtIntImm { lhs, .. } => {
            reads.push(lhs.index())
        }
        // The loop variable is written only when the body runs.
        Op::ForRangePrep { counter, .. } => range(reads, counter.index(), 2),
        Op::ForRangeLoop { counter, .. } => range(reads, counter.index(), 2),
        Op::Call { base, argc, .. } | Op::CallNative { base, argc, .. } => {
            range(reads, base.index(), usize::from(argc));
            writes.push(base.index());
        }
        Op::CallValue { callee, base, argc } => {
            reads.push(callee.index());
            range(reads, base.index(), usize::from(argc));
            writes.push(base.index());
        }
        Op::ListGet { dst, list, index } => {
            reads.extend([list.index(), index.index()]);
            writes.push(dst.index());
        }
        Op::ListSet { list, index, src } => {
            reads.extend([list.index(), index.index(), src.index()])
        }
        Op::ListLen { dst, list } => {
            reads.push(list.index());
            writes.push(dst.index());
        }
        Op::MapGet { dst, map, key } => {
            reads.extend([map.index(), key.index()]);
            writes.push(dst.index());
        }
        Op::MapSet { map, key, src } => reads.extend([map.index(), key.index(), src.index()]),
        Op::MapLen { dst, map } => {
            reads.push(map.index());
            writes.push(dst.index());
        }
        Op::MapKeyAt { dst, map, index } | Op::MapValueAt { dst, map, index } => {
            reads.extend([map.index(), index.index()]);
            writes.push(dst.index());
        }
        Op::GetField { dst, obj, .. } => {
            reads.push(obj.index());
            writes.push(dst.index());
        }
        Op::SetField { obj, src, .. } => reads.extend([obj.index(), src.index()]),
        Op::CoroNext { dst, coro } => {
            reads.push(coro.index());
            writes.push(dst.index());
        }
        Op::Yield { dst, src } => {
            reads.push(src.index());
            writes.push(dst.index());
        }
        Op::Spawn { dst, base, argc } => {
            range(reads, base.index(), 1 + usize::from(argc));
            writes.push(dst.index());
        }
    }
}
