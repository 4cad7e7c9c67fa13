//! The crate's one error type, [`Error`]: what compiling, running,
//! restoring, registering host items and converting values can fail with.

use crate::{CompileError, RestoreError, RunError};

/// Anything the embedding API can fail with. Each variant keeps the
/// detailed error of its step; all of them are `std::error::Error`, and a
/// compile error is also a `miette::Diagnostic`, so `?` works into
/// `Box<dyn Error>`, `anyhow` and `miette::Result` alike.
///
/// ```
/// fn run(source: &str) -> Result<i64, spool::Error> {
///     let engine = spool::Engine::new();
///     let program = engine.compile("main.spl", source)?;
///     let mut run = program.start(vec![]);
///     match run.resume(&mut spool::CaptureOutput::default())? {
///         spool::Step::Done(value) => Ok(run.get(value)?),
///         _ => Err(spool::Error::Value("the script did not finish".into())),
///     }
/// }
/// assert_eq!(run("return 6 * 7").unwrap(), 42);
/// assert!(matches!(run("let x: int = \"s\""), Err(spool::Error::Compile(_))));
/// let error = run("let xs = [1]\nprint(xs[3])").unwrap_err();
/// assert!(error.to_string().starts_with("Index: "), "{error}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The script did not compile.
    Compile(CompileError),
    /// The run ended with an uncaught error.
    Run(RunError),
    /// A saved run was refused.
    Restore(RestoreError),
    /// The engine refused a function, type or I/O operation the host
    /// registered; the message says why.
    Register(String),
    /// A value did not convert between Rust and Spool; the message names
    /// the place inside the value and both types.
    Value(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Compile(error) => error.fmt(f),
            Error::Run(error) => error.fmt(f),
            Error::Restore(error) => error.fmt(f),
            Error::Register(message) | Error::Value(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Compile(error) => Some(error),
            Error::Run(error) => Some(error),
            Error::Restore(error) => Some(error),
            Error::Register(_) | Error::Value(_) => None,
        }
    }
}

impl miette::Diagnostic for Error {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        match self {
            Error::Compile(error) => error.code(),
            _ => None,
        }
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        match self {
            Error::Compile(error) => error.help(),
            _ => None,
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        match self {
            Error::Compile(error) => error.labels(),
            _ => None,
        }
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        match self {
            Error::Compile(error) => error.source_code(),
            _ => None,
        }
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        match self {
            Error::Compile(error) => error.related(),
            _ => None,
        }
    }
}

impl From<CompileError> for Error {
    fn from(error: CompileError) -> Error {
        Error::Compile(error)
    }
}

impl From<RunError> for Error {
    fn from(error: RunError) -> Error {
        Error::Run(error)
    }
}

impl From<spool_vm::ValueError> for Error {
    fn from(error: spool_vm::ValueError) -> Error {
        Error::Value(error.message)
    }
}

impl From<RestoreError> for Error {
    fn from(error: RestoreError) -> Error {
        Error::Restore(error)
    }
}
