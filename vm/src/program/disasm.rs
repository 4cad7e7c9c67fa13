//! The disassembler: a program's functions as text, one line per
//! instruction, for `spool disasm`, the REPL's `:disasm` and the bytecode
//! golden files.
//!
//! A line reads `0003    12  AddInt        r2, r0, r1`: the instruction index,
//! its source line, the op's name and its operands as [`Op::for_each_operand`]
//! gives them. Registers print as `rN`, register ranges as `rN..rM`,
//! constants as their value, functions, natives, globals, structs and enums
//! by name, jump targets as `-> 0007`, and captures, fields and variant
//! tags as `capture 2`, `field 1`, `variant 0`. The format is stable:
//! golden files depend on it.

use crate::heap::format;
use crate::heap::value::{ConstIdx, EnumIdx, FuncIdx, GlobalIdx, NativeIdx, Reg, StructIdx};
use crate::program::op::{Op, Operand};
use crate::program::{Constant, Program};

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
            op.name()
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

/// The operands of `op`, in the order its register-transfer line reads.
fn operands(program: &Program, op: &Op) -> String {
    let names = Names { program };
    let mut shown = Vec::new();
    op.for_each_operand(|operand| shown.push(names.operand(operand)));
    shown.join(", ")
}

/// `r3..r5` for `count` registers from `start` (`r3..r3` when empty).
fn range(start: Reg, count: u32) -> String {
    format!("r{}..r{}", start.0, u32::from(start.0) + count)
}

/// Names of the things operands index, with a placeholder when an index is
/// out of range (the disassembler must show broken programs too).
struct Names<'p> {
    program: &'p Program,
}

impl Names<'_> {
    fn operand(&self, operand: Operand) -> String {
        match operand {
            Operand::Read(reg) | Operand::Write(reg) | Operand::MaybeWrite(reg) => {
                format!("r{}", reg.0)
            }
            Operand::LoopCounter(counter) => format!("r{}", counter.0),
            Operand::ReadRange { start, count } => range(start, count),
            Operand::CallWindow { base, argc } => range(base, u32::from(argc)),
            Operand::Jump(target) => format!("-> {:04}", target.0),
            Operand::Const(idx) | Operand::IntConst(idx) => self.constant(idx),
            Operand::Func(func) => self.func(func),
            Operand::Native(native) => self.native(native),
            Operand::Global(global) => self.global(global),
            Operand::Struct { ty, .. } => self.structure(ty),
            Operand::Variant { ty, variant, .. } => self.variant(ty, variant),
            Operand::VariantTag(variant) => format!("variant {variant}"),
            Operand::Field(index) => format!("field {index}"),
            Operand::Capture(index) => format!("capture {index}"),
            Operand::Int(value) => value.to_string(),
            Operand::Bool(value) => value.to_string(),
        }
    }

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
            Some(Constant::Type(ty)) => format!("type {ty}"),
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
