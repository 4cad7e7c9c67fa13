//! Native functions: Rust functions a script calls like its own, and the
//! context they run in.
//!
//! Architecture invariant: a native function never calls back into script
//! code. Library functions that take callbacks are written in Spool.

use crate::exec::error::VmError;
use crate::heap::value::Value;
use crate::heap::Heap;
use crate::program::Program;
use crate::tasks::sched::Sched;

/// Where a run's output goes (`print`): the part of the host a run talks
/// to while it executes.
pub trait Output {
    /// Writes one line of program output (`print`); `text` has no newline.
    fn print(&mut self, text: &str);
}

/// Output collected in memory, one line per `print`.
#[derive(Clone, Debug, Default)]
pub struct CaptureOutput {
    /// Everything printed, one entry per `print`.
    pub lines: Vec<String>,
}

impl Output for CaptureOutput {
    fn print(&mut self, text: &str) {
        self.lines.push(text.to_string());
    }
}

/// The state a native function may use.
pub struct NativeCtx<'a> {
    /// The run's heap, for reading arguments and allocating results.
    pub heap: &'a mut Heap,
    /// The program, for type names when formatting values.
    pub program: &'a Program,
    /// Where `print` writes.
    pub output: &'a mut dyn Output,
    /// The run's random-number state (part of the saved run).
    pub rng: &'a mut u64,
    /// The status `exit(code)` asked for (the run's; `None` until a script
    /// calls `exit`).
    pub exit: &'a mut Option<i64>,
    /// The script's arguments.
    pub args: &'a [String],
    /// The scheduler: the running task, the ready queue, the I/O requests.
    pub sched: &'a mut Sched,
    /// Set by a native that suspends the calling task instead of
    /// returning: its result arrives when the task is woken.
    pub suspend: Option<Suspend>,
    /// The work the native did, in instructions' worth, charged against
    /// the run's instruction budget after it returns ([`NativeCtx::work`]):
    /// a `sort` of a million items is not one instruction.
    pub work: u64,
}

impl NativeCtx<'_> {
    /// Records `units` of work (about one per item or per 16 bytes
    /// handled), charged against the instruction budget. What a native
    /// allocates is charged without it (16 bytes an instruction); this is
    /// for work that builds nothing (a search, the comparisons of a sort).
    pub fn work(&mut self, units: usize) {
        self.work = self.work.saturating_add(units as u64);
    }
}

/// Why a native suspended the calling task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspend {
    /// It is blocked on a channel, lock, group, task or flight; the native
    /// has registered it as a waiter (see `sched::block`).
    Block,
    /// It is an I/O operation: the run issues a request with the call's
    /// arguments.
    Io,
}

/// A native function: takes its arguments, returns its result or raises.
pub type NativeFn = fn(&mut NativeCtx<'_>, &[Value]) -> Result<Value, VmError>;

/// A native function that is a closure of the host's (a registered Rust
/// function), shared by every run that binds it.
pub type HostFn = dyn Fn(&mut NativeCtx<'_>, &[Value]) -> Result<Value, VmError> + Send + Sync;

/// A native as a run binds it: a plain function of the library's or a
/// closure of the host's.
#[derive(Clone)]
pub enum Native {
    /// A plain function.
    Fn(NativeFn),
    /// A host closure.
    Host(std::sync::Arc<HostFn>),
    /// A host I/O operation: calling it suspends the task, and the run
    /// issues a request with the call's arguments
    /// ([`crate::tasks::io::io_native`]). The interpreter issues the
    /// request itself, without a native call in between.
    Io,
}

impl Native {
    /// Calls the native with `args`.
    #[inline]
    pub fn call(&self, ctx: &mut NativeCtx<'_>, args: &[Value]) -> Result<Value, VmError> {
        match self {
            Native::Fn(function) => function(ctx, args),
            Native::Host(function) => function(ctx, args),
            Native::Io => crate::tasks::io::io_native(ctx, args),
        }
    }
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Native::Fn(_) => "Native::Fn",
            Native::Host(_) => "Native::Host",
            Native::Io => "Native::Io",
        })
    }
}

/// A set of native functions a run can bind its program's natives from.
/// Cloning is cheap (the table is shared), as every run keeps one.
#[derive(Clone, Default)]
pub struct NativeSet {
    /// By key. Hashed, not ordered: a run looks up every native of its
    /// program when it starts, and an ordered map's string comparisons
    /// cost an empty script's start a twentieth of its instructions.
    entries: std::sync::Arc<NativeTable>,
}

/// The table of a [`NativeSet`]: keys hashed with a fixed seed (they come
/// from the library and the host, never from a script); the library's
/// are its static strings, not copies.
type NativeTable =
    std::collections::HashMap<std::borrow::Cow<'static, str>, Native, foldhash::fast::FixedState>;

impl NativeSet {
    /// An empty set.
    pub fn new() -> NativeSet {
        NativeSet::default()
    }

    /// An empty set with room for `count` natives (no table grown and
    /// copied while they are added).
    pub fn with_capacity(count: usize) -> NativeSet {
        NativeSet {
            entries: std::sync::Arc::new(NativeTable::with_capacity_and_hasher(
                count,
                Default::default(),
            )),
        }
    }

    /// Adds (or replaces) the native bound to `key`.
    pub fn insert(&mut self, key: impl Into<String>, func: NativeFn) {
        let key = std::borrow::Cow::Owned(key.into());
        std::sync::Arc::make_mut(&mut self.entries).insert(key, Native::Fn(func));
    }

    /// [`NativeSet::insert`] for a key that lives as long as the program
    /// (a library's), which the set keeps without copying it.
    pub fn insert_static(&mut self, key: &'static str, func: NativeFn) {
        let key = std::borrow::Cow::Borrowed(key);
        std::sync::Arc::make_mut(&mut self.entries).insert(key, Native::Fn(func));
    }

    /// Adds (or replaces) a host closure bound to `key`.
    pub fn insert_host(&mut self, key: impl Into<String>, func: std::sync::Arc<HostFn>) {
        let key = std::borrow::Cow::Owned(key.into());
        std::sync::Arc::make_mut(&mut self.entries).insert(key, Native::Host(func));
    }

    /// The native bound to `key`.
    pub fn get(&self, key: &str) -> Option<Native> {
        self.entries.get(key).cloned()
    }

    /// Whether a native is bound to `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }
}

impl std::fmt::Debug for NativeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&str> = self.entries.keys().map(|key| &**key).collect();
        keys.sort();
        f.debug_list().entries(keys).finish()
    }
}
