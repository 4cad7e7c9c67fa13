//! The interpreter: one dispatch loop that executes a run's fiber, and the
//! rare paths it hands off to (raising and unwinding errors, deferred calls,
//! collections, stack traces).
//!
//! Architecture invariant: the interpreter never recurses on the Rust stack
//! for a script call. `Call`, `CallValue` and deferred calls push a [`Frame`]
//! inside the same loop and `Return` pops it, so a pause can happen between
//! any two instructions at any depth and the whole state stays in the
//! [`Run`]. The current function's code, the instructions still ahead in
//! it (a slice iterator: the pc is how many are behind) and the frame's
//! register window live in locals while the loop runs; the pc is written
//! back to the top frame whenever anything else may look at it (a call, an
//! error, a pause).

use std::sync::Arc;

use crate::exec::coro::{self, Next, Yielded};
use crate::exec::divisor::Divisor;
use crate::exec::error::{
    arity_error, bad_program, depth_error, division_error, expected, global_unset, index_error,
    key_error, overflow, ErrorKind, RunError, VmError,
};
use crate::exec::native::{Native, NativeCtx, Output, Suspend};
use crate::exec::unwind::{
    finish_defer, pending_defer, pop_handlers, raise, start_defer, throw_task_error, throw_value,
};
use crate::heap::format;
use crate::heap::value::{FuncIdx, NativeIdx, Pc, Reg, Value};
use crate::heap::{Heap, Object, ValueMap};
use crate::program::op::Op;
use crate::program::Program;
use crate::run::{DeferEntry, Fiber, Frame, Handler, Run, Step};
use crate::tasks::sched::{self, Awaited};

/// Executes `run` until it finishes, fails or (when `BUDGETED`) spends its
/// instruction budget. The budget check is compiled out of the unbudgeted
/// instance, so an unlimited run pays nothing for it.
pub(crate) fn execute<const BUDGETED: bool>(
    run: &mut Run,
    output: &mut dyn Output,
) -> Result<Step, RunError> {
    // A handle of our own, so that `code` can borrow the program while the
    // rest of the run is mutated.
    let program_handle = Arc::clone(&run.program);
    let program: &Program = &program_handle;
    // (A constant in the unbudgeted instance, which is only run without a
    // budget: nothing of it stays live through the dispatch loop.)
    let mut remaining = if BUDGETED {
        run.limits.budget.unwrap_or(u64::MAX).max(1)
    } else {
        u64::MAX
    };
    if !run.program_checked {
        if let Err(problem) = crate::saved::validate::check_program(program) {
            return Err(crate::run::internal_error(&format!(
                "the program is inconsistent: {problem}"
            )));
        }
        run.program_checked = true;
        run.divisors = program.constants.iter().map(Divisor::of_constant).collect();
    }

    if run.context.fiber.frames.is_empty() {
        if let Some(step) = sched::switch(run, program, output)? {
            run.budget_left = remaining;
            return Ok(step);
        }
    }
    let Some((mut code, base, pc, width)) = top_state(&run.context.fiber, program) else {
        return Err(crate::run::internal_error("no frame to run"));
    };
    // The next instruction of the running function, inside `code` (see
    // `fetch`): the dispatch loop takes it and steps past it, a jump moves
    // it to its target (`from`), and the frame's pc is how many of `code`
    // are behind it.
    let mut ip = frame_start(code, pc)?;
    // The running frame's register window, `R[0]` first, exactly as many
    // registers as the running function has (at least one). Held as a
    // local slice so the hot path indexes it without going through `run`;
    // re-derived (always with `window`, from the function whose `code`
    // runs) after anything that can move or resize the register file or
    // change the frame.
    let mut regs: &mut [Value] = window(&mut run.context.fiber.registers, base, width);

    // R[x] of the running frame (see `slot`).
    macro_rules! r {
        ($reg:expr) => {
            *slot(regs, $reg)
        };
    }
    // The index of the next instruction of the running function.
    macro_rules! pc {
        () => {
            (ip as usize - code.as_ptr() as usize) / std::mem::size_of::<Op>()
        };
    }
    // Continues at instruction `$pc` of the running function; raises an
    // error naming `$what` (a jump, a return) when there is none.
    macro_rules! go_to {
        ($pc:expr, $what:expr) => {
            match from(code, $pc) {
                Some(next) => ip = next,
                None => throw!(bad_program(concat!(
                    "a ",
                    $what,
                    " past the end of a function"
                ))),
            }
        };
    }
    // Continues at instruction `$target` of the running function (a jump
    // operand: inside the function, see `jump_target`).
    macro_rules! jump {
        ($target:expr) => {
            ip = jump_target(code, $target)
        };
    }
    // Writes the local pc back to the running frame.
    macro_rules! save_pc {
        () => {
            if let Some(frame) = run.context.fiber.frames.last_mut() {
                frame.pc = pc!() as u32;
            }
        };
    }
    // Reloads the locals from whatever frame is now on top; when the
    // current task has stopped (blocked or finished), from the next task's,
    // or returns to the host when no task can run.
    macro_rules! reload {
        () => {{
            if run.context.fiber.frames.is_empty() {
                if let Some(step) = sched::switch(run, program, output)? {
                    run.budget_left = remaining;
                    return Ok(step);
                }
            }
            match top_state(&run.context.fiber, program) {
                Some((new_code, new_base, new_pc, width)) => {
                    code = new_code;
                    ip = frame_start(code, new_pc)?;
                    regs = window(&mut run.context.fiber.registers, new_base, width);
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
            if run.heap.needs_attention() {
                if let Err(error) = collect_garbage(run, program) {
                    throw!(error)
                }
                regs = top_window(
                    &mut run.context.fiber.registers,
                    &run.context.fiber.frames,
                    program,
                );
            }
        };
    }
    // Makes sure `$bytes` more fit under the heap limit before they are
    // allocated: collects first if they would not, then raises `Limit` if
    // they still do not.
    macro_rules! charge {
        ($bytes:expr) => {
            if run.heap.charge($bytes).is_err() {
                let _ = collect_garbage(run, program);
                regs = top_window(
                    &mut run.context.fiber.registers,
                    &run.context.fiber.frames,
                    program,
                );
                if let Err(error) = run.heap.charge($bytes) {
                    throw!(error)
                }
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
            if run.context.fiber.frames.len() >= run.limits.max_call_depth {
                throw!(depth_error(run.limits.max_call_depth))
            }
            // Save the caller's pc and find its base with one frame lookup.
            let new_base = match run.context.fiber.frames.last_mut() {
                Some(caller) => {
                    caller.pc = pc!() as u32;
                    caller.base as usize + $call_base.index()
                }
                None => $call_base.index(),
            };
            let needed = new_base + callee.register_count as usize;
            if run.context.fiber.registers.len() < needed {
                if let Err(error) = grow_registers(run, needed) {
                    throw!(error)
                }
            }
            let ret = new_base as u32;
            let closure = $closure;
            run.context.fiber.frames.push(Frame {
                func,
                pc: 0,
                base: ret,
                closure,
                ret,
            });
            code = &callee.code;
            // Its first instruction: `check_function` refuses empty code.
            ip = code.as_ptr();
            regs = window(
                &mut run.context.fiber.registers,
                new_base,
                window_width(callee),
            );
        }};
    }
    // Calls a native with R[$call_base .. $call_base + $argc] and stores its
    // result in R[$call_base], or suspends the task when the native asks to
    // (an I/O operation, a lock, a channel, ...).
    macro_rules! call_native {
        ($native:expr, $call_base:expr, $argc:expr) => {{
            let Some(function) = run.natives.get($native.index()) else {
                throw!(bad_program("call of a missing native"))
            };
            let start = $call_base.index();
            if matches!(function, Native::Io) {
                // An I/O operation: the request is issued and the task
                // parked here, with no native call in between.
                save_pc!();
                let abs = current_base(&run.context.fiber) + start;
                let called = crate::tasks::io::call_io(run, program, $native, abs, $argc as usize);
                if let Err(error) = called {
                    throw!(error)
                }
                reload!();
                continue;
            }
            let (result, suspend) = {
                let args = &regs[start..start + $argc as usize];
                // Only a budgeted run counts what a native builds.
                let before = if BUDGETED { run.heap.in_use() } else { 0 };
                let mut ctx = NativeCtx {
                    heap: &mut run.heap,
                    program,
                    output: &mut *output,
                    rng: &mut run.rng,
                    exit: &mut run.exit,
                    args: &run.args,
                    sched: &mut run.sched,
                    suspend: None,
                    work: 0,
                };
                let result = function.call(&mut ctx, args);
                if BUDGETED {
                    // What a native built counts as work too: 16 bytes an
                    // instruction.
                    let built = ctx.heap.in_use().saturating_sub(before) / 16;
                    remaining = remaining.saturating_sub(ctx.work.saturating_add(built as u64));
                }
                (result, ctx.suspend)
            };
            match (result, suspend) {
                (Err(error), _) => throw!(error),
                (Ok(value), None) => r!($call_base) = value,
                (Ok(_), Some(suspend)) => {
                    save_pc!();
                    let abs = current_base(&run.context.fiber) + start;
                    if suspend == Suspend::Io {
                        let issued = crate::tasks::io::issue_io_from_registers(
                            run,
                            program,
                            $native,
                            abs,
                            $argc as usize,
                        );
                        if let Err(error) = issued {
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
    // Write an int, float or bool result to a register whole (`store`).
    macro_rules! set_int {
        ($reg:expr, $value:expr) => {{
            let n: i64 = $value;
            store(slot(regs, $reg), TAG_INT, n as u64)
        }};
    }
    macro_rules! set_float {
        ($reg:expr, $value:expr) => {{
            let x: f64 = $value;
            store(slot(regs, $reg), TAG_FLOAT, x.to_bits())
        }};
    }
    macro_rules! set_bool {
        ($reg:expr, $value:expr) => {{
            let b: bool = $value;
            store(slot(regs, $reg), TAG_BOOL, u64::from(b))
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
    // A sum's, difference's, quotient's or remainder's result, written as a
    // tag and a payload apart: such results mostly feed more arithmetic
    // (counters, accumulators, `s = (s + x) % m`), which reads them the
    // same way, and building the one 16-byte store would lengthen that
    // chain of dependent operations.
    macro_rules! int_apart {
        ($dst:expr, $result:expr, $error:expr) => {
            match $result {
                Some(n) => r!($dst) = Value::Int(n),
                None => throw!($error),
            }
        };
    }
    // A counted loop's back edge (`ForRangeLoop`, `ForRangeLoopInt`): the
    // loop's variable, R[counter+2], is written whole, or apart when
    // `$apart` (the body reads it only as an int operand, which takes a
    // field written alone at once, while an instruction copying the
    // register whole stalls on one).
    macro_rules! for_range_loop {
        ($counter:expr, $body:expr, $apart:expr) => {{
            let counter: Reg = $counter;
            let (now, end) = (int!(counter), int!(Reg(counter.0 + 1)));
            // The counter is below the end, so adding one cannot overflow.
            let next = now.wrapping_add(1);
            // (The counter is only read as an int: written apart.)
            r!(counter) = Value::Int(next);
            if next < end {
                if $apart {
                    r!(Reg(counter.0 + 2)) = Value::Int(next);
                } else {
                    store(slot(regs, Reg(counter.0 + 2)), TAG_INT, next as u64);
                }
                jump!($body);
            }
        }};
    }
    // Stores `$value` under `$key` in the map R[$map] (`MapSet`,
    // `MapSetInt`): `$key` is `Err(n)` for an int key, which needs no
    // `Key` built and dropped, else `Ok(key)`.
    macro_rules! map_insert {
        ($map:expr, $key:expr, $value:expr) => {{
            let (key, value): (Result<crate::heap::Key, i64>, Value) = ($key, $value);
            charge!(crate::heap::MAP_ENTRY_BYTES);
            let Some(entries) = run.heap.map_mut(r!($map)) else {
                throw!(expected("a map"))
            };
            let added = match key {
                Err(key) => entries.insert_int(key, value),
                Ok(key) => entries.insert(key, value).is_none(),
            };
            if added {
                run.heap.grew(crate::heap::MAP_ENTRY_BYTES);
            }
            gc_point!();
        }};
    }
    // Where item `$at` (a usize) of the list R[$list] is: `Some(&value)`,
    // a bool of a list stored as bytes as one of `BOOLS`, or `None` past
    // its end (`ListGet`, `ForListNext`). A macro, not a function: either
    // kind of list then gives the same reference, one path as fast as for
    // a list of values alone.
    macro_rules! list_item {
        ($list:expr, $at:expr) => {
            match run.heap.get_value(r!($list)) {
                Some(Object::List(items)) => items.get($at),
                Some(Object::BoolList(items)) => items.get($at).map(|&b| &BOOLS[usize::from(b)]),
                _ => throw!(expected("a list")),
            }
        };
    }
    // Jumps to `$target` when the bool R[$list][R[$index]] is `$when`
    // (`JumpIfListTrue`, `JumpIfListFalse`).
    macro_rules! jump_if_list {
        ($list:expr, $index:expr, $target:expr, $when:expr) => {
            match list_bool(&run.heap, r!($list), int!($index)) {
                Ok(element) => {
                    if element == $when {
                        jump!($target);
                    }
                }
                Err(error) => throw!(error),
            }
        };
    }
    // Pushes R[$value] onto the list R[$list] (`ListPush`, `ListPushValue`).
    macro_rules! push {
        ($list:expr, $value:expr) => {{
            let value = r!($value);
            charge!(crate::heap::ITEM_BYTES);
            match run.heap.values_mut(r!($list)) {
                Some(items) => items.push(value),
                None => {
                    if !push_bool(&mut run.heap, r!($list), r!($value)) {
                        if let Err(error) = push_slowly(&mut run.heap, r!($list), r!($value)) {
                            throw!(error)
                        }
                    }
                }
            }
            run.heap.grew(crate::heap::ITEM_BYTES);
        }};
    }
    // The prepared divisor of an int constant (`DivIntConst`, `RemIntConst`,
    // `AddRemIntConst`).
    macro_rules! divisor {
        ($idx:expr) => {
            match run.divisors.get($idx.index()) {
                Some(&divisor) => divisor,
                None => throw!(bad_program("missing constant")),
            }
        };
    }
    // An int operation that traps with `$error` when it yields `None`.
    macro_rules! checked_int {
        ($dst:expr, $result:expr, $error:expr) => {
            match $result {
                Some(n) => set_int!($dst, n),
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
                    run.budget_left = 0;
                    return Ok(Step::Paused);
                }
                remaining -= 1;
            }
            let op = fetch(code, &mut ip);
            match *op {
                // ---- moves and constants ----
                Op::Move { dst, src } => r!(dst) = r!(src),
                // Copied whole from constants: a 16-byte store, so that an
                // instruction copying the register next reads it at once
                // (a tag byte stored alone would stall that read).
                // (`black_box` keeps the compiler from folding the copy
                // back into separate stores of the tag and the payload.)
                Op::LoadNil { dst } => r!(dst) = *std::hint::black_box(&NIL),
                Op::LoadBool { dst, value } => {
                    r!(dst) = std::hint::black_box(&BOOLS)[usize::from(value)]
                }
                Op::LoadInt { dst, value } => set_int!(dst, value as i64),
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
                    match capture(&run.context.fiber.frames, &run.heap, index) {
                        Some(value) => r!(dst) = value,
                        None => throw!(expected("a capture")),
                    }
                }
                Op::CaptureGet { dst, index } => {
                    let cell =
                        capture(&run.context.fiber.frames, &run.heap, index).unwrap_or(Value::Nil);
                    match cell_contents(&run.heap, cell) {
                        Some(value) => r!(dst) = value,
                        None => throw!(expected("a captured cell")),
                    }
                }
                Op::CaptureSet { index, src } => {
                    let cell =
                        capture(&run.context.fiber.frames, &run.heap, index).unwrap_or(Value::Nil);
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
                    int_apart!(dst, int!(lhs).checked_add(int!(rhs)), overflow())
                }
                Op::SubInt { dst, lhs, rhs } => {
                    int_apart!(dst, int!(lhs).checked_sub(int!(rhs)), overflow())
                }
                Op::MulInt { dst, lhs, rhs } => {
                    int_apart!(dst, int!(lhs).checked_mul(int!(rhs)), overflow())
                }
                Op::DivInt { dst, lhs, rhs } => {
                    let (dividend, divisor) = (int!(lhs), int!(rhs));
                    int_apart!(dst, dividend.checked_div(divisor), division_error(divisor))
                }
                Op::RemInt { dst, lhs, rhs } => {
                    let (dividend, divisor) = (int!(lhs), int!(rhs));
                    int_apart!(dst, dividend.checked_rem(divisor), division_error(divisor))
                }
                Op::AddIntImm { dst, lhs, imm } => {
                    int_apart!(dst, int!(lhs).checked_add(imm as i64), overflow())
                }
                Op::MulIntImm { dst, lhs, imm } => {
                    checked_int!(dst, int!(lhs).checked_mul(imm as i64), overflow())
                }
                Op::RemIntImm { dst, lhs, imm } => {
                    let divisor = imm as i64;
                    int_apart!(dst, int!(lhs).checked_rem(divisor), division_error(divisor))
                }
                Op::NegInt { dst, src } => checked_int!(dst, int!(src).checked_neg(), overflow()),
                Op::DivIntConst { dst, lhs, divisor } => {
                    let divisor = divisor!(divisor);
                    int_apart!(dst, divisor.div(int!(lhs)), division_error(divisor.value()))
                }
                Op::RemIntConst { dst, lhs, divisor } => {
                    let divisor = divisor!(divisor);
                    int_apart!(dst, divisor.rem(int!(lhs)), division_error(divisor.value()))
                }
                Op::AddRemIntConst {
                    dst,
                    lhs,
                    rhs,
                    divisor,
                } => {
                    let divisor = divisor!(divisor);
                    match int!(lhs).checked_add(int!(rhs)) {
                        Some(sum) => {
                            int_apart!(dst, divisor.rem(sum), division_error(divisor.value()))
                        }
                        None => throw!(overflow()),
                    }
                }

                // ---- float arithmetic ----
                Op::AddFloat { dst, lhs, rhs } => set_float!(dst, float!(lhs) + float!(rhs)),
                Op::SubFloat { dst, lhs, rhs } => set_float!(dst, float!(lhs) - float!(rhs)),
                Op::MulFloat { dst, lhs, rhs } => set_float!(dst, float!(lhs) * float!(rhs)),
                Op::DivFloat { dst, lhs, rhs } => set_float!(dst, float!(lhs) / float!(rhs)),
                Op::RemFloat { dst, lhs, rhs } => set_float!(dst, float!(lhs) % float!(rhs)),
                Op::NegFloat { dst, src } => set_float!(dst, -float!(src)),
                Op::SqrtFloat { dst, src } => set_float!(dst, float!(src).sqrt()),

                // ---- strings ----
                Op::Concat { dst, lhs, rhs } => {
                    let left = string!(lhs);
                    let right = string!(rhs);
                    let length = left.len() + right.len();
                    charge!(length);
                    let left = string!(lhs);
                    let right = string!(rhs);
                    let mut text = String::with_capacity(length);
                    text.push_str(left);
                    text.push_str(right);
                    r!(dst) = run.heap.alloc_str(text);
                    gc_point!();
                }
                Op::ToStr { dst, src } => {
                    let value = r!(src);
                    if run.heap.str(value).is_none() {
                        let text = match format::display_checked(value, &run.heap, program) {
                            Ok(text) => text,
                            Err(error) => throw!(error),
                        };
                        r!(dst) = run.heap.alloc_str(text);
                        gc_point!();
                    } else {
                        r!(dst) = value;
                    }
                }

                // ---- comparisons ----
                Op::EqInt { dst, lhs, rhs } => set_bool!(dst, int!(lhs) == int!(rhs)),
                Op::LtInt { dst, lhs, rhs } => set_bool!(dst, int!(lhs) < int!(rhs)),
                Op::LeInt { dst, lhs, rhs } => set_bool!(dst, int!(lhs) <= int!(rhs)),
                Op::EqFloat { dst, lhs, rhs } => set_bool!(dst, float!(lhs) == float!(rhs)),
                Op::LtFloat { dst, lhs, rhs } => set_bool!(dst, float!(lhs) < float!(rhs)),
                Op::LeFloat { dst, lhs, rhs } => set_bool!(dst, float!(lhs) <= float!(rhs)),
                Op::LtStr { dst, lhs, rhs } => {
                    let less = string!(lhs) < string!(rhs);
                    set_bool!(dst, less)
                }
                Op::LeStr { dst, lhs, rhs } => {
                    let less_or_equal = string!(lhs) <= string!(rhs);
                    set_bool!(dst, less_or_equal)
                }
                Op::Eq { dst, lhs, rhs } => {
                    set_bool!(dst, format::values_equal(r!(lhs), r!(rhs), &run.heap))
                }
                Op::Not { dst, src } => set_bool!(dst, !boolean!(src)),

                // ---- control flow ----
                Op::Jump { target } => jump!(target),
                Op::JumpIfTrue { cond, target } => {
                    if boolean!(cond) {
                        jump!(target);
                    }
                }
                Op::JumpIfFalse { cond, target } => {
                    if !boolean!(cond) {
                        jump!(target);
                    }
                }
                Op::JumpIfListTrue {
                    list,
                    index,
                    target,
                } => jump_if_list!(list, index, target, true),
                Op::JumpIfListFalse {
                    list,
                    index,
                    target,
                } => jump_if_list!(list, index, target, false),
                Op::JumpIfNil { src, target } => {
                    if r!(src).is_nil() {
                        jump!(target);
                    }
                }
                Op::JumpIfNotNil { src, target } => {
                    if !r!(src).is_nil() {
                        jump!(target);
                    }
                }
                Op::JumpIfNotLtInt { lhs, rhs, target } => {
                    if int!(lhs) >= int!(rhs) {
                        jump!(target);
                    }
                }
                Op::JumpIfNotLeInt { lhs, rhs, target } => {
                    if int!(lhs) > int!(rhs) {
                        jump!(target);
                    }
                }
                Op::JumpIfNotLtIntImm { lhs, imm, target } => {
                    if int!(lhs) >= imm as i64 {
                        jump!(target);
                    }
                }
                Op::JumpIfNotGtIntImm { lhs, imm, target } => {
                    if int!(lhs) <= imm as i64 {
                        jump!(target);
                    }
                }
                Op::JumpIfLtInt { lhs, rhs, target } => {
                    if int!(lhs) < int!(rhs) {
                        jump!(target);
                    }
                }
                Op::JumpIfLeInt { lhs, rhs, target } => {
                    if int!(lhs) <= int!(rhs) {
                        jump!(target);
                    }
                }
                Op::JumpIfLtIntImm { lhs, imm, target } => {
                    if int!(lhs) < imm as i64 {
                        jump!(target);
                    }
                }
                Op::JumpIfGtIntImm { lhs, imm, target } => {
                    if int!(lhs) > imm as i64 {
                        jump!(target);
                    }
                }
                // A loop counter's three registers are one operand
                // (`LoopCounter`), checked as a whole like any other.
                Op::ForRangePrep { counter, exit } => {
                    let (start, end) = (int!(counter), int!(Reg(counter.0 + 1)));
                    if start >= end {
                        jump!(exit);
                    } else {
                        store(slot(regs, Reg(counter.0 + 2)), TAG_INT, start as u64);
                    }
                }
                Op::ForRangeLoop { counter, body } => for_range_loop!(counter, body, false),
                Op::ForRangeLoopInt { counter, body } => for_range_loop!(counter, body, true),

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
                    if run.context.fiber.handlers.is_empty() && run.context.fiber.defers.is_empty()
                    {
                        if let [.., caller, frame] = run.context.fiber.frames[..] {
                            if frame.ret == frame.base && frame.ret != Frame::DISCARD {
                                // Separate stores: a merged `Value` would
                                // go through the stack.
                                match *op {
                                    Op::Return { src } => r!(Reg(0)) = r!(src),
                                    _ => r!(Reg(0)) = Value::Nil,
                                }
                                run.context.fiber.frames.pop();
                                let width;
                                (code, width) = function_view(program, caller.func);
                                go_to!(caller.pc as usize, "return");
                                regs = window(
                                    &mut run.context.fiber.registers,
                                    caller.base as usize,
                                    width,
                                );
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
                    let bookkeeping = !(run.context.fiber.handlers.is_empty()
                        && run.context.fiber.defers.is_empty());
                    let depth = run.context.fiber.frames.len() - 1;
                    if bookkeeping {
                        pop_handlers(&mut run.context.fiber, depth);
                    }
                    let pending = if bookkeeping {
                        pending_defer(&mut run.context.fiber, depth)
                    } else {
                        None
                    };
                    if let Some(entry) = pending {
                        // Leave pc on this `Return`: it re-executes once the
                        // defer has returned, and finds the next defer or none.
                        run.context.fiber.frames[depth].pc = (pc!() - 1) as u32;
                        if let Err(error) = start_defer(run, program, output, entry.func) {
                            throw!(error)
                        }
                        reload!();
                        continue;
                    }
                    let Some(frame) = run.context.fiber.frames.pop() else {
                        sched::body_ended(run, Ok(value));
                        reload!();
                        continue;
                    };
                    let Some(caller) = run.context.fiber.frames.last() else {
                        // A coroutine's body returned: its resumer goes on.
                        // Otherwise the task's body has returned.
                        if !coro::finish_body(run) {
                            sched::body_ended(run, Ok(value));
                        }
                        reload!();
                        continue;
                    };
                    if frame.ret == Frame::DISCARD {
                        finish_defer(run, program, output)?;
                        reload!();
                        continue;
                    }
                    let width;
                    (code, width) = function_view(program, caller.func);
                    go_to!(caller.pc as usize, "return");
                    let caller_base = caller.base as usize;
                    run.context.fiber.registers[frame.ret as usize] = value;
                    regs = window(&mut run.context.fiber.registers, caller_base, width);
                }

                // ---- lists and maps ----
                Op::NewList { dst, start, count } => {
                    let from = start.index();
                    let items = regs[from..from + count as usize].to_vec();
                    r!(dst) = run.heap.alloc_list(items);
                    gc_point!();
                }
                Op::NewBoolList { dst, start, count } => {
                    let from = start.index();
                    r!(dst) = new_bool_list(&mut run.heap, &regs[from..from + count as usize]);
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
                    let found = list_item!(list, usize::try_from(index).unwrap_or(usize::MAX));
                    match found {
                        Some(&value) => r!(dst) = value,
                        None => throw!(list_error(&run.heap, r!(list), index)),
                    }
                }
                Op::ListSet { list, index, src } => {
                    let (list, index, value) = (r!(list), int!(index), r!(src));
                    if !set_list_item(&mut run.heap, list, index, value) {
                        if let Err(error) = set_list_item_slowly(&mut run.heap, list, index, value)
                        {
                            throw!(error)
                        }
                    }
                }
                Op::ListPush { base: list } => {
                    push!(list, Reg(list.0 + 1));
                    r!(list) = Value::Nil;
                    gc_point!();
                }
                Op::ListPushValue { list, value } => {
                    push!(list, value);
                    gc_point!();
                }
                Op::ForListNext {
                    index,
                    list,
                    item,
                    body,
                } => {
                    let position = int!(index);
                    let found = list_item!(list, usize::try_from(position).unwrap_or(usize::MAX));
                    if let Some(&value) = found {
                        r!(item) = value;
                        // Below the list's length, so adding one cannot overflow.
                        // (Only read as an int: written apart.)
                        r!(index) = Value::Int(position.wrapping_add(1));
                        jump!(body);
                    }
                }
                Op::ListLen { dst, list } => match run.heap.list_view(r!(list)) {
                    Some(items) => set_int!(dst, items.len() as i64),
                    None => throw!(expected("a list")),
                },
                Op::MapGet { dst, map, key } => {
                    let key_value = r!(key);
                    let Some(entries) = run.heap.map(r!(map)) else {
                        throw!(expected("a map"))
                    };
                    let found = match key_value {
                        Value::Int(n) => entries.get_int(n),
                        _ => match run.heap.key(key_value) {
                            Some(key) => entries.get(&key),
                            None => throw!(expected("a map key")),
                        },
                    };
                    match found {
                        Some(&value) => r!(dst) = value,
                        None => throw!(key_error(key_value, &run.heap, program)),
                    }
                }
                Op::MapSet { map, key, src } => {
                    let value = r!(src);
                    let key = match r!(key) {
                        // An int key (the `Err` side) needs no `Key` built and dropped.
                        Value::Int(key) => Err(key),
                        other => match run.heap.key(other) {
                            Some(key) => Ok(key),
                            None => throw!(expected("a map key")),
                        },
                    };
                    map_insert!(map, key, value);
                }
                Op::MapGetInt { dst, map, key } => {
                    let key = int!(key);
                    let Some(entries) = run.heap.map(r!(map)) else {
                        throw!(expected("a map"))
                    };
                    match entries.get_int(key) {
                        Some(&value) => r!(dst) = value,
                        None => throw!(key_error(Value::Int(key), &run.heap, program)),
                    }
                }
                Op::MapSetInt { map, key, src } => {
                    let (key, value) = (int!(key), r!(src));
                    map_insert!(map, Err(key), value);
                }
                Op::MapLen { dst, map } => match run.heap.map(r!(map)) {
                    Some(entries) => set_int!(dst, entries.len() as i64),
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
                            jump!(target);
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
                    throw_value(run, program, output, error)?;
                    reload!();
                }
                Op::TryBegin { handler, dst } => {
                    let frame_depth = (run.context.fiber.frames.len() - 1) as u32;
                    run.context.fiber.handlers.push(Handler {
                        frame_depth,
                        catch_pc: handler.0,
                        dst,
                    });
                }
                Op::TryEnd => {
                    let depth = run.context.fiber.frames.len() - 1;
                    if run
                        .context
                        .fiber
                        .handlers
                        .last()
                        .is_some_and(|h| h.frame_depth as usize == depth)
                    {
                        run.context.fiber.handlers.pop();
                    }
                }
                Op::Defer { src } => {
                    let frame_depth = (run.context.fiber.frames.len() - 1) as u32;
                    run.context.fiber.defers.push(DeferEntry {
                        frame_depth,
                        func: r!(src),
                    });
                }

                // ---- coroutines ----
                Op::CoroNext { dst, coro } => {
                    let target = r!(coro);
                    save_pc!();
                    match coro::next(run, program, output, target, dst) {
                        Ok(Next::Continue) => reload!(),
                        Ok(Next::Stop) => {
                            // Raised in the coroutine, at its pending yield.
                            raise(run, program, output, coro::stopped())?;
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
                    let args = &regs[from + 1..from + 1 + argc as usize];
                    let args = sched::spawn_args(program, &run.heap, func, args);
                    match sched::spawn(run, func, args) {
                        Ok(task) => {
                            regs = top_window(
                                &mut run.context.fiber.registers,
                                &run.context.fiber.frames,
                                program,
                            );
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
                            regs = top_window(
                                &mut run.context.fiber.registers,
                                &run.context.fiber.frames,
                                program,
                            );
                            r!(dst) = value;
                        }
                        Ok(Awaited::Raise(error)) => {
                            throw_task_error(run, program, output, error)?;
                            reload!();
                        }
                        Ok(Awaited::Blocked) => {
                            let abs = current_base(&run.context.fiber) + dst.index();
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
                        Yielded::ToHost => {
                            run.budget_left = remaining;
                            return Ok(Step::Yield(value));
                        }
                        Yielded::Raise(error) => throw!(error),
                    }
                }
            }
        };
        save_pc!();
        raise(run, program, output, error)?;
        reload!();
    }
}

/// The tags of [`Value`]'s variants under its `repr(C, u8)` layout, for
/// [`store`] (test `stores_make_the_values_they_name`).
const TAG_BOOL: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_FLOAT: u8 = 3;

/// Writes the value of variant `tag` with `payload` (an int's or a
/// float's bits, or 0 or 1 for a bool) to `slot` with one 16-byte store.
/// Written field by field, a register takes a one-byte store of its tag
/// and an eight-byte one of its payload, and the next instruction that
/// copies the register whole (a move, a call's argument, a field or list
/// store) cannot take the value from those stores and stalls.
#[allow(unsafe_code)]
#[inline(always)]
fn store(slot: &mut Value, tag: u8, payload: u64) {
    debug_assert!(matches!(tag, TAG_INT | TAG_FLOAT) || payload <= 1);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_set_epi64x, _mm_storeu_si128};
        // SAFETY: `slot` is a valid, exclusive 16-byte `Value`. `Value`
        // is `repr(C, u8)`: byte 0 is the tag and every variant's payload
        // starts at byte 8, so tag `TAG_INT` or `TAG_FLOAT` with any 64
        // bits, or `TAG_BOOL` with 0 or 1 (callers pass `u64::from(bool)`),
        // is a valid value of that variant; bytes 1 to 7 are padding,
        // which may hold anything. The test `stores_make_the_values_they_name`
        // checks the tags and the layout. SSE2 is part of every x86_64
        // target.
        unsafe {
            _mm_storeu_si128(
                (slot as *mut Value).cast::<__m128i>(),
                _mm_set_epi64x(payload as i64, i64::from(tag)),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        *slot = match tag {
            TAG_BOOL => Value::Bool(payload != 0),
            TAG_INT => Value::Int(payload as i64),
            _ => Value::Float(f64::from_bits(payload)),
        };
    }
}

/// `nil`, as a constant the interpreter copies whole.
static NIL: Value = Value::Nil;

/// `false` and `true`, as constants the interpreter copies whole (also
/// what an item of a list of bools stored as bytes is read as: see
/// `list_item!`).
static BOOLS: [Value; 2] = [Value::Bool(false), Value::Bool(true)];

/// Instruction `pc` of `code`, as the dispatch loop's position (see
/// [`fetch`]); `None` past the last one.
#[inline(always)]
fn from(code: &[Op], pc: usize) -> Option<*const Op> {
    code.get(pc).map(std::ptr::from_ref)
}

/// Where a frame at `pc` of `code` goes on, when execution starts or
/// moves to another frame.
#[inline]
fn frame_start(code: &[Op], pc: usize) -> Result<*const Op, RunError> {
    from(code, pc)
        .ok_or_else(|| crate::run::internal_error("a frame's position is past its function's end"))
}

/// The instruction at `ip`, stepping `ip` past it.
///
/// Sound because `ip` always points at an instruction of the running
/// function's `code`, which the program (held by `execute` for the whole
/// call) keeps alive and unchanged:
/// - it is set only by [`from`] (an instruction of `code`, checked), by
///   [`jump_target`] (a jump operand, which the validator keeps below the
///   length of its function's code), or to the first instruction of a
///   callee (`enter!`; `check_function` refuses a function without code);
/// - stepping past an instruction reaches the next one, because execution
///   goes on to the next instruction only after one that falls through
///   ([`Op::falls_through`]), and `check_function` refuses a function whose
///   last instruction does (every program is checked before it runs:
///   `Run::program_checked`);
/// - `code` changes only together with `ip`.
///
/// The conformance tests run with debug assertions, where the assertion
/// checks every fetch against the running function's bounds.
#[allow(unsafe_code)]
#[inline(always)]
fn fetch<'c>(code: &'c [Op], ip: &mut *const Op) -> &'c Op {
    debug_assert!(
        code.as_ptr_range().contains(ip),
        "an instruction outside its function"
    );
    // SAFETY: see above: `*ip` is an instruction of `code`.
    let op = unsafe { &**ip };
    // SAFETY: at most one past the last instruction of the same code.
    *ip = unsafe { ip.add(1) };
    op
}

/// The instruction a jump of the running function's `code` goes to.
///
/// Sound because `target` is a jump operand of an instruction of `code`,
/// and `check_operand` refuses a jump operand that is not below its
/// function's length (every program is checked before it runs:
/// `Run::program_checked`), so the result is an instruction of `code`, as
/// [`fetch`] requires. Not comparing with the end saves a comparison on
/// every jump taken and keeps the length of the running code out of the
/// dispatch loop. The conformance
/// tests run with debug assertions, where the assertion checks every jump.
#[allow(unsafe_code)]
#[inline(always)]
fn jump_target(code: &[Op], target: Pc) -> *const Op {
    debug_assert!(target.index() < code.len(), "a jump past the end");
    // SAFETY: see above: `target` is below `code.len()`.
    unsafe { code.as_ptr().add(target.index()) }
}

/// The code, base, pc and window width of the top frame, if there is one.
#[inline]
fn top_state<'p>(fiber: &Fiber, program: &'p Program) -> Option<(&'p [Op], usize, usize, usize)> {
    let frame = fiber.frames.last()?;
    let (code, width) = function_view(program, frame.func);
    Some((code, frame.base as usize, frame.pc as usize, width))
}

/// The running (top) frame's register window, as [`window`] gives it.
#[inline]
fn top_window<'f>(
    registers: &'f mut Vec<Value>,
    frames: &[Frame],
    program: &Program,
) -> &'f mut [Value] {
    let (base, func) = frames.last().map_or((0, FuncIdx(u32::MAX)), |frame| {
        (frame.base as usize, frame.func)
    });
    let (_, width) = function_view(program, func);
    window(registers, base, width)
}

/// The code of `func` and the width of its register window (see
/// [`window_width`]); empty code (so execution raises cleanly) when
/// missing.
#[inline]
fn function_view(program: &Program, func: FuncIdx) -> (&[Op], usize) {
    program
        .functions
        .get(func.index())
        .map_or((&[], 1), |function| {
            (&function.code, window_width(function))
        })
}

/// How many registers a frame of `function` sees: its register count,
/// and at least one (a call's result goes to `R[0]`).
#[inline(always)]
fn window_width(function: &crate::program::Function) -> usize {
    usize::from(function.register_count).max(1)
}

/// The register window of the frame at `base`: exactly `width`
/// registers. Frames are pushed with room for their window (`enter!`,
/// `grow_registers`, and the validation of a saved run), so the register
/// file is long enough; if it were not, it grows here (never reached)
/// rather than leave a window shorter than `width`, which [`slot`]
/// relies on.
#[inline(always)]
fn window(registers: &mut Vec<Value>, base: usize, width: usize) -> &mut [Value] {
    let end = base + width;
    if registers.len() < end {
        grow_cold(registers, end);
    }
    &mut registers[base..end]
}

/// Grows a register file that is shorter than a window needs.
#[cold]
#[inline(never)]
fn grow_cold(registers: &mut Vec<Value>, end: usize) {
    registers.resize(end, Value::Nil);
}

/// The bool at `index` of the list `list` (`JumpIfListTrue`,
/// `JumpIfListFalse`), or the error reading it raises.
#[inline(always)]
fn list_bool(heap: &Heap, list: Value, index: i64) -> Result<bool, VmError> {
    let at = usize::try_from(index).unwrap_or(usize::MAX);
    let found = match heap.get_value(list) {
        Some(Object::BoolList(items)) => items.get(at).copied(),
        Some(Object::List(items)) => match items.get(at) {
            Some(&Value::Bool(b)) => Some(b),
            Some(_) => return Err(expected("bool")),
            None => None,
        },
        _ => None,
    };
    found.ok_or_else(|| list_error(heap, list, index))
}

/// Pushes `value` onto the list `list` if it is a bool and the list a
/// list of bools stored as bytes (`ListPush`, `ListPushValue`, when the
/// list is not a list of values); false if not.
#[inline(never)]
fn push_bool(heap: &mut Heap, list: Value, value: Value) -> bool {
    match (heap.get_mut_value(list), value) {
        (Some(Object::BoolList(items)), Value::Bool(b)) => {
            items.push(b);
            true
        }
        _ => false,
    }
}

/// Pushes `value` onto the list `list` when neither a list of values nor
/// [`push_bool`] took it: anything but a bool makes a list of bools stored
/// as bytes a list of values first.
#[cold]
#[inline(never)]
fn push_slowly(heap: &mut Heap, list: Value, value: Value) -> Result<(), VmError> {
    match heap.list_mut(list) {
        Some(items) => {
            items.push(value);
            Ok(())
        }
        None => Err(expected("a list")),
    }
}

/// Sets item `index` of the list `list` to `value` (`ListSet`) where the
/// list stores it as it is: in a list of values, or a bool in a list of
/// bools stored as bytes. False if it did not:
/// [`set_list_item_slowly`] then does it or raises the error.
#[inline(always)]
fn set_list_item(heap: &mut Heap, list: Value, index: i64, value: Value) -> bool {
    let Ok(at) = usize::try_from(index) else {
        return false;
    };
    match (heap.get_mut_value(list), value) {
        (Some(Object::List(items)), value) => match items.get_mut(at) {
            Some(slot) => *slot = value,
            None => return false,
        },
        (Some(Object::BoolList(items)), Value::Bool(b)) => match items.get_mut(at) {
            Some(slot) => *slot = b,
            None => return false,
        },
        _ => return false,
    }
    true
}

/// [`set_list_item`] when that did not: an index outside the list, or a
/// value that is not a list, raises (a list of bools stays one); a value
/// that is not a bool goes into a list of bools made a list of values.
#[cold]
#[inline(never)]
fn set_list_item_slowly(
    heap: &mut Heap,
    list: Value,
    index: i64,
    value: Value,
) -> Result<(), VmError> {
    let length = heap.list_view(list).map_or(0, |items| items.len());
    let Some(at) = usize::try_from(index).ok().filter(|&at| at < length) else {
        return Err(list_error(heap, list, index));
    };
    match heap.list_mut(list).and_then(|items| items.get_mut(at)) {
        Some(slot) => {
            *slot = value;
            Ok(())
        }
        None => Err(list_error(heap, list, index)),
    }
}

/// The error of reading or writing item `index` of `list`: `Index`, or
/// the one of a bad program when `list` is not a list.
#[cold]
#[inline(never)]
fn list_error(heap: &Heap, list: Value, index: i64) -> VmError {
    match heap.list_view(list) {
        Some(items) => index_error(index, "list", items.len()),
        None => expected("a list"),
    }
}

/// A new list of the bools `items` stored a byte an element
/// (`NewBoolList`); of values if one of them is not a bool.
fn new_bool_list(heap: &mut Heap, items: &[Value]) -> Value {
    let bools: Option<Vec<bool>> = items
        .iter()
        .map(|item| match *item {
            Value::Bool(b) => Some(b),
            _ => None,
        })
        .collect();
    match bools {
        Some(bools) => heap.alloc_bool_list(bools),
        None => heap.alloc_list(items.to_vec()),
    }
}

/// Register `reg` of the running frame's window `regs`, without a bounds
/// check: every register the interpreter reads or writes this way is a
/// register operand of an instruction of the running function.
#[allow(unsafe_code)]
#[inline(always)]
fn slot(regs: &mut [Value], reg: Reg) -> &mut Value {
    debug_assert!(
        reg.index() < regs.len(),
        "register {reg:?} outside the window"
    );
    // SAFETY: `regs` is the running function's window, `window_width`
    // registers long (`window` returns exactly that many, and the window
    // is always derived from the function whose code runs: with it in
    // `enter!`, `reload!` and returns, or from the top frame, whose code
    // it is, in `top_window`). Every register
    // operand of every instruction is below its function's
    // `register_count` (each `Operand::registers` range ends at or before
    // it): `execute` runs `check_program` on a program before its first
    // instruction (`Run::program_checked`, cleared whenever the program
    // is replaced), and a saved run's program is checked by `validate`
    // when it is restored. The conformance tests run in a build with
    // debug assertions, where the assertion above checks every access.
    unsafe { regs.get_unchecked_mut(reg.index()) }
}

/// The absolute register index of the running frame's `R[0]`.
#[inline]
fn current_base(fiber: &Fiber) -> usize {
    fiber.frames.last().map_or(0, |frame| frame.base as usize)
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

/// Collects garbage with every root of the run, then enforces the heap
/// limit.
#[cold]
#[inline(never)]
fn collect_garbage(run: &mut Run, program: &Program) -> Result<(), VmError> {
    let resumers = run
        .context
        .resumers
        .iter_mut()
        .map(|resumer| &mut resumer.fiber);
    for fiber in std::iter::once(&mut run.context.fiber).chain(resumers) {
        fiber.truncate_dead_registers(program);
    }
    let mut roots = std::mem::take(&mut run.root_buffer);
    run.gc_roots_into(&mut roots);
    run.heap.collect(roots.drain(..));
    run.root_buffer = roots;
    if run.heap.over_limit() {
        return Err(run.heap.limit_error(0));
    }
    Ok(())
}

/// Calls a native without arguments outside the dispatch loop: a deferred
/// native, or a native used as a coroutine's body.
pub(crate) fn call_native_alone(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    native: NativeIdx,
) -> Result<Value, VmError> {
    match call_native_suspending(run, program, output, native, &[])? {
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
    output: &mut dyn Output,
    native: NativeIdx,
    args: &[Value],
) -> Result<(Value, Option<Suspend>), VmError> {
    let Some(function) = run.natives.get(native.index()) else {
        return Err(bad_program("call of a missing native"));
    };
    let mut ctx = NativeCtx {
        heap: &mut run.heap,
        program,
        output,
        rng: &mut run.rng,
        exit: &mut run.exit,
        args: &run.args,
        sched: &mut run.sched,
        suspend: None,
        work: 0,
    };
    let value = function.call(&mut ctx, args)?;
    Ok((value, ctx.suspend))
}

/// Grows the active fiber's register file to `needed` registers, unless
/// the stack (16 bytes a register) and the heap together would pass the
/// heap limit: deep recursion with large frames is bounded in bytes, not
/// only in frames.
#[cold]
pub(crate) fn grow_registers(run: &mut Run, needed: usize) -> Result<(), VmError> {
    let stack_bytes = needed.saturating_mul(std::mem::size_of::<Value>());
    if let Err(mut error) = run.heap.charge(stack_bytes) {
        error.message = format!(
            "stack limit exceeded: {} frames holding {needed} registers ({})",
            run.context.fiber.frames.len(),
            error.message
        );
        return Err(error);
    }
    run.context.fiber.registers.resize(needed, Value::Nil);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{store, Value, TAG_BOOL, TAG_FLOAT, TAG_INT};

    #[test]
    fn stores_make_the_values_they_name() {
        for n in [0, 1, -1, 42, i64::MIN, i64::MAX] {
            let mut slot = Value::Obj(crate::heap::value::ObjRef(7));
            store(&mut slot, TAG_INT, n as u64);
            assert_eq!(slot, Value::Int(n));
        }
        for x in [0.0, -0.0, 1.5, f64::INFINITY, f64::NAN, f64::MIN_POSITIVE] {
            let mut slot = Value::Nil;
            store(&mut slot, TAG_FLOAT, x.to_bits());
            assert!(matches!(slot, Value::Float(y) if y.to_bits() == x.to_bits()));
        }
        for b in [false, true] {
            let mut slot = Value::Int(-1);
            store(&mut slot, TAG_BOOL, u64::from(b));
            assert_eq!(slot, Value::Bool(b));
        }
    }
}
