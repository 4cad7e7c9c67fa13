//! The state of one run of a program, as plain data.
//!
//! A [`Run`] holds everything an execution needs between two instructions:
//! the program, the heap, the globals, the active fiber (frames and
//! registers) and the fibers waiting on the coroutines they resumed, the
//! random-number state and the limits. Architecture invariant: nothing in it
//! is a pointer, an `Rc` or a host closure, except the bound native function
//! pointers, which serde skips and [`Run::bind_natives`] restores; a paused
//! run therefore round-trips through postcard and continues where it stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::exec::coro;
use crate::exec::error::{ErrorKind, RunError, VmError};
pub use crate::exec::fiber::{DeferEntry, Fiber, Frame, Handler, Unwind};
use crate::exec::native::{Native, NativeSet, Output};
use crate::heap::format;
use crate::heap::objects::{Context, CoroStatus, Resumer};
use crate::heap::value::{FuncIdx, ObjRef, Value};
use crate::heap::{Heap, Object};
use crate::program::{Constant, Program};
use crate::tasks::io::{InFlight, IoId, IoRequest, IoResult};
use crate::tasks::sched::Sched;

/// The seed of every run's random-number state until the host reseeds it
/// ([`Run::seed`]). A fixed seed keeps runs reproducible.
const RNG_SEED: u64 = 0x853c_49e6_748f_ea9b;

/// The state of one execution of a program.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Run {
    /// The program being run. Shared, because a store may keep many runs of
    /// one program, and replaced (by an extension of itself) by
    /// [`Run::call_main`].
    pub(crate) program: Arc<Program>,
    /// Every object the run has allocated.
    pub(crate) heap: Heap,
    /// The top-level `let`s, indexed by `GlobalIdx`; `nil` until assigned.
    pub(crate) globals: Vec<Value>,
    /// Each entry of `program.constants` as a value. Strings are allocated
    /// once when the run starts and are GC roots for its whole life.
    pub(crate) const_values: Vec<Value>,
    /// The running task's fibers: the active one (the main script's, or
    /// that of the coroutine running now, the one the last resumer
    /// resumed) and the fibers that resumed a running coroutine, outermost
    /// (the main fiber) first, empty while the main fiber is active. A task
    /// that is not running keeps the same pair in its heap object.
    /// Decoded whole when the run is (never left packed).
    #[serde(deserialize_with = "crate::saved::wire::unpacked_context")]
    pub(crate) context: Context,
    /// The main fiber is paused at a top-level `yield`, whose destination
    /// register holds the host's answer ([`Run::send`]; nil until sent).
    /// Cleared by the next [`Run::resume`].
    pub(crate) host_yield: bool,
    /// The random-number state natives draw from.
    pub(crate) rng: u64,
    /// The tasks' scheduler: the running task, the ready queue, the I/O
    /// requests in flight.
    pub(crate) sched: Sched,
    /// The script's command-line arguments.
    pub(crate) args: Vec<String>,
    /// Resource limits: the host's policy, never read from a saved run (a
    /// restored run starts with the defaults).
    #[serde(skip)]
    pub(crate) limits: Limits,
    /// What the last [`Run::resume`] left of its instruction budget (with
    /// a budget set): a host counting instructions across resumes adds up
    /// `budget - budget_left`.
    #[serde(skip)]
    pub(crate) budget_left: u64,
    /// Set by an [`Interrupt`] handle to stop the run; not saved.
    #[serde(skip)]
    pub(crate) interrupt: Option<Arc<AtomicBool>>,
    /// Notes the host keeps with the run (its own settings, say), saved
    /// and restored with it; the VM never reads them.
    #[serde(default)]
    pub(crate) host_notes: std::collections::BTreeMap<String, String>,
    /// When requests in flight are due, in milliseconds since the Unix
    /// epoch, as the host set them ([`Run::set_io_deadline`]): a `sleep`
    /// resumed in another process waits only for what remains. Entries of
    /// requests no longer in flight are dropped as deadlines are set.
    #[serde(default)]
    pub(crate) io_deadlines: std::collections::BTreeMap<IoId, i64>,
    /// Whether the run can continue, and its outcome once it cannot.
    pub(crate) status: Status,
    /// The status `exit(code)` asked for: set by the first `exit`, while
    /// the run unwinds (every task cancelled, defers running) and after it
    /// ended. Neither the exit nor the cancellations it caused are caught
    /// by `try` while it is set. Cleared when [`Run::call_main`] starts a
    /// new main function.
    pub(crate) exit: Option<i64>,
    /// `program.natives[i]` bound to a Rust function. Not serialized: a
    /// deserialized run has none until [`Run::bind_natives`].
    #[serde(skip)]
    pub(crate) natives: Vec<Native>,
    /// The set the natives were bound from, kept so that [`Run::call_main`]
    /// can bind natives an extended program appends.
    #[serde(skip)]
    pub(crate) native_set: NativeSet,
    /// The name of each native that is a host I/O operation, shared by its
    /// requests; rebuilt when natives are bound.
    #[serde(skip)]
    pub(crate) io_ops: Vec<Option<Arc<str>>>,
    /// Has `program` passed [`crate::saved::validate::check_program`]? The
    /// interpreter reads registers without bounds checks on the strength
    /// of it (`exec::interp`), so it checks once before the first
    /// instruction of every program it is given. Not saved; cleared
    /// whenever `program` is replaced.
    #[serde(skip)]
    pub(crate) program_checked: bool,
    /// Each of `program.constants` prepared as a divisor, for `DivIntConst`
    /// and `RemIntConst` (`exec::divisor`). Not saved; rebuilt with the
    /// check of `program_checked`.
    #[serde(skip)]
    pub(crate) divisors: Vec<crate::exec::divisor::Divisor>,
    /// The roots of the last collection (emptied): kept so that a
    /// collection allocates nothing (see `Heap`'s `marks`). Not saved.
    #[serde(skip)]
    pub(crate) root_buffer: Vec<Value>,
}

/// What a run that called `exit(code)` ends with, once its tasks have
/// finished: [`Step::Done`] with `nil` for status 0, else a [`RunError`] of
/// kind `Exit`.
fn exit_outcome(code: i64) -> Result<Step, RunError> {
    if code == 0 {
        return Ok(Step::Done(Value::Nil));
    }
    Err(RunError {
        kind: ErrorKind::Exit.as_str().to_string(),
        message: format!("exit({code})"),
        trace: Vec::new(),
    })
}

/// Cancels every task of the run, from the main task down its children,
/// as `t.cancel()` does, except `except` (the task calling `exit`, which
/// unwinds with its own error). The standard library's `exit` calls it.
pub fn cancel_tasks(
    heap: &mut Heap,
    sched: &mut Sched,
    except: Option<crate::heap::value::ObjRef>,
) {
    let mut tasks: Vec<crate::heap::value::ObjRef> = sched.main.into_iter().collect();
    let mut seen = 0;
    while seen < tasks.len() {
        let children = heap
            .task(Value::Obj(tasks[seen]))
            .map(|t| t.children.list.clone())
            .unwrap_or_default();
        tasks.extend(children);
        seen += 1;
    }
    for &task in tasks.iter().rev() {
        if Some(task) != except {
            crate::tasks::sched::cancel(heap, sched, task);
        }
    }
}

/// The default heap limit: 2 GiB.
pub const DEFAULT_MAX_HEAP_BYTES: usize = 2 << 30;

/// Resource limits of a run: the host's policy. They are not part of a
/// saved run: a restored run has the default limits until its host sets
/// its own ([`Run::set_limits`]).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most frames the fiber may hold; a call beyond it raises `Limit`.
    pub max_call_depth: usize,
    /// Most bytes the heap may use (approximately: objects, their
    /// contents, and the register files of frames); an allocation or a
    /// call that would pass it (after a collection) raises `Limit`, before
    /// the memory is taken. 0: no limit.
    pub max_heap_bytes: usize,
    /// Instructions each [`Run::resume`] call may execute before returning
    /// [`Step::Paused`]; `None` is unlimited. `Some(0)` acts as `Some(1)`.
    pub budget: Option<u64>,
    /// Most tasks alive at once (the main program's included); a `spawn`
    /// beyond it raises `Limit`.
    pub max_tasks: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_call_depth: 200_000,
            max_heap_bytes: DEFAULT_MAX_HEAP_BYTES,
            budget: None,
            max_tasks: 1_000_000,
        }
    }
}

/// Why [`Run::resume`] returned normally.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The main function returned this value. Every later `resume` returns it
    /// again.
    Done(Value),
    /// The instruction budget is spent; `resume` continues exactly here.
    Paused,
    /// The main program executed a `yield` of this value outside any
    /// coroutine. The host may answer with [`Run::send`] (the `yield`
    /// evaluates to nil otherwise) and calls `resume` to continue.
    Yield(Value),
    /// No task can run until the host completes I/O: these are the
    /// requests issued since the last `Io` step (one batch; possibly empty
    /// when only earlier requests are outstanding). The host answers each
    /// with [`Run::complete`], in any order and in parts, and calls
    /// `resume` again; tasks whose results have arrived then run.
    Io(Vec<IoRequest>),
}

/// Whether a run can continue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Status {
    /// The fiber has a frame to run.
    Running,
    /// The main function returned this value; the fiber has no frames.
    Done(Value),
    /// An uncaught error ended the run.
    Failed(RunError),
}

/// Instructions a run with an [`Interrupt`] handle runs between two looks
/// at it.
pub const INTERRUPT_SLICE: u64 = 4096;

/// Stops a run from another thread: see [`Run::interrupt_handle`].
#[derive(Clone, Debug)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Asks the run to stop: its running (or next) [`Run::resume`] returns
    /// [`Step::Paused`] within [`INTERRUPT_SLICE`] instructions.
    pub fn interrupt(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Run {
    /// Starts a run of `program`: binds its natives from `natives` (an
    /// unbound key is an error naming it), allocates its string constants
    /// and pushes a frame for `program.main` with no arguments.
    pub fn new(
        program: Arc<Program>,
        natives: &NativeSet,
        args: Vec<String>,
    ) -> Result<Run, String> {
        let mut run = Run {
            program: Arc::new(Program::default()),
            heap: Heap::new(),
            globals: Vec::new(),
            const_values: Vec::new(),
            context: Context::default(),
            host_yield: false,
            rng: RNG_SEED,
            exit: None,
            sched: Sched::default(),
            args,
            limits: Limits::default(),
            host_notes: Default::default(),
            io_deadlines: Default::default(),
            budget_left: 0,
            interrupt: None,
            status: Status::Done(Value::Nil),
            natives: Vec::new(),
            native_set: NativeSet::new(),
            io_ops: Vec::new(),
            program_checked: false,
            divisors: Vec::new(),
            root_buffer: Vec::new(),
        };
        let main = program.main;
        run.bind_natives_of(&program, natives)?;
        run.call_main(program, main)?;
        Ok(run)
    }

    /// Binds the program's natives from `natives`, as needed after
    /// deserializing a run. Errors name the first unbound key.
    pub fn bind_natives(&mut self, natives: &NativeSet) -> Result<(), String> {
        let program = Arc::clone(&self.program);
        self.bind_natives_of(&program, natives)
    }

    /// Replaces the limits; they apply from the next [`Run::resume`].
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The current limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Every value the collector must keep: each fiber's (the active one
    /// and each resumer's; suspended coroutines' fibers are reached through
    /// their heap objects), every running coroutine's object, the
    /// scheduler's, the globals, the constants and a finished run's result.
    pub(crate) fn gc_roots(&self) -> Vec<Value> {
        let mut roots = Vec::new();
        self.gc_roots_into(&mut roots);
        roots
    }

    /// Appends [`Run::gc_roots`] to `roots`.
    pub(crate) fn gc_roots_into(&self, roots: &mut Vec<Value>) {
        roots.extend(self.context.resumers.iter().map(|r| Value::Obj(r.coro)));
        self.sched.for_each_value(|value| roots.push(value));
        self.context.fiber.for_each_value(|value| roots.push(value));
        for resumer in &self.context.resumers {
            resumer.fiber.for_each_value(|value| roots.push(value));
        }
        roots.extend_from_slice(&self.globals);
        roots.extend_from_slice(&self.const_values);
        if let Status::Done(value) = self.status {
            roots.push(value);
        }
    }

    /// How many instructions of its budget the last [`Run::resume`] did not
    /// use (0 when it returned [`Step::Paused`]; library functions charge
    /// the budget for their work too). Meaningful only with a budget set.
    pub fn budget_left(&self) -> u64 {
        self.budget_left
    }

    /// Runs until the main function returns, an uncaught error ends the run,
    /// the main program yields to the host, or the instruction budget is
    /// spent. After the end, returns the same outcome again.
    pub fn resume(&mut self, output: &mut dyn Output) -> Result<Step, RunError> {
        match &self.status {
            Status::Running => {}
            Status::Done(value) => return Ok(Step::Done(*value)),
            Status::Failed(error) => return Err(error.clone()),
        }
        if self.natives.len() != self.program.natives.len() {
            return Err(internal_error(
                "natives are not bound (call bind_natives first)",
            ));
        }
        self.host_yield = false;
        self.heap.set_limit(self.limits.max_heap_bytes);
        let outcome = match (&self.interrupt, self.limits.budget) {
            (Some(flag), budget) => {
                let flag = Arc::clone(flag);
                self.execute_interruptible(output, &flag, budget)
            }
            (None, Some(_)) => crate::exec::interp::execute::<true>(self, output),
            (None, None) => crate::exec::interp::execute::<false>(self, output),
        };
        let outcome = match (self.exit, outcome) {
            (Some(code), Ok(Step::Done(_)) | Err(_)) => exit_outcome(code),
            (_, outcome) => outcome,
        };
        match &outcome {
            Ok(Step::Done(value)) => self.status = Status::Done(*value),
            Ok(Step::Paused | Step::Yield(_) | Step::Io(_)) => {}
            Err(error) => self.status = Status::Failed(error.clone()),
        }
        outcome
    }

    /// Reseeds the run's random-number generator (`random()`): two runs of
    /// a program with the same seed draw the same numbers. A run starts
    /// with a fixed seed, so an embedder's runs repeat unless it calls
    /// this; the command line seeds every fresh run from the operating
    /// system's entropy (or `--seed N`). The state is part of the saved
    /// run: a restored run continues its sequence.
    pub fn seed(&mut self, seed: u64) {
        self.rng = seed;
    }

    /// The status the script asked for with `exit(code)`, once it called
    /// it: the run is then ending (its tasks cancelled, their defers
    /// running) or has ended. [`Run::resume`] reports an exit with status
    /// 0 as [`Step::Done`] with `nil`, any other as a [`RunError`] of kind
    /// `Exit` with the message `exit(N)` and no trace, so a host that does
    /// not know `exit` treats it as success or failure the way a shell
    /// would.
    pub fn exit_code(&self) -> Option<i64> {
        self.exit
    }

    /// A handle another thread can use to stop this run: once
    /// [`Interrupt::interrupt`] is called, the running [`Run::resume`]
    /// returns [`Step::Paused`] within a few thousand instructions (the
    /// run can be saved or resumed as after any pause). Runs with a handle
    /// count their instructions to look at it; the handle is not saved with
    /// the run. (`spool`'s guide has an example.)
    pub fn interrupt_handle(&mut self) -> Interrupt {
        let flag = self
            .interrupt
            .get_or_insert_with(|| Arc::new(AtomicBool::new(false)));
        Interrupt(Arc::clone(flag))
    }

    /// Runs in slices of [`INTERRUPT_SLICE`] instructions, looking at the
    /// interrupt flag between them, within the caller's `budget` (if any).
    fn execute_interruptible(
        &mut self,
        output: &mut dyn Output,
        flag: &AtomicBool,
        budget: Option<u64>,
    ) -> Result<Step, RunError> {
        let mut left = budget.unwrap_or(u64::MAX);
        let outcome = loop {
            if flag.swap(false, Ordering::SeqCst) {
                break Ok(Step::Paused);
            }
            let slice = left.min(INTERRUPT_SLICE);
            self.limits.budget = Some(slice);
            let step = crate::exec::interp::execute::<true>(self, output);
            left = left.saturating_sub(slice.saturating_sub(self.budget_left));
            match step {
                Ok(Step::Paused) if left > 0 => {}
                other => break other,
            }
        };
        self.limits.budget = budget;
        self.budget_left = left;
        outcome
    }

    /// Answers the top-level `yield` the run is paused at ([`Step::Yield`]):
    /// the `yield` evaluates to `value` when the run resumes. Without a
    /// `send` it evaluates to nil. Ignored when no such `yield` is pending.
    pub fn send(&mut self, value: Value) {
        coro::answer_host(self, value);
    }

    /// Cancels the whole run, as a host that was asked to stop a workflow
    /// does: every task still alive (the main program's and all it
    /// spawned) gets `Cancelled` as `t.cancel()` gives it (a blocked task
    /// at once, a ready one at its next suspension point), a main program
    /// waiting at a top-level `yield` raises `Cancelled` there, and the
    /// task a pause stopped in the middle of its work ([`Step::Paused`]:
    /// its budget spent, or an [`Interrupt`]) raises it where it stopped,
    /// so a loop that never suspends is cancelled too. Its deferred calls
    /// run as the error unwinds; a script that catches the error may go
    /// on. Call [`Run::resume`] afterwards to let it unwind. Returns the
    /// error the run ended with when nothing caught it at once.
    pub fn cancel(&mut self, output: &mut dyn Output) -> Result<(), RunError> {
        if !matches!(self.status, Status::Running) {
            return Ok(());
        }
        cancel_tasks(&mut self.heap, &mut self.sched, None);
        let at_yield = self.host_yield && self.context.resumers.is_empty();
        // Paused between two instructions of the running task (not at a
        // `yield`, not idle waiting for I/O).
        let mid_task = !self.host_yield && !self.context.fiber.frames.is_empty();
        let raise_in = match (at_yield, mid_task) {
            (true, _) => self.sched.main,
            (false, true) => self.sched.current,
            (false, false) => None,
        };
        let Some(task) = raise_in.and_then(|t| self.heap.task_mut(t)) else {
            return Ok(());
        };
        if !at_yield && !task.cancel_pending {
            return Ok(());
        }
        task.cancel_pending = false;
        self.host_yield = false;
        let program = Arc::clone(&self.program);
        let error = crate::tasks::sched::cancelled();
        let record = crate::tasks::sched::error_record(&mut self.heap, &self.sched, &error);
        let raised = crate::heap::objects::TaskError {
            error: record,
            trace: Vec::new(),
        };
        let outcome = crate::exec::unwind::throw_task_error(self, &program, output, raised);
        if let Err(error) = &outcome {
            self.status = Status::Failed(error.clone());
        }
        outcome
    }

    /// Completes the I/O request `id` with the host's result: the task that
    /// issued it runs again on the next [`Run::resume`], with the value
    /// (checked against the operation's declared result type) or with an
    /// `Io` error carrying the message. Returns false when no request with
    /// that id is outstanding (already completed, or its task was
    /// cancelled); such answers are ignored.
    pub fn complete(&mut self, id: IoId, result: IoResult) -> bool {
        if !self.io_deadlines.is_empty() {
            self.io_deadlines.remove(&id);
        }
        crate::tasks::io::complete(self, id, result)
    }

    /// The I/O requests handed to the host (in `Step::Io` batches) and not
    /// yet completed, oldest first. A host that restores a saved run
    /// issues these again, with the same ids (at-least-once: a request in
    /// flight when the process died may have been carried out already);
    /// requests not yet handed out come in the next `Step::Io` as usual.
    pub fn pending_io(&self) -> Vec<IoRequest> {
        let unsent: std::collections::HashSet<IoId> =
            self.sched.outbox.iter().map(|r| r.id).collect();
        self.sched
            .in_flight
            .iter()
            .filter(|(id, _)| !unsent.contains(id))
            .map(|(id, in_flight)| self.request_of(id, in_flight))
            .collect()
    }

    /// The request `id` not yet completed, handed to the host or not:
    /// its operation, arguments and task, as [`Run::pending_io`] gives it.
    pub fn request_in_flight(&self, id: IoId) -> Option<IoRequest> {
        let in_flight = self.sched.in_flight.get(&id)?;
        Some(self.request_of(id, in_flight))
    }

    /// Every request not yet completed, oldest first, including those
    /// not handed to the host yet (which [`Run::pending_io`] leaves out).
    pub fn requests_in_flight(&self) -> Vec<IoRequest> {
        let in_flight = self.sched.in_flight.iter();
        in_flight.map(|(id, f)| self.request_of(id, f)).collect()
    }

    /// The whole request `id` of the table entry `in_flight`.
    fn request_of(&self, id: IoId, in_flight: &InFlight) -> IoRequest {
        let op = match self.io_ops.get(in_flight.native.index()) {
            Some(Some(op)) => Arc::clone(op),
            _ => {
                let decl = self.program.natives.get(in_flight.native.index());
                Arc::from(decl.map_or("", |decl| decl.name.as_str()))
            }
        };
        IoRequest {
            id,
            op,
            args: Arc::clone(&in_flight.args),
            task: self
                .heap
                .task(Value::Obj(in_flight.task))
                .map_or(0, |t| t.id),
        }
    }

    /// Records when the request `id` in flight is due, in milliseconds
    /// since the Unix epoch (a host sets it for timers when it issues them,
    /// before it saves the run): after a restore, [`Run::io_deadline`]
    /// tells how much of a `sleep` is left, and a store can wake the run at
    /// [`Run::next_deadline`]. Returns false (and records nothing) when no
    /// such request is in flight.
    pub fn set_io_deadline(&mut self, id: IoId, unix_ms: i64) -> bool {
        let in_flight = &self.sched.in_flight;
        self.io_deadlines
            .retain(|id, _| in_flight.get(id).is_some());
        if in_flight.get(&id).is_none() {
            return false;
        }
        self.io_deadlines.insert(id, unix_ms);
        true
    }

    /// When the request `id` in flight is due, if the host said
    /// ([`Run::set_io_deadline`]).
    pub fn io_deadline(&self, id: IoId) -> Option<i64> {
        self.sched.in_flight.get(&id)?;
        self.io_deadlines.get(&id).copied()
    }

    /// The earliest deadline of the requests in flight, if any has one.
    pub fn next_deadline(&self) -> Option<i64> {
        self.io_deadlines
            .iter()
            .filter(|(id, _)| self.sched.in_flight.get(id).is_some())
            .map(|(_, &at)| at)
            .min()
    }

    /// The scheduler's state, for inspection.
    pub fn sched(&self) -> &Sched {
        &self.sched
    }

    /// Is the run paused at a top-level `yield`, waiting for the host's
    /// answer?
    pub fn awaiting_send(&self) -> bool {
        self.host_yield
    }

    /// Takes the program out of the run, leaving an empty one (to save the
    /// run without it); put it back with [`Run::attach_program`].
    pub fn detach_program(&mut self) -> Arc<Program> {
        std::mem::take(&mut self.program)
    }

    /// Gives a run saved without its program the program back (the caller
    /// checks it is the right one, by fingerprint).
    pub fn attach_program(&mut self, program: Arc<Program>) {
        self.program = program;
        self.program_checked = false;
    }

    /// The host's note `key`, if set.
    pub fn host_note(&self, key: &str) -> Option<&str> {
        self.host_notes.get(key).map(String::as_str)
    }

    /// Sets the host's note `key` (saved with the run).
    pub fn set_host_note(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.host_notes.insert(key.into(), value.into());
    }

    /// Removes the host's note `key`, giving what it held.
    pub fn remove_host_note(&mut self, key: &str) -> Option<String> {
        self.host_notes.remove(key)
    }

    /// The program being run.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// The run's heap.
    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    /// The run's heap, mutably (for hosts building argument values).
    pub fn heap_mut(&mut self) -> &mut Heap {
        &mut self.heap
    }

    /// The globals, indexed by `GlobalIdx`.
    pub fn globals(&self) -> &[Value] {
        &self.globals
    }

    /// Decodes the stacks of every task still in its saved encoding (see
    /// [`Context::is_packed`]), for what rewrites them all (an upgrade).
    /// The bytes of a validated run always decode; a context that did not
    /// would be left empty.
    pub(crate) fn unpack_contexts(&mut self) {
        for index in 0..self.heap.capacity() {
            if let Some(Object::Task(task)) = self.heap.get_mut(ObjRef(index as u32)) {
                if task.context.unpack().is_err() {
                    task.context.clear();
                }
            }
        }
    }

    /// The active fiber (the main one, or the running coroutine's), for
    /// inspection.
    pub fn fiber(&self) -> &Fiber {
        &self.context.fiber
    }

    /// The fibers waiting on the coroutines they resumed, outermost first.
    pub fn resumers(&self) -> &[Resumer] {
        &self.context.resumers
    }

    /// Whether the run can continue, and how it ended.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// `value` as `print` shows it.
    pub fn display(&self, value: Value) -> String {
        format::display(value, &self.heap, &self.program)
    }

    /// Runs a further function of an extended program on this run's heap and
    /// globals (the REPL compiles each line as a new function). `program`
    /// must extend the current one: the same functions, constants, globals
    /// and natives, with more appended. New globals start unset, new
    /// string constants are allocated and new natives are bound from the set
    /// the run was bound with. The fiber is reset to one frame for `func`
    /// with no arguments; the next [`Run::resume`] runs it.
    pub fn call_main(&mut self, program: Arc<Program>, func: FuncIdx) -> Result<(), String> {
        let old = Arc::clone(&self.program);
        check_extension(&old, &program)?;
        let Some(function) = program.functions.get(func.index()) else {
            return Err(format!("no function {} in the program", func.0));
        };
        if function.arity != 0 {
            return Err(format!("function {} takes arguments", function.name));
        }
        if program.natives.len() > self.natives.len() {
            let set = self.native_set.clone();
            self.bind_natives_of(&program, &set)?;
        }
        for index in self.const_values.len()..program.constants.len() {
            let value = constant_value(&mut self.heap, &program.constants, index);
            self.const_values.push(value);
        }
        self.globals.resize(program.globals.len(), Value::UNSET);
        self.abandon_coroutines();
        self.context.fiber = Fiber {
            registers: vec![Value::Nil; function.register_count as usize],
            frames: vec![Frame {
                func,
                pc: 0,
                base: 0,
                closure: None,
                ret: 0,
            }],
            ..Fiber::default()
        };
        self.program = program;
        self.program_checked = false;
        self.status = Status::Running;
        self.exit = None;
        crate::tasks::sched::init_main(self);
        Ok(())
    }

    /// Makes this run, which has not started, a call of the top-level
    /// function `func` with `args` (values already in the run's heap)
    /// once the script's top level has run. The fiber gets two frames:
    /// `func`'s, waiting at its first instruction with the arguments in
    /// its first registers, and above it the top level's, which runs
    /// first. When the top level returns (at its end or at a `return`, its
    /// defers run; tasks it spawned go on), its value is dropped into a
    /// register below `func`'s window and `func` starts; its result ends
    /// the run ([`Step::Done`]). An error in the top level ends the run;
    /// `func`'s frame, not started, is not in its trace.
    ///
    /// Refused when the run has started, `func` is not a plain function
    /// of the program or `args` do not match its arity.
    pub fn call_after_main(&mut self, func: FuncIdx, args: &[Value]) -> Result<(), String> {
        let program = Arc::clone(&self.program);
        if !self.at_start() {
            return Err("the run has already started".to_string());
        }
        let (Some(function), Some(main)) = (
            program.functions.get(func.index()),
            program.functions.get(program.main.index()),
        ) else {
            return Err(format!("no function {} in the program", func.0));
        };
        if function.capture_count != 0 {
            return Err(format!("`{}` needs a closure", function.name));
        }
        if usize::from(function.arity) != args.len() {
            return Err(format!(
                "`{}` takes {} arguments, not {}",
                function.name,
                function.arity,
                args.len()
            ));
        }
        // Register 0 receives the top level's value; `func`'s window
        // starts above it, the top level's above that.
        let main_base = 1 + usize::from(function.register_count);
        let mut registers = vec![Value::Nil; main_base + usize::from(main.register_count)];
        registers[1..=args.len()].copy_from_slice(args);
        let frame = |func, base: usize, ret: u32| Frame {
            func,
            pc: 0,
            base: base as u32,
            closure: None,
            ret,
        };
        self.context.fiber = Fiber {
            registers,
            frames: vec![frame(func, 1, 1), frame(program.main, main_base, 0)],
            ..Fiber::default()
        };
        Ok(())
    }

    /// Is the run where [`Run::new`] left it: at the first instruction of
    /// the top level, with nothing else on the fiber?
    fn at_start(&self) -> bool {
        let main = self.program.main;
        let fresh_frame = |frame: &Frame| frame.func == main && frame.pc == 0;
        self.status == Status::Running
            && matches!(&self.context.fiber.frames[..], [frame] if fresh_frame(frame))
    }

    /// Marks the coroutines running on the fibers `call_main` drops as
    /// failed: nothing can resume them any more.
    fn abandon_coroutines(&mut self) {
        for resumer in std::mem::take(&mut self.context.resumers) {
            if let Some(coro) = self.heap.coro_mut(resumer.coro) {
                coro.status = CoroStatus::Failed;
            }
        }
        self.host_yield = false;
    }

    /// Continues this run on `program`, a changed version of its program
    /// (see `saved/upgrade/`): every index the run holds (functions of frames,
    /// closures and function values, natives, globals, structs and enum
    /// variants of heap objects, operations of requests in flight) is
    /// translated to `program`'s numbering by stable identity. Refused,
    /// with one line per reason naming what and where, when a function the
    /// run is inside (on a stack, or held by a closure) changed or is gone,
    /// or when something else the run holds has no sound translation. The
    /// new program's constants are allocated and its natives bound; the
    /// result passes [`crate::saved::validate()`], and on any refusal the run is
    /// left as it was.
    pub fn upgrade(&mut self, program: Arc<Program>, natives: &NativeSet) -> Result<(), String> {
        let mut next = self.clone();
        crate::saved::upgrade::tidy_up(&mut next);
        let plan = crate::saved::upgrade::plan(&next, &program).map_err(|reasons| {
            format!(
                "the run cannot continue on the new program:\n{}",
                reasons.join("\n")
            )
        })?;
        next.bind_natives_of(&program, natives)?;
        crate::saved::upgrade::apply(&mut next, &plan, &program);
        next.const_values = (0..program.constants.len())
            .map(|index| constant_value(&mut next.heap, &program.constants, index))
            .collect();
        next.sched.error_struct = program.builtins.error;
        next.program = program;
        next.program_checked = false;
        crate::saved::validate::validate(&next)
            .map_err(|e| format!("internal error: the moved run is inconsistent: {e}"))?;
        *self = next;
        Ok(())
    }

    /// Binds every native of `program` from `natives`.
    fn bind_natives_of(&mut self, program: &Program, natives: &NativeSet) -> Result<(), String> {
        let mut bound = Vec::with_capacity(program.natives.len());
        for decl in &program.natives {
            if decl.io.is_some() {
                bound.push(Native::Io);
                continue;
            }
            match natives.get(&decl.key) {
                Some(function) => bound.push(function),
                None => return Err(format!("native function `{}` is not bound", decl.key)),
            }
        }
        self.natives = bound;
        self.io_ops = program
            .natives
            .iter()
            .map(|decl| decl.io.as_ref().map(|_| Arc::from(decl.name.as_str())))
            .collect();
        self.native_set = natives.clone();
        Ok(())
    }

    /// Allocates an `Error` record with `kind` and `message`.
    pub(crate) fn error_record(&mut self, error: &VmError) -> Value {
        let kind = self.heap.alloc_str(error.kind_name());
        let message = self.heap.alloc_str(error.message.as_str());
        let ty = self.program.builtins.error;
        Value::Obj(self.heap.alloc(Object::Record {
            ty,
            fields: vec![kind, message],
        }))
    }
}

/// Checks that `new` keeps everything of `old` (a REPL line only appends).
fn check_extension(old: &Program, new: &Program) -> Result<(), String> {
    let shrunk = new.functions.len() < old.functions.len()
        || new.constants.len() < old.constants.len()
        || new.globals.len() < old.globals.len()
        || new.natives.len() < old.natives.len()
        || new.constants[..old.constants.len()] != old.constants[..];
    if shrunk {
        return Err("the new program does not extend the run's program".to_string());
    }
    Ok(())
}

/// A `RunError` for a misuse of the VM rather than a script error.
pub(crate) fn internal_error(message: &str) -> RunError {
    RunError {
        kind: ErrorKind::Type.as_str().to_string(),
        message: message.to_string(),
        trace: Vec::new(),
    }
}

/// The value of constant `index`: strings are allocated once here; a type
/// constant is its own index, which the native it is passed to looks up.
fn constant_value(heap: &mut Heap, constants: &[Constant], index: usize) -> Value {
    match &constants[index] {
        Constant::Int(n) => Value::Int(*n),
        Constant::Float(x) => Value::Float(*x),
        Constant::Str(text) => heap.alloc_str(text.as_str()),
        Constant::Type(_) => Value::Int(index as i64),
    }
}
