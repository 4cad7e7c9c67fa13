//! spool-vm: the instruction set, the interpreter, the heap and its
//! collector, and runs.
//!
//! A [`Program`] is plain data produced by the compiler; a `Run` is the
//! plain-data state of one execution of it. The VM never prints and never
//! touches the file system: output goes through [`native::Host`].

pub mod error;
pub mod format;
pub mod heap;
pub mod native;
pub mod op;
pub mod program;
pub mod value;

pub use error::{ErrorKind, RunError, TraceFrame, VmError};
pub use heap::{Heap, Key, Object, ValueMap};
pub use native::{CaptureHost, Host, NativeCtx, NativeFn, NativeSet};
pub use op::Op;
pub use program::{
    Builtins, Constant, EnumLayout, Function, LocalInfo, Loc, NativeDecl, Program, StructLayout,
    VariantLayout,
};
pub use value::{
    ConstIdx, EnumIdx, FileIdx, FuncIdx, GlobalIdx, NativeIdx, ObjRef, Pc, Reg, StructIdx, Value,
};
