//! Tasks and synchronization (LANGUAGE.md §5): `t.cancel()`, `Mutex`,
//! `WaitGroup`, `ErrGroup`, channels and the natives behind `singleflight`.
//!
//! Every blocking operation is a native that either completes at once or
//! registers the calling task as a waiter on the object and suspends it
//! (`sched::block`); whoever completes the wait later wakes it with the
//! operation's result (`sched::wake`). Waiters are served first come,
//! first served. Each operation that may suspend first delivers a pending
//! `cancel()` (`sched::check_cancel`). The parts that call back into script
//! (`m.with`, `g.go`, `singleflight`) are in the prelude.

use spool_vm::sched::{self, block, check_cancel, wake};
use spool_vm::select;
use spool_vm::{
    Blocked, Chan, ErrorKind, Group, Mutex, NativeCtx, ObjRef, Object, TaskError, Value, VmError,
    Wake,
};

use crate::param;
use crate::NativeDef;

/// The natives of this module.
pub const DEFS: &[NativeDef] = &[
    NativeDef {
        key: "task.cancel",
        sig: "fn cancel<T>(t: Task<T>)",
        func: cancel,
    },
    NativeDef {
        key: "mutex.new",
        sig: "fn Mutex() -> Mutex",
        func: mutex_new,
    },
    NativeDef {
        key: "mutex.lock",
        sig: "fn lock(m: Mutex)",
        func: lock,
    },
    NativeDef {
        key: "mutex.unlock",
        sig: "fn unlock(m: Mutex)",
        func: unlock,
    },
    NativeDef {
        key: "waitgroup.new",
        sig: "fn WaitGroup() -> WaitGroup",
        func: waitgroup_new,
    },
    NativeDef {
        key: "waitgroup.add",
        sig: "fn add(wg: WaitGroup, n: int)",
        func: add,
    },
    NativeDef {
        key: "waitgroup.done",
        sig: "fn done(wg: WaitGroup)",
        func: done,
    },
    NativeDef {
        key: "waitgroup.wait",
        sig: "fn wait(wg: WaitGroup)",
        func: wait,
    },
    NativeDef {
        key: "errgroup.new",
        sig: "fn ErrGroup() -> ErrGroup",
        func: errgroup_new,
    },
    NativeDef {
        key: "errgroup.wait",
        sig: "fn wait(g: ErrGroup) -> Error?",
        func: wait,
    },
    NativeDef {
        key: "errgroup.start",
        sig: "fn __errgroup_start<T>(g: ErrGroup, t: Task<T>)",
        func: errgroup_start,
    },
    NativeDef {
        key: "errgroup.fail",
        sig: "fn __errgroup_fail(g: ErrGroup, e: Error)",
        func: errgroup_fail,
    },
    NativeDef {
        key: "errgroup.done",
        sig: "fn __errgroup_done(g: ErrGroup)",
        func: done,
    },
    NativeDef {
        key: "chan.new",
        sig: "fn chan<T>(capacity: int) -> Chan<T>",
        func: chan_new,
    },
    NativeDef {
        key: "chan.send",
        sig: "fn send<T>(c: Chan<T>, v: T)",
        func: send,
    },
    NativeDef {
        key: "chan.recv",
        sig: "fn recv<T>(c: Chan<T>) -> T?",
        func: recv,
    },
    NativeDef {
        key: "task.select",
        sig: "fn __select()",
        func: select::select_native,
    },
    NativeDef {
        key: "task.await_any",
        sig: "fn __await_any<T>(tasks: [Task<T>]) -> int",
        func: select::await_any_native,
    },
    NativeDef {
        key: "chan.close",
        sig: "fn close<T>(c: Chan<T>)",
        func: close,
    },
    NativeDef {
        key: "flight.busy",
        sig: "fn __flight_busy(key: str) -> bool",
        func: flight_busy,
    },
    NativeDef {
        key: "flight.wait",
        sig: "fn __flight_wait<T>(key: str) -> T",
        func: flight_wait,
    },
    NativeDef {
        key: "flight.begin",
        sig: "fn __flight_begin(key: str)",
        func: flight_begin,
    },
    NativeDef {
        key: "flight.end",
        sig: "fn __flight_end<T>(key: str, v: T)",
        func: flight_end,
    },
    NativeDef {
        key: "flight.fail",
        sig: "fn __flight_fail(key: str, e: Error)",
        func: flight_fail,
    },
];

/// Argument `index` as a heap reference.
fn obj(args: &[Value], index: usize) -> Result<ObjRef, VmError> {
    param::arg(args, index)?
        .as_obj()
        .ok_or_else(|| param::internal("an object"))
}

/// A `Type` error with `message`.
fn misuse(message: &str) -> VmError {
    VmError::new(ErrorKind::Type, message)
}

/// The calling task.
fn current(ctx: &NativeCtx<'_>) -> Result<ObjRef, VmError> {
    ctx.sched
        .current
        .ok_or_else(|| param::internal("a running task"))
}

/// `t.cancel()`.
pub fn cancel(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let task = obj(args, 0)?;
    sched::cancel(ctx.heap, ctx.sched, task);
    Ok(Value::Nil)
}

/// `Mutex()`.
pub fn mutex_new(ctx: &mut NativeCtx<'_>, _: &[Value]) -> Result<Value, VmError> {
    Ok(Value::Obj(ctx.heap.alloc(Object::Mutex(Box::default()))))
}

fn mutex<'h>(ctx: &'h mut NativeCtx<'_>, args: &[Value]) -> Result<&'h mut Mutex, VmError> {
    let m = obj(args, 0)?;
    ctx.heap
        .mutex_mut(m)
        .ok_or_else(|| param::internal("a mutex"))
}

/// `m.lock()`: takes the lock, waiting for it if another task holds it.
pub fn lock(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    check_cancel(ctx.heap, ctx.sched)?;
    let me = current(ctx)?;
    let m = obj(args, 0)?;
    let mutex = mutex(ctx, args)?;
    if !mutex.locked {
        mutex.locked = true;
        return Ok(Value::Nil);
    }
    mutex.waiters.push_back(me);
    block(ctx, Blocked::Mutex(m));
    Ok(Value::Nil)
}

/// `m.unlock()`: hands the lock to the first waiting task, if any.
pub fn unlock(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let mutex = mutex(ctx, args)?;
    if !mutex.locked {
        return Err(misuse("unlock of a mutex that is not locked"));
    }
    match mutex.waiters.pop_front() {
        Some(next) => wake(ctx.heap, ctx.sched, next, Wake::Value(Value::Nil)),
        None => mutex.locked = false,
    }
    Ok(Value::Nil)
}

/// `WaitGroup()`.
pub fn waitgroup_new(ctx: &mut NativeCtx<'_>, _: &[Value]) -> Result<Value, VmError> {
    Ok(Value::Obj(ctx.heap.alloc(Object::Group(Box::default()))))
}

/// `ErrGroup()`.
pub fn errgroup_new(ctx: &mut NativeCtx<'_>, _: &[Value]) -> Result<Value, VmError> {
    let group = Group {
        errgroup: true,
        ..Group::default()
    };
    Ok(Value::Obj(ctx.heap.alloc(Object::Group(Box::new(group)))))
}

fn group<'h>(ctx: &'h mut NativeCtx<'_>, args: &[Value]) -> Result<&'h mut Group, VmError> {
    let g = obj(args, 0)?;
    ctx.heap
        .group_mut(g)
        .ok_or_else(|| param::internal("a group"))
}

/// Changes a group's counter by `delta`; at zero its waiters go on.
fn adjust(ctx: &mut NativeCtx<'_>, args: &[Value], delta: i64) -> Result<Value, VmError> {
    let group = group(ctx, args)?;
    let count = group.count.checked_add(delta).filter(|&n| n >= 0);
    let Some(count) = count else {
        return Err(misuse("WaitGroup counter would go below zero"));
    };
    group.count = count;
    if count == 0 {
        let result = group.first_error.unwrap_or(Value::Nil);
        for waiter in std::mem::take(&mut group.waiters) {
            wake(ctx.heap, ctx.sched, waiter, Wake::Value(result));
        }
    }
    Ok(Value::Nil)
}

/// `wg.add(n)`.
pub fn add(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let n = param::int(args, 1)?;
    adjust(ctx, args, n)
}

/// `wg.done()`, and an error group's task finishing.
pub fn done(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    adjust(ctx, args, -1)
}

/// `wg.wait()` and `g.wait()`: waits for the counter to reach zero; an
/// error group then gives its first error, or nil.
pub fn wait(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    check_cancel(ctx.heap, ctx.sched)?;
    let me = current(ctx)?;
    let g = obj(args, 0)?;
    let group = group(ctx, args)?;
    if group.count == 0 {
        return Ok(group.first_error.unwrap_or(Value::Nil));
    }
    group.waiters.push(me);
    block(ctx, Blocked::Group(g));
    Ok(Value::Nil)
}

/// An error group starts tracking task `t` (spawned by `g.go`).
pub fn errgroup_start(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let task = obj(args, 1)?;
    let group = group(ctx, args)?;
    group.count += 1;
    group.tasks.push(task);
    Ok(Value::Nil)
}

/// A task of an error group failed: the first error is kept and the
/// group's other tasks are cancelled.
pub fn errgroup_fail(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let error = param::arg(args, 1)?;
    let me = ctx.sched.current;
    let group = group(ctx, args)?;
    if group.first_error.is_some() {
        return Ok(Value::Nil);
    }
    group.first_error = Some(error);
    let others: Vec<ObjRef> = group
        .tasks
        .iter()
        .copied()
        .filter(|&t| Some(t) != me)
        .collect();
    for task in others {
        sched::cancel(ctx.heap, ctx.sched, task);
    }
    Ok(Value::Nil)
}

/// `chan(capacity)`.
pub fn chan_new(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let capacity = param::int(args, 0)?;
    let Ok(capacity) = usize::try_from(capacity) else {
        return Err(misuse("a channel's capacity cannot be negative"));
    };
    let chan = Chan {
        capacity,
        ..Chan::default()
    };
    Ok(Value::Obj(ctx.heap.alloc(Object::Chan(Box::new(chan)))))
}

fn chan<'h>(ctx: &'h mut NativeCtx<'_>, args: &[Value]) -> Result<&'h mut Chan, VmError> {
    let c = obj(args, 0)?;
    ctx.heap
        .chan_mut(c)
        .ok_or_else(|| param::internal("a channel"))
}

/// `c.send(v)`: hands `v` to a waiting receiver, or buffers it, or waits
/// until a receiver takes it.
pub fn send(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    check_cancel(ctx.heap, ctx.sched)?;
    let me = current(ctx)?;
    let c = obj(args, 0)?;
    let value = param::arg(args, 1)?;
    if !select::try_send(ctx.heap, ctx.sched, c, value)? {
        chan(ctx, args)?.senders.push_back((me, value));
        block(ctx, Blocked::Chan(c));
    }
    Ok(Value::Nil)
}

/// `c.recv()`: the oldest value, waiting for one if there is none; nil
/// once the channel is closed and drained.
pub fn recv(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    check_cancel(ctx.heap, ctx.sched)?;
    let me = current(ctx)?;
    let c = obj(args, 0)?;
    if let Some(value) = select::try_recv(ctx.heap, ctx.sched, c)? {
        return Ok(value);
    }
    chan(ctx, args)?.receivers.push_back(me);
    block(ctx, Blocked::Chan(c));
    Ok(Value::Nil)
}

/// `c.close()`: waiting receivers get nil; waiting senders raise `Type`.
pub fn close(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let c = obj(args, 0)?;
    select::close(ctx.heap, ctx.sched, c)?;
    Ok(Value::Nil)
}

/// Is a `singleflight` call with this key in progress?
pub fn flight_busy(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let key = param::str(ctx.heap, args, 0)?;
    Ok(Value::Bool(ctx.sched.flights.contains_key(key)))
}

/// Waits for the `singleflight` call with this key and shares its result.
pub fn flight_wait(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    check_cancel(ctx.heap, ctx.sched)?;
    let me = current(ctx)?;
    let key = param::str(ctx.heap, args, 0)?.to_string();
    let Some(flight) = ctx.sched.flights.get_mut(&key) else {
        return Err(param::internal("a singleflight call in progress"));
    };
    flight.waiters.push(me);
    block(ctx, Blocked::Flight(Box::new(key)));
    Ok(Value::Nil)
}

/// Starts a `singleflight` call with this key.
pub fn flight_begin(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let key = param::str(ctx.heap, args, 0)?.to_string();
    ctx.sched.flights.insert(key, Default::default());
    Ok(Value::Nil)
}

/// The `singleflight` call with this key returned `v`: its waiters get it.
pub fn flight_end(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let value = param::arg(args, 1)?;
    finish_flight(ctx, args, Wake::Value(value))
}

/// The `singleflight` call with this key failed with `e`: its waiters
/// raise it too.
pub fn flight_fail(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let error = param::arg(args, 1)?;
    let wake_with = Wake::Raise(Box::new(TaskError {
        error,
        trace: Vec::new(),
    }));
    finish_flight(ctx, args, wake_with)
}

fn finish_flight(
    ctx: &mut NativeCtx<'_>,
    args: &[Value],
    wake_with: Wake,
) -> Result<Value, VmError> {
    let key = param::str(ctx.heap, args, 0)?.to_string();
    let Some(flight) = ctx.sched.flights.remove(&key) else {
        return Ok(Value::Nil);
    };
    for waiter in flight.waiters {
        wake(ctx.heap, ctx.sched, waiter, wake_with.clone());
    }
    Ok(Value::Nil)
}
