//! spool-vm: the instruction set, the interpreter, the heap and its
//! collector, and runs.
//!
//! A [`Program`] is plain data produced by the compiler; a `Run` is the
//! plain-data state of one execution of it. The VM never prints and never
//! touches the file system: output goes through [`native::Host`].

pub mod coro;
pub mod disasm;
pub mod error;
pub mod fiber;
pub mod format;
pub mod heap;
mod interp;
pub mod io;
mod liveness;
pub mod map;
pub mod native;
pub mod op;
pub mod program;
pub mod remap;
pub mod run;
pub mod sched;
pub mod snapshot;
pub mod task;
pub mod validate;
pub mod value;
mod wire;

pub use coro::{CoroStatus, Coroutine, Resumer};
pub use disasm::{disassemble, disassemble_all};
pub use error::{ErrorKind, RunError, TraceFrame, VmError};
pub use heap::{Heap, Key, Object, ValueMap};
pub use interp::stack_trace;
pub use io::{Data, IoId, IoRequest, IoResult};
pub use native::{CaptureHost, Host, NativeCtx, NativeFn, NativeSet, Suspend};
pub use op::{Op, Operand};
pub use program::{
    Builtins, Constant, EnumLayout, Function, Loc, LocalInfo, NativeDecl, Program, StructLayout,
    VariantLayout,
};
pub use run::{DeferEntry, Fiber, Frame, Handler, Limits, Run, Status, Step, Unwind};
pub use task::{Blocked, Chan, Group, InFlight, Mutex, Sched, Task, TaskError, TaskState, Wake};
pub use validate::validate;
pub use value::{
    ConstIdx, EnumIdx, FileIdx, FuncIdx, GlobalIdx, NativeIdx, ObjRef, Pc, Reg, StructIdx, Value,
};
