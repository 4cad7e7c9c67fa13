//! `select` (LANGUAGE.md §10) and the channel operations it shares with
//! the natives `send`, `recv` and `close`.
//!
//! A task waiting in a `select` is registered in every place one of its
//! cases waits: among a channel's receivers or senders, among a task's
//! waiters, and behind an in-flight `sleep` request for `after`. Whoever
//! ends one of those waits calls [`deliver`], naming where the wake comes
//! from; for a task in a `select` that picks the case, takes the task out
//! of every other place and wakes it with the case's index (and value).
//! Everything is plain data in the task (`Blocked::Select`), so a run saved
//! while it waits resumes waiting there, and the `after` request keeps its
//! id and so, for a host with durable timers, its deadline.

use std::sync::Arc;

use crate::exec::error::{expected, ErrorKind, VmError};
use crate::exec::native::NativeCtx;
use crate::heap::objects::{Blocked, Chan, SelectCase, SelectMode, TaskError, TaskState, Wake};
use crate::heap::value::{IoId, NativeIdx, ObjRef, Value};
use crate::heap::{Heap, ITEM_BYTES};
use crate::tasks::io::{record_request, Data};
use crate::tasks::sched::{self, Sched};

/// Which wait of a task ended: what [`deliver`] is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A receive on the channel (a value arrived, or it was closed).
    Recv(ObjRef),
    /// A send on the channel (a receiver took the value, or it was closed).
    Send(ObjRef),
    /// The task finished.
    Task(ObjRef),
    /// The I/O request completed.
    Io(IoId),
}

impl SelectCase {
    /// Is this the case that `from` ends?
    fn answers(&self, from: Source) -> bool {
        match (self, from) {
            (SelectCase::Recv(a), Source::Recv(b))
            | (SelectCase::Send(a, _), Source::Send(b))
            | (SelectCase::Await(a), Source::Task(b)) => *a == b,
            (SelectCase::After(a), Source::Io(b)) => *a == b,
            _ => false,
        }
    }
}

/// One case of a `select` as the compiled statement passes it, its
/// expressions already evaluated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Case {
    /// `ch.recv()`.
    Recv(ObjRef),
    /// `ch.send(v)`.
    Send(ObjRef, Value),
    /// `await t`.
    Await(ObjRef),
    /// `after(ms)`.
    After(i64),
    /// `else`.
    Else,
}

/// The case kinds of the flat argument list of `__select`: each case is
/// its kind followed by its operands.
pub mod kind {
    /// `ch.recv()`: one operand, the channel.
    pub const RECV: i32 = 0;
    /// `ch.send(v)`: the channel and the value.
    pub const SEND: i32 = 1;
    /// `await t`: the task.
    pub const AWAIT: i32 = 2;
    /// `after(ms)`: the milliseconds.
    pub const AFTER: i32 = 3;
    /// `else`: no operand.
    pub const ELSE: i32 = 4;
}

/// Wakes the blocked `task` because its wait `from` ended, with `wake`.
/// A task waiting in a `select` takes the case `from` answers: it leaves
/// every other place it waits in and receives what its mode asks for.
///
/// Inlined: every answered request, received value and finished task
/// wakes a task through it, and the usual one waits for that alone; a
/// task in a `select` is handled out of line.
#[inline]
pub fn deliver(heap: &mut Heap, sched: &mut Sched, task: ObjRef, from: Source, wake: Wake) {
    match heap.task_mut(task) {
        Some(t) if t.state == TaskState::Blocked => {
            if !matches!(t.blocked, Blocked::Select { .. }) {
                // Its one wait is over.
                return sched::make_ready(t, sched, task, wake);
            }
        }
        _ => return,
    }
    deliver_to_select(heap, sched, task, from, wake);
}

/// [`deliver`] to a task blocked in a `select`.
#[inline(never)]
fn deliver_to_select(heap: &mut Heap, sched: &mut Sched, task: ObjRef, from: Source, wake: Wake) {
    let Some(Blocked::Select { cases, mode }) =
        heap.task_mut(task).map(|t| std::mem::take(&mut t.blocked))
    else {
        return;
    };
    let Some(index) = cases.iter().position(|case| case.answers(from)) else {
        if let Some(t) = heap.task_mut(task) {
            t.blocked = Blocked::Select { cases, mode };
        }
        return;
    };
    unregister(heap, sched, task, &cases);
    let wake = chosen(heap, mode, index, wake);
    sched::wake(heap, sched, task, wake);
}

/// What a task in a `select` of `mode` receives when case `index` proceeds
/// with `wake`.
fn chosen(heap: &mut Heap, mode: SelectMode, index: usize, wake: Wake) -> Wake {
    match (mode, wake) {
        (SelectMode::Index, _) => Wake::Value(Value::Int(index as i64)),
        (SelectMode::Pair, Wake::Value(value)) => Wake::Value(pair(heap, index, value)),
        (SelectMode::Pair, Wake::Nothing) => Wake::Value(pair(heap, index, Value::Nil)),
        (SelectMode::Pair, raise @ Wake::Raise(_)) => raise,
    }
}

/// The `[index, value]` list the `select` statement receives.
fn pair(heap: &mut Heap, index: usize, value: Value) -> Value {
    heap.alloc_list(vec![Value::Int(index as i64), value])
}

/// Takes `task` out of every place the `cases` registered it in; an
/// `after` request is withdrawn (its answer, if it comes, is ignored).
pub(crate) fn unregister(heap: &mut Heap, sched: &mut Sched, task: ObjRef, cases: &[SelectCase]) {
    for case in cases {
        match case {
            SelectCase::Recv(chan) => {
                if let Some(c) = heap.chan_mut(*chan) {
                    c.receivers.retain(|&w| w != task);
                }
            }
            SelectCase::Send(chan, _) => {
                if let Some(c) = heap.chan_mut(*chan) {
                    c.senders.retain(|&(w, _)| w != task);
                }
            }
            SelectCase::Await(target) => {
                if let Some(t) = heap.task_mut(*target) {
                    t.waiters.retain(|&w| w != task);
                }
            }
            SelectCase::After(id) => {
                sched.in_flight.remove(id);
                sched.outbox.retain(|request| request.id != *id);
            }
        }
    }
}

/// What a task waiting in a `select` waits for, in words.
pub(crate) fn describe(heap: &Heap, cases: &[SelectCase]) -> String {
    let parts: Vec<String> = cases
        .iter()
        .map(|case| match case {
            SelectCase::Recv(_) => "a receive".to_string(),
            SelectCase::Send(..) => "a send".to_string(),
            SelectCase::Await(target) => {
                let id = heap.task(Value::Obj(*target)).map_or(0, |t| t.id);
                format!("task {id}")
            }
            SelectCase::After(id) => format!("timer (I/O request {})", id.0),
        })
        .collect();
    format!("waits in a select on {}", parts.join(", "))
}

// ---- channels ----

fn chan_mut(heap: &mut Heap, chan: ObjRef) -> Result<&mut Chan, VmError> {
    heap.chan_mut(chan).ok_or_else(|| expected("a channel"))
}

/// The error of a send on a closed channel.
pub fn closed_send() -> VmError {
    VmError::new(ErrorKind::Type, "send on a closed channel")
}

/// `c.send(v)` if it can complete now: hands `v` to a waiting receiver or
/// buffers it (true), or reports that the sender must wait (false).
pub fn try_send(
    heap: &mut Heap,
    sched: &mut Sched,
    chan: ObjRef,
    value: Value,
) -> Result<bool, VmError> {
    let c = chan_mut(heap, chan)?;
    if c.closed {
        return Err(closed_send());
    }
    if let Some(receiver) = c.receivers.pop_front() {
        deliver(
            heap,
            sched,
            receiver,
            Source::Recv(chan),
            Wake::Value(value),
        );
        return Ok(true);
    }
    if c.buffer.len() < c.capacity {
        heap.charge(ITEM_BYTES)?;
        heap.grew(ITEM_BYTES);
        chan_mut(heap, chan)?.buffer.push_back(value);
        return Ok(true);
    }
    Ok(false)
}

/// `c.recv()` if it can complete now: the oldest value (a waiting
/// sender's value takes the freed place), nil once closed and drained, or
/// `None` when the receiver must wait.
pub fn try_recv(
    heap: &mut Heap,
    sched: &mut Sched,
    chan: ObjRef,
) -> Result<Option<Value>, VmError> {
    let c = chan_mut(heap, chan)?;
    if let Some(value) = c.buffer.pop_front() {
        if let Some((sender, sent)) = c.senders.pop_front() {
            c.buffer.push_back(sent);
            deliver(heap, sched, sender, Source::Send(chan), Wake::Nothing);
        }
        return Ok(Some(value));
    }
    if let Some((sender, sent)) = c.senders.pop_front() {
        deliver(heap, sched, sender, Source::Send(chan), Wake::Nothing);
        return Ok(Some(sent));
    }
    Ok(c.closed.then_some(Value::Nil))
}

/// `c.close()`: waiting receivers get nil; waiting senders raise `Type`.
pub fn close(heap: &mut Heap, sched: &mut Sched, chan: ObjRef) -> Result<(), VmError> {
    let c = chan_mut(heap, chan)?;
    if c.closed {
        return Err(VmError::new(ErrorKind::Type, "close of a closed channel"));
    }
    c.closed = true;
    let receivers = std::mem::take(&mut c.receivers);
    let senders = std::mem::take(&mut c.senders);
    for receiver in receivers {
        deliver(
            heap,
            sched,
            receiver,
            Source::Recv(chan),
            Wake::Value(Value::Nil),
        );
    }
    for (sender, _) in senders {
        let error = TaskError {
            error: sched::error_record(heap, sched, &closed_send()),
            trace: Vec::new(),
        };
        deliver(
            heap,
            sched,
            sender,
            Source::Send(chan),
            Wake::Raise(Box::new(error)),
        );
    }
    Ok(())
}

// ---- select ----

/// Reads the flat arguments of `__select`: each case's kind and operands.
pub fn parse_cases(heap: &Heap, args: &[Value]) -> Result<Vec<Case>, VmError> {
    let mut cases = Vec::new();
    let mut rest = args;
    let object = |value: Option<&Value>| value.and_then(|v| v.as_obj()).ok_or_else(bad_case);
    while let Some((&kind, tail)) = rest.split_first() {
        let (case, used) = match kind {
            Value::Int(k) if k == i64::from(kind::RECV) => (Case::Recv(object(tail.first())?), 1),
            Value::Int(k) if k == i64::from(kind::SEND) => {
                let value = *tail.get(1).ok_or_else(bad_case)?;
                (Case::Send(object(tail.first())?, value), 2)
            }
            Value::Int(k) if k == i64::from(kind::AWAIT) => {
                let task = *tail.first().ok_or_else(bad_case)?;
                heap.task(task).ok_or_else(|| expected("a task"))?;
                (Case::Await(object(Some(&task))?), 1)
            }
            Value::Int(k) if k == i64::from(kind::AFTER) => match tail.first() {
                Some(Value::Int(ms)) => (Case::After(*ms), 1),
                _ => return Err(expected("int")),
            },
            Value::Int(k) if k == i64::from(kind::ELSE) => (Case::Else, 0),
            _ => return Err(bad_case()),
        };
        cases.push(case);
        rest = &tail[used..];
    }
    Ok(cases)
}

fn bad_case() -> VmError {
    crate::exec::error::bad_program("a malformed select case")
}

/// Runs a `select` of `cases` for the current task: the first case in
/// source order that can proceed now is taken (`else` only when none
/// can); otherwise the task waits on all of them and is woken by the
/// first that proceeds. Returns what `mode` asks for, or nil with the task
/// suspended.
pub fn select(ctx: &mut NativeCtx<'_>, cases: &[Case], mode: SelectMode) -> Result<Value, VmError> {
    sched::check_cancel(ctx.heap, ctx.sched)?;
    let Some(me) = ctx.sched.current else {
        return Err(crate::exec::error::bad_program("select outside a task"));
    };
    for case in cases {
        if let Case::Await(target) = case {
            sched::awaitable(ctx.heap, ctx.sched, Value::Obj(*target))?;
        }
    }
    let sleep = match cases
        .iter()
        .any(|case| matches!(case, Case::After(ms) if *ms > 0))
    {
        true => Some(sleep_op(ctx)?),
        false => None,
    };
    for (index, case) in cases.iter().enumerate() {
        if let Some(ready) = try_case(ctx, *case, mode)? {
            return match ready {
                Ready::Value(value) => Ok(match mode {
                    SelectMode::Pair => pair(ctx.heap, index, value),
                    SelectMode::Index => Value::Int(index as i64),
                }),
                Ready::Raise(error) => {
                    raise_later(ctx, me, error);
                    Ok(Value::Nil)
                }
            };
        }
    }
    if let Some(index) = cases.iter().position(|case| *case == Case::Else) {
        return Ok(match mode {
            SelectMode::Pair => pair(ctx.heap, index, Value::Nil),
            SelectMode::Index => Value::Int(index as i64),
        });
    }
    let mut waiting = Vec::with_capacity(cases.len());
    for case in cases {
        waiting.push(register(ctx, me, *case, sleep)?);
    }
    sched::block(
        ctx,
        Blocked::Select {
            cases: Box::new(waiting),
            mode,
        },
    );
    Ok(Value::Nil)
}

/// A case that can proceed now.
enum Ready {
    /// With this value.
    Value(Value),
    /// By raising the awaited task's error.
    Raise(TaskError),
}

/// Performs `case` if it can proceed now.
fn try_case(
    ctx: &mut NativeCtx<'_>,
    case: Case,
    mode: SelectMode,
) -> Result<Option<Ready>, VmError> {
    Ok(match case {
        Case::Recv(chan) => try_recv(ctx.heap, ctx.sched, chan)?.map(Ready::Value),
        Case::Send(chan, value) => {
            try_send(ctx.heap, ctx.sched, chan, value)?.then_some(Ready::Value(Value::Nil))
        }
        Case::Await(target) => {
            let Some(t) = ctx.heap.task_mut(target) else {
                return Err(expected("a task"));
            };
            match t.state {
                TaskState::Done => Some(Ready::Value(t.result)),
                TaskState::Failed => {
                    t.observed = true;
                    match (mode, t.error.clone()) {
                        (SelectMode::Pair, Some(error)) => Some(Ready::Raise(*error)),
                        _ => Some(Ready::Value(Value::Nil)),
                    }
                }
                _ => None,
            }
        }
        Case::After(ms) => (ms <= 0).then_some(Ready::Value(Value::Nil)),
        Case::Else => None,
    })
}

/// Raises `error` (with its original trace) in the current task: it is
/// suspended and queued at once with the error to deliver.
fn raise_later(ctx: &mut NativeCtx<'_>, me: ObjRef, error: TaskError) {
    sched::block(ctx, Blocked::Nothing);
    sched::wake(ctx.heap, ctx.sched, me, Wake::Raise(Box::new(error)));
}

/// Registers the current task `me` where `case` waits.
fn register(
    ctx: &mut NativeCtx<'_>,
    me: ObjRef,
    case: Case,
    sleep: Option<NativeIdx>,
) -> Result<SelectCase, VmError> {
    Ok(match case {
        Case::Recv(chan) => {
            chan_mut(ctx.heap, chan)?.receivers.push_back(me);
            SelectCase::Recv(chan)
        }
        Case::Send(chan, value) => {
            chan_mut(ctx.heap, chan)?.senders.push_back((me, value));
            SelectCase::Send(chan, value)
        }
        Case::Await(target) => {
            if let Some(t) = ctx.heap.task_mut(target) {
                t.waiters.push(me);
            }
            SelectCase::Await(target)
        }
        Case::After(ms) => {
            let native = sleep.ok_or_else(no_sleep)?;
            let args = Arc::new([Data::Int(ms)]);
            let op = Arc::from("sleep");
            SelectCase::After(record_request(ctx.sched, ctx.heap, me, native, op, args))
        }
        Case::Else => return Err(bad_case()),
    })
}

/// The host's `sleep` operation, which `after` waits through.
fn sleep_op(ctx: &NativeCtx<'_>) -> Result<NativeIdx, VmError> {
    ctx.program
        .natives
        .iter()
        .position(|decl| decl.name == "sleep" && decl.io.is_some())
        .map(|index| NativeIdx(index as u32))
        .ok_or_else(no_sleep)
}

fn no_sleep() -> VmError {
    VmError::new(
        ErrorKind::Type,
        "`after` waits through the host's `sleep` operation, which this host does not provide",
    )
}

/// `__select(kind, operands..., ...)`: the `select` statement.
pub fn select_native(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let cases = parse_cases(ctx.heap, args)?;
    if cases.is_empty() {
        return Err(VmError::new(ErrorKind::Type, "a select needs a case"));
    }
    select(ctx, &cases, SelectMode::Pair)
}

/// `__await_any(tasks)`: waits until one of `tasks` has finished and gives
/// its index (the first in list order when several have), leaving its
/// result or error for `await`; used by `race` and `timeout`.
pub fn await_any_native(ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
    let list = args.first().copied().ok_or_else(bad_case)?;
    let tasks = match list.as_obj().and_then(|obj| ctx.heap.get(obj)) {
        Some(crate::heap::Object::List(items)) => items.clone(),
        _ => return Err(expected("a list")),
    };
    if tasks.is_empty() {
        return Err(VmError::new(ErrorKind::Type, "race of no tasks"));
    }
    let mut cases = Vec::with_capacity(tasks.len());
    for task in tasks {
        ctx.heap.task(task).ok_or_else(|| expected("a task"))?;
        cases.push(Case::Await(task.as_obj().ok_or_else(bad_case)?));
    }
    select(ctx, &cases, SelectMode::Index)
}
