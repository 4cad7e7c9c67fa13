//! The disassembler: a program's functions as text, one line per
//! instruction, for `spool disasm`, the REPL's `:disasm` and the bytecode
//! golden files.
//!
//! A line reads `0003    12  AddInt        r2, r0, r1`: the instruction index,
//! its source line, the op's name and its operands. Registers print as `rN`,
//! constants as their value, functions, natives, globals, structs and enums
//! by name, and jump targets as `-> 0007`. The format is stable: golden
//! files depend on it.

use crate::format;
use crate::op::Op;
use crate::program::{Constant, Program};
use crate::value::{ConstIdx, EnumIdx, FuncIdx, GlobalIdx, NativeIdx, Pc, Reg, StructIdx};

/// Width the op name is padded to, so operands line up.
const NAME_WIDTH: usize = 16;

/// One function: a header `fn name (arity 2, registers 5):` and its
/// instructions.
pub fn disassemble(program: &Program, func: FuncIdx) -> String {
    let Some(function) = program.functions.get(func.index()) else {
        return format!("fn <missing {}>:\n", func.0);
    };
    let mut out = format!(
        "fn {} (arity {}, registers {}):\n",
        function.name, function.arity, function.register_count
    );
    for (index, op) in function.code.iter().enumerate() {
        let line = function.locs.get(index).map_or(0, |loc| loc.line);
        let operands = operands(program, op);
        let line = format!(
            "{index:04}  {line:>4}  {:<NAME_WIDTH$}  {operands}",
            op_name(op)
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Every function of the program, in index order, separated by blank lines.
pub fn disassemble_all(program: &Program) -> String {
    let mut out = String::new();
    for index in 0..program.functions.len() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&disassemble(program, FuncIdx(index as u32)));
    }
    out
}

/// The op's variant name, taken from its `Debug` form so that no second
/// list of names has to be kept in step with [`Op`].
fn op_name(op: &Op) -> String {
    let debug = format!("{op:?}");
    let end = debug.find([' ', '{', '(']).unwrap_or(debug.len());
    debug[..end].to_string()
}

/// The operands of `op`, in the order its register-transfer line reads.
fn operands(program: &Program, op: &Op) -> String {
    let names = Names { program };
    let r = |reg: Reg| format!("r{}", reg.0);
    let to = |pc: Pc| format!("-> {:04}", pc.0);
    match *op {
        Op::Move { dst, src } => format!("{}, {}", r(dst), r(src)),
        Op::LoadNil { dst } => r(dst),
        Op::LoadBool { dst, value } => format!("{}, {value}", r(dst)),
        Op::LoadInt { dst, value } => format!("{}, {value}", r(dst)),
        Op::LoadConst { dst, idx } => format!("{}, {}", r(dst), names.constant(idx)),
        Op::LoadFunc { dst, func } => format!("{}, {}", r(dst), names.func(func)),
        Op::LoadNative { dst, native } => format!("{}, {}", r(dst), names.native(native)),
        Op::LoadGlobal { dst, global } => format!("{}, {}", r(dst), names.global(global)),
        Op::StoreGlobal { global, src } => format!("{}, {}", names.global(global), r(src)),
        Op::MakeClosure {
            dst,
            func,
            start,
            count,
        } => {
            format!("{}, {}, {}", r(dst), names.func(func), range(start, count))
        }
        Op::LoadCapture { dst, index } | Op::CaptureGet { dst, index } => {
            format!("{}, capture {index}", r(dst))
        }
        Op::CaptureSet { index, src } => format!("capture {index}, {}", r(src)),
        Op::NewCell { dst, src } => format!("{}, {}", r(dst), r(src)),
        Op::CellGet { dst, cell } => format!("{}, {}", r(dst), r(cell)),
        Op::CellSet { cell, src } => format!("{}, {}", r(cell), r(src)),
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
        | Op::Eq { dst, lhs, rhs } => format!("{}, {}, {}", r(dst), r(lhs), r(rhs)),
        Op::AddIntImm { dst, lhs, imm }
        | Op::MulIntImm { dst, lhs, imm }
        | Op::RemIntImm { dst, lhs, imm } => format!("{}, {}, {imm}", r(dst), r(lhs)),
        Op::NegInt { dst, src }
        | Op::NegFloat { dst, src }
        | Op::ToStr { dst, src }
        | Op::Not { dst, src }
        | Op::Unwrap { dst, src } => format!("{}, {}", r(dst), r(src)),
        Op::Jump { target } => to(target),
        Op::JumpIfTrue { cond, target } | Op::JumpIfFalse { cond, target } => {
            format!("{}, {}", r(cond), to(target))
        }
        Op::JumpIfNil { src, target } | Op::JumpIfNotNil { src, target } => {
            format!("{}, {}", r(src), to(target))
        }
        Op::JumpIfNotLtInt { lhs, rhs, target } | Op::JumpIfNotLeInt { lhs, rhs, target } => {
            format!("{}, {}, {}", r(lhs), r(rhs), to(target))
        }
        Op::JumpIfNotLtIntImm { lhs, imm, target } | Op::JumpIfNotGtIntImm { lhs, imm, target } => {
            format!("{}, {imm}, {}", r(lhs), to(target))
        }
        Op::ForRangePrep { counter, exit } => format!("{}, {}", r(counter), to(exit)),
        Op::ForRangeLoop { counter, body } => format!("{}, {}", r(counter), to(body)),
        Op::Call { func, base, argc } => format!("{}, {}", names.func(func), range(base, argc)),
        Op::CallValue { callee, base, argc } => format!("{}, {}", r(callee), range(base, argc)),
        Op::CallNative { native, base, argc } => {
            format!("{}, {}", names.native(native), range(base, argc))
        }
        Op::Return { src } => r(src),
        Op::ReturnNil | Op::TryEnd => String::new(),
        Op::NewList { dst, start, count } => format!("{}, {}", r(dst), range(start, count)),
        Op::NewMap { dst, start, count } => {
            format!("{}, {}", r(dst), range(start, count.saturating_mul(2)))
        }
        Op::ListGet { dst, list, index } => format!("{}, {}[{}]", r(dst), r(list), r(index)),
        Op::ListSet { list, index, src } => format!("{}[{}], {}", r(list), r(index), r(src)),
        Op::ListLen { dst, list } => format!("{}, {}", r(dst), r(list)),
        Op::MapGet { dst, map, key } => format!("{}, {}[{}]", r(dst), r(map), r(key)),
        Op::MapSet { map, key, src } => format!("{}[{}], {}", r(map), r(key), r(src)),
        Op::MapLen { dst, map } => format!("{}, {}", r(dst), r(map)),
        Op::MapKeyAt { dst, map, index } | Op::MapValueAt { dst, map, index } => {
            format!("{}, {}, {}", r(dst), r(map), r(index))
        }
        Op::NewRecord {
            dst,
            ty,
            start,
            count,
        } => {
            format!(
                "{}, {}, {}",
                r(dst),
                names.structure(ty),
                range(start, count)
            )
        }
        // The instruction does not say which struct its operand is, so a
        // field shows as its index.
        Op::GetField { dst, obj, field } => format!("{}, {}.{field}", r(dst), r(obj)),
        Op::SetField { obj, field, src } => format!("{}.{field}, {}", r(obj), r(src)),
        Op::NewVariant {
            dst,
            ty,
            variant,
            start,
            count,
        } => {
            format!(
                "{}, {}, {}",
                r(dst),
                names.variant(ty, variant),
                range(start, count)
            )
        }
        Op::JumpIfNotVariant {
            src,
            variant,
            target,
        } => {
            format!("{}, variant {variant}, {}", r(src), to(target))
        }
        Op::GetVariantField { dst, src, index } => format!("{}, {}.{index}", r(dst), r(src)),
        Op::Throw { src } | Op::Defer { src } => r(src),
        Op::TryBegin { handler, dst } => format!("{}, {}", r(dst), to(handler)),
        Op::CoroNext { dst, coro } => format!("{}, {}", r(dst), r(coro)),
        Op::Yield { dst, src } | Op::Await { dst, src } => format!("{}, {}", r(dst), r(src)),
        Op::Spawn { dst, base, argc } => format!("{}, {}, {argc}", r(dst), r(base)),
    }
}

/// `r3..r5` for `count` registers from `start` (`r3..r3` when empty).
fn range(start: Reg, count: u16) -> String {
    format!("r{}..r{}", start.0, start.0 as u32 + count as u32)
}

/// Names of the things operands index, with a placeholder when an index is
/// out of range (the disassembler must show broken programs too).
struct Names<'p> {
    program: &'p Program,
}

impl Names<'_> {
    fn constant(&self, idx: ConstIdx) -> String {
        match self.program.constants.get(idx.index()) {
            Some(Constant::Int(n)) => n.to_string(),
            Some(Constant::Float(x)) => {
                let mut out = String::new();
                format::write_float(&mut out, *x);
                out
            }
            Some(Constant::Str(text)) => {
                let mut out = String::new();
                format::write_quoted(&mut out, text);
                out
            }
            None => format!("<const {}>", idx.0),
        }
    }

    fn func(&self, func: FuncIdx) -> String {
        self.program
            .functions
            .get(func.index())
            .map_or_else(|| format!("<fn {}>", func.0), |f| f.name.clone())
    }

    fn native(&self, native: NativeIdx) -> String {
        self.program
            .natives
            .get(native.index())
            .map_or_else(|| format!("<native {}>", native.0), |n| n.name.clone())
    }

    fn global(&self, global: GlobalIdx) -> String {
        self.program.globals.get(global.index()).map_or_else(
            || format!("<global {}>", global.0),
            |name| format!("global {name}"),
        )
    }

    fn structure(&self, ty: StructIdx) -> String {
        self.program
            .structs
            .get(ty.index())
            .map_or_else(|| format!("<struct {}>", ty.0), |s| s.name.clone())
    }

    fn variant(&self, ty: EnumIdx, variant: u16) -> String {
        let Some(layout) = self.program.enums.get(ty.index()) else {
            return format!("<enum {}>.{variant}", ty.0);
        };
        match layout.variants.get(variant as usize) {
            Some(v) => format!("{}.{}", layout.name, v.name),
            None => format!("{}.{variant}", layout.name),
        }
    }
}
