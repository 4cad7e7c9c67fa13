//! The instruction set: one `enum Op`, used as-is by the compiler, the
//! interpreter, the disassembler and serde.
//!
//! Conventions. `R[x]` is register `x` of the current frame (absolute index
//! `frame.base + x` in the fiber's register stack). Every operand is named for
//! its role (`dst`, `src`, `lhs`, `rhs`). Jump targets are absolute
//! instruction indices within the current function. Typed instructions trust
//! the compiler's types; a register holding another variant raises a `Type`
//! runtime error (an internal error, never undefined behaviour).
//!
//! Call convention (all three call instructions): the arguments are in
//! `R[base] .. R[base + argc]`; the callee's frame starts at absolute register
//! `frame.base + base`, so its parameters are its registers `0..argc` without
//! copying; the result is written to `R[base]` of the caller.

use serde::{Deserialize, Serialize};

use crate::heap::value::{ConstIdx, EnumIdx, FuncIdx, GlobalIdx, NativeIdx, Pc, Reg, StructIdx};

/// One operand of an instruction, as what it means. [`Op::for_each_operand`]
/// gives every operand of an instruction (every field, in the order its
/// register-transfer line reads them); the validator, the liveness
/// analysis, the disassembler and upgrades are built on it, so what an
/// operand means is written once, here.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operand {
    /// A register the instruction reads.
    Read(Reg),
    /// A register it writes whenever it completes.
    Write(Reg),
    /// A register it writes on some outcomes only (a handler's error
    /// register, written when an error is caught).
    MaybeWrite(Reg),
    /// `count` consecutive registers from `start`, read (possibly none).
    ReadRange {
        /// The first register.
        start: Reg,
        /// How many.
        count: u32,
    },
    /// A call's window: the arguments `R[base .. base+argc]` are read and
    /// the result is written to `R[base]` (so `R[base]` is used even with
    /// no arguments). The callee's frame starts at `R[base]`.
    CallWindow {
        /// The first register of the window.
        base: Reg,
        /// The number of arguments.
        argc: u16,
    },
    /// A counted loop's three registers: the counter `R[counter]` and the
    /// end `R[counter+1]` are read (the back edge also writes the counter),
    /// and the loop variable `R[counter+2]` is written when the body runs.
    LoopCounter(Reg),
    /// An instruction of the same function to continue at.
    Jump(Pc),
    /// A constant of the program.
    Const(ConstIdx),
    /// An int constant of the program (a divisor the interpreter prepares
    /// when it first meets the program, see `exec::divisor`).
    IntConst(ConstIdx),
    /// A function of the program.
    Func(FuncIdx),
    /// A native function or I/O operation of the program.
    Native(NativeIdx),
    /// A global of the program.
    Global(GlobalIdx),
    /// A struct, and how many fields the instruction gives a new record
    /// of it (all of them).
    Struct {
        /// The struct.
        ty: StructIdx,
        /// The number of fields given.
        fields: u16,
    },
    /// An enum's variant, and how many payload fields the instruction
    /// gives a new value of it (all of them).
    Variant {
        /// The enum.
        ty: EnumIdx,
        /// The variant's index in the enum.
        variant: u16,
        /// The number of payload fields given.
        fields: u16,
    },
    /// A variant's index in whatever enum the tested value belongs to.
    VariantTag(u16),
    /// A field's index in a record, or in a variant's payload.
    Field(u16),
    /// A capture's index in the running closure.
    Capture(u16),
    /// An integer immediate.
    Int(i32),
    /// A boolean immediate.
    Bool(bool),
}

impl Operand {
    /// The registers this operand names, as `start..end` (register
    /// indices of the frame), or `None` for operands that are not
    /// registers. Everything the instruction may read or write through the
    /// operand lies inside; the validator checks this range.
    pub fn registers(self) -> Option<std::ops::Range<usize>> {
        let from = |start: Reg, count: usize| start.index()..start.index() + count;
        match self {
            Operand::Read(reg) | Operand::Write(reg) | Operand::MaybeWrite(reg) => {
                Some(from(reg, 1))
            }
            Operand::ReadRange { start, count } => Some(from(start, count as usize)),
            Operand::CallWindow { base, argc } => Some(from(base, usize::from(argc).max(1))),
            Operand::LoopCounter(counter) => Some(from(counter, 3)),
            _ => None,
        }
    }

    /// Is this operand an index into the program (a constant, function,
    /// native, global, struct or enum), which numbering may change?
    pub fn is_index(self) -> bool {
        matches!(
            self,
            Operand::Const(_)
                | Operand::IntConst(_)
                | Operand::Func(_)
                | Operand::Native(_)
                | Operand::Global(_)
                | Operand::Struct { .. }
                | Operand::Variant { .. }
        )
    }
}

/// Declares [`Op`] from one list: each variant with its fields, followed by
/// `=> [operands]`, the description of every field as an [`Operand`].
/// Generates the enum itself, [`Op::name`] and [`Op::for_each_operand`].
/// Every field must appear in the operand list (an unused one is a
/// compiler warning).
macro_rules! instructions {
    (
        $(#[$enum_meta:meta])*
        pub enum Op {
            $(
                $(#[$meta:meta])*
                $name:ident $({ $($field:ident : $ty:ty),* $(,)? })? => [$($operand:expr),* $(,)?],
            )*
        }
    ) => {
        $(#[$enum_meta])*
        pub enum Op {
            $(
                $(#[$meta])*
                $name $({ $($field: $ty),* })?,
            )*
        }

        impl Op {
            /// The instruction's name (`AddInt`), as the disassembler
            /// prints it.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Op::$name { .. } => stringify!($name),)*
                }
            }

            /// Calls `f` with every operand of the instruction, in the
            /// order its register-transfer line reads them.
            pub fn for_each_operand(&self, mut f: impl FnMut(Operand)) {
                #[allow(unused_imports)]
                use Operand::*;
                match *self {
                    $(Op::$name $({ $($field),* })? => { $(f($operand);)* })*
                }
            }
        }
    };
}

instructions! {
/// One instruction.
// Operands are documented by each variant's register-transfer line, and
// what each operand is by the list after its `=>`.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    // ---- moves and constants ----
    /// R[dst] := R[src]
    Move { dst: Reg, src: Reg } => [Write(dst), Read(src)],
    /// R[dst] := nil
    LoadNil { dst: Reg } => [Write(dst)],
    /// R[dst] := value
    LoadBool { dst: Reg, value: bool } => [Write(dst), Bool(value)],
    /// R[dst] := value (small integer immediate)
    LoadInt { dst: Reg, value: i32 } => [Write(dst), Int(value)],
    /// R[dst] := constants[idx] (int, float or a preallocated string)
    LoadConst { dst: Reg, idx: ConstIdx } => [Write(dst), Const(idx)],
    /// R[dst] := the script function `func` as a value
    LoadFunc { dst: Reg, func: FuncIdx } => [Write(dst), Func(func)],
    /// R[dst] := the native function `native` as a value
    LoadNative { dst: Reg, native: NativeIdx } => [Write(dst), Native(native)],
    /// R[dst] := globals[global]
    LoadGlobal { dst: Reg, global: GlobalIdx } => [Write(dst), Global(global)],
    /// globals[global] := R[src]
    StoreGlobal { global: GlobalIdx, src: Reg } => [Global(global), Read(src)],

    // ---- closures and captured variables ----
    /// R[dst] := new closure of `func` capturing R[start .. start+count]
    /// (each a plain value or a cell, as the compiler decided)
    MakeClosure {
        dst: Reg,
        func: FuncIdx,
        start: Reg,
        count: u16,
    } => [Write(dst), Func(func), ReadRange { start, count: u32::from(count) }],
    /// R[dst] := capture `index` of the running closure, as stored (a value or a cell)
    LoadCapture { dst: Reg, index: u16 } => [Write(dst), Capture(index)],
    /// R[dst] := contents of the cell held in capture `index` of the running closure
    CaptureGet { dst: Reg, index: u16 } => [Write(dst), Capture(index)],
    /// contents of the cell held in capture `index` := R[src]
    CaptureSet { index: u16, src: Reg } => [Capture(index), Read(src)],
    /// R[dst] := new cell holding R[src]
    NewCell { dst: Reg, src: Reg } => [Write(dst), Read(src)],
    /// R[dst] := contents of the cell in R[cell]
    CellGet { dst: Reg, cell: Reg } => [Write(dst), Read(cell)],
    /// contents of the cell in R[cell] := R[src]
    CellSet { cell: Reg, src: Reg } => [Read(cell), Read(src)],

    // ---- int arithmetic (traps: Overflow, DivByZero) ----
    /// R[dst] := R[lhs] + R[rhs] (int, traps on overflow)
    AddInt { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] - R[rhs] (int, traps on overflow)
    SubInt { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] * R[rhs] (int, traps on overflow)
    MulInt { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] / R[rhs] (int, truncates toward zero; traps on zero and overflow)
    DivInt { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] % R[rhs] (int, sign of lhs; traps on zero and overflow)
    RemInt { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] + imm (int, traps on overflow)
    AddIntImm { dst: Reg, lhs: Reg, imm: i32 } => [Write(dst), Read(lhs), Int(imm)],
    /// R[dst] := -R[src] (int, traps on overflow)
    NegInt { dst: Reg, src: Reg } => [Write(dst), Read(src)],

    // ---- float arithmetic (IEEE, never traps) ----
    /// R[dst] := R[lhs] + R[rhs] (float)
    AddFloat { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] - R[rhs] (float)
    SubFloat { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] * R[rhs] (float)
    MulFloat { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] / R[rhs] (float)
    DivFloat { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] % R[rhs] (float, as Rust's `%`)
    RemFloat { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := -R[src] (float)
    NegFloat { dst: Reg, src: Reg } => [Write(dst), Read(src)],

    // ---- strings ----
    /// R[dst] := new string R[lhs] ++ R[rhs] (str)
    Concat { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := str(R[src]) as LANGUAGE.md §8 prints it (a string stays itself)
    ToStr { dst: Reg, src: Reg } => [Write(dst), Read(src)],

    // ---- comparisons (result bool) ----
    /// R[dst] := R[lhs] == R[rhs] (int)
    EqInt { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] < R[rhs] (int)
    LtInt { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] <= R[rhs] (int)
    LeInt { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] == R[rhs] (float, IEEE)
    EqFloat { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] < R[rhs] (float)
    LtFloat { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] <= R[rhs] (float)
    LeFloat { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] < R[rhs] (str, by Unicode scalar values)
    LtStr { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] <= R[rhs] (str)
    LeStr { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := R[lhs] == R[rhs] (any type: structural for str, lists, maps,
    /// records and variants; identity for closures and other objects)
    Eq { dst: Reg, lhs: Reg, rhs: Reg } => [Write(dst), Read(lhs), Read(rhs)],
    /// R[dst] := !R[src] (bool)
    Not { dst: Reg, src: Reg } => [Write(dst), Read(src)],

    // ---- control flow ----
    /// pc := target
    Jump { target: Pc } => [Jump(target)],
    /// if R[cond] { pc := target } (bool)
    JumpIfTrue { cond: Reg, target: Pc } => [Read(cond), Jump(target)],
    /// if !R[cond] { pc := target } (bool)
    JumpIfFalse { cond: Reg, target: Pc } => [Read(cond), Jump(target)],
    /// if R[src] is nil { pc := target }
    JumpIfNil { src: Reg, target: Pc } => [Read(src), Jump(target)],
    /// if R[src] is not nil { pc := target }
    JumpIfNotNil { src: Reg, target: Pc } => [Read(src), Jump(target)],
    /// if !(R[lhs] < R[rhs]) { pc := target } (int; fused compare and branch)
    JumpIfNotLtInt { lhs: Reg, rhs: Reg, target: Pc } => [Read(lhs), Read(rhs), Jump(target)],
    /// if !(R[lhs] <= R[rhs]) { pc := target } (int; fused compare and branch)
    JumpIfNotLeInt { lhs: Reg, rhs: Reg, target: Pc } => [Read(lhs), Read(rhs), Jump(target)],
    /// Counted loop entry. R[counter] holds the start and R[counter+1] the
    /// exclusive end (ints). If R[counter] >= R[counter+1] { pc := exit }
    /// else R[counter+2] := R[counter] (the body's loop variable).
    ForRangePrep { counter: Reg, exit: Pc } => [LoopCounter(counter), Jump(exit)],
    /// Counted loop back edge. R[counter] += 1; if R[counter] < R[counter+1]
    /// { R[counter+2] := R[counter]; pc := body }.
    ForRangeLoop { counter: Reg, body: Pc } => [LoopCounter(counter), Jump(body)],

    // ---- calls ----
    /// Call script function `func` with R[base .. base+argc]; R[base] := result.
    Call { func: FuncIdx, base: Reg, argc: u16 } => [Func(func), CallWindow { base, argc }],
    /// Call the function value in R[callee] (script function, closure or
    /// native) with R[base .. base+argc]; R[base] := result.
    CallValue { callee: Reg, base: Reg, argc: u16 } => [Read(callee), CallWindow { base, argc }],
    /// Call native `native` with R[base .. base+argc]; R[base] := result.
    CallNative {
        native: NativeIdx,
        base: Reg,
        argc: u16,
    } => [Native(native), CallWindow { base, argc }],
    /// Run this frame's pending defers (LIFO), then return R[src] to the caller.
    Return { src: Reg } => [Read(src)],
    /// Run this frame's pending defers (LIFO), then return nil to the caller.
    ReturnNil => [],

    // ---- lists and maps ----
    /// R[dst] := new list of R[start .. start+count]
    NewList { dst: Reg, start: Reg, count: u16 } => [Write(dst), ReadRange { start, count: u32::from(count) }],
    /// R[dst] := new map of `count` pairs: key R[start+2i], value R[start+2i+1]
    NewMap { dst: Reg, start: Reg, count: u16 } => [Write(dst), ReadRange { start, count: 2 * u32::from(count) }],
    /// R[dst] := R[list][R[index]] (traps: Index)
    ListGet { dst: Reg, list: Reg, index: Reg } => [Write(dst), Read(list), Read(index)],
    /// R[list][R[index]] := R[src] (traps: Index)
    ListSet { list: Reg, index: Reg, src: Reg } => [Read(list), Read(index), Read(src)],
    /// R[dst] := length of the list R[list] (int)
    ListLen { dst: Reg, list: Reg } => [Write(dst), Read(list)],
    /// R[dst] := R[map][R[key]] (traps: Key)
    MapGet { dst: Reg, map: Reg, key: Reg } => [Write(dst), Read(map), Read(key)],
    /// R[map][R[key]] := R[src] (inserts at the end when new)
    MapSet { map: Reg, key: Reg, src: Reg } => [Read(map), Read(key), Read(src)],
    /// R[dst] := number of entries of the map R[map] (int)
    MapLen { dst: Reg, map: Reg } => [Write(dst), Read(map)],
    /// R[dst] := key of the entry at insertion position R[index] (traps: Index)
    MapKeyAt { dst: Reg, map: Reg, index: Reg } => [Write(dst), Read(map), Read(index)],
    /// R[dst] := value of the entry at insertion position R[index] (traps: Index)
    MapValueAt { dst: Reg, map: Reg, index: Reg } => [Write(dst), Read(map), Read(index)],

    // ---- records and enums ----
    /// R[dst] := new record of struct `ty` with fields R[start .. start+count]
    NewRecord {
        dst: Reg,
        ty: StructIdx,
        start: Reg,
        count: u16,
    } => [Write(dst), Struct { ty, fields: count }, ReadRange { start, count: u32::from(count) }],
    /// R[dst] := field `field` of the record R[obj]
    GetField { dst: Reg, obj: Reg, field: u16 } => [Write(dst), Read(obj), Field(field)],
    /// field `field` of the record R[obj] := R[src]
    SetField { obj: Reg, field: u16, src: Reg } => [Read(obj), Field(field), Read(src)],
    /// R[dst] := new value of enum `ty`, variant `variant`, payload R[start .. start+count]
    NewVariant {
        dst: Reg,
        ty: EnumIdx,
        variant: u16,
        start: Reg,
        count: u16,
    } => [Write(dst), Variant { ty, variant, fields: count }, ReadRange { start, count: u32::from(count) }],
    /// if the variant value R[src] is not variant `variant` { pc := target }
    JumpIfNotVariant { src: Reg, variant: u16, target: Pc } => [Read(src), VariantTag(variant), Jump(target)],
    /// R[dst] := payload field `index` of the variant value R[src]
    GetVariantField { dst: Reg, src: Reg, index: u16 } => [Write(dst), Read(src), Field(index)],

    // ---- optionals ----
    /// R[dst] := R[src] if not nil, else trap NilUnwrap
    Unwrap { dst: Reg, src: Reg } => [Write(dst), Read(src)],

    // ---- errors, try and defer ----
    /// Raise the `Error` record in R[src]: unwind to the nearest handler,
    /// running the defers of every frame left.
    Throw { src: Reg } => [Read(src)],
    /// Push a handler: an error raised before the matching `TryEnd` unwinds to
    /// this frame, stores the `Error` record in R[dst] and continues at `handler`.
    TryBegin { handler: Pc, dst: Reg } => [MaybeWrite(dst), Jump(handler)],
    /// Pop the innermost handler (which belongs to this frame).
    TryEnd => [],
    /// Register the zero-argument function value in R[src] to run when this
    /// frame exits (by return or by unwinding), after defers registered later.
    Defer { src: Reg } => [Read(src)],

    // ---- coroutines (LANGUAGE.md §4; see `coro.rs`) ----
    /// Resume the coroutine R[coro] on its own fiber until it yields
    /// (R[dst] := true) or finishes (R[dst] := false); its error is raised here.
    CoroNext { dst: Reg, coro: Reg } => [Write(dst), Read(coro)],
    /// Yield R[src] to the resumer (or, outside any coroutine, to the host);
    /// when resumed, R[dst] := the value sent (nil if none).
    Yield { dst: Reg, src: Reg } => [Write(dst), Read(src)],

    // ---- int operations with an immediate operand ----
    // (Appended, so that the serialized index of every older variant stays.)
    /// R[dst] := R[lhs] * imm (int, traps on overflow)
    MulIntImm { dst: Reg, lhs: Reg, imm: i32 } => [Write(dst), Read(lhs), Int(imm)],
    /// R[dst] := R[lhs] % imm (int, sign of lhs; traps on zero and overflow)
    RemIntImm { dst: Reg, lhs: Reg, imm: i32 } => [Write(dst), Read(lhs), Int(imm)],
    /// if !(R[lhs] < imm) { pc := target } (int; fused compare and branch)
    JumpIfNotLtIntImm { lhs: Reg, imm: i32, target: Pc } => [Read(lhs), Int(imm), Jump(target)],
    /// if !(R[lhs] > imm) { pc := target } (int; fused compare and branch)
    JumpIfNotGtIntImm { lhs: Reg, imm: i32, target: Pc } => [Read(lhs), Int(imm), Jump(target)],

    // ---- tasks (LANGUAGE.md §5; see `sched.rs`) ----
    /// R[dst] := a new task, child of the current one, that calls the
    /// function R[base] with R[base+1 .. base+1+argc]; it runs when the
    /// current task suspends.
    Spawn { dst: Reg, base: Reg, argc: u16 } => [Write(dst), ReadRange { start: base, count: u32::from(argc) + 1 }],
    /// R[dst] := the result of the task R[src] once it has finished
    /// (suspending the current task until then); its error is raised here.
    Await { dst: Reg, src: Reg } => [Write(dst), Read(src)],

    // ---- library functions the compiler turns into instructions ----
    /// R[dst] := the square root of R[src] (float; `sqrt`, NaN below zero)
    SqrtFloat { dst: Reg, src: Reg } => [Write(dst), Read(src)],
    /// Push R[base+1] onto the list R[base]; R[base] := nil (`xs.push(x)`,
    /// with the window and result of a call)
    ListPush { base: Reg } => [CallWindow { base, argc: 2 }],

    // ---- loops over lists ----
    /// The test at the bottom of `for x in xs`: if R[index] < the length of
    /// the list R[list] { R[item] := R[list][R[index]]; R[index] += 1;
    /// pc := body } (the length is read each time round; `index` is both
    /// read and written, described as read)
    ForListNext {
        index: Reg,
        list: Reg,
        item: Reg,
        body: Pc,
    } => [MaybeWrite(item), Read(list), Read(index), Jump(body)],

    // ---- fused compare and branch, taken when true (a loop's test at its bottom) ----
    /// if R[lhs] < R[rhs] { pc := target } (int)
    JumpIfLtInt { lhs: Reg, rhs: Reg, target: Pc } => [Read(lhs), Read(rhs), Jump(target)],
    /// if R[lhs] <= R[rhs] { pc := target } (int)
    JumpIfLeInt { lhs: Reg, rhs: Reg, target: Pc } => [Read(lhs), Read(rhs), Jump(target)],
    /// if R[lhs] < imm { pc := target } (int)
    JumpIfLtIntImm { lhs: Reg, imm: i32, target: Pc } => [Read(lhs), Int(imm), Jump(target)],
    /// if R[lhs] > imm { pc := target } (int)
    JumpIfGtIntImm { lhs: Reg, imm: i32, target: Pc } => [Read(lhs), Int(imm), Jump(target)],

    // ---- int division by a constant (a literal of at least 2) ----
    /// R[dst] := R[lhs] / K[divisor] (int, truncated; K[divisor] is an int)
    DivIntConst { dst: Reg, lhs: Reg, divisor: ConstIdx } => [Write(dst), Read(lhs), IntConst(divisor)],
    /// R[dst] := R[lhs] % K[divisor] (int, sign of lhs; K[divisor] is an int)
    RemIntConst { dst: Reg, lhs: Reg, divisor: ConstIdx } => [Write(dst), Read(lhs), IntConst(divisor)],

    // ---- library functions as statements ----
    /// Push R[value] onto the list R[list] (`xs.push(x)` as a statement,
    /// `xs` a local: no call window, no result)
    ListPushValue { list: Reg, value: Reg } => [Read(list), Read(value)],

    // ---- fused int operations ----
    /// R[dst] := (R[lhs] + R[rhs]) % K[divisor] (int, traps on overflow of
    /// the sum; K[divisor] is an int; `(a + b) % 1000003` whose sum is a
    /// temporary: one instruction, so the sum is not stored and read back)
    AddRemIntConst { dst: Reg, lhs: Reg, rhs: Reg, divisor: ConstIdx } => [Write(dst), Read(lhs), Read(rhs), IntConst(divisor)],
    /// `ForRangeLoop` of a loop whose body reads its variable only as an
    /// operand of int instructions (arithmetic, comparisons, a list index):
    /// R[counter+2] is written as a tag and a payload apart, which such
    /// reads take at once (the compiler chooses; the results are the same)
    ForRangeLoopInt { counter: Reg, body: Pc } => [LoopCounter(counter), Jump(body)],

    // ---- maps whose keys are ints (the compiler knows the key type) ----
    /// `MapGet` with R[key] read as an int operand: R[dst] := R[map][R[key]]
    /// (traps: Key)
    MapGetInt { dst: Reg, map: Reg, key: Reg } => [Write(dst), Read(map), Read(key)],
    /// `MapSet` with R[key] read as an int operand: R[map][R[key]] := R[src]
    /// (inserts at the end when new)
    MapSetInt { map: Reg, key: Reg, src: Reg } => [Read(map), Read(key), Read(src)],

    // ---- an element of a list of bools as a condition ----
    /// if R[list][R[index]] { pc := target } (a bool; traps: Index; the
    /// element is not copied to a register to be tested there)
    JumpIfListTrue { list: Reg, index: Reg, target: Pc } => [Read(list), Read(index), Jump(target)],
    /// if !R[list][R[index]] { pc := target } (a bool; traps: Index)
    JumpIfListFalse { list: Reg, index: Reg, target: Pc } => [Read(list), Read(index), Jump(target)],

    // ---- lists of bools, stored a byte an element ----
    /// R[dst] := new list of the bools R[start .. start+count], stored a
    /// byte an element (a `[bool]` literal; `NewList` when an item is not
    /// a bool)
    NewBoolList { dst: Reg, start: Reg, count: u16 } => [Write(dst), ReadRange { start, count: u32::from(count) }],
}
}

impl Op {
    /// Can control go on to the next instruction (errors aside)? Not
    /// after an unconditional jump, a return or a throw.
    pub fn falls_through(&self) -> bool {
        !matches!(
            self,
            Op::Jump { .. } | Op::Return { .. } | Op::ReturnNil | Op::Throw { .. }
        )
    }

    /// The instructions control may continue at after this one at `pc`
    /// (errors aside): the next one, if it falls through, and its jump
    /// target, if it has one.
    pub fn successors(&self, pc: usize) -> impl Iterator<Item = usize> {
        self.falls_through()
            .then_some(pc + 1)
            .into_iter()
            .chain(self.jump_target().map(Pc::index))
    }

    /// The instruction this one may jump to, if it has a jump operand.
    pub fn jump_target(&self) -> Option<Pc> {
        let mut target = None;
        self.for_each_operand(|operand| {
            if let Operand::Jump(to) = operand {
                target = Some(to);
            }
        });
        target
    }
}

const _: () = assert!(std::mem::size_of::<Op>() <= 16);
