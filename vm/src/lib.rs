//! spool-vm: the instruction set, the interpreter, the heap and its
//! collector, tasks and I/O, runs, and saved runs.
//!
//! A [`Program`] is plain data produced by the compiler; a `Run` is the
//! plain-data state of one execution of it. The VM never prints and never
//! touches the file system: output goes through [`Output`].
//!
//! The folders follow the concepts: [`program`] (the program and its
//! instruction set), [`exec`] (the dispatch loop, fibers, errors,
//! coroutines, natives), [`heap`] (values, heap objects, the collector,
//! printing), [`tasks`] (tasks, the scheduler, I/O requests) and
//! [`saved`] (the saved-run format, validation, upgrades); [`run`] ties
//! them together as the state of one run.

pub mod exec;
pub mod heap;
pub mod program;
pub mod run;
pub mod saved;
pub mod serde_data;
pub mod tasks;

/// A small deterministic generator of test numbers (xorshift), so that the
/// tests that try many inputs need no dependency.
#[cfg(test)]
pub(crate) fn test_noise(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

// The paths hosts use most, kept short.
pub use exec::{coro, error, native};
pub use heap::{format, map, value};
pub use program::{disasm, op, types};
pub use saved::{snapshot, upgrade, validate};
pub use tasks::{io, sched, select};

pub use exec::error::{ErrorKind, RunError, TraceFrame, VmError};
pub use exec::native::{
    CaptureOutput, HostFn, Native, NativeCtx, NativeFn, NativeSet, Output, Suspend,
};
pub use exec::unwind::stack_trace;
pub use heap::objects::{
    Blocked, Chan, Context, CoroStatus, Coroutine, Group, Mutex, Resumer, SelectCase, SelectMode,
    Task, TaskError, TaskState, Wake,
};
pub use heap::value::{
    ConstIdx, EnumIdx, FileIdx, FuncIdx, GlobalIdx, NativeIdx, ObjRef, Pc, Reg, StructIdx, Value,
};
pub use heap::{Heap, Key, Object, ValueMap};
pub use program::disasm::{disassemble, disassemble_all};
pub use program::op::{Op, Operand};
pub use program::{
    Builtins, Constant, EnumLayout, Function, Loc, LocalInfo, NativeDecl, Program, StructLayout,
    TypeDesc, TypeNode, VariantLayout,
};
pub use run::{DeferEntry, Fiber, Frame, Handler, Interrupt, Limits, Run, Status, Step, Unwind};
pub use saved::validate::validate;
pub use tasks::host_values::ValueError;
pub use tasks::io::InFlight;
pub use tasks::io::{Data, IoId, IoRequest, IoResult};
pub use tasks::sched::Sched;
