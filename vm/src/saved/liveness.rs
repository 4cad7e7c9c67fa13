//! Which registers of a function may still be read: a backward dataflow
//! over its bytecode.
//!
//! A suspended frame's register window holds, besides the values its code
//! will read, leftovers: temporaries of finished statements and the
//! windows of calls that returned. Moving a run to a changed program
//! (`saved/upgrade/`) must not count a leftover as something the run holds (a
//! closure of a lambda that has since been edited, a function value of a
//! function since removed), so it clears the registers no path from the
//! frame's position reads before writing.
//!
//! The analysis errs on the side of liveness: every instruction is assumed
//! able to raise and reach every handler of its function, whose entry
//! writes nothing; a register an instruction writes only on some outcome
//! (a loop variable, a handler's error register) is not killed.

use crate::program::op::{Op, Operand};
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
                for next in op.successors(pc) {
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

/// The registers `op` reads, and those it surely writes when it completes,
/// from its operands ([`Op::for_each_operand`]).
pub(crate) fn effects(op: &Op, reads: &mut Vec<usize>, writes: &mut Vec<usize>) {
    op.for_each_operand(|operand| match operand {
        Operand::Read(reg) => reads.push(reg.index()),
        Operand::Write(reg) => writes.push(reg.index()),
        // Written only on some outcomes: not killed.
        Operand::MaybeWrite(_) => {}
        Operand::ReadRange { start, count } => {
            reads.extend(start.index()..start.index() + count as usize)
        }
        Operand::CallWindow { base, argc } => {
            reads.extend(base.index()..base.index() + usize::from(argc));
            writes.push(base.index());
        }
        // The loop variable is written only when the body runs.
        Operand::LoopCounter(counter) => reads.extend(counter.index()..counter.index() + 2),
        _ => {}
    });
}
