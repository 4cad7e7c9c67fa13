//! Tasks and the objects they synchronize through (LANGUAGE.md §5): the
//! heap objects behind `Task<T>`, `Chan<T>`, `Mutex`, `WaitGroup` and
//! `ErrGroup`, and the scheduler's queues.
//!
//! Everything here is plain data in the run's heap or in [`Sched`], so a run
//! with a thousand blocked tasks serializes like any other. A task that is
//! not running keeps its fibers (its own and those of the coroutines it is
//! inside) in its heap object; the running task's are the run's active
//! fiber and resumers. The rules of waking, cancelling and finishing live in
//! `sched.rs`.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::coro::Resumer;
use crate::error::TraceFrame;
use crate::fiber::Fiber;
use crate::io::{IoId, IoRequest};
use crate::value::{NativeIdx, ObjRef, StructIdx, Value};

/// One task: a call running concurrently with the others, cooperatively.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Task {
    /// The number `<task N>` shows; the main program is task 0.
    pub id: u64,
    /// The task that spawned it; `None` for the main program.
    pub parent: Option<ObjRef>,
    /// Its children, in spawn order.
    pub children: Children,
    /// Children that failed while nobody awaited them, in failure order;
    /// the first still unobserved when the body ends is rethrown.
    pub failed_children: Vec<ObjRef>,
    /// Its fibers while it is not running.
    pub context: Context,
    /// The call to make when it first runs: the function and its arguments.
    pub start: Option<Box<(Value, Vec<Value>)>>,
    /// Where it is in its life.
    pub state: TaskState,
    /// What it is blocked on, while [`TaskState::Blocked`].
    pub blocked: Blocked,
    /// What it receives when it runs next.
    pub wake: Wake,
    /// The register (absolute, in its active fiber) that receives the
    /// result of the operation it is blocked in.
    pub wake_dst: u32,
    /// `cancel()` was called and `Cancelled` is not delivered yet.
    pub cancel_pending: bool,
    /// `cancel()` was called at some point: its `Cancelled` error is
    /// expected, not an error its parent rethrows.
    pub cancelled: bool,
    /// Its body has returned or failed.
    pub body_done: bool,
    /// What its body returned.
    pub result: Value,
    /// Why it failed: its body's error, or a child's it rethrows.
    pub error: Option<TaskError>,
    /// An `await` (or an error group) has seen its error.
    pub observed: bool,
    /// Tasks blocked in `await` on it.
    pub waiters: Vec<ObjRef>,
}

/// A task's fibers while it is not the running task.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Context {
    /// The fiber that was active: the task's own, or that of the coroutine
    /// it was running.
    pub fiber: Fiber,
    /// The fibers waiting on the coroutines it runs, outermost first.
    pub resumers: Vec<Resumer>,
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
    /// A `singleflight` call of this key to finish.
    Flight(String),
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
    /// An error raised at the operation it was blocked in.
    Raise(TaskError),
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
        let tasks = self.parent.iter().chain(&self.children.list);
        tasks
            .chain(&self.failed_children)
            .chain(&self.waiters)
            .for_each(|&t| visit(Value::Obj(t)));
        self.context.fiber.for_each_value(&mut visit);
        for resumer in &self.context.resumers {
            visit(Value::Obj(resumer.coro));
            resumer.fiber.for_each_value(&mut visit);
        }
        if let Some(start) = &self.start {
            let (func, args) = &**start;
            visit(*func);
            args.iter().copied().for_each(&mut visit);
        }
        match &self.blocked {
            Blocked::Await(obj)
            | Blocked::Chan(obj)
            | Blocked::Mutex(obj)
            | Blocked::Group(obj) => visit(Value::Obj(*obj)),
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

    /// Counts a child as finished; true when the list should be compacted.
    pub fn finish_one(&mut self) -> bool {
        self.live = self.live.saturating_sub(1);
        self.list.len() > 2 * self.live + 16
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

/// An I/O request not yet completed.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct InFlight {
    /// The task waiting for it.
    pub task: ObjRef,
    /// The I/O operation it calls.
    pub native: NativeIdx,
    /// The request as the host got it.
    pub request: IoRequest,
}

/// The I/O requests not yet completed, by id. Ids are issued in increasing
/// order, so the table is a window of slots from the oldest outstanding id
/// on: inserting and removing are O(1), and iteration is in id order.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct IoTable {
    /// The id of `slots[0]`.
    base: u64,
    /// One slot per id from `base` on; `None` once completed.
    slots: VecDeque<Option<InFlight>>,
    /// Number of `Some` slots.
    len: usize,
}

impl IoTable {
    /// Records request `id`, which must be newer than every id recorded.
    pub fn insert(&mut self, id: IoId, in_flight: InFlight) {
        if self.slots.is_empty() {
            self.base = id.0;
        }
        let Some(offset) = id.0.checked_sub(self.base) else {
            return;
        };
        let offset = offset as usize;
        if offset == self.slots.len() {
            self.slots.push_back(None);
        } else if offset > self.slots.len() {
            self.slots.resize_with(offset + 1, || None);
        }
        if self.slots[offset].replace(in_flight).is_none() {
            self.len += 1;
        }
    }

    /// Removes and returns request `id`.
    pub fn remove(&mut self, id: &IoId) -> Option<InFlight> {
        let offset = usize::try_from(id.0.checked_sub(self.base)?).ok()?;
        let removed = self.slots.get_mut(offset)?.take()?;
        self.len = self.len.saturating_sub(1);
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(removed)
    }

    /// Request `id`, if outstanding.
    pub fn get(&self, id: &IoId) -> Option<&InFlight> {
        let offset = usize::try_from(id.0.checked_sub(self.base)?).ok()?;
        self.slots.get(offset)?.as_ref()
    }

    /// Is the bookkeeping consistent (after loading untrusted bytes), for
    /// a scheduler whose next request gets `next_id`? Requests are
    /// recorded as they are issued, so the window ends at `next_id`: a
    /// gap would make the next [`IoTable::insert`] fill it with empty
    /// slots.
    pub fn is_consistent(&self, next_id: u64) -> bool {
        let end = self.base.checked_add(self.slots.len() as u64);
        let ids_fit = end.is_some() && (self.slots.is_empty() || end == Some(next_id));
        let entries = self.slots.iter().enumerate().all(|(offset, slot)| {
            slot.as_ref()
                .is_none_or(|f| f.request.id.0 == self.base + offset as u64)
        });
        ids_fit && entries && self.values().count() == self.len
    }

    /// Number of outstanding requests.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Is nothing outstanding?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The outstanding requests, oldest first.
    pub fn values(&self) -> impl Iterator<Item = &InFlight> {
        self.slots.iter().flatten()
    }

    /// The outstanding requests, oldest first, mutably (their ids must
    /// stay as they are).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut InFlight> {
        self.slots.iter_mut().flatten()
    }
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
}

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
