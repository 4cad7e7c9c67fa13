//! Checking a run that came from untrusted bytes before it executes.
//!
//! A deserialized [`Run`] is well-typed Rust data, but its numbers may be
//! anything: a register past a frame's window, a jump past a function's end,
//! a reference to a freed heap slot. The interpreter trusts the compiler's
//! guarantees on its hot paths (it indexes registers without a check beyond
//! the slice's own), so [`validate`] re-establishes every one of them: each
//! instruction's operands against its function and the program, each
//! frame's window against its register file, each value's reference
//! against the heap and the program, each object's shape against its
//! layout. After it passes, executing the run cannot index out of bounds;
//! anything else wrong (a value of an unexpected kind) is a clean `Type`
//! error at run time, as for any other misuse.
//!
//! Everything here is iterative and linear in the size of the run, so a
//! hostile input cannot make it recurse deeply or loop.

use std::cell::RefCell;

use crate::exec::fiber::{Fiber, Frame};
use crate::heap::objects::CoroStatus;
use crate::heap::objects::{Blocked, Packed, SelectCase, Wake};
use crate::heap::value::{EnumIdx, FuncIdx, ObjRef, StructIdx, Value};
use crate::heap::Object;
use crate::program::op::{Op, Operand};
use crate::program::{Function, Program};
use crate::run::{Run, Status};

/// Why a run is not safe to execute; the message says what and where.
pub type Invalid = String;

/// Checks every invariant the interpreter relies on.
pub fn validate(run: &Run) -> Result<(), Invalid> {
    let program = &run.program;
    check_program(program)?;
    run.heap.check_slots()?;
    let values = Values {
        run,
        scratch: RefCell::default(),
    };
    if run.context.is_packed() {
        return Err("the active context is still packed".into());
    }
    if run.globals.len() != program.globals.len() {
        return Err("the globals do not match the program".into());
    }
    if run.exit.is_some_and(|code| !(0..=255).contains(&code)) {
        return Err("the exit status is outside 0..=255".into());
    }
    if run.const_values.len() != program.constants.len() {
        return Err("the constants do not match the program".into());
    }
    for &global in &run.globals {
        if global != Value::UNSET {
            values.check(global, "a global")?;
        }
    }
    for &constant in &run.const_values {
        values.check(constant, "a constant")?;
    }
    for index in 0..run.heap.capacity() {
        if let Some(object) = run.heap.get(ObjRef(index as u32)) {
            check_object(&values, object).map_err(|e| format!("heap object {index}: {e}"))?;
        }
    }
    check_fiber(&values, &run.context.fiber).map_err(|e| format!("the active fiber: {e}"))?;
    check_fiber_values(&values, &run.context.fiber)
        .map_err(|e| format!("the active fiber: {e}"))?;
    for resumer in &run.context.resumers {
        check_fiber(&values, &resumer.fiber).map_err(|e| format!("a resumer: {e}"))?;
        check_fiber_values(&values, &resumer.fiber).map_err(|e| format!("a resumer: {e}"))?;
        check_running_coro(run, resumer.coro)?;
    }
    check_sched(&values)?;
    check_task_tree(run)?;
    match &run.status {
        Status::Done(value) => values.check(*value, "the result"),
        Status::Running | Status::Failed(_) => Ok(()),
    }
}

/// The function and the program are consistent with each other.
/// Checks the program alone: every instruction's operands in range for
/// its function (registers inside the frame's window, jumps inside the
/// code, indices naming something) and every type description well formed.
pub(crate) fn check_program(program: &Program) -> Result<(), Invalid> {
    if program.main.index() >= program.functions.len() {
        return Err("the main function is missing".into());
    }
    let error = program.structs.get(program.builtins.error.index());
    if error.is_none_or(|layout| layout.fields.len() != 2) {
        return Err("the Error struct is missing".into());
    }
    if !program.enums.is_empty() && program.builtins.json.index() >= program.enums.len() {
        return Err("the Json enum is missing".into());
    }
    for (index, function) in program.functions.iter().enumerate() {
        check_function(program, function)
            .map_err(|e| format!("function {index} ({}): {e}", function.name))?;
    }
    check_types(program)
}

/// Every type description of the program is well formed (they are walked
/// without further checks).
fn check_types(program: &Program) -> Result<(), Invalid> {
    let constants = program.constants.iter().filter_map(|c| match c {
        crate::program::Constant::Type(ty) => Some(ty),
        _ => None,
    });
    let natives = program.natives.iter().filter_map(|n| n.io.as_ref());
    let fields = program.structs.iter().flat_map(|s| &s.field_types);
    let payloads = program
        .enums
        .iter()
        .flat_map(|e| &e.variants)
        .flat_map(|v| &v.field_types);
    std::iter::once(&program.main_receives)
        .chain(constants)
        .chain(natives)
        .chain(fields)
        .chain(payloads)
        .try_for_each(crate::program::TypeDesc::check)
}

fn check_function(program: &Program, function: &Function) -> Result<(), Invalid> {
    if function.locs.len() != function.code.len() {
        return Err("source positions do not match the code".into());
    }
    if function.arity > function.register_count {
        return Err("more parameters than registers".into());
    }
    if function.file.index() >= program.files.len().max(1) {
        return Err("unknown source file".into());
    }
    // The interpreter steps from one instruction to the next without
    // comparing with the end (`exec::interp::fetch`): control must never
    // go on past the last one.
    if function.code.last().is_none_or(Op::falls_through) {
        return Err("control can go on past the last instruction".into());
    }
    for (pc, op) in function.code.iter().enumerate() {
        check_op(program, function, op).map_err(|e| format!("instruction {pc}: {e}"))?;
    }
    Ok(())
}

/// Every operand of `op` is in range for `function` and `program`.
fn check_op(program: &Program, function: &Function, op: &Op) -> Result<(), Invalid> {
    let mut result = Ok(());
    op.for_each_operand(|operand| {
        if result.is_ok() {
            result = check_operand(program, function, operand);
        }
    });
    result
}

/// One operand is in range: its registers inside the frame, its jump
/// inside the function, its index naming something of the program.
fn check_operand(program: &Program, function: &Function, operand: Operand) -> Result<(), Invalid> {
    if let Some(registers) = operand.registers() {
        return if registers.end <= usize::from(function.register_count) {
            Ok(())
        } else {
            Err(format!("registers {registers:?} out of range"))
        };
    }
    let known = |index: usize, count: usize, what: &str| {
        if index < count {
            Ok(())
        } else {
            Err(format!("unknown {what}"))
        }
    };
    match operand {
        Operand::Jump(target) => {
            // Below the length: the interpreter jumps without comparing.
            if target.index() < function.code.len() {
                Ok(())
            } else {
                Err("jump out of the function".into())
            }
        }
        Operand::Const(idx) => known(idx.index(), program.constants.len(), "constant"),
        Operand::IntConst(idx) => match program.constants.get(idx.index()) {
            Some(crate::program::Constant::Int(_)) => Ok(()),
            _ => Err("unknown int constant".into()),
        },
        Operand::Func(func) => known(func.index(), program.functions.len(), "function"),
        Operand::Native(native) => known(native.index(), program.natives.len(), "native"),
        Operand::Global(global) => known(global.index(), program.globals.len(), "global"),
        Operand::Struct { ty, fields } => check_record_shape(program, ty, usize::from(fields)),
        Operand::Variant {
            ty,
            variant,
            fields,
        } => check_variant_shape(program, ty, variant, usize::from(fields)),
        // Checked when the instruction runs, against the value it meets.
        Operand::VariantTag(_) | Operand::Field(_) | Operand::Capture(_) => Ok(()),
        Operand::Int(_) | Operand::Bool(_) => Ok(()),
        Operand::Read(_)
        | Operand::Write(_)
        | Operand::MaybeWrite(_)
        | Operand::ReadRange { .. }
        | Operand::CallWindow { .. }
        | Operand::LoopCounter(_) => Ok(()),
    }
}

/// Struct `ty` exists and has `fields` fields.
fn check_record_shape(program: &Program, ty: StructIdx, fields: usize) -> Result<(), Invalid> {
    let layout = program.structs.get(ty.index()).ok_or("unknown struct")?;
    if layout.fields.len() != fields {
        return Err("wrong number of fields".into());
    }
    Ok(())
}

/// Variant `variant` of enum `ty` exists and has `fields` payload fields.
fn check_variant_shape(
    program: &Program,
    ty: EnumIdx,
    variant: u16,
    fields: usize,
) -> Result<(), Invalid> {
    let layout = program.enums.get(ty.index()).ok_or("unknown enum")?;
    let shape = layout
        .variants
        .get(usize::from(variant))
        .ok_or("unknown variant")?;
    if usize::from(shape.arity) != fields {
        return Err("wrong number of fields".into());
    }
    Ok(())
}

/// Checks values against the run's heap and program.
struct Values<'r> {
    run: &'r Run,
    /// Where packed task stacks are decoded to be checked, one after the
    /// other.
    scratch: RefCell<Fiber>,
}

impl Values<'_> {
    /// Does `value` refer only to things that exist? Plain values (most
    /// of a register file) are decided by their tag alone, before any
    /// lookup.
    #[inline(always)]
    fn ok(&self, value: Value) -> bool {
        match value {
            Value::Nil | Value::Bool(_) | Value::Int(_) | Value::Float(_) => true,
            _ => self.reference_ok(value),
        }
    }

    /// Does `value`, a reference, name something that exists?
    #[inline(never)]
    fn reference_ok(&self, value: Value) -> bool {
        match value {
            Value::Nil | Value::Bool(_) | Value::Int(_) | Value::Float(_) => true,
            Value::Obj(obj) => self.run.heap.get(obj).is_some(),
            Value::Func(f) => f.index() < self.run.program.functions.len(),
            Value::Native(n) => n.index() < self.run.program.natives.len(),
        }
    }

    fn check(&self, value: Value, what: &str) -> Result<(), Invalid> {
        if self.ok(value) {
            Ok(())
        } else {
            Err(dangling(what))
        }
    }

    fn task(&self, obj: ObjRef, what: &str) -> Result<(), Invalid> {
        match self.run.heap.get(obj) {
            Some(Object::Task(_)) => Ok(()),
            _ => Err(format!("{what} is not a task")),
        }
    }
}

/// The message for a value that refers to nothing.
#[cold]
fn dangling(what: &str) -> Invalid {
    format!("{what} refers to something that does not exist")
}

fn check_object(values: &Values<'_>, object: &Object) -> Result<(), Invalid> {
    let program = &values.run.program;
    match object {
        Object::Str(_)
        | Object::Cell(_)
        | Object::List(_)
        | Object::BoolList(_)
        | Object::Map(_) => {}
        Object::Record { ty, fields } => check_record_shape(program, *ty, fields.len())?,
        Object::Variant {
            ty,
            variant,
            fields,
        } => check_variant_shape(program, *ty, *variant, fields.len())?,
        Object::Closure { func, .. } => {
            if func.index() >= program.functions.len() {
                return Err("closure of an unknown function".into());
            }
        }
        // A fiber's values are among the object's, checked below.
        Object::Coro(coro) => {
            check_fiber(values, &coro.fiber)?;
            if let Some(ty) = &coro.yield_type {
                ty.check()?;
            }
        }
        Object::Task(task) => {
            match &task.context.packed {
                Some(packed) => check_packed(values, packed)?,
                None => {
                    check_fiber(values, &task.context.fiber)?;
                    for resumer in &task.context.resumers {
                        check_fiber(values, &resumer.fiber)?;
                        check_coro(values.run, resumer.coro)?;
                    }
                }
            }
            let links = task.parent.iter().chain(&task.children.list);
            for &linked in links.chain(&task.failed_children).chain(&task.waiters) {
                values.task(linked, "a linked task")?;
            }
            check_blocked(values, &task.blocked)?;
            if let Wake::Value(value) = task.wake {
                values.check(value, "a wake value")?;
            }
        }
        Object::Chan(chan) => {
            chan.receivers
                .iter()
                .try_for_each(|&t| values.task(t, "a receiver"))?;
            chan.senders
                .iter()
                .try_for_each(|&(t, _)| values.task(t, "a sender"))?;
        }
        Object::Mutex(mutex) => mutex
            .waiters
            .iter()
            .try_for_each(|&t| values.task(t, "a waiter"))?,
        Object::Group(group) => {
            let tasks = group.tasks.iter().chain(&group.waiters);
            tasks
                .copied()
                .try_for_each(|t| values.task(t, "a group's task"))?;
        }
    }
    // One pass over every value (a task's registers are most of a saved
    // run), the verdict taken at the end.
    let mut all_ok = true;
    object.for_each_value(|value| all_ok &= values.ok(value));
    if all_ok {
        Ok(())
    } else {
        Err(dangling("a field"))
    }
}

fn check_blocked(values: &Values<'_>, blocked: &Blocked) -> Result<(), Invalid> {
    match blocked {
        Blocked::Await(t) => values.task(*t, "an awaited task"),
        Blocked::Chan(obj) | Blocked::Mutex(obj) | Blocked::Group(obj) => {
            values.check(Value::Obj(*obj), "what a task waits on")
        }
        Blocked::Select { cases, .. } => cases.iter().try_for_each(|case| match case {
            SelectCase::Recv(chan) => {
                values.check(Value::Obj(*chan), "a channel a select waits on")
            }
            SelectCase::Send(chan, value) => {
                values.check(Value::Obj(*chan), "a channel a select waits on")?;
                values.check(*value, "a value a select sends")
            }
            SelectCase::Await(t) => values.task(*t, "a task a select awaits"),
            SelectCase::After(_) => Ok(()),
        }),
        Blocked::Nothing | Blocked::Io(_) | Blocked::Flight(_) => Ok(()),
    }
}

fn check_coro(run: &Run, coro: ObjRef) -> Result<(), Invalid> {
    match run.heap.get(coro) {
        Some(Object::Coro(_)) => Ok(()),
        _ => Err("a resumer's coroutine is not a coroutine".into()),
    }
}

/// A coroutine named by one of the run's resumers is running, its fiber out.
fn check_running_coro(run: &Run, coro: ObjRef) -> Result<(), Invalid> {
    match run.heap.get(coro) {
        Some(Object::Coro(c)) if c.status == CoroStatus::Running => Ok(()),
        _ => Err("a resumer's coroutine is not running".into()),
    }
}

/// Every frame's window fits the register file, and the bookkeeping of
/// `try`, `defer` and unwinding refers to existing frames. The values the
/// fiber holds are checked by [`check_fiber_values`], or, for the fiber
/// of a heap object, with the object's other values.
fn check_fiber(values: &Values<'_>, fiber: &Fiber) -> Result<(), Invalid> {
    let program = &values.run.program;
    let registers = fiber.registers.len();
    // Where the next frame's `ret` must lie below: inside the register
    // file for the first frame, inside its caller's window for the others
    // (the registers above every window may be dropped while the run is
    // suspended). A caller's window ends inside the file, so one bound
    // holds both.
    let mut ret_bound = registers.max(1);
    // Deep stacks repeat one function: its bounds are looked up once.
    let mut bounds = FrameBounds::default();
    for frame in &fiber.frames {
        let (code_len, register_count) = bounds.of(program, frame)?;
        let end = frame.base as usize + register_count;
        let ret = frame.ret as usize;
        let ret_ok = frame.ret == Frame::DISCARD || ret < ret_bound;
        if frame.pc as usize > code_len || end > registers || !ret_ok {
            return Err(frame_error(frame, code_len, end, registers));
        }
        ret_bound = end.min(registers.max(1));
        if let Some(closure) = frame.closure {
            match values.run.heap.get(closure) {
                Some(Object::Closure { .. }) => {}
                _ => return Err("a frame's closure is not a closure".into()),
            }
        }
    }
    let depth = fiber.frames.len();
    // The interpreter pops handlers, defers and unwinds from the end while
    // their frame depth is at least the frame's: each list is ordered by
    // depth, or an entry of a popped frame would outlive it and be found
    // by a later frame at that depth, running another function.
    if !ordered(fiber.handlers.iter().map(|h| h.frame_depth)) {
        return Err("handlers out of order".into());
    }
    if !ordered(fiber.defers.iter().map(|d| d.frame_depth)) {
        return Err("defers out of order".into());
    }
    if !ordered(fiber.unwinds.iter().map(|u| u.frame_depth)) {
        return Err("unwinds out of order".into());
    }
    for handler in &fiber.handlers {
        let frame = fiber
            .frames
            .get(handler.frame_depth as usize)
            .ok_or("a handler of a missing frame")?;
        let function = &program.functions[frame.func.index()];
        if handler.catch_pc as usize > function.code.len()
            || handler.dst.0 >= function.register_count
        {
            return Err("a handler out of its function".into());
        }
    }
    if fiber
        .defers
        .last()
        .is_some_and(|d| d.frame_depth as usize >= depth)
    {
        return Err("a defer of a missing frame".into());
    }
    if fiber
        .unwinds
        .last()
        .is_some_and(|u| u.frame_depth as usize >= depth)
    {
        return Err("an unwind of a missing frame".into());
    }
    Ok(())
}

/// A parked task's context in its saved encoding decodes to a sound fiber
/// whose values refer to things that exist. Decoded into the scratch
/// fiber, not kept: the task decodes it again when it runs. The heap
/// objects it refers to are recorded for the collector.
fn check_packed(values: &Values<'_>, packed: &Packed) -> Result<(), Invalid> {
    let mut fiber = values.scratch.borrow_mut();
    crate::saved::wire::decode_into(&packed.bytes, &mut fiber)
        .ok_or("a task's stack does not decode")?;
    check_fiber(values, &fiber)?;
    let mut all_ok = true;
    let mut refs = Vec::new();
    fiber.for_each_value(|value| {
        all_ok &= values.ok(value);
        if let Value::Obj(obj) = value {
            refs.push(obj);
        }
    });
    if !all_ok {
        return Err(dangling("a register"));
    }
    // Set once: a second validation of the same run finds the same ones.
    let _ = packed.refs.set(refs.into_boxed_slice());
    Ok(())
}

/// The values a fiber outside the heap holds (the run's active fiber and
/// its resumers) refer to things that exist; registers may be unset.
fn check_fiber_values(values: &Values<'_>, fiber: &Fiber) -> Result<(), Invalid> {
    for entry in &fiber.defers {
        values.check(entry.func, "a deferred function")?;
    }
    for unwind in &fiber.unwinds {
        values.check(unwind.error, "an error being unwound")?;
    }
    let registers = fiber.registers.iter();
    if registers.fold(true, |ok, &v| ok & (v == Value::UNSET || values.ok(v))) {
        Ok(())
    } else {
        Err(dangling("a register"))
    }
}

/// Is the sequence non-decreasing?
fn ordered(mut depths: impl Iterator<Item = u32>) -> bool {
    let mut last = 0;
    depths.all(|depth| std::mem::replace(&mut last, depth) <= depth)
}

/// The function of the last frame [`check_fiber`] looked up, with its
/// code length and register count.
#[derive(Default)]
struct FrameBounds {
    last: Option<(FuncIdx, usize, usize)>,
}

impl FrameBounds {
    /// The code length and register count of the function `frame` runs,
    /// which must exist.
    #[inline(always)]
    fn of(&mut self, program: &Program, frame: &Frame) -> Result<(usize, usize), Invalid> {
        match self.last {
            Some((func, code_len, register_count)) if func == frame.func => {
                Ok((code_len, register_count))
            }
            _ => {
                let function = program
                    .functions
                    .get(frame.func.index())
                    .ok_or("a frame of an unknown function")?;
                let bounds = (function.code.len(), usize::from(function.register_count));
                self.last = Some((frame.func, bounds.0, bounds.1));
                Ok(bounds)
            }
        }
    }
}

/// What is wrong with a frame [`check_fiber`] refused: its position past
/// its function's `code_len`, its window (ending at `end`) past the
/// fiber's `registers`, its `ret` outside the register file, or else
/// outside its caller's window.
#[cold]
fn frame_error(frame: &Frame, code_len: usize, end: usize, registers: usize) -> Invalid {
    if frame.pc as usize > code_len {
        "a frame's position is past its function's end".into()
    } else if end > registers {
        "a frame's registers are missing".into()
    } else if frame.ret as usize >= registers.max(1) {
        "a frame returns to a missing register".into()
    } else {
        "a frame returns outside its caller's registers".into()
    }
}

fn check_sched(values: &Values<'_>) -> Result<(), Invalid> {
    let run = values.run;
    let sched = &run.sched;
    if run
        .program
        .structs
        .get(sched.error_struct.index())
        .is_none()
    {
        return Err("the scheduler's Error struct is missing".into());
    }
    let tasks = sched.main.iter().chain(&sched.current).chain(&sched.ready);
    tasks
        .copied()
        .try_for_each(|t| values.task(t, "a scheduled task"))?;
    if !sched.in_flight.is_consistent(sched.next_io) {
        return Err("the table of I/O requests is inconsistent".into());
    }
    for in_flight in sched.in_flight.values() {
        values.task(in_flight.task, "a task waiting for I/O")?;
        let decl = run.program.natives.get(in_flight.native.index());
        if decl.is_none_or(|d| d.io.is_none()) {
            return Err("an I/O request of an unknown operation".into());
        }
    }
    for flight in sched.flights.values() {
        flight
            .waiters
            .iter()
            .try_for_each(|&t| values.task(t, "a singleflight waiter"))?;
    }
    Ok(())
}

/// The tasks form a tree: a task's parent is a task, following parents
/// always ends, and a task is listed among the children of its parent
/// only, once. The scheduler walks parents (finishing, `await`) and
/// children (cancelling, deadlock reports) without guards, so a cycle
/// would loop forever and a child listed twice would be visited once per
/// path to it.
fn check_task_tree(run: &Run) -> Result<(), Invalid> {
    let heap = &run.heap;
    let count = heap.capacity();
    let task = |index: usize| match heap.get(ObjRef(index as u32)) {
        Some(Object::Task(task)) => Some(&**task),
        _ => None,
    };
    let mut listed = vec![false; count];
    for index in 0..count {
        let Some(parent) = task(index) else {
            continue;
        };
        for &child in &parent.children.list {
            let owned = task(child.index()).is_some_and(|c| c.parent == Some(ObjRef(index as u32)));
            if !owned {
                return Err(format!("task {index} lists a child that is not its own"));
            }
            if std::mem::replace(&mut listed[child.index()], true) {
                return Err(format!("task {index} lists a child twice"));
            }
        }
    }
    // Follow each task's parents until a task already known to reach the
    // root; meeting the path being walked again is a cycle. Linear: every
    // task is walked once.
    const UNSEEN: u8 = 0;
    const ON_PATH: u8 = 1;
    const ROOTED: u8 = 2;
    let mut state = vec![UNSEEN; count];
    let mut path = Vec::new();
    for start in 0..count {
        let mut at = start;
        while let Some(t) = task(at) {
            match state[at] {
                ROOTED => break,
                ON_PATH => return Err(format!("task {at} is its own ancestor")),
                _ => {}
            }
            state[at] = ON_PATH;
            path.push(at);
            match t.parent {
                Some(parent) if task(parent.index()).is_some() => at = parent.index(),
                Some(_) => return Err(format!("task {at}'s parent is not a task")),
                None => break,
            }
        }
        for index in path.drain(..) {
            state[index] = ROOTED;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::Loc;

    /// Every register the liveness analysis reads or writes for an
    /// instruction lies inside what the validator checked: instructions of
    /// every kind, decoded from random bytes (postcard numbers variants, so
    /// every variant comes up), with small random operands.
    #[test]
    fn liveness_stays_inside_what_validate_checks() {
        // Something of every kind for index operands to name.
        let mut program = Program::default();
        program.structs.push(Default::default());
        program.functions.push(Function::default());
        program.constants.push(crate::program::Constant::Int(7));
        program.globals.push("g".into());
        program.natives.push(crate::program::NativeDecl {
            key: "k".into(),
            name: "k".into(),
            io: None,
        });
        program.enums.push(crate::program::EnumLayout {
            variants: vec![Default::default()],
            ..Default::default()
        });
        let mut next = crate::test_noise(0x2545_f491_4f6c_dd1d);
        let (mut checked, mut kinds) = (0, std::collections::BTreeSet::new());
        for _ in 0..200_000 {
            let mut bytes = vec![(next() % 90) as u8];
            bytes.extend((0..8).map(|_| (next() % 12) as u8));
            let Ok(op) = postcard::from_bytes::<Op>(&bytes) else {
                continue;
            };
            let function = Function {
                register_count: (next() % 12) as u16,
                code: vec![op; 4],
                locs: vec![Loc::default(); 4],
                ..Function::default()
            };
            if check_op(&program, &function, &op).is_err() {
                continue;
            }
            let (mut reads, mut writes) = (Vec::new(), Vec::new());
            crate::saved::liveness::effects(&op, &mut reads, &mut writes);
            for reg in reads.iter().chain(&writes) {
                assert!(
                    *reg < usize::from(function.register_count),
                    "{op:?} with {} registers uses r{reg}",
                    function.register_count
                );
            }
            checked += 1;
            kinds.insert(op.name());
        }
        assert!(checked > 10_000, "only {checked} instructions passed");
        assert!(
            kinds.len() >= 80,
            "only {} kinds of instruction came up",
            kinds.len()
        );
    }

    /// The interpreter steps to the next instruction without comparing
    /// with the end: a function control could run off the end of (its
    /// last instruction falls through, or it has none) is refused. A frame
    /// may be at its function's end (one being unwound after a `throw` or
    /// returning through its defers: it never runs again, and going on in
    /// it is refused where it would happen, by `exec::interp::from`), not
    /// past it.
    #[test]
    fn control_cannot_run_past_a_functions_last_instruction() {
        let program_with = |code: Vec<Op>| {
            let mut program = Program::default();
            program.structs.push(crate::program::StructLayout {
                fields: vec!["kind".into(), "message".into()],
                ..Default::default()
            });
            program.functions.push(Function {
                register_count: 1,
                locs: vec![Loc::default(); code.len()],
                code,
                ..Function::default()
            });
            program
        };
        let r0 = crate::heap::value::Reg(0);
        let fine = [
            vec![Op::ReturnNil],
            vec![Op::LoadInt { dst: r0, value: 1 }, Op::Return { src: r0 }],
            vec![Op::Jump {
                target: crate::heap::value::Pc(0),
            }],
            vec![Op::Throw { src: r0 }],
        ];
        for code in fine {
            assert_eq!(
                check_program(&program_with(code.clone())),
                Ok(()),
                "{code:?}"
            );
        }
        let refused = [
            vec![],
            vec![Op::LoadInt { dst: r0, value: 1 }],
            vec![Op::ReturnNil, Op::TryEnd],
        ];
        for code in refused {
            let error = check_program(&program_with(code.clone())).expect_err("refused");
            assert!(
                error.contains("past the last instruction"),
                "{code:?}: {error}"
            );
        }

        // A jump to the end, where no instruction is: the interpreter jumps
        // without comparing with the end.
        let past_the_end = vec![
            Op::JumpIfTrue {
                cond: r0,
                target: crate::heap::value::Pc(2),
            },
            Op::ReturnNil,
        ];
        let error = check_program(&program_with(past_the_end)).expect_err("refused");
        assert!(error.contains("jump out of the function"), "{error}");

        let program = program_with(vec![Op::LoadInt { dst: r0, value: 1 }, Op::ReturnNil]);
        let natives = crate::exec::native::NativeSet::default();
        let mut run = Run::new(std::sync::Arc::new(program), &natives, Vec::new()).expect("a run");
        for (pc, valid) in [(0, true), (1, true), (2, true), (3, false)] {
            run.context.fiber.frames[0].pc = pc;
            match validate(&run) {
                Ok(()) => assert!(valid, "a frame at {pc} of 2 instructions passed"),
                Err(error) => {
                    assert!(!valid, "a frame at {pc}: {error}");
                    assert!(error.contains("past its function's end"), "{error}");
                }
            }
        }
    }
}
