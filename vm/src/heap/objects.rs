//! The data of heap objects that belong to execution and tasks:
//! coroutines and the fibers waiting on them, tasks, channels, mutexes,
//! wait and error groups, and `singleflight` calls in progress. Plain data
//! with the few methods that read or update it; what happens when they
//! run, block, wake or finish lives in `exec/coro.rs` and `tasks/sched.rs`.
//! Keeping the data here lets the heap hold these objects without
//! depending on the code that drives them.
//!
//! A task that is not running keeps its fibers (its own and those of the
//! coroutines it is inside) in its heap object; the running task's are the
//! run's active fiber and resumers.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::exec::error::TraceFrame;
use crate::exec::fiber::Fiber;
use crate::heap::value::{IoId, ObjRef, Reg, Value};

/// A coroutine: a zero-argument function run on a fiber of its own, paused
/// at each `yield` until its resumer calls `next()` again.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Coroutine {
    /// The body: a zero-argument function value (script function, closure
    /// or native).
    pub func: Value,
    /// The body's frames and registers while it is suspended. Empty before
    /// it starts, while it runs (the run holds the fiber then) and after it
    /// has finished.
    pub fiber: Fiber,
    /// Where the coroutine is in its life.
    pub status: CoroStatus,
    /// The value it yielded last; `None` until its first `yield`.
    pub last: Option<Value>,
    /// What its pending `yield` evaluates to on the next `next()`; reset to
    /// nil once delivered.
    pub sent: Value,
    /// `stop()` was called: the pending (or next) `yield` raises `Stopped`.
    pub stop_requested: bool,
    /// The type its yields must have, as Spool writes it (`int`, `[str]`,
    /// `Point?`), when the compiler knew it: a `yield` the checker could not
    /// see is checked against it at run time.
    #[serde(default)]
    pub yield_type: Option<crate::program::TypeDesc>,
}

/// Where a coroutine is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoroStatus {
    /// Not started yet, or paused at a `yield`.
    Suspended,
    /// Its fiber is the active one or one of the resumers'.
    Running,
    /// Its body returned, or it was stopped.
    Done,
    /// An error escaped its body.
    Failed,
}

/// A fiber waiting for the coroutine it resumed to yield, return or fail.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Resumer {
    /// The coroutine it resumed (the one running above it).
    pub coro: ObjRef,
    /// Its register (relative to its top frame) that receives `next()`'s
    /// result: `true` on a yield, `false` once the body has finished.
    pub dst: Reg,
    /// Its frames and registers; its top frame's pc is just past the
    /// `CoroNext`.
    pub fiber: Fiber,
}

impl Coroutine {
    /// A coroutine that will run `func`, not started yet.
    pub fn new(func: Value) -> Coroutine {
        Coroutine {
            func,
            fiber: Fiber::default(),
            status: CoroStatus::Suspended,
            last: None,
            sent: Value::Nil,
            stop_requested: false,
            yield_type: None,
        }
    }

    /// Has the body started running (and not yet finished)?
    pub fn started(&self) -> bool {
        self.status == CoroStatus::Running || !self.fiber.frames.is_empty()
    }

    /// Asks the coroutine to stop: a suspended one raises `Stopped` at its
    /// pending `yield` when next resumed; one that never started is done at
    /// once; a running one raises `Stopped` at its next `yield`.
    pub fn stop(&mut self) {
        match self.status {
            CoroStatus::Done | CoroStatus::Failed => {}
            CoroStatus::Suspended if !self.started() => {
                self.stop_requested = true;
                self.status = CoroStatus::Done;
            }
            CoroStatus::Suspended | CoroStatus::Running => self.stop_requested = true,
        }
    }

    /// Calls `visit` on every value the coroutine holds.
    pub fn for_each_value(&self, mut visit: impl FnMut(Value)) {
        visit(self.func);
        if let Some(last) = self.last {
            visit(last);
        }
        visit(self.sent);
        self.fiber.for_each_value(visit);
    }
}

impl CoroStatus {
    /// The status as `c.status()` and printing show it.
    pub fn as_str(self) -> &'static str {
        match self {
            CoroStatus::Suspended => "suspended",
            CoroStatus::Running => "running",
            CoroStatus::Done => "done",
            CoroStatus::Failed => "failed",
        }
    }
}

/// One task: a call running concurrently with the others, cooperatively.
///
/// Laid out in declaration order (`repr(C)`), what the scheduler touches
/// at every wake, switch and `await` first (state, wake, what it is
/// blocked on, its result, then the context's registers and frames, in
/// 152 bytes): a run with many tasks misses the cache once for each line
/// of a task it reads, and this keeps them to two or three.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[repr(C)]
pub struct Task {
    /// Where it is in its life.
    pub state: TaskState,
    /// `cancel()` was called and `Cancelled` is not delivered yet.
    pub cancel_pending: bool,
    /// `cancel()` was called at some point: its `Cancelled` error is
    /// expected, not an error its parent rethrows.
    pub cancelled: bool,
    /// Its body has returned or failed.
    pub body_done: bool,
    /// An `await` (or an error group) has seen its error.
    pub observed: bool,
    /// The register (absolute, in its active fiber) that receives the
    /// result of the operation it is blocked in.
    pub wake_dst: u32,
    /// What it receives when it runs next.
    pub wake: Wake,
    /// What it is blocked on, while [`TaskState::Blocked`].
    pub blocked: Blocked,
    /// What its body returned.
    pub result: Value,
    /// The number `<task N>` shows; the main program is task 0.
    pub id: u64,
    /// Its fibers while it is not running.
    pub context: Context,
    /// The call to make when it first runs: the function and its arguments.
    /// Held inline (it serializes as a boxed pair would): spawning
    /// allocates one block less.
    pub start: Option<(Value, Vec<Value>)>,
    /// The task that spawned it; `None` for the main program.
    pub parent: Option<ObjRef>,
    /// Its children, in spawn order.
    pub children: Children,
    /// Children that failed while nobody awaited them, in failure order;
    /// the first still unobserved when the body ends is rethrown.
    pub failed_children: Vec<ObjRef>,
    /// Why it failed: its body's error, or a child's it rethrows.
    pub error: Option<Box<TaskError>>,
    /// Tasks blocked in `await` on it.
    pub waiters: Vec<ObjRef>,
}

/// A task's fibers while it is not the running task.
///
/// A parked task of a restored run keeps its context as it was saved
/// ([`Context::is_packed`]) until it runs: restoring a run with many
/// waiting tasks then decodes none of their stacks (it checks each one in
/// a scratch fiber), and saving it again copies their bytes. Its `fiber`
/// and `resumers` are empty meanwhile: read them through
/// [`Context::unpacked`], or [`Context::unpack`] it first. Serialized by
/// `saved/wire.rs`.
///
/// Laid out in declaration order (`repr(C)`): a switch reads `packed` and
/// moves the registers and frames, which then share a cache line.
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct Context {
    /// The saved encoding, while the context is packed (boxed: a task
    /// object stays as small as it was without it).
    pub(crate) packed: Option<Box<Packed>>,
    /// The fiber that was active: the task's own, or that of the coroutine
    /// it was running.
    pub fiber: Fiber,
    /// The fibers waiting on the coroutines it runs, outermost first.
    pub resumers: Vec<Resumer>,
}

/// A context in its saved encoding: the byte string of its one fiber
/// (`saved/wire.rs`; a context with unwinds or resumers is never packed).
#[derive(Clone, Debug)]
pub(crate) struct Packed {
    /// The fiber's byte string.
    pub(crate) bytes: Box<[u8]>,
    /// The heap objects the fiber refers to, recorded when the restored
    /// run is validated (the collector marks them); until then they are
    /// found by decoding.
    pub(crate) refs: OnceLock<Box<[ObjRef]>>,
}

impl Context {
    /// Empties it, keeping the vectors' room.
    #[inline]
    pub fn clear(&mut self) {
        self.fiber.clear();
        self.resumers.clear();
        self.packed = None;
    }

    /// Is it still in its saved encoding (a restored task that has not run)?
    pub fn is_packed(&self) -> bool {
        self.packed.is_some()
    }

    /// Decodes a packed context into its fiber; nothing for one that is
    /// not packed (inlined: every switch to a task asks). Fails only for
    /// bytes that a validated run never holds.
    #[inline]
    pub fn unpack(&mut self) -> Result<(), String> {
        if self.packed.is_some() {
            self.decode_packed()
        } else {
            Ok(())
        }
    }

    /// [`Context::unpack`] of a packed context.
    #[cold]
    #[inline(never)]
    fn decode_packed(&mut self) -> Result<(), String> {
        if let Some(packed) = self.packed.take() {
            self.resumers.clear();
            crate::saved::wire::decode_into(&packed.bytes, &mut self.fiber)
                .ok_or_else(|| "a saved task's stack does not decode".to_string())?;
        }
        Ok(())
    }

    /// The context with its fibers readable: itself, or a decoded copy
    /// when it is packed (empty if the bytes do not decode).
    pub fn unpacked(&self) -> Cow<'_, Context> {
        match &self.packed {
            None => Cow::Borrowed(self),
            Some(packed) => Cow::Owned(Context {
                fiber: crate::saved::wire::decode(&packed.bytes).unwrap_or_default(),
                ..Context::default()
            }),
        }
    }

    /// Calls `visit` on every value its fibers hold (of a packed context,
    /// every heap reference).
    pub fn for_each_value(&self, mut visit: impl FnMut(Value)) {
        match &self.packed {
            None => {
                self.fiber.for_each_value(&mut visit);
                for resumer in &self.resumers {
                    visit(Value::Obj(resumer.coro));
                    resumer.fiber.for_each_value(&mut visit);
                }
            }
            Some(packed) => match packed.refs.get() {
                Some(refs) => refs.iter().for_each(|&obj| visit(Value::Obj(obj))),
                None => self.unpacked().for_each_value(visit),
            },
        }
    }

    /// A rough size of its fibers in bytes.
    pub(crate) fn weight(&self) -> usize {
        match &self.packed {
            None => self.fiber.registers.len() * 16,
            Some(packed) => packed.bytes.len(),
        }
    }

    /// Exchanges the contents of the two contexts (a task's switch). The
    /// registers and frames always move; the vectors a switch rarely finds
    /// in use (handlers, defers, unwinds, resumers) only when either side
    /// has some, which moves far fewer bytes than swapping whole contexts.
    #[inline]
    pub fn exchange(&mut self, other: &mut Context) {
        let (mine, theirs) = (&mut self.fiber, &mut other.fiber);
        std::mem::swap(&mut mine.registers, &mut theirs.registers);
        std::mem::swap(&mut mine.frames, &mut theirs.frames);
        swap_if_used(&mut mine.handlers, &mut theirs.handlers);
        swap_if_used(&mut mine.defers, &mut theirs.defers);
        swap_if_used(&mut mine.unwinds, &mut theirs.unwinds);
        swap_if_used(&mut self.resumers, &mut other.resumers);
    }
}

/// Swaps two vectors unless both are empty (when only their spare room
/// would change hands).
#[inline]
fn swap_if_used<T>(a: &mut Vec<T>, b: &mut Vec<T>) {
    if !(a.is_empty() && b.is_empty()) {
        std::mem::swap(a, b);
    }
}

/// Where a task is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskState {
    /// In the ready queue (not started, or woken).
    #[default]
    Ready,
    /// Its fibers are the run's active ones.
    Running,
    /// Suspended until something wakes it.
    Blocked,
    /// Its body has ended; it waits for its children.
    Joining,
    /// Finished with a result.
    Done,
    /// Finished with an error.
    Failed,
}

/// What a blocked task waits for.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub enum Blocked {
    /// Nothing (it is not blocked).
    #[default]
    Nothing,
    /// The result of an I/O request.
    Io(IoId),
    /// Another task to finish.
    Await(ObjRef),
    /// A channel: to receive, or to send.
    Chan(ObjRef),
    /// A mutex.
    Mutex(ObjRef),
    /// A wait group or an error group to reach zero.
    Group(ObjRef),
    /// A `singleflight` call of this key to finish (boxed, as `Select`'s
    /// cases are).
    Flight(Box<String>),
    /// The first of several cases of a `select` (LANGUAGE.md §10), in
    /// source order; see `tasks/select.rs`.
    Select {
        /// The cases it waits on (boxed: every task holds a `Blocked`,
        /// which stays 16 bytes).
        cases: Box<Vec<SelectCase>>,
        /// What it receives when one of them proceeds.
        mode: SelectMode,
    },
}

/// One case of a `select` a task waits on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum SelectCase {
    /// `v = ch.recv()`: the task is among the channel's receivers.
    Recv(ObjRef),
    /// `ch.send(v)`: the task is among the channel's senders with `v`.
    Send(ObjRef, Value),
    /// `v = await t`: the task is among `t`'s waiters.
    Await(ObjRef),
    /// `after(ms)`: the host's `sleep` request with this id is in flight.
    After(IoId),
}

/// What a task waiting in a `select` receives when a case proceeds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectMode {
    /// A two-item list: the case's index and its value; an error of an
    /// awaited task is raised (the `select` statement).
    Pair,
    /// The case's index alone; an awaited task's error is left for a later
    /// `await` (the library's `race` and `timeout`).
    Index,
}

/// What a task receives when it next runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub enum Wake {
    /// Nothing: it continues where it stopped.
    #[default]
    Nothing,
    /// The result of the operation it was blocked in, for
    /// [`Task::wake_dst`].
    Value(Value),
    /// An error raised at the operation it was blocked in (boxed: rare,
    /// and a task object is smaller for it).
    Raise(Box<TaskError>),
}

/// An error in flight between tasks: the `Error` record and the stack
/// where it was first raised (innermost first).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TaskError {
    /// The `Error` record.
    pub error: Value,
    /// Where it was raised.
    pub trace: Vec<TraceFrame>,
}

impl Task {
    /// Is it finished, with a result or an error?
    pub fn finished(&self) -> bool {
        matches!(self.state, TaskState::Done | TaskState::Failed)
    }

    /// Calls `visit` on every value it holds.
    pub fn for_each_value(&self, mut visit: impl FnMut(Value)) {
        if let Some(parent) = self.parent {
            visit(Value::Obj(parent));
        }
        for tasks in [&self.children.list, &self.failed_children, &self.waiters] {
            for &task in tasks {
                visit(Value::Obj(task));
            }
        }
        self.context.for_each_value(&mut visit);
        if let Some((func, args)) = &self.start {
            visit(*func);
            for &arg in args {
                visit(arg);
            }
        }
        match &self.blocked {
            Blocked::Await(obj)
            | Blocked::Chan(obj)
            | Blocked::Mutex(obj)
            | Blocked::Group(obj) => visit(Value::Obj(*obj)),
            Blocked::Select { cases, .. } => {
                for case in cases.iter() {
                    match case {
                        SelectCase::Recv(obj) | SelectCase::Await(obj) => visit(Value::Obj(*obj)),
                        SelectCase::Send(obj, value) => {
                            visit(Value::Obj(*obj));
                            visit(*value);
                        }
                        SelectCase::After(_) => {}
                    }
                }
            }
            Blocked::Nothing | Blocked::Io(_) | Blocked::Flight(_) => {}
        }
        match &self.wake {
            Wake::Nothing => {}
            Wake::Value(value) => visit(*value),
            Wake::Raise(error) => visit(error.error),
        }
        visit(self.result);
        if let Some(error) = &self.error {
            visit(error.error);
        }
    }
}

/// A task's children: every child spawned, in order, and how many have
/// not finished. Finished children are dropped from the list in bulk once
/// they are the majority, so both spawning and finishing are O(1)
/// amortized; code that walks the list skips finished tasks.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Children {
    /// The children, in spawn order; some may have finished.
    pub list: Vec<ObjRef>,
    /// How many of them have not finished.
    pub live: usize,
}

impl Children {
    /// Has every child finished?
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Records a new child.
    pub fn push(&mut self, task: ObjRef) {
        self.list.push(task);
        self.live = self.live.saturating_add(1);
    }

    /// Counts a child as finished; true when the list should be compacted:
    /// when it is 8 times longer than the live children, so that each
    /// child (a cache miss on its task) is read about once by compactions.
    pub fn finish_one(&mut self) -> bool {
        self.live = self.live.saturating_sub(1);
        self.list.len() > 8 * self.live + 16
    }
}

/// A channel (`Chan<T>`).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Chan {
    /// How many values it buffers; 0 hands each value from sender to
    /// receiver directly.
    pub capacity: usize,
    /// Buffered values, oldest first.
    pub buffer: VecDeque<Value>,
    /// `close()` was called.
    pub closed: bool,
    /// Tasks blocked in `recv`, first come first.
    pub receivers: VecDeque<ObjRef>,
    /// Tasks blocked in `send`, with their values, first come first.
    pub senders: VecDeque<(ObjRef, Value)>,
}

/// A mutex.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Mutex {
    /// Is it held?
    pub locked: bool,
    /// Tasks blocked in `lock`, first come first; `unlock` hands the lock
    /// to the first.
    pub waiters: VecDeque<ObjRef>,
}

/// A wait group, or an error group (which also records the first error of
/// its tasks and cancels the others).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Group {
    /// Is this an `ErrGroup`?
    pub errgroup: bool,
    /// The counter: `add`ed work not yet `done`.
    pub count: i64,
    /// The tasks an error group started, to cancel on the first error.
    pub tasks: Vec<ObjRef>,
    /// The first error of an error group's tasks.
    pub first_error: Option<Value>,
    /// Tasks blocked in `wait`.
    pub waiters: Vec<ObjRef>,
}

impl Chan {
    /// Calls `visit` on every value it holds.
    pub fn for_each_value(&self, mut visit: impl FnMut(Value)) {
        self.buffer.iter().copied().for_each(&mut visit);
        self.receivers.iter().for_each(|&t| visit(Value::Obj(t)));
        for &(task, value) in &self.senders {
            visit(Value::Obj(task));
            visit(value);
        }
    }
}

impl Group {
    /// Calls `visit` on every value it holds.
    pub fn for_each_value(&self, mut visit: impl FnMut(Value)) {
        self.tasks
            .iter()
            .chain(&self.waiters)
            .for_each(|&t| visit(Value::Obj(t)));
        if let Some(error) = self.first_error {
            visit(error);
        }
    }
}

/// A `singleflight` call in progress.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Flight {
    /// The tasks waiting for its result.
    pub waiters: Vec<ObjRef>,
}
