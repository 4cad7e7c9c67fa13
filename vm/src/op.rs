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

use crate::value::{ConstIdx, EnumIdx, FuncIdx, GlobalIdx, NativeIdx, Pc, Reg, StructIdx};

/// One instruction.
// Operands are documented by each variant's register-transfer line.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    // ---- moves and constants ----
    /// R[dst] := R[src]
    Move { dst: Reg, src: Reg },
    /// R[dst] := nil
    LoadNil { dst: Reg },
    /// R[dst] := value
    LoadBool { dst: Reg, value: bool },
    /// R[dst] := value (small integer immediate)
    LoadInt { dst: Reg, value: i32 },
    /// R[dst] := constants[idx] (int, float or a preallocated string)
    LoadConst { dst: Reg, idx: ConstIdx },
    /// R[dst] := the script function `func` as a value
    LoadFunc { dst: Reg, func: FuncIdx },
    /// R[dst] := the native function `native` as a value
    LoadNative { dst: Reg, native: NativeIdx },
    /// R[dst] := globals[global]
    LoadGlobal { dst: Reg, global: GlobalIdx },
    /// globals[global] := R[src]
    StoreGlobal { global: GlobalIdx, src: Reg },

    // ---- closures and captured variables ----
    /// R[dst] := new closure of `func` capturing R[start .. start+count]
    /// (each a plain value or a cell, as the compiler decided)
    MakeClosure {
        dst: Reg,
        func: FuncIdx,
        start: Reg,
        count: u16,
    },
    /// R[dst] := capture `index` of the running closure, as stored (a value or a cell)
    LoadCapture { dst: Reg, index: u16 },
    /// R[dst] := contents of the cell held in capture `index` of the running closure
    CaptureGet { dst: Reg, index: u16 },
    /// contents of the cell held in capture `index` := R[src]
    CaptureSet { index: u16, src: Reg },
    /// R[dst] := new cell holding R[src]
    NewCell { dst: Reg, src: Reg },
    /// R[dst] := contents of the cell in R[cell]
    CellGet { dst: Reg, cell: Reg },
    /// contents of the cell in R[cell] := R[src]
    CellSet { cell: Reg, src: Reg },

    // ---- int arithmetic (traps: Overflow, DivByZero) ----
    /// R[dst] := R[lhs] + R[rhs] (int, traps on overflow)
    AddInt { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] - R[rhs] (int, traps on overflow)
    SubInt { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] * R[rhs] (int, traps on overflow)
    MulInt { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] / R[rhs] (int, truncates toward zero; traps on zero and overflow)
    DivInt { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] % R[rhs] (int, sign of lhs; traps on zero and overflow)
    RemInt { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] + imm (int, traps on overflow)
    AddIntImm { dst: Reg, lhs: Reg, imm: i32 },
    /// R[dst] := -R[src] (int, traps on overflow)
    NegInt { dst: Reg, src: Reg },

    // ---- float arithmetic (IEEE, never traps) ----
    /// R[dst] := R[lhs] + R[rhs] (float)
    AddFloat { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] - R[rhs] (float)
    SubFloat { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] * R[rhs] (float)
    MulFloat { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] / R[rhs] (float)
    DivFloat { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] % R[rhs] (float, as Rust's `%`)
    RemFloat { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := -R[src] (float)
    NegFloat { dst: Reg, src: Reg },

    // ---- strings ----
    /// R[dst] := new string R[lhs] ++ R[rhs] (str)
    Concat { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := str(R[src]) as LANGUAGE.md §8 prints it (a string stays itself)
    ToStr { dst: Reg, src: Reg },

    // ---- comparisons (result bool) ----
    /// R[dst] := R[lhs] == R[rhs] (int)
    EqInt { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] < R[rhs] (int)
    LtInt { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] <= R[rhs] (int)
    LeInt { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] == R[rhs] (float, IEEE)
    EqFloat { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] < R[rhs] (float)
    LtFloat { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] <= R[rhs] (float)
    LeFloat { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] < R[rhs] (str, by Unicode scalar values)
    LtStr { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] <= R[rhs] (str)
    LeStr { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := R[lhs] == R[rhs] (any type: structural for str, lists, maps,
    /// records and variants; identity for closures and other objects)
    Eq { dst: Reg, lhs: Reg, rhs: Reg },
    /// R[dst] := !R[src] (bool)
    Not { dst: Reg, src: Reg },

    // ---- control flow ----
    /// pc := target
    Jump { target: Pc },
    /// if R[cond] { pc := target } (bool)
    JumpIfTrue { cond: Reg, target: Pc },
    /// if !R[cond] { pc := target } (bool)
    JumpIfFalse { cond: Reg, target: Pc },
    /// if R[src] is nil { pc := target }
    JumpIfNil { src: Reg, target: Pc },
    /// if R[src] is not nil { pc := target }
    JumpIfNotNil { src: Reg, target: Pc },
    /// if !(R[lhs] < R[rhs]) { pc := target } (int; fused compare and branch)
    JumpIfNotLtInt { lhs: Reg, rhs: Reg, target: Pc },
    /// if !(R[lhs] <= R[rhs]) { pc := target } (int; fused compare and branch)
    JumpIfNotLeInt { lhs: Reg, rhs: Reg, target: Pc },
    /// Counted loop entry. R[counter] holds the start and R[counter+1] the
    /// exclusive end (ints). If R[counter] >= R[counter+1] { pc := exit }
    /// else R[counter+2] := R[counter] (the body's loop variable).
    ForRangePrep { counter: Reg, exit: Pc },
    /// Counted loop back edge. R[counter] += 1; if R[counter] < R[counter+1]
    /// { R[counter+2] := R[counter]; pc := body }.
    ForRangeLoop { counter: Reg, body: Pc },

    // ---- calls ----
    /// Call script function `func` with R[base .. base+argc]; R[base] := result.
    Call { func: FuncIdx, base: Reg, argc: u16 },
    /// Call the function value in R[callee] (script function, closure or
    /// native) with R[base .. base+argc]; R[base] := result.
    CallValue { callee: Reg, base: Reg, argc: u16 },
    /// Call native `native` with R[base .. base+argc]; R[base] := result.
    CallNative {
        native: NativeIdx,
        base: Reg,
        argc: u16,
    },
    /// Run this frame's pending defers (LIFO), then return R[src] to the caller.
    Return { src: Reg },
    /// Run this frame's pending defers (LIFO), then return nil to the caller.
    ReturnNil,

    // ---- lists and maps ----
    /// R[dst] := new list of R[start .. start+count]
    NewList { dst: Reg, start: Reg, count: u16 },
    /// R[dst] := new map of `count` pairs: key R[start+2i], value R[start+2i+1]
    NewMap { dst: Reg, start: Reg, count: u16 },
    /// R[dst] := R[list][R[index]] (traps: Index)
    ListGet { dst: Reg, list: Reg, index: Reg },
    /// R[list][R[index]] := R[src] (traps: Index)
    ListSet { list: Reg, index: Reg, src: Reg },
    /// R[dst] := length of the list R[list] (int)
    ListLen { dst: Reg, list: Reg },
    /// R[dst] := R[map][R[key]] (traps: Key)
    MapGet { dst: Reg, map: Reg, key: Reg },
    /// R[map][R[key]] := R[src] (inserts at the end when new)
    MapSet { map: Reg, key: Reg, src: Reg },
    /// R[dst] := number of entries of the map R[map] (int)
    MapLen { dst: Reg, map: Reg },
    /// R[dst] := key of the entry at insertion position R[index] (traps: Index)
    MapKeyAt { dst: Reg, map: Reg, index: Reg },
    /// R[dst] := value of the entry at insertion position R[index] (traps: Index)
    MapValueAt { dst: Reg, map: Reg, index: Reg },

    // ---- records and enums ----
    /// R[dst] := new record of struct `ty` with fields R[start .. start+count]
    NewRecord {
        dst: Reg,
        ty: StructIdx,
        start: Reg,
        count: u16,
    },
    /// R[dst] := field `field` of the record R[obj]
    GetField { dst: Reg, obj: Reg, field: u16 },
    /// field `field` of the record R[obj] := R[src]
    SetField { obj: Reg, field: u16, src: Reg },
    /// R[dst] := new value of enum `ty`, variant `variant`, payload R[start .. start+count]
    NewVariant {
        dst: Reg,
        ty: EnumIdx,
        variant: u16,
        start: Reg,
        count: u16,
    },
    /// if the variant value R[src] is not variant `variant` { pc := target }
    JumpIfNotVariant { src: Reg, variant: u16, target: Pc },
    /// R[dst] := payload field `index` of the variant value R[src]
    GetVariantField { dst: Reg, src: Reg, index: u16 },

    // ---- optionals ----
    /// R[dst] := R[src] if not nil, else trap NilUnwrap
    Unwrap { dst: Reg, src: Reg },

    // ---- errors, try and defer ----
    /// Raise the `Error` record in R[src]: unwind to the nearest handler,
    /// running the defers of every frame left.
    Throw { src: Reg },
    /// Push a handler: an error raised before the matching `TryEnd` unwinds to
    /// this frame, stores the `Error` record in R[dst] and continues at `handler`.
    TryBegin { handler: Pc, dst: Reg },
    /// Pop the innermost handler (which belongs to this frame).
    TryEnd,
    /// Register the zero-argument function value in R[src] to run when this
    /// frame exits (by return or by unwinding), after defers registered later.
    Defer { src: Reg },

    // ---- coroutines (LANGUAGE.md §4; see `coro.rs`) ----
    /// Resume the coroutine R[coro] on its own fiber until it yields
    /// (R[dst] := true) or finishes (R[dst] := false); its error is raised here.
    CoroNext { dst: Reg, coro: Reg },
    /// Yield R[src] to the resumer (or, outside any coroutine, to the host);
    /// when resumed, R[dst] := the value sent (nil if none).
    Yield { dst: Reg, src: Reg },

    // ---- int operations with an immediate operand ----
    // (Appended, so that the serialized index of every older variant stays.)
    /// R[dst] := R[lhs] * imm (int, traps on overflow)
    MulIntImm { dst: Reg, lhs: Reg, imm: i32 },
    /// R[dst] := R[lhs] % imm (int, sign of lhs; traps on zero and overflow)
    RemIntImm { dst: Reg, lhs: Reg, imm: i32 },
    /// if !(R[lhs] < imm) { pc := target } (int; fused compare and branch)
    JumpIfNotLtIntImm { lhs: Reg, imm: i32, target: Pc },
    /// if !(R[lhs] > imm) { pc := target } (int; fused compare and branch)
    JumpIfNotGtIntImm { lhs: Reg, imm: i32, target: Pc },

    // ---- tasks (LANGUAGE.md §5; see `sched.rs`) ----
    /// R[dst] := a new task, child of the current one, that calls the
    /// function R[base] with R[base+1 .. base+1+argc]; it runs when the
    /// current task suspends.
    Spawn { dst: Reg, base: Reg, argc: u16 },
    /// R[dst] := the result of the task R[src] once it has finished
    /// (suspending the current task until then); its error is raised here.
    Await { dst: Reg, src: Reg },
}

const _: () = assert!(std::mem::size_of::<Op>() <= 16);
