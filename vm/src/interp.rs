//! The interpreter: one dispatch loop that executes a run's fiber, and the
//! rare paths it hands off to (raising and unwinding errors, deferred calls,
//! collections, stack traces).
//!
//! Architecture invariant: the interpreter never recurses on the Rust stack
//! for a script call. `Call`, `CallValue` and deferred calls push a [`Frame`]
//! inside the same loop and `Return` pops it, so a pause can happen between
//! any two instructions at any depth and the whole state stays in the
//! [`Run`]. `pc`, `base` and the current function's code live in locals
//! while the loop runs and are written back to the top frame whenever
//! anything else may look at it (a call, an error, a pause).

use std::sync::Arc;

use crate::coro::{self, Escape, Next, Yielded};
use crate::error::{ErrorKind, RunError, TraceFrame, VmError};
use crate::format;
use crate::heap::{Heap, Object, ValueMap};
use crate::native::{Host, NativeCtx, Suspend};
use crate::op::Op;
use crate::program::{Loc, Program};
use crate::run::{DeferEntry, Fiber, Frame, Handler, Run, Step, Unwind};
use crate::sched::{self, Awaited};
use crate::task::TaskError;
use crate::value::{FuncIdx, GlobalIdx, NativeIdx, Reg, Value};

/// Executes `run` until it finishes, fails or (when `BUDGETED`) spends its
/// instruction budget. The budget check is compiled out of the unbudgeted
/// instance, so an unlimited run pays nothing for it.
pub(crate) fn execute<const BUDGETED: bool>(
    run: &mut Run,
    host: &mut dyn Host,
) -> Result<Step, RunError> {
    // A handle of our own, so that `code` can borrow the program while the
    // rest of the run is mutated.
    let program_handle = Arc::clone(&run.program);
    let program: &Program = &program_handle;
    let mut remaining = run.limits.budget.unwrap_or(u64::MAX).max(1);

    if run.fiber.frames.is_empty() {
        if let Some(step) = sched::switch(run, program, host)? {
            return Ok(step);
        }
    }
    let Some((mut code, base, mut pc)) = top_state(&run.fiber, program) else {
        return Err(crate::run::internal_error("no frame to run"));
    };
    // The running frame's register window, `R[0]` first. Held as a local
    // slice so the hot path indexes it without going through `run`;
    // re-derived after anything that can move or resize the register file
    // or change the frame.
    let mut regs: &mut [Value] = &mut run.fiber.registers[base..];

    // R[x] of the running frame.
    macro_rules! r {
        ($reg:expr) => {
            regs[$reg.index()]
        };
    }
    // Writes the local pc back to the running frame.
    macro_rules! save_pc {
        () => {
            if let Some(frame) = run.fiber.frames.last_mut() {
                frame.pc = pc as u32;
            }
        };
    }
    // Reloads the locals from whatever frame is now on top; when the
    // current task has stopped (blocked or finished), from the next task's,
    // or returns to the host when no task can run.
    macro_rules! reload {
        () => {{
            if run.fiber.frames.is_empty() {
                if let Some(step) = sched::switch(run, program, host)? {
                    return Ok(step);
                }
            }
            match top_state(&run.fiber, program) {
                Some((new_code, new_base, new_pc)) => {
                    code = new_code;
                    pc = new_pc;
                    regs = &mut run.fiber.registers[new_base..];
                }
                None => return Err(crate::run::internal_error("no frame to run")),
            }
        }};
    }
    // Raises a `VmError` at the current instruction: unwinds to a handler
    // (continuing there) or ends the run.
    // Collects when the heap asks for it; only after instructions that
    // allocate, when every live value is in a register or another root.
    macro_rules! gc_point {
        () => {
            if run.heap.should_collect() || run.heap.len() > run.limits.max_heap_objects {
                if let Err(error) = collect_garbage(run, program) {
                    throw!(error)
                }
                let frame_base = current_base(&run.fiber);
                regs = &mut run.fiber.registers[frame_base..];
            }
        };
    }
    // Pushes a frame for script function `$func` whose window starts at the
    // caller's register `$call_base`, and continues in it.
    macro_rules! enter {
        ($func:expr, $call_base:expr, $argc:expr, $closure:expr, $check_arity:expr) => {{
            let func: FuncIdx = $func;
            let Some(callee) = program.functions.get(func.index()) else {
                throw!(bad_program("call of a missing function"))
            };
            if $check_arity && callee.arity != $argc {
                throw!(arity_error(&callee.name, callee.arity, $argc))
            }
            if run.fiber.frames.len() >= run.limits.max_call_depth {
                throw!(depth_error(run.limits.max_call_depth))
            }
            // Save the caller's pc and find its base with one frame lookup.
            let new_base = match run.fiber.frames.last_mut() {
                Some(caller) => {
                    caller.pc = pc as u32;
                    caller.base as usize + $call_base.index()
                }
                None => $call_base.index(),
            };
            let needed = new_base + callee.register_count as usize;
            if run.fiber.registers.len() < needed {
                run.fiber.registers.resize(needed, Value::Nil);
            }
            let ret = new_base as u32;
            let closure = $closure;
            run.fiber.frames.push(Frame {
                func,
                pc: 0,
                base: ret,
                closure,
                ret,
            });
            code = &callee.code;
            pc = 0;
            regs = &mut run.fiber.registers[new_base..];
        }};
    }
    // Calls a native with R[$call_base .. $call_base + $argc] and stores its
    // result in R[$call_base], or suspends the task when the native asks to
    // (an I/O operation, a lock, a channel, ...).
    macro_rules! call_native {
        ($native:expr, $call_base:expr, $argc:expr) => {{
            let Some(&function) = run.natives.get($native.index()) else {
                throw!(bad_program("call of a missing native"))
            };
            let start = $call_base.index();
            let (result, suspend) = {
                let args = &regs[start..start + $argc as usize];
                let mut ctx = NativeCtx {
                    heap: &mut run.heap,
                    program,
                    host: &mut *host,
                    rng: &mut run.rng,
                    args: &run.args,
                    sched: &mut run.sched,
                    suspend: None,
                };
                let result = function(&mut ctx, args);
                (result, ctx.suspend)
            };
            match (result, suspend) {
                (Err(error), _) => throw!(error),
                (Ok(value), None) => r!($call_base) = value,
                (Ok(_), Some(suspend)) => {
                    save_pc!();
                    let abs = current_base(&run.fiber) + start;
                    if suspend == Suspend::Io {
                        let args = run.fiber.registers[abs..abs + $argc as usize].to_vec();
                        if let Err(error) = sched::issue_io(run, program, $native, &args) {
                            throw!(error)
                        }
                    }
                    sched::park(run, program, abs as u32);
                    reload!();
                    continue;
                }
            }
            gc_point!();
        }};
    }
    // Reads an int operand, raising `Type` on any other variant.
    macro_rules! int {
        ($reg:expr) => {
            match r!($reg) {
                Value::Int(n) => n,
                _ => throw!(expected("int")),
            }
        };
    }
    macro_rules! float {
        ($reg:expr) => {
            match r!($reg) {
                Value::Float(x) => x,
                _ => throw!(expected("float")),
            }
        };
    }
    macro_rules! boolean {
        ($reg:expr) => {
            match r!($reg) {
                Value::Bool(b) => b,
                _ => throw!(expected("bool")),
            }
        };
    }
    // An int operation that traps with `$error` when it yields `None`.
    macro_rules! checked_int {
        ($dst:expr, $result:expr, $error:expr) => {
            match $result {
                Some(n) => r!($dst) = Value::Int(n),
                None => throw!($error),
            }
        };
    }
    // The object a register refers to, raising `Type` when it is not one
    // of the expected shape.
    macro_rules! string {
        ($reg:expr) => {
            match run.heap.str(r!($reg)) {
                Some(text) => text,
                None => throw!(expected("str")),
            }
        };
    }

    loop {
        let error: VmError = 'dispatch: loop {
            // Leaves the dispatch loop with the error; the code after it
            // raises the error and re-enters. One raise site keeps the
            // loop small. (Defined here so that the label is in scope.)
            macro_rules! throw {
                ($error:expr) => {{
                    break 'dispatch $error;
                }};
            }
            if BUDGETED {
                if remaining == 0 {
                    save_pc!();
                    return Ok(Step::Paused);
                }
                remaining -= 1;
            }
            let Some(op) = code.get(pc) else {
                throw!(bad_program("execution ran past the end of a function"))
            };
            pc += 1;
            match *op {
                // ---- moves and constants ----
                Op::Move { dst, src } => r!(dst) = r!(src),
                Op::LoadNil { dst } => r!(dst) = Value::Nil,
                Op::LoadBool { dst, value } => r!(dst) = Value::Bool(value),
                Op::LoadInt { dst, value } => r!(dst) = Value::Int(value as i64),
                Op::LoadConst { dst, idx } => match run.const_values.get(idx.index()) {
                    Some(&value) => r!(dst) = value,
                    None => throw!(bad_program("missing constant")),
                },
                Op::LoadFunc { dst, func } => r!(dst) = Value::Func(func),
                Op::LoadNative { dst, native } => r!(dst) = Value::Native(native),
                Op::LoadGlobal { dst, global } => match run.globals.get(global.index()) {
                    Some(&Value::UNSET) => throw!(global_unset(program, global)),
                    Some(&value) => r!(dst) = value,
                    None => throw!(bad_program("missing global")),
                },
                Op::StoreGlobal { global, src } => {
                    let value = r!(src);
                    match run.globals.get_mut(global.index()) {
                        Some(slot) => *slot = value,
                        None => throw!(bad_program("missing global")),
                    }
                }

                // ---- closures and captured variables ----
                Op::MakeClosure {
                    dst,
                    func,
                    start,
                    count,
                } => {
                    let from = start.index();
                    let captures = regs[from..from + count as usize].to_vec();
                    r!(dst) = Value::Obj(run.heap.alloc(Object::Closure { func, captures }));
                    gc_point!();
                }
                Op::LoadCapture { dst, index } => {
                    match capture(&run.fiber.frames, &run.heap, index) {
                        Some(value) => r!(dst) = value,
                        None => throw!(expected("a capture")),
                    }
                }
                Op::CaptureGet { dst, index } => {
                    let cell = capture(&run.fiber.frames, &run.heap, index).unwrap_or(Value::Nil);
                    match cell_contents(&run.heap, cell) {
                        Some(value) => r!(dst) = value,
                        None => throw!(expected("a captured cell")),
                    }
                }
                Op::CaptureSet { index, src } => {
                    let cell = capture(&run.fiber.frames, &run.heap, index).unwrap_or(Value::Nil);
                    let value = r!(src);
                    if !set_cell(&mut run.heap, cell, value) {
                        throw!(expected("a captured cell"))
                    }
                }
                Op::NewCell { dst, src } => {
                    r!(dst) = Value::Obj(run.heap.alloc(Object::Cell(r!(src))));
                    gc_point!();
                }
                Op::CellGet { dst, cell } => match cell_contents(&run.heap, r!(cell)) {
                    Some(value) => r!(dst) = value,
                    None => throw!(expected("a cell")),
                },
                Op::CellSet { cell, src } => {
                    let (cell, value) = (r!(cell), r!(src));
                    if !set_cell(&mut run.heap, cell, value) {
                        throw!(expected("a cell"))
                    }
                }

                // ---- int arithmetic ----
                Op::AddInt { dst, lhs, rhs } => {
                    checked_int!(dst, int!(lhs).checked_add(int!(rhs)), overflow())
                }
                Op::SubInt { dst, lhs, rhs } => {
                    checked_int!(dst, int!(lhs).checked_sub(int!(rhs)), overflow())
                }
                Op::MulInt { dst, lhs, rhs } => {
                    checked_int!(dst, int!(lhs).checked_mul(int!(rhs)), overflow())
                }
                Op::DivInt { dst, lhs, rhs } => {
                    let (dividend, divisor) = (int!(lhs), int!(rhs));
                    checked_int!(dst, dividend.checked_div(divisor), division_error(divisor))
                }
                Op::RemInt { dst, lhs, rhs } => {
                    let (dividend, divisor) = (int!(lhs), int!(rhs));
                    checked_int!(dst, dividend.checked_rem(divisor), division_error(divisor))
                }
                Op::AddIntImm { dst, lhs, imm } => {
                    checked_int!(dst, int!(lhs).checked_add(imm as i64), overflow())
                }
                Op::MulIntImm { dst, lhs, imm } => {
                    checked_int!(dst, int!(lhs).checked_mul(imm as i64), overflow())
                }
                Op::RemIntImm { dst, lhs, imm } => {
                    let divisor = imm as i64;
                    checked_int!(dst, int!(lhs).checked_rem(divisor), division_error(divisor))
                }
                Op::NegInt { dst, src } => checked_int!(dst, int!(src).checked_neg(), overflow()),

                // ---- float arithmetic ----
                Op::AddFloat { dst, lhs, rhs } => r!(dst) = Value::Float(float!(lhs) + float!(rhs)),
                Op::SubFloat { dst, lhs, rhs } => r!(dst) = Value::Float(float!(lhs) - float!(rhs)),
                Op::MulFloat { dst, lhs, rhs } => r!(dst) = Value::Float(float!(lhs) * float!(rhs)),
                Op::DivFloat { dst, lhs, rhs } => r!(dst) = Value::Float(float!(lhs) / float!(rhs)),
                Op::RemFloat { dst, lhs, rhs } => r!(dst) = Value::Float(float!(lhs) % float!(rhs)),
                Op::NegFloat { dst, src } => r!(dst) = Value::Float(-float!(src)),

                // ---- strings ----
                Op::Concat { dst, lhs, rhs } => {
                    let left = string!(lhs);
                    let right = string!(rhs);
                    let mut text = String::with_capacity(left.len() + right.len());
                    text.push_str(left);
                    text.push_str(right);
                    r!(dst) = run.heap.alloc_str(text);
                    gc_point!();
                }
                Op::ToStr { dst, src } => {
                    let value = r!(src);
                    if run.heap.str(value).is_none() {
                        let text = format::display(value, &run.heap, program);
                        r!(dst) = run.heap.alloc_str(text);
                        gc_point!();
                    } else {
                        r!(dst) = value;
                    }
                }

                // ---- comparisons ----
                Op::EqInt { dst, lhs, rhs } => r!(dst) = Value::Bool(int!(lhs) == int!(rhs)),
                Op::LtInt { dst, lhs, rhs } => r!(dst) = Value::Bool(int!(lhs) < int!(rhs)),
                Op::LeInt { dst, lhs, rhs } => r!(dst) = Value::Bool(int!(lhs) <= int!(rhs)),
                Op::EqFloat { dst, lhs, rhs } => r!(dst) = Value::Bool(float!(lhs) == float!(rhs)),
                Op::LtFloat { dst, lhs, rhs } => r!(dst) = Value::Bool(float!(lhs) < float!(rhs)),
                Op::LeFloat { dst, lhs, rhs } => r!(dst) = Value::Bool(float!(lhs) <= float!(rhs)),
                Op::LtStr { dst, lhs, rhs } => {
                    let less = string!(lhs) < string!(rhs);
                    r!(dst) = Value::Bool(less)
                }
                Op::LeStr { dst, lhs, rhs } => {
                    let less_or_equal = string!(lhs) <= string!(rhs);
                    r!(dst) = Value::Bool(less_or_equal)
                }
                Op::Eq { dst, lhs, rhs } => {
                    r!(dst) = Value::Bool(format::values_equal(r!(lhs), r!(rhs), &run.heap))
                }
                Op::Not { dst, src } => r!(dst) = Value::Bool(!boolean!(src)),

                // ---- control flow ----
                Op::Jump { target } => pc = target.index(),
                Op::JumpIfTrue { cond, target } => {
                    if boolean!(cond) {
                        pc = target.index();
                    }
                }
                Op::JumpIfFalse { cond, target } => {
                    if !boolean!(cond) {
                        pc = target.index();
                    }
                }
                Op::JumpIfNil { src, target } => {
                    if r!(src).is_nil() {
                        pc = target.index();
                    }
                }
                Op::JumpIfNotNil { src, target } => {
                    if !r!(src).is_nil() {
                        pc = target.index();
                    }
                }
                Op::JumpIfNotLtInt { lhs, rhs, target } => {
                    if int!(lhs) >= int!(rhs) {
                        pc = target.index();
                    }
                }
                Op::JumpIfNotLeInt { lhs, rhs, target } => {
                    if int!(lhs) > int!(rhs) {
                        pc = target.index();
                    }
                }
                Op::JumpIfNotLtIntImm { lhs, imm, target } => {
                    if int!(lhs) >= imm as i64 {
                        pc = target.index();
                    }
                }
                Op::JumpIfNotGtIntImm { lhs, imm, target } => {
                    if int!(lhs) <= imm as i64 {
                        pc = target.index();
                    }
                }
                Op::ForRangePrep { counter, exit } => {
                    let Some([start, end, var]) = range_window(regs, counter) else {
                        throw!(expected("a range counter"))
                    };
                    let (Value::Int(start), Value::Int(end)) = (*start, *end) else {
                        throw!(expected("int"))
                    };
                    if start >= end {
                        pc = exit.index();
                    } else {
                        *var = Value::Int(start);
                    }
                }
                Op::ForRangeLoop { counter, body } => {
                    let Some([current, end, var]) = range_window(regs, counter) else {
                        throw!(expected("a range counter"))
                    };
                    let (Value::Int(now), Value::Int(end)) = (*current, *end) else {
                        throw!(expected("int"))
                    };
                    // The counter is below the end, so adding one cannot overflow.
                    let next = now.wrapping_add(1);
                    *current = Value::Int(next);
                    if next < end {
                        *var = Value::Int(next);
                        pc = body.index();
                    }
                }

                // ---- calls ----
                Op::Call {
                    func,
                    base: call_base,
                    argc,
                } => {
                    enter!(func, call_base, argc, None, false)
                }
                Op::CallValue {
                    callee,
                    base: call_base,
                    argc,
                } => match r!(callee) {
                    Value::Func(func) => enter!(func, call_base, argc, None, true),
                    Value::Obj(obj) => match run.heap.get(obj) {
                        Some(&Object::Closure { func, .. }) => {
                            enter!(func, call_base, argc, Some(obj), true)
                        }
                        _ => throw!(expected("a function")),
                    },
                    Value::Native(native) => call_native!(native, call_base, argc),
                    _ => throw!(expected("a function")),
                },
                Op::CallNative {
                    native,
                    base: call_base,
                    argc,
                } => {
                    call_native!(native, call_base, argc)
                }
                Op::Return { .. } | Op::ReturnNil => {
                    // Fast path: no `try` or `defer` anywhere and a plain
                    // call returning to its caller, whose result register
                    // is this frame's `R[0]`.
                    if run.fiber.handlers.is_empty() && run.fiber.defers.is_empty() {
                        if let [.., caller, frame] = run.fiber.frames[..] {
                            if frame.ret == frame.base && frame.ret != Frame::DISCARD {
                                // Separate stores: a merged `Value` would
                                // go through the stack.
                                match *op {
                                    Op::Return { src } => r!(Reg(0)) = r!(src),
                                    _ => r!(Reg(0)) = Value::Nil,
                                }
                                run.fiber.frames.pop();
                                code = function_code(program, caller.func);
                                pc = caller.pc as usize;
                                regs = &mut run.fiber.registers[caller.base as usize..];
                                continue;
                            }
                        }
                    }
                    let value = match *op {
                        Op::Return { src } => r!(src),
                        _ => Value::Nil,
                    };
                    // One test keeps the common case (no `try`, no
                    // `defer` anywhere) cheap.
                    let bookkeeping =
                        !(run.fiber.handlers.is_empty() && run.fiber.defers.is_empty());
                    let depth = run.fiber.frames.len() - 1;
                    if bookkeeping {
                        pop_handlers(&mut run.fiber, depth);
                    }
                    let pending = if bookkeeping {
                        pending_defer(&mut run.fiber, depth)
                    } else {
                        None
                    };
                    if let Some(entry) = pending {
                        // Leave pc on this `Return`: it re-executes once the
                        // defer has returned, and finds the next defer or none.
                        run.fiber.frames[depth].pc = (pc - 1) as u32;
                        if let Err(error) = start_defer(run, program, host, entry.func) {
                            throw!(error)
                        }
                        reload!();
                        continue;
                    }
                    let Some(frame) = run.fiber.frames.pop() else {
                        sched::body_ended(run, Ok(value));
                        reload!();
                        continue;
                    };
                    let Some(caller) = run.fiber.frames.last() else {
                        // A coroutine's body returned: its resumer goes on.
                        // Otherwise the task's body has returned.
                        if !coro::finish_body(run) {
                            sched::body_ended(run, Ok(value));
                        }
                        reload!();
                        continue;
                    };
                    if frame.ret == Frame::DISCARD {
                        finish_defer(run, program, host)?;
                        reload!();
                        continue;
                    }
                    code = function_code(program, caller.func);
                    pc = caller.pc as usize;
                    let caller_base = caller.base as usize;
                    run.fiber.registers[frame.ret as usize] = value;
                    regs = &mut run.fiber.registers[caller_base..];
                }

                // ---- lists and maps ----
                Op::NewList { dst, start, count } => {
                    let from = start.index();
                    let items = regs[from..from + count as usize].to_vec();
                    r!(dst) = run.heap.alloc_list(items);
                    gc_point!();
                }
                Op::NewMap { dst, start, count } => {
                    let from = start.index();
                    match build_map(&run.heap, &regs[from..from + 2 * count as usize]) {
                        Some(map) => r!(dst) = Value::Obj(run.heap.alloc(Object::Map(map))),
                        None => throw!(expected("map keys")),
                    }
                    gc_point!();
                }
                Op::ListGet { dst, list, index } => {
                    let index = int!(index);
                    let Some(items) = run.heap.list(r!(list)) else {
                        throw!(expected("a list"))
                    };
                    match usize::try_from(index).ok().and_then(|i| items.get(i)) {
                        Some(&value) => r!(dst) = value,
                        None => throw!(index_error(index, "list", items.len())),
                    }
                }
                Op::ListSet { list, index, src } => {
                    let (index, value) = (int!(index), r!(src));
                    let Some(items) = run.heap.list_mut(r!(list)) else {
                        throw!(expected("a list"))
                    };
                    let length = items.len();
                    match usize::try_from(index).ok().and_then(|i| items.get_mut(i)) {
                        Some(slot) => *slot = value,
                        None => throw!(index_error(index, "list", length)),
                    }
                }
                Op::ListLen { dst, list } => match run.heap.list(r!(list)) {
                    Some(items) => r!(dst) = Value::Int(items.len() as i64),
                    None => throw!(expected("a list")),
                },
                Op::MapGet { dst, map, key } => {
                    let key_value = r!(key);
                    let Some(entries) = run.heap.map(r!(map)) else {
                        throw!(expected("a map"))
                    };
                    let Some(key) = run.heap.key(key_value) else {
                        throw!(expected("a map key"))
                    };
                    match entries.get(&key) {
                        Some(&value) => r!(dst) = value,
                        None => throw!(key_error(key_value, &run.heap, program)),
                    }
                }
                Op::MapSet { map, key, src } => {
                    let value = r!(src);
                    let Some(key) = run.heap.key(r!(key)) else {
                        throw!(expected("a map key"))
                    };
                    match run.heap.map_mut(r!(map)) {
                        Some(entries) => {
                            entries.insert(key, value);
                        }
                        None => throw!(expected("a map")),
                    }
                }
                Op::MapLen { dst, map } => match run.heap.map(r!(map)) {
                    Some(entries) => r!(dst) = Value::Int(entries.len() as i64),
                    None => throw!(expected("a map")),
                },
                Op::MapKeyAt { dst, map, index } => {
                    let index = int!(index);
                    let Some(entries) = run.heap.map(r!(map)) else {
                        throw!(expected("a map"))
                    };
                    let length = entries.len();
                    let entry = usize::try_from(index).ok().and_then(|i| entries.key_at(i));
                    let Some(key) = entry else {
                        throw!(index_error(index, "map", length))
                    };
                    r!(dst) = run.heap.key_value(&key);
                    gc_point!();
                }
                Op::MapValueAt { dst, map, index } => {
                    let index = int!(index);
                    let Some(entries) = run.heap.map(r!(map)) else {
                        throw!(expected("a map"))
                    };
                    let length = entries.len();
                    match usize::try_from(index)
                        .ok()
                        .and_then(|i| entries.value_at(i))
                    {
                        Some(value) => r!(dst) = value,
                        None => throw!(index_error(index, "map", length)),
                    }
                }

                // ---- records and enums ----
                Op::NewRecord {
                    dst,
                    ty,
                    start,
                    count,
                } => {
                    let from = start.index();
                    let fields = regs[from..from + count as usize].to_vec();
                    r!(dst) = Value::Obj(run.heap.alloc(Object::Record { ty, fields }));
                    gc_point!();
                }
                Op::GetField { dst, obj, field } => {
                    let object = r!(obj).as_obj().and_then(|obj| run.heap.get(obj));
                    match object {
                        Some(Object::Record { fields, .. }) if (field as usize) < fields.len() => {
                            r!(dst) = fields[field as usize]
                        }
                        _ => throw!(expected("a record")),
                    }
                }
                Op::SetField { obj, field, src } => {
                    let value = r!(src);
                    let object = r!(obj).as_obj().and_then(|obj| run.heap.get_mut(obj));
                    match object {
                        Some(Object::Record { fields, .. }) if (field as usize) < fields.len() => {
                            fields[field as usize] = value
                        }
                        _ => throw!(expected("a record")),
                    }
                }
                Op::NewVariant {
                    dst,
                    ty,
                    variant,
                    start,
                    count,
                } => {
                    let from = start.index();
                    let fields = regs[from..from + count as usize].to_vec();
                    r!(dst) = Value::Obj(run.heap.alloc(Object::Variant {
                        ty,
                        variant,
                        fields,
                    }));
                    gc_point!();
                }
                Op::JumpIfNotVariant {
                    src,
                    variant,
                    target,
                } => match r!(src).as_obj().and_then(|obj| run.heap.get(obj)) {
                    Some(Object::Variant {
                        variant: actual, ..
                    }) => {
                        if *actual != variant {
                            pc = target.index();
                        }
                    }
                    _ => throw!(expected("an enum value")),
                },
                Op::GetVariantField { dst, src, index } => {
                    match r!(src).as_obj().and_then(|obj| run.heap.get(obj)) {
                        Some(Object::Variant { fields, .. }) if (index as usize) < fields.len() => {
                            r!(dst) = fields[index as usize]
                        }
                        _ => throw!(expected("an enum value with that field")),
                    }
                }

                // ---- optionals ----
                Op::Unwrap { dst, src } => match r!(src) {
                    Value::Nil => {
                        throw!(VmError::new(ErrorKind::NilUnwrap, "unwrapped a nil value"))
                    }
                    value => r!(dst) = value,
                },

                // ---- errors, try and defer ----
                Op::Throw { src } => {
                    let error = r!(src);
                    save_pc!();
                    throw_value(run, program, host, error)?;
                    reload!();
                }
                Op::TryBegin { handler, dst } => {
                    let frame_depth = (run.fiber.frames.len() - 1) as u32;
                    run.fiber.handlers.push(Handler {
                        frame_depth,
                        catch_pc: handler.0,
                        dst,
                    });
                }
                Op::TryEnd => {
                    let depth = run.fiber.frames.len() - 1;
                    if run
                        .fiber
                        .handlers
                        .last()
                        .is_some_and(|h| h.frame_depth as usize == depth)
                    {
                        run.fiber.handlers.pop();
                    }
                }
                Op::Defer { src } => {
                    let frame_depth = (run.fiber.frames.len() - 1) as u32;
                    run.fiber.defers.push(DeferEntry {
                        frame_depth,
                        func: r!(src),
                    });
                }

                // ---- coroutines ----
                Op::CoroNext { dst, coro } => {
                    let target = r!(coro);
                    save_pc!();
                    match coro::next(run, program, host, target, dst) {
                        Ok(Next::Continue) => reload!(),
                        Ok(Next::Stop) => {
                            // Raised in the coroutine, at its pending yield.
                            raise(run, program, host, coro::stopped())?;
                            reload!();
                        }
                        Err(error) => throw!(error),
                    }
                }
                Op::Spawn {
                    dst,
                    base: call_base,
                    argc,
                } => {
                    let from = call_base.index();
                    let func = r!(call_base);
                    let args = regs[from + 1..from + 1 + argc as usize].to_vec();
                    match sched::spawn(run, func, args) {
                        Ok(task) => {
                            let frame_base = current_base(&run.fiber);
                            regs = &mut run.fiber.registers[frame_base..];
                            r!(dst) = task;
                        }
                        Err(error) => throw!(error),
                    }
                    gc_point!();
                }
                Op::Await { dst, src } => {
                    let target = r!(src);
                    save_pc!();
                    match sched::await_task(run, target) {
                        Ok(Awaited::Value(value)) => {
                            let frame_base = current_base(&run.fiber);
                            regs = &mut run.fiber.registers[frame_base..];
                            r!(dst) = value;
                        }
                        Ok(Awaited::Raise(error)) => {
                            throw_task_error(run, program, host, error)?;
                            reload!();
                        }
                        Ok(Awaited::Blocked) => {
                            let abs = current_base(&run.fiber) + dst.index();
                            sched::park(run, program, abs as u32);
                            reload!();
                        }
                        Err(error) => throw!(error),
                    }
                }
                Op::Yield { dst, src } => {
                    let value = r!(src);
                    save_pc!();
                    match coro::yield_value(run, program, value, dst) {
                        Yielded::ToResumer => reload!(),
                        Yielded::ToHost => return Ok(Step::Yield(value)),
                        Yielded::Raise(error) => throw!(error),
                    }
                }
            }
        };
        save_pc!();
        raise(run, program, host, error)?;
        reload!();
    }
}

/// The code, base and pc of the top frame, if there is one.
#[inline]
fn top_state<'p>(fiber: &Fiber, program: &'p Program) -> Option<(&'p [Op], usize, usize)> {
    let frame = fiber.frames.last()?;
    Some((
        function_code(program, frame.func),
        frame.base as usize,
        frame.pc as usize,
    ))
}

/// The registers `R[counter] ..= R[counter + 2]` of a counted loop, with one
/// bounds check.
#[inline(always)]
fn range_window(regs: &mut [Value], counter: Reg) -> Option<&mut [Value; 3]> {
    let from = counter.index();
    regs.get_mut(from..from + 3)?.try_into().ok()
}

/// The absolute register index of the running frame's `R[0]`.
#[inline]
fn current_base(fiber: &Fiber) -> usize {
    fiber.frames.last().map_or(0, |frame| frame.base as usize)
}

/// The code of `func`; empty (so execution raises cleanly) when missing.
#[inline]
fn function_code(program: &Program, func: FuncIdx) -> &[Op] {
    program
        .functions
        .get(func.index())
        .map_or(&[], |function| &function.code)
}

/// Capture `index` of the running frame's closure.
fn capture(frames: &[Frame], heap: &Heap, index: u16) -> Option<Value> {
    let closure = frames.last()?.closure?;
    match heap.get(closure)? {
        Object::Closure { captures, .. } => captures.get(index as usize).copied(),
        _ => None,
    }
}

/// The contents of the cell `cell` refers to.
fn cell_contents(heap: &Heap, cell: Value) -> Option<Value> {
    match heap.get(cell.as_obj()?)? {
        Object::Cell(value) => Some(*value),
        _ => None,
    }
}

/// Stores `value` in the cell `cell` refers to; false if it is not a cell.
fn set_cell(heap: &mut Heap, cell: Value, value: Value) -> bool {
    match cell.as_obj().and_then(|obj| heap.get_mut(obj)) {
        Some(Object::Cell(contents)) => {
            *contents = value;
            true
        }
        _ => false,
    }
}

/// A map from alternating key and value registers; `None` if a key is not of
/// a key type.
fn build_map(heap: &Heap, pairs: &[Value]) -> Option<ValueMap> {
    let mut map = ValueMap::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        map.insert(heap.key(pair[0])?, pair[1]);
    }
    Some(map)
}

/// Pops the handlers of frame `depth` (and any above it): a frame that
/// returns leaves its `try` blocks, and its defers run outside them.
#[inline]
fn pop_handlers(fiber: &mut Fiber, depth: usize) {
    while fiber
        .handlers
        .last()
        .is_some_and(|h| h.frame_depth as usize >= depth)
    {
        fiber.handlers.pop();
    }
}

/// Takes the most recently registered defer of frame `depth`, if any.
#[inline]
fn pending_defer(fiber: &mut Fiber, depth: usize) -> Option<DeferEntry> {
    match fiber.defers.last() {
        Some(entry) if entry.frame_depth as usize == depth => fiber.defers.pop(),
        _ => None,
    }
}

/// How a deferred call started.
enum DeferStart {
    /// A frame was pushed for it; the loop continues in that frame.
    Pushed,
    /// It was a native and has already run.
    Ran,
}

/// Starts the deferred call of `func` for the top frame, whose pc the caller
/// has saved. A script function gets a frame placed above the top frame's
/// registers (so its return value stays intact) whose result is discarded.
#[cold]
fn start_defer(
    run: &mut Run,
    program: &Program,
    host: &mut dyn Host,
    func: Value,
) -> Result<DeferStart, VmError> {
    let Some(&owner) = run.fiber.frames.last() else {
        return Err(bad_program("defer without a frame"));
    };
    let owner_registers = program
        .functions
        .get(owner.func.index())
        .map_or(0, |f| f.register_count);
    let new_base = owner.base as usize + owner_registers as usize;
    let (target, closure) = match func {
        Value::Func(target) => (target, None),
        Value::Obj(obj) => match run.heap.get(obj) {
            Some(&Object::Closure { func: target, .. }) => (target, Some(obj)),
            _ => return Err(expected("a function to defer")),
        },
        Value::Native(native) => {
            call_native_alone(run, program, host, native)?;
            return Ok(DeferStart::Ran);
        }
        _ => return Err(expected("a function to defer")),
    };
    let Some(callee) = program.functions.get(target.index()) else {
        return Err(bad_program("defer of a missing function"));
    };
    if callee.arity != 0 {
        return Err(arity_error(&callee.name, callee.arity, 0));
    }
    if run.fiber.frames.len() >= run.limits.max_call_depth {
        return Err(depth_error(run.limits.max_call_depth));
    }
    let needed = new_base + callee.register_count as usize;
    if run.fiber.registers.len() < needed {
        run.fiber.registers.resize(needed, Value::Nil);
    }
    let base = new_base as u32;
    run.fiber.frames.push(Frame {
        func: target,
        pc: 0,
        base,
        closure,
        ret: Frame::DISCARD,
    });
    Ok(DeferStart::Pushed)
}

/// A deferred call has returned to its owner (now the top frame): if the
/// owner is unwinding, continue unwinding with its error; otherwise the
/// owner's pc is on its `Return`, which re-executes.
#[cold]
fn finish_defer(run: &mut Run, program: &Program, host: &mut dyn Host) -> Result<(), RunError> {
    let depth = run.fiber.frames.len() - 1;
    match run.fiber.unwinds.last() {
        Some(unwind) if unwind.frame_depth as usize == depth => {
            let Some(unwind) = run.fiber.unwinds.pop() else {
                return Ok(());
            };
            unwind_to_handler(run, program, host, unwind.error, unwind.trace)
        }
        _ => Ok(()),
    }
}

/// Raises `error` at the top frame's saved pc: it becomes an `Error` record
/// and unwinds.
#[cold]
#[inline(never)]
fn raise(
    run: &mut Run,
    program: &Program,
    host: &mut dyn Host,
    error: VmError,
) -> Result<(), RunError> {
    let record = run.error_record(&error);
    throw_value(run, program, host, record)
}

/// Throws the `Error` record `error` from the top frame's saved pc.
#[cold]
#[inline(never)]
fn throw_value(
    run: &mut Run,
    program: &Program,
    host: &mut dyn Host,
    error: Value,
) -> Result<(), RunError> {
    let trace = trace_if_uncaught(run, program);
    unwind_to_handler(run, program, host, error, trace)
}

/// The stack trace, when no handler is active (otherwise the error will be
/// caught and a trace would be wasted work).
fn trace_if_uncaught(run: &Run, program: &Program) -> Vec<TraceFrame> {
    if run.fiber.handlers.is_empty() {
        stack_trace(&run.fiber, program)
    } else {
        Vec::new()
    }
}

/// Unwinds the fiber with `error` in flight. Frame by frame from the top: a
/// handler of the frame catches it (the frame continues at the handler); a
/// pending defer of the frame is started (unwinding resumes when it
/// returns, see [`finish_defer`]); otherwise the frame is popped. With no
/// frame left the run ends with the error. Returns `Ok` when the loop can
/// continue in the top frame.
fn unwind_to_handler(
    run: &mut Run,
    program: &Program,
    host: &mut dyn Host,
    mut error: Value,
    mut trace: Vec<TraceFrame>,
) -> Result<(), RunError> {
    loop {
        let Some(depth) = run.fiber.frames.len().checked_sub(1) else {
            // The error left the fiber: the run fails, or the coroutine
            // does and the error goes on in its resumer.
            match coro::escape(run, program, error, trace) {
                Escape::Uncaught(trace) => {
                    // The task's body has failed.
                    sched::body_ended(run, Err(TaskError { error, trace }));
                    return Ok(());
                }
                Escape::Finished => return Ok(()),
                Escape::Propagate(resumer_trace) => trace = resumer_trace,
            }
            continue;
        };
        // An error that escaped a defer replaces the one its owner was
        // unwinding with, as in Go and in Java's `finally`.
        while run
            .fiber
            .unwinds
            .last()
            .is_some_and(|u| u.frame_depth as usize >= depth)
        {
            run.fiber.unwinds.pop();
        }
        if let Some(handler) = run.fiber.handlers.last().copied() {
            if handler.frame_depth as usize == depth {
                run.fiber.handlers.pop();
                let frame = &mut run.fiber.frames[depth];
                frame.pc = handler.catch_pc;
                let slot = frame.base as usize + handler.dst.index();
                run.fiber.registers[slot] = error;
                return Ok(());
            }
        }
        if let Some(entry) = pending_defer(&mut run.fiber, depth) {
            let frame_depth = depth as u32;
            let held = std::mem::take(&mut trace);
            run.fiber.unwinds.push(Unwind {
                frame_depth,
                error,
                trace: held,
            });
            match start_defer(run, program, host, entry.func) {
                Ok(DeferStart::Pushed) => return Ok(()),
                Ok(DeferStart::Ran) => {
                    let Some(unwind) = run.fiber.unwinds.pop() else {
                        continue;
                    };
                    (error, trace) = (unwind.error, unwind.trace);
                }
                Err(new_error) => {
                    run.fiber.unwinds.pop();
                    error = run.error_record(&new_error);
                    trace = trace_if_uncaught(run, program);
                }
            }
            continue;
        }
        run.fiber.frames.pop();
        pop_handlers(&mut run.fiber, depth);
    }
}

/// The `RunError` for an error no handler caught. Clears the fiber's
/// bookkeeping so the run's state stays consistent.
pub(crate) fn run_error(
    run: &mut Run,
    program: &Program,
    error: Value,
    trace: Vec<TraceFrame>,
) -> RunError {
    let field = |index: usize| match error.as_obj().and_then(|obj| run.heap.get(obj)) {
        Some(Object::Record { fields, .. }) => fields.get(index).copied(),
        _ => None,
    };
    let (kind, message) = match (field(0), field(1)) {
        (Some(kind), Some(message)) => (
            format::display(kind, &run.heap, program),
            format::display(message, &run.heap, program),
        ),
        _ => (
            "Type".to_string(),
            format::display(error, &run.heap, program),
        ),
    };
    run.fiber.handlers.clear();
    run.fiber.defers.clear();
    run.fiber.unwinds.clear();
    RunError {
        kind,
        message,
        trace,
    }
}

/// The fiber's stack, innermost first: each frame's function, file and the
/// position of the instruction it is executing (for callers, the call).
pub fn stack_trace(fiber: &Fiber, program: &Program) -> Vec<TraceFrame> {
    let mut trace = Vec::with_capacity(fiber.frames.len());
    let mut above_is_defer = false;
    for (depth, frame) in fiber.frames.iter().enumerate().rev() {
        let Some(function) = program.functions.get(frame.func.index()) else {
            continue;
        };
        // A frame running a `Return`'s defers has its pc on the `Return`
        // itself; every other frame has it just past the current instruction.
        let unwinding = fiber
            .unwinds
            .iter()
            .any(|u| u.frame_depth as usize == depth);
        let pc = if above_is_defer && !unwinding {
            frame.pc
        } else {
            frame.pc.saturating_sub(1)
        };
        let loc = function
            .locs
            .get(pc as usize)
            .copied()
            .unwrap_or(Loc::default());
        let file = program
            .files
            .get(function.file.index())
            .cloned()
            .unwrap_or_default();
        trace.push(TraceFrame {
            function: function.name.clone(),
            file,
            line: loc.line,
            col: loc.col,
        });
        above_is_defer = frame.ret == Frame::DISCARD;
    }
    trace
}

/// Collects garbage with every root of the run, then enforces the heap
/// limit.
#[cold]
#[inline(never)]
fn collect_garbage(run: &mut Run, program: &Program) -> Result<(), VmError> {
    let max_heap_objects = run.limits.max_heap_objects;
    // Every fiber is a root: the active one and each resumer's (suspended
    // coroutines' fibers are reached through their heap objects), as is
    // every running coroutine's object.
    let mut roots: Vec<Value> = run.resumers.iter().map(|r| Value::Obj(r.coro)).collect();
    run.sched.for_each_value(|value| roots.push(value));
    let resumers = run.resumers.iter_mut().map(|resumer| &mut resumer.fiber);
    for fiber in std::iter::once(&mut run.fiber).chain(resumers) {
        fiber.truncate_dead_registers(program);
        fiber.for_each_value(|value| roots.push(value));
    }
    roots.extend_from_slice(&run.globals);
    roots.extend_from_slice(&run.const_values);
    run.heap.collect(roots);
    if run.heap.len() > max_heap_objects {
        return Err(VmError::new(
            ErrorKind::Limit,
            format!("heap limit exceeded ({max_heap_objects} objects)"),
        ));
    }
    Ok(())
}

/// A `Type` error for an operand of the wrong kind.
#[cold]
pub(crate) fn expected(what: &str) -> VmError {
    VmError::new(ErrorKind::Type, format!("internal error: expected {what}"))
}

/// Calls a native without arguments outside the dispatch loop: a deferred
/// native, or a native used as a coroutine's body.
pub(crate) fn call_native_alone(
    run: &mut Run,
    program: &Program,
    host: &mut dyn Host,
    native: NativeIdx,
) -> Result<Value, VmError> {
    match call_native_suspending(run, program, host, native, &[])? {
        (value, None) => Ok(value),
        (_, Some(_)) => Err(VmError::new(
            ErrorKind::Type,
            "a deferred call or a coroutine body cannot be an I/O operation or block; wrap it in a function",
        )),
    }
}

/// Calls a native with `args` outside the dispatch loop; also returns
/// whether it asked to suspend the current task.
pub(crate) fn call_native_suspending(
    run: &mut Run,
    program: &Program,
    host: &mut dyn Host,
    native: NativeIdx,
    args: &[Value],
) -> Result<(Value, Option<Suspend>), VmError> {
    let Some(&function) = run.natives.get(native.index()) else {
        return Err(bad_program("call of a missing native"));
    };
    let mut ctx = NativeCtx {
        heap: &mut run.heap,
        program,
        host,
        rng: &mut run.rng,
        args: &run.args,
        sched: &mut run.sched,
        suspend: None,
    };
    let value = function(&mut ctx, args)?;
    Ok((value, ctx.suspend))
}

/// Raises a task's error (an awaited task's, or one delivered to a woken
/// task) at the top frame's saved pc; its trace goes on with this stack.
#[cold]
#[inline(never)]
pub(crate) fn throw_task_error(
    run: &mut Run,
    program: &Program,
    host: &mut dyn Host,
    error: TaskError,
) -> Result<(), RunError> {
    let mut trace = error.trace;
    if run.fiber.handlers.is_empty() {
        trace.extend(stack_trace(&run.fiber, program));
    } else {
        trace.clear();
    }
    unwind_to_handler(run, program, host, error.error, trace)
}

/// A function read a top-level variable before its `let` ran.
#[cold]
fn global_unset(program: &Program, global: GlobalIdx) -> VmError {
    let name = program
        .globals
        .get(global.index())
        .map_or("?", String::as_str);
    VmError::new(
        ErrorKind::Type,
        format!("global `{name}` was read before its `let` ran"),
    )
}

/// A `Type` error for a program that breaks the VM's assumptions.
#[cold]
pub(crate) fn bad_program(what: &str) -> VmError {
    VmError::new(ErrorKind::Type, format!("internal error: {what}"))
}

#[cold]
fn overflow() -> VmError {
    VmError::new(ErrorKind::Overflow, "integer overflow")
}

/// The error of an int `/` or `%` that had no result.
#[cold]
fn division_error(divisor: i64) -> VmError {
    if divisor == 0 {
        VmError::new(ErrorKind::DivByZero, "division by zero")
    } else {
        overflow()
    }
}

#[cold]
fn index_error(index: i64, container: &str, length: usize) -> VmError {
    VmError::new(
        ErrorKind::Index,
        format!("index {index} out of range for {container} of length {length}"),
    )
}

#[cold]
fn key_error(key: Value, heap: &Heap, program: &Program) -> VmError {
    let mut shown = String::new();
    format::write_value(&mut shown, key, heap, program, 0);
    VmError::new(ErrorKind::Key, format!("key {shown} not found"))
}

#[cold]
pub(crate) fn depth_error(max_call_depth: usize) -> VmError {
    VmError::new(
        ErrorKind::Limit,
        format!("call depth limit exceeded ({max_call_depth} frames)"),
    )
}

#[cold]
pub(crate) fn arity_error(name: &str, arity: u16, argc: u16) -> VmError {
    VmError::new(
        ErrorKind::Type,
        format!("{name} takes {arity} arguments but got {argc}"),
    )
}
