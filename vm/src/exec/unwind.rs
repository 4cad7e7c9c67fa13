//! Errors in flight: raising an error at an instruction, unwinding the
//! fiber frame by frame to the innermost handler, running each frame's
//! pending defers on the way (a defer is an ordinary frame push, and
//! unwinding resumes when it returns), handing an error that leaves a
//! coroutine's fiber to its resumer, and the stack traces errors carry.

use crate::exec::coro::{self, Escape};
use crate::exec::error::{
    arity_error, bad_program, depth_error, expected, RunError, TraceFrame, VmError,
};
use crate::exec::interp::call_native_alone;
use crate::exec::native::Output;
use crate::heap::format;
use crate::heap::objects::TaskError;
use crate::heap::value::Value;
use crate::heap::Object;
use crate::program::{Loc, Program};
use crate::run::{DeferEntry, Fiber, Frame, Run, Unwind};
use crate::tasks::sched;

/// Pops the handlers of frame `depth` (and any above it): a frame that
/// returns leaves its `try` blocks, and its defers run outside them.
#[inline]
pub(crate) fn pop_handlers(fiber: &mut Fiber, depth: usize) {
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
pub(crate) fn pending_defer(fiber: &mut Fiber, depth: usize) -> Option<DeferEntry> {
    match fiber.defers.last() {
        Some(entry) if entry.frame_depth as usize == depth => fiber.defers.pop(),
        _ => None,
    }
}

/// How a deferred call started.
pub(crate) enum DeferStart {
    /// A frame was pushed for it; the loop continues in that frame.
    Pushed,
    /// It was a native and has already run.
    Ran,
}

/// Starts the deferred call of `func` for the top frame, whose pc the caller
/// has saved. A script function gets a frame placed above the top frame's
/// registers (so its return value stays intact) whose result is discarded.
#[cold]
pub(crate) fn start_defer(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    func: Value,
) -> Result<DeferStart, VmError> {
    let Some(&owner) = run.context.fiber.frames.last() else {
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
            call_native_alone(run, program, output, native)?;
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
    if run.context.fiber.frames.len() >= run.limits.max_call_depth {
        return Err(depth_error(run.limits.max_call_depth));
    }
    let needed = new_base + callee.register_count as usize;
    if run.context.fiber.registers.len() < needed {
        crate::exec::interp::grow_registers(run, needed)?;
    }
    let base = new_base as u32;
    run.context.fiber.frames.push(Frame {
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
pub(crate) fn finish_defer(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
) -> Result<(), RunError> {
    let depth = run.context.fiber.frames.len() - 1;
    match run.context.fiber.unwinds.last() {
        Some(unwind) if unwind.frame_depth as usize == depth => {
            let Some(unwind) = run.context.fiber.unwinds.pop() else {
                return Ok(());
            };
            unwind_to_handler(run, program, output, unwind.error, unwind.trace)
        }
        _ => Ok(()),
    }
}

/// Raises `error` at the top frame's saved pc: it becomes an `Error` record
/// and unwinds.
#[cold]
#[inline(never)]
pub(crate) fn raise(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    error: VmError,
) -> Result<(), RunError> {
    let record = run.error_record(&error);
    throw_value(run, program, output, record)
}

/// Throws the `Error` record `error` from the top frame's saved pc.
#[cold]
#[inline(never)]
pub(crate) fn throw_value(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    error: Value,
) -> Result<(), RunError> {
    let trace = trace_if_uncaught(run, program);
    unwind_to_handler(run, program, output, error, trace)
}

/// The stack trace, when no handler is active (otherwise the error will be
/// caught and a trace would be wasted work).
pub(crate) fn trace_if_uncaught(run: &Run, program: &Program) -> Vec<TraceFrame> {
    if run.context.fiber.handlers.is_empty() {
        stack_trace(&run.context.fiber, program)
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
pub(crate) fn unwind_to_handler(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    mut error: Value,
    mut trace: Vec<TraceFrame>,
) -> Result<(), RunError> {
    loop {
        let Some(depth) = run.context.fiber.frames.len().checked_sub(1) else {
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
            .context
            .fiber
            .unwinds
            .last()
            .is_some_and(|u| u.frame_depth as usize >= depth)
        {
            run.context.fiber.unwinds.pop();
        }
        if let Some(handler) = run.context.fiber.handlers.last().copied() {
            if handler.frame_depth as usize == depth {
                run.context.fiber.handlers.pop();
                if run.exit.is_some() && ends_the_run(run, error) {
                    // `exit` is on its way: this `try` only lets it pass.
                    continue;
                }
                let frame = &mut run.context.fiber.frames[depth];
                frame.pc = handler.catch_pc;
                let slot = frame.base as usize + handler.dst.index();
                run.context.fiber.registers[slot] = error;
                return Ok(());
            }
        }
        if let Some(entry) = pending_defer(&mut run.context.fiber, depth) {
            let frame_depth = depth as u32;
            let held = std::mem::take(&mut trace);
            run.context.fiber.unwinds.push(Unwind {
                frame_depth,
                error,
                trace: held,
            });
            match start_defer(run, program, output, entry.func) {
                Ok(DeferStart::Pushed) => return Ok(()),
                Ok(DeferStart::Ran) => {
                    let Some(unwind) = run.context.fiber.unwinds.pop() else {
                        continue;
                    };
                    (error, trace) = (unwind.error, unwind.trace);
                }
                Err(new_error) => {
                    run.context.fiber.unwinds.pop();
                    error = run.error_record(&new_error);
                    trace = trace_if_uncaught(run, program);
                }
            }
            continue;
        }
        run.context.fiber.frames.pop();
        pop_handlers(&mut run.context.fiber, depth);
    }
}

/// Is `error` one that `exit` raised, in the task that called it (`Exit`)
/// or in the tasks it cancelled (`Cancelled`)? While the run exits, `try`
/// lets such errors pass; defers still run.
fn ends_the_run(run: &Run, error: Value) -> bool {
    let Some(Object::Record { fields, .. }) = error.as_obj().and_then(|obj| run.heap.get(obj))
    else {
        return false;
    };
    fields
        .first()
        .and_then(|kind| run.heap.str(*kind))
        .is_some_and(|kind| kind == "Exit" || kind == "Cancelled")
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
    run.context.fiber.handlers.clear();
    run.context.fiber.defers.clear();
    run.context.fiber.unwinds.clear();
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
        // A frame below another that has not run an instruction yet is a
        // call waiting to start (`Run::call_after_main`): not in the trace.
        if frame.pc == 0 && depth + 1 < fiber.frames.len() {
            continue;
        }
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

/// Raises a task's error (an awaited task's, or one delivered to a woken
/// task) at the top frame's saved pc; its trace goes on with this stack.
#[cold]
#[inline(never)]
pub(crate) fn throw_task_error(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    error: TaskError,
) -> Result<(), RunError> {
    let mut trace = error.trace;
    if run.context.fiber.handlers.is_empty() {
        trace.extend(stack_trace(&run.context.fiber, program));
    } else {
        trace.clear();
    }
    unwind_to_handler(run, program, output, error.error, trace)
}
