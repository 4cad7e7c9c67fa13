//! Runtime errors: what an instruction or native function raises, and what
//! an uncaught error reports to the host.

use serde::{Deserialize, Serialize};

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
}

impl VmError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> VmError {
        VmError {
            kind,
            message: message.into(),
        }
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
