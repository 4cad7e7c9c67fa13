//! The heap: an arena of objects addressed by [`ObjRef`], with a
//! mark-and-sweep collector.
//!
//! Architecture invariant: objects refer to each other only through
//! `ObjRef`s, never through Rust references or `Rc`, so the heap is plain
//! data and serializes as it is. The collector runs only between
//! instructions, when every live value is reachable from the roots the
//! interpreter hands it; a native function never sees a collection.

pub mod format;
pub mod map;
pub mod objects;
pub mod value;

use serde::{Deserialize, Serialize};

pub use crate::heap::map::ValueMap;
use crate::heap::objects::Coroutine;
use crate::heap::objects::{Chan, Group, Mutex, Task};
use crate::heap::value::{EnumIdx, FuncIdx, ObjRef, StructIdx, Value};

/// A map key: `int`, `str` or `bool`, by value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Key {
    /// An int key.
    Int(i64),
    /// A string key (its contents, so equal strings are one key).
    Str(Box<str>),
    /// A bool key.
    Bool(bool),
}

/// The hasher of every map: fast, and seeded at random (per process and
/// per map), so that keys crafted to collide under a known seed cannot make
/// maps slow. Nothing observable depends on it: maps iterate and print in
/// insertion order, and a saved map is rebuilt with a fresh seed.
pub type KeyHasher = foldhash::quality::RandomState;

/// A heap object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Object {
    /// An immutable string.
    Str(String),
    /// A list.
    List(#[serde(with = "crate::heap::value::compact")] Vec<Value>),
    /// A map.
    Map(ValueMap),
    /// An instance of a struct; `fields` in the layout's order.
    Record {
        /// The struct.
        ty: StructIdx,
        /// Field values.
        fields: Vec<Value>,
    },
    /// A value of an enum.
    Variant {
        /// The enum.
        ty: EnumIdx,
        /// Which variant.
        variant: u16,
        /// Payload values.
        fields: Vec<Value>,
    },
    /// A closure: a function plus its captures (plain values or cells).
    Closure {
        /// The function.
        func: FuncIdx,
        /// Captured values, indexed by `LoadCapture`/`CaptureGet`.
        captures: Vec<Value>,
    },
    /// A mutable box for a variable captured by reference.
    Cell(Value),
    /// A coroutine (boxed: its fiber is larger than every other object).
    Coro(Box<Coroutine>),
    /// A task (`Task<T>`).
    Task(Box<Task>),
    /// A channel (`Chan<T>`).
    Chan(Box<Chan>),
    /// A mutex.
    Mutex(Box<Mutex>),
    /// A wait group or an error group.
    Group(Box<Group>),
    /// A list of bools made where the compiler knew the element type
    /// (`NewBoolList`): a byte an element instead of a value's sixteen.
    /// The same list to scripts as [`Object::List`]; the interpreter reads
    /// and writes it in place, and [`Heap::list_mut`] turns it into an
    /// `Object::List` for the code that needs one (library functions that
    /// take any list). Counted as a list of values in the heap's byte
    /// accounting, so that the conversion needs nothing beyond it.
    BoolList(Vec<bool>),
}

/// A list's items, read where they are, however the list stores them
/// ([`Heap::list_view`]).
#[derive(Clone, Copy, Debug)]
pub enum ListView<'a> {
    /// A list of values ([`Object::List`]).
    Values(&'a [Value]),
    /// A list of bools stored a byte an element ([`Object::BoolList`]).
    Bools(&'a [bool]),
}

impl<'a> ListView<'a> {
    /// The number of items.
    pub fn len(self) -> usize {
        match self {
            ListView::Values(items) => items.len(),
            ListView::Bools(items) => items.len(),
        }
    }

    /// Is the list empty?
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The item at `index`, if there is one.
    pub fn get(self, index: usize) -> Option<Value> {
        match self {
            ListView::Values(items) => items.get(index).copied(),
            ListView::Bools(items) => items.get(index).map(|&b| Value::Bool(b)),
        }
    }

    /// The items in order.
    pub fn iter(self) -> impl ExactSizeIterator<Item = Value> + DoubleEndedIterator + 'a {
        (0..self.len()).map(move |index| self.get(index).unwrap_or_default())
    }
}

// Every heap slot is this large: a kind whose data is larger is boxed.
const _: () = assert!(std::mem::size_of::<Option<Object>>() <= 32);

impl Object {
    /// Calls `visit` on every value this object holds.
    pub fn for_each_value(&self, mut visit: impl FnMut(Value)) {
        match self {
            Object::Str(_) => {}
            Object::List(items) => items.iter().copied().for_each(visit),
            Object::Map(map) => map.values().for_each(visit),
            Object::Record { fields, .. } | Object::Variant { fields, .. } => {
                fields.iter().copied().for_each(visit)
            }
            Object::Closure { captures, .. } => captures.iter().copied().for_each(visit),
            Object::Cell(value) => visit(*value),
            Object::Coro(coro) => coro.for_each_value(visit),
            Object::Task(task) => task.for_each_value(visit),
            Object::Chan(chan) => chan.for_each_value(visit),
            Object::Mutex(mutex) => mutex.waiters.iter().for_each(|&t| visit(Value::Obj(t))),
            Object::Group(group) => group.for_each_value(visit),
            Object::BoolList(_) => {}
        }
    }

    /// A rough size in bytes, for deciding when to collect.
    fn weight(&self) -> usize {
        let payload = match self {
            Object::Str(text) => text.len(),
            Object::List(items) => items.len() * 16,
            Object::BoolList(items) => items.len() * 16,
            Object::Map(map) => map.len() * 48,
            Object::Record { fields, .. } | Object::Variant { fields, .. } => fields.len() * 16,
            Object::Closure { captures, .. } => captures.len() * 16,
            Object::Cell(_) => 0,
            Object::Coro(coro) => 256 + coro.fiber.registers.len() * 16,
            Object::Task(task) => 256 + task.context.weight(),
            Object::Chan(chan) => 64 + chan.buffer.len() * 16,
            Object::Mutex(_) | Object::Group(_) => 64,
        };
        64 + payload
    }
}

/// The arena of objects.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Heap {
    /// Object slots; `None` is a free slot.
    slots: Vec<Option<Object>>,
    /// Free slots, reused before the arena grows.
    free: Vec<u32>,
    /// Approximate bytes allocated since the last collection.
    allocated_since_gc: usize,
    /// Collect when `allocated_since_gc` exceeds this.
    threshold: usize,
    /// Number of live objects after the last collection.
    live_after_gc: usize,
    /// Approximate bytes of the objects live after the last collection.
    live_bytes: usize,
    /// The most bytes the heap may use (0: no limit): the host's policy,
    /// set from the run's limits, never read from a saved run.
    #[serde(skip)]
    limit_bytes: usize,
    /// Bytes that may still be allocated or grown before the heap needs
    /// attention: at most what is left below the collection threshold and
    /// below the limit (see [`Heap::needs_attention`]). Never more than
    /// either, so one comparison with it clears the common case of
    /// [`Heap::charge`] and of the interpreter's collection points. Not
    /// saved: 0 (always safe) until [`Heap::set_limit`] or a collection
    /// computes it again.
    #[serde(skip)]
    room: usize,
    /// The collector's marks, one per slot: kept between collections (not
    /// saved), so that a collection allocates nothing. A fresh buffer at
    /// every collection was a large request to the allocator, which made
    /// it merge all the small blocks the previous sweep had freed, to carve
    /// them up again for the next small objects.
    #[serde(skip)]
    marks: Vec<bool>,
    /// The collector's stack of objects to visit, kept likewise.
    #[serde(skip)]
    gray: Vec<ObjRef>,
    /// The last collection found almost everything allocated before it
    /// alive (the program is building up its data): the next one waits
    /// for more. Not saved.
    #[serde(skip)]
    growing: bool,
}

/// What one more list item or channel slot is counted as in the heap's
/// byte accounting.
pub const ITEM_BYTES: usize = 16;

/// What a new map entry is counted as in the heap's byte accounting.
pub const MAP_ENTRY_BYTES: usize = 48;

/// The initial collection threshold in bytes, and the least it is after a
/// collection: a run that allocates many short-lived objects (records in a
/// loop) is collected every 1 MiB of them, which keeps its peak memory
/// within a few MiB; 4 MiB doubled that peak.
const INITIAL_THRESHOLD: usize = 1 << 20;

/// Up to how many live bytes a heap whose data is growing waits longer
/// between collections (see [`Heap::next_threshold`]).
const GROWING_MAX: usize = 64 << 20;

impl Heap {
    /// An empty heap.
    pub fn new() -> Heap {
        let mut heap = Heap {
            threshold: INITIAL_THRESHOLD,
            ..Heap::default()
        };
        heap.room = heap.exact_room();
        heap
    }

    /// Stores `object` and returns its reference.
    pub fn alloc(&mut self, object: Object) -> ObjRef {
        self.grew(object.weight());
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(object);
                ObjRef(slot)
            }
            None => {
                self.slots.push(Some(object));
                ObjRef(self.slots.len() as u32 - 1)
            }
        }
    }

    /// Allocates a string and returns it as a value.
    pub fn alloc_str(&mut self, text: impl Into<String>) -> Value {
        Value::Obj(self.alloc(Object::Str(text.into())))
    }

    /// Allocates a list and returns it as a value.
    pub fn alloc_list(&mut self, items: Vec<Value>) -> Value {
        Value::Obj(self.alloc(Object::List(items)))
    }

    /// The object at `obj`, if the slot is live.
    #[inline]
    pub fn get(&self, obj: ObjRef) -> Option<&Object> {
        self.slots.get(obj.index()).and_then(Option::as_ref)
    }

    /// The object at `obj`, mutably, if the slot is live.
    #[inline]
    pub fn get_mut(&mut self, obj: ObjRef) -> Option<&mut Object> {
        self.slots.get_mut(obj.index()).and_then(Option::as_mut)
    }

    /// The object a value refers to, if it refers to a live one.
    #[inline]
    pub fn get_value(&self, value: Value) -> Option<&Object> {
        self.get(value.as_obj()?)
    }

    /// The object a value refers to, mutably, if it refers to a live one.
    #[inline]
    pub fn get_mut_value(&mut self, value: Value) -> Option<&mut Object> {
        self.get_mut(value.as_obj()?)
    }

    /// The string a value refers to, if it is one.
    pub fn str(&self, value: Value) -> Option<&str> {
        match self.get(value.as_obj()?)? {
            Object::Str(text) => Some(text),
            _ => None,
        }
    }

    /// Allocates a list of bools stored a byte an element
    /// ([`Object::BoolList`]) and returns it as a value.
    pub fn alloc_bool_list(&mut self, items: Vec<bool>) -> Value {
        Value::Obj(self.alloc(Object::BoolList(items)))
    }

    /// The list of values a value refers to, if it is one. A list of bools
    /// stored as bytes ([`Object::BoolList`]) is not one until
    /// [`Heap::list_mut`] has made it one.
    pub fn list(&self, value: Value) -> Option<&Vec<Value>> {
        match self.get(value.as_obj()?)? {
            Object::List(items) => Some(items),
            _ => None,
        }
    }

    /// The items of the list a value refers to, however they are stored,
    /// if it is a list: for code that only reads them.
    pub fn list_view(&self, value: Value) -> Option<ListView<'_>> {
        match self.get(value.as_obj()?)? {
            Object::List(items) => Some(ListView::Values(items)),
            Object::BoolList(items) => Some(ListView::Bools(items)),
            _ => None,
        }
    }

    /// The list a value refers to, mutably, if it is one; a list of bools
    /// stored as bytes becomes a list of values first.
    pub fn list_mut(&mut self, value: Value) -> Option<&mut Vec<Value>> {
        let object = self.get_mut(value.as_obj()?)?;
        if let Object::BoolList(bools) = object {
            *object = Object::List(bools.iter().map(|&b| Value::Bool(b)).collect());
        }
        match object {
            Object::List(items) => Some(items),
            _ => None,
        }
    }

    /// The list of values a value refers to, mutably, if it is one; `None`
    /// for a list of bools stored as bytes, left as it is (the
    /// interpreter's fast path for a push).
    #[inline]
    pub fn values_mut(&mut self, value: Value) -> Option<&mut Vec<Value>> {
        match self.get_mut(value.as_obj()?)? {
            Object::List(items) => Some(items),
            _ => None,
        }
    }

    /// The map a value refers to, if it is one.
    pub fn map(&self, value: Value) -> Option<&ValueMap> {
        match self.get(value.as_obj()?)? {
            Object::Map(map) => Some(map),
            _ => None,
        }
    }

    /// The map a value refers to, mutably, if it is one.
    pub fn map_mut(&mut self, value: Value) -> Option<&mut ValueMap> {
        match self.get_mut(value.as_obj()?)? {
            Object::Map(map) => Some(map),
            _ => None,
        }
    }

    /// The coroutine a value refers to, if it is one.
    pub fn coro(&self, value: Value) -> Option<&Coroutine> {
        match self.get(value.as_obj()?)? {
            Object::Coro(coro) => Some(coro),
            _ => None,
        }
    }

    /// The coroutine at `obj`, mutably, if it is one.
    #[inline]
    pub fn coro_mut(&mut self, obj: ObjRef) -> Option<&mut Coroutine> {
        match self.get_mut(obj)? {
            Object::Coro(coro) => Some(coro),
            _ => None,
        }
    }

    /// The task a value refers to, if it is one.
    pub fn task(&self, value: Value) -> Option<&Task> {
        match self.get(value.as_obj()?)? {
            Object::Task(task) => Some(task),
            _ => None,
        }
    }

    /// The task at `obj`, mutably, if it is one.
    pub fn task_mut(&mut self, obj: ObjRef) -> Option<&mut Task> {
        match self.get_mut(obj)? {
            Object::Task(task) => Some(task),
            _ => None,
        }
    }

    /// The channel at `obj`, mutably, if it is one.
    pub fn chan_mut(&mut self, obj: ObjRef) -> Option<&mut Chan> {
        match self.get_mut(obj)? {
            Object::Chan(chan) => Some(chan),
            _ => None,
        }
    }

    /// The mutex at `obj`, mutably, if it is one.
    pub fn mutex_mut(&mut self, obj: ObjRef) -> Option<&mut Mutex> {
        match self.get_mut(obj)? {
            Object::Mutex(mutex) => Some(mutex),
            _ => None,
        }
    }

    /// The group at `obj`, mutably, if it is one.
    pub fn group_mut(&mut self, obj: ObjRef) -> Option<&mut Group> {
        match self.get_mut(obj)? {
            Object::Group(group) => Some(group),
            _ => None,
        }
    }

    /// The map key for a value of a key type (`int`, `str`, `bool`).
    pub fn key(&self, value: Value) -> Option<Key> {
        match value {
            Value::Int(n) => Some(Key::Int(n)),
            Value::Bool(b) => Some(Key::Bool(b)),
            Value::Obj(_) => self.str(value).map(|text| Key::Str(text.into())),
            _ => None,
        }
    }

    /// A key as a value (allocating a string for string keys).
    pub fn key_value(&mut self, key: &Key) -> Value {
        match key {
            Key::Int(n) => Value::Int(*n),
            Key::Bool(b) => Value::Bool(*b),
            Key::Str(text) => self.alloc_str(text.to_string()),
        }
    }

    /// Checks the arena's bookkeeping after loading it from untrusted
    /// bytes: every free-list entry names a distinct, empty slot.
    pub fn check_slots(&self) -> Result<(), String> {
        let mut seen = vec![false; self.slots.len()];
        for &slot in &self.free {
            let index = slot as usize;
            match self.slots.get(index) {
                Some(None) if !seen[index] => seen[index] = true,
                _ => return Err(format!("heap slot {slot} is listed as free but is not")),
            }
        }
        if self.slots.len() > u32::MAX as usize {
            return Err("the heap is too large".into());
        }
        Ok(())
    }

    /// Number of live objects.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Is the heap empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of slots, live or free: every valid `ObjRef` is below this.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Should the interpreter collect at its next safe point? Also when
    /// the heap is over its byte limit (a collection may bring it back).
    #[inline]
    pub fn should_collect(&self) -> bool {
        self.allocated_since_gc > self.threshold
    }

    /// [`Heap::should_collect`] or [`Heap::over_limit`], for the
    /// interpreter's collection points: while there is `room`, neither can
    /// be true (`room` is at most what is left below the threshold and
    /// below the limit), so the usual answer takes one comparison.
    #[inline]
    pub fn needs_attention(&self) -> bool {
        self.room == 0 && (self.should_collect() || self.over_limit())
    }

    /// Sets the most bytes the heap may use (0: no limit).
    pub fn set_limit(&mut self, bytes: usize) {
        self.limit_bytes = bytes;
        self.threshold = self.next_threshold();
        self.room = self.exact_room();
    }

    /// What is left below the collection threshold and (with a limit)
    /// below the limit, whichever is less.
    fn exact_room(&self) -> usize {
        let below_threshold = self.threshold.saturating_sub(self.allocated_since_gc);
        if self.limit_bytes == 0 {
            return below_threshold;
        }
        below_threshold.min(self.limit_bytes.saturating_sub(self.in_use()))
    }

    /// Approximate bytes in use: the live objects at the last collection
    /// and everything allocated or grown since.
    pub fn in_use(&self) -> usize {
        self.live_bytes.saturating_add(self.allocated_since_gc)
    }

    /// Is the heap over its byte limit?
    pub fn over_limit(&self) -> bool {
        self.limit_bytes != 0 && self.in_use() > self.limit_bytes
    }

    /// Records that an object grew by `bytes` (a list push, a map insert, a
    /// channel's buffer), so growth counts like allocation.
    #[inline]
    pub fn grew(&mut self, bytes: usize) {
        self.allocated_since_gc = self.allocated_since_gc.saturating_add(bytes);
        self.room = self.room.saturating_sub(bytes);
    }

    /// Checks, before allocating, that `bytes` more fit under the limit:
    /// a `Limit` error otherwise. Library functions call it with the size
    /// of what they are about to build (a joined string, a replaced one).
    #[inline]
    pub fn charge(&self, bytes: usize) -> Result<(), crate::exec::error::VmError> {
        // Below `room`, the bytes fit under the limit (if there is one).
        if bytes < self.room {
            return Ok(());
        }
        self.charge_exactly(bytes)
    }

    /// [`Heap::charge`] when `room` does not settle it.
    #[cold]
    fn charge_exactly(&self, bytes: usize) -> Result<(), crate::exec::error::VmError> {
        if self.limit_bytes != 0 && self.in_use().saturating_add(bytes) > self.limit_bytes {
            return Err(self.limit_error(bytes));
        }
        Ok(())
    }

    /// The `Limit` error of an allocation of `bytes` that does not fit.
    pub fn limit_error(&self, bytes: usize) -> crate::exec::error::VmError {
        crate::exec::error::VmError::new(
            crate::exec::error::ErrorKind::Limit,
            format!(
                "heap limit exceeded: {} bytes in use, {bytes} more needed, the limit is {} bytes",
                self.in_use(),
                self.limit_bytes
            ),
        )
    }

    /// The collection threshold after a collection: twice the live bytes
    /// (four times while the data is growing and small), but never past
    /// the limit, so the heap is collected before it could pass it.
    fn next_threshold(&self) -> usize {
        // While a program builds up its data (almost all of it survived
        // the last collection) and that data is still small, the next
        // collection waits for twice as much: collections that free
        // nothing are fewer, and garbage can still add at most four times
        // what is live.
        let factor = if self.growing && self.live_bytes < GROWING_MAX {
            4
        } else {
            2
        };
        let doubling = (self.live_bytes * factor).max(INITIAL_THRESHOLD);
        if self.limit_bytes == 0 {
            return doubling;
        }
        let headroom = self.limit_bytes.saturating_sub(self.live_bytes) / 2;
        doubling.min(headroom.max(1 << 16))
    }

    /// Frees every object not reachable from `roots`. Returns the number of
    /// objects freed.
    pub fn collect(&mut self, roots: impl IntoIterator<Item = Value>) -> usize {
        let mut marked = std::mem::take(&mut self.marks);
        marked.clear();
        marked.resize(self.slots.len(), false);
        let mut stack = std::mem::take(&mut self.gray);
        stack.clear();
        stack.extend(roots.into_iter().filter_map(Value::as_obj));
        while let Some(obj) = stack.pop() {
            let index = obj.index();
            if index >= marked.len() || marked[index] {
                continue;
            }
            marked[index] = true;
            if let Some(object) = &self.slots[index] {
                // Only objects not marked yet go on the stack: a task's
                // parent, a list's items already seen, ... are skipped
                // without a push and a pop.
                object.for_each_value(|value| {
                    if let Value::Obj(child) = value {
                        if marked.get(child.index()) == Some(&false) {
                            stack.push(child);
                        }
                    }
                });
            }
        }
        let mut freed = 0;
        let mut live_bytes = 0;
        for (index, is_marked) in marked.iter().enumerate() {
            let Some(object) = &self.slots[index] else {
                continue;
            };
            if *is_marked {
                live_bytes += object.weight();
            } else {
                self.slots[index] = None;
                self.free.push(index as u32);
                freed += 1;
            }
        }
        (self.marks, self.gray) = (marked, stack);
        // Growing: at least seven eighths of the bytes in use survived.
        let before = self.in_use();
        self.growing = live_bytes >= before / 8 * 7;
        self.live_after_gc = self.len();
        self.allocated_since_gc = 0;
        self.live_bytes = live_bytes;
        self.threshold = self.next_threshold();
        self.room = self.exact_room();
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list of bools stored as bytes reads as the same list through
    /// `list_view`, is not a list of values until `list_mut` makes it one
    /// (with the same items), and weighs what that list would.
    #[test]
    fn a_list_of_bools_reads_as_a_list_and_unpacks_whole() {
        let mut heap = Heap::default();
        let list = heap.alloc_bool_list(vec![true, false, true]);
        let view = heap.list_view(list).expect("a list");
        assert_eq!(view.len(), 3);
        assert_eq!(view.get(1), Some(Value::Bool(false)));
        assert_eq!(view.get(3), None);
        let items: Vec<Value> = view.iter().rev().collect();
        assert_eq!(
            items,
            [Value::Bool(true), Value::Bool(false), Value::Bool(true)]
        );
        assert!(heap.list(list).is_none());
        let weight = heap.get_value(list).map(Object::weight);
        assert_eq!(heap.list_mut(list).map(|items| items.len()), Some(3));
        let values = heap.list(list).expect("a list of values now");
        assert_eq!(
            values,
            &[Value::Bool(true), Value::Bool(false), Value::Bool(true)]
        );
        assert_eq!(heap.get_value(list).map(Object::weight), weight);
        assert!(heap.list_view(Value::Int(1)).is_none());
    }

    /// A loop of short-lived records, collected whenever the heap asks (as
    /// the interpreter does), keeps an arena of about 1 MiB's worth of
    /// them, whatever the number allocated; what survives is kept.
    #[test]
    fn short_lived_objects_keep_the_arena_small() {
        let mut heap = Heap::new();
        let kept = heap.alloc_str("kept");
        let mut most = 0;
        for i in 0..200_000 {
            heap.alloc(Object::Record {
                ty: StructIdx(0),
                fields: vec![Value::Int(i); 3],
            });
            if heap.needs_attention() {
                heap.collect([kept]);
            }
            most = most.max(heap.slots.len());
        }
        // 112 accounted bytes a record: some 9 400 to the MiB.
        assert!(most <= 10_000, "the arena reached {most} slots");
        assert_eq!(heap.str(kept), Some("kept"));
        // The collector's buffers are kept for the next collection.
        assert!(heap.marks.capacity() >= heap.slots.len().min(most));
    }

    /// A heap whose objects all survive (a growing data structure) waits
    /// for four times its live bytes before the next collection, so it is
    /// collected fewer times as it grows; once a collection frees most of
    /// what was allocated, the next one comes at twice again; above
    /// [`GROWING_MAX`] live bytes, and under a limit, it never waits
    /// longer.
    #[test]
    fn a_growing_heap_is_collected_less_often() {
        let mut heap = Heap::new();
        let mut kept = Vec::new();
        let mut collections = 0;
        while heap.live_bytes < 20 << 20 {
            kept.push(heap.alloc_str("x".repeat(4000)));
            if heap.needs_attention() {
                heap.collect(kept.iter().copied());
                collections += 1;
                assert!(heap.growing);
                assert_eq!(
                    heap.threshold,
                    heap.live_bytes * 4,
                    "collection {collections}"
                );
            }
        }
        // At about 1, 5 and 25 MiB live: doubling would take four (1, 3,
        // 9, 27).
        assert_eq!(collections, 3);
        // Garbage: the next collection frees most of what is in use.
        kept.truncate(kept.len() / 10);
        heap.collect(kept.iter().copied());
        assert!(!heap.growing);
        assert_eq!(heap.threshold, heap.live_bytes * 2);
        // Large live data: twice, growing or not.
        heap.growing = true;
        heap.live_bytes = GROWING_MAX;
        assert_eq!(heap.next_threshold(), GROWING_MAX * 2);
        // Under a limit: never past half the headroom.
        heap.live_bytes = 1 << 20;
        heap.set_limit(4 << 20);
        assert_eq!(heap.threshold, 3 << 19);
    }

    /// `room` settles `needs_attention` and `charge` exactly as the full
    /// checks would, through allocations, growth, collections and limits
    /// (also a heap as restored, whose `room` starts at 0).
    #[test]
    fn room_agrees_with_the_exact_checks() {
        let mut noise = crate::test_noise(0x5eed_4ea9);
        for round in 0..200 {
            let mut heap = if round % 2 == 0 {
                Heap::new()
            } else {
                Heap {
                    threshold: INITIAL_THRESHOLD,
                    ..Heap::default()
                }
            };
            let mut kept = Vec::new();
            for _ in 0..300 {
                match noise() % 8 {
                    0 => heap.set_limit([0, 1 << 12, 1 << 16, 1 << 20][(noise() % 4) as usize]),
                    1 => {
                        let roots: Vec<Value> = kept.iter().copied().step_by(2).collect();
                        heap.collect(roots);
                        kept.retain(|value: &Value| heap.get(value.as_obj().unwrap()).is_some());
                    }
                    2 | 3 => {
                        let len = (noise() % 5000) as usize;
                        kept.push(heap.alloc_str("x".repeat(len)));
                    }
                    _ => heap.grew((noise() % 70_000) as usize),
                }
                let exact = heap.should_collect() || heap.over_limit();
                assert_eq!(heap.needs_attention(), exact, "needs_attention");
                let bytes = (noise() % 200_000) as usize;
                let fits = heap.limit_bytes == 0
                    || heap.in_use().saturating_add(bytes) <= heap.limit_bytes;
                assert_eq!(heap.charge(bytes).is_ok(), fits, "charge of {bytes}");
            }
        }
    }
}
