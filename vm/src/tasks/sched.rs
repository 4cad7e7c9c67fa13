//! The scheduler (LANGUAGE.md §5): spawning, blocking, waking, cancelling
//! and finishing tasks, and the CPU phase / I/O phase cycle.
//!
//! The interpreter runs the current task until it blocks or its body ends,
//! then [`switch`] installs the next ready task. When no task is ready the
//! run returns to its host: `Step::Io` with the requests of the phase (the
//! I/O phase), `Step::Done` once the main task has finished, or a deadlock
//! error when every task waits on another. [`complete`] wakes the task
//! waiting for a request; the tasks woken run in the next CPU phase, and the
//! I/O they issue forms the next batch. Everything is FIFO, so the same
//! script with the same I/O results in the same order behaves the same.
//!
//! Structure (LANGUAGE.md §5): a task finishes only after its body has ended
//! and all its children have finished. A body that fails cancels its
//! unfinished children; an error of a child nobody awaited is rethrown in
//! its parent when the parent's body ends, after the parent's other
//! children are cancelled. A task whose `Cancelled` error comes from a
//! `cancel()` does not count as failing its parent.

use crate::exec::error::expected;
use crate::exec::error::{ErrorKind, RunError, VmError};
use crate::exec::fiber::Fiber;
use crate::exec::interp;
use crate::exec::native::{NativeCtx, Output, Suspend};
use crate::heap::objects::Flight;
use crate::heap::objects::{Blocked, Context, Task, TaskError, TaskState, Wake};
use crate::heap::value::{NativeIdx, ObjRef, StructIdx, Value};
use crate::heap::{Heap, Object};
use crate::program::Program;
use crate::run::{Run, Step};
use crate::tasks::io::IoRequest;
use crate::tasks::io::IoTable;
use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Creates the main program's task, running, for a run whose active fiber
/// is the main one.
pub(crate) fn init_main(run: &mut Run) {
    let main = run.heap.alloc(Object::Task(Box::new(Task {
        state: TaskState::Running,
        ..Task::default()
    })));
    // Task numbers and request ids keep counting across the REPL's inputs,
    // so that a late answer to an abandoned request never matches a new one.
    run.sched = Sched {
        error_struct: run.program.builtins.error,
        main: Some(main),
        current: Some(main),
        next_task: run.sched.next_task.max(1),
        next_io: run.sched.next_io.max(1),
        live: 1,
        ..Sched::default()
    };
}

/// The arguments of a `spawn` of `func`, copied out of the spawner's
/// registers into a vector with room for every register of `func` when it
/// is a script function: the task's fiber starts with it as its register
/// file ([`script_fiber`]) without growing it.
pub(crate) fn spawn_args(
    program: &Program,
    heap: &Heap,
    func: Value,
    args: &[Value],
) -> Vec<Value> {
    let script = match func {
        Value::Func(f) => Some(f),
        Value::Obj(obj) => match heap.get(obj) {
            Some(&Object::Closure { func: f, .. }) => Some(f),
            _ => None,
        },
        _ => None,
    };
    let registers = script
        .and_then(|f| program.functions.get(f.index()))
        .map_or(0, |f| f.register_count as usize);
    let mut copied = Vec::with_capacity(registers.max(args.len()));
    copied.extend_from_slice(args);
    copied
}

/// `spawn`: a new task, child of the current one, that will call `func`
/// with `args`. It is queued, not run: the spawner goes on.
pub(crate) fn spawn(run: &mut Run, func: Value, args: Vec<Value>) -> Result<Value, VmError> {
    if run.sched.live >= run.limits.max_tasks {
        return Err(VmError::new(
            ErrorKind::Limit,
            format!("task limit exceeded ({} tasks)", run.limits.max_tasks),
        ));
    }
    let parent = run.sched.current;
    let id = run.sched.next_task;
    run.sched.next_task = run.sched.next_task.saturating_add(1);
    // Filled in place: a task is large, and built on the stack it would be
    // copied into its box.
    let mut boxed = Box::<Task>::default();
    boxed.id = id;
    boxed.parent = parent;
    boxed.start = Some((func, args));
    let task = run.heap.alloc(Object::Task(boxed));
    if let Some(parent) = parent.and_then(|p| run.heap.task_mut(p)) {
        parent.children.push(task);
    }
    run.sched.ready.push_back(task);
    run.sched.live = run.sched.live.saturating_add(1);
    Ok(Value::Obj(task))
}

/// Raises `Cancelled` in the current task if a `cancel()` is pending: every
/// operation that may suspend calls this first.
pub fn check_cancel(heap: &mut Heap, sched: &Sched) -> Result<(), VmError> {
    let Some(task) = sched.current.and_then(|t| heap.task_mut(t)) else {
        return Ok(());
    };
    if task.cancel_pending {
        task.cancel_pending = false;
        return Err(cancelled());
    }
    Ok(())
}

/// The error a cancelled task raises.
pub fn cancelled() -> VmError {
    VmError::new(ErrorKind::Cancelled, "task cancelled")
}

/// Marks the current task blocked on `on`; the caller has registered it
/// wherever it waits and returns [`Suspend::Block`].
pub fn block(ctx: &mut NativeCtx<'_>, on: Blocked) {
    if let Some(task) = ctx.sched.current.and_then(|t| ctx.heap.task_mut(t)) {
        task.state = TaskState::Blocked;
        task.blocked = on;
    }
    ctx.suspend = Some(Suspend::Block);
}

/// Wakes the blocked task `task` with `wake` and queues it.
pub fn wake(heap: &mut Heap, sched: &mut Sched, task: ObjRef, wake: Wake) {
    let Some(t) = heap.task_mut(task) else {
        return;
    };
    if t.state != TaskState::Blocked {
        return;
    }
    make_ready(t, sched, task, wake);
}

/// Wakes `t`, the blocked task `task`, with `wake` and queues it.
#[inline(always)]
pub(crate) fn make_ready(t: &mut Task, sched: &mut Sched, task: ObjRef, wake: Wake) {
    t.state = TaskState::Ready;
    t.blocked = Blocked::Nothing;
    t.wake = wake;
    sched.ready.push_back(task);
}

/// Wakes `task` with an error raised at the operation it is blocked in.
pub fn wake_error(heap: &mut Heap, sched: &mut Sched, task: ObjRef, error: &VmError) {
    let record = error_record(heap, sched, error);
    let error = TaskError {
        error: record,
        trace: Vec::new(),
    };
    wake(heap, sched, task, Wake::Raise(Box::new(error)));
}

/// An `Error` record for `error`, allocated in `heap`.
pub fn error_record(heap: &mut Heap, sched: &Sched, error: &VmError) -> Value {
    let kind = heap.alloc_str(error.kind_name());
    let message = heap.alloc_str(error.message.as_str());
    Value::Obj(heap.alloc(Object::Record {
        ty: sched.error_struct,
        fields: vec![kind, message],
    }))
}

/// `t.cancel()`: a blocked task raises `Cancelled` at once; a ready or
/// running one at its next suspension point; a task whose body has ended
/// has its children cancelled. Cancelling a finished task does nothing.
pub fn cancel(heap: &mut Heap, sched: &mut Sched, task: ObjRef) {
    let mut pending = vec![task];
    while let Some(task) = pending.pop() {
        let Some(t) = heap.task_mut(task) else {
            continue;
        };
        if t.finished() {
            continue;
        }
        t.cancelled = true;
        match t.state {
            TaskState::Blocked => {
                let on = std::mem::take(&mut t.blocked);
                unregister(heap, sched, task, &on);
                if let Some(t) = heap.task_mut(task) {
                    t.blocked = on;
                }
                wake_cancelled(heap, sched, task);
            }
            TaskState::Joining => pending.extend(t.children.list.iter().copied()),
            _ => t.cancel_pending = true,
        }
    }
}

/// Wakes a blocked task with `Cancelled`.
fn wake_cancelled(heap: &mut Heap, sched: &mut Sched, task: ObjRef) {
    wake_error(heap, sched, task, &cancelled());
}

/// Removes a blocked task from whatever it waits in.
pub(crate) fn unregister(heap: &mut Heap, sched: &mut Sched, task: ObjRef, on: &Blocked) {
    match on {
        Blocked::Nothing => {}
        Blocked::Io(id) => {
            sched.in_flight.remove(id);
            sched.outbox.retain(|request| request.id != *id);
        }
        Blocked::Await(target) => {
            if let Some(t) = heap.task_mut(*target) {
                t.waiters.retain(|&w| w != task);
            }
        }
        Blocked::Chan(chan) => {
            if let Some(c) = heap.chan_mut(*chan) {
                c.receivers.retain(|&w| w != task);
                c.senders.retain(|&(w, _)| w != task);
            }
        }
        Blocked::Mutex(mutex) => {
            if let Some(m) = heap.mutex_mut(*mutex) {
                m.waiters.retain(|&w| w != task);
            }
        }
        Blocked::Group(group) => {
            if let Some(g) = heap.group_mut(*group) {
                g.waiters.retain(|&w| w != task);
            }
        }
        Blocked::Flight(key) => {
            if let Some(flight) = sched.flights.get_mut(key.as_str()) {
                flight.waiters.retain(|&w| w != task);
            }
        }
        Blocked::Select { cases, .. } => crate::tasks::select::unregister(heap, sched, task, cases),
    }
}

/// Moves the current task's fibers into its heap object: it is no longer
/// the running task. Its wake value will go to the absolute register `dst`
/// of its active fiber.
pub(crate) fn park(run: &mut Run, program: &Program, dst: u32) {
    let Some(current) = run.sched.current.take() else {
        return;
    };
    run.context.fiber.truncate_dead_registers(program);
    match run.heap.task_mut(current) {
        Some(task) => park_in(task, &mut run.context, dst),
        None => run.context = Context::default(),
    }
}

/// Moves the run's `context` (whose dead registers are dropped) into
/// `task`, the current task, whose wake value will go to the absolute
/// register `dst`; the caller makes it no longer current.
#[inline]
pub(crate) fn park_in(task: &mut Task, context: &mut Context, dst: u32) {
    // A running task's own context is empty (`install` took it): an
    // exchange moves the fibers over without dropping anything.
    task.context.exchange(context);
    task.wake_dst = dst;
}

/// The most requests a new batch has room for before any is issued (1 024
/// requests, 48 KiB: below the size glibc maps from the system for each
/// allocation).
const OUTBOX_ROOM: usize = 1024;

/// Installs the next ready task, if the current one has stopped. Returns
/// the step for the host when no task can run.
pub(crate) fn switch(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
) -> Result<Option<Step>, RunError> {
    loop {
        if run.sched.current.is_some() && !run.context.fiber.frames.is_empty() {
            return Ok(None);
        }
        // A current task without frames has nothing left to run.
        run.sched.current = None;
        let Some(task) = run.sched.ready.pop_front() else {
            return idle(run, program).map(Some);
        };
        install(run, program, output, task)?;
    }
}

/// Makes `task` the running task and delivers what it was woken with.
fn install(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    task: ObjRef,
) -> Result<(), RunError> {
    let Some(t) = run.heap.task_mut(task) else {
        return Ok(());
    };
    if t.state != TaskState::Ready {
        return Ok(());
    }
    t.state = TaskState::Running;
    // A restored task's stack is decoded when it first runs.
    t.context
        .unpack()
        .map_err(|message| crate::run::internal_error(&message))?;
    // The run's context is empty between tasks: an exchange hands the
    // task its fibers and leaves it an empty context (emptied in case).
    t.context.exchange(&mut run.context);
    t.context.clear();
    let wake = std::mem::take(&mut t.wake);
    let start = t.start.take();
    let dst = t.wake_dst as usize;
    run.sched.current = Some(task);
    if let Some((func, args)) = start {
        start_task(run, program, output, func, args);
        return Ok(());
    }
    match wake {
        Wake::Nothing => {}
        Wake::Value(value) if run.context.fiber.frames.is_empty() => body_ended(run, Ok(value)),
        Wake::Value(value) => {
            if let Some(slot) = run.context.fiber.registers.get_mut(dst) {
                *slot = value;
            }
        }
        Wake::Raise(error) if run.context.fiber.frames.is_empty() => body_ended(run, Err(*error)),
        Wake::Raise(error) => crate::exec::unwind::throw_task_error(run, program, output, *error)?,
    }
    Ok(())
}

/// Starts a task's body: a script function gets a fiber whose first frame
/// holds the arguments; a native runs at once (an I/O operation issues
/// its request and the task waits for it). Out of line: once per task,
/// and kept out of [`switch`], whose usual path is a wake.
#[inline(never)]
fn start_task(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    func: Value,
    args: Vec<Value>,
) {
    // The task has not run yet: its context, now the run's, is empty.
    let fiber = &mut run.context.fiber;
    let spare = &mut run.sched.spare;
    let outcome = match func {
        Value::Func(f) => script_fiber(program, f, None, args, spare, fiber),
        Value::Obj(obj) => match run.heap.get(obj) {
            Some(&Object::Closure { func: f, .. }) => {
                script_fiber(program, f, Some(obj), args, spare, fiber)
            }
            _ => Err(expected("a function to spawn")),
        },
        Value::Native(native) => return start_native(run, program, output, native, &args),
        _ => Err(expected("a function to spawn")),
    };
    if let Err(error) = outcome {
        fail_body(run, &error);
    }
}

/// Makes the empty `fiber` one with one frame calling script function
/// `func` with `args`, its vectors spare ones when there are some.
fn script_fiber(
    program: &Program,
    func: crate::heap::value::FuncIdx,
    closure: Option<ObjRef>,
    args: Vec<Value>,
    spare: &mut SpareStacks,
    fiber: &mut Fiber,
) -> Result<(), VmError> {
    let Some(function) = program.functions.get(func.index()) else {
        return Err(crate::exec::error::bad_program(
            "spawn of a missing function",
        ));
    };
    if function.arity as usize != args.len() {
        return Err(crate::exec::error::arity_error(
            &function.name,
            function.arity,
            args.len() as u16,
        ));
    }
    let needed = (function.register_count as usize).max(args.len());
    let mut registers = spare.registers_for(args);
    registers.resize(needed, Value::Nil);
    // A new stack holds exactly the first frame: a suspended task costs
    // no more than it needs, and a task that calls grows it once.
    let mut frames = spare.frames.pop().unwrap_or_else(|| Vec::with_capacity(1));
    frames.push(crate::exec::fiber::Frame {
        func,
        pc: 0,
        base: 0,
        closure,
        ret: 0,
    });
    fiber.registers = registers;
    fiber.frames = frames;
    Ok(())
}

/// Register files and frame stacks of task bodies that have ended, emptied
/// and kept for the tasks started after them: a task that calls functions
/// grows its stacks once, and the tasks after it reuse them instead of
/// allocating and growing their own. Not saved.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpareStacks {
    /// Register files, each with room for at most [`SPARE_REGISTERS`].
    registers: Vec<Vec<Value>>,
    /// Frame stacks, each with room for at most [`SPARE_FRAMES`].
    frames: Vec<Vec<crate::exec::fiber::Frame>>,
}

/// The most stacks of each kind [`SpareStacks`] keeps.
const SPARE_STACKS: usize = 256;

/// The largest register file (in registers) kept for reuse.
const SPARE_REGISTERS: usize = 64;

/// The largest frame stack (in frames) kept for reuse.
const SPARE_FRAMES: usize = 16;

impl SpareStacks {
    /// Keeps the stacks of `fiber`, whose body has ended, when there is
    /// room and they are not unusually large; the rest of it is dropped.
    fn keep(&mut self, fiber: Fiber) {
        let Fiber {
            mut registers,
            mut frames,
            ..
        } = fiber;
        if self.registers.len() < SPARE_STACKS && registers.capacity() <= SPARE_REGISTERS {
            registers.clear();
            self.registers.push(registers);
        }
        if self.frames.len() < SPARE_STACKS && frames.capacity() <= SPARE_FRAMES {
            frames.clear();
            self.frames.push(frames);
        }
    }

    /// A register file holding `args`: a spare one with more room than
    /// `args` has (which was sized for the body alone), or `args` itself.
    fn registers_for(&mut self, args: Vec<Value>) -> Vec<Value> {
        match self.registers.pop() {
            Some(mut registers) if registers.capacity() > args.capacity() => {
                registers.extend_from_slice(&args);
                registers
            }
            Some(registers) => {
                self.registers.push(registers);
                args
            }
            None => args,
        }
    }
}

/// Runs a native task body: its result ends the body, unless it suspends
/// the task (an I/O operation, a lock, ...), whose wake value then does.
#[inline(never)]
fn start_native(
    run: &mut Run,
    program: &Program,
    output: &mut dyn Output,
    native: NativeIdx,
    args: &[Value],
) {
    let outcome = interp::call_native_suspending(run, program, output, native, args);
    match outcome {
        Ok((value, None)) => body_ended(run, Ok(value)),
        Ok((_, Some(suspend))) => {
            run.context.fiber = Fiber {
                registers: vec![Value::Nil],
                ..Fiber::default()
            };
            if suspend == Suspend::Io {
                if let Err(error) = crate::tasks::io::issue_io(run, program, native, args) {
                    return fail_body(run, &error);
                }
            }
            park(run, program, 0);
        }
        Err(error) => fail_body(run, &error),
    }
}

/// Ends the current task's body with `error`, raised where nothing can
/// catch it (before its body started).
fn fail_body(run: &mut Run, error: &VmError) {
    let record = error_record(&mut run.heap, &run.sched, error);
    body_ended(
        run,
        Err(TaskError {
            error: record,
            trace: Vec::new(),
        }),
    );
}

/// The current task's body has returned `Ok(value)` or failed: the task
/// finishes once its children have.
pub(crate) fn body_ended(run: &mut Run, outcome: Result<Value, TaskError>) {
    let Some(task) = run.sched.current.take() else {
        return;
    };
    let fiber = std::mem::take(&mut run.context.fiber);
    run.sched.spare.keep(fiber);
    run.context.resumers.clear();
    let Some(t) = run.heap.task_mut(task) else {
        return;
    };
    t.body_done = true;
    t.context = Context::default();
    match outcome {
        Ok(value) => t.result = value,
        Err(error) => t.error = Some(Box::new(error)),
    }
    let failed = std::mem::take(&mut t.failed_children);
    if t.error.is_none() {
        // An error of a child nobody awaited is rethrown now.
        let unobserved = failed.iter().find_map(|&child| {
            let child = run.heap.task(Value::Obj(child))?;
            (!child.observed).then(|| child.error.clone()).flatten()
        });
        if let Some(t) = run.heap.task_mut(task) {
            t.error = unobserved;
        }
    }
    if let Some(t) = run.heap.task(Value::Obj(task)) {
        // `exit` cancelled every task once already; again would only cut
        // short the I/O of their defers.
        if t.error.is_some() && run.exit.is_none() {
            for child in t.children.list.clone() {
                cancel(&mut run.heap, &mut run.sched, child);
            }
        }
    }
    try_finish(run, task);
}

/// Finishes `task` if its body has ended and its children have finished,
/// then its parent, and so on up.
fn try_finish(run: &mut Run, mut task: ObjRef) {
    loop {
        let Some(t) = run.heap.task_mut(task) else {
            return;
        };
        if !t.body_done || !t.children.is_empty() {
            t.state = TaskState::Joining;
            return;
        }
        t.state = if t.error.is_some() {
            TaskState::Failed
        } else {
            TaskState::Done
        };
        let waiters = std::mem::take(&mut t.waiters);
        if t.error.is_some() && !waiters.is_empty() {
            t.observed = true;
        }
        let outcome = match &t.error {
            Some(error) => Err(error.clone()),
            None => Ok(t.result),
        };
        let (observed, was_cancelled, parent) = (t.observed, t.cancelled, t.parent);
        run.sched.live = run.sched.live.saturating_sub(1);
        for waiter in waiters {
            let wake_with = match &outcome {
                Ok(value) => Wake::Value(*value),
                Err(value) => Wake::Raise(value.clone()),
            };
            let from = crate::tasks::select::Source::Task(task);
            crate::tasks::select::deliver(&mut run.heap, &mut run.sched, waiter, from, wake_with);
        }
        let Some(parent) = parent else {
            return;
        };
        let quiet = was_cancelled
            && outcome
                .as_ref()
                .err()
                .is_some_and(|e| is_kind(&run.heap, e.error, ErrorKind::Cancelled));
        let compact = run
            .heap
            .task_mut(parent)
            .is_some_and(|p| p.children.finish_one());
        if compact {
            compact_children(&mut run.heap, parent);
        }
        let Some(p) = run.heap.task_mut(parent) else {
            return;
        };
        if let Err(error) = outcome {
            if !observed && !quiet {
                if !p.body_done {
                    p.failed_children.push(task);
                } else if p.error.is_none() {
                    p.error = Some(error);
                    for child in p.children.list.clone() {
                        cancel(&mut run.heap, &mut run.sched, child);
                    }
                }
            }
        }
        match run.heap.task(Value::Obj(parent)) {
            Some(p) if p.body_done => task = parent,
            _ => return,
        }
    }
}

/// Drops the finished children from `parent`'s list of children.
fn compact_children(heap: &mut Heap, parent: ObjRef) {
    let Some(p) = heap.task_mut(parent) else {
        return;
    };
    let mut list = std::mem::take(&mut p.children.list);
    list.retain(|&child| heap.task(Value::Obj(child)).is_some_and(|c| !c.finished()));
    if let Some(p) = heap.task_mut(parent) {
        p.children.list = list;
    }
}

/// Is `error` an `Error` record of kind `kind`?
pub(crate) fn is_kind(heap: &Heap, error: Value, kind: ErrorKind) -> bool {
    match heap.get_value(error) {
        Some(Object::Record { fields, .. }) => fields
            .first()
            .is_some_and(|k| heap.str(*k) == Some(kind.as_str())),
        _ => false,
    }
}

/// No task is ready: the run is done, needs I/O, or is deadlocked. Once a
/// phase, so kept out of [`switch`]'s hot path.
#[inline(never)]
fn idle(run: &mut Run, program: &Program) -> Result<Step, RunError> {
    let main = run.sched.main.and_then(|m| run.heap.task(Value::Obj(m)));
    if let Some(main) = main {
        match main.state {
            TaskState::Done => return Ok(Step::Done(main.result)),
            TaskState::Failed => {
                let error = main.error.clone();
                return Err(match error {
                    Some(error) => {
                        crate::exec::unwind::run_error(run, program, error.error, error.trace)
                    }
                    None => crate::run::internal_error("the main task failed without an error"),
                });
            }
            _ => {}
        }
    }
    if !run.sched.outbox.is_empty() {
        // The next batch starts with room for as many requests as this
        // one, up to `OUTBOX_ROOM`: past that it grows as requests come.
        // Room for a batch of 100 000 requests up front (4.8 MB, which
        // glibc maps afresh from the system every time) made every page
        // of it fault at its first request, a tenth of `io_bench`'s time.
        let capacity = run.sched.outbox.len().min(OUTBOX_ROOM);
        let batch = std::mem::replace(&mut run.sched.outbox, Vec::with_capacity(capacity));
        return Ok(Step::Io(batch));
    }
    if !run.sched.in_flight.is_empty() {
        return Ok(Step::Io(Vec::new()));
    }
    Err(deadlock(run, program))
}

/// How many waiting tasks a deadlock report lists, one line each.
const LISTED_WAITERS: usize = 10;

/// The error of a run whose tasks all wait on each other and that has no
/// I/O in flight. Its message lists each waiting task, in spawn order
/// (depth first from the main task), with where it waits:
///
/// ```text
/// deadlock: every task is blocked:
///   - task 0 waits on a channel at main (flow.spl:9:15)
///   - task 1 waits on a channel at server (flow.spl:5:11)
/// ```
///
/// and its trace is the main task's stack (or, once the main body has
/// ended, that of the first task listed). When a task has failed with an
/// error nobody awaited (the likely reason the others wait forever), the
/// run ends with that error instead, its trace and kind, the deadlock named
/// in its message: `MESSAGE\ntask 1 failed with this error and no task
/// awaited it, then deadlock: every task is blocked:` and the same list.
fn deadlock(run: &mut Run, program: &Program) -> RunError {
    let tasks = tasks_in_spawn_order(run);
    let mut listing = String::new();
    let mut trace = Vec::new();
    let mut listed = 0;
    for &task in &tasks {
        let Some(t) = run.heap.task(Value::Obj(task)) else {
            continue;
        };
        let waits = match t.state {
            TaskState::Blocked => describe(&run.heap, &t.blocked),
            TaskState::Joining => "waits for the tasks it spawned (its body has ended)".to_string(),
            _ => continue,
        };
        let stack = task_stack(t, program);
        if listed < LISTED_WAITERS {
            let at = match stack.first() {
                Some(frame) => format!(
                    " at {} ({}:{}:{})",
                    frame.function, frame.file, frame.line, frame.col
                ),
                None if t.state == TaskState::Blocked => {
                    " (in the call it was spawned with)".to_string()
                }
                None => String::new(),
            };
            listing.push_str(&format!("\n  - task {} {waits}{at}", t.id));
        }
        listed += 1;
        if trace.is_empty() {
            trace = stack;
        }
    }
    if listed > LISTED_WAITERS {
        let more = listed - LISTED_WAITERS;
        listing.push_str(&format!("\n  - and {more} more waiting task(s)"));
    }
    let blocked = format!("deadlock: every task is blocked:{listing}");
    if let Some((id, error)) = unawaited_failure(run, &tasks) {
        let mut failure = crate::exec::unwind::run_error(run, program, error.error, error.trace);
        failure.message = format!(
            "{}\ntask {id} failed with this error and no task awaited it, then {blocked}",
            failure.message
        );
        return failure;
    }
    RunError {
        kind: ErrorKind::Type.as_str().to_string(),
        message: blocked,
        trace,
    }
}

/// Every unfinished task, depth first from the main task, children in
/// spawn order.
fn tasks_in_spawn_order(run: &Run) -> Vec<ObjRef> {
    let mut order = Vec::new();
    let mut stack: Vec<ObjRef> = run.sched.main.into_iter().collect();
    while let Some(task) = stack.pop() {
        let Some(t) = run.heap.task(Value::Obj(task)) else {
            continue;
        };
        stack.extend(t.children.list.iter().rev().copied());
        if !t.finished() {
            order.push(task);
        }
    }
    order
}

/// A parked task's stack, innermost frame first, through the coroutines it
/// is inside.
fn task_stack(task: &Task, program: &Program) -> Vec<crate::exec::error::TraceFrame> {
    let context = task.context.unpacked();
    let mut trace = crate::exec::unwind::stack_trace(&context.fiber, program);
    for resumer in context.resumers.iter().rev() {
        trace.extend(crate::exec::unwind::stack_trace(&resumer.fiber, program));
    }
    trace
}

/// The first error (in the order of `tasks`) that failed a task while no
/// task awaited it: that of a task whose body ended with an error and that
/// waits for its children, or of a failed child its parent has not
/// rethrown yet. A `Cancelled` that a `cancel()` asked for does not count.
/// Returns the failed task's number with the error.
fn unawaited_failure(run: &Run, tasks: &[ObjRef]) -> Option<(u64, TaskError)> {
    let failure = |task: ObjRef| {
        let t = run.heap.task(Value::Obj(task))?;
        let error = t.error.as_ref()?;
        let quiet = t.cancelled && is_kind(&run.heap, error.error, ErrorKind::Cancelled);
        (!quiet).then(|| (t.id, TaskError::clone(error)))
    };
    tasks.iter().find_map(|&task| {
        let t = run.heap.task(Value::Obj(task))?;
        if t.state == TaskState::Joining {
            if let Some(found) = failure(task) {
                return Some(found);
            }
        }
        t.failed_children.iter().find_map(|&child| {
            let observed = run.heap.task(Value::Obj(child)).is_none_or(|c| c.observed);
            if observed {
                None
            } else {
                failure(child)
            }
        })
    })
}

/// What a task waits for, in words (deadlock messages, `spool inspect`).
pub fn describe(heap: &Heap, on: &Blocked) -> String {
    match on {
        Blocked::Nothing => "is suspended".to_string(),
        Blocked::Io(id) => format!("waits for I/O request {}", id.0),
        Blocked::Await(target) => {
            let id = heap.task(Value::Obj(*target)).map_or(0, |t| t.id);
            format!("awaits task {id}")
        }
        Blocked::Chan(_) => "waits on a channel".to_string(),
        Blocked::Mutex(_) => "waits for a mutex".to_string(),
        Blocked::Group(_) => "waits for a group".to_string(),
        Blocked::Flight(key) => format!("waits for singleflight {key:?}"),
        Blocked::Select { cases, .. } => crate::tasks::select::describe(heap, cases),
    }
}

/// The outcome of `await` on a task.
pub(crate) enum Awaited {
    /// It had finished with this result.
    Value(Value),
    /// It had failed with this error, rethrown by the `await`.
    Raise(TaskError),
    /// It has not finished: the current task is now blocked on it.
    Blocked,
}

/// `await target` by the current task.
pub(crate) fn await_task(run: &mut Run, target: Value) -> Result<Awaited, VmError> {
    check_cancel(&mut run.heap, &run.sched)?;
    let obj = awaitable(&run.heap, &run.sched, target)?;
    let current = run.sched.current;
    let Some(t) = run.heap.task_mut(obj) else {
        return Err(expected("a task"));
    };
    match t.state {
        TaskState::Done => Ok(Awaited::Value(t.result)),
        TaskState::Failed => {
            t.observed = true;
            let error = t.error.clone();
            Ok(error.map_or(Awaited::Value(Value::Nil), |e| Awaited::Raise(*e)))
        }
        _ => {
            if let Some(current) = current {
                t.waiters.push(current);
                if let Some(c) = run.heap.task_mut(current) {
                    c.state = TaskState::Blocked;
                    c.blocked = Blocked::Await(obj);
                }
            }
            Ok(Awaited::Blocked)
        }
    }
}

/// The task `target` names, if the current task may await it: not
/// itself, nor a task it descends from (which waits for its children).
pub(crate) fn awaitable(heap: &Heap, sched: &Sched, target: Value) -> Result<ObjRef, VmError> {
    let Some(obj) = target.as_obj().filter(|_| heap.task(target).is_some()) else {
        return Err(expected("a task"));
    };
    let current = sched.current;
    let mut ancestor = current;
    while let Some(task) = ancestor {
        if task == obj {
            let message = if Some(obj) == current {
                "a task cannot await itself"
            } else {
                "a task cannot await a task that spawned it (which waits for its children)"
            };
            return Err(VmError::new(ErrorKind::Type, message));
        }
        ancestor = heap.task(Value::Obj(task)).and_then(|t| t.parent);
    }
    Ok(obj)
}

/// A `yield` outside any coroutine in a spawned task.
pub(crate) fn yield_outside_main(run: &Run) -> Option<VmError> {
    (run.sched.current != run.sched.main).then(|| {
        VmError::new(
            ErrorKind::Type,
            "yield outside a coroutine in a spawned task (only the main program yields to the output)",
        )
    })
}

/// The scheduler's state: which task runs, which are ready, and the I/O
/// requests between the run and its host.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Sched {
    /// The main program's task.
    pub main: Option<ObjRef>,
    /// The task whose fibers are active; `None` between tasks.
    pub current: Option<ObjRef>,
    /// Tasks ready to run, in the order they run.
    pub ready: VecDeque<ObjRef>,
    /// The id the next spawned task gets.
    pub next_task: u64,
    /// The id the next I/O request gets.
    pub next_io: u64,
    /// Requests issued in this CPU phase, not yet handed to the host.
    pub outbox: Vec<IoRequest>,
    /// Every request not yet completed, by id, with the task waiting for
    /// it (those in the outbox included).
    pub in_flight: IoTable,
    /// `singleflight` calls in progress, by key.
    pub flights: BTreeMap<String, Flight>,
    /// Tasks not finished yet (the main program's included).
    pub live: usize,
    /// The program's `Error` struct, for the records of errors raised
    /// between tasks.
    pub error_struct: StructIdx,
    /// Argument lists of completed requests, newest last, kept so that a
    /// later request with as many arguments refills one in place instead
    /// of allocating, once the host has dropped its copy (see
    /// `tasks::io::args_data`). At most [`SPARE_ARGS`]; not saved.
    #[serde(skip)]
    pub(crate) spare_args: Vec<std::sync::Arc<[crate::tasks::io::Data]>>,
    /// Stacks of task bodies that have ended, for the tasks started
    /// next; not saved.
    #[serde(skip)]
    pub(crate) spare: SpareStacks,
}

/// The most argument lists [`Sched::spare_args`] keeps.
pub(crate) const SPARE_ARGS: usize = 1 << 17;

impl Sched {
    /// Calls `visit` on every value the scheduler holds.
    pub fn for_each_value(&self, mut visit: impl FnMut(Value)) {
        let tasks = self.main.iter().chain(&self.current).chain(&self.ready);
        tasks.for_each(|&t| visit(Value::Obj(t)));
        self.in_flight
            .values()
            .for_each(|f| visit(Value::Obj(f.task)));
        for flight in self.flights.values() {
            flight.waiters.iter().for_each(|&t| visit(Value::Obj(t)));
        }
    }
}
