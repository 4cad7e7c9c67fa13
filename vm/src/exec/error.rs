//! Runtime errors: what an instruction or native function raises, and what
//! an uncaught error reports to the host.

use serde::{Deserialize, Serialize};

use crate::heap::format;
use crate::heap::value::{GlobalIdx, Value};
use crate::heap::Heap;
use crate::program::Program;

/// The kinds of runtime error the VM and the standard library raise
/// (LANGUAGE.md §3). A script's `throw` may use any other kind string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// A failed `assert`.
    Assert,
    /// Integer overflow.
    Overflow,
    /// Integer `/` or `%` by zero.
    DivByZero,
    /// A list or string index out of range.
    Index,
    /// A missing map key.
    Key,
    /// `x!` on nil.
    NilUnwrap,
    /// The host reported an I/O failure.
    Io,
    /// The task was cancelled.
    Cancelled,
    /// The coroutine was stopped.
    Stopped,
    /// A resource limit of the host was hit.
    Limit,
    /// A check that could only happen at run time.
    Type,
    /// Raised by a host function with a kind of its own choosing
    /// ([`VmError::host`]).
    Host,
    /// `exit(code)` was called: the run is ending. Not caught by `try`.
    Exit,
}

impl ErrorKind {
    /// The kind as scripts see it in `e.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Assert => "Assert",
            ErrorKind::Overflow => "Overflow",
            ErrorKind::DivByZero => "DivByZero",
            ErrorKind::Index => "Index",
            ErrorKind::Key => "Key",
            ErrorKind::NilUnwrap => "NilUnwrap",
            ErrorKind::Io => "Io",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::Stopped => "Stopped",
            ErrorKind::Limit => "Limit",
            ErrorKind::Type => "Type",
            ErrorKind::Host => "Host",
            ErrorKind::Exit => "Exit",
        }
    }
}

/// An error raised inside the VM or by a native function, before it is
/// turned into an `Error` record and unwound.
#[derive(Clone, Debug, PartialEq)]
pub struct VmError {
    /// The kind.
    pub kind: ErrorKind,
    /// A human-readable message.
    pub message: String,
    /// The kind scripts see when it is not one of [`ErrorKind`]'s (an
    /// error a host function raised with a kind of its own).
    pub named: Option<Box<str>>,
}

impl VmError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> VmError {
        VmError {
            kind,
            message: message.into(),
            named: None,
        }
    }

    /// An error a host function raises, of the kind `kind` (what scripts
    /// see in `e.kind`), with `message`.
    pub fn host(kind: &str, message: impl Into<String>) -> VmError {
        VmError {
            kind: ErrorKind::Host,
            message: message.into(),
            named: Some(kind.into()),
        }
    }

    /// The kind as scripts see it in `e.kind`.
    pub fn kind_name(&self) -> &str {
        self.named.as_deref().unwrap_or(self.kind.as_str())
    }
}

/// One frame of a stack trace, innermost first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceFrame {
    /// The function's name.
    pub function: String,
    /// The source file.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
}

/// An error that ended a run: uncaught by the script.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// The error's kind (`"Index"`, or a script's own kind).
    pub kind: String,
    /// Its message.
    pub message: String,
    /// Where it was raised, innermost frame first.
    pub trace: Vec<TraceFrame>,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        for frame in &self.trace {
            write!(
                f,
                "\n    at {} ({}:{}:{})",
                frame.function, frame.file, frame.line, frame.col
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for RunError {}

// ---- the errors the VM raises ----

/// A `Type` error for an operand of the wrong kind.
#[cold]
pub(crate) fn expected(what: &str) -> VmError {
    VmError::new(ErrorKind::Type, format!("internal error: expected {what}"))
}

/// A function read a top-level variable before its `let` ran.
#[cold]
pub(crate) fn global_unset(program: &Program, global: GlobalIdx) -> VmError {
    let name = program
        .globals
        .get(global.index())
        .map_or("?", String::as_str);
    VmError::new(
        ErrorKind::Type,
        format!("global `{name}` was read before its `let` ran"),
    )
}

/// A `Type` error for a program that breaks the VM's assumptions.
#[cold]
pub(crate) fn bad_program(what: &str) -> VmError {
    VmError::new(ErrorKind::Type, format!("internal error: {what}"))
}

#[cold]
pub(crate) fn overflow() -> VmError {
    VmError::new(ErrorKind::Overflow, "integer overflow")
}

/// The error of an int `/` or `%` that had no result.
#[cold]
pub(crate) fn division_error(divisor: i64) -> VmError {
    if divisor == 0 {
        VmError::new(ErrorKind::DivByZero, "division by zero")
    } else {
        overflow()
    }
}

#[cold]
pub(crate) fn index_error(index: i64, container: &str, length: usize) -> VmError {
    VmError::new(
        ErrorKind::Index,
        format!("index {index} out of range for {container} of length {length}"),
    )
}

#[cold]
pub(crate) fn key_error(key: Value, heap: &Heap, program: &Program) -> VmError {
    let mut shown = String::new();
    format::write_value(&mut shown, key, heap, program, 0);
    VmError::new(ErrorKind::Key, format!("key {shown} not found"))
}

#[cold]
pub(crate) fn depth_error(max_call_depth: usize) -> VmError {
    VmError::new(
        ErrorKind::Limit,
        format!("call depth limit exceeded ({max_call_depth} frames)"),
    )
}

#[cold]
pub(crate) fn arity_error(name: &str, arity: u16, argc: u16) -> VmError {
    VmError::new(
        ErrorKind::Type,
        format!("{name} takes {arity} arguments but got {argc}"),
    )
}
