//! I/O in one room: what a task hands to the host when it calls an I/O
//! operation (an [`IoRequest`], issued by [`issue_io`], the calling task
//! blocked on it), the table of requests in flight that a saved run
//! carries, the host's answer ([`complete`]: converted, checked, the task
//! woken), and the owned data that crosses the boundary.
//!
//! A request's arguments and its result are [`Data`]: owned, heap-free
//! values a host can move to another thread, serialize, or keep across a
//! restart. The VM converts arguments from heap values when a task calls an
//! operation, and converts the host's result back (checking it against the
//! operation's declared result type) when the host completes the request.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::exec::error::{ErrorKind, VmError};
use crate::exec::native::{NativeCtx, Suspend};
use crate::heap::format;
use crate::heap::objects::{Blocked, TaskError, TaskState, Wake};
use crate::heap::value::{EnumIdx, NativeIdx, ObjRef, StructIdx, Value};
use crate::heap::{Heap, Key, Object, ValueMap};
use crate::program::types::{TypeDesc, TypeNode};
use crate::program::Program;
use crate::run::Run;
use crate::tasks::sched::{check_cancel, error_record, Sched, SPARE_ARGS};
use crate::tasks::select::{deliver, Source};

pub use crate::heap::value::IoId;

/// One call of a host I/O operation by a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IoRequest {
    /// The request's id; answer it with `Run::complete(id, ...)`.
    pub id: IoId,
    /// The operation's name, as scripts call it (`read_file`); shared by
    /// every request of the operation.
    #[serde(deserialize_with = "shared_op")]
    pub op: Arc<str>,
    /// The arguments, in order; shared between the batch handed to the
    /// host and the run's table of requests in flight (which a saved run
    /// carries), so issuing a request copies them once.
    #[serde(deserialize_with = "shared_args")]
    pub args: Arc<[Data]>,
    /// The number of the task that issued it (`<task 3>`; 0 is the main
    /// program), for traces and inspection.
    pub task: u64,
}

impl IoRequest {
    /// A request `id` of operation `op` with `args`, by the main program.
    pub fn new(id: IoId, op: impl Into<Arc<str>>, args: impl Into<Arc<[Data]>>) -> IoRequest {
        IoRequest {
            id,
            op: op.into(),
            args: args.into(),
            task: 0,
        }
    }
}

/// Deserializes a request's operation name, sharing one string among the
/// requests of an operation when they come one after another (as a saved
/// run's table of requests in flight has them), instead of two
/// allocations per request.
fn shared_op<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
    thread_local! {
        /// The name decoded last on this thread.
        static LAST: std::cell::Cell<Option<Arc<str>>> = const { std::cell::Cell::new(None) };
    }
    struct Name;
    impl serde::de::Visitor<'_> for Name {
        type Value = Arc<str>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an operation's name")
        }

        fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Arc<str>, E> {
            let op = match LAST.take() {
                Some(last) if *last == *name => last,
                _ => Arc::from(name),
            };
            LAST.set(Some(Arc::clone(&op)));
            Ok(op)
        }
    }
    deserializer.deserialize_str(Name)
}

/// Deserializes a request's arguments into one allocation when there are
/// one or two of them (the usual case), growing a vector otherwise.
fn shared_args<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Arc<[Data]>, D::Error> {
    struct Args;
    impl<'de> serde::de::Visitor<'de> for Args {
        type Value = Arc<[Data]>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a request's arguments")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let Some(first) = seq.next_element()? else {
                return Ok(Arc::new([]));
            };
            let Some(second) = seq.next_element()? else {
                return Ok(Arc::new([first]));
            };
            let mut items = vec![first, second];
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items.into())
        }
    }
    deserializer.deserialize_seq(Args)
}

/// What the host answers a request with: the result, or the message of an
/// `Io` error raised at the call site.
pub type IoResult = Result<Data, String>;

/// An owned value crossing the host boundary.
///
/// Deserializing refuses data nested deeper than conversions from the heap
/// make (the requests of a saved run are untrusted input, and decoding,
/// dropping and converting nested data all recurse).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub enum Data {
    /// `nil`.
    Nil,
    /// A `bool`.
    Bool(bool),
    /// An `int`.
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A list.
    List(#[serde(deserialize_with = "grown")] Vec<Data>),
    /// A map, in insertion order; keys are `Int`, `Str` or `Bool`.
    Map(#[serde(deserialize_with = "grown")] Vec<(Data, Data)>),
    /// A struct value: the struct's name and its fields by name.
    Record {
        /// The struct's name (`Response`).
        name: String,
        /// Field names and values; the order does not matter.
        #[serde(deserialize_with = "grown")]
        fields: Vec<(String, Data)>,
    },
    /// An enum value: the enum's and the variant's names and the payload.
    Variant {
        /// The enum's name (`Json`).
        name: String,
        /// The variant's name (`Num`).
        variant: String,
        /// The payload, in order.
        #[serde(deserialize_with = "grown")]
        fields: Vec<Data>,
    },
}

impl Data {
    /// A string.
    pub fn str(text: impl Into<String>) -> Data {
        Data::Str(text.into())
    }

    /// The string inside, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The int inside, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Data::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The field `name` of a record.
    pub fn field(&self, name: &str) -> Option<&Data> {
        match self {
            Data::Record { fields, .. } => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Copies a heap value out. Functions, coroutines, tasks and other
    /// handles cannot cross the boundary; values nested deeper than 1000
    /// levels (or inside themselves) are refused too.
    pub fn from_value(value: Value, heap: &Heap, program: &Program) -> Result<Data, String> {
        from_value(value, heap, program, 0)
    }

    /// Builds the heap value for this data. Records and variants are looked
    /// up by name in the program's layouts.
    pub fn into_value(&self, heap: &mut Heap, program: &Program) -> Result<Value, String> {
        into_value(self, heap, program, 0)
    }
}

/// How deep [`Data`] conversions go before refusing a value.
const MAX_DEPTH: usize = 1000;

/// Deserializes the elements of nested data without reserving room for the
/// count the input claims: serde reserves up to 1 MiB for a sequence, and
/// data nests a thousand levels deep, each reserving. The vector grows as
/// elements arrive instead.
fn grown<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Grown<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Grown<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Grown(std::marker::PhantomData))
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Data::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Data, D::Error> {
        thread_local! {
            static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        }
        /// Leaves one level when dropped, also on errors.
        struct Level;
        impl Drop for Level {
            fn drop(&mut self) {
                DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
            }
        }
        let depth = DEPTH.with(|depth| {
            depth.set(depth.get() + 1);
            depth.get()
        });
        let _level = Level;
        if depth > MAX_DEPTH + 1 {
            return Err(serde::de::Error::custom("data nested too deeply"));
        }
        Data::deserialize(deserializer)
    }
}

fn from_value(value: Value, heap: &Heap, program: &Program, depth: usize) -> Result<Data, String> {
    if depth > MAX_DEPTH {
        return Err("value nested too deeply to pass to the host".to_string());
    }
    let inner = |v: Value| from_value(v, heap, program, depth + 1);
    let obj = match value {
        Value::Nil => return Ok(Data::Nil),
        Value::Bool(b) => return Ok(Data::Bool(b)),
        Value::Int(n) => return Ok(Data::Int(n)),
        Value::Float(x) => return Ok(Data::Float(x)),
        Value::Obj(obj) => obj,
        Value::Func(_) | Value::Native(_) => return Err(cannot_pass(value, heap, program)),
    };
    match heap.get(obj) {
        Some(Object::Str(text)) => Ok(Data::Str(text.clone())),
        Some(Object::List(items)) => items
            .iter()
            .map(|&v| inner(v))
            .collect::<Result<_, _>>()
            .map(Data::List),
        Some(Object::BoolList(items)) => {
            Ok(Data::List(items.iter().map(|&b| Data::Bool(b)).collect()))
        }
        Some(Object::Map(map)) => map
            .iter()
            .map(|(key, v)| Ok((key_data(&key), inner(v)?)))
            .collect::<Result<_, String>>()
            .map(Data::Map),
        Some(Object::Record { ty, fields }) => {
            let layout = program.structs.get(ty.index()).ok_or("unknown struct")?;
            let fields = layout
                .fields
                .iter()
                .zip(fields)
                .map(|(name, &v)| Ok((name.clone(), inner(v)?)))
                .collect::<Result<_, String>>()?;
            Ok(Data::Record {
                name: layout.name.clone(),
                fields,
            })
        }
        Some(Object::Variant {
            ty,
            variant,
            fields,
        }) => {
            let layout = program.enums.get(ty.index()).ok_or("unknown enum")?;
            let name = layout
                .variants
                .get(*variant as usize)
                .ok_or("unknown variant")?;
            Ok(Data::Variant {
                name: layout.name.clone(),
                variant: name.name.clone(),
                fields: fields.iter().map(|&v| inner(v)).collect::<Result<_, _>>()?,
            })
        }
        _ => Err(cannot_pass(value, heap, program)),
    }
}

fn cannot_pass(value: Value, heap: &Heap, program: &Program) -> String {
    format!(
        "a value of type {} cannot be passed to the host",
        format::kind_of(value, heap, program)
    )
}

fn key_data(key: &Key) -> Data {
    match key {
        Key::Int(n) => Data::Int(*n),
        Key::Str(text) => Data::Str(text.to_string()),
        Key::Bool(b) => Data::Bool(*b),
    }
}

fn into_value(
    data: &Data,
    heap: &mut Heap,
    program: &Program,
    depth: usize,
) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("host value nested too deeply".to_string());
    }
    Ok(match data {
        Data::Nil => Value::Nil,
        Data::Bool(b) => Value::Bool(*b),
        Data::Int(n) => Value::Int(*n),
        Data::Float(x) => Value::Float(*x),
        Data::Str(text) => heap.alloc_str(text.as_str()),
        Data::List(items) => {
            let values = items
                .iter()
                .map(|item| into_value(item, heap, program, depth + 1))
                .collect::<Result<_, _>>()?;
            heap.alloc_list(values)
        }
        Data::Map(pairs) => {
            let mut map = ValueMap::with_capacity(pairs.len());
            for (key, value) in pairs {
                let key = match key {
                    Data::Int(n) => Key::Int(*n),
                    Data::Str(text) => Key::Str(text.as_str().into()),
                    Data::Bool(b) => Key::Bool(*b),
                    _ => return Err("map keys from the host must be int, str or bool".to_string()),
                };
                let value = into_value(value, heap, program, depth + 1)?;
                map.insert(key, value);
            }
            Value::Obj(heap.alloc(Object::Map(map)))
        }
        Data::Record { name, fields } => record_value(name, fields, heap, program, depth)?,
        Data::Variant {
            name,
            variant,
            fields,
        } => {
            let index = program
                .enums
                .iter()
                .position(|layout| layout.name == *name)
                .ok_or_else(|| format!("no enum `{name}` in the program"))?;
            let layout = &program.enums[index];
            let which = layout
                .variants
                .iter()
                .position(|v| v.name == *variant)
                .ok_or_else(|| format!("no variant `{variant}` in enum `{name}`"))?;
            if layout.variants[which].arity as usize != fields.len() {
                return Err(format!("wrong number of fields for `{name}.{variant}`"));
            }
            let values = fields
                .iter()
                .map(|item| into_value(item, heap, program, depth + 1))
                .collect::<Result<_, _>>()?;
            Value::Obj(heap.alloc(Object::Variant {
                ty: EnumIdx(index as u32),
                variant: which as u16,
                fields: values,
            }))
        }
    })
}

fn record_value(
    name: &str,
    fields: &[(String, Data)],
    heap: &mut Heap,
    program: &Program,
    depth: usize,
) -> Result<Value, String> {
    let index = program
        .structs
        .iter()
        .position(|layout| layout.name == name)
        .ok_or_else(|| format!("no struct `{name}` in the program"))?;
    let layout = &program.structs[index];
    let mut values = Vec::with_capacity(layout.fields.len());
    for field in &layout.fields {
        let (_, data) = fields
            .iter()
            .find(|(n, _)| n == field)
            .ok_or_else(|| format!("field `{field}` of `{name}` is missing"))?;
        values.push(into_value(data, heap, program, depth + 1)?);
    }
    Ok(Value::Obj(heap.alloc(Object::Record {
        ty: StructIdx(index as u32),
        fields: values,
    })))
}

/// An I/O request not yet completed: what the run needs to wake its task
/// and to hand the request out again after a restore. Its id is its place
/// in the [`IoTable`]; its operation's name and its task's number are
/// looked up when a whole [`IoRequest`] is wanted
/// ([`crate::Run::pending_io`]), so recording and completing a request
/// copy neither.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct InFlight {
    /// The task waiting for it.
    pub task: ObjRef,
    /// The I/O operation it calls.
    pub native: NativeIdx,
    /// The arguments, shared with the request handed to the host.
    #[serde(deserialize_with = "shared_args")]
    pub args: Arc<[Data]>,
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
    #[inline]
    pub fn insert(&mut self, id: IoId, in_flight: InFlight) {
        // The usual case, in a few instructions: the id after the newest.
        let next = self.base.wrapping_add(self.slots.len() as u64);
        if id.0 == next && !self.slots.is_empty() {
            self.slots.push_back(Some(in_flight));
            self.len += 1;
            return;
        }
        self.insert_slowly(id, in_flight);
    }

    /// [`IoTable::insert`] for any id.
    #[inline(never)]
    fn insert_slowly(&mut self, id: IoId, in_flight: InFlight) {
        if self.slots.is_empty() {
            self.base = id.0;
        }
        let Some(offset) = id.0.checked_sub(self.base) else {
            return;
        };
        let offset = offset as usize;
        if offset == self.slots.len() {
            // The next id: the first of an empty table.
            self.slots.push_back(Some(in_flight));
            self.len += 1;
            return;
        }
        if offset > self.slots.len() {
            self.slots.resize_with(offset + 1, || None);
        }
        if self.slots[offset].replace(in_flight).is_none() {
            self.len += 1;
        }
    }

    /// Removes and returns request `id`.
    #[inline]
    pub fn remove(&mut self, id: &IoId) -> Option<InFlight> {
        // The usual case, in a few instructions: the oldest request, with
        // an outstanding one after it (or none).
        let usual = id.0 == self.base
            && matches!(self.slots.front(), Some(Some(_)))
            && matches!(self.slots.get(1), None | Some(Some(_)));
        if usual {
            self.base += 1;
            self.len = self.len.saturating_sub(1);
            return self.slots.pop_front().flatten();
        }
        self.remove_slowly(id)
    }

    /// [`IoTable::remove`] for any id.
    #[inline(never)]
    fn remove_slowly(&mut self, id: &IoId) -> Option<InFlight> {
        let offset = usize::try_from(id.0.checked_sub(self.base)?).ok()?;
        let removed = if offset == 0 {
            // The oldest request, with empty slots after it: its slot
            // goes, and they are dropped below. (An empty slot left at the
            // front by a saved run goes too, and `base` still names the
            // first slot.)
            let removed = self.slots.pop_front()?;
            self.base += 1;
            removed?
        } else {
            self.slots.get_mut(offset)?.take()?
        };
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
        ids_fit && self.values().count() == self.len
    }

    /// Number of outstanding requests.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Is nothing outstanding?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The outstanding requests with their ids, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (IoId, &InFlight)> {
        let base = self.base;
        let slots = self.slots.iter().enumerate();
        slots.filter_map(move |(offset, slot)| Some((IoId(base + offset as u64), slot.as_ref()?)))
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

// ---- issuing requests and completing them ----

/// What every host I/O operation is bound to: it suspends the calling task,
/// and the run issues a request with the call's arguments.
pub fn io_native(ctx: &mut NativeCtx<'_>, _: &[Value]) -> Result<Value, VmError> {
    check_cancel(ctx.heap, ctx.sched)?;
    ctx.suspend = Some(Suspend::Io);
    Ok(Value::Nil)
}

/// The running task's call of the I/O operation `native` whose `count`
/// arguments are the active fiber's registers from the absolute index
/// `start` on (the interpreter's direct path, bound as
/// [`crate::exec::native::Native::Io`]): raises `Cancelled` if a
/// `cancel()` is pending, else issues the request and parks the task, the
/// answer to go to register `start`. An error leaves the task running, at
/// the call. What [`io_native`], [`issue_io_from_registers`] and
/// [`crate::tasks::sched::park`] do one after another, with the task
/// looked up twice instead of three times.
pub(crate) fn call_io(
    run: &mut Run,
    program: &Program,
    native: NativeIdx,
    start: usize,
    count: usize,
) -> Result<(), VmError> {
    check_cancel(&mut run.heap, &run.sched)?;
    let Some(current) = run.sched.current else {
        return Err(crate::exec::error::bad_program("I/O outside a task"));
    };
    let (op, data) = register_args(run, program, native, start, count)?;
    let id = IoId(run.sched.next_io);
    run.context.fiber.truncate_dead_registers(program);
    let task_id = match run.heap.task_mut(current) {
        Some(task) => {
            task.state = TaskState::Blocked;
            task.blocked = Blocked::Io(id);
            crate::tasks::sched::park_in(task, &mut run.context, start as u32);
            task.id
        }
        None => return Err(crate::exec::error::bad_program("I/O outside a task")),
    };
    run.sched.current = None;
    record(&mut run.sched, current, native, op, data, task_id);
    Ok(())
}

/// Issues an I/O request for a call of the I/O operation `native` with
/// `args` by the current task, and marks the task blocked on it.
pub(crate) fn issue_io(
    run: &mut Run,
    program: &Program,
    native: NativeIdx,
    args: &[Value],
) -> Result<(), VmError> {
    let op = io_op(run, native)?;
    let data = request_args(&op, args, &run.heap, program, &mut run.sched.spare_args)?;
    block_on_request(run, native, op, data)
}

/// [`issue_io`] for a call whose `count` arguments are the active fiber's
/// registers from the absolute index `start` on (a native that suspends
/// for I/O other than through [`call_io`]).
pub(crate) fn issue_io_from_registers(
    run: &mut Run,
    program: &Program,
    native: NativeIdx,
    start: usize,
    count: usize,
) -> Result<(), VmError> {
    let (op, data) = register_args(run, program, native, start, count)?;
    block_on_request(run, native, op, data)
}

/// The name of the I/O operation `native` and the arguments of its call,
/// the active fiber's `count` registers from the absolute index `start`
/// on, converted where they are instead of copied out first. Inlined:
/// it is most of [`call_io`], on every request's path.
#[inline(always)]
fn register_args(
    run: &mut Run,
    program: &Program,
    native: NativeIdx,
    start: usize,
    count: usize,
) -> Result<(Arc<str>, Arc<[Data]>), VmError> {
    let op = io_op(run, native)?;
    let registers = &run.context.fiber.registers;
    let args = registers.get(start..start + count).unwrap_or_default();
    let data = request_args(&op, args, &run.heap, program, &mut run.sched.spare_args)?;
    Ok((op, data))
}

/// The arguments `args` of a call of operation `op` as a request's
/// ([`args_data`]), or the `Type` error naming the operation.
#[inline(always)]
fn request_args(
    op: &str,
    args: &[Value],
    heap: &Heap,
    program: &Program,
    spare: &mut Vec<Arc<[Data]>>,
) -> Result<Arc<[Data]>, VmError> {
    args_data(args, heap, program, spare)
        .map_err(|message| VmError::new(ErrorKind::Type, format!("{op}: {message}")))
}

/// The name of the I/O operation `native`, shared by its requests.
fn io_op(run: &Run, native: NativeIdx) -> Result<Arc<str>, VmError> {
    match run.io_ops.get(native.index()) {
        Some(Some(op)) => Ok(Arc::clone(op)),
        _ => Err(crate::exec::error::bad_program(
            "I/O through a native that is not an operation",
        )),
    }
}

/// Records a request of the current task for `op` (the I/O native
/// `native`) with `args` and marks the task blocked on it.
fn block_on_request(
    run: &mut Run,
    native: NativeIdx,
    op: Arc<str>,
    args: Arc<[Data]>,
) -> Result<(), VmError> {
    let Some(current) = run.sched.current else {
        return Err(crate::exec::error::bad_program("I/O outside a task"));
    };
    let id = IoId(run.sched.next_io);
    // One look at the task: its number for the request, and its state.
    let task_id = match run.heap.task_mut(current) {
        Some(task) => {
            task.state = TaskState::Blocked;
            task.blocked = Blocked::Io(id);
            task.id
        }
        None => 0,
    };
    record(&mut run.sched, current, native, op, args, task_id);
    Ok(())
}

/// The arguments of a request, copied out of the heap: into the newest
/// spare argument list when it has as many and the host no longer holds
/// it, else into one new allocation (the usual few directly, without a
/// vector in between). Inlined: it is on every request's path.
#[inline(always)]
fn args_data(
    args: &[Value],
    heap: &Heap,
    program: &Program,
    spare: &mut Vec<Arc<[Data]>>,
) -> Result<Arc<[Data]>, String> {
    let data = |value: &Value| match *value {
        Value::Nil => Ok(Data::Nil),
        Value::Bool(b) => Ok(Data::Bool(b)),
        Value::Int(n) => Ok(Data::Int(n)),
        Value::Float(x) => Ok(Data::Float(x)),
        value => Data::from_value(value, heap, program),
    };
    if let Some(mut list) = spare.pop() {
        if let Some(slots) = Arc::get_mut(&mut list).filter(|s| s.len() == args.len()) {
            for (slot, value) in slots.iter_mut().zip(args) {
                refill(slot, data(value)?);
            }
            return Ok(list);
        }
    }
    Ok(match args {
        [] => Arc::new([]),
        [first] => Arc::new([data(first)?]),
        [first, second] => Arc::new([data(first)?, data(second)?]),
        [first, second, third] => Arc::new([data(first)?, data(second)?, data(third)?]),
        _ => args.iter().map(data).collect::<Result<Vec<_>, _>>()?.into(),
    })
}

/// Puts `data` in `slot`, dropping what it held (without the call that
/// drops data when that was a scalar, which owns nothing).
fn refill(slot: &mut Data, data: Data) {
    let old = std::mem::replace(slot, data);
    match old {
        Data::Nil | Data::Bool(_) | Data::Int(_) | Data::Float(_) => std::mem::forget(old),
        old => drop(old),
    }
}

/// Keeps the argument list of a completed request for reuse by
/// [`args_data`], while there is room.
fn keep_spare(sched: &mut Sched, args: Arc<[Data]>) {
    if sched.spare_args.len() < SPARE_ARGS && !args.is_empty() {
        sched.spare_args.push(args);
    }
}

/// Records a request of `task` for operation `op` (the I/O native
/// `native`) in the next batch and in the table of requests in flight,
/// and returns its id. The caller marks the task blocked.
pub(crate) fn record_request(
    sched: &mut Sched,
    heap: &Heap,
    task: ObjRef,
    native: NativeIdx,
    op: Arc<str>,
    args: Arc<[Data]>,
) -> IoId {
    let task_id = heap.task(Value::Obj(task)).map_or(0, |t| t.id);
    record(sched, task, native, op, args, task_id)
}

/// [`record_request`] for a task whose number the caller has looked up.
/// Inlined: it is on every request's path.
#[inline(always)]
fn record(
    sched: &mut Sched,
    task: ObjRef,
    native: NativeIdx,
    op: Arc<str>,
    args: Arc<[Data]>,
    task_id: u64,
) -> IoId {
    let id = IoId(sched.next_io);
    sched.next_io = sched.next_io.saturating_add(1);
    sched.outbox.push(IoRequest {
        id,
        op,
        args: Arc::clone(&args),
        task: task_id,
    });
    sched.in_flight.insert(id, InFlight { task, native, args });
    id
}

/// The host's answer to request `id`: wakes the task waiting for it with
/// the result (checked against the operation's declared result type) or an
/// `Io` error. Returns false for an id that is not in flight (already
/// completed, or its task was cancelled).
pub(crate) fn complete(run: &mut Run, id: IoId, result: IoResult) -> bool {
    let Some(InFlight { task, native, args }) = run.sched.in_flight.remove(&id) else {
        return false;
    };
    let outcome = match result {
        Err(message) => Err(VmError::new(ErrorKind::Io, message)),
        Ok(data) => answer(run, native, data),
    };
    keep_spare(&mut run.sched, args);
    let wake = match outcome {
        Ok(value) => Wake::Value(value),
        Err(error) => Wake::Raise(Box::new(TaskError {
            error: error_record(&mut run.heap, &run.sched, &error),
            trace: Vec::new(),
        })),
    };
    deliver(&mut run.heap, &mut run.sched, task, Source::Io(id), wake);
    true
}

/// The host's answer `data` to a request of the I/O native `native` as a
/// value of the operation's declared result type.
fn answer(run: &mut Run, native: NativeIdx, data: Data) -> Result<Value, VmError> {
    /// The type of an answer to an operation the program does not know.
    static UNKNOWN: TypeDesc = TypeDesc { nodes: Vec::new() };
    let program = &run.program;
    let decl = program.natives.get(native.index());
    let returns = decl.and_then(|decl| decl.io.as_ref()).unwrap_or(&UNKNOWN);
    match scalar(data, returns) {
        Ok(value) => Ok(value),
        Err(data) => {
            let op = decl.map_or("an I/O operation", |decl| decl.name.as_str());
            answer_value(&mut run.heap, program, returns, data, op)
        }
    }
}

/// The value of a scalar answer that its operation's declared type takes
/// as it is (an `int` for an `int`, `nil` for an optional): the common
/// case, decided without the general check and conversion, with the same
/// outcome. Any other answer comes back as it was.
fn scalar(data: Data, returns: &TypeDesc) -> Result<Value, Data> {
    let Some(root) = returns.root() else {
        return Err(data);
    };
    let value = match (root, &data) {
        (TypeNode::Int, Data::Int(n)) => Value::Int(*n),
        (TypeNode::Float, Data::Float(x)) => Value::Float(*x),
        (TypeNode::Bool, Data::Bool(b)) => Value::Bool(*b),
        (TypeNode::Nil | TypeNode::Optional(_), Data::Nil) => Value::Nil,
        _ => return Err(data),
    };
    // A scalar owns nothing: forgetting it skips the call that drops data.
    std::mem::forget(data);
    Ok(value)
}

/// The host's answer `data` to a request of operation `op` as a heap
/// value: checked against the declared type `returns` (the place that does
/// not fit named), converted, and the value checked to fit.
fn answer_value(
    heap: &mut Heap,
    program: &Program,
    returns: &TypeDesc,
    mut data: Data,
    op: &str,
) -> Result<Value, VmError> {
    let converted = crate::tasks::check::check(&mut data, returns, program)
        .map_err(|why| format!("its type `{returns}`: {why}"))
        .and_then(|()| {
            data.into_value(heap, program)
                .map_err(|why| format!("the program: {why}"))
        });
    match converted {
        Ok(value) if returns.fits(value, heap, program) => Ok(value),
        Ok(value) => Err(VmError::new(
            ErrorKind::Type,
            format!(
                "the host answered `{op}` with a value of type {}; it returns `{returns}`",
                crate::heap::format::kind_of(value, heap, program)
            ),
        )),
        Err(message) => Err(VmError::new(
            ErrorKind::Type,
            format!("the host's answer to `{op}` does not fit {message}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry for task `task`'s request with argument `n`.
    fn entry(task: u32, n: i64) -> InFlight {
        InFlight {
            task: ObjRef(task),
            native: NativeIdx(0),
            args: Arc::new([Data::Int(n)]),
        }
    }

    /// The ids outstanding, oldest first.
    fn ids(table: &IoTable) -> Vec<u64> {
        table.iter().map(|(id, _)| id.0).collect()
    }

    /// Requests completed in order (the quick path), out of order (a hole
    /// left behind, dropped when the oldest goes), twice, or never issued:
    /// the table gives each entry back once and keeps its window and count
    /// consistent.
    #[test]
    fn requests_leave_the_table_in_any_order() {
        let mut table = IoTable::default();
        for id in 10..16 {
            table.insert(IoId(id), entry(id as u32, id as i64));
        }
        assert!(table.is_consistent(16));
        // In order: the quick path.
        let first = table.remove(&IoId(10)).expect("in flight");
        assert_eq!((first.task, first.args[0].as_int()), (ObjRef(10), Some(10)));
        // Out of order: 12 leaves a hole after 11.
        assert_eq!(table.remove(&IoId(12)).map(|e| e.task), Some(ObjRef(12)));
        assert_eq!(ids(&table), [11, 13, 14, 15]);
        // 11 is the oldest, with the hole after it: the hole goes too.
        assert_eq!(table.remove(&IoId(11)).map(|e| e.task), Some(ObjRef(11)));
        assert_eq!(table.get(&IoId(13)).map(|e| e.task), Some(ObjRef(13)));
        // Not in flight: completed already, older than the window, newer.
        for id in [10, 11, 12, 3, 16, u64::MAX] {
            assert!(table.remove(&IoId(id)).is_none(), "id {id}");
        }
        assert_eq!(ids(&table), [13, 14, 15]);
        assert_eq!(table.len(), 3);
        assert!(table.is_consistent(16));
        for id in [15, 13, 14] {
            assert_eq!(
                table.remove(&IoId(id)).map(|e| e.task),
                Some(ObjRef(id as u32))
            );
        }
        assert!(table.is_empty());
        assert!(table.is_consistent(16));
        // A table emptied starts again at the next id; an id past the
        // next leaves a gap of empty slots.
        table.insert(IoId(16), entry(16, 16));
        assert_eq!(ids(&table), [16]);
        assert!(table.is_consistent(17));
        table.insert(IoId(19), entry(19, 19));
        table.insert(IoId(20), entry(20, 20));
        assert_eq!(ids(&table), [16, 19, 20]);
        assert_eq!(table.len(), 3);
        assert!(table.is_consistent(21));
        assert_eq!(table.remove(&IoId(16)).map(|e| e.task), Some(ObjRef(16)));
        assert_eq!(ids(&table), [19, 20]);
        assert!(table.is_consistent(21));
    }
}
