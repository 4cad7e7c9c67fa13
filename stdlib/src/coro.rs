//! Coroutine methods (LANGUAGE.md §4): creating a coroutine and reading or
//! changing its state. Resuming is not here: `c.next()` switches fibers, so
//! the compiler emits the `CoroNext` instruction for it, and `yield` is an
//! instruction too.

use spool_vm::{Coroutine, ErrorKind, NativeCtx, Object, Value, VmError};

use crate::param;
use crate::NativeDef;

/// The natives of this module.
pub const DEFS: &[NativeDef] = &[
    NativeDef {
        key: "coro.new",
        sig: "fn coroutine<Y, S>(f: fn() yields Y receives S) -> Coro<Y, S>",
        func: new,
    },
    NativeDef {
        key: "coro.next",
        sig: "fn next<Y, S>(c: Coro<Y, S>) -> bool",
        func: next,
    },
    NativeDef {
        key: "coro.recv",
        sig: "fn recv<Y, S>(c: Coro<Y, S>) -> Y",
        func: recv,
    },
    NativeDef {
        key: "coro.send",
        sig: "fn send<Y, S>(c: Coro<Y, S>, v: S)",
        func: send,
    },
    NativeDef {
        key: "coro.stop",
        sig: "fn stop<Y, S>(c: Coro<Y, S>)",
        func: stop,
    },
    NativeDef {
        key: "coro.done",
        sig: "fn done<Y, S>(c: Coro<Y, S>) -> bool",
        func: done,
    },
    NativeDef {
        key: "coro.status",
        sig: "fn status<Y, S>(c: Coro<Y, S>) -> str",
        func: status,
    },
];

/// `coroutine(f)`: a new coroutine that will run `f`, not started yet.
pub fn new(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let body = param::arg(args, 0)?;
    let is_function = match body {
        Value::Func(_) | Value::Native(_) => true,
        Value::Obj(obj) => matches!(ctx.heap.get(obj), Some(Object::Closure { .. })),
        _ => false,
    };
    if !is_function {
        return Err(param::internal("a function"));
    }
    let mut coro = Coroutine::new(body);
    // The compiler passes the yield type as a hidden second argument, so
    // yields it could not check are checked when they happen.
    coro.yield_type = match args.get(1) {
        Some(Value::Int(index)) => match ctx.program.constants.get(*index as usize) {
            Some(spool_vm::Constant::Type(ty)) if !ty.is_unknown() => Some(ty.clone()),
            _ => None,
        },
        _ => None,
    };
    Ok(Value::Obj(ctx.heap.alloc(Object::Coro(Box::new(coro)))))
}

/// `c.next()`: never called, because the compiler emits `CoroNext`; it is
/// declared so that the checker can type the call.
pub fn next(_: &mut NativeCtx<'_>, _: &[Value]) -> Result<Value, VmError> {
    Err(VmError::new(
        ErrorKind::Type,
        "internal: next must be compiled to CoroNext",
    ))
}

/// `c.recv()`: the value the coroutine yielded last.
pub fn recv(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    coro(ctx, args)?
        .last
        .ok_or_else(|| VmError::new(ErrorKind::Type, "nothing has been yielded yet"))
}

/// `c.send(v)`: what the pending `yield` evaluates to on the next `next()`.
pub fn send(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let value = param::arg(args, 1)?;
    coro(ctx, args)?.sent = value;
    Ok(Value::Nil)
}

/// `c.stop()`: the pending `yield` raises `Stopped` on the next `next()`
/// (a coroutine that never started is done at once).
pub fn stop(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    coro(ctx, args)?.stop();
    Ok(Value::Nil)
}

/// `c.done()`: has the body returned, been stopped or failed?
pub fn done(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let finished = matches!(
        coro(ctx, args)?.status,
        spool_vm::CoroStatus::Done | spool_vm::CoroStatus::Failed
    );
    Ok(Value::Bool(finished))
}

/// `c.status()`: `"suspended"`, `"running"`, `"done"` or `"failed"`.
pub fn status(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let name = coro(ctx, args)?.status.as_str();
    Ok(ctx.heap.alloc_str(name))
}

/// Argument 0 as a coroutine.
fn coro<'h>(ctx: &'h mut NativeCtx<'_>, args: &[Value]) -> Result<&'h mut Coroutine, VmError> {
    let obj = param::arg(args, 0)?.as_obj();
    obj.and_then(|obj| ctx.heap.coro_mut(obj))
        .ok_or_else(|| param::internal("a coroutine"))
}
