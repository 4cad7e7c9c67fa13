//! Coroutines (LANGUAGE.md §4): heap objects that own a fiber, and the
//! switches between fibers that `CoroNext` and `Yield` perform.
//!
//! Switching never recurses on the Rust stack. The run has one active
//! fiber and a stack of [`Resumer`]s: `CoroNext` moves the coroutine's fiber
//! out of its heap object (`mem::take`) into the run and pushes the fiber
//! that resumed it; a `Yield` inside the coroutine moves the fiber back into
//! the object and pops the resumer. Everything involved is plain data, so a
//! run paused at any instruction — inside a coroutine, or three coroutines
//! deep — serializes as it is.
//!
//! Stopping (LANGUAGE.md §4): after `stop()`, a `yield` raises `Stopped`.
//! At the pending `yield`, or at a `yield` of the body that caught that
//! error, it is the stop signal ([`stopped`]): when it leaves the body the
//! coroutine is done and `next()` gives false. A `yield` inside a deferred
//! call raises an ordinary error instead ([`yield_in_stopping_defer`]),
//! like any error of a defer: it replaces the signal being unwound, and when
//! it leaves the body the coroutine is failed and the `next()` that drove
//! the stop raises it, so the caller sees it (Python's "generator ignored
//! GeneratorExit").
//!
//! Architecture invariant: `run.context.resumers` is empty exactly when the active
//! fiber is the main one; otherwise the last resumer names the coroutine
//! whose fiber is active, and every coroutine named by a resumer is
//! `Running` with an empty fiber in its heap object.

use crate::exec::error::{arity_error, bad_program, depth_error, expected};
use crate::exec::error::{ErrorKind, TraceFrame, VmError};
use crate::exec::fiber::{Fiber, Frame};
use crate::exec::native::Output;
use crate::exec::unwind::stack_trace;
use crate::heap::objects::{CoroStatus, Resumer};
use crate::heap::value::{FuncIdx, ObjRef, Reg, Value};
use crate::heap::{Heap, Object};
use crate::program::op::Op;
use crate::program::Program;
use crate::run::Run;

/// How `CoroNext` left the run.
pub(crate) enum Next {
    /// The active fiber changed, or `R[dst]` of the resumer was written:
    /// reload and continue.
    Continue,
    /// The coroutine's fiber is active and must now raise `Stopped` at its
    /// pending `yield`.
    Stop,
}

/// How a `Yield` left the run.
pub(crate) enum Yielded {
    /// The resumer's fiber is active again.
    ToResumer,
    /// The main fiber yielded: the whole run pauses for the host.
    ToHost,
    /// The `yield` raises this error instead: `Stopped` for a coroutine
    /// asked to stop, `Type` for a value its coroutine does not yield.
    Raise(VmError),
}

/// What happens to an error that unwound every frame of the active fiber.
pub(crate) enum Escape {
    /// It left the main fiber: the run fails.
    Uncaught(Vec<TraceFrame>),
    /// It was the stop signal of a stopped coroutine ([`stopped`]): the
    /// coroutine is done and the resumer continues after its `CoroNext`,
    /// which gave false.
    Finished,
    /// It failed a coroutine and continues unwinding in the resumer, from
    /// its `CoroNext`, with this trace.
    Propagate(Vec<TraceFrame>),
}

/// `CoroNext`: resumes the coroutine `target` for the resumer's register
/// `dst`. Errors are raised in the resumer, at the `CoroNext`.
#[cold]
#[inline(never)]
pub(crate) fn next(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    target: Value,
    dst: Reg,
) -> Result<Next, VmError> {
    let Some(obj) = target.as_obj() else {
        return Err(expected("a coroutine"));
    };
    let Some(coro) = run.heap.coro_mut(obj) else {
        return Err(expected("a coroutine"));
    };
    match coro.status {
        CoroStatus::Suspended => {}
        // "false once the body has returned" (LANGUAGE.md §4): a done
        // coroutine, stopped or finished, keeps answering false.
        CoroStatus::Done => {
            coro.stop_requested = false;
            write_register(&mut run.context.fiber, dst, Value::Bool(false));
            return Ok(Next::Continue);
        }
        CoroStatus::Failed => return Err(cannot_resume("failed")),
        CoroStatus::Running => return Err(cannot_resume("running")),
    }
    if run.context.resumers.len() >= run.limits.max_call_depth {
        return Err(depth_error(run.limits.max_call_depth));
    }
    if !coro.started() {
        return start(run, program, output, obj, dst);
    }
    let stop = coro.stop_requested;
    let sent = std::mem::take(&mut coro.sent);
    enter(run, obj, dst);
    if stop {
        return Ok(Next::Stop);
    }
    if let Some(slot) = pending_yield_slot(&run.context.fiber, program) {
        run.context.fiber.registers[slot] = sent;
    }
    Ok(Next::Continue)
}

/// `Yield` of `value` with the active fiber's pc just past the `Yield`
/// whose destination is `dst`.
#[cold]
#[inline(never)]
pub(crate) fn yield_value(run: &mut Run, program: &Program, value: Value, dst: Reg) -> Yielded {
    let Some(resumer) = run.context.resumers.last() else {
        if let Some(error) = crate::tasks::sched::yield_outside_main(run) {
            return Yielded::Raise(error);
        }
        // The host's answer lands in `R[dst]`; nil unless it sends one.
        write_register(&mut run.context.fiber, dst, Value::Nil);
        run.host_yield = true;
        return Yielded::ToHost;
    };
    let Some(coro) = run.heap.coro(Value::Obj(resumer.coro)) else {
        return Yielded::Raise(stopped());
    };
    if coro.stop_requested {
        let in_defer = run
            .context
            .fiber
            .frames
            .iter()
            .any(|f| f.ret == Frame::DISCARD);
        return Yielded::Raise(if in_defer {
            yield_in_stopping_defer()
        } else {
            stopped()
        });
    }
    if let Some(expected) = &coro.yield_type {
        if !expected.fits(value, &run.heap, program) {
            let found = crate::heap::format::kind_of(value, &run.heap, program);
            let message =
                format!("yield of a value of type {found} in a coroutine that yields `{expected}`");
            return Yielded::Raise(VmError::new(ErrorKind::Type, message));
        }
    }
    let Some(coro) = run.heap.coro_mut(resumer.coro) else {
        return Yielded::Raise(stopped());
    };
    coro.last = Some(value);
    coro.status = CoroStatus::Suspended;
    let Some(resumer) = run.context.resumers.pop() else {
        return Yielded::Raise(stopped());
    };
    coro.fiber = std::mem::replace(&mut run.context.fiber, resumer.fiber);
    write_register(&mut run.context.fiber, resumer.dst, Value::Bool(true));
    Yielded::ToResumer
}

/// The bottom frame of the active fiber has returned. Inside a coroutine,
/// the coroutine is done and its resumer continues (`next()` gave false);
/// returns false when the main fiber has finished instead.
#[cold]
#[inline(never)]
pub(crate) fn finish_body(run: &mut Run) -> bool {
    let Some(resumer) = run.context.resumers.pop() else {
        return false;
    };
    if let Some(coro) = run.heap.coro_mut(resumer.coro) {
        coro.status = CoroStatus::Done;
        coro.stop_requested = false;
    }
    run.context.fiber = resumer.fiber;
    write_register(&mut run.context.fiber, resumer.dst, Value::Bool(false));
    true
}

/// The error `error` has unwound every frame of the active fiber, which
/// was raised with `trace`.
#[cold]
#[inline(never)]
pub(crate) fn escape(
    run: &mut Run,
    program: &Program,
    error: Value,
    mut trace: Vec<TraceFrame>,
) -> Escape {
    let Some(resumer) = run.context.resumers.pop() else {
        return Escape::Uncaught(trace);
    };
    let signal = is_stop_signal(&run.heap, error);
    let finished = match run.heap.coro_mut(resumer.coro) {
        Some(coro) => {
            let finished = signal && coro.stop_requested;
            coro.stop_requested = false;
            coro.status = if finished {
                CoroStatus::Done
            } else {
                CoroStatus::Failed
            };
            finished
        }
        None => false,
    };
    run.context.fiber = resumer.fiber;
    if finished {
        write_register(&mut run.context.fiber, resumer.dst, Value::Bool(false));
        return Escape::Finished;
    }
    // The trace goes on with the resumer's frames, unless a handler there is
    // sure to catch the error.
    if run.context.fiber.handlers.is_empty() {
        trace.extend(stack_trace(&run.context.fiber, program));
    } else {
        trace.clear();
    }
    Escape::Propagate(trace)
}

/// Delivers the host's answer to a top-level `yield` the run is paused at;
/// false when no such `yield` is pending.
pub(crate) fn answer_host(run: &mut Run, value: Value) -> bool {
    if !run.host_yield || !run.context.resumers.is_empty() {
        return false;
    }
    match pending_yield_slot(&run.context.fiber, &run.program) {
        Some(slot) => {
            run.context.fiber.registers[slot] = value;
            true
        }
        None => false,
    }
}

/// The message of the stop signal.
const STOP_SIGNAL: &str = "coroutine stopped";

/// The stop signal: the `Stopped` error a stopped coroutine's pending
/// `yield` raises (and any later `yield` of its body outside a defer).
pub(crate) fn stopped() -> VmError {
    VmError::new(ErrorKind::Stopped, STOP_SIGNAL)
}

/// The `Stopped` error of a `yield` in a deferred call of a stopped
/// coroutine: an ordinary error, which fails the coroutine if it leaves it.
fn yield_in_stopping_defer() -> VmError {
    VmError::new(
        ErrorKind::Stopped,
        "cannot yield in a defer while the coroutine is being stopped",
    )
}

/// Starts the body of the not-yet-started coroutine `obj`: a script
/// function gets a fresh fiber that becomes active; a native runs at once.
fn start(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    obj: ObjRef,
    dst: Reg,
) -> Result<Next, VmError> {
    let body = run.heap.coro_mut(obj).map_or(Value::Nil, |coro| coro.func);
    let outcome = match body_target(&run.heap, body) {
        Ok(Body::Script(func, closure)) => body_fiber(program, func, closure),
        Ok(Body::Native(native)) => run_native_body(run, program, output, native),
        Err(error) => Err(error),
    };
    let Some(coro) = run.heap.coro_mut(obj) else {
        return Err(expected("a coroutine"));
    };
    match outcome {
        Ok(Some(fiber)) => {
            coro.fiber = fiber;
            enter(run, obj, dst);
        }
        Ok(None) => {
            coro.status = CoroStatus::Done;
            write_register(&mut run.context.fiber, dst, Value::Bool(false));
        }
        Err(error) => {
            coro.status = CoroStatus::Failed;
            return Err(error);
        }
    }
    Ok(Next::Continue)
}

/// What a coroutine's body is.
enum Body {
    /// A script function, with the closure it runs in.
    Script(FuncIdx, Option<ObjRef>),
    /// A native function.
    Native(crate::heap::value::NativeIdx),
}

/// Resolves a function value to what a coroutine runs.
fn body_target(heap: &Heap, body: Value) -> Result<Body, VmError> {
    match body {
        Value::Func(func) => Ok(Body::Script(func, None)),
        Value::Native(native) => Ok(Body::Native(native)),
        Value::Obj(obj) => match heap.get(obj) {
            Some(&Object::Closure { func, .. }) => Ok(Body::Script(func, Some(obj))),
            _ => Err(expected("a function for the coroutine")),
        },
        _ => Err(expected("a function for the coroutine")),
    }
}

/// A fiber with one frame that calls `func` with no arguments.
fn body_fiber(
    program: &Program,
    func: FuncIdx,
    closure: Option<ObjRef>,
) -> Result<Option<Fiber>, VmError> {
    let Some(function) = program.functions.get(func.index()) else {
        return Err(bad_program("coroutine of a missing function"));
    };
    if function.arity != 0 {
        return Err(arity_error(&function.name, function.arity, 0));
    }
    let frame = Frame {
        func,
        pc: 0,
        base: 0,
        closure,
        ret: 0,
    };
    Ok(Some(Fiber {
        registers: vec![Value::Nil; function.register_count as usize],
        frames: vec![frame],
        ..Fiber::default()
    }))
}

/// Runs a native body to completion (natives never yield).
fn run_native_body(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    native: crate::heap::value::NativeIdx,
) -> Result<Option<Fiber>, VmError> {
    crate::exec::interp::call_native_alone(run, program, output, native).map(|_| None)
}

/// Makes the suspended coroutine `obj` running: its fiber becomes the
/// active one and the current fiber waits as its resumer.
fn enter(run: &mut Run, obj: ObjRef, dst: Reg) {
    let Some(coro) = run.heap.coro_mut(obj) else {
        return;
    };
    coro.status = CoroStatus::Running;
    let fiber = std::mem::take(&mut coro.fiber);
    let resumer = std::mem::replace(&mut run.context.fiber, fiber);
    run.context.resumers.push(Resumer {
        coro: obj,
        dst,
        fiber: resumer,
    });
}

/// Writes `R[reg]` of the fiber's top frame.
fn write_register(fiber: &mut Fiber, reg: Reg, value: Value) {
    let base = fiber.frames.last().map_or(0, |frame| frame.base as usize);
    if let Some(slot) = fiber.registers.get_mut(base + reg.index()) {
        *slot = value;
    }
}

/// The absolute register that receives the value sent to the `yield` the
/// fiber is paused at (its top frame's previous instruction).
fn pending_yield_slot(fiber: &Fiber, program: &Program) -> Option<usize> {
    let frame = fiber.frames.last()?;
    let code = &program.functions.get(frame.func.index())?.code;
    match code.get((frame.pc as usize).checked_sub(1)?)? {
        Op::Yield { dst, .. } => Some(frame.base as usize + dst.index()),
        _ => None,
    }
}

/// Is `error` the stop signal, an `Error` record equal to [`stopped`]'s
/// (a script that catches it and throws it again goes on stopping)?
fn is_stop_signal(heap: &Heap, error: Value) -> bool {
    match heap.get_value(error) {
        Some(Object::Record { fields, .. }) => match fields.as_slice() {
            [kind, message, ..] => {
                heap.str(*kind) == Some(ErrorKind::Stopped.as_str())
                    && heap.str(*message) == Some(STOP_SIGNAL)
            }
            _ => false,
        },
        _ => false,
    }
}

/// The error of a `next()` on a coroutine that cannot run.
#[cold]
fn cannot_resume(state: &str) -> VmError {
    VmError::new(
        ErrorKind::Type,
        format!("cannot resume a {state} coroutine"),
    )
}
